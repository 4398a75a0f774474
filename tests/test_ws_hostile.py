"""A hostile client against the websocket transport, through real sockets: resets in the
middle of the handshake, any JSON value where the envelope wants an op or a request id,
any depth, repeated keys, floods, bytes over the frame limit, too many connections, and
an outbox bounded in bytes. None of it may end the server or another connection."""

from __future__ import annotations

import json
import secrets
import socket
import struct
from base64 import b64encode
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
from wsproto import ConnectionType
from wsproto.connection import Connection as WsProtocol

from actors.registry import User
from domain.codec import decode, encode, named_op, op_code
from tests.conftest import ActorHarness, Harness, running_harness
from transport.websocket import CLOSE_SLOW, Connection, Outbox

# -- resets during the handshake --------------------------------------------------------


def _handshake(port: int, path: str) -> bytes:
    key = b64encode(secrets.token_bytes(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _reset(sock: trio.socket.SocketType) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP reset, not a polite FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def _still_serves(harness: Harness) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        assert (await ws.call(1))["res"] == 1


@pytest.mark.parametrize("credentials", ["bad digest", "bad id", "good"])
async def test_a_reset_before_the_upgrade_ends_that_connection_only(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, credentials: str
) -> None:
    """The reset lands while the server is deciding (the registry is held until then), so
    its refusal (401) or its acceptance (101) is written to a socket that is gone."""
    user = await harness.user()
    bystander = await harness.user()
    url = harness.ws_url(user)
    path = url[url.index("/?") :]
    if credentials == "bad digest":
        path = path.replace("&h=", "&h=00")
    elif credentials == "bad id":
        path = path.replace("?id=", "?id=%C2%B2")  # "²": isdigit() but not ASCII
    asked, answer = trio.Event(), trio.Event()
    ask_registry = harness.services.ask_registry

    async def held(body: Any) -> Any:
        asked.set()
        await answer.wait()
        return await ask_registry(body)

    async with harness.connect(bystander) as other:
        monkeypatch.setattr(harness.services, "ask_registry", held)
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", harness.endpoints.ws_port))
        await sock.send(_handshake(harness.endpoints.ws_port, path))
        if credentials != "bad id":  # a bad id is refused without asking the registry
            await asked.wait()
        _reset(sock)
        answer.set()
        monkeypatch.setattr(harness.services, "ask_registry", ask_registry)
        await trio.testing.wait_all_tasks_blocked()
        assert (await other.call(1))["res"] == 1  # the open connection is untouched
    await _still_serves(harness)


@pytest.mark.parametrize(
    "request_text", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01 no http"]
)
async def test_a_bad_handshake_then_a_reset_ends_that_connection_only(
    harness: Harness, request_text: bytes
) -> None:
    """trio-websocket's own reader task answers a handshake that is not a websocket
    upgrade with a 400, which fails on the reset socket: that error too must stay inside
    the one connection."""
    for _ in range(20):
        sock = trio.socket.socket()
        await sock.connect(("127.0.0.1", harness.endpoints.ws_port))
        await sock.send(request_text)
        _reset(sock)
    await trio.testing.wait_all_tasks_blocked()
    await _still_serves(harness)


# -- the envelope: any JSON value, any depth, repeated keys -----------------------------

DEEP = "[" * 30_000 + "]" * 30_000
MALFORMED = "MALFORMED_MESSAGE"


def frame(op: str, request_id: str = '"a"', rest: str = "") -> str:
    """A request with this JSON text as op and as request_id, then ``rest``."""
    return f'{{"header": {{"request_id": {request_id}}}, "op": {op}{rest}}}'


@pytest.mark.parametrize(
    ("raw", "code", "op", "request_id"),
    [
        (frame('"\u00b2"'), MALFORMED, "\u00b2", "a"),  # a digit to isdigit(), not to int()
        (frame('"\uff11"'), MALFORMED, "\uff11", "a"),
        (frame('"' + "9" * 5000 + '"'), MALFORMED, None, "a"),
        (frame("9" * 5000), MALFORMED, None, None),  # msgspec: integer out of range
        (frame("1.5"), MALFORMED, 1.5, "a"),
        (frame("true"), MALFORMED, True, "a"),
        (frame("[1]"), MALFORMED, None, "a"),
        (frame('{"op": 1}'), MALFORMED, None, "a"),
        (frame("-1"), "UNKNOWN_OP", -1, "a"),
        (frame(str(2**70)), "UNKNOWN_OP", 2**70, "a"),
        (frame(DEEP[:2000] + DEEP[-2000:]), MALFORMED, None, None),
        (DEEP, MALFORMED, None, None),
        (frame("1", DEEP[:400] + DEEP[-400:]), MALFORMED, 1, None),
        (frame("1", '{"a": 1}'), MALFORMED, 1, None),
        (frame("1", '"' + "r" * 300 + '"'), MALFORMED, 1, None),
        (frame("1", '"d"', ', "op": 1'), MALFORMED, 1, "d"),
        (frame("1", '"d"', ', "x": [{"a": 1, "a": 2}]'), MALFORMED, 1, "d"),
        (frame("1", '"d"', ', "x": 1, "\\u0078": 1'), MALFORMED, 1, "d"),
        (frame("1", '"u"', ', "x": "\xff"').encode("latin-1"), MALFORMED, 1, "u"),
    ],
)
async def test_any_envelope_gets_a_666_naming_op_and_request_id_and_the_connection_stays(
    harness: Harness, raw: str | bytes, code: str, op: Any, request_id: Any
) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        await ws.send_raw(raw)
        error = await ws.expect(666)
        assert (error["error_code"], error["op"]) == (code, op), error
        assert error["response_header"].get("request_id") == request_id
        assert error["text"]
        assert (await ws.call(1))["res"] == 1


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.text(max_size=12)
    | st.sampled_from(["1", " 2 ", "\u00b2", "\u0661", "9" * 400, "1e3", "-0", "0x1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
HEADERS = st.one_of(
    st.just({}),
    JSON,
    st.fixed_dictionaries({"request_id": JSON}),
    st.fixed_dictionaries({"request_id": st.text(max_size=20) | st.integers()}),
)


async def _one_answer_each(envelopes: list[tuple[Any, Any]]) -> None:
    async with running_harness() as harness:
        user = await harness.user()
        async with harness.connect(user) as ws:
            for op, header in envelopes:
                await ws.send_raw(encode({"header": header, "op": op}))
                sentinel = await ws.send(1)
                answers = []
                while True:
                    message = decode(await ws.ws.get_message())
                    if message["response_header"].get("request_id") == sentinel:
                        break
                    answers.append(message)
                assert len(answers) == 1, answers
                answer = answers[0]
                if answer["res"] == 666:
                    assert answer["op"] in (named_op(op), op_code(op)), answer


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(JSON, HEADERS), min_size=1, max_size=12))
def test_any_json_value_as_op_or_header_gets_exactly_one_answer(
    envelopes: list[tuple[Any, Any]],
) -> None:
    trio.run(_one_answer_each, envelopes)


# -- floods ---------------------------------------------------------------------------


async def test_a_rate_limited_refusal_names_the_op_and_echoes_the_request_id(
    harness: Harness,
) -> None:
    harness.services.settings.rate_burst = 1
    harness.services.settings.rate_per_second = 1e-9  # no refill while the test runs
    user = await harness.user()
    async with harness.connect(user) as ws:
        assert (await ws.call(1))["res"] == 1  # the one token
        limited = [await ws.send(op) for op in (1, 392, 12345)]
        await ws.send_raw('{"header": {"request_id": "s"}, "op": "392"}')
        await ws.send_raw("not json")
        await ws.send_raw('{"header": {"request_id": "dup"}, "op": 1, "op": 2}')
        replies = [await ws.receive() for _ in range(6)]
    assert {r["error_code"] for r in replies} == {"RATE_LIMITED"}
    named = [(r["response_header"].get("request_id"), r["op"]) for r in replies]
    assert named == [
        (limited[0], 1),
        (limited[1], 392),
        (limited[2], 12345),
        ("s", "392"),
        (None, None),  # not JSON: nothing to name
        ("dup", 2),  # read cheaply (last key wins), not judged: the flood is the refusal
    ]


# -- the frame limit is in bytes ------------------------------------------------------


@pytest.mark.parametrize("pad", ["x", "\u00e9", "\U0001f600"])
async def test_the_frame_limit_counts_utf8_bytes(harness: Harness, pad: str) -> None:
    limit = harness.services.settings.max_frame_bytes
    user = await harness.user()
    frame = '{"op": 1, "header": {"request_id": "big"}, "pad": "'
    room = limit - len((frame + '"}').encode())
    fits = frame + pad * (room // len(pad.encode())) + "x" * (room % len(pad.encode())) + '"}'
    assert len(fits.encode()) == limit
    async with harness.connect(user) as ws:
        await ws.send_raw(fits)
        assert (await ws.expect(1, request_id="big"))["res"] == 1
        over = frame + pad * (room // len(pad.encode()) + 1) + '"}'
        await ws.send_raw(over)
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
    assert caught.value.reason.code == 1009


# -- memory: connections per user, outbox in bytes ------------------------------------


async def test_connections_per_user_are_capped_with_a_429(harness: Harness) -> None:
    harness.services.settings.max_connections_per_user = 2
    user = await harness.user()
    async with harness.connect(user) as first, harness.connect(user):
        with pytest.raises(ConnectionRejected) as caught:
            async with open_websocket_url(harness.ws_url(user)):
                pass
        assert caught.value.status_code == 429
        assert json.loads(caught.value.body or b"")["error_code"] == "TOO_MANY_CONNECTIONS"
        other = await harness.user()  # the cap is per user
        async with harness.connect(other) as ws:
            assert (await ws.call(1))["res"] == 1
        assert (await first.call(1))["res"] == 1
    await trio.testing.wait_all_tasks_blocked()  # the server has seen both close
    async with harness.connect(user) as again:
        assert (await again.call(1))["res"] == 1


async def test_the_outbox_counts_bytes_and_wakes_its_reader() -> None:
    outbox = Outbox(max_bytes=10)
    assert outbox.put(b"x" * 25)  # an empty outbox takes one message of any size
    assert not outbox.put(b"y")
    assert await outbox.take_all() == [b"x" * 25]
    assert outbox.put(b"a" * 6) and outbox.put(b"b" * 4)
    assert not outbox.put(b"c")
    assert outbox.size == 10
    assert await outbox.take_all() == [b"a" * 6, b"b" * 4]  # all at once: one write
    got: list[bytes] = []

    async def reader() -> None:
        got.extend(await outbox.take_all())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert outbox.put(b"late")
    assert got == [b"late"] and outbox.size == 0
    outbox.close()
    assert outbox.put(b"after") and outbox.size == 0  # a closed outbox keeps nothing


class _StuckStream(trio.abc.Stream):
    """A stream whose peer never reads: every send blocks forever."""

    closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.sleep_forever()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.sleep_forever()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        return b""

    async def aclose(self) -> None:
        self.closed = True


async def test_a_client_that_does_not_read_is_dropped_at_the_byte_bound(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    actors.services.settings.outbox_bytes = 1000
    stream = _StuckStream()
    protocol = WsProtocol(ConnectionType.SERVER)
    conn = Connection(stream, protocol, User(1, "slow", []), actors.services)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.serve, actors.services.clock.now_ms() + 10**9)
        await trio.sleep(1)
        conn.push(b"0" * 400)  # taken by the writer, which then blocks on the socket
        await trio.testing.wait_all_tasks_blocked()
        conn.push(b"1" * 400)
        conn.push(b"2" * 400)
        assert conn.close_reason is None  # 800 bytes waiting: under the bound
        conn.push(b"3" * 400)  # 1200: over
    assert conn.close_reason is not None and conn.close_reason[0] == CLOSE_SLOW
    assert stream.closed


async def test_a_reply_larger_than_the_outbox_reaches_a_client_that_reads(
    harness: Harness,
) -> None:
    harness.services.settings.outbox_bytes = 100  # the op listing is some KB
    user = await harness.user()
    async with harness.connect(user) as ws:
        assert (await ws.call(2))["res"] == 2
