"""The browser client: a page, its script and style (plain files in ``transport/web``, no
build step), and the little it needs to find the websocket.

The page is a real websocket client of the protocol (docs/protocol.md): it logs in with
``POST /v1/login``, computes the handshake digest with WebCrypto and speaks the same ops
as any other client; nothing here is a shortcut around the websocket API.
"""

from __future__ import annotations

from importlib.resources import files

from quart import Blueprint, Response

from actors.services import Services
from domain.errors import DomainError
from transport.httpkit import json_response

#: The files served, by URL name: (file in transport/web, content type). A fixed table,
#: so no request path ever reaches the file system.
ASSETS: dict[str, tuple[str, str]] = {
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
PAGE = "index.html"

#: Scripts and styles only from this server; the websocket on any host (its port is not
#: the page's, and the handshake's Origin check guards the other end).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read_web_files() -> dict[str, bytes]:
    """The page's files, read once when the app is built (a few KB, at start-up)."""
    web = files("transport") / "web"
    return {name: (web / name).read_bytes() for name in [PAGE, *(f for f, _ in ASSETS.values())]}


def _file_response(body: bytes, content_type: str) -> Response:
    response = Response(body, status=200, content_type=content_type)
    response.headers.update(SECURITY_HEADERS)
    return response


def page_blueprint(services: Services) -> Blueprint:
    """``/`` (the page), ``/web/<asset>`` (its script and style) and ``/web/config.json``
    (where the websocket listens)."""
    blueprint = Blueprint("page", __name__)
    contents = _read_web_files()

    @blueprint.get("/")
    async def page() -> Response:
        return _file_response(contents[PAGE], "text/html; charset=utf-8")

    @blueprint.get("/web/config.json")
    async def config() -> Response:
        return json_response(
            {"ws_port": services.ws_port, "currency": services.settings.default_currency}
        )

    @blueprint.get("/web/<string:name>")
    async def asset(name: str) -> Response:
        found = ASSETS.get(name)
        if found is None:
            raise DomainError("NOT_FOUND", f"There is no file {name[:100]!r} here.")
        filename, content_type = found
        return _file_response(contents[filename], content_type)

    return blueprint
