"""The websocket server on wsproto and trio streams: handshake authentication, the
envelope, and one task per connection.

A connection's one task reads and dispatches. Sending needs no task of its own: a message
for a connection with nothing queued is sent at once with a non-blocking write of its
frame (a broadcast's frame is built once and shared by every subscriber); only what the
socket does not take is queued in the connection's outbox, bounded in bytes, and a writer
task lives while that queue drains. A client that lets the queue pass its bound is
dropped (1008), so a slow client never slows anyone else.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as Protocol
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

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
from transport.addresses import AddressCap, too_many_answer
from transport.frames import Frame, text_frame
from transport.ops import OPS, TYPED, Context, Op
from transport.presenters import server_message
from transport.ratelimit import TokenBucket

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001  # the server stops
CLOSE_SLOW = 1008  # policy violation: a client that does not read its messages
CLOSE_TOO_BIG = 1009
CLOSE_EXPIRED = 4001
#: After our close frame, how long we keep reading (and discarding) what the client is
#: still sending, waiting for its close frame: closing with bytes unread would reset the
#: connection and destroy our close frame before the client reads it (RFC 6455 §7.1.1).
CLOSE_DRAIN_SECONDS = 2.0
#: Bytes read from a socket at once (the handshake itself is bounded by h11: 16 KiB).
RECEIVE_BYTES = 16 * 1024

#: The handshake `id`: ASCII digits only (`int()` reads other scripts' digits too).
MAX_ID_DIGITS = 18
#: Handshake refusals: HTTP status by error code (anything else: 503, we could not check).
REFUSAL_STATUS = {
    ErrorCode.AUTHENTICATION_FAILED: 401,
    ErrorCode.ORIGIN_REFUSED: 403,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
}


#: Scheduler passes a woken writer waits before it takes the outbox, so that what the
#: tasks already runnable push joins the same write (a bet's 815 and 356 are pushed two
#: passes apart). Only for a connection whose socket pushed back: otherwise each push is
#: sent at once.
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

    @property
    def pending(self) -> bool:
        return bool(self._messages)

    def put(self, data: bytes) -> bool:
        """Queue ``data``; False when it would pass the bound (the caller drops the client)."""
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


def utf8_size(message: str | bytes) -> int:
    """The size of a message on the wire, in bytes."""
    if isinstance(message, bytes | bytearray) or message.isascii():
        return len(message)
    return len(message.encode())


def socket_fd(stream: trio.abc.Stream) -> int | None:
    """The descriptor of a socket stream, for non-blocking sends without a task switch;
    None for any other stream (it is written to through ``send_all`` only)."""
    if isinstance(stream, trio.SocketStream):
        return stream.socket.fileno()
    return None


class Connection:
    """One authenticated client. ``push`` never waits: it sends at once what the socket
    takes, queues the rest, and closes a client whose queue passes its bound (1008)."""

    def __init__(
        self, stream: trio.abc.Stream, protocol: Protocol, user: User, services: Services
    ) -> None:
        self.stream = stream
        self.protocol = protocol
        self.user_id = user.id
        self.user_name = user.name
        self.services = services
        self.logged_on = False
        self.close_reason: tuple[int, str] | None = None
        self._outbox = Outbox(services.settings.outbox_bytes)
        self._scope = trio.CancelScope()
        self._fd = socket_fd(stream)
        self._writers: trio.Nursery | None = None
        self._open = True  # pushes are taken (or ignored, once the connection ends)
        self._writing = False  # a writer task owns the sending side: pushes queue behind it
        self._lost = False  # the socket failed: the client is gone
        self._peer_closed = False  # the client sent its close frame; ours answered it
        self._parts: list[Any] = []  # the message being received, part by part
        self._size = 0

    @property
    def outbox_bytes(self) -> int:
        return self._outbox.size

    @property
    def peer_ip(self) -> str:
        """The client's IP address (the operator's ``/bets`` carries the bettor's); empty
        when the socket has no peer any more, or the stream is not a socket."""
        try:
            return str(self.stream.socket.getpeername()[0])  # type: ignore[attr-defined]
        except (AttributeError, OSError):
            return ""

    def push(self, data: bytes) -> None:
        """Send a message (a payload, or a ``Frame`` built once for many recipients)."""
        if not self._open:
            return
        frame = data if type(data) is Frame else text_frame(data)
        if self._writing:
            if not self._outbox.put(frame):
                self.drop(CLOSE_SLOW, f"too slow: over {self._outbox.max_bytes} bytes unread")
            return
        sent = self._send_now(frame)
        if sent < len(frame):
            self._outbox.put(frame[sent:] if sent else frame)  # an empty outbox takes it
            self._writing = True
            assert self._writers is not None  # pushes come only while serve() runs
            self._writers.start_soon(self._write)

    def _send_now(self, frame: bytes) -> int:
        """Write without waiting: the bytes the socket took (all of them when it failed:
        the client is gone, nothing is left to queue)."""
        if self._fd is None:
            return 0
        try:
            return os.write(self._fd, frame)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self._lose()
            return len(frame)

    async def _write(self) -> None:
        """Drain the outbox, then end: the next push sends directly again."""
        try:
            while self._outbox.pending:
                await self.stream.send_all(b"".join(await self._outbox.take_all()))
            self._writing = False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._lose()

    def _lose(self) -> None:
        self._lost = True
        self._open = False
        self._scope.cancel()

    def drop(self, code: int, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = (code, reason)
        self._scope.cancel()

    async def serve(self, expires_at: int) -> None:
        """Serve the client until it leaves, is dropped or its session ends (4001), then
        close as RFC 6455 asks (``_close``). Raises nothing a client can cause."""
        services = self.services
        services.hub.connect(self.user_id, self.push, self.drop)
        services.metrics.connection_opened(self)
        try:
            with self._scope:
                self._scope.deadline = services.clock.deadline_for(expires_at)
                async with trio.open_nursery() as writers:
                    self._writers = writers
                    try:
                        await self._read()
                    finally:
                        self._open = False  # no writer starts once the nursery may close
                        writers.cancel_scope.cancel()
            if self._scope.cancelled_caught and self.close_reason is None and not self._lost:
                self.close_reason = (CLOSE_EXPIRED, "session expired")
        finally:
            self._open = False
            services.hub.disconnect(self.user_id, self.push)
            services.metrics.connection_closed(self, self.close_reason)
            self._outbox.close()
            await self._close()

    async def _close(self) -> None:
        """Send our close frame (unless the socket is backed up or gone), read what the
        client still sends until its close frame (bounded in time), then close."""
        with trio.move_on_after(CLOSE_DRAIN_SECONDS) as cleanup:
            cleanup.shield = True
            try:
                if self.protocol.state is ConnectionState.OPEN and not (
                    self._writing or self._lost
                ):
                    code, reason = self.close_reason or (CLOSE_GOING_AWAY, "server stopping")
                    await self.stream.send_all(self.protocol.send(CloseConnection(code, reason)))
                    await self._drain()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.debug("the client left during the close", exc_info=True)
        await trio.aclose_forcefully(self.stream)

    async def _drain(self) -> None:
        """Read and discard until the client's close frame or its end of stream."""
        while self.protocol.state is not ConnectionState.CLOSED:
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data:
                return
            self.protocol.receive_data(data)
            for _ in self.protocol.events():
                pass

    async def _read(self) -> None:
        """Read frames and dispatch messages until the client closes or is dropped."""
        settings = self.services.settings
        bucket = TokenBucket(settings.rate_per_second, settings.rate_burst)
        while True:
            for event in self.protocol.events():
                message = self._received(event)
                if self._peer_closed or self.close_reason is not None:
                    return
                if message is None:
                    continue
                if bucket.take():
                    await self._dispatch(message)
                else:
                    self._refuse_flood(message)
            try:
                data = await self.stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._lost = True  # gone without a close frame
                return
            self.protocol.receive_data(data)

    def _received(self, event: object) -> str | bytes | None:
        """A whole message once its last part is in; pings and closes are answered here."""
        if isinstance(event, TextMessage | BytesMessage):
            return self._message_part(event)
        if isinstance(event, Ping):
            self.push(Frame(self.protocol.send(event.response())))
        elif isinstance(event, CloseConnection):
            if self.protocol.state is ConnectionState.REMOTE_CLOSING:
                self.push(Frame(self.protocol.send(event.response())))
                self._peer_closed = True
            else:  # wsproto could not parse a frame: its code says why (1002, 1007)
                self.drop(event.code, event.reason or "protocol error")
        return None

    def _message_part(self, event: TextMessage | BytesMessage) -> str | bytes | None:
        """Gather a fragmented message; over ``max_frame_bytes`` in all, close with 1009
        (its bytes are then read and discarded, never gathered)."""
        limit = self.services.settings.max_frame_bytes
        part = bytes(event.data) if isinstance(event.data, bytearray) else event.data
        self._size += utf8_size(part)
        if self._size > limit:
            self.drop(CLOSE_TOO_BIG, f"message over {limit} bytes")
            self._parts, self._size = [], 0
            return None
        if not event.message_finished:
            self._parts.append(part)
            return None
        parts, self._parts, self._size = self._parts, [], 0
        if not parts:
            return part
        parts.append(part)
        return b"".join(parts) if isinstance(part, bytes) else "".join(parts)

    def _refuse_flood(self, raw: str | bytes) -> None:
        settings = self.services.settings
        error = DomainError(
            "RATE_LIMITED", f"More than {settings.rate_per_second:g} messages a second."
        )
        self._error(*_named(raw), error)

    async def _dispatch(self, raw: str | bytes) -> None:
        for spec in TYPED:  # a bet in its usual shape, read without the general decode
            body = spec.read(raw)
            if body is not None:
                await self._handle(spec, body.request_id, body)
                return
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
        await self._handle(spec, request_id, msg)

    async def _handle(self, spec: Op, request_id: Any, msg: Any) -> None:
        """Run the op's handler; its refusal (or a failure) is answered as a 666."""
        code = spec.code
        ctx = Context(self, self.services, code, request_id, OPS)
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


async def read_request(
    stream: trio.abc.Stream, seconds: float
) -> tuple[WSConnection, Request] | None:
    """The client's upgrade request, read within ``seconds`` (h11 bounds its size); None
    when the client left, was too slow, or sent no websocket upgrade (then it got a 400)."""
    ws = WSConnection(ConnectionType.SERVER)
    with trio.move_on_after(seconds):
        while True:
            data = await stream.receive_some(RECEIVE_BYTES)
            if not data:
                return None
            try:
                ws.receive_data(data)
            except RemoteProtocolError as error:
                await stream.send_all(ws.send(error.event_hint or RejectConnection()))
                return None
            for event in ws.events():
                if isinstance(event, Request):
                    return ws, event
    return None


async def refuse(stream: trio.abc.Stream, ws: WSConnection, error: DomainError) -> None:
    """Refuse the handshake with a JSON body: 401 bad credentials, 403 a foreign page, 429
    too many connections, 503 when we could not check."""
    log.info("handshake_refused", extra={"error_code": error.code})
    body = encode({"error_code": error.code, "text": error.text})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    status = REFUSAL_STATUS.get(error.code, 503)
    answer = ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
    await stream.send_all(answer + ws.send(RejectData(data=body)))


def too_many_per_address(limit: int) -> bytes:
    """The whole answer to a connection past ``ws_connections_per_address``: a 429 with
    the handshake refusals' JSON body, sent before the handshake is read."""
    text = f"At most {limit} websocket connections per client address at once."
    return too_many_answer({"error_code": "TOO_MANY_CONNECTIONS", "text": text})


class Admission:
    """Who may open a websocket: the cap per client address (before the handshake is
    read), the origin check, the id/n/h credentials, and the cap on connections per user
    (counted here, exact since no await separates check and count)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.open_per_user: Counter[int] = Counter()
        limit = services.settings.ws_connections_per_address
        self.per_address = AddressCap(limit, too_many_per_address(limit))

    async def handle(self, stream: trio.SocketStream) -> None:
        """One connection, from its address check to its close: whatever the client
        does, it ends at most this connection."""
        try:
            await self.per_address.serve(stream, self.handshake)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("a websocket client left during the handshake")
        except Exception:
            log.exception("a websocket connection failed")

    async def handshake(self, stream: trio.abc.Stream) -> None:
        """Read the upgrade request, then admit or refuse the client."""
        handshake = await read_request(stream, self.services.settings.handshake_seconds)
        if handshake is not None:
            await self.admit(stream, *handshake)

    async def admit(self, stream: trio.abc.Stream, ws: WSConnection, request: Request) -> None:
        """Accept and serve the connection, or refuse it with the reason as JSON."""
        try:
            user, expires_at = await self.authenticate(request)
            limit = self.services.settings.max_connections_per_user
            if self.open_per_user[user.id] >= limit:
                raise DomainError(
                    "TOO_MANY_CONNECTIONS", f"At most {limit} connections per user at once."
                )
        except DomainError as error:
            await refuse(stream, ws, error)
            return
        self.open_per_user[user.id] += 1  # no await since the check: the count is exact
        try:
            await stream.send_all(ws.send(AcceptConnection()))
            assert ws.connection is not None  # accepted: the frame protocol from here on
            connection = Connection(stream, ws.connection, user, self.services)
            del ws, request  # the handshake's objects are not kept for the connection's life
            await connection.serve(expires_at)
        finally:
            self.open_per_user[user.id] -= 1
            if not self.open_per_user[user.id]:
                del self.open_per_user[user.id]

    async def authenticate(self, request: Request) -> tuple[User, int]:
        """The user the handshake's credentials name, and when its session expires.
        Raises DomainError: ORIGIN_REFUSED, AUTHENTICATION_FAILED, or what the registry
        raised (UNAVAILABLE, REQUEST_TIMED_OUT...)."""
        services = self.services
        headers = {name.lower(): value for name, value in request.extra_headers}
        origin = headers[b"origin"].decode("latin-1") if b"origin" in headers else None
        allowed = services.settings.allowed_origins
        if not origin_allowed(origin, request.host, services.http_port, allowed):
            raise DomainError("ORIGIN_REFUSED", f"Pages from {origin[:200]!r} may not connect.")
        query = parse_qs(urlsplit(request.target).query)
        id_text = query.get("id", [""])[0]
        if not (id_text.isascii() and id_text.isdigit() and len(id_text) <= MAX_ID_DIGITS):
            raise DomainError("AUTHENTICATION_FAILED", "id must be a user id.")
        check = Authenticate(int(id_text), query.get("n", [""])[0], query.get("h", [""])[0])
        return await services.ask_registry(check)


async def serve_ws(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the websocket API; ``task_status`` gets the bound port."""
    services.metrics.name_ops({code: spec.name for code, spec in OPS.items()})
    listeners = await trio.open_tcp_listeners(port, host=host)
    admission = Admission(services)
    async with trio.open_nursery() as nursery:
        # our accept loop: out of descriptors, one log line an episode, not a traceback a try
        await nursery.start(serve_listeners, admission.handle, listeners, "websocket")
        task_status.started(listeners[0].socket.getsockname()[1])
