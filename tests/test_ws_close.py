"""The close handshake under an over-size frame (issue 18, finding 7): the server sends
its 1009 and keeps draining what the client is still sending, so the client's kernel
never sees a reset that would eat the close frame. A raw socket with wsproto as the
client: it sends 8 MiB in one frame while reading, as a browser or `websockets` does."""

from __future__ import annotations

from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from tests.conftest import Harness

BIG = 8 * 1024 * 1024
ROUNDS = 20


async def _close_code_after_sending(harness: Harness, url: str, size: int) -> int | None:
    """Send one text frame of ``size`` bytes, then read: the close code the server's
    close frame carries (None: the connection ended without one). Reading only once the
    send is over is the hard case: a server that closed with bytes still unread sends a
    reset, and the client's kernel drops what it had received."""
    parts = urlsplit(url)
    client = WSConnection(ConnectionType.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", harness.endpoints.ws_port)
    async with stream:
        await stream.send_all(client.send(Request(host=parts.netloc, target=f"/?{parts.query}")))
        code: int | None = None

        async def send_big() -> None:
            frame = client.send(TextMessage("x" * size))
            try:
                await stream.send_all(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server closed after its 1009: what matters is what we read

        if True:
            while code is None:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break  # a reset: the close frame, if any, is lost
                if not data:
                    break
                client.receive_data(data)
                for event in client.events():
                    if isinstance(event, AcceptConnection):
                        await send_big()
                    elif isinstance(event, CloseConnection):
                        code = event.code
    return code


async def test_an_8_mib_frame_always_gets_its_1009(harness: Harness) -> None:
    user = await harness.user()
    codes = [
        await _close_code_after_sending(harness, harness.ws_url(user), BIG) for _ in range(ROUNDS)
    ]
    assert codes == [1009] * ROUNDS
