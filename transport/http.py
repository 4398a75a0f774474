"""The operator HTTP API (decisions §5) on hypercorn + quart-trio.

The app is a set of blueprints, one per resource family, each a thin boundary: parse and
validate the request, ask an actor, answer in JSON written by ``domain.codec`` so money
stays exact. Every refusal, including the ones the web framework produces (unknown route,
wrong method, body too large), is answered with the seed-002 error body
``{"status": "FAILURE", "errorCode": ..., "errorMessage": ...}`` and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import wrap_app
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from actors.services import Services, Settings
from domain.errors import DomainError
from transport.http_listing import listing_blueprint
from transport.http_metrics import metrics_blueprint
from transport.httpkit import AsciiIntegerConverter, drain_body, error_response
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
#: A response goes out in pieces this large, each given ``http_send_seconds`` to leave:
#: a client is cut off only when it takes less than this in that time.
SEND_CHUNK_BYTES = 16 * 1024
#: Largest request line plus headers (h11 answers 431 past it); hypercorn's default.
MAX_HEAD_BYTES = 16 * 1024

#: What werkzeug's own HTTP errors are called on our wire.
_HTTP_CODES = {
    400: "MALFORMED_MESSAGE",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "BODY_TOO_SLOW",
    413: "PAYLOAD_TOO_LARGE",
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


def hypercorn_config(settings: Settings) -> Config:
    """hypercorn's limits on slow clients (docs/reliability.md, scenario 7). Its idle
    timer runs from the accept until a request's headers are complete, so it also cuts
    off a client trickling its headers; the body has ``BODY_TIMEOUT`` (``create_app``);
    no ``read_timeout``: a client waiting for its answer is silent, and it must not be
    cut off for that."""
    config = Config()
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.keep_alive_timeout = settings.http_idle_seconds
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    return config


class SendDeadlineStream:
    """A client socket whose sends give up when a ``SEND_CHUNK_BYTES`` piece has not
    left in ``seconds``. hypercorn sends under a shielded cancel scope with no timeout,
    so a client that never reads a response larger than the socket buffers (or
    pipelines requests and reads none of the answers) held its connection, its task and
    its buffers for ever. A deadline inside the shield still fires: the socket is
    closed and the send fails as if the client had gone, which is how hypercorn ends
    the connection.

    ``client_left`` is called when the client closes its side: hypercorn would otherwise
    hold the socket until the connection's idle timer ran out (``http_idle_seconds``
    after every client that leaves, which a storm of short connections turns into
    thousands of descriptors)."""

    def __init__(
        self, stream: trio.SocketStream, seconds: float, client_left: Callable[[], object]
    ) -> None:
        self._stream = stream
        self._seconds = seconds
        self._client_left = client_left
        self.socket = stream.socket  # hypercorn reads the addresses from it

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """In chunks, each with its own deadline: a slow client that keeps reading gets
        a large answer whole, however long it takes in all."""
        rest = memoryview(data)
        while True:
            chunk, rest = rest[:SEND_CHUNK_BYTES], rest[SEND_CHUNK_BYTES:]
            with trio.move_on_after(self._seconds) as waited:
                await self._stream.send_all(chunk)
            if waited.cancelled_caught:
                await self._stream.aclose()
                raise trio.BrokenResourceError(f"the client read nothing for {self._seconds} s")
            if not rest:
                return

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._stream.receive_some(max_bytes)
        if not data:
            self._client_left()
        return data

    async def send_eof(self) -> None:
        """Shielded: hypercorn closes a connection answered before its body was all read
        (``send_eof`` then ``aclose``) from inside the app's last send, and quart-trio
        cancels that task as soon as the close tells it the client is gone; cancelled at
        this checkpoint, ``aclose`` never ran and the socket stayed open for as long as
        the client kept sending (a slowloris on a refused body held it for ever)."""
        with trio.CancelScope(shield=True):
            await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def serve_http(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the operator API; ``task_status`` gets the bound port.

    This is ``hypercorn.trio.serve`` for one plain-TCP listener, with each client socket
    wrapped in a :class:`SendDeadlineStream`. Out of file descriptors, trio's listener
    logs the error and retries the accept every 100 ms: the server keeps serving the
    connections it has, and new ones wait in the listen backlog until one closes."""
    settings = services.settings
    config = hypercorn_config(settings)
    app = wrap_app(create_app(services), config.wsgi_max_body_size, "asgi")
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    state = ConnectionState(lifespan_state.copy())

    async def connection(stream: trio.SocketStream) -> None:
        """One client; ended as soon as the client has left (a request still running
        for it is cancelled, as hypercorn does when a client goes)."""
        with trio.CancelScope() as scope:
            timed = SendDeadlineStream(stream, settings.http_send_seconds, scope.cancel)
            await TCPServer(app, config, context, state, timed)

    async with trio.open_nursery() as nursery:
        await nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        listeners = await nursery.start(partial(trio.serve_tcp, connection, port, host=host))
        task_status.started(listeners[0].socket.getsockname()[1])
