"""Scenario 7, abuse, the long version, and the abusive clients the fast tests share.

``make abuse SECONDS=120 IDLE=3000`` (= ``python -m tests.reliability.abuse --seconds 120
--idle 3000``) starts ``tote serve`` as a subprocess with its shipped limits and runs an
honest bettor through phases: quiet, thousands of idle websocket connections, floods
past the rate limit, floods from clients that never read, a reconnect storm, and slow
HTTP clients (headers or body a byte at a time, pipelined requests whose answers are
never read), then the idle connections again. The bettor runs in a process of its own.
It prints the bettor's p99 in each phase as a ratio of the quiet one, the server's RSS
before, with the idle connections, after the abuse and with them again, the bytes each
idle connection costs, and how many offenders were cut off; it exits 1 when a bound in
``BOUNDS`` is passed, an honest request goes unanswered or is refused, an offender is not
cut off or the audit fails. Timed figures live here, never in ``make test``.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, open_websocket_url, wrap_client_stream

from actors.registry import handshake_digest
from domain.codec import encode
from tests.conftest import CHEAP_SCRYPT_N, WsClient, setup_game
from tests.test_crash_recovery import KEY, client, running_server

PING = encode({"op": 1}).decode()
#: Seconds between two of the honest bettor's bets: under the default 50 a second.
PACE = 0.025
#: /proc/net/tcp's states of a socket its owner has not closed: ESTABLISHED, CLOSE_WAIT
#: (the peer has closed its side).
NOT_CLOSED = {"01", "08"}
#: Requests a never-reading client pipelines: their answers (the OpenAPI document each)
#: are far more than the socket buffers of both ends hold.
PIPELINED = 300
#: The bounds the long run states and checks. The honest bettor's p99 under abuse, as a
#: multiple of its quiet p99 (never below a floor in seconds, for a quiet p99 so small
#: that one scheduler hiccup would multiply it): abuse that holds connections (idle ones,
#: slow HTTP clients) is nearly free, while floods and storms are CPU work that the
#: abusers, on the same 2-core machine, compete for with the server and the bettor.
#: Memory: what an idle connection costs, and no leak: a second round of the same idle
#: connections at the end may grow RSS only a little past the first (Python keeps freed
#: memory for reuse rather than giving it back, so RSS after is not the test).
BOUNDS = {
    "p99 ratio, holding connections": 5.0,
    "p99 ratio, floods and storms": 25.0,
    "p99 floor seconds": 0.100,
    "bytes per idle connection": 64 * 1024,
    "RSS regrowth on a second idle round, MiB": 32,
}


# -- abusive clients (the fast tests use these too) -----------------------------------


async def trickle(port: int, head: bytes, *, pause: float = 0.05) -> bytes:
    """A slowloris: send ``head``, then one more byte every ``pause`` seconds for as long
    as the server listens. Returns what the server answered before it closed."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = bytearray()

    async def drip() -> None:
        try:
            await stream.send_all(head)
            while True:
                await trio.sleep(pause)
                await stream.send_all(b"a")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the server closed: the reader sees it too

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(drip)
        try:
            while chunk := await stream.receive_some():
                answer += chunk
        except trio.BrokenResourceError:  # reset: the server closed with our bytes unread
            pass
        nursery.cancel_scope.cancel()
    return bytes(answer)


def slow_headers() -> bytes:
    """Headers that never end."""
    return b"GET /healthz HTTP/1.1\r\nHost: tote\r\nX-Slow: "


def slow_body(operator_key: str) -> bytes:
    """A keyed request whose body never ends (so the route reads it)."""
    return (
        b"POST /v1/users HTTP/1.1\r\nHost: tote\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + operator_key.encode() + b"\r\n"
        b"Content-Length: 60000\r\n\r\n{"
    )


async def pipeline_unread(port: int) -> trio.SocketStream:
    """A client that pipelines ``PIPELINED`` requests for the OpenAPI document on a
    small receive window and reads none of the answers."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(sock)
    await stream.send_all(b"GET /openapi.json HTTP/1.1\r\nHost: tote\r\n\r\n" * PIPELINED)
    return stream


def server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server has not closed its end of this connection, by the kernel's
    table: a client that reads nothing cannot see the close itself (the server's FIN
    waits behind the data it never took), nor one that has closed its own end."""
    wanted = (f"{server_port:04X}", f"{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if (local.rsplit(":", 1)[1], remote.rsplit(":", 1)[1]) == wanted:
            return state in NOT_CLOSED
    return False


async def poll_until(condition: Callable[[], bool]) -> None:
    """Wait for something outside the process (the kernel's table, a log file) that no
    event announces, read in a thread (it is file I/O); the caller bounds the wait."""
    while True:
        if await trio.to_thread.run_sync(condition):
            return
        await trio.sleep(0.05)


async def until_server_lets_go(stream: trio.SocketStream, server_port: int) -> int:
    """Wait (polling the kernel's table) until the server has closed a never-reading
    client's connection, then read what was in flight; returns the answers received."""
    client_port = stream.socket.getsockname()[1]
    await poll_until(lambda: not server_side_open(server_port, client_port))
    received = bytearray()
    try:
        while chunk := await stream.receive_some():
            received += chunk
    except trio.BrokenResourceError:
        pass
    await stream.aclose()
    return received.count(b"HTTP/1.1 200")


def ws_url(port: int, user: dict[str, Any]) -> str:
    """A handshake URL for ``user`` (with its session key) on a server's websocket port."""
    nonce = secrets.token_hex(8)
    digest = handshake_digest(user["user_id"], nonce, user["session_key"])
    return f"ws://127.0.0.1:{port}/?id={user['user_id']}&n={nonce}&h={digest}"


# -- the long run ----------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    cpu_bound: bool = False  # a flood or a storm: the looser bound in BOUNDS
    latencies: list[float] = field(default_factory=list)
    offenders: int = 0
    cut_off: int = 0
    refused: int = 0
    notes: str = ""

    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98]


@dataclass
class Run:
    url: str
    ws_port: int
    pid: int
    http: httpx.AsyncClient
    pool_id: str = ""
    bettor: dict[str, Any] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def http_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def ws_url(self, user: dict[str, Any]) -> str:
        return ws_url(self.ws_port, user)

    def rss(self) -> int:
        """The server's resident memory in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    async def user(self, name: str, *, deposit: str | None = None, **body: Any) -> dict[str, Any]:
        r = await self.http.post("/v1/users", json={"name": name, "password": "pw", **body})
        assert r.status_code == 201, r.text
        user = r.json()
        r = await self.http.post(f"/v1/users/{user['user_id']}/sessions")
        user["session_key"] = r.json()["session_key"]
        if deposit:
            r = await self.http.post(
                f"/v1/users/{user['user_id']}/deposits",
                json={"currency": "EUR", "amount": deposit, "reference": secrets.token_hex(8)},
            )
            assert r.status_code in (200, 201), r.text
        return user


async def bet(url: str, user_id: int, pool_id: str, seconds: float) -> None:
    """The honest bettor, in a process of its own (so that the abusers' work in this one
    does not count as the server's latency): one bet every ``PACE`` seconds, under the
    rate limit, for ``seconds``; prints each answer's seconds, or the refusal."""
    async with open_websocket_url(url) as ws:
        bettor = WsClient(ws, user_id)
        deadline = trio.current_time() + seconds
        while trio.current_time() < deadline:
            started = time.perf_counter()
            reply = await bettor.call(392, pool_id=pool_id, target="brazil", amount="1")
            elapsed = time.perf_counter() - started
            print(elapsed if reply["res"] == 356 else f"refused {reply}", flush=True)
            await trio.sleep(PACE)


async def bet_while(run: Run, phase: Phase, seconds: float) -> None:
    """Run the bettor's process for ``seconds``; its latencies go to ``phase``, an
    unanswered or refused bet to the failures."""
    command = [sys.executable, "-m", "tests.reliability.abuse", "--bettor"]
    arguments = [run.ws_url(run.bettor), str(run.bettor["user_id"]), run.pool_id, str(seconds)]
    done = await trio.run_process([*command, *arguments], capture_stdout=True, check=False)
    for line in done.stdout.decode().splitlines():
        try:
            phase.latencies.append(float(line))
        except ValueError:
            run.failures.append(f"{phase.name}: {line}")
    if done.returncode:
        run.failures.append(f"{phase.name}: the bettor failed ({done.returncode})")


async def during(
    run: Run,
    phase: Phase,
    seconds: float,
    abuse: Callable[[], Awaitable[None]],
    *,
    ends: bool = False,
) -> None:
    """Bet for ``seconds`` while ``abuse`` runs, then cancel it; an abuse that ``ends``
    (offenders that must be cut off end when they are) first gets up to a minute more."""
    async with trio.open_nursery() as nursery:
        finished = trio.Event()

        async def abusing() -> None:
            await abuse()
            finished.set()

        nursery.start_soon(abusing)
        await bet_while(run, phase, seconds)
        if ends:
            with trio.move_on_after(60):
                await finished.wait()
        nursery.cancel_scope.cancel()
    run.phases.append(phase)


async def hold_idle(run: Run, count: int, phase: Phase, held: trio.Event) -> None:
    """``count`` authenticated websocket connections that say nothing (8 per user)."""
    opened = 0

    async def one(user: dict[str, Any], task_status: trio.TaskStatus[None]) -> None:
        nonlocal opened
        async with open_websocket_url(run.ws_url(user)) as ws:
            opened += 1
            task_status.started()
            await ws.get_message()  # never, unless the server pushes or closes
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for n in range(count):
            await nursery.start(one, run.users[n // 8])
        phase.offenders = opened
        held.set()
        await trio.sleep_forever()


async def flood(run: Run, phase: Phase, clients: int) -> None:
    """Clients sending pings as fast as they can and reading the answers: past the rate
    limit the answers are RATE_LIMITED refusals, counted; nobody is cut off."""

    async def one(user: dict[str, Any]) -> None:
        async with open_websocket_url(run.ws_url(user)) as ws:
            while True:
                await ws.send_message(PING)
                phase.refused += '"RATE_LIMITED"' in await ws.get_message()

    phase.offenders = clients
    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(one, run.users[n])


async def flood_unread(run: Run, phase: Phase, clients: int) -> None:
    """Clients sending pings as fast as they can on a small receive window and reading
    nothing: the server must close each (1008) once its outbox is full; returns then."""

    async def one(user: dict[str, Any]) -> None:
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await sock.connect(("127.0.0.1", run.ws_port))
        resource = run.ws_url(user).split(str(run.ws_port), 1)[1]
        try:
            async with trio.open_nursery() as nursery:
                ws = await wrap_client_stream(
                    nursery, trio.SocketStream(sock), "127.0.0.1", resource, message_queue_size=1
                )
                while True:
                    for _ in range(100):
                        await ws.send_message(PING)
                    await trio.lowlevel.checkpoint()
        except* (ConnectionClosed, trio.BrokenResourceError):  # raised inside the nursery
            phase.cut_off += 1

    phase.offenders = clients
    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(one, run.users[n])


async def storm(run: Run, phase: Phase, clients: int) -> None:
    """Clients connecting and leaving again as fast as they can."""

    async def one(user: dict[str, Any]) -> None:
        while True:
            async with open_websocket_url(run.ws_url(user)) as ws:
                await ws.send_message(PING)
                await ws.get_message()
                phase.offenders += 1

    async with trio.open_nursery() as nursery:
        for n in range(clients):
            nursery.start_soon(one, run.users[n])


async def slow_http(run: Run, phase: Phase, each: int) -> None:
    """Slow headers, slow bodies and never-reading pipelines, ``each`` of every kind;
    returns once every one of them was cut off."""

    async def slowloris(head: bytes) -> None:
        await trickle(run.http_port, head, pause=0.5)
        phase.cut_off += 1

    async def unread() -> None:
        stream = await pipeline_unread(run.http_port)
        if await until_server_lets_go(stream, run.http_port) < PIPELINED:
            phase.cut_off += 1

    phase.offenders = 3 * each
    async with trio.open_nursery() as nursery:
        for _ in range(each):
            nursery.start_soon(slowloris, slow_headers())
            nursery.start_soon(slowloris, slow_body(KEY))
            nursery.start_soon(unread)


async def prepare(run: Run, users: int) -> None:
    admin = await run.user("admin", roles=["developer"])
    run.bettor = await run.user("bettor", deposit="100000")
    async with open_websocket_url(run.ws_url(admin)) as ws:
        aws = WsClient(ws, admin["user_id"])
        game_id = await setup_game(aws)
        created = await aws.call(
            385, 350, game_id=game_id, action="goal", targets="argentina,brazil"
        )
        run.pool_id = created["pool_id"]
    for n in range(users):
        run.users.append(await run.user(f"abuser{n}"))


async def abuse(seconds: float, idle: int, workdir: Path) -> Run:
    phase_seconds = seconds / 6
    flags = ("--scrypt-n", str(CHEAP_SCRYPT_N), "--synchronous", "NORMAL")
    async with (
        running_server(workdir / "data", workdir / "server.log", *flags) as (proc, url, ws_port),
        client(url) as http,
    ):
        run = Run(url, ws_port, proc.pid, http)
        await prepare(run, max(idle // 8 + 1, 64))
        quiet = Phase("quiet")
        rss_before = run.rss()
        await bet_while(run, quiet, phase_seconds)
        run.phases.append(quiet)

        idle_phase = Phase(f"{idle} idle websockets")
        rss_idle = await holding_idle(run, idle, idle_phase, phase_seconds)
        idle_phase.notes = f"{(rss_idle - rss_before) / idle:,.0f} bytes per idle connection"

        readers, nonreaders = (
            Phase("flood, 32 readers", cpu_bound=True),
            Phase("flood, 8 never reading", cpu_bound=True),
        )
        await during(run, readers, phase_seconds, lambda: flood(run, readers, 32))
        unread = partial(flood_unread, run, nonreaders, 8)
        await during(run, nonreaders, phase_seconds, unread, ends=True)
        stormed = Phase("reconnect storm, 32 clients", cpu_bound=True)
        await during(run, stormed, phase_seconds, lambda: storm(run, stormed, 32))
        slow = Phase("slow HTTP, 20 of each kind")
        await during(run, slow, max(phase_seconds, 15), lambda: slow_http(run, slow, 20), ends=True)

        rss_after = run.rss()
        again = Phase(f"{idle} idle websockets again")
        rss_again = await holding_idle(run, idle, again, phase_seconds)
        audit = await http.get("/v1/audit")
        print(f"audit: {audit.text}")
        if audit.status_code != 200 or not audit.json()["ok"]:
            run.failures.append(f"audit: {audit.text}")
        report(run, idle, rss_before, rss_idle, rss_after, rss_again)
        return run


async def holding_idle(run: Run, idle: int, phase: Phase, seconds: float) -> int:
    """Bet while ``idle`` connections are held; returns the server's RSS with them."""
    async with trio.open_nursery() as holding:
        held = trio.Event()
        holding.start_soon(hold_idle, run, idle, phase, held)
        await held.wait()
        rss = run.rss()
        await during(run, phase, seconds, trio.sleep_forever)
        holding.cancel_scope.cancel()
    return rss


def report(
    run: Run, idle: int, rss_before: int, rss_idle: int, rss_after: int, rss_again: int
) -> None:
    quiet = run.phases[0].p99()
    print(f"quiet: bets {len(run.phases[0].latencies)}, p99 {quiet * 1000:.1f} ms")
    for phase in run.phases[1:]:
        p99 = phase.p99()
        kind = "floods and storms" if phase.cpu_bound else "holding connections"
        bound = max(BOUNDS[f"p99 ratio, {kind}"] * quiet, BOUNDS["p99 floor seconds"])
        print(
            f"{phase.name}: bets {len(phase.latencies)}, p99 {p99 * 1000:.1f} ms "
            f"(x{p99 / quiet:.2f} quiet), offenders {phase.offenders}, cut off "
            f"{phase.cut_off}, refused {phase.refused} {phase.notes}"
        )
        if p99 > bound:
            run.failures.append(f"{phase.name}: p99 {p99:.3f} s over {bound:.3f} s")
        if phase.name.startswith(("flood, 8", "slow")) and phase.cut_off < phase.offenders:
            run.failures.append(f"{phase.name}: {phase.cut_off}/{phase.offenders} cut off")
    per_idle = (rss_idle - rss_before) / idle
    regrowth = (rss_again - rss_idle) / 2**20
    print(
        f"RSS: before {rss_before / 2**20:.1f} MiB, with {idle} idle "
        f"{rss_idle / 2**20:.1f} MiB ({per_idle:,.0f} bytes each), after the abuse "
        f"{rss_after / 2**20:.1f} MiB, with {idle} idle again {rss_again / 2**20:.1f} MiB "
        f"({regrowth:+.1f} MiB on the first time)"
    )
    if per_idle > BOUNDS["bytes per idle connection"]:
        run.failures.append(f"{per_idle:.0f} bytes per idle connection")
    if regrowth > BOUNDS["RSS regrowth on a second idle round, MiB"]:
        run.failures.append(f"RSS grew {regrowth:.1f} MiB on the second idle round")
    print(f"bounds {BOUNDS}; failures {len(run.failures)}")
    for failure in run.failures:
        print("  FAIL", failure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--bettor", nargs=4, metavar=("URL", "USER", "POOL", "SECONDS"))
    args = parser.parse_args()
    if args.bettor:
        url, user_id, pool_id, seconds = args.bettor
        trio.run(bet, url, int(user_id), pool_id, float(seconds))
        return 0
    with TemporaryDirectory() as workdir:
        run = trio.run(abuse, args.seconds, args.idle, Path(workdir))
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
