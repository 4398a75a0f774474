"""The websocket server: handshake authentication, the envelope, and one task pair per
connection (a reader that dispatches, a writer that drains a bounded outbox)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, WebSocketServer

from actors.registry import Authenticate, User
from actors.services import Services
from domain.codec import (
    DecodeError,
    decode,
    decode_envelope,
    encode,
    named_op,
    op_code,
    request_id_in,
)
from domain.errors import DomainError, ErrorCode
from domain.origins import origin_allowed
from transport.accept import serve_listeners
from transport.frames import text_frames
from transport.ops import OPS, Context
from transport.presenters import server_message
from transport.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CLOSE_SLOW = 1008  # policy violation: a client that does not read its messages
CLOSE_TOO_BIG = 1009
CLOSE_EXPIRED = 4001

#: The handshake `id`: ASCII digits only (`int()` reads other scripts' digits too).
MAX_ID_DIGITS = 18
#: Handshake refusals: HTTP status by error code (anything else: 503, we could not check).
REFUSAL_STATUS = {
    ErrorCode.AUTHENTICATION_FAILED: 401,
    ErrorCode.ORIGIN_REFUSED: 403,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
}


#: Scheduler passes a woken writer waits before it takes the outbox. A bet's 815 (pushed
#: by the wallet after its commit) and 356 (pushed by the op handler once the pool
#: answers) are queued two passes apart: with 3 they leave in one write. Measured (3
#: alternating runs each): socket writes per bet halved, bets/s +9 %, CPU per bet -4 %.
GATHER_PASSES = 3


class Outbox:
    """What is waiting to be sent to one client, bounded in bytes (trio's memory channels
    count messages, and one message may be 100 KB).

    ``put`` never waits: it says False when the message would take the outbox past its
    bound. A message is always taken into an empty outbox, so a reply larger than the
    bound still reaches a client that reads.
    """

    __slots__ = ("_closed", "_messages", "_ready", "max_bytes", "size")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        #: a list, not a deque: it is taken whole, and an empty deque costs 600 bytes a
        #: connection where an empty list costs 56
        self._messages: list[bytes] = []
        self._ready = trio.Event()  # set while there is something to send
        self._closed = False

    def put(self, data: bytes) -> bool:
        if self._closed:
            return True  # the connection is over: nothing will be sent, nothing to refuse
        if self._messages and self.size + len(data) > self.max_bytes:
            return False
        self._messages.append(data)
        self.size += len(data)
        self._ready.set()
        return True

    async def take_all(self) -> list[bytes]:
        """Every queued message, oldest first, waiting for one: the writer sends them in
        one write, not one syscall each. Woken by a first message, it lets the tasks
        that are already runnable go first (``GATHER_PASSES``), so that what they push
        joins the same write."""
        await self._ready.wait()
        for _ in range(GATHER_PASSES):
            await trio.lowlevel.checkpoint()
        messages, self._messages = self._messages, []
        self.size = 0
        self._ready = trio.Event()
        return messages

    def close(self) -> None:
        """Free what is queued and ignore later puts: the connection is gone."""
        self._closed = True
        self._messages.clear()
        self.size = 0


async def send_messages(ws: WebSocketConnection, messages: list[bytes]) -> None:
    """Send text messages (UTF-8 JSON) in one write of ready-made frames.

    This takes trio-websocket's own send path (its stream, its send lock, its abort on a
    broken stream) minus the framing, which it does one message per call. Anything else
    (a test double) gets ``send_message`` per message.
    """
    if not isinstance(ws, WebSocketConnection):
        for data in messages:
            await ws.send_message(data.decode())
        return
    if ws._close_reason:
        raise ConnectionClosed(ws._close_reason)
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(text_frames(messages))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            raise ConnectionClosed(ws._close_reason) from None


def utf8_size(message: str | bytes) -> int:
    """The size of a message on the wire, in bytes (trio-websocket counts characters)."""
    if isinstance(message, bytes) or message.isascii():
        return len(message)
    return len(message.encode())


class Connection:
    """One authenticated client. ``push`` never waits: a full outbox closes the client."""

    def __init__(self, ws: WebSocketConnection, user: User, services: Services) -> None:
        self.ws = ws
        self.user_id = user.id
        self.user_name = user.name
        self.services = services
        self.logged_on = False
        self._outbox = Outbox(services.settings.outbox_bytes)
        self._scope = trio.CancelScope()
        self.close_reason: tuple[int, str] | None = None

    @property
    def outbox_bytes(self) -> int:
        return self._outbox.size

    def push(self, data: bytes) -> None:
        if not self._outbox.put(data):
            self.drop(CLOSE_SLOW, f"too slow: over {self._outbox.max_bytes} bytes unread")

    def drop(self, code: int, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = (code, reason)
        self._scope.cancel()

    async def serve(self, expires_at: int) -> None:
        services = self.services
        services.hub.connect(self.user_id, self.push)
        services.metrics.connection_opened(self)
        try:
            with self._scope:
                self._scope.deadline = services.clock.deadline_for(expires_at)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write)
                    await self._read()
                    nursery.cancel_scope.cancel()
            if self._scope.cancelled_caught and self.close_reason is None:
                self.close_reason = (CLOSE_EXPIRED, "session expired")
        finally:
            services.hub.disconnect(self.user_id, self.push)
            services.metrics.connection_closed(self, self.close_reason)
            self._outbox.close()
            if self.close_reason is not None:
                with trio.move_on_after(2) as cleanup:
                    cleanup.shield = True
                    try:
                        await self.ws.aclose(*self.close_reason)
                    except Exception:  # already gone: nothing to tell the client
                        log.debug("close failed", exc_info=True)

    async def _write(self) -> None:
        try:
            while True:
                await send_messages(self.ws, await self._outbox.take_all())
        except ConnectionClosed:
            self._scope.cancel()  # the client is gone: stop reading for it too

    async def _read(self) -> None:
        settings = self.services.settings
        bucket = TokenBucket(settings.rate_per_second, settings.rate_burst)
        while True:
            try:
                raw = await self.ws.get_message()
            except ConnectionClosed:
                return
            if utf8_size(raw) > settings.max_frame_bytes:
                self.drop(CLOSE_TOO_BIG, f"message over {settings.max_frame_bytes} bytes")
                return
            if bucket.take():
                await self._dispatch(raw)
            else:
                op, request_id = _named(raw)
                self._error(
                    op,
                    request_id,
                    DomainError(
                        "RATE_LIMITED", f"More than {settings.rate_per_second:g} messages a second."
                    ),
                )

    async def _dispatch(self, raw: str | bytes) -> None:
        try:
            msg = decode(raw)
        except DecodeError as error:
            self._error(*_named(raw), DomainError("MALFORMED_MESSAGE", str(error)))
            return
        if not isinstance(msg, dict):
            self._error(
                None, None, DomainError("MALFORMED_MESSAGE", "The message must be a JSON object.")
            )
            return
        op = msg.get("op")
        try:
            request_id = request_id_in(msg.get("header"))
        except DomainError as error:
            self._error(named_op(op), None, error)
            return
        code = op_code(op)
        if code is None:
            self._error(
                named_op(op),
                request_id,
                DomainError("MALFORMED_MESSAGE", "op must be an integer op code.", parameter="op"),
            )
            return
        spec = OPS.get(code)
        if spec is None:
            self._error(code, request_id, DomainError("UNKNOWN_OP", f"There is no op {code}."))
            return
        ctx = Context(self, self.services, code, request_id)
        started = time.perf_counter()
        try:
            await spec.handler(ctx, msg)
            self.services.metrics.message(code, "ok", time.perf_counter() - started)
        except DomainError as error:
            self._error(code, request_id, error)
        except Exception:
            log.exception("op %s failed", code)
            self._error(
                code,
                request_id,
                DomainError("INTERNAL_ERROR", "The server failed to process this message."),
            )

    def _error(self, op: Any, request_id: Any, error: DomainError) -> None:
        self.services.metrics.message(op, error.code)
        fields = {"text": error.text, "error_code": error.code, "op": op, **error.extra}
        self.push(
            server_message(666, fields, t=self.services.clock.now_ms(), request_id=request_id)
        )


def _named(raw: str | bytes) -> tuple[Any, Any]:
    """(op, request_id) for a refusal of a message we will not decode in full (rate
    limited) or could not (not JSON, a repeated key): as much as can be read, else null."""
    op, header = decode_envelope(raw)
    try:
        request_id = request_id_in(header)
    except DomainError:
        request_id = None
    return named_op(op), request_id


def _host_of(request: WebSocketRequest) -> str | None:
    """The handshake's Host header. trio-websocket lists only the other headers; wsproto's
    request event keeps this one apart. None (so only the allow-list admits a browser)
    should that ever move: the check fails closed."""
    host = getattr(getattr(request, "_event", None), "host", None)
    return host if isinstance(host, str) else None


async def _refuse(request: WebSocketRequest, error: DomainError) -> None:
    """Refuse the handshake: 401 bad credentials, 403 a foreign page, 429 too many
    connections, 503 when we could not check."""
    log.info("handshake_refused", extra={"error_code": error.code})
    await request.reject(
        REFUSAL_STATUS.get(error.code, 503),
        extra_headers=[(b"content-type", b"application/json")],
        body=encode({"error_code": error.code, "text": error.text}),
    )


class _ContainedServer(WebSocketServer):
    """trio-websocket's server, except that an error in one connection (the library's own
    per-connection tasks included: a client that resets the socket at the wrong moment
    makes them raise ``ConnectionClosed``) ends that connection only, never the server,
    and that it accepts on our loop (``run``)."""

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        try:
            await super()._handle_connection(stream)
        except Exception:
            log.info("a websocket connection ended with an error", exc_info=True)

    async def run(
        self, *, task_status: trio.TaskStatus[WebSocketServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """trio-websocket's, on our accept loop: out of descriptors, one log line per
        episode rather than a traceback per try (``transport.accept``)."""
        async with trio.open_nursery() as nursery:
            listeners = list(self._listeners)
            await nursery.start(serve_listeners, self._handle_connection, listeners, "websocket")
            task_status.started(self)


async def serve_ws(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the websocket API; ``task_status`` gets the bound port."""
    settings = services.settings
    open_per_user: Counter[int] = Counter()
    services.metrics.name_ops({code: spec.name for code, spec in OPS.items()})

    async def admit(request: WebSocketRequest) -> None:
        headers = {name.lower(): value.decode("latin-1") for name, value in request.headers}
        origin = headers.get(b"origin")
        if not origin_allowed(
            origin, _host_of(request), services.http_port, settings.allowed_origins
        ):
            await _refuse(
                request,
                DomainError("ORIGIN_REFUSED", f"Pages from {origin[:200]!r} may not connect."),
            )
            return
        query = parse_qs(urlsplit(request.path).query)
        id_text = query.get("id", [""])[0]
        if not (id_text.isascii() and id_text.isdigit() and len(id_text) <= MAX_ID_DIGITS):
            await _refuse(request, DomainError("AUTHENTICATION_FAILED", "id must be a user id."))
            return
        check = Authenticate(int(id_text), query.get("n", [""])[0], query.get("h", [""])[0])
        try:
            user, expires_at = await services.ask_registry(check)
        except DomainError as error:
            await _refuse(request, error)
            return
        limit = settings.max_connections_per_user
        if open_per_user[user.id] >= limit:
            await _refuse(
                request,
                DomainError(
                    "TOO_MANY_CONNECTIONS", f"At most {limit} connections per user at once."
                ),
            )
            return
        open_per_user[user.id] += 1  # no await since the check: the count is exact
        try:
            ws = await request.accept()
            await Connection(ws, user, services).serve(expires_at)
        finally:
            open_per_user[user.id] -= 1
            if not open_per_user[user.id]:
                del open_per_user[user.id]

    async def handler(request: WebSocketRequest) -> None:
        """Whatever a client does, it ends at most its own connection."""
        try:
            await admit(request)
        except ConnectionClosed:
            log.debug("a websocket client left during the handshake")
        except Exception:
            log.exception("a websocket connection failed")

    listeners = await trio.open_tcp_listeners(port, host=host)
    server = _ContainedServer(
        handler,
        listeners,
        max_message_size=settings.max_frame_bytes,
        connect_timeout=settings.handshake_seconds,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        task_status.started(server.port)
