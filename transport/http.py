"""The operator HTTP API (decisions §5) on hypercorn + quart-trio."""

from __future__ import annotations

from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response
from quart_trio import QuartTrio

from actors.services import Services
from domain.codec import encode


def json_response(body: object, status: int = 200) -> Response:
    return Response(encode(body), status=status, content_type="application/json")


def create_app(services: Services) -> QuartTrio:
    app = QuartTrio("tote")

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        if services.ready.is_set():
            return json_response({"status": "ready"})
        return json_response({"status": "starting"}, 503)

    return app


async def serve_http(services: Services, host: str, port: int, *,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the operator API; ``task_status`` gets the bound port."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, create_app(services), config))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
