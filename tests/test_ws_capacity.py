"""What one client can hold on the websocket port, through real sockets: connections per
client address (counted before the handshake is read, refused with a 429), and requests
in flight on one connection (one: a connection reads its next message only once the
last is answered)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import wrap_client_stream

from tests.conftest import PATIENCE, Harness, WsClient, running_harness
from transport.ops import OPS, Context


async def _from(source: str, port: int) -> trio.SocketStream:
    """A TCP connection to the server's 127.0.0.1 from another loopback address."""
    sock = trio.socket.socket()
    await sock.bind((source, 0))
    await sock.connect(("127.0.0.1", port))
    return trio.SocketStream(sock)


async def _until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    with trio.fail_after(PATIENCE):
        while chunk := await stream.receive_some(65536):
            received += chunk
    return received


async def test_an_address_past_its_cap_is_refused_before_its_handshake() -> None:
    """Cap 2 from 127.0.0.1: one silent socket and one websocket hold it, so a third
    socket gets a 429 TOO_MANY_CONNECTIONS without sending a byte; 127.0.0.2 is served
    meanwhile; once the websocket closes, 127.0.0.1 may open one again."""
    async with running_harness(ws_connections_per_address=2) as h:
        port = h.endpoints.ws_port
        user = await h.user()
        silent = await trio.open_tcp_stream("127.0.0.1", port)  # counted, no handshake
        async with h.connect(user) as first:
            async with await trio.open_tcp_stream("127.0.0.1", port) as extra:
                head, _, body = (await _until_closed(extra)).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 429 "), head
            assert json.loads(body)["error_code"] == "TOO_MANY_CONNECTIONS"
            await _served_from("127.0.0.2", h, user)
            assert (await first.call(1))["res"] == 1
        await trio.testing.wait_all_tasks_blocked()  # the server has seen it close
        async with h.connect(user) as again:
            assert (await again.call(1))["res"] == 1
        await silent.aclose()


async def _served_from(source: str, h: Harness, user: dict[str, Any]) -> None:
    url = h.ws_url(user)
    stream = await _from(source, h.endpoints.ws_port)
    async with trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, "127.0.0.1", url[url.index("/?") :])
        assert (await WsClient(ws, user["user_id"]).call(1))["res"] == 1
        await ws.aclose()


async def test_a_connection_has_one_request_in_flight(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty pings sent at once, each held by its handler until released: the server
    runs one handler at a time for the connection (the others wait unread in the
    socket), so a request that waits long (a bet in a pool with a delay) holds one task,
    not one per message."""
    running, most, release = 0, 0, trio.Event()
    ping = OPS[1]

    async def held(ctx: Context, msg: dict[str, Any]) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        await ping.handler(ctx, msg)

    monkeypatch.setitem(OPS, 1, replace(ping, handler=held))
    user = await harness.user()
    async with harness.connect(user) as ws:
        sent = [await ws.send(1) for _ in range(40)]
        await trio.testing.wait_all_tasks_blocked()
        assert (running, most) == (1, 1)
        release.set()
        answered = [(await ws.receive())["response_header"]["request_id"] for _ in sent]
    assert answered == sent and most == 1
