"""One operator HTTP connection, from accept to close (docs/decisions.md, "Operator HTTP
connections").

hypercorn's HTTP/1.1 protocol (``H11Protocol``) driven by a loop of ours in place of
hypercorn's trio ``TCPServer``: it reads, hands the bytes to the protocol and sends
what the protocol gives back, as ``TCPServer`` does for a plain socket, and differs in
three ways:

- **HTTP/1.1 only.** An ``Upgrade: h2c`` is ignored (the request is served as HTTP/1.1,
  as RFC 9110 §7.8 allows); the HTTP/2 connection preface is refused with HTTP/2's own
  words, a GOAWAY ``HTTP_1_1_REQUIRED``, and the connection closed.
- **An idle watchdog of ours.** hypercorn re-arms its idle timer from the task of the
  request just answered, which quart-trio has cancelled by then: the timer stayed off
  and a kept-alive connection was held for ever. Here one task per connection closes it
  once no response is owed and nothing has been sent for ``http_idle_seconds``,
  whatever happened on it before.
- **Sends with a deadline** (:class:`SendDeadlineStream`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr

#: A response goes out in pieces this large, each given ``http_send_seconds`` to leave:
#: a client is cut off only when it takes less than this in that time.
SEND_CHUNK_BYTES = 16 * 1024
#: Most bytes one read takes from a client (hypercorn's figure).
MAX_RECV = 64 * 1024
#: A refused connection is closed after the client has closed its side, or after this
#: long, or after this many of its bytes read and dropped, whichever comes first.
LINGER_SECONDS = 1.0
LINGER_BYTES = 64 * 1024
#: HTTP/2's refusal of a client that must use HTTP/1.1 (RFC 9113 §3.4 and §7): the
#: server's connection preface (an empty SETTINGS frame), then GOAWAY with last stream
#: 0 and error HTTP_1_1_REQUIRED (0xd). Frame header: length (3 bytes), type, flags,
#: stream 0.
HTTP2_REFUSAL = (
    bytes.fromhex("000000040000000000")
    + bytes.fromhex("000008070000000000")
    + bytes.fromhex("000000000000000d")
)
#: h11's states of our side while a response is owed to the client.
ANSWERING = frozenset({h11.SEND_RESPONSE, h11.SEND_BODY})


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
    thousands of descriptors). ``last_sent`` is when a piece last left (or when the
    stream was made): the idle watchdog counts from it."""

    def __init__(
        self, stream: trio.SocketStream, seconds: float, client_left: Callable[[], object]
    ) -> None:
        self._stream = stream
        self._seconds = seconds
        self._client_left = client_left
        self.socket = stream.socket  # hypercorn reads the addresses from it
        self.last_sent = trio.current_time()

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
            self.last_sent = trio.current_time()
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


class HTTP2Refused(Exception):
    """The client opened with the HTTP/2 connection preface."""


class Http11Protocol(H11Protocol):
    """hypercorn's HTTP/1.1 protocol without its two ways into HTTP/2."""

    async def _check_protocol(self, event: h11.Request) -> None:
        """Raises HTTP2Refused on the HTTP/2 preface (``PRI * HTTP/2.0``); an
        ``Upgrade: h2c`` header is left unanswered, so the request is served as
        HTTP/1.1 (hypercorn would answer 101 and switch)."""
        if event.method == b"PRI" and event.target == b"*" and event.http_version == b"2.0":
            raise HTTP2Refused


async def close_after(stream: trio.SocketStream, data: bytes) -> None:
    """Send ``data``, end our side, then read and drop what the client still sends until
    it closes (``LINGER_SECONDS`` and ``LINGER_BYTES`` at most) before closing: a socket
    closed with unread bytes is reset, and the reset can destroy the answer before the
    client has read it."""
    with trio.move_on_after(LINGER_SECONDS):
        try:
            await stream.send_all(data)
            await stream.send_eof()
            dropped = 0
            while dropped < LINGER_BYTES:
                chunk = await stream.receive_some(MAX_RECV)
                if not chunk:
                    break
                dropped += len(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    await stream.aclose()


class HttpConnection:
    """One client connection, HTTP/1.1 only, closed when idle (module docstring)."""

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        lifespan_state: LifespanState,
        stream: trio.SocketStream,
        *,
        idle_seconds: float,
        send_seconds: float,
    ) -> None:
        self._app = app
        self._config = config
        self._state = ConnectionState(lifespan_state.copy())
        self._socket_stream = stream
        self._scope = trio.CancelScope()
        self._stream = SendDeadlineStream(stream, send_seconds, self._scope.cancel)
        self._idle_seconds = idle_seconds
        self._send_lock = trio.Lock()
        self._protocol: Http11Protocol | None = None

    async def run(self) -> None:
        """Serve the connection until the client leaves, it is idle, or it is refused;
        the socket is closed on return."""
        socket = self._stream.socket
        try:
            client = parse_socket_addr(socket.family, socket.getpeername())
            server = parse_socket_addr(socket.family, socket.getsockname())
        except OSError:  # the client has reset the connection already
            await self._close()
            return
        with self._scope:
            try:
                async with trio.open_nursery() as watch:
                    watch.start_soon(self._close_when_idle)
                    async with TaskGroup() as tasks:
                        self._protocol = Http11Protocol(
                            self._app, self._config, WorkerContext(None), tasks,
                            self._state, False, client, server, self._send,
                        )  # fmt: skip
                        await self._read()
                    watch.cancel_scope.cancel()
            finally:
                await self._close()

    async def _read(self) -> None:
        """Bytes in, to the protocol, until the client or the server ends the stream."""
        assert self._protocol is not None
        while True:
            try:
                data = await self._stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            try:
                await self._protocol.handle(RawData(bytes(data)))
            except HTTP2Refused:
                await close_after(self._socket_stream, HTTP2_REFUSAL)
                break
            if not data:
                break
        await self._protocol.handle(Closed())

    async def _send(self, event: Event) -> None:
        """What the protocol sends: bytes (shielded, as hypercorn's: a response is never
        cut by its request's cancellation; the stream's deadline still ends it), or a
        close. hypercorn's ``Updated`` (its idle timer) is ignored: the watchdog
        replaces it."""
        assert self._protocol is not None
        if isinstance(event, RawData):
            async with self._send_lock:
                try:
                    with trio.CancelScope(shield=True):
                        await self._stream.send_all(event.data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._protocol.handle(Closed())
        elif isinstance(event, Closed):
            await self._close()
            await self._protocol.handle(Closed())

    async def _close(self) -> None:
        """Our side ended, then the socket closed; shielded (it runs on the way out of
        a cancelled connection), and quick: neither step waits on the client."""
        with trio.CancelScope(shield=True):
            # the client is gone, or a send is stuck: the close ends it
            with suppress(
                trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError
            ):
                await self._stream.send_eof()
            await self._stream.aclose()

    async def _close_when_idle(self) -> None:
        """Ends the connection once no response is owed and nothing has left for
        ``idle_seconds``: a kept-alive client between requests, one still sending its
        headers, one after a refusal. A request being answered (however long the app
        takes) is not idle; its body and its sends have deadlines of their own."""
        deadline = trio.current_time() + self._idle_seconds
        while True:
            await trio.sleep_until(deadline)
            if self._answering():
                deadline = trio.current_time() + self._idle_seconds
                continue
            deadline = self._stream.last_sent + self._idle_seconds
            if deadline <= trio.current_time():
                self._scope.cancel()
                return

    def _answering(self) -> bool:
        connection = self._protocol.connection if self._protocol is not None else None
        return isinstance(connection, h11.Connection) and connection.our_state in ANSWERING
