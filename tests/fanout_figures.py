"""Figures for docs/cluster.md, "Broadcasts on every node": ``python -m tests.fanout_figures``.

1. Deliveries per second through Redis from one owner hub to one edge hub with N local
   subscribers (both hubs in this process, the stand-in Bus of the tests: one XADD per
   round trip, no pipelining).
2. The owner's extra CPU per broadcast for the mirror: ``Hub.to_game`` with and without
   a mirror (the Bus's ``send`` only queues), and with the XADDs written to Redis by the
   stand-in Bus (process CPU per broadcast, coredis included).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import coredis
import trio

from actors.hub import Hub
from cluster.broadcasts import Broadcaster, BroadcastReader
from tests.redis import start_server
from tests.test_cluster_fanout import StandInBus, render

GAME = "g1"
BROADCASTS = 5_000
BURST = 50  # broadcasts published between two checkpoints


class Counter:
    __slots__ = ("done", "pushes", "want")

    def __init__(self, want: int, done: trio.Event) -> None:
        self.pushes, self.want, self.done = 0, want, done

    def __call__(self, data: bytes) -> None:
        self.pushes += 1
        if self.pushes == self.want:
            self.done.set()


def owner_hub(bus: Any) -> Hub:
    hub = Hub(render)
    hub.reserve(GAME, 0, 10**9, lambda: True)
    if bus is not None:
        hub.mirror = Broadcaster(bus, 1)
    return hub


async def deliveries(url: str, subscribers: int) -> tuple[float, float]:
    """(broadcasts/s, deliveries/s) from the owner's ``to_game`` to the edge's last
    subscriber."""
    client = coredis.Redis.from_url(url)
    async with client, trio.open_nursery() as nursery:
        await client.delete([f"tote:ev:{GAME}"])
        bus = StandInBus(client, max_bytes=64 << 20)
        owner = owner_hub(bus)
        edge = Hub(render)
        reader = BroadcastReader(client, edge)
        edge.follow(GAME, 0)
        done = trio.Event()
        for _ in range(subscribers - 1):
            edge.join(GAME, Counter(-1, done))
        edge.join(GAME, Counter(BROADCASTS, done))
        await nursery.start(bus.run)
        await nursery.start(reader.run)
        started = time.perf_counter()
        await broadcast_all(owner)
        await done.wait()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return BROADCASTS / elapsed, BROADCASTS * subscribers / elapsed


async def broadcast_all(owner: Hub) -> None:
    """``BROADCASTS`` of about 200 bytes to the game, letting other tasks run after each
    ``BURST``."""
    for n in range(BROADCASTS):
        owner.to_game(GAME, {"n": n, "pad": "x" * 200})
        if n % BURST == 0:
            await trio.lowlevel.checkpoint()


class QueueOnly:
    """A Bus whose ``send`` only keeps the command (what the real one's queue does)."""

    def __init__(self) -> None:
        self.client = None
        self.queued: list[tuple[Any, ...]] = []

    def send(self, command: tuple[Any, ...], size: int) -> bool:
        self.queued.append(command)
        if len(self.queued) > 1_000:
            self.queued.clear()
        return True


async def mirror_cpu() -> tuple[float, float]:
    """µs of CPU per ``to_game`` without and with a mirror (no subscribers)."""
    best = [math.inf, math.inf]
    for _ in range(3):  # the best of three: the machine is shared
        for i, bus in enumerate((None, QueueOnly())):
            hub = owner_hub(bus)
            started = time.process_time()
            for n in range(50_000):
                hub.to_game(GAME, {"n": n, "pad": "x" * 200})
            best[i] = min(best[i], (time.process_time() - started) / 50_000 * 1e6)
    return best[0], best[1]


async def written_cpu(url: str) -> float:
    """µs of process CPU per broadcast with its XADD written to Redis (no reader)."""
    client = coredis.Redis.from_url(url)
    async with client, trio.open_nursery() as nursery:
        await client.delete([f"tote:ev:{GAME}"])
        bus = StandInBus(client, max_bytes=64 << 20)
        owner = owner_hub(bus)
        await nursery.start(bus.run)
        started = time.process_time()
        await broadcast_all(owner)
        await bus.drained()
        cpu = (time.process_time() - started) / BROADCASTS * 1e6
        nursery.cancel_scope.cancel()
    return cpu


async def main(url: str) -> None:
    figures: dict[str, Any] = {}
    for n in (1, 100, 1_000, 10_000):
        rate, delivered = await deliveries(url, n)
        figures[f"subscribers {n}"] = {
            "broadcasts/s": round(rate),
            "deliveries/s": round(delivered),
        }
    plain, mirrored = await mirror_cpu()
    figures["to_game µs CPU"] = {"no mirror": round(plain, 2), "mirror": round(mirrored, 2)}
    figures["µs CPU per broadcast written to Redis"] = round(await written_cpu(url), 1)
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    server = start_server()
    try:
        trio.run(main, server.url)
    finally:
        server.stop()
