"""The operator HTTP API (decisions §5) on hypercorn + quart-trio.

The app is a set of blueprints, one per resource family, each a thin boundary: parse and
validate the request, ask an actor, answer in JSON written by ``domain.codec`` so money
stays exact. Every refusal, including the ones the web framework produces (unknown route,
wrong method, body too large), is answered with the seed-002 error body
``{"status": "FAILURE", "errorCode": ..., "errorMessage": ...}`` and changes nothing.
"""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.typing import LifespanState
from hypercorn.utils import wrap_app
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from actors.services import Services
from domain.errors import DomainError, ErrorCode
from transport.accept import serve_listeners
from transport.addresses import AddressCap, too_many_answer
from transport.http_connection import HttpConnection
from transport.http_listing import listing_blueprint
from transport.http_metrics import metrics_blueprint
from transport.httpkit import AsciiIntegerConverter, drain_body, error_body, error_response
from transport.lotteries import lotteries_blueprint
from transport.page import page_blueprint
from transport.routes_betslips import betslips_blueprint, partners_blueprint
from transport.routes_limits import limits_blueprint
from transport.routes_money import money_blueprint
from transport.routes_status import status_blueprint
from transport.routes_users import users_blueprint

log = logging.getLogger(__name__)

#: Largest request body accepted; every operator call fits in a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
#: Largest request line plus headers (h11 answers 431 past it); hypercorn's default.
MAX_HEAD_BYTES = 16 * 1024

#: What werkzeug's own HTTP errors are called on our wire.
_HTTP_CODES: dict[int, str] = {
    400: ErrorCode.MALFORMED_MESSAGE,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    408: ErrorCode.BODY_TOO_SLOW,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def create_app(services: Services) -> QuartTrio:
    """The Quart app: the blueprints, and one error body for every refusal."""
    app = QuartTrio("tote")
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["BODY_TIMEOUT"] = services.settings.http_body_seconds
    #: where werkzeug's text speaks of browsers, ours says what happened and what to do
    own_words = {
        408: f"The request body did not all arrive within {services.settings.http_body_seconds:g}"
        " s; nothing was done. Send the request again, whole.",
    }

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
        text = own_words.get(status) or error.description or code
        response = error_response(DomainError(code, text), status)
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
    app.register_blueprint(limits_blueprint(services))
    app.register_blueprint(lotteries_blueprint(services))
    app.register_blueprint(betslips_blueprint(services))
    app.register_blueprint(partners_blueprint(services))
    app.register_blueprint(listing_blueprint(services))
    app.register_blueprint(metrics_blueprint(services))
    app.register_blueprint(page_blueprint(services))
    return app


def hypercorn_config() -> Config:
    """hypercorn's settings for our connections: no access log, its errors to our log,
    the largest request head. Its timers are not used: idle connections and slow
    headers have our watchdog (``HttpConnection``), the body ``BODY_TIMEOUT``
    (``create_app``), sends ``SendDeadlineStream``; there is no read timeout: a client
    waiting for its answer is silent, and must not be cut off for that."""
    config = Config()
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    return config


def too_many_connections(limit: int) -> bytes:
    """The whole answer to a connection past the per-address cap: 429
    ``TOO_MANY_CONNECTIONS``, sent before its request is read, then a close."""
    error = DomainError(
        "TOO_MANY_CONNECTIONS",
        f"At most {limit} HTTP connections per client address at once; close one or wait.",
    )
    return too_many_answer(error_body(error))


async def serve_http(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the operator API; ``task_status`` gets the bound port.

    This is ``hypercorn.trio.serve`` for plain-TCP listeners, with each client served by
    an :class:`HttpConnection` (HTTP/1.1, closed when idle, sends with a deadline). A
    client address holding ``http_connections_per_address`` connections has its next
    one refused (429) until one closes. Out of file descriptors, the accept loop logs
    one line and retries every 100 ms (``transport.accept``)."""
    settings = services.settings
    config = hypercorn_config()
    app = wrap_app(create_app(services), config.wsgi_max_body_size, "asgi")
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    limit = settings.http_connections_per_address
    cap = AddressCap(limit, too_many_connections(limit))

    async def served(stream: trio.SocketStream) -> None:
        await HttpConnection(
            app, config, lifespan_state, stream,
            idle_seconds=settings.http_idle_seconds,
            send_seconds=settings.http_send_seconds,
        ).run()  # fmt: skip

    async def connection(stream: trio.SocketStream) -> None:
        """One client, admitted or refused by its address; whatever it does ends its
        own connection at most."""
        try:
            await cap.serve(stream, served)
        except Exception:
            log.exception("an HTTP connection failed")

    async with trio.open_nursery() as nursery:
        await nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        listeners = await trio.open_tcp_listeners(port, host=host)
        await nursery.start(serve_listeners, connection, listeners, "http")
        task_status.started(listeners[0].socket.getsockname()[1])
