"""Hostile clients of the HTTP transport (``transport/http.py``): keep-alive, pipelining,
half-closes, slow readers, clients that leave mid-deposit (docs/decisions.md)."""

from __future__ import annotations

import secrets
import socket

import trio
import trio.testing

from transport.http import SendDeadlineStream

SEND_SECONDS = 10.0


async def test_a_slow_but_reading_client_gets_a_large_response_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The send deadline is on progress, not on the whole response: a client that takes
    a chunk every few seconds is never cut off, however long the answer takes in all
    (it was: one deadline over one ``send_all`` of the whole body)."""
    left = trio.Event()
    server_sock, client_sock = trio.socket.socketpair()
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # no slack to fill
    server = SendDeadlineStream(trio.SocketStream(server_sock), SEND_SECONDS, left.set)
    client = trio.SocketStream(client_sock)
    body = secrets.token_bytes(2 * 1024 * 1024)
    received = bytearray()

    async def slow_reader() -> None:
        while len(received) < len(body):
            received.extend(await client.receive_some(8 * 1024))
            await trio.sleep(SEND_SECONDS / 4)  # 32 KiB per deadline: a slow modem's pace

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_reader)
        await server.send_all(body)
    assert trio.current_time() > 4 * SEND_SECONDS  # it took far longer than one deadline
    assert bytes(received) == body
    await server.aclose()
    await client.aclose()


async def test_a_client_that_reads_nothing_is_still_cut_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The other side of the progress deadline: no byte taken in ``SEND_SECONDS``."""
    server_sock, client_sock = trio.socket.socketpair()
    server = SendDeadlineStream(trio.SocketStream(server_sock), SEND_SECONDS, lambda: None)
    try:
        await server.send_all(secrets.token_bytes(16 * 1024 * 1024))
    except trio.BrokenResourceError:
        pass
    else:
        raise AssertionError("a never-reading client was sent 16 MiB")
    assert trio.current_time() < 2 * SEND_SECONDS
    client_sock.close()
