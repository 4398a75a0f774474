"""The floor of a forward on this machine (docs/performance.md, "Cluster"): the crossings
of ``cluster/forward.py`` (the edge's XADD of a request, the owner's XREADGROUP BLOCK,
its XADD of the reply and XACK, the edge's XREAD BLOCK), one forward after the other, in
two processes, with nothing of tote: once on bare trio sockets (coredis's RESP parser
only), once through coredis's commands. ``python -m tests.forward_floor [N]`` starts a
throwaway Redis and prints the median and p99 of each; ``python -m tests.bench_forward``
times tote's own ``Forwarder`` and ``RequestServer`` on the same path."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import coredis
import trio
from coredis.parser import NotEnoughData, Parser
from coredis.retry import NoRetryPolicy

from tests.redis import start_server

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class Link(Protocol):
    """The four commands of a forward, whatever carries them."""

    async def xadd(self, stream: bytes, fields: dict[bytes, bytes]) -> None: ...
    async def xreadgroup(self, stream: bytes) -> Entries: ...
    async def xread(self, stream: bytes, last: bytes) -> Entries: ...
    async def xack(self, stream: bytes, identifier: bytes) -> None: ...


def pack(*arguments: bytes | int) -> bytes:
    """One RESP command."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        raw = argument if isinstance(argument, bytes) else str(argument).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"".join(parts)


def entries(reply: Any, stream: bytes) -> Entries:
    """A stream's entries out of an XREAD/XREADGROUP reply (RESP3: a map)."""
    found = dict(reply or {}).get(stream) or []
    return [(ident, dict(zip(values[::2], values[1::2], strict=True))) for ident, values in found]


class Bare:
    """Commands on a trio socket of their own, one at a time (a blocking read and the
    writes each get one)."""

    def __init__(self, read: trio.SocketStream, write: trio.SocketStream) -> None:
        self.streams = {"read": (read, Parser()), "write": (write, Parser())}

    @classmethod
    async def connect(cls, port: int) -> Bare:
        read = await trio.open_tcp_stream("127.0.0.1", port)
        return cls(read, await trio.open_tcp_stream("127.0.0.1", port))

    async def call(self, use: str, *arguments: bytes | int) -> Any:
        stream, parser = self.streams[use]
        await stream.send_all(pack(*arguments))
        while isinstance(reply := parser.parse(decode=False, encoding="utf-8"), NotEnoughData):
            parser.feed(await stream.receive_some(65536))
        return reply[1]

    async def xadd(self, stream: bytes, fields: dict[bytes, bytes]) -> None:
        await self.call("write", b"XADD", stream, b"*", *(x for f in fields.items() for x in f))

    async def xreadgroup(self, stream: bytes) -> Entries:
        got = await self.call(
            "read", b"XREADGROUP", b"GROUP", b"g", b"c", b"BLOCK", 1000, b"STREAMS", stream, b">"
        )
        return entries(got, stream)

    async def xread(self, stream: bytes, last: bytes) -> Entries:
        got = await self.call("read", b"XREAD", b"BLOCK", 1000, b"STREAMS", stream, last)
        return entries(got, stream)

    async def xack(self, stream: bytes, identifier: bytes) -> None:
        await self.call("write", b"XACK", stream, b"g", identifier)


class Library:
    """The same commands through one coredis client, as ``cluster.bus.Bus`` holds it."""

    def __init__(self, client: coredis.Redis[bytes]) -> None:
        self.client = client

    async def xadd(self, stream: bytes, fields: dict[bytes, bytes]) -> None:
        await self.client.xadd(stream, fields)  # type: ignore[arg-type]

    async def xreadgroup(self, stream: bytes) -> Entries:
        got = await self.client.xreadgroup("g", "c", {stream: ">"}, block=1000)
        return [(e.identifier, dict(e.field_values)) for e in (got or {}).get(stream, ())]

    async def xread(self, stream: bytes, last: bytes) -> Entries:
        got = await self.client.xread({stream: last}, block=1000)
        return [(e.identifier, dict(e.field_values)) for e in (got or {}).get(stream, ())]

    async def xack(self, stream: bytes, identifier: bytes) -> None:
        await self.client.xack(stream, "g", [identifier])


async def make_group(port: int) -> None:
    bus = await Bare.connect(port)
    await bus.call("write", b"XGROUP", b"CREATE", b"fl:rq", b"g", b"$", b"MKSTREAM")


@asynccontextmanager
async def link(kind: str, port: int) -> AsyncIterator[Link]:
    """A ``Bare`` or a ``Library`` link to Redis, closed on the way out."""
    if kind == "bare":
        bare = await Bare.connect(port)
        yield bare
        for stream, _ in bare.streams.values():
            await stream.aclose()
        return
    url = f"redis://127.0.0.1:{port}/0"
    client: coredis.Redis[bytes] = coredis.Redis.from_url(url, retry_policy=NoRetryPolicy())
    async with client:
        yield Library(client)


async def owner(kind: str, port: int) -> None:
    """Answer every request of ``fl:rq`` on ``fl:rp``, then acknowledge it."""
    async with link(kind, port) as bus:
        print("ready", flush=True)
        while True:
            for identifier, fields in await bus.xreadgroup(b"fl:rq"):
                await bus.xadd(b"fl:rp", {b"i": fields[b"i"], b"r": b"x" * 60})
                await bus.xack(b"fl:rq", identifier)


async def edge(kind: str, port: int, count: int) -> list[float]:
    """``count`` forwards, one after the other: each one's seconds."""
    waiting: dict[bytes, trio.Event] = {}
    samples = []

    async def replies(bus: Link) -> None:
        last = b"$"
        while True:
            for identifier, fields in await bus.xread(b"fl:rp", last):
                last = identifier
                if (arrived := waiting.pop(fields[b"i"], None)) is not None:
                    arrived.set()

    async with link(kind, port) as bus, trio.open_nursery() as nursery:
        nursery.start_soon(replies, bus)
        await trio.sleep(0.1)  # the reader blocks on the stream before the first forward
        for i in range(count):
            key = waiting[b"%d" % i] = trio.Event()
            started = time.perf_counter()
            await bus.xadd(b"fl:rq", {b"i": b"%d" % i, b"m": b"y" * 80})
            await key.wait()
            samples.append(time.perf_counter() - started)
        nursery.cancel_scope.cancel()
    return samples


async def measure(kind: str, port: int, count: int) -> list[float]:
    """The owner in a process of its own (killed and reaped after), the edge here."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.forward_floor", "owner", kind, str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(30):
            await process.stdout.receive_some()  # "ready"
        return await edge(kind, port, count)
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def main() -> None:
    if sys.argv[1:2] == ["owner"]:
        trio.run(owner, sys.argv[2], int(sys.argv[3]))
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    redis = start_server()
    try:
        trio.run(make_group, redis.port)
        for kind in ("bare", "coredis"):
            ordered = sorted(trio.run(measure, kind, redis.port, count))
            p50, p99 = statistics.median(ordered), ordered[int(len(ordered) * 0.99)]
            print(f"{kind:8} forward ({count}): p50 {p50 * 1000:.3f} ms  p99 {p99 * 1000:.3f} ms")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
