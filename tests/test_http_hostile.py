"""Hostile clients of the HTTP transport (``transport/http.py``): keep-alive, pipelining,
half-closes, slow readers, clients that leave mid-deposit (docs/decisions.md)."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from functools import partial
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio
import trio.testing

from kit.settings import Settings
from storage.audit import audit_ledger
from tests import postgres as engines
from tests.conftest import CHEAP_SCRYPT_N, Harness, running_harness
from tote.server import Server, ServerConfig
from transport import routes_status
from transport.http_connection import SendDeadlineStream

SEND_SECONDS = 10.0
#: More audits at once than trio's default thread limiter has threads.
AUDITS = 60


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


# -- real clients over loopback --------------------------------------------------------


def _request(h: Harness, method: str, target: str, body: dict[str, Any] | None = None) -> bytes:
    """One HTTP/1.1 request with the operator key, as bytes for a raw socket."""
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Bearer {h.endpoints.operator_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _answers(stream: trio.SocketStream, count: int | None = None) -> list[tuple[int, Any]]:
    """The complete responses on the stream, ``count`` of them or until the server
    closes it: (status, decoded body). A response cut short is not counted."""
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, Any]] = []
    _sent(conn)
    status, body = 0, bytearray()
    while len(out) != count:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:  # closed before a response ended
            break
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some()
            except trio.BrokenResourceError:
                data = b""
            conn.receive_data(data)
        elif isinstance(event, h11.Response):
            status, body = event.status_code, bytearray()
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((status, json.loads(body)))
            conn.start_next_cycle()
            _sent(conn)
        else:  # ConnectionClosed, or the server closed before a response ended
            break
    return out


def _sent(conn: h11.Connection) -> None:
    """h11 parses a response only after its client sent a request: a stand-in one (the
    real ones went out as raw bytes)."""
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "t")]))
    conn.send(h11.EndOfMessage())


def _hold_commits(storage: Any, monkeypatch: Any) -> tuple[trio.Event, trio.Event]:
    """Commits wait for the second event once the first says one has begun."""
    commit, committing, go_on = storage.commit, trio.Event(), trio.Event()

    async def held_commit(*args: Any, **kwargs: Any) -> Any:
        committing.set()
        await go_on.wait()
        return await commit(*args, **kwargs)

    monkeypatch.setattr(storage, "commit", held_commit)
    return committing, go_on


async def _current(h: Harness, user_id: int) -> Any:
    r = await h.http.get(f"/v1/users/{user_id}/balances")
    assert r.status_code == 200, r.text
    return r.json()["EUR"]["current"]


async def test_keep_alive_and_pipelined_requests_are_all_answered_in_order(
    harness: Harness,
) -> None:
    """Three requests in one write on one connection, then a fourth after their
    answers: each answered once, in order; the repeated reference lands once."""
    uid = (await harness.user())["user_id"]
    deposit = partial(_request, harness, "POST", f"/v1/users/{uid}/deposits")
    async with await trio.open_tcp_stream("127.0.0.1", harness.endpoints.http_port) as stream:
        await stream.send_all(
            deposit({"amount": "1", "reference": "p-1"})
            + _request(harness, "GET", f"/v1/users/{uid}/balances")
            + deposit({"amount": "2", "reference": "p-2"})
        )
        first = await _answers(stream, 3)
        await stream.send_all(deposit({"amount": "1", "reference": "p-1"}))
        (again,) = await _answers(stream, 1)
    assert [status for status, _ in first] == [201, 200, 201]
    assert first[1][1]["EUR"]["current"] == 1
    assert again[0] == 200 and again[1]["duplicate"] is True
    assert await _current(harness, uid) == 3


async def test_a_half_closed_request_counts_as_a_client_that_left(harness: Harness) -> None:
    """A client that shuts its sending side after a full request has left, as hypercorn,
    nginx and Go's server treat it: its request is cancelled and it may get no answer,
    but never a partial change; a retry with the same reference lands it once."""
    uid = (await harness.user())["user_id"]
    target = f"/v1/users/{uid}/deposits"
    for n in range(5):
        body = {"amount": "1", "reference": f"half-{n}"}
        async with await trio.open_tcp_stream("127.0.0.1", harness.endpoints.http_port) as s:
            await s.send_all(_request(harness, "POST", target, body))
            await s.send_eof()
            assert [status for status, _ in await _answers(s)] in ([], [201])
        retried = await harness.http.post(target, json=body)
        assert retried.status_code in (200, 201), retried.text
    assert await _current(harness, uid) == 5


async def test_a_deposit_whose_client_left_during_its_commit_lands_once(
    harness: Harness, monkeypatch: Any
) -> None:
    """The client goes while the wallet commits its deposit: the commit lands (the wallet
    does not hear of the cancelled caller) and the retry with the reference is answered
    as the duplicate it is, with the balance of one deposit."""
    uid = (await harness.user())["user_id"]
    target = f"/v1/users/{uid}/deposits"
    committing, go_on = _hold_commits(harness.services.storage, monkeypatch)
    body = {"amount": "7", "reference": "left-mid-commit"}
    async with await trio.open_tcp_stream("127.0.0.1", harness.endpoints.http_port) as s:
        await s.send_all(_request(harness, "POST", target, body))
        await committing.wait()
        await s.send_eof()
        assert await _answers(s) == []  # the server closed: its caller was cancelled
    go_on.set()
    retried = await harness.http.post(target, json=body)
    assert retried.status_code == 200 and retried.json()["duplicate"] is True, retried.text
    assert await _current(harness, uid) == 7


async def test_a_deposit_whose_body_never_ends_gets_408_and_changes_nothing() -> None:
    """Half a deposit's body, then silence: 408 BODY_TOO_SLOW, no money moved, and the
    same reference sent whole afterwards lands as new."""
    async with running_harness(http_body_seconds=2.0) as h:
        uid = (await h.user())["user_id"]
        target = f"/v1/users/{uid}/deposits"
        body = {"amount": "3", "reference": "slow-body"}
        whole = _request(h, "POST", target, body)
        async with await trio.open_tcp_stream("127.0.0.1", h.endpoints.http_port) as s:
            await s.send_all(whole[:-5])
            ((status, answer),) = await _answers(s)
        assert (status, answer["errorCode"]) == (408, "BODY_TOO_SLOW"), answer
        assert "nothing was done" in answer["errorMessage"], answer
        assert (await h.http.get(f"/v1/users/{uid}/balances")).json() == {}
        sent = await h.http.post(target, json=body)
        assert sent.status_code == 201, sent.text
        assert await _current(h, uid) == 3


def _on_disk(data_dir: Path) -> ServerConfig:
    """A server on a database file (the in-memory one has no second connection), on
    PostgreSQL the data directory's database."""
    settings = Settings(scrypt_n=CHEAP_SCRYPT_N)
    database = engines.current.server_database(data_dir)
    return ServerConfig(
        ws_port=0, http_port=0, data_dir=data_dir, database=database, settings=settings
    )


async def test_a_deposit_running_at_shutdown_lands_once_after_a_restart(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The server is told to stop while a deposit commits: the transports close at once
    (the client may get no answer), the actors drain, so the commit lands; after a
    restart on the same books, the retry is the duplicate, with one deposit's balance."""
    config = _on_disk(tmp_path)
    server = Server(config)
    body = {"amount": "5", "reference": "at-shutdown"}
    async with trio.open_nursery() as nursery:
        endpoints = await nursery.start(server.run)
        h = Harness(endpoints, nursery)
        uid = (await h.user())["user_id"]
        await h.aclose()
        committing, go_on = _hold_commits(endpoints.services.storage, monkeypatch)
        target = f"/v1/users/{uid}/deposits"
        async with await trio.open_tcp_stream("127.0.0.1", endpoints.http_port) as s:
            await s.send_all(_request(h, "POST", target, body))
            await committing.wait()
            server.request_stop()
            go_on.set()
            assert [status for status, _ in await _answers(s)] in ([], [201])
    async with trio.open_nursery() as nursery:
        again = Server(config)
        endpoints = await nursery.start(again.run)
        h = Harness(endpoints, nursery)
        retried = await h.http.post(target, json=body)
        assert retried.status_code == 200 and retried.json()["duplicate"] is True, retried.text
        assert await _current(h, uid) == 5
        assert await h.audit() == []
        await h.aclose()
        again.request_stop()


async def test_a_flood_of_audits_does_not_starve_the_commits(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Each audit reads its snapshot in a worker thread; on trio's default thread limiter
    (40), which the storage actor's commits share, 40 slow audits of a huge ledger held
    every token and each commit waited behind them (deposits and bets timed out). Audits
    now have threads of their own, a few."""
    release = threading.Event()
    arrived = 0
    all_arrived = trio.Event()

    def slow_audit(conn: Any) -> Any:
        release.wait()
        return audit_ledger(conn)

    monkeypatch.setattr(routes_status, "audit_ledger", slow_audit)
    async with running_harness(tmp_path) as h:
        endpoints = h.endpoints
        uid = (await h.user())["user_id"]
        storage = endpoints.services.storage
        read_snapshot = storage.read_snapshot

        async def counted(query: Any) -> Any:
            nonlocal arrived
            arrived += 1
            if arrived == AUDITS:
                all_arrived.set()
            return await read_snapshot(query)

        monkeypatch.setattr(storage, "read_snapshot", counted)
        answers: list[int] = []

        async def audit() -> None:
            async with httpx.AsyncClient(headers=h.http.headers) as client:
                url = f"http://127.0.0.1:{endpoints.http_port}/v1/audit"
                answers.append((await client.get(url, timeout=120)).status_code)

        try:
            async with trio.open_nursery() as audits:
                for _ in range(AUDITS):
                    audits.start_soon(audit)
                await all_arrived.wait()
                await trio.testing.wait_all_tasks_blocked()  # every audit took what it can
                deposit = await h.http.post(
                    f"/v1/users/{uid}/deposits",
                    json={"amount": "1", "reference": "mid-audits"},
                    timeout=120,
                )
                release.set()
        finally:
            release.set()
        assert deposit.status_code == 201, deposit.text
        assert answers == [200] * AUDITS


async def test_commits_never_wait_for_trio_s_default_threads(tmp_path: Path) -> None:
    """Every token of trio's default thread limiter held (by listings, settlements or
    anything else that runs a thread): a deposit still commits, on the writer's own."""
    release = threading.Event()
    async with running_harness(tmp_path) as h:
        uid = (await h.user())["user_id"]
        default = trio.to_thread.current_default_thread_limiter()
        try:
            async with trio.open_nursery() as hogs:
                for _ in range(int(default.total_tokens)):
                    hogs.start_soon(
                        partial(trio.to_thread.run_sync, release.wait, abandon_on_cancel=True)
                    )
                await trio.testing.wait_all_tasks_blocked()
                assert default.available_tokens == 0
                deposit = await h.http.post(
                    f"/v1/users/{uid}/deposits",
                    json={"amount": "1", "reference": "beside-hogs"},
                    timeout=120,
                )
                release.set()
        finally:
            release.set()
        assert deposit.status_code == 201, deposit.text


@pytest.mark.sqlite_only("takes the SQLite file from under the server")
async def test_audits_during_a_stream_of_deposits_and_of_a_missing_file(
    tmp_path: Path,
) -> None:
    """Audits beside concurrent deposits each see whole commits (ok, two lines a
    deposit); with the database file gone from under the server, an audit is a clear
    error and the server goes on serving."""
    async with running_harness(tmp_path) as h:
        uid = (await h.user())["user_id"]
        reports: list[dict[str, Any]] = []

        async def deposit(n: int) -> None:
            money = {"amount": "1", "reference": f"stream-{n}"}
            r = await h.http.post(f"/v1/users/{uid}/deposits", json=money, timeout=60)
            assert r.status_code == 201, r.text

        async def audit() -> None:
            reports.append((await h.http.get("/v1/audit", timeout=60)).json())

        async with trio.open_nursery() as load:
            for n in range(100):
                load.start_soon(deposit, n)
                if n % 5 == 0:
                    load.start_soon(audit)
        assert all(r["ok"] and r["lines"] % 2 == 0 for r in reports), reports
        (tmp_path / "tote.db").rename(tmp_path / "elsewhere.db")
        gone = await h.http.get("/v1/audit")
        assert gone.status_code >= 500 and gone.json()["errorCode"] == "STORAGE_FAILURE"
        assert await _current(h, uid) == 100
        (tmp_path / "elsewhere.db").rename(tmp_path / "tote.db")  # for the closing audit
