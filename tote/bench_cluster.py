"""``tote bench --cluster N``: a cluster of N nodes on this machine (docs/cluster.md), and
what issue 22 asks of it (docs/performance.md, "Cluster").

It needs ``--database postgresql://…`` and ``--redis redis://…``. It starts ``node-0``
(``python -m tote.bench _serve-tote``: ``tote serve``'s start-up with the rate limits
lifted, with ``TOTE_REDIS`` and ``TOTE_NODE_ID``), waits until it holds the ``games``
lease, then starts ``node-1`` … as edges, and measures:

- **forwarding**: bets at ``--forward-rate`` in all, half the connections on the owner
  and half on an edge (node-1), at the same time into the same pools: the latency of
  each, what the edge adds, and a Redis PING's round trip meanwhile;
- **fan-out**: 100 bets/s into one game through the owner while ``--subscribers`` join
  it on the owner alone, then N times ``--subscribers`` spread over the N nodes, then as many
  on the owner alone: each phase's 360 lag (``tote.bench.Audience``) and deliveries/s.

Every node is stopped (SIGTERM, then SIGKILL) and reaped on the way out.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import open_websocket_url

from cluster.lease import GAMES_LEASE
from kit.settings import Settings
from storage.dialect import Engine, engine_of
from storage.leases import LeaseStore
from tote import bench
from tote.bench import (
    Audience,
    Clients,
    Login,
    Operator,
    ServerProcess,
    Target,
    percentile,
    server_clock,
    ws_url,
)

#: How long the first node may take to hold the games lease once it is ready.
OWNER_SECONDS = 60.0
#: Redis hosts that are this machine (its CPU is read from /proc).
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Bets/s flowing into the fan-out's game (as in ``tote.bench.measure_fanout``).
FANOUT_BETS_PER_SECOND = 100


class Nodes:
    """The cluster's node processes, the owner first; their CPU and memory summed (what
    ``Audience.steady`` reads of its server). Each CPU reading is kept per process, with
    Redis's (``redis_pid``, when it runs on this machine), for ``shares``."""

    def __init__(self, servers: list[ServerProcess], redis_pid: int | None = None) -> None:
        self.servers = servers
        self.redis_pid = redis_pid
        self.readings: list[list[float]] = []

    @property
    def owner(self) -> ServerProcess:
        return self.servers[0]

    def ports(self) -> list[int]:
        return [server.ws_port for server in self.servers]

    def cpu_seconds(self) -> float:
        reading = [server.cpu_seconds() for server in self.servers]
        redis = bench.cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        self.readings.append([*reading, redis])
        return sum(reading)

    def shares(self, seconds: float) -> dict[str, float]:
        """The CPU seconds per second of each node and of Redis between the last two
        readings (``Audience.steady``'s timed seconds)."""
        names = [f"node-{i}" for i in range(len(self.servers))] + ["redis"]
        before, after = self.readings[-2:]
        return {
            n: round((b - a) / seconds, 2) for n, a, b in zip(names, before, after, strict=True)
        }

    def memory_kb(self, name: str = "VmRSS") -> int:
        return sum(server.memory_kb(name) for server in self.servers)


@asynccontextmanager
async def cluster(
    count: int, target: Target, tmp: Path, redis_pid: int | None = None
) -> AsyncIterator[Nodes]:
    """``node-0`` until it holds the lease, then ``node-1`` … (edges); every one stopped
    and reaped on the way out (``server_process``), the edges first. Raises RuntimeError
    when node-0 does not take the lease within ``OWNER_SECONDS``."""
    assert target.database is not None
    store = LeaseStore(target.database)
    try:
        before = await trio.to_thread.run_sync(store.owner, GAMES_LEASE)
        async with AsyncExitStack() as stack:
            servers = []
            for i in range(count):
                node = replace(target, node_id=f"node-{i}")
                started = bench.server_process("_serve-tote", str(tmp / f"node-{i}"), node)
                servers.append(await stack.enter_async_context(started))
                if i == 0:
                    await owner_taken(store, "node-0", before.epoch if before else 0)
            yield Nodes(servers, redis_pid)
    finally:
        store.close()


async def owner_taken(store: LeaseStore, node_id: str, after_epoch: int) -> None:
    """Until ``node_id`` holds the games lease at an epoch above ``after_epoch`` (a lease
    left by an earlier run does not count); RuntimeError past ``OWNER_SECONDS``."""
    with trio.move_on_after(OWNER_SECONDS):
        while True:
            view = await trio.to_thread.run_sync(store.owner, GAMES_LEASE)
            if view and view.node_id == node_id and view.epoch > after_epoch and not view.expired:
                return
            await trio.sleep(0.1)
    raise RuntimeError(f"{node_id} did not take the games lease in {OWNER_SECONDS:.0f} s")


# -- forwarding: bets through the owner and through an edge, at once -----------------


async def measure_forwarding(
    size: dict[str, Any], nodes: Nodes, target: Target, redis: str
) -> dict[str, Any]:
    """Bets at ``forward_rate`` in all for ``seconds``, half the connections on the owner,
    half on node-1 (none with one node), each at its own moment of the interval, owner
    and edge in turn (a burst of all at once would measure the owner's batching); a
    Redis PING timed every 10 ms meanwhile."""
    operator = Operator(nodes.owner, target)
    (admin,) = await operator.logins(1, "admin")
    sides = dict(zip(("owner", "edge"), nodes.servers, strict=False))
    per_side = max(1, size["connections"] // len(sides))
    logins = await operator.logins(per_side * len(sides), "bettor", deposit="100000")
    async with open_websocket_url(ws_url(nodes.owner.ws_port, admin)) as admin_ws:
        _, pools = await operator.game(admin_ws, 20)
    job = {"kind": "bets", "pools": pools, "seconds": size["seconds"], "spread": per_side}
    job["interval"] = per_side * len(sides) / size["forward_rate"]
    results: dict[str, dict[str, Any]] = {name: {} for name in sides}
    pings: list[float] = []
    async with trio.open_nursery() as nursery:
        clients = {name: Clients(1) for name in sides}
        for i, (name, server) in enumerate(sides.items()):
            share = logins[i * per_side : (i + 1) * per_side]
            paced = {**job, "port": server.ws_port, "shift": i / len(sides)}  # owner, edge in turn
            nursery.start_soon(clients[name].run_into, results[name], paced, share)
        for side in clients.values():
            await side.connected(per_side)
        for side in clients.values():
            side.go(0.1)
        await redis_pings(redis, size["seconds"], pings)
    return forwarding_figures(results, pings)


async def redis_pid(url: str) -> int | None:
    """The Redis server's process id (``INFO server``), None when it is not on this
    machine (its CPU is then not read; a process /proc does not show reads as 0 s)."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 6379)
    async with stream:
        await stream.send_all(b"INFO server\r\n")
        text = b""
        with trio.fail_after(5):
            while b"process_id:" not in text or not text.endswith(b"\r\n"):
                text += await stream.receive_some()
    found = re.search(rb"process_id:(\d+)", text)
    return int(found[1]) if found and parts.hostname in LOOPBACK else None


async def redis_pings(url: str, seconds: float, out: list[float]) -> None:
    """PING round trips to Redis over a socket of its own, one every 10 ms, into ``out``:
    what one hop of a forward costs at that moment."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname or "127.0.0.1", parts.port or 6379)
    async with stream:
        end = trio.current_time() + seconds
        while trio.current_time() < end:
            sent = time.perf_counter()
            await stream.send_all(b"PING\r\n")
            await stream.receive_some(64)  # "+PONG\r\n": one small read
            out.append(time.perf_counter() - sent)
            await trio.sleep(0.01)


def forwarding_figures(results: dict[str, dict[str, Any]], pings: list[float]) -> dict:
    """Each side's p50/p99 in ms, the edge's excess over the owner's, and the ping."""

    def ms(values: list[float], fraction: float) -> float:
        return round(percentile(values, fraction) * 1000, 2)

    figures: dict[str, Any] = {"redis_ping_p50_ms": ms(pings, 0.5)}
    for name, merged in results.items():
        figures[f"bet_{name}_p50_ms"] = ms(merged["latencies"], 0.5)
        figures[f"bet_{name}_p99_ms"] = ms(merged["latencies"], 0.99)
        figures[f"bet_{name}_count"] = len(merged["latencies"])
        figures[f"bet_{name}_failed"] = merged["failed"]
    if "edge" in results:
        for q in ("p50", "p99"):
            edge, owner = figures[f"bet_edge_{q}_ms"], figures[f"bet_owner_{q}_ms"]
            figures[f"forward_added_{q}_ms"] = round(edge - owner, 2)
            figures[f"forward_{q}_ratio"] = round(edge / owner, 2) if owner else math.nan
    return figures


# -- fan-out: subscribers on the owner alone, and spread over the nodes ---------------


def fanout_phases(subscribers: int, nodes: Nodes) -> list[tuple[str, list[int], int]]:
    """(name, ports, subscribers) of each phase: ``subscribers`` on the owner; with more
    nodes, N times as many spread over the N nodes, then as many on the owner."""
    one = [("one_node", [nodes.owner.ws_port], subscribers)]
    count = len(nodes.servers)
    if count == 1:
        return one
    total = subscribers * count
    return [*one, ("spread", nodes.ports(), total), ("one_node_same", one[0][1], total)]


async def measure_spread(
    size: dict[str, Any], clients: Clients, nodes: Nodes, target: Target
) -> dict[str, dict[str, Any]]:
    """The fan-out phases in turn, with ``FANOUT_BETS_PER_SECOND`` flowing into 4 pools
    of the game through the owner throughout."""
    operator = Operator(nodes.owner, target)
    (admin,) = await operator.logins(1, "admin")
    bettors = await operator.logins(4, "bettor", deposit="100000")
    async with open_websocket_url(ws_url(nodes.owner.ws_port, admin)) as admin_ws:
        game_id, pools = await operator.game(admin_ws, 4)
    clock = await server_clock(nodes.owner.ws_port, admin)  # the owner renders the 360s
    background = Clients(1)
    background.go()
    bets = {"kind": "bets", "port": nodes.owner.ws_port, "pools": pools}
    bets["interval"] = len(bettors) / FANOUT_BETS_PER_SECOND
    phases: dict[str, dict[str, Any]] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(background.run, bets, bettors)
        for name, ports, count in fanout_phases(size["subscribers"], nodes):
            audience = Audience(clients, ports, game_id, clock)
            watchers = await watching(operator, name, count)
            phases[name] = await audience_phase(size, audience, nodes, watchers)
            phases[name]["nodes"] = len(ports)
        background.stop()
    return phases


async def watching(operator: Operator, phase: str, count: int) -> list[Login]:
    """``count`` logins for subscribers: users of the phase's own, each for as many
    connections as a user may have."""
    per_user = Settings().max_connections_per_user
    watchers = await operator.logins(math.ceil(count / per_user), f"{phase}-watcher")
    return [watchers[i // per_user] for i in range(count)]


async def audience_phase(
    size: dict[str, Any], audience: Audience, nodes: Nodes, logins: list[Login]
) -> dict[str, Any]:
    """A subscriber for each of ``logins`` joined through ``audience``, ``seconds`` of 360s
    timed, then let go: the figures of ``Audience.figures`` and the deliveries/s."""
    sample = min(size["sample"], len(logins))
    rss_before = nodes.memory_kb()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(audience.run, logins[sample:], logins[:sample])
        steady = await audience.steady(nodes, rss_before, size["seconds"])
        audience.stop()
    figures = steady | audience.figures(steady)
    figures["cpu_shares"] = nodes.shares(size["seconds"])
    by_port = audience.lags_by_port()
    figures["lag_p99_ms_by_node"] = {
        f"node-{i}": round(percentile(by_port[port], 0.99), 1)
        for i, port in enumerate(nodes.ports())
        if port in by_port
    }
    figures["deliveries_per_second"] = round(figures["deliveries_360"] / size["seconds"])
    return figures


def fanout_figures(phases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each phase's flat figures, and the spread's lag p99 over the owner alone's: with
    N times the subscribers (``one_node``), and with as many (``one_node_same``)."""
    figures: dict[str, Any] = {}
    for name, phase in phases.items():
        for key in ("subscribers", "joins_failed", "lag_p50_ms", "lag_p99_ms"):
            figures[f"{name}_{key}"] = phase[key]
        figures[f"{name}_deliveries_per_second"] = phase["deliveries_per_second"]
        figures[f"{name}_nodes_cpu_share"] = phase["server_cpu_share"]
        figures[f"{name}_clients_cpu_share"] = phase["clients_cpu_share"]
        for process, share in phase["cpu_shares"].items():
            figures[f"{name}_cpu_share_{process}"] = share
        for node, lag in phase["lag_p99_ms_by_node"].items():
            figures[f"{name}_lag_p99_ms_{node}"] = lag
    if "spread" in phases:
        spread = phases["spread"]["lag_p99_ms"]
        for other in ("one_node", "one_node_same"):
            alone = phases[other]["lag_p99_ms"]
            figures[f"spread_to_{other}_p99_ratio"] = (
                round(spread / alone, 2) if alone else math.nan
            )
    return figures


# -- the run ---------------------------------------------------------------------------


async def run_cluster(
    size: dict[str, Any], processes: int, count: int, database: str, redis: str
) -> dict[str, Any]:
    """One run: ``count`` nodes started, forwarding and fan-out measured, nodes stopped."""
    load = os.getloadavg()[0]
    target = Target(secrets.token_hex(32), database, redis)
    with tempfile.TemporaryDirectory(prefix="tote-bench-cluster-") as tmp:
        async with cluster(count, target, Path(tmp), await redis_pid(redis)) as nodes:
            forwarding = await measure_forwarding(size, nodes, target, redis)
            fanout = await measure_spread(size, Clients(processes), nodes, target)
            peak = {f"node-{i}": s.memory_kb("VmHWM") for i, s in enumerate(nodes.servers)}
    return {
        "nodes": count,
        "load_average_at_start": load,
        **forwarding,
        **fanout_figures(fanout),
        "peak_rss_kb": peak,
        "scenarios": {"forwarding": forwarding, "fanout": fanout},
    }


def cluster_run(
    parser: argparse.ArgumentParser, args: argparse.Namespace, size: dict[str, Any]
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """``run_cluster`` with the options, once they are checked (``parser.error`` exits
    when --cluster is below 1, --database is not PostgreSQL or --redis is missing)."""
    if args.cluster < 1:
        parser.error("--cluster: at least 1 node")
    if engine_of(args.database or "") is not Engine.POSTGRESQL:
        parser.error("--cluster needs --database postgresql://USER:PASS@HOST:PORT/DB")
    if not args.redis:
        parser.error("--cluster needs --redis redis://HOST:PORT/DB")
    return partial(run_cluster, size, args.processes, args.cluster, args.database, args.redis)


def main(argv: list[str] | None = None) -> int:
    """``tote bench``, with ``--cluster``."""
    return bench.main(argv, cluster=cluster_run)


if __name__ == "__main__":
    sys.exit(main())
