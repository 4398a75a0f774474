"""The browser client's files and config over HTTP (the page itself runs in
tests/test_browser.py)."""

from __future__ import annotations

import pytest

from tests.conftest import Harness


async def test_page_script_style_and_config_are_served(harness: Harness) -> None:
    page = await harness.http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/web/app.js"' in page.text
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = await harness.http.get(f"/web/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    config = await harness.http.get("/web/config.json")
    assert config.json() == {"ws_port": harness.endpoints.ws_port, "currency": "EUR"}


@pytest.mark.parametrize(
    "path", ["/web/index.html.bak", "/web/..%2Fpage.py", "/web/../page.py", "/web/", "/web/%00"]
)
async def test_only_the_page_files_are_served(harness: Harness, path: str) -> None:
    """A fixed table of files: no request path reaches the file system."""
    response = await harness.http.get(path)
    assert response.status_code == 404
    assert response.json()["errorCode"] == "NOT_FOUND"


async def test_page_routes_take_only_get(harness: Harness) -> None:
    response = await harness.http.post("/", content=b"{}")
    assert response.status_code == 405
    assert response.json()["errorCode"] == "METHOD_NOT_ALLOWED"
