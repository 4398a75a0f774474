"""The benchmark: tote against its transport's limit, with the server in its own process.

``tote bench`` (or ``make bench``, ``python -m tote.bench``) starts each server on a fresh
temporary database in a process of its own and drives it from client processes, so that
the server's CPU and memory can be read from /proc and the clients do not share its loop.
With ``--database postgresql://…`` the servers keep their books in that PostgreSQL
database instead (the scenarios share it; each names its users and source afresh).
Scenarios (docs/performance.md says what each figure means):

- **bets**: connections placing bets across the pools of a live game, each waiting for
  its 356: bets/s and server CPU per bet at saturation, then latency at a fixed rate;
- **echo**: a bare trio-websocket echo server, the same clients and pattern: the ceiling;
- **settle**: one pool with many bets, then the event: time until the last 362/815 is
  out, and the longest event-loop stall seen by a ping client meanwhile;
- **fanout**: subscribers join one game while bets flow: joins that failed, the lag of
  360s from their ``t``, and the server's memory per connection.

``tote bench --cluster N`` (``tote.bench_cluster``, which builds on this module) measures a
cluster of N nodes instead.

The two servers run as hidden commands of this module (``_serve-tote``, ``_serve-echo``);
the tote server is ``tote serve`` with the per-connection rate limit and the cap on
websocket connections per address lifted (every client is 127.0.0.1), because the
benchmark measures capacity, not those policies. With ``TOTE_BENCH_PROFILE=PATH`` it runs
under cProfile and writes the profile to PATH when it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import queue
import re
import secrets
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import httpx
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, WebSocketRequest, open_websocket_url, serve_websocket
from wsproto.frame_protocol import FrameProtocol

from actors.registry import handshake_digest
from domain.codec import decode, encode
from kit.settings import Settings

#: (user_id, session_key) of one websocket client
Login = tuple[int, str]
#: counters shared with the client processes: progress, event time, 815s since, stop
Shared = dict[str, Any]

SIZES = {
    "full": {
        "connections": 64,
        "seconds": 10.0,
        "paced_rate": 1000,
        "settle_bets": 100_000,
        "subscribers": 10_000,
        "sample": 100,
        "beside_rate": 500,
        "forward_rate": 100,
    },
    "quick": {
        "connections": 32,
        "seconds": 4.0,
        "paced_rate": 1000,
        "settle_bets": 5_000,
        "subscribers": 300,
        "sample": 30,
        "beside_rate": 500,
        "forward_rate": 40,
    },
}
STAKE = "0.01"
JOIN_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- the servers, each in its own process ---------------------------------------------


def die_with_parent() -> None:
    """End this process (SIGTERM) when the benchmark that started it ends, even by SIGKILL
    (a timed-out test), so that no server or client is left behind: a daemon thread
    watches for the parent to change. (Linux's PR_SET_PDEATHSIG fires when the parent's
    *thread* ends, and trio starts a process from a worker thread that ends after 10 s
    idle: it stopped servers in the middle of a run.)"""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _serve_tote(data_dir: str) -> None:
    from tote.server import ServerConfig, serve_until_signalled

    settings = Settings(rate_per_second=1e9, rate_burst=10**9, ws_connections_per_address=10**9)
    config = ServerConfig(
        data_dir=Path(data_dir),
        database=os.environ.get("TOTE_DATABASE"),
        redis=os.environ.get("TOTE_REDIS"),  # a cluster node (tote.bench_cluster)
        node_id=os.environ.get("TOTE_NODE_ID"),
        ws_port=0,
        http_port=0,
        operator_key=os.environ["TOTE_OPERATOR_KEY"],
        settings=settings,
    )
    profile_path = os.environ.get("TOTE_BENCH_PROFILE")
    if not profile_path:
        trio.run(serve_until_signalled, config)
        return
    import cProfile  # where the server's time goes: docs/performance.md reads it

    steps = TaskSteps()
    with cProfile.Profile() as profile:
        trio.run(serve_until_signalled, config, instruments=[steps])
    profile.dump_stats(profile_path)
    Path(f"{profile_path}.steps.json").write_text(json.dumps(steps.counts.most_common()))


class TaskSteps(trio.abc.Instrument):
    """Task steps (switches) by task name, for a profile: how many a bet takes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        frame = getattr(task.coro, "cr_frame", None)
        owner = frame.f_locals.get("self") if frame is not None else None
        self.counts[f"{task.name} ({type(owner).__name__})" if owner else task.name] += 1


def _serve_echo(_data_dir: str) -> None:
    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            return

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, echo, "127.0.0.1", 0, None)
            print(f"echo ready: websocket ws://127.0.0.1:{server.port}", flush=True)

    trio.run(run)


SERVERS: dict[str, Callable[..., None]] = {"_serve-tote": _serve_tote, "_serve-echo": _serve_echo}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc (0 once it has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


class ServerProcess:
    """A server started as ``python -m tote.bench _serve-…``; its ports come from the
    ready line it prints, its CPU and memory from /proc."""

    def __init__(self, process: trio.Process, ws_port: int, http_port: int | None) -> None:
        self.process = process
        self.ws_port = ws_port
        self.http_port = http_port

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def memory_kb(self, name: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        return 0


class Gauged(Protocol):
    """What a scenario reads of its server (or of the nodes of a cluster, summed)."""

    def cpu_seconds(self) -> float: ...
    def memory_kb(self, name: str = "VmRSS") -> int: ...


@dataclass(frozen=True)
class Target:
    """What every tote server of a run is started with: the operator key, and the
    database (None: SQLite in the scenario's temporary directory; a PostgreSQL URL is
    shared by the scenarios, each of which names its users and source afresh); for a
    node of a cluster (``tote bench --cluster``), Redis and the node's id."""

    key: str
    database: str | None = None
    redis: str | None = None
    node_id: str | None = None

    def env(self) -> dict[str, str]:
        chosen = {
            "TOTE_OPERATOR_KEY": self.key,
            "TOTE_DATABASE": self.database,
            "TOTE_REDIS": self.redis,
            "TOTE_NODE_ID": self.node_id,
        }
        env = {name: value for name, value in os.environ.items() if name not in chosen}
        return env | {name: value for name, value in chosen.items() if value is not None}


@asynccontextmanager
async def server_process(kind: str, data_dir: str, target: Target) -> AsyncIterator[ServerProcess]:
    """Start a server process, yield it once it listens, stop it (SIGTERM, then kill)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tote.bench", kind, data_dir],
        stdout=subprocess.PIPE,
        env=target.env(),
    )
    try:
        text = b""
        with trio.fail_after(30):
            while b"ready" not in text or not text.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise RuntimeError(f"{kind} exited before it was ready: {text!r}")
                text += chunk
        ws = re.search(rb"ws://[^:]+:(\d+)", text)
        http = re.search(rb"http://[^:]+:(\d+)", text)
        assert ws is not None, text
        yield ServerProcess(process, int(ws[1]), int(http[1]) if http else None)
    finally:
        with trio.CancelScope(shield=True):
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


# -- the clients, in processes of their own ---------------------------------------------


def port_for(job: dict[str, Any], n: int) -> int:
    """The port of a job's ``n``-th connection: the nodes' ports in turn (``ports``, a
    cluster), else its one ``port``."""
    ports = job.get("ports") or [job["port"]]
    return int(ports[n % len(ports)])


def ws_url(port: int, login: Login) -> str:
    nonce = secrets.token_hex(8)
    digest = handshake_digest(login[0], nonce, login[1])
    return f"ws://127.0.0.1:{port}/?id={login[0]}&n={nonce}&h={digest}"


async def round_trip(ws: Any, op: int, request_id: str, **fields: Any) -> dict[str, Any]:
    """Send one request and wait for its answer (the echo server answers with the request
    itself), skipping the pushes that come in between."""
    await ws.send_message(encode({"header": {"request_id": request_id}, "op": op, **fields}))
    while True:
        msg = decode(await ws.get_message())
        header = msg.get("response_header") or msg.get("header") or {}
        if header.get("request_id") == request_id:
            return msg


def _add(value: Any, amount: float = 1) -> None:
    with value.get_lock():
        value.value += amount


async def bettor(job: dict[str, Any], shared: Shared, n: int, login: Login, out: dict) -> None:
    """One connection placing bets (spaced ``interval`` apart, or as fast as the replies
    come) until the job's end or count; with ``listen`` it then counts the 815s that an
    event sends, until told to stop."""
    try:
        async with open_websocket_url(ws_url(job["port"], login)) as ws:
            _add(shared["ready"])
            await _wait_for(lambda: shared["start_at"].value, math.inf)
            await place_bets(ws, job, shared, n, out)
            while job.get("listen"):
                if '"res":815' in await ws.get_message() and shared["event_at"].value:
                    with shared["after_event"].get_lock():
                        shared["after_event"].value += 1
                        shared["last_push"].value = time.time()
    except (ConnectionClosed, OSError, trio_websocket.HandshakeError):
        out["failed"] += 1


async def place_bets(ws: Any, job: dict[str, Any], shared: Shared, n: int, out: dict) -> None:
    """Bets until the job's end or count. Paced connections bet together, a burst each
    ``interval``, unless the job ``spread``s them over it (the number of connections
    sharing it; ``shift``: this job's offset, in steps, beside another's)."""
    pools, count, interval = job["pools"], job.get("count", math.inf), job.get("interval", 0)
    await trio.sleep(max(0.0, shared["start_at"].value - time.time()))
    end = shared["start_at"].value + job.get("seconds", math.inf)
    steps = job.get("spread")
    due = trio.current_time() + (interval * (n + job.get("shift", 0)) / steps if steps else 0)
    i = 0
    while time.time() < end and i < count:
        if interval:
            due += interval
            await trio.sleep_until(due)
        started = time.perf_counter()
        fields = {"pool_id": pools[(n + i) % len(pools)], "target": "ab"[i % 2]}
        reply = await round_trip(ws, 392, f"b{i}", amount=STAKE, **fields)
        if reply.get("res") in (356, None):  # None: the echo sent the bet back
            out["latencies"].append(time.perf_counter() - started)
        else:
            out["failed"] += 1
        i += 1
        _add(shared["progress"])


async def subscriber(job: dict[str, Any], shared: Shared, n: int, login: Login, out: dict) -> None:
    """Join the game, then record the lag of every 360 from its ``t`` until told to stop
    (``t`` read on this machine's monotonic clock: ``server_clock``), and the port it came
    through."""
    joined = False
    try:
        async with trio.open_nursery() as nursery:
            async with job["limiter"]:  # handshakes and joins in flight
                port = port_for(job, n)
                ws = await trio_websocket.connect_websocket_url(nursery, ws_url(port, login))
                with trio.move_on_after(JOIN_TIMEOUT):
                    reply = await round_trip(ws, 363, "join", game_id=job["game_id"])
                    joined = reply["res"] == 333
            _add(shared["progress"])
            if not joined:
                out["failed"] += 1
                await ws.aclose()
                return
            while True:
                raw = await ws.get_message()
                if '"res":360' in raw and shared["recording"].value:
                    sent = decode(raw)["response_header"]["t"] - job["clock"]
                    out["lags"].append(time.monotonic() * 1000 - sent)
                    out["lag_ports"].append(port)
    except (ConnectionClosed, OSError, trio_websocket.HandshakeError):
        if not joined:
            _add(shared["progress"])
        out["failed"] += 1


async def server_clock(port: int, login: Login) -> float:
    """The server's ``t`` less this machine's monotonic clock (ms), from the best of 5
    pings (within their round trip): a constant for the server's life, its clock being
    the monotonic one anchored to the wall clock once at its start (``kit.clock``). A lag
    read against the wall clock grew with the server's age wherever the wall clock drifts
    from the monotonic one (5 ms/s on the development machine)."""
    offsets = []
    async with open_websocket_url(ws_url(port, login)) as ws:
        for i in range(5):
            reply = await round_trip(ws, 1, f"clock{i}")
            offsets.append(reply["response_header"]["t"] - time.monotonic() * 1000)
    return max(offsets)


#: A lean reader's handshakes and joins in flight at once, per client process.
LEAN_BATCH = 64
LEAN_HANDSHAKE = (
    "GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Joining:
    """A lean reader between its connect and its 333: what it has read so far."""

    __slots__ = ("received", "upgraded")

    def __init__(self) -> None:
        self.received = b""
        self.upgraded = False


class LeanReaders:
    """Thousands of subscribers in one plain process: raw sockets that do the handshake
    and the join (363), then drain what they are sent without parsing it, so that the
    clients' CPU does not hide the server's (a JSON-decoding client costs far more per
    frame than the server's send of it). One selector loop: the joined are drained while
    the others join, ``LEAN_BATCH`` at a time."""

    def __init__(self, job: dict[str, Any], shared: Shared) -> None:
        self.job = job
        self.shared = shared
        self.selector = selectors.DefaultSelector()
        self.failed = 0
        self.joining = 0
        join = encode({"header": {"request_id": "join"}, "op": 363, "game_id": job["game_id"]})
        self.join_frame = bytes(FrameProtocol(client=True, extensions=[]).send_data(join, True))

    def run(self) -> dict[str, Any]:
        logins = list(reversed(list(enumerate(self.job["logins"]))))
        while logins or self.joining or not self.shared["stop"].value:
            while logins and self.joining < LEAN_BATCH:
                self.connect(*logins.pop())
            for key, _ in self.selector.select(0.2):
                self.read(key)
        return {"latencies": [], "lags": [], "lag_ports": [], "failed": self.failed}

    def connect(self, n: int, login: Login) -> None:
        port = port_for(self.job, n)
        sock = socket.create_connection(("127.0.0.1", port), JOIN_TIMEOUT)
        path = ws_url(port, login).split("/", 3)[3]
        sock.sendall(LEAN_HANDSHAKE.format(path=path).encode())
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, Joining())
        self.joining += 1

    def read(self, key: selectors.SelectorKey) -> None:
        """Take what the socket holds: drop it once joined, else look for the 101 and then
        the 333. A socket the server closed, or a refusal, counts as a failure."""
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        received, ended = [], False
        try:
            while chunk := sock.recv(262144):
                received.append(chunk)
            ended = True
        except BlockingIOError:
            pass
        except OSError:
            ended = True
        state = key.data
        if state is not None:
            state.received += b"".join(received)
            ended = ended or not self.advance(sock, state)
        if ended:
            self.end(sock, state)

    def advance(self, sock: socket.socket, state: Joining) -> bool:
        """Move a joining socket on; False when it was refused."""
        if not state.upgraded and b"\r\n\r\n" in state.received:
            head, _, state.received = state.received.partition(b"\r\n\r\n")
            if b" 101 " not in head:
                return False
            state.upgraded = True
            sock.send(self.join_frame)  # a few bytes into an empty socket: taken whole
        if state.upgraded and b'"res":333' in state.received:
            self.selector.modify(sock, selectors.EVENT_READ, None)  # joined: drain only
            self.joining -= 1
            with self.shared["progress"].get_lock():
                self.shared["progress"].value += 1
        return b'"res":666' not in state.received

    def end(self, sock: socket.socket, state: Joining | None) -> None:
        self.selector.unregister(sock)
        sock.close()
        self.failed += 1
        if state is not None:  # it never joined
            self.joining -= 1
            with self.shared["progress"].get_lock():
                self.shared["progress"].value += 1


async def _stop_when_told(shared: Shared, scope: trio.CancelScope) -> None:
    await _wait_for(lambda: shared["stop"].value, math.inf)
    scope.cancel()


async def _client_job(job: dict[str, Any], shared: Shared) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "lags": [], "lag_ports": [], "failed": 0}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_when_told, shared, nursery.cancel_scope)
        async with trio.open_nursery() as work:
            if job["kind"] == "subscribe":
                job["limiter"] = trio.CapacityLimiter(64)  # handshakes in flight
                for n, login in enumerate(job["logins"]):
                    work.start_soon(subscriber, job, shared, n, login, out)
            else:
                for n, login in enumerate(job["logins"]):
                    work.start_soon(bettor, job, shared, n, login, out)
        nursery.cancel_scope.cancel()
    return out


def _client_process(job: dict[str, Any], shared: Shared, results: Any) -> None:
    import resource

    die_with_parent()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if job["kind"] == "lean":
        results.put(LeanReaders(job, shared).run())
    else:
        results.put(trio.run(_client_job, job, shared))


class Clients:
    """Client processes, each running a job over its share of the logins; the counters
    they share with this process say how far they got and tell them to stop."""

    def __init__(self, processes: int) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.processes = processes
        names = {
            "progress": "d",
            "ready": "i",
            "start_at": "d",
            "event_at": "d",
            "after_event": "i",
            "last_push": "d",
            "stop": "i",
            "recording": "i",
        }
        self.shared: Shared = {name: self.context.Value(kind, 0) for name, kind in names.items()}
        self.pids: list[int] = []

    def reset(self) -> None:
        for value in self.shared.values():
            value.value = 0

    def go(self, delay: float = 0.0) -> float:
        """Let the connected bettors start, ``delay`` seconds from now; their start."""
        start = self.shared["start_at"].value = time.time() + delay
        return start

    async def connected(self, count: int) -> None:
        """Wait until ``count`` bettors are connected and waiting for ``go``."""
        await _wait_for(lambda: self.shared["ready"].value >= count, math.inf)

    def stop(self) -> None:
        self.shared["stop"].value = 1

    async def run_into(self, results: dict, job: dict[str, Any], logins: list[Login]) -> None:
        results.update(await self.run(job, logins))

    async def run(self, job: dict[str, Any], logins: list[Login]) -> dict[str, Any]:
        """Run ``job`` over ``logins`` split between the processes; the merged results."""
        results = self.context.Queue()
        workers = [
            self.context.Process(
                target=_client_process,
                args=({**job, "logins": logins[i :: self.processes]}, self.shared, results),
                daemon=True,
            )
            for i in range(min(self.processes, len(logins)))
        ]
        for worker in workers:
            worker.start()
        self.pids = [worker.pid for worker in workers if worker.pid is not None]
        merged: dict[str, Any] = {"latencies": [], "lags": [], "lag_ports": [], "failed": 0}
        try:
            for _ in workers:
                out = await trio.to_thread.run_sync(
                    _next_result, results, workers, abandon_on_cancel=True
                )
                for name in merged:
                    merged[name] += out[name]
        finally:
            with trio.CancelScope(shield=True):
                for worker in workers:
                    await trio.to_thread.run_sync(worker.join, 10)
                    if worker.is_alive():
                        worker.kill()
        return merged


def _next_result(results: Any, workers: list[Any]) -> dict[str, Any]:
    """The next client process's results; an error once every process has ended without
    leaving one (one that crashed has printed its traceback)."""
    while True:
        with contextlib.suppress(queue.Empty):
            return results.get(timeout=1)
        if not any(worker.is_alive() for worker in workers):
            with contextlib.suppress(queue.Empty):
                return results.get(timeout=1)  # put just before its process ended
            raise RuntimeError("a client process ended without its results")


# -- set-up over the operator API -------------------------------------------------------


class Operator:
    """Users with sessions (and money) through the HTTP API; a game through the admin."""

    def __init__(self, server: ServerProcess, target: Target) -> None:
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.http_port}",
            headers={"Authorization": f"Bearer {target.key}"},
            timeout=60,
        )
        # names no earlier scenario took, should they share a database (PostgreSQL)
        self.tag = secrets.token_hex(3)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST, sent again once if the server closed the kept-alive connection before
        reading it (hypercorn closes one after 1,000 requests): nothing was done."""
        try:
            return await self.http.post(path, **kwargs)
        except httpx.RemoteProtocolError:
            return await self.http.post(path, **kwargs)

    async def logins(self, count: int, prefix: str, deposit: str | None = None) -> list[Login]:
        logins: list[Login] = []
        roles = ["developer"] if prefix == "admin" else []
        for i in range(count):
            name = f"{prefix}{i}-{self.tag}"
            created = await self.post("/v1/users", json={"name": name, "roles": roles})
            user_id = created.json()["user_id"]
            session = await self.post(f"/v1/users/{user_id}/sessions")
            if deposit is not None:
                await self.post(
                    f"/v1/users/{user_id}/deposits",
                    json={"currency": "EUR", "amount": deposit, "reference": name},
                )
            logins.append((user_id, session.json()["session_key"]))
        return logins

    async def game(self, ws: Any, pools: int) -> tuple[str, list[str]]:
        """A source, an open game and ``pools`` open pools. The admin does not join the
        game: a 360 shows a game admin every bet, and an admin that does not read would
        fill its outbox."""
        source = await round_trip(ws, 365, "s", source_name=f"bench-{self.tag}")
        game = await round_trip(
            ws,
            370,
            "g",
            source_id=source["source_id"],
            game_name="A - B",
            actions="goal",
            targets="a,b",
        )
        game_id = game["game_id"]
        await round_trip(ws, 616, "a", game_id=game_id)
        pool_ids = []
        for i in range(pools):
            pool = await round_trip(ws, 385, f"p{i}", game_id=game_id, action="goal", targets="a,b")
            pool_ids.append(pool["pool_id"])
        return game_id, pool_ids


# -- the scenarios ----------------------------------------------------------------------


@asynccontextmanager
async def progress(label: str, shared: Shared, unit: str) -> AsyncIterator[None]:
    """A line that shows a long run is alive while the block runs: rewritten every second
    on a terminal, a new one every ten seconds otherwise."""
    terminal = sys.stderr.isatty()

    async def show() -> None:
        for tick in itertools.count(1):
            await trio.sleep(1)
            line = f"  {label}: {tick} s, {shared['progress'].value:,.0f} {unit}"
            if terminal:
                print(f"\r{line:<70}", end="", file=sys.stderr, flush=True)
            elif tick % 10 == 0:
                print(line, file=sys.stderr, flush=True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(show)
        try:
            yield
        finally:
            nursery.cancel_scope.cancel()
            if terminal:
                print(f"\r{'':<70}\r", end="", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll a counter the client processes update (they cannot wake a trio event)."""
    with trio.move_on_after(timeout):
        while True:
            if predicate():
                return True
            await trio.sleep(0.05)
    return False


async def measure_round_trips(
    size: dict[str, Any], clients: Clients, target: Target, tmp: Path, *, echo: bool
) -> dict[str, Any]:
    """Bets (or echoes) as fast as the replies come, then (bets only) at a fixed rate."""
    kind, name = ("_serve-echo", "echo") if echo else ("_serve-tote", "bets")
    connections = size["connections"]
    async with server_process(kind, str(tmp / name), target) as server:
        if echo:
            logins: list[Login] = [(i, "echo") for i in range(connections)]
            pools = ["echo"]
        else:
            operator = Operator(server, target)
            (admin,) = await operator.logins(1, "admin")
            logins = await operator.logins(connections, "bettor", deposit="100000")
            async with open_websocket_url(ws_url(server.ws_port, admin)) as admin_ws:
                _, pools = await operator.game(admin_ws, 20)
        phases = (
            {"saturated": 0.0}
            if echo
            else {"saturated": 0.0, "paced": connections / size["paced_rate"]}
        )
        figures: dict[str, Any] = {}
        for phase, interval in phases.items():
            clients.reset()
            job = {"kind": "bets", "port": server.ws_port, "pools": pools, "interval": interval}
            job["seconds"] = size["seconds"]
            merged: dict[str, Any] = {}
            async with (
                progress(f"{name} ({phase})", clients.shared, "round trips"),
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(clients.run_into, merged, job, logins)
                await clients.connected(len(logins))
                await trio.sleep_until(trio.current_time() + clients.go(0.1) - time.time())
                cpu = server.cpu_seconds()
            cpu = server.cpu_seconds() - cpu
            latencies = merged["latencies"]
            figures[phase] = {
                "round_trips": len(latencies),
                "failed": merged["failed"],
                "per_second": round(len(latencies) / size["seconds"], 1),
                "cpu_us_per_round_trip": round(cpu / max(len(latencies), 1) * 1e6, 1),
                "latency_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
                "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
                "latency_max_ms": round(max(latencies, default=math.nan) * 1000, 2),
            }
        figures["peak_rss_kb"] = server.memory_kb("VmHWM")
    return figures


async def measure_settle(size: dict[str, Any], clients: Clients, target: Target, tmp: Path) -> dict:
    """One pool with many bets, then its event; a ping client times the loop's stalls."""
    connections = size["connections"]
    per_connection = math.ceil(size["settle_bets"] / connections)
    placed = per_connection * connections
    async with server_process("_serve-tote", str(tmp / "settle"), target) as server:
        operator = Operator(server, target)
        admin, probe, watcher = await operator.logins(3, "admin")
        logins = await operator.logins(connections, "bettor", deposit="100000")
        async with (
            open_websocket_url(ws_url(server.ws_port, admin)) as admin_ws,
            open_websocket_url(ws_url(server.ws_port, probe)) as probe_ws,
            open_websocket_url(ws_url(server.ws_port, watcher)) as watcher_ws,
        ):
            game_id, pools = await operator.game(admin_ws, 1)
            clients.reset()
            job = {"kind": "bets", "port": server.ws_port, "pools": pools, "listen": True}
            job["count"] = per_connection
            stall = 0.0
            async with trio.open_nursery() as nursery:
                nursery.start_soon(clients.run, job, logins)
                clients.go()
                async with progress("settle (placing bets)", clients.shared, "bets"):
                    # at least 20 bets/s, or something is wrong (a bettor has failed)
                    done = clients.shared["progress"]
                    if not await _wait_for(lambda: done.value >= placed, 60 + placed / 20):
                        raise RuntimeError(f"{done.value:.0f} of {placed} bets were placed")

                async def ping() -> None:
                    nonlocal stall
                    for i in itertools.count():
                        sent = time.perf_counter()
                        await round_trip(probe_ws, 1, f"ping{i}")
                        stall = max(stall, time.perf_counter() - sent)

                await round_trip(watcher_ws, 363, "join", game_id=game_id)  # hears the 362
                nursery.start_soon(ping)
                await trio.sleep(0.5)
                stall = 0.0
                event_at = clients.shared["event_at"].value = time.time()
                request = {"header": {"request_id": "event"}, "op": 395, "game_id": game_id}
                await admin_ws.send_message(
                    encode({**request, "action_id": "goal", "target_id": "a"})
                )
                while '"res":362' not in await watcher_ws.get_message():
                    pass
                resolved_at = time.time()
                # every bettor hears of its balance (815); allow for one that does not
                await _wait_for(lambda: clients.shared["after_event"].value >= connections, 30)
                clients.stop()
                nursery.cancel_scope.cancel()
        return {
            "bets": placed,
            "seconds": round(max(resolved_at, clients.shared["last_push"].value) - event_at, 3),
            "max_stall_ms": round(stall * 1000, 1),
            "balance_pushes": clients.shared["after_event"].value,
            "peak_rss_kb": server.memory_kb("VmHWM"),
        }


async def measure_fanout(size: dict[str, Any], clients: Clients, target: Target, tmp: Path) -> dict:
    """Bets at ``beside_rate`` with no audience; then ``subscribers`` join one game (lean
    readers in ``clients``' processes, ``sample`` full clients in one more) while 100
    bets/s flow into 4 of its pools; then, for ``seconds``, the lag of the 360s the full
    clients get and the CPU of the server and of the clients; last, the bets at
    ``beside_rate`` again, beside the audience."""
    subscribers, sample = size["subscribers"], min(size["sample"], size["subscribers"])
    async with server_process("_serve-tote", str(tmp / "fanout"), target) as server:
        operator = Operator(server, target)
        (admin,) = await operator.logins(1, "admin")
        bettors = await operator.logins(4 + BESIDE_CONNECTIONS, "bettor", deposit="100000")
        per_user = Settings().max_connections_per_user
        watchers = await operator.logins(math.ceil(subscribers / per_user), "watcher")
        logins = [watchers[i // per_user] for i in range(subscribers)]
        async with open_websocket_url(ws_url(server.ws_port, admin)) as admin_ws:
            game_id, pools = await operator.game(admin_ws, 4)
        clock = await server_clock(server.ws_port, admin)
        beside = partial(paced_bets, size, server.ws_port, pools, bettors[4:])
        alone = await beside()
        audience = Audience(clients, [server.ws_port], game_id, clock)
        background = Clients(1)
        background.go()
        bets = {"kind": "bets", "port": server.ws_port, "pools": pools, "interval": 4 / 100}
        rss_before = server.memory_kb()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(background.run, bets, bettors[:4])
            nursery.start_soon(audience.run, logins[sample:], logins[:sample])
            figures = await audience.steady(server, rss_before, size["seconds"])
            with_audience = await beside()
            audience.stop()
            background.stop()
        figures |= audience.figures(figures)
        figures["bet_latency_p99_ms_alone"] = alone["latency_p99_ms"]
        figures["bet_latency_p99_ms_audience"] = with_audience["latency_p99_ms"]
        figures["peak_rss_kb"] = server.memory_kb("VmHWM")
        return figures


#: Connections placing the bets run beside the audience (each bets every 40 ms at 500/s).
BESIDE_CONNECTIONS = 20


async def paced_bets(
    size: dict[str, Any], port: int, pools: list[str], logins: list[Login]
) -> dict[str, Any]:
    """Bets at ``beside_rate`` in all for ``seconds``: their latency."""
    clients = Clients(1)
    job = {"kind": "bets", "port": port, "pools": pools, "seconds": size["seconds"]}
    job["interval"] = len(logins) / size["beside_rate"]
    merged: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clients.run_into, merged, job, logins)
        await clients.connected(len(logins))
        clients.go(0.1)
    latencies = merged["latencies"]
    return {"latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 2)}


class Audience:
    """The subscribers of one game: lean readers in the benchmark's client processes, and
    a sample of full clients (trio-websocket, JSON-decoding) in one more process, which
    time the 360s they get while ``recording`` (``clock``: the ``server_clock`` of the
    server that renders them). Each connects to the ``ports`` in turn (the nodes of a
    cluster; one port for one server)."""

    def __init__(self, lean: Clients, ports: list[int], game_id: str, clock: float) -> None:
        self.lean = lean
        self.full = Clients(1)
        self.job = {"ports": ports, "game_id": game_id, "clock": clock}
        self.results: dict[str, Any] = {}
        self.expected = 0
        self.sampled = 0

    async def run(self, lean: list[Login], full: list[Login]) -> None:
        """Join them all, hold them until ``stop``; their merged results."""
        self.lean.reset()
        self.expected, self.sampled = len(lean) + len(full), len(full)
        lean_results: dict[str, Any] = {}
        full_results: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.lean.run_into, lean_results, {"kind": "lean", **self.job}, lean)
            job = {"kind": "subscribe", **self.job}
            nursery.start_soon(self.full.run_into, full_results, job, full)
        self.results = {
            "failed": lean_results.get("failed", 0) + full_results["failed"],
            "lags": full_results["lags"],
            "lag_ports": full_results["lag_ports"],
        }

    def joined(self) -> float:
        return self.lean.shared["progress"].value + self.full.shared["progress"].value

    async def steady(self, server: Gauged, rss_before: int, seconds: float) -> dict[str, Any]:
        """Once every subscriber has joined (or failed): the server's memory growth, then
        ``seconds`` of 360s timed by the sample, with the CPU of the server and clients."""
        async with progress("fanout (joining)", self.lean.shared, "joined"):
            await _wait_for(lambda: self.expected and self.joined() >= self.expected, math.inf)
        rss_joined = server.memory_kb()
        pids = [*self.lean.pids, *self.full.pids]
        server_start, clients_start = server.cpu_seconds(), sum(map(cpu_seconds, pids))
        self.full.shared["recording"].value = 1
        await trio.sleep(seconds)
        self.full.shared["recording"].value = 0
        return {
            "subscribers": self.expected,
            "memory_per_connection_kb": round((rss_joined - rss_before) / self.expected, 1),
            "server_cpu_seconds": server.cpu_seconds() - server_start,
            "clients_cpu_seconds": sum(map(cpu_seconds, pids)) - clients_start,
            "seconds": seconds,
        }

    def stop(self) -> None:
        self.lean.stop()
        self.full.stop()

    def lags_by_port(self) -> dict[int, list[float]]:
        """The sample's lags, by the port (the node) each subscriber joined through."""
        by_port: dict[int, list[float]] = {}
        for lag, port in zip(self.results["lags"], self.results["lag_ports"], strict=True):
            by_port.setdefault(port, []).append(lag)
        return by_port

    def figures(self, steady: dict[str, Any]) -> dict[str, Any]:
        """The lag figures, and the CPU per delivery (each 360 the sample got stands for
        one to every subscriber; the server's CPU includes the bets flowing meanwhile)."""
        lags = self.results["lags"]
        deliveries = len(lags) / max(self.sampled, 1) * self.expected
        return {
            "joins_failed": self.results["failed"],
            "deliveries_360": round(deliveries),
            "lag_p50_ms": round(percentile(lags, 0.5), 1),
            "lag_p99_ms": round(percentile(lags, 0.99), 1),
            "server_cpu_us_per_delivery": round(
                steady["server_cpu_seconds"] / max(deliveries, 1) * 1e6, 2
            ),
            "server_cpu_share": round(steady["server_cpu_seconds"] / steady["seconds"], 2),
            "clients_cpu_share": round(steady["clients_cpu_seconds"] / steady["seconds"], 2),
        }


# -- the whole run ----------------------------------------------------------------------


def _bets_figures(bets: dict[str, Any]) -> dict[str, Any]:
    return {
        "bets_per_second": bets["saturated"]["per_second"],
        "bet_latency_p50_ms": bets["paced"]["latency_p50_ms"],
        "bet_latency_p99_ms": bets["paced"]["latency_p99_ms"],
        "bet_latency_saturated_p99_ms": bets["saturated"]["latency_p99_ms"],
        "server_cpu_us_per_bet": bets["saturated"]["cpu_us_per_round_trip"],
        "bets_failed": bets["saturated"]["failed"] + bets["paced"]["failed"],
    }


def _echo_figures(echo: dict[str, Any]) -> dict[str, Any]:
    return {
        "echo_round_trips_per_second": echo["saturated"]["per_second"],
        "echo_cpu_us_per_round_trip": echo["saturated"]["cpu_us_per_round_trip"],
    }


def _settle_figures(settle: dict[str, Any]) -> dict[str, Any]:
    return {
        "settle_seconds": settle["seconds"],
        "settle_bets": settle["bets"],
        "settle_max_stall_ms": settle["max_stall_ms"],
    }


def _fanout_figures(fanout: dict[str, Any]) -> dict[str, Any]:
    return {
        "fanout_subscribers": fanout["subscribers"],
        "fanout_joins_failed": fanout["joins_failed"],
        "fanout_p50_ms": fanout["lag_p50_ms"],
        "fanout_p99_ms": fanout["lag_p99_ms"],
        "memory_per_connection_kb": fanout["memory_per_connection_kb"],
        "fanout_server_cpu_us_per_delivery": fanout["server_cpu_us_per_delivery"],
        "fanout_server_cpu_share": fanout["server_cpu_share"],
        "fanout_clients_cpu_share": fanout["clients_cpu_share"],
        "bet_latency_p99_ms_alone": fanout["bet_latency_p99_ms_alone"],
        "bet_latency_p99_ms_audience": fanout["bet_latency_p99_ms_audience"],
    }


#: scenario -> (measure, its flat figures)
SCENARIOS: dict[str, tuple[Callable[..., Any], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "bets": (partial(measure_round_trips, echo=False), _bets_figures),
    "echo": (partial(measure_round_trips, echo=True), _echo_figures),
    "settle": (measure_settle, _settle_figures),
    "fanout": (measure_fanout, _fanout_figures),
}


async def run_once(
    size: dict[str, Any], processes: int, scenarios: list[str], database: str | None = None
) -> dict[str, Any]:
    """The scenarios once, each on a fresh server (on ``database``, or a fresh SQLite
    file); the flat figures of the issue, then each scenario's own."""
    clients = Clients(processes)
    target = Target(secrets.token_hex(32), database)
    figures: dict[str, Any] = {}
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tote-bench-") as tmp_name:
        for name in scenarios:
            measure, flat = SCENARIOS[name]
            details[name] = await measure(size, clients, target, Path(tmp_name))
            figures |= flat(details[name])
    if "bets_per_second" in figures and "echo_round_trips_per_second" in figures:
        ratio = figures["bets_per_second"] / max(figures["echo_round_trips_per_second"], 1e-9)
        figures["bets_to_echo_ratio"] = round(ratio, 3)
    figures["peak_rss_kb"] = {name: found["peak_rss_kb"] for name, found in details.items()}
    figures["scenarios"] = details
    return figures


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs, with its range; every run kept as well."""
    summary: dict[str, Any] = {}
    for name, first in runs[0].items():
        if isinstance(first, int | float):
            values = [run[name] for run in runs]
            summary[name] = statistics.median(values)
            if len(runs) > 1:
                summary[f"{name}_range"] = [min(values), max(values)]
    summary["peak_rss_kb"] = {
        scenario: statistics.median(run["peak_rss_kb"][scenario] for run in runs)
        for scenario in runs[0]["peak_rss_kb"]
    }
    summary["runs"] = runs
    return summary


def table(summary: dict[str, Any]) -> str:
    rows = [(name, value) for name, value in summary.items() if name not in ("runs",)]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tote bench", description="Measure tote against a bare websocket echo server."
    )
    parser.add_argument("--quick", action="store_true", help="a run of under a minute")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--repeat", type=int, default=1, help="runs; medians are reported")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument(
        "--database",
        help="postgresql://USER:PASS@HOST:PORT/DB: the servers keep their books there "
        "(default: SQLite, a fresh file per scenario)",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="instead of the scenarios: N nodes of a cluster, bets through the owner and "
        "through an edge, and the fan-out spread over the nodes (needs --database and --redis)",
    )
    parser.add_argument("--redis", help="redis://HOST:PORT/DB, for --cluster")
    parser.add_argument(
        "--scenarios",
        type=lambda text: text.split(","),
        default=list(SCENARIOS),
        help=f"comma-separated, of {','.join(SCENARIOS)} (default: all)",
    )
    for name in SIZES["full"]:
        kind = float if name == "seconds" else int
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help="overrides the size")
    return parser


#: ``tote bench --cluster``'s run (``tote.bench_cluster.cluster_run``): given the parser,
#: the options and the size, one run's figures (the parser's error for bad options)
ClusterRun = Callable[[argparse.ArgumentParser, argparse.Namespace, dict[str, Any]], Any]


def main(argv: list[str] | None = None, cluster: ClusterRun | None = None) -> int:
    """Run the benchmark (or, as a hidden command, one of its servers); ``--cluster`` with
    ``cluster`` (``tote bench`` passes it: this module does not import it)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SERVERS:
        die_with_parent()
        SERVERS[argv[0]](*argv[1:])
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"no such scenario: {', '.join(sorted(unknown))}")
    size = dict(SIZES["quick" if args.quick else "full"])
    for name in size:
        if getattr(args, name) is not None:
            size[name] = getattr(args, name)
    once = partial(run_once, size, args.processes, args.scenarios, args.database)
    if args.cluster is not None:
        if cluster is None:
            parser.error("--cluster: run it as `tote bench --cluster N`")
        once = cluster(parser, args, size)
    runs = []
    for n in range(args.repeat):
        print(f"run {n + 1} of {args.repeat}: {size}", file=sys.stderr, flush=True)
        runs.append(trio.run(once))
    summary = summarize(runs)
    print(table(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
