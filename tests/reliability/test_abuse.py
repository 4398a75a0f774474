"""Scenario 7, abuse, the functional half: idle connections held open and a reconnect
storm at the per-user cap while an honest player bets; slow and never-reading HTTP and
handshake clients, each cut off by the server (the tests wait for the close, on small
configured limits, not on the clock); a server out of file descriptors that keeps
serving. The honest clients get every answer and the books balance. (Floods past the
rate limit and websocket clients that never read are in tests/test_ws_hostile.py;
latency and memory bounds are for ``make abuse`` (tests/reliability/abuse.py), not for a
suite that must not time things.)"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

import httpx
import trio
import trio.testing
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.conftest import Harness, WsClient, running_harness, setup_game
from tests.reliability.abuse import (
    PIPELINED,
    pipeline_unread,
    poll_until,
    server_side_open,
    slow_body,
    slow_headers,
    trickle,
    until_server_lets_go,
    ws_url,
)
from tests.test_crash_recovery import client, running_server

IDLE_USERS = 40
STORM_WAVES = 6
BETS = 20


async def test_idle_connections_and_a_reconnect_storm_do_not_starve_a_bettor(
    harness: Harness,
) -> None:
    cap = harness.services.settings.max_connections_per_user
    admin = await harness.user("admin", roles=["developer"])
    bettor = await harness.user("bettor", deposit="100")
    stormer = await harness.user("stormer")
    idlers = [await harness.user(f"idle{n}") for n in range(IDLE_USERS)]
    figures = {"storm connections": 0, "refused at the cap": 0, "bets": 0}

    async with harness.connect(admin) as aws:
        game_id = await setup_game(aws)
        pool_id = (
            await aws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
        )["pool_id"]

    async def hold_one(user: dict[str, Any], task_status: trio.TaskStatus[None]) -> None:
        async with harness.connect(user) as ws:
            assert (await ws.call(1))["res"] == 1
            task_status.started()
            await trio.sleep_forever()

    async def storm() -> None:
        for _ in range(STORM_WAVES):
            async with trio.open_nursery() as wave:
                for _ in range(cap):
                    wave.start_soon(connect_until_admitted)

    async def connect_until_admitted() -> None:
        """A slot given back is usable again: wait (explicitly, bounded) until the
        server has seen the last wave's clients leave."""
        with trio.fail_after(20):
            while True:
                try:
                    async with harness.connect(stormer) as ws:
                        assert (await ws.call(1))["res"] == 1
                        figures["storm connections"] += 1
                        return
                except ConnectionRejected as refused:
                    assert refused.status_code == 429, refused
                    figures["refused at the cap"] += 1
                    await trio.testing.wait_all_tasks_blocked()

    async def bet() -> None:
        async with harness.connect(bettor) as ws:
            for _ in range(BETS):
                reply = await ws.call(392, 356, pool_id=pool_id, target="brazil", amount="1")
                assert reply["res"] == 356, reply
                figures["bets"] += 1

    async with trio.open_nursery() as nursery:
        for user in idlers:
            await nursery.start(hold_one, user)
        async with trio.open_nursery() as load:
            load.start_soon(storm)
            load.start_soon(bet)
        nursery.cancel_scope.cancel()
    assert figures["storm connections"] == STORM_WAVES * cap
    assert await harness.audit() == []
    print(f"abuse: {IDLE_USERS} idle connections, {figures}")


#: Small limits, so that the offenders are cut off within the test, yet above any
#: scheduler stall of a busy machine: honest clients, whose handshakes, bodies and
#: kept-alive requests come at once, must never meet them.
SLOW_LIMITS = {
    "http_idle_seconds": 2.0,
    "http_body_seconds": 2.0,
    "http_send_seconds": 2.0,
    "handshake_seconds": 2.0,
}
#: Seconds between an honest bettor's bets: under the default 50 a second.
PACE = 0.025


async def test_slow_and_never_reading_clients_are_cut_off_while_others_are_answered() -> None:
    """Headers or a body a byte at a time, a websocket handshake a byte at a time, and
    pipelined requests whose answers are never read: each connection is closed by the
    server (before this, hypercorn held the never-reading one for ever: its sends are
    shielded and have no timeout). Meanwhile every bet and every HTTP call is answered."""
    async with running_harness(**SLOW_LIMITS) as harness:
        endpoints = harness.endpoints
        admin = await harness.user("admin", roles=["developer"])
        bettor = await harness.user("bettor", deposit="1000")
        async with harness.connect(admin) as aws:
            game_id = await setup_game(aws)
            pool_id = (
                await aws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
            )["pool_id"]
        answers: dict[str, Any] = {}
        offenders_done = trio.Event()

        async def offend(name: str, port: int, head: bytes) -> None:
            answers[name] = await trickle(port, head)

        async def unread() -> None:
            stream = await pipeline_unread(endpoints.http_port)
            answers["unread"] = await until_server_lets_go(stream, endpoints.http_port)

        async def offenders() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(offend, "headers", endpoints.http_port, slow_headers())
                body = slow_body(endpoints.operator_key)
                nursery.start_soon(offend, "body", endpoints.http_port, body)
                nursery.start_soon(offend, "handshake", endpoints.ws_port, b"GET /?id=1 HTTP/1.1")
                nursery.start_soon(unread)
            offenders_done.set()

        honest = {"bets": 0, "http": 0}

        async def bet() -> None:
            async with harness.connect(bettor) as ws:
                while not offenders_done.is_set() or honest["bets"] < BETS:
                    reply = await ws.call(392, 356, pool_id=pool_id, target="brazil", amount="0.01")
                    assert reply["res"] == 356, reply
                    honest["bets"] += 1
                    await trio.sleep(PACE)  # an honest client stays under the rate limit

        async def ask() -> None:
            fresh = httpx.Limits(max_keepalive_connections=0)  # no idle connection to lose
            async with httpx.AsyncClient(base_url=str(harness.http.base_url), limits=fresh) as http:
                while not offenders_done.is_set():
                    assert (await http.get("/healthz")).status_code == 200
                    honest["http"] += 1

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(offenders)
                nursery.start_soon(bet)
                nursery.start_soon(ask)
        assert answers["headers"] == b"", answers["headers"]
        assert answers["body"].startswith(b"HTTP/1.1 408"), answers["body"]
        assert b"BODY_TOO_SLOW" in answers["body"]
        assert answers["handshake"] == b"", answers["handshake"]
        assert answers["unread"] < PIPELINED
        print(f"abuse: slow clients cut off {answers['unread']=}, honest {honest}")


async def test_a_client_that_leaves_gives_its_descriptor_back_at_once() -> None:
    """A client that connects and leaves without a request (a TCP health check, a port
    scan, a storm of them): hypercorn held the socket until its idle timer ran out (5 s
    by default, so a storm held thousands of descriptors). Here the timer is 10 minutes
    and the socket is closed as soon as the client has left."""
    async with running_harness(http_idle_seconds=600) as harness:
        port = harness.endpoints.http_port
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client_port = stream.socket.getsockname()[1]
        await stream.aclose()
        with trio.fail_after(30):
            await poll_until(lambda: not server_side_open(port, client_port))


#: Descriptors left to the server once it is held to a limit; the idle connections that
#: hog them are a few more than that, so that some wait in the listen backlog.
SPARE_DESCRIPTORS = 20
HOGS = SPARE_DESCRIPTORS + 5
#: The hogs are idle HTTP connections, cut off after this long (and their descriptors
#: with them: hypercorn holds a connection until its idle timer ends, even one whose
#: client has left).
HOG_IDLE = ("--http-idle-seconds", "2")


async def test_out_of_file_descriptors_the_server_keeps_serving(tmp_path: Path) -> None:
    """The real process held to a few spare descriptors, then more clients than that:
    it does not die, logs the refused accepts (a line, no traceback), keeps answering a
    connection it has,
    and answers a client that waited in the listen backlog once the idle ones are cut
    off."""
    log = tmp_path / "server.log"
    with trio.fail_after(90):
        async with running_server(tmp_path / "data", log, *HOG_IDLE) as (proc, url, ws_port):
            kept_user = await _user_with_session(url)
            async with open_websocket_url(ws_url(ws_port, kept_user)) as ws:
                kept = WsClient(ws, kept_user["user_id"])
                limit = len(os.listdir(f"/proc/{proc.pid}/fd")) + SPARE_DESCRIPTORS
                resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
                http_port = int(url.rsplit(":", 1)[1])
                hogs = [await trio.open_tcp_stream("127.0.0.1", http_port) for _ in range(HOGS)]
                await poll_until(lambda: b"EMFILE" in log.read_bytes())  # accept's report
                assert proc.poll() is None
                assert (await kept.call(1))["res"] == 1  # a connection it has: served
                async with client(url) as newcomer:  # in the backlog until hogs are cut off
                    newcomer.timeout = httpx.Timeout(60)
                    assert (await newcomer.get("/healthz")).status_code == 200
                for hog in hogs:
                    await hog.aclose()
                assert (await kept.call(1))["res"] == 1
            assert proc.poll() is None
    assert b"Traceback" not in log.read_bytes()  # one line per episode (trio: one per try)


async def _user_with_session(url: str) -> dict[str, Any]:
    async with client(url) as http:
        r = await http.post("/v1/users", json={"name": "kept", "password": "pw-kept"})
        user = r.json()
        r = await http.post(f"/v1/users/{user['user_id']}/sessions")
        user["session_key"] = r.json()["session_key"]
    return user
