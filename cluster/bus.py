"""A node's link to Redis (docs/cluster.md, "Requests to the owner"): one coredis client,
one publisher task for what must keep its order, and the reader of the node's own reply
stream.

coredis multiplexes plain commands over pooled connections and gives each blocking one
(XREAD/XREADGROUP BLOCK, SUBSCRIBE) a connection of its own for as long as it blocks, so
one client serves every reader here. It never retries a command by itself (a request
sent twice would be run twice). Every call is under a deadline; after Redis restarts the
pool connects again on the next call, and each loop here waits a growing pause (at most
``MAX_PAUSE``) between failed attempts instead of spinning.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from itertools import islice
from typing import Any

import coredis
import trio
from coredis.exceptions import RedisError
from coredis.response._callbacks import NoopCallback
from coredis.retry import NoRetryPolicy

log = logging.getLogger(__name__)

#: How long one plain Redis call may take before it counts as failed.
CALL_SECONDS = 2.0
#: How long a blocking read waits for an entry before it asks again.
BLOCK_MS = 1000
#: The longest pause between attempts while Redis does not answer.
MAX_PAUSE = 1.0
#: What the publisher queue holds at most, in bytes, before ``send`` drops.
QUEUE_BYTES = 8 * 1024 * 1024
#: Replies kept in a node's reply stream (approximately: MAXLEN ~).
REPLY_STREAM_LENGTH = 10_000


#: Commands the publisher sends in one pipeline (one round trip) at most.
PIPELINE = 256
#: What a command of a few short arguments counts against the publisher queue.
COMMAND_BYTES = 64


#: What a caller gets for a reply without its answer: an unknown outcome (the owner did
#: answer, and may have applied it).
MALFORMED_REPLY = b""


def _bytes(name: Any) -> bytes:
    return name if isinstance(name, bytes) else str(name).encode()


async def _outcome(request: Awaitable[Any]) -> object:
    """A pipelined command's answer, or the RedisError it was refused with."""
    try:
        return await request
    except RedisError as error:
        return error


def reply_stream(node_id: str) -> str:
    """The stream a node reads its replies from (``tote:rp:<node_id>``)."""
    return f"tote:rp:{node_id}"


class Pause:
    """A growing pause between failed attempts at Redis: 0.05 s doubling up to
    ``MAX_PAUSE``, back to the start after a success."""

    def __init__(self) -> None:
        self._next = 0.05

    async def wait(self) -> None:
        await trio.sleep(self._next)
        self._next = min(self._next * 2, MAX_PAUSE)

    def reset(self) -> None:
        self._next = 0.05


class Bus:
    """One Redis client for a node, startable. ``send`` queues a command for the one
    publisher task (in order, bounded in bytes); ``expect`` / ``forget`` register the
    replies the reply reader hands over by request id."""

    def __init__(self, url: str, node_id: str, *, queue_bytes: int = QUEUE_BYTES) -> None:
        self.node_id = node_id
        self.replies = reply_stream(node_id)
        self.client: coredis.Redis[bytes] = coredis.Redis.from_url(
            url, connect_timeout=CALL_SECONDS, retry_policy=NoRetryPolicy()
        )
        self._queue: deque[tuple[tuple[Any, ...], int]] = deque()
        self._queued_bytes = 0
        self._queue_bytes = queue_bytes
        self._work = trio.Event()
        self._waiters: dict[bytes, Callable[[bytes], None]] = {}
        #: commands ``send`` refused (queue full) or Redis refused (not a lost connection)
        self.dropped = 0
        #: told of each command Redis refused; True: expected (a stale broadcast), counted
        #: by the caller (``cluster.broadcasts.Broadcaster.refused``)
        self.on_refused: Callable[[RedisError], bool] | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect (lazily: Redis may be down at start) and run the publisher and the reply
        reader until cancelled."""
        async with self.client, trio.open_nursery() as nursery:
            nursery.start_soon(self._publish)
            nursery.start_soon(self._read_replies)
            task_status.started()

    async def call(self, name: bytes, *arguments: Any) -> Any:
        """One command now, under ``CALL_SECONDS`` (trio.TooSlowError past it); raises
        coredis' RedisError (ConnectionError when Redis cannot be reached)."""
        with trio.fail_after(CALL_SECONDS):
            return await self.client.create_request(name, *arguments, callback=NoopCallback())

    async def call_all(self, *commands: tuple[Any, ...]) -> None:
        """Several commands now, in order, in one round trip (a pipeline), under
        ``CALL_SECONDS``; raises the first RedisError any of them met."""
        with trio.fail_after(CALL_SECONDS):
            async with self.client.pipeline(transaction=False) as pipe:
                for name, *arguments in commands:
                    pipe.create_request(_bytes(name), *arguments, callback=NoopCallback())

    def send(self, command: tuple[Any, ...], size: int) -> bool:
        """Queue ``command`` (its name, then its arguments) for the publisher, after every
        command queued before it; False (dropped, counted) when the queue holds its bound."""
        if self._queued_bytes + size > self._queue_bytes:
            self.dropped += 1
            return False
        self._queue.append((command, size))
        self._queued_bytes += size
        self._work.set()
        return True

    def expect(self, request_id: bytes, deliver: Callable[[bytes], None]) -> None:
        """Hand the reply to ``request_id`` (its bytes) to ``deliver`` when it comes."""
        self._waiters[request_id] = deliver

    def forget(self, request_id: bytes) -> None:
        self._waiters.pop(request_id, None)

    async def _publish(self) -> None:
        """Send the queue in order, up to ``PIPELINE`` commands a round trip (one awaited
        command at a time costs a round trip each: about 0.4 ms against 0.02 ms)."""
        pause = Pause()
        while True:
            await self._work.wait()
            self._work = trio.Event()
            while self._queue:
                batch = list(islice(self._queue, PIPELINE))
                if await self._try_publishing([command for command, _ in batch], pause):
                    for _ in batch:
                        self._queued_bytes -= self._queue.popleft()[1]

    async def _try_publishing(self, commands: list[tuple[Any, ...]], pause: Pause) -> bool:
        """True when the commands are done with (sent, or refused by Redis itself:
        ``on_refused`` or counted); False after a pause when Redis could not be reached
        (the same commands go again, in order: an XADD with its own id that got there is
        then refused as stale, a PUBLISH sent twice is a balance told twice)."""
        try:
            with trio.fail_after(CALL_SECONDS):
                async with self.client.pipeline(transaction=False, raise_on_error=False) as pipe:
                    requests: list[Awaitable[Any]] = [
                        pipe.create_request(_bytes(name), *arguments, callback=NoopCallback())
                        for name, *arguments in commands
                    ]
                for request in requests:
                    self._judge(await _outcome(request), commands)
        except (coredis.exceptions.ConnectionError, OSError, trio.TooSlowError):
            await pause.wait()
            return False
        pause.reset()
        return True

    def _judge(self, outcome: object, commands: list[tuple[Any, ...]]) -> None:
        """A command's answer: a refusal is the caller's (``on_refused``) or counted."""
        if not isinstance(outcome, RedisError):
            return
        if isinstance(outcome, coredis.exceptions.ConnectionError):
            raise outcome
        if self.on_refused is None or not self.on_refused(outcome):
            self.dropped += 1
            log.warning("redis_refused", extra={"command": commands[0][0], "error": str(outcome)})

    async def _read_replies(self) -> None:
        """XREAD the node's reply stream from its start (a reply that came before the
        first read is still delivered), forever; what was read is trimmed away."""
        pause = Pause()
        last: bytes | str = b"0-0"
        while True:
            try:
                with trio.fail_after(BLOCK_MS / 1000 + CALL_SECONDS):
                    got = await self.client.xread({self.replies: last}, count=512, block=BLOCK_MS)
            except (RedisError, trio.TooSlowError):
                await pause.wait()
                continue
            pause.reset()
            entries = (got or {}).get(self.replies.encode(), ())
            for entry in entries:
                last = entry.identifier
                self._deliver(entry.field_values)
            if entries:  # keep the stream to what is unread (the last one stays)
                self.send(("XTRIM", self.replies, "MINID", last), COMMAND_BYTES)

    def _deliver(self, fields: Mapping[Any, Any]) -> None:
        deliver = self._waiters.pop(fields.get(b"i", b""), None)
        reply = fields.get(b"r")
        if deliver is None:  # its caller gave up: its outcome was unknown to it
            return
        if not isinstance(reply, bytes):  # no owner of this version wrote it
            log.error("reply_malformed", extra={"fields": list(fields)})
            reply = MALFORMED_REPLY
        deliver(reply)
