"""The close handshake under an over-size frame (issue 18, finding 7): the server sends
its 1009 and keeps draining what the client is still sending, so the client's kernel
never sees a reset that would destroy the close frame. A raw socket with wsproto as the
client, which sends 8 MiB in one frame and reads only once its send is over."""

from __future__ import annotations

import contextlib
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from tests.conftest import Harness

BIG = 8 * 1024 * 1024
ROUNDS = 20


async def close_code_after_sending(port: int, url: str, size: int) -> int | None:
    """Send one text frame of ``size`` bytes, then read: the code of the server's close
    frame (None: the connection ended without one). Reading only once the send is over is
    the hard case: a server that closes with bytes unread sends a reset, and the client's
    kernel drops what it had received."""
    parts = urlsplit(url)
    client = WSConnection(ConnectionType.CLIENT)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(client.send(Request(host=parts.netloc, target=f"/?{parts.query}")))
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return None  # a reset: the close frame, if any, is lost
            if not data:
                return None
            client.receive_data(data)
            for event in client.events():
                if isinstance(event, AcceptConnection):
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await stream.send_all(client.send(TextMessage("x" * size)))
                elif isinstance(event, CloseConnection):
                    return event.code


async def test_an_8_mib_frame_always_gets_its_1009(harness: Harness) -> None:
    user = await harness.user()
    port = harness.endpoints.ws_port
    codes = [await close_code_after_sending(port, harness.ws_url(user), BIG) for _ in range(ROUNDS)]
    assert codes == [1009] * ROUNDS
