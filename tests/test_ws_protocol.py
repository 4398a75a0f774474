"""The websocket protocol the server speaks with wsproto on trio streams, through a raw
socket and wsproto as the client: fragmented messages, ping/pong, a clean close from the
client, a session that expires (4001); and sends that need no task: a push goes straight
to the socket when nothing is queued before it."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection as WsProtocol
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from actors.registry import User
from domain.codec import decode, encode
from tests.conftest import PATIENCE, ActorHarness, Harness
from transport.frames import text_frame
from transport.websocket import Connection


class RawClient:
    """A websocket client that shows every event wsproto reads."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws: WSConnection | WsProtocol = WSConnection(ConnectionType.CLIENT)

    @classmethod
    async def open(cls, port: int, url: str) -> RawClient:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port))
        parts = urlsplit(url)
        await client.send(Request(host=parts.netloc, target=f"/?{parts.query}"))
        assert isinstance(await client.next_event(), AcceptConnection)
        return client

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def next_event(self) -> Event | None:
        """The next event; None once the server has closed the stream."""
        with trio.fail_after(PATIENCE):
            while True:
                for event in self.ws.events():
                    return event
                data = await self.stream.receive_some(65536)
                if not data:
                    return None
                self.ws.receive_data(data)


def request(op: int, request_id: str) -> str:
    return encode({"header": {"request_id": request_id}, "op": op}).decode()


async def test_a_fragmented_message_is_answered_whole(harness: Harness) -> None:
    user = await harness.user()
    client = await RawClient.open(harness.endpoints.ws_port, harness.ws_url(user))
    text = request(1, "frag")
    await client.send(TextMessage(text[:10], message_finished=False))
    await client.send(TextMessage(text[10:]))
    reply = await client.next_event()
    assert isinstance(reply, TextMessage)
    assert decode(reply.data)["response_header"]["request_id"] == "frag"


async def test_a_ping_gets_its_pong(harness: Harness) -> None:
    user = await harness.user()
    client = await RawClient.open(harness.endpoints.ws_port, harness.ws_url(user))
    await client.send(Ping(b"are you there"))
    pong = await client.next_event()
    assert isinstance(pong, Pong) and pong.payload == b"are you there"


async def test_a_close_from_the_client_is_answered_then_the_stream_ends(
    harness: Harness,
) -> None:
    user = await harness.user()
    client = await RawClient.open(harness.endpoints.ws_port, harness.ws_url(user))
    await client.send(CloseConnection(1000, "bye"))
    answer = await client.next_event()
    assert isinstance(answer, CloseConnection) and answer.code == 1000
    assert await client.next_event() is None  # the server closes the TCP connection


async def test_an_expired_session_is_closed_with_4001(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    server_side, client_side = trio.socket.socketpair()
    conn = _connection(trio.SocketStream(server_side), actors.services)
    client = RawClient(trio.SocketStream(client_side))
    client.ws = WsProtocol(ConnectionType.CLIENT)  # past the handshake: frames only
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.serve, actors.services.clock.now_ms() + 10_000)
        closed = await client.next_event()
    assert isinstance(closed, CloseConnection) and closed.code == 4001


def _connection(stream: trio.SocketStream, services: Any) -> Connection:
    return Connection(stream, WsProtocol(ConnectionType.SERVER), User(1, "u", []), services)


async def test_a_push_reaches_the_socket_without_a_task_switch(actors: ActorHarness) -> None:
    server_side, client_side = trio.socket.socketpair()
    conn = _connection(trio.SocketStream(server_side), actors.services)
    peer = socket.socket(fileno=client_side.detach())
    peer.setblocking(False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.serve, actors.services.clock.now_ms() + 10**9)
        await trio.testing.wait_all_tasks_blocked()
        frame = text_frame(b'{"res": 360}')
        conn.push(frame)  # no await between the push and the read: no task ran
        assert peer.recv(100) == frame
        conn.push(b'{"res": 1}')  # a payload is framed by the connection
        assert peer.recv(100) == text_frame(b'{"res": 1}')
        conn.drop(1000, "done")
    peer.close()
