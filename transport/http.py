"""The operator HTTP API (decisions §5) on hypercorn + quart-trio.

The app is a set of blueprints, one per resource family, each a thin boundary: parse and
validate the request, ask an actor, answer in JSON written by ``domain.codec`` so money
stays exact. Every refusal, including the ones the web framework produces (unknown route,
wrong method, body too large), is answered with the seed-002 error body
``{"status": "FAILURE", "errorCode": ..., "errorMessage": ...}`` and changes nothing.
"""

from __future__ import annotations

import logging
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from actors.services import Services
from domain.errors import DomainError
from transport.http_listing import listing_blueprint
from transport.http_metrics import metrics_blueprint
from transport.httpkit import AsciiIntegerConverter, drain_body, error_response
from transport.lotteries import lotteries_blueprint
from transport.page import page_blueprint
from transport.routes_betslips import betslips_blueprint, partners_blueprint
from transport.routes_money import money_blueprint
from transport.routes_status import status_blueprint
from transport.routes_users import users_blueprint

log = logging.getLogger(__name__)

#: Largest request body accepted; every operator call fits in a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024

#: What werkzeug's own HTTP errors are called on our wire.
_HTTP_CODES = {
    400: "MALFORMED_MESSAGE",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def create_app(services: Services) -> QuartTrio:
    """The Quart app: the blueprints, and one error body for every refusal."""
    app = QuartTrio("tote")
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.errorhandler(DomainError)
    async def domain_error(error: DomainError) -> Response:
        await drain_body()
        response = error_response(error)
        if "retry_after" in error.extra:
            response.headers["Retry-After"] = str(error.extra["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status) or (error.name or "error").upper().replace(" ", "_")
        response = error_response(DomainError(code, error.description or code), status)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.error("HTTP %s %s failed", request.method, request.path, exc_info=error)
        return error_response(
            DomainError("GENERAL_EXCEPTION", "The server failed to handle this request."), 500
        )

    app.register_blueprint(status_blueprint(services))
    app.register_blueprint(users_blueprint(services))
    app.register_blueprint(money_blueprint(services))
    app.register_blueprint(lotteries_blueprint(services))
    app.register_blueprint(betslips_blueprint(services))
    app.register_blueprint(partners_blueprint(services))
    app.register_blueprint(listing_blueprint(services))
    app.register_blueprint(metrics_blueprint(services))
    app.register_blueprint(page_blueprint(services))
    return app


async def serve_http(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the operator API; ``task_status`` gets the bound port."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, create_app(services), config))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
