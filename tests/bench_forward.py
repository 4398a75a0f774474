"""What forwarding adds to an ask (issue 22, target: at most 2 ms p50 per bet):
``.venv/bin/python -m tests.bench_forward [N]`` starts a throwaway Redis and an owner
process (an actor that answers a ``PlaceBet`` at once, behind a RequestServer), then
times N asks of such an actor in this process (local) and N through Redis Streams as an
edge's (codec, XADD, XREADGROUP, the owner's local ask, XADD of the reply, XREAD), one
after the other. Prints the median and p99 of each, in ms."""

from __future__ import annotations

import statistics
import sys
import time
from functools import partial
from typing import Any

import trio

from actors.pool import protocol as p
from cluster.bus import Bus
from cluster.forward import Forwarder, RequestServer
from kit.runtime import Actor, Mailbox, Supervisor
from tests.redis import start_server


class Echo(Actor):
    async def handle(self, body: Any) -> Any:
        return p.BetPlaced("pool", "bet", body.target, body.amount, "EUR", 2)


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"p50 {statistics.median(ordered) * 1000:.3f} ms  p99 {p99 * 1000:.3f} ms"


async def timed(ask: Any, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await ask(p.PlaceBet(i, "brazil", 100 + i, ""))
        samples.append(time.perf_counter() - started)
    return samples


async def echo_actor(nursery: trio.Nursery) -> Mailbox:
    supervisor = Supervisor()
    await nursery.start(supervisor.run)

    async def echo(inbox: Mailbox) -> Echo:
        return Echo(inbox)

    return await supervisor.spawn("pool:p", echo)


async def owner(url: str) -> None:
    """The owner process: the echo actor behind a RequestServer, until killed."""
    async with trio.open_nursery() as nursery:
        box = await echo_actor(nursery)
        bus = Bus(url, "owner")
        await nursery.start(bus.run)

        async def handle(key: str, message: Any, remaining: float) -> Any:
            return await box.ask(message, timeout=remaining)

        await nursery.start(RequestServer(bus, handle, "owner/1").run)
        print("ready", flush=True)


async def main(n: int) -> None:
    redis = start_server()
    try:
        async with trio.open_nursery() as nursery:
            box = await echo_actor(nursery)
            edge = Bus(redis.url, "edge")
            await nursery.start(edge.run)
            command = [sys.executable, "-m", "tests.bench_forward", "--owner", redis.url]
            owning = await nursery.start(partial(trio.run_process, command, check=False))
            forwarder = Forwarder(edge)

            async def local(message: Any) -> Any:
                return await box.ask(message, timeout=5)

            async def forwarded(message: Any) -> Any:
                return await forwarder.ask("pool:p", message, 5)

            await timed(local, 100)  # warm up both paths
            await timed(forwarded, 100)
            here, there = await timed(local, n), await timed(forwarded, n)
            added = [b - a for a, b in zip(sorted(here), sorted(there), strict=True)]
            print(f"local ask     ({n}): {quantiles(here)}")
            print(f"forwarded ask ({n}): {quantiles(there)}")
            print(f"added (quantile by quantile): {quantiles(added)}")
            owning.kill()
            nursery.cancel_scope.cancel()
    finally:
        redis.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--owner"]:
        trio.run(owner, sys.argv[2])
    else:
        trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
