"""The life of an operator HTTP connection (``transport/http_connection.py``), through real
clients over loopback: idle connections are closed whatever happened on them before
(an answered request, a 408, nothing at all), HTTP/2 is refused in its own words or
served as HTTP/1.1, one client address holds at most ``http_connections_per_address``
connections. Each wait is on the event expected (the server closing the socket), with a
generous bound; no test measures time."""

from __future__ import annotations

import errno
import json
import logging
import os
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import h11
import httpx
import pytest
import trio
import trio.testing

from tests.conftest import running_harness
from tests.test_http_hostile import _answers, _hold_commits, _request
from transport.accept import accept_forever, serve_listeners

#: The bound on every wait for the server: far above the short limits the servers here
#: run with, so that a busy machine never fails a test.
PATIENCE = 30
#: The idle limit the servers here run with.
IDLE = 1.0


async def until_closed(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    received = bytearray()
    with trio.fail_after(PATIENCE):
        try:
            while chunk := await stream.receive_some():
                received += chunk
        except trio.BrokenResourceError:
            pass
    return bytes(received)


async def one_answer(stream: trio.SocketStream, target: str = "/healthz", **headers: str) -> Any:
    """Send a GET through h11 and read its response: (status, JSON body, h11's view of
    the connection after it)."""
    client = h11.Connection(h11.CLIENT)
    head = [("Host", "tote"), *headers.items()]
    await stream.send_all(client.send(h11.Request(method="GET", target=target, headers=head)))
    await stream.send_all(client.send(h11.EndOfMessage()))
    status, body = 0, bytearray()
    with trio.fail_after(PATIENCE):
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, json.loads(body), client


# -- idle connections -----------------------------------------------------------------


async def test_a_kept_alive_connection_is_closed_once_idle_after_its_answer() -> None:
    """Two requests answered on one connection, then silence: the server closes it
    (hypercorn's timer was never re-armed after an answer: held for ever)."""
    async with running_harness(http_idle_seconds=IDLE) as h:
        stream = await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port)
        async with stream:
            for _ in range(2):
                status, body, client = await one_answer(stream)
                assert (status, body["status"]) == (200, "ok"), body
                assert client.our_state is h11.DONE  # kept alive: no close announced
            assert await until_closed(stream) == b""


async def test_a_request_answered_slower_than_the_idle_limit_is_not_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deposit whose commit is held past the idle limit (a connection opened after it,
    idle, is closed meanwhile) still gets its 201: a request being answered is not
    idle, however long the app takes."""
    async with running_harness(http_idle_seconds=IDLE) as h:
        uid = (await h.user())["user_id"]
        committing, go_on = _hold_commits(h.services.storage, monkeypatch)
        body = {"amount": "2", "reference": "slow-commit"}
        port = h.endpoints.http_port
        async with await trio.open_tcp_stream("127.0.0.1", port) as slow:
            await slow.send_all(_request(h, "POST", f"/v1/users/{uid}/deposits", body))
            await committing.wait()
            async with await trio.open_tcp_stream("127.0.0.1", port) as later:
                assert await until_closed(later) == b""  # the idle limit has passed
            go_on.set()
            ((status, answer),) = await _answers(slow, 1)
        assert status == 201, answer


async def test_a_client_that_sends_half_its_headers_is_closed() -> None:
    """Headers begun and never ended (a slow one, or a bare ``PRI * HTTP/2.0`` line):
    closed once idle, without an answer."""
    async with running_harness(http_idle_seconds=IDLE) as h:
        for head in (b"GET /healthz HTTP/1.1\r\nHost: t", b"PRI * HTTP/2.0\r\n"):
            async with await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port) as stream:
                await stream.send_all(head)
                assert await until_closed(stream) == b""


async def test_the_connection_of_a_408_is_closed_whatever_the_client_does_next() -> None:
    """A body that stops half-way gets 408 BODY_TOO_SLOW; the connection is then closed
    whether the client goes silent or keeps trickling bytes."""
    async with running_harness(http_idle_seconds=IDLE, http_body_seconds=IDLE) as h:
        head = (
            b"POST /v1/users HTTP/1.1\r\nHost: tote\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + h.endpoints.operator_key.encode() + b"\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        for trickle in (False, True):
            async with await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port) as stream:
                await stream.send_all(head)
                async with trio.open_nursery() as nursery:
                    if trickle:
                        nursery.start_soon(_trickle, stream)
                    answer = await until_closed(stream)
                    nursery.cancel_scope.cancel()
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"BODY_TOO_SLOW" in answer, answer


async def _trickle(stream: trio.SocketStream) -> None:
    """One more byte now and then, until the server stops taking them."""
    try:
        while True:
            await stream.send_all(b" ")
            await trio.sleep(IDLE / 4)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return


# -- HTTP/2 -----------------------------------------------------------------------------


def h2_client(settings: dict[int, int] | None = None) -> h2.connection.H2Connection:
    """An HTTP/2 client (prior knowledge, as over h2c) with its preface and SETTINGS
    ready to send."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    if settings:
        client.update_settings(settings)
    return client


def h2_events(client: h2.connection.H2Connection, received: bytes) -> list[Any]:
    return client.receive_data(received) if received else []


async def test_an_h2c_client_sending_only_its_preface_is_refused_and_closed() -> None:
    """The HTTP/2 preface and SETTINGS, then nothing: the server answers in HTTP/2's
    words, GOAWAY HTTP_1_1_REQUIRED, and closes (it held the connection for ever)."""
    async with running_harness(http_idle_seconds=600) as h:
        client = h2_client()
        async with await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port) as stream:
            await stream.send_all(client.data_to_send())
            events = h2_events(client, await until_closed(stream))
        (goaway,) = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway.error_code == h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
        assert goaway.last_stream_id == 0


async def test_h2_streams_on_a_zero_window_hold_nothing() -> None:
    """The flow-control attack: window 0, a hundred requests for the OpenAPI document,
    never a WINDOW_UPDATE. No stream is opened (last stream 0, no response), nothing is
    held: the connection is refused and closed at once."""
    async with running_harness(http_idle_seconds=600) as h:
        client = h2_client({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        for stream_id in range(1, 200, 2):
            client.send_headers(
                stream_id,
                [(":method", "GET"), (":path", "/openapi.json"), (":scheme", "http"),
                 (":authority", "tote")],
                end_stream=True,
            )  # fmt: skip
        async with await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port) as stream:
            await stream.send_all(client.data_to_send())
            events = h2_events(client, await until_closed(stream))
        assert not [e for e in events if isinstance(e, h2.events.ResponseReceived)], events
        (goaway,) = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert (goaway.error_code, goaway.last_stream_id) == (
            h2.errors.ErrorCodes.HTTP_1_1_REQUIRED,
            0,
        )
        assert (await h.http.get("/healthz")).status_code == 200


async def test_an_upgrade_to_h2c_is_served_as_http_1_1() -> None:
    """``Upgrade: h2c`` is ignored: the request is answered in HTTP/1.1 (no 101), the
    connection carries on in HTTP/1.1 and is closed once idle."""
    upgrade = {
        "Connection": "Upgrade, HTTP2-Settings",
        "Upgrade": "h2c",
        "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA",
    }
    async with (
        running_harness(http_idle_seconds=IDLE) as h,
        await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port) as stream,
    ):
        status, body, _ = await one_answer(stream, **upgrade)
        assert (status, body["status"]) == (200, "ok"), body
        status, body, _ = await one_answer(stream)
        assert (status, body["status"]) == (200, "ok"), body
        assert await until_closed(stream) == b""


# -- connections per client address ------------------------------------------------------


async def test_an_address_past_its_cap_is_refused_while_others_are_served() -> None:
    """Two connections held from 127.0.0.1 (the cap): a third from there gets a 429
    TOO_MANY_CONNECTIONS and a close; 127.0.0.2 is served meanwhile, httpx included; once
    one of the two closes, 127.0.0.1 is served again."""
    async with running_harness(http_idle_seconds=600, http_connections_per_address=2) as h:
        port = h.endpoints.http_port
        held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        for stream in held:  # each admitted and answered
            assert (await one_answer(stream))[0] == 200
        async with await trio.open_tcp_stream("127.0.0.1", port) as extra:
            status, body, _ = await one_answer(extra)
            assert (status, body["errorCode"]) == (429, "TOO_MANY_CONNECTIONS"), body
            assert await until_closed(extra) == b""
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=other, base_url=f"http://127.0.0.1:{port}") as c:
            assert (await c.get("/healthz")).status_code == 200
        await held.pop().aclose()
        with trio.fail_after(PATIENCE):
            while True:  # until the server has counted the close (no event tells)
                if await _admitted(port):
                    break
                await trio.sleep(0.05)
        await held[0].aclose()


async def _admitted(port: int) -> bool:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        return (await one_answer(stream))[0] == 200


# -- the accept loop out of descriptors --------------------------------------------------


class ScriptedListener(trio.abc.Listener[Any]):
    """A listener whose accepts fail or succeed as scripted, then wait for ever."""

    def __init__(self, script: list[BaseException | Any]) -> None:
        self.script = script

    async def accept(self) -> Any:
        await trio.lowlevel.checkpoint()
        if not self.script:
            await trio.sleep_forever()
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def out_of(code: int, times: int) -> list[BaseException]:
    return [OSError(code, os.strerror(code)) for _ in range(times)]


async def test_running_out_of_descriptors_logs_one_line_per_episode(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Two episodes of failed accepts (EMFILE 50 times, ENFILE 30 times), each ended by
    a connection: one error line each (no traceback) and one line when accepts succeed
    again; both connections are handled. trio's loop logged a traceback per try."""
    first, second = trio.testing.memory_stream_pair(), trio.testing.memory_stream_pair()
    script = [*out_of(errno.EMFILE, 50), first[0], *out_of(errno.ENFILE, 30), second[0]]
    handled: list[Any] = []
    both = trio.Event()

    async def handler(stream: Any) -> None:
        handled.append(stream)
        if len(handled) == 2:
            both.set()

    caplog.set_level(logging.INFO, logger="transport.accept")
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_listeners, handler, [ScriptedListener(script)], "http")
        await both.wait()
        nursery.cancel_scope.cancel()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["ERROR", "WARNING", "ERROR", "WARNING"], lines
    assert "EMFILE" in lines[0][1] and "ENFILE" in lines[2][1], lines
    assert "after 50 failed tries" in lines[1][1] and "after 30 failed" in lines[3][1], lines
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert handled == [first[0], second[0]]


async def test_an_accept_error_that_is_not_about_room_ends_the_loop() -> None:
    """Anything else (a closed listener, a bug) is not retried for ever in silence."""
    listener = ScriptedListener(out_of(errno.EBADF, 1))
    async with trio.open_nursery() as nursery:
        with pytest.raises(OSError) as raised:
            await accept_forever(listener, lambda stream: None, nursery, "http")
    assert raised.value.errno == errno.EBADF
