"""The websocket handshake's Origin check: non-browsers (no Origin) and the server's own
page pass, other pages only when listed in Settings.allowed_origins."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionRejected, open_websocket_url

from domain.origins import normalized_origin, origin_allowed, own_origins
from tests.conftest import Harness


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:8766", "http://127.0.0.1:8766"),
        ("HTTPS://Example.COM:443/", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://[::1]:8766", "http://[::1]:8766"),
        ("null", None),
        ("file://", None),
        ("ws://example.com", None),
        ("http://example.com/path", None),
        ("http://user@example.com", None),
        ("http://example.com:99999", None),
        ("http://example.com:x", None),
        ("", None),
    ],
)
def test_origins_are_compared_in_one_form(text: str, expected: str | None) -> None:
    assert normalized_origin(text) == expected


def test_own_origin_is_the_host_reached_on_the_http_port() -> None:
    assert own_origins("LocalHost:8765", 8766) == {
        "http://localhost:8766",
        "https://localhost:8766",
    }
    assert own_origins("[::1]:8765", 8766) == {"http://[::1]:8766", "https://[::1]:8766"}
    assert own_origins("10.1.2.3:8765", 80) == {"http://10.1.2.3", "https://10.1.2.3:80"}
    # a name could be an attacker's pointed here after its page loaded: listed ones only
    assert own_origins("rebound.example:8765", 8766) == set()
    assert not origin_allowed("http://rebound.example:8766", "rebound.example:8765", 8766, ())
    assert origin_allowed(
        "http://tote.example:8766", "tote.example:8765", 8766, ("http://tote.example:8766",)
    )
    assert own_origins(None, 8766) == set()
    assert own_origins("127.0.0.1:8765", 0) == set()  # HTTP not listening yet
    assert own_origins("[bad", 8766) == set()


@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()), st.integers(0, 70000))
def test_any_origin_and_host_text_is_answered_not_raised(
    origin: str | None, host: str | None, port: int
) -> None:
    """Whatever a client sends in these headers, the check answers yes or no."""
    allowed = origin_allowed(origin, host, port, ())
    assert allowed is True if origin is None else isinstance(allowed, bool)


def origin_header(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"Origin", value.encode())]


async def test_handshake_without_origin_or_from_the_own_page_is_admitted(harness: Harness) -> None:
    user = await harness.user()
    own = f"http://127.0.0.1:{harness.endpoints.http_port}"
    for headers in ([], origin_header(own)):
        async with open_websocket_url(harness.ws_url(user), extra_headers=headers) as ws:
            await ws.send_message('{"op": 1}')
            assert json.loads(await ws.get_message())["res"] == 1


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1", "%%%", "x" * 3000],
)
async def test_handshake_from_another_page_is_refused_403(harness: Harness, origin: str) -> None:
    user = await harness.user()
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(harness.ws_url(user), extra_headers=origin_header(origin)):
            pass
    assert caught.value.status_code == 403
    body = json.loads(caught.value.body or b"")
    assert body["error_code"] == "ORIGIN_REFUSED"
    async with harness.connect(user) as ws:  # the server goes on serving
        assert (await ws.call(1))["res"] == 1


async def test_allowed_origins_admit_listed_pages_or_any(harness: Harness) -> None:
    user = await harness.user()
    settings = harness.services.settings
    settings.allowed_origins = ("https://Play.Example.com",)
    headers = origin_header("https://play.example.com:443")
    async with open_websocket_url(harness.ws_url(user), extra_headers=headers):
        pass
    with pytest.raises(ConnectionRejected):
        async with open_websocket_url(
            harness.ws_url(user), extra_headers=origin_header("https://other.example.com")
        ):
            pass
    settings.allowed_origins = ("*",)
    async with open_websocket_url(
        harness.ws_url(user), extra_headers=origin_header("https://other.example.com")
    ):
        pass
