"""Requests forwarded to the owner through Redis Streams (issue 22), on a real Redis: the
answer or the error comes back as itself; what cannot be known is an unknown outcome,
never a request run twice or after its deadline; a Redis restart is survived."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from actors.pool import protocol as p
from cluster import codec
from cluster.bus import Bus
from cluster.forward import GROUP, REQUESTS, Forwarder, Later, RequestServer
from domain.errors import DomainError, ErrorCode, OutcomeUnknown
from tests.redis import ThrowawayRedis

#: A generous ceiling for what must happen (never a pause that races real work).
CEILING = 30.0


class Owner:
    """A handle that records what it ran and answers as the test says."""

    def __init__(self, answer: Callable[[str, Any], Awaitable[Any]] | None = None) -> None:
        self.ran: list[tuple[str, Any]] = []
        self.called = trio.Event()
        self._answer = answer

    async def handle(self, key: str, message: Any, remaining: float) -> Any:
        assert remaining > 0
        self.ran.append((key, message))
        self.called.set()
        if self._answer is None:
            return p.BetPlaced("p1", "b1", "t", message.amount, "EUR", 2)
        return await self._answer(key, message)


@asynccontextmanager
async def node(url: str, node_id: str) -> AsyncIterator[tuple[trio.Nursery, Bus]]:
    async with trio.open_nursery() as nursery:
        bus = Bus(url, node_id)
        await nursery.start(bus.run)
        yield nursery, bus
        nursery.cancel_scope.cancel()


async def wait_until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(CEILING):
        while not condition():  # noqa: ASYNC110 (state of another task, polled, with a ceiling)
            await trio.sleep(0.01)


BET = p.PlaceBet(7, "t", 125, "")


async def ask_noting_unknown(edge: Bus, outcome: list[BaseException]) -> None:
    """Forward ``BET``; an unknown outcome is put in ``outcome``."""
    try:
        await Forwarder(edge).ask("pool:p1", BET, timeout=CEILING)
    except OutcomeUnknown as error:
        outcome.append(error)


async def test_a_forwarded_ask_comes_back(redis_url: str) -> None:
    owner = Owner()
    async with node(redis_url, "edge") as (_, edge), node(redis_url, "own") as (nursery, own):
        await nursery.start(RequestServer(own, owner.handle, "own/1").run)
        placed = await Forwarder(edge).ask("pool:p1", BET, timeout=CEILING)
    assert placed == p.BetPlaced("p1", "b1", "t", 125, "EUR", 2)
    assert owner.ran == [("pool:p1", BET)]


async def test_a_domain_error_comes_back_as_itself(redis_url: str) -> None:
    async def refuse(key: str, message: Any) -> Any:
        raise DomainError(ErrorCode.INVALID_PARAMETER, "no such target", parameter="target")

    async with node(redis_url, "edge") as (_, edge), node(redis_url, "own") as (nursery, own):
        await nursery.start(RequestServer(own, Owner(refuse).handle, "own/1").run)
        with pytest.raises(DomainError) as refused:
            await Forwarder(edge).ask("pool:p1", BET, timeout=CEILING)
    assert type(refused.value) is DomainError
    assert (refused.value.code, refused.value.extra) == (
        "INVALID_PARAMETER",
        {"parameter": "target"},
    )


async def test_no_reply_in_time_is_unknown_and_an_expired_entry_is_never_run(
    redis_url: str,
) -> None:
    owner = Owner()
    async with node(redis_url, "edge") as (_, edge), node(redis_url, "own") as (nursery, own):
        with pytest.raises(OutcomeUnknown) as unknown:  # no owner reads the stream yet
            await Forwarder(edge).ask("pool:p1", BET, timeout=1.0)
        assert unknown.value.code == ErrorCode.REQUEST_TIMED_OUT
        assert await own.call(b"XLEN", REQUESTS) == 1  # it was written (not cut short)
        server = RequestServer(own, owner.handle, "own/1")
        await nursery.start(server.run)
        await wait_until(lambda: server.expired == 1)
        assert owner.ran == []
        assert await Forwarder(edge).ask("pool:p2", BET, timeout=CEILING)  # served after it
        pending = await own.call(b"XPENDING", REQUESTS, GROUP)
    assert owner.ran == [("pool:p2", BET)]
    assert pending[0] == 0  # both acknowledged


async def test_what_a_dead_owner_had_read_is_answered_unknown_never_run(redis_url: str) -> None:
    stuck = trio.Event()

    async def never(key: str, message: Any) -> Any:
        await stuck.wait()

    first, second = Owner(never), Owner()
    outcome: list[BaseException] = []

    async with node(redis_url, "edge") as (edge_nursery, edge), node(redis_url, "own") as (_, own):
        async with trio.open_nursery() as dying:
            await dying.start(RequestServer(own, first.handle, "own/1").run)
            edge_nursery.start_soon(ask_noting_unknown, edge, outcome)
            await first.called.wait()
            dying.cancel_scope.cancel()  # the owner dies with the request read, unanswered
        async with trio.open_nursery() as taking_over:
            await taking_over.start(RequestServer(own, second.handle, "next/2").run)
            await wait_until(lambda: bool(outcome))
            taking_over.cancel_scope.cancel()
    assert [error.code for error in outcome] == [ErrorCode.ACTOR_RESTARTED]
    assert second.ran == []
    assert first.ran == [("pool:p1", BET)]


async def test_a_redis_restart_is_survived(redis: ThrowawayRedis) -> None:
    owner = Owner()
    async with node(redis.url, "edge") as (_, edge), node(redis.url, "own") as (nursery, own):
        await nursery.start(RequestServer(own, owner.handle, "own/1").run)
        forwarder = Forwarder(edge)
        assert await forwarder.ask("pool:p1", BET, timeout=CEILING)
        await trio.to_thread.run_sync(redis.kill)
        with trio.fail_after(CEILING), pytest.raises(DomainError) as down:
            await forwarder.ask("pool:p1", BET, timeout=2.0)
        assert down.value.code in (ErrorCode.UNAVAILABLE, ErrorCode.REQUEST_TIMED_OUT)
        await trio.to_thread.run_sync(redis.restart)
        answer = await _first_answer(forwarder)
    assert answer == p.BetPlaced("p1", "b1", "t", 125, "EUR", 2)


async def _first_answer(forwarder: Forwarder) -> Any:
    """Ask again (each under a short timeout) until the cluster answers, under CEILING."""
    start = time.monotonic()
    with trio.fail_after(CEILING):
        while True:
            try:
                return await forwarder.ask("pool:p1", BET, timeout=2.0)
            except DomainError as error:
                assert error.code in (ErrorCode.UNAVAILABLE, ErrorCode.REQUEST_TIMED_OUT)
                assert time.monotonic() - start < CEILING
                await trio.sleep(0.05)


async def test_a_held_answer_does_not_hold_a_request_slot(redis_url: str) -> None:
    """One slot: a request whose answer comes ``Later`` (a held bet) leaves it to the
    next request, which is answered first."""
    decided = trio.Event()

    async def held_or_placed(key: str, message: Any) -> Any:
        if key == "pool:held":

            async def decision() -> Any:
                await decided.wait()
                return "decided"

            return Later(decision)
        return "placed"

    answers: list[Any] = []
    async with (
        node(redis_url, "edge") as (edge_nursery, edge),
        node(redis_url, "own") as (
            nursery,
            own,
        ),
    ):
        owner = Owner(held_or_placed)
        server = RequestServer(own, owner.handle, "own/1", concurrency=1)
        await nursery.start(server.run)
        forwarder = Forwarder(edge)

        async def held() -> None:
            answers.append(await forwarder.ask("pool:held", BET, timeout=CEILING))

        edge_nursery.start_soon(held)
        await owner.called.wait()  # the held one runs first, and waits
        answers.append(await forwarder.ask("pool:plain", BET, timeout=CEILING))
        decided.set()
        await wait_until(lambda: len(answers) == 2)
    assert answers == ["placed", "decided"]


async def test_a_request_delivered_again_is_answered_unknown_never_run_twice(
    redis_url: str,
) -> None:
    """A Redis that lost its last writes (an fsync'd append-only file, a replica's
    failover) may deliver an entry again: the owner runs it once."""
    release = trio.Event()

    async def slow(key: str, message: Any) -> Any:
        await release.wait()
        return "placed"

    owner = Owner(slow)
    outcome: list[BaseException] = []

    async with (
        node(redis_url, "edge") as (edge_nursery, edge),
        node(redis_url, "own") as (
            nursery,
            own,
        ),
    ):
        await nursery.start(RequestServer(own, owner.handle, "own/1").run)
        edge_nursery.start_soon(ask_noting_unknown, edge, outcome)
        await owner.called.wait()
        await own.call(b"XGROUP", b"SETID", REQUESTS, GROUP, b"0")  # delivered again
        await wait_until(lambda: bool(outcome))
        release.set()
    assert [error.code for error in outcome] == [ErrorCode.ACTOR_RESTARTED]
    assert len(owner.ran) == 1


async def test_answered_requests_and_read_replies_leave_the_streams(redis_url: str) -> None:
    owner = Owner()
    async with node(redis_url, "edge") as (_, edge), node(redis_url, "own") as (nursery, own):
        await nursery.start(RequestServer(own, owner.handle, "own/1").run)
        forwarder = Forwarder(edge)
        for _ in range(5):
            assert await forwarder.ask("pool:p1", BET, timeout=CEILING)

        async def lengths() -> tuple[int, int]:
            return await own.call(b"XLEN", REQUESTS), await own.call(b"XLEN", edge.replies)

        with trio.fail_after(CEILING):
            while await lengths() != (0, 1):  # noqa: ASYNC110 (Redis's state; the last reply stays)
                await trio.sleep(0.01)


async def test_entries_no_node_could_have_written_never_stop_the_owner(redis_url: str) -> None:
    """A malformed entry is dropped; a message that does not decode (another version's)
    is answered INTERNAL_ERROR; the next request is served."""
    owner = Owner()
    async with node(redis_url, "edge") as (_, edge), node(redis_url, "own") as (nursery, own):
        await nursery.start(RequestServer(own, owner.handle, "own/1").run)
        await own.call(b"XADD", REQUESTS, b"*", b"i", b"x")  # no deadline, no reply stream
        replies: list[bytes] = []
        edge.expect(b"undecodable", replies.append)
        deadline = str(int(time.time() * 1000) + 30_000).encode()
        await own.call(
            b"XADD", REQUESTS, b"*", b"i", b"undecodable", b"r", edge.replies.encode(),
            b"d", deadline, b"k", b"pool:p1", b"m", b"\xc1 not msgpack",
        )  # fmt: skip
        await wait_until(lambda: bool(replies))
        assert await Forwarder(edge).ask("pool:p1", BET, timeout=CEILING)
    refused = codec.decode(replies[0])
    assert isinstance(refused, DomainError) and refused.code == ErrorCode.INTERNAL_ERROR
    assert owner.ran == [("pool:p1", BET)]


async def test_a_reply_that_cannot_be_read_is_an_unknown_outcome(redis_url: str) -> None:
    async with node(redis_url, "edge") as (nursery, edge):
        outcome: list[BaseException] = []
        nursery.start_soon(ask_noting_unknown, edge, outcome)
        with trio.fail_after(CEILING):
            while not (entries := await edge.call(b"XRANGE", REQUESTS, b"-", b"+")):  # noqa: ASYNC110
                await trio.sleep(0.01)
        fields = dict(zip(entries[0][1][::2], entries[0][1][1::2], strict=True))
        await edge.call(b"XADD", edge.replies, b"*", b"i", fields[b"i"], b"r", b"\xc1")
        await wait_until(lambda: bool(outcome))
    assert outcome[0].code == ErrorCode.INTERNAL_ERROR
