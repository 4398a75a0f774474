"""Requests to the owner through Redis Streams (docs/cluster.md, "Requests to the owner").

An edge's ``Forwarder.ask`` appends ``{i: request id, r: reply stream, d: deadline (epoch
ms), k: key, m: message}`` to ``tote:rq`` and waits, at most its timeout, for the reply on
its own stream. The owner's ``RequestServer`` reads ``tote:rq`` in the consumer group
``owner`` and runs each entry through ``handle(key, message, remaining)`` (the node's
local ask), a bounded number at a time, then appends the reply and acknowledges the
entry. What a caller cannot know is an unknown outcome, as for a local actor: no reply in
time (``REQUEST_TIMED_OUT``), a request that may have reached Redis before its connection
failed (``UNAVAILABLE``), a request an earlier owner had read and not answered
(``ACTOR_RESTARTED``, answered by the next owner without running it).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import coredis
import msgspec
import trio
from coredis.exceptions import (
    RedisError,
    StreamConsumerGroupError,
    StreamDuplicateConsumerGroupError,
)

from cluster import codec
from cluster.bus import BLOCK_MS, CALL_SECONDS, REPLY_STREAM_LENGTH, Bus, Pause
from domain.errors import DomainError, ErrorCode, OutcomeUnknown

log = logging.getLogger(__name__)

#: The request stream every node appends to and the owner reads.
REQUESTS = "tote:rq"
#: Its consumer group (one: the owner's consumers, one per owner and epoch).
GROUP = "owner"
#: Requests kept in the stream (approximately): far more than an owner ever has unread.
REQUEST_STREAM_LENGTH = 100_000
#: Requests the owner runs at once; it reads no more while that many are running.
CONCURRENCY = 256
#: Of the time a request has left, what the owner keeps back for its reply to travel.
REPLY_MARGIN = 0.05

#: Held answers (``Later``) the owner waits for at once, beside its ``CONCURRENCY``.
HELD_WAITS = 4_096

Handle = Callable[[str, Any, float], Awaitable[Any]]


@dataclass(frozen=True)
class Later:
    """A handle's answer that is still to come (a held bet's decision): the owner waits
    for it without holding a request slot, so held bets never stop other requests."""

    wait: Callable[[], Awaitable[Any]]


def entry_order(identifier: bytes) -> tuple[int, int]:
    """A stream entry id (``<ms>-<n>``) as what orders it."""
    ms, _, n = identifier.partition(b"-")
    return int(ms), int(n)


def now_ms() -> int:
    """Epoch milliseconds: a forwarded deadline is read on another node's clock."""
    return int(time.time() * 1000)


class _Slot:
    """Where the reply to one forwarded request lands."""

    def __init__(self) -> None:
        self.arrived = trio.Event()
        self.data = b""

    def deliver(self, data: bytes) -> None:
        self.data = data
        self.arrived.set()


class Forwarder:
    """An edge's way to the owner's actors: ``ask(key, message, timeout)``."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def ask(self, key: str, message: Any, timeout: float) -> Any:
        """The owner's answer to ``message`` for the actor at ``key``, or its DomainError
        raised. Raises OutcomeUnknown (REQUEST_TIMED_OUT) when no reply came within
        ``timeout``, OutcomeUnknown (UNAVAILABLE) when the request may have reached Redis
        before the connection failed, DomainError (UNAVAILABLE, not applied) when Redis
        could not be reached at all; NotForwardable for a message that does not cross."""
        body = codec.encode(message)
        request_id = secrets.token_hex(8).encode()
        slot = _Slot()
        self.bus.expect(request_id, slot.deliver)
        try:
            with trio.move_on_after(timeout):
                await self._append(request_id, key, body, timeout)
                await slot.arrived.wait()
                answer = _decoded(slot.data)
                if isinstance(answer, DomainError):
                    raise answer
                return answer
            raise OutcomeUnknown(
                ErrorCode.REQUEST_TIMED_OUT,
                "The owner did not answer in time: the request may or may not have been applied.",
            )
        finally:
            self.bus.forget(request_id)

    async def _append(self, request_id: bytes, key: str, body: bytes, timeout: float) -> None:
        fields = {
            b"i": request_id,
            b"r": self.bus.replies.encode(),
            b"d": str(now_ms() + int(timeout * 1000)).encode(),
            b"k": key.encode(),
            b"m": body,
        }
        try:
            await self.bus.call(
                b"XADD", REQUESTS, b"MAXLEN", b"~", REQUEST_STREAM_LENGTH, b"*",
                *(item for pair in fields.items() for item in pair),
            )  # fmt: skip
        except (RedisError, trio.TooSlowError) as error:
            if never_connected(error):
                raise DomainError(
                    ErrorCode.UNAVAILABLE, "The cluster's message bus cannot be reached."
                ) from None
            raise OutcomeUnknown(
                ErrorCode.UNAVAILABLE,
                "The message bus failed while the request was sent: it may have been applied.",
            ) from None


def _decoded(reply: bytes) -> Any:
    """The owner's answer; an OutcomeUnknown for one that cannot be read (another
    version's, or none: the owner did answer, and may have applied the request)."""
    try:
        return codec.decode(reply)
    except (msgspec.DecodeError, KeyError, ValueError, TypeError):
        log.error("reply_unreadable", extra={"reply": reply[:100]})
        return OutcomeUnknown(
            ErrorCode.INTERNAL_ERROR,
            "The owner's answer could not be read: the request may have been applied.",
        )


#: How coredis says it could make no connection (nothing was sent); every other
#: ConnectionError ("Connection lost while receiving response"...) may follow a send.
NO_CONNECTION = "Unable to establish a connection"


def never_connected(error: BaseException) -> bool:
    """Whether ``error`` says no connection to Redis was made (so nothing was sent): a
    refused or unreachable connect in its causes, or coredis' own words for it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or (
            isinstance(seen, OSError) and seen.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return isinstance(error, coredis.exceptions.ConnectionError) and str(error).startswith(
        NO_CONNECTION
    )


class RequestServer:
    """The owner's reader of ``tote:rq``, startable: at start it answers what earlier
    consumers had read and not answered (ACTOR_RESTARTED, never run), then serves every
    new entry through ``handle`` under its deadline, at most ``concurrency`` at once."""

    def __init__(
        self, bus: Bus, handle: Handle, consumer: str, *, concurrency: int = CONCURRENCY
    ) -> None:
        self.bus = bus
        self.handle = handle
        self.consumer = consumer
        self._slots = trio.Semaphore(concurrency)
        self._held = trio.Semaphore(HELD_WAITS)
        self._concurrency = concurrency
        #: the newest entry this server took: one at or below it again (a Redis that
        #: lost its last writes delivers it twice) is answered unknown, never run twice
        self._taken = (0, 0)
        #: entries dropped because their deadline had passed before they were read
        self.expired = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        pause = Pause()
        while not await self._try(self._take_over):
            await pause.wait()
        async with trio.open_nursery() as nursery:
            task_status.started()
            await self._serve(nursery, pause)

    async def _try(self, attempt: Callable[[], Awaitable[None]]) -> bool:
        try:
            await attempt()
        except (RedisError, trio.TooSlowError) as error:
            log.warning("request_stream_unavailable: %s", error)
            return False
        return True

    async def _take_over(self) -> None:
        """The group made if missing; every entry pending for an earlier consumer claimed
        and answered as of unknown outcome, never run."""
        await self._ensure_group()
        start = b"0-0"
        while True:
            with trio.fail_after(CALL_SECONDS):
                start, claimed, *deleted = await self.bus.client.xautoclaim(
                    REQUESTS, GROUP, self.consumer, 0, start, count=100
                )
            for entry in claimed:
                if _deadline_of(entry.field_values) is None:  # nobody to answer
                    await self.bus.call_all(*_done_with(entry.identifier))
                else:
                    await self._answer(entry.field_values, restarted(), entry.identifier)
            for identifier in deleted[0] if deleted else ():
                await self.bus.call(b"XACK", REQUESTS, GROUP, identifier)
            if start == b"0-0":
                await self._forget_earlier_consumers()
                return

    async def _forget_earlier_consumers(self) -> None:
        """Earlier owners' consumers (their entries are this one's now) deleted."""
        consumers = await self.bus.call(b"XINFO", b"CONSUMERS", REQUESTS, GROUP)
        for consumer in consumers:  # RESP3: a map each
            name = consumer.get(b"name")
            if name is not None and name != self.consumer.encode():
                await self.bus.call(b"XGROUP", b"DELCONSUMER", REQUESTS, GROUP, name)

    async def _ensure_group(self) -> None:
        with contextlib.suppress(StreamDuplicateConsumerGroupError):
            await self.bus.call(b"XGROUP", b"CREATE", REQUESTS, GROUP, b"0", b"MKSTREAM")

    async def _serve(self, nursery: trio.Nursery, pause: Pause) -> None:
        """Read while a slot is free; after Redis lost its data (NOGROUP) make the group
        again."""
        while True:
            async with self._slots:  # wait for a free slot before reading
                free = self._slots.value + 1
            try:
                entries = await self._read(free)
            except StreamConsumerGroupError:
                await self._try(self._ensure_group)
                continue
            except (RedisError, trio.TooSlowError):
                await pause.wait()
                continue
            pause.reset()
            for entry in entries:
                await self._slots.acquire()
                nursery.start_soon(self._serve_one, entry.identifier, entry.field_values)

    def _first_time(self, identifier: bytes) -> bool:
        order = entry_order(identifier)
        if order <= self._taken:
            return False
        self._taken = order
        return True

    async def _read(self, count: int) -> tuple[Any, ...]:
        with trio.fail_after(BLOCK_MS / 1000 + CALL_SECONDS):
            got = await self.bus.client.xreadgroup(
                GROUP, self.consumer, {REQUESTS: ">"}, count=count, block=BLOCK_MS
            )
        return (got or {}).get(REQUESTS.encode(), ())

    async def _serve_one(self, identifier: bytes, fields: Mapping[Any, Any]) -> None:
        slot = True  # this task holds a request slot until it waits on a held answer
        try:
            deadline = _deadline_of(fields)
            if deadline is None:  # not an entry a tote node wrote: nobody to answer
                log.error("request_malformed", extra={"entry": identifier, "fields": list(fields)})
                await self.bus.call_all(*_done_with(identifier))
                return
            remaining = deadline - time.time()
            if remaining <= REPLY_MARGIN:  # no time left to run it and answer
                self.expired += 1  # its caller has given up: run nothing, answer nothing
                await self.bus.call_all(*_done_with(identifier))
                return
            if not self._first_time(identifier):
                await self._answer(fields, restarted(), identifier)
                return
            answer = await self._run(fields, remaining)
            if isinstance(answer, Later):
                await self._held.acquire()
                self._slots.release()
                slot = False
                try:
                    answer = await self._run_later(answer)
                finally:
                    self._held.release()
            await self._answer(fields, answer, identifier)
        except (RedisError, trio.TooSlowError) as error:  # left pending: the caller times out
            log.warning("request_not_answered", extra={"error": str(error)})
        finally:
            if slot:
                self._slots.release()

    async def _run(self, fields: Mapping[Any, Any], remaining: float) -> Any:
        """The local answer to one entry (maybe ``Later``), or the DomainError it raised;
        a message that does not decode (another version's) is INTERNAL_ERROR."""

        async def run() -> Any:
            message = codec.decode(fields[b"m"])
            return await self.handle(fields[b"k"].decode(), message, remaining - REPLY_MARGIN)

        return await _answer_or_error(run())

    async def _run_later(self, later: Later) -> Any:
        return await _answer_or_error(later.wait())

    async def _answer(self, fields: Mapping[Any, Any], answer: Any, identifier: bytes) -> None:
        """The reply on the caller's stream, then the entry acknowledged."""
        try:
            body = codec.encode(answer)
        except codec.NotForwardable:
            log.exception("a reply that does not cross nodes")
            body = codec.encode(DomainError(ErrorCode.INTERNAL_ERROR, "The reply cannot cross."))
        reply = (
            b"XADD", fields[b"r"], b"MAXLEN", b"~", REPLY_STREAM_LENGTH, b"*",
            b"i", fields[b"i"], b"r", body,
        )  # fmt: skip
        await self.bus.call_all(reply, *_done_with(identifier))


#: The fields of a request entry (``Forwarder.ask``).
ENTRY_FIELDS = (b"i", b"r", b"d", b"k", b"m")


def _deadline_of(fields: Mapping[Any, Any]) -> float | None:
    """A well-formed entry's deadline (epoch seconds); None for anything else."""
    if not all(isinstance(fields.get(name), bytes) for name in ENTRY_FIELDS):
        return None
    try:
        return int(fields[b"d"]) / 1000
    except ValueError:
        return None


def _done_with(identifier: bytes) -> tuple[tuple[Any, ...], ...]:
    """An entry acknowledged and deleted (the stream keeps only what is unanswered)."""
    return (b"XACK", REQUESTS, GROUP, identifier), (b"XDEL", REQUESTS, identifier)


async def _answer_or_error(answering: Awaitable[Any]) -> Any:
    """What ``answering`` returns, or the DomainError it raised (any other error logged
    and answered INTERNAL_ERROR)."""
    try:
        return await answering
    except DomainError as error:
        return error
    except Exception:
        log.exception("forwarded request failed")
        return DomainError(ErrorCode.INTERNAL_ERROR, "The request failed on the owner.")


def restarted() -> OutcomeUnknown:
    return OutcomeUnknown(
        ErrorCode.ACTOR_RESTARTED,
        "The owner changed while the request was in flight: it may or may not have been applied.",
    )
