"""Supervision: crashed or cancelled actors restart behind the same address, and nothing
they had taken goes unanswered."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing

from actors import pool as p
from actors.wallet import GetBalances
from domain.errors import DomainError
from kit.runtime import Actor, Mailbox, OutcomeUnknown, Request, Supervisor
from storage.changes import Upsert
from tests.conftest import ActorHarness, Match, open_match


async def alice_in_a_pool(actors: ActorHarness, deposit: int) -> tuple[Match, str, Mailbox, int]:
    """An open pool of a fresh match, and a player "alice" with ``deposit`` minor units."""
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    return m, pool_id, pool, await m.player("alice", deposit=deposit)


async def wallet_of(actors: ActorHarness, user_id: int) -> tuple[int, int]:
    """(available, exposure) in EUR minor units."""
    balance = (await actors.services.ask_wallet(GetBalances(user_id)))["EUR"]
    return balance.available, balance.exposure


class Echo:
    """A toy actor: answers "ping", crashes on "crash", hangs on "hang"."""

    incarnations = 0

    def __init__(self, inbox: Mailbox) -> None:
        self.inbox = inbox
        Echo.incarnations += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                request = await self.inbox.receive()
            except trio.EndOfChannel:
                return
            if request.body == "crash":
                raise RuntimeError("boom")
            if request.body == "hang":
                await trio.sleep_forever()
            request.reply(("pong", Echo.incarnations))


async def make_echo(inbox: Mailbox) -> Echo:
    return Echo(inbox)


@pytest.fixture
async def supervisor(autojump_clock: trio.testing.MockClock) -> Supervisor:
    Echo.incarnations = 0
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(Supervisor().run)
        yield sup
        nursery.cancel_scope.cancel()


async def test_a_crash_answers_the_request_and_restarts(supervisor: Supervisor) -> None:
    box = await supervisor.spawn("echo", make_echo)
    assert await box.ask("ping") == ("pong", 1)
    with pytest.raises(DomainError) as caught:
        await box.ask("crash")
    assert caught.value.code == "ACTOR_RESTARTED"
    assert await box.ask("ping") == ("pong", 2)
    assert supervisor.restarts("echo") == 1


async def test_cancelling_from_outside_answers_in_flight_and_keeps_the_queue(
    supervisor: Supervisor,
) -> None:
    box = await supervisor.spawn("echo", make_echo)
    results: dict[str, object] = {}

    async def ask(key: str, body: str) -> None:
        try:
            results[key] = await box.ask(body)
        except DomainError as error:
            results[key] = error.code

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "hung", "hang")
        await trio.sleep(0.1)
        nursery.start_soon(ask, "queued", "ping")
        await trio.sleep(0.1)
        supervisor.kill("echo")  # a chaos test cancelling the actor mid-request
    assert results == {"hung": "ACTOR_RESTARTED", "queued": ("pong", 2)}


async def test_an_actor_that_keeps_crashing_is_restarted_with_a_growing_pause(
    supervisor: Supervisor,
) -> None:
    box = await supervisor.spawn("echo", make_echo)
    started = trio.current_time()
    for _ in range(8):
        with pytest.raises(DomainError) as caught:
            await box.ask("crash")
        assert caught.value.code == "ACTOR_RESTARTED"
    assert await box.ask("ping") == ("pong", 9)  # never given up
    assert trio.current_time() - started >= 0.01 * (2**2 + 2**3 + 2**4 + 2**5 + 2**6)


async def test_stopping_an_actor_answers_what_is_still_queued(supervisor: Supervisor) -> None:
    box = await supervisor.spawn("echo", make_echo)
    codes: list[str] = []

    async def ask(body: str) -> None:
        try:
            await box.ask(body)
        except DomainError as error:
            codes.append(error.code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "hang")
        await trio.sleep(0.1)
        nursery.start_soon(ask, "ping")
        await trio.sleep(0.1)
        await supervisor.stop("echo", timeout=1)
    assert sorted(codes) == ["UNAVAILABLE", "UNAVAILABLE"]


async def test_a_request_to_a_busy_actor_times_out_with_a_domain_error(
    supervisor: Supervisor,
) -> None:
    box = await supervisor.spawn("echo", make_echo)
    with pytest.raises(DomainError) as caught:
        await box.ask("hang", timeout=1)
    assert caught.value.code == "REQUEST_TIMED_OUT"


async def test_a_killed_pool_comes_back_from_storage_with_its_bets(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    _, pool_id, pool, alice = await alice_in_a_pool(actors, 10_000)
    await pool.ask(p.PlaceBet(alice, "a", "12.34"))

    actors.services.supervisor.kill(f"pool:{pool_id}")
    await pool.ask(p.PlaceBet(alice, "a", "0.66"))  # same address, new incarnation
    dist = await pool.ask(p.GetDistribution(alice, everything=False))
    assert str(dist.distribution["a"]["amount_total"]) == "13.0"
    assert await wallet_of(actors, alice) == (10_000 - 1300, 1300)
    assert actors.services.supervisor.restarts(f"pool:{pool_id}") == 1


async def test_a_game_that_dies_mid_event_has_its_pools_resolved_when_it_restarts(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    m, pool_id, pool, alice = await alice_in_a_pool(actors, 1_000)
    await pool.ask(p.PlaceBet(alice, "a", "2"))
    # what the event's commit leaves behind when the game dies before telling the pool
    pending = {
        "pool_id": pool_id,
        "winning_target": "a",
        "happened_at": services.clock.now_ms(),
        "event_id": "e1",
    }
    await services.storage.commit([Upsert("pending_resolutions", pending)])
    services.supervisor.kill(f"game:{m.game_id}")
    await trio.sleep(1)
    assert (await pool.ask(p.Info())).open is False
    assert await wallet_of(actors, alice) == (1_000, 0)


async def test_shutdown_is_bounded_by_one_deadline_for_all_actors(
    supervisor: Supervisor, autojump_clock: trio.testing.MockClock
) -> None:
    """On the mock clock: a busy machine's scheduling delays are not the supervisor's."""
    boxes = [await supervisor.spawn(f"echo{i}", make_echo) for i in range(5)]
    async with trio.open_nursery() as nursery:
        for box in boxes:  # every actor busy forever: each would use its own whole timeout
            nursery.start_soon(_ask_quietly, box, "hang")
        await trio.sleep(0.1)
        started = trio.current_time()
        await supervisor.stop_all(timeout=2)
        assert trio.current_time() - started <= 2


async def _ask_quietly(box: Mailbox, body: str) -> None:
    with contextlib.suppress(DomainError):
        await box.ask(body)


async def test_a_result_not_yet_sent_when_the_pool_died_is_sent_on_restart(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    from actors.pool import load_pool, pool_row

    services = actors.services
    m, pool_id, pool, alice = await alice_in_a_pool(actors, 1_000)
    await pool.ask(p.PlaceBet(alice, "a", "2"))
    await pool.ask(p.ResolveByHand("a"))
    assert len(m.watcher.take(362)) == 1
    # the state a crash between the settling commit and the broadcast leaves behind
    settled = (await services.storage.read(lambda db: load_pool(db, pool_id))).pool
    settled.announced = False
    await services.storage.commit([Upsert("pools", pool_row(settled))])
    services.supervisor.kill(f"pool:{pool_id}")
    await trio.sleep(1)
    [again] = m.watcher.take(362)
    assert (again["pool_id"], again["winning_target"]) == (pool_id, "a")
    assert again["winners"] == {str(alice): Decimal("2.0")}
    services.supervisor.kill(f"pool:{pool_id}")  # recorded as sent now: not sent twice
    await trio.sleep(1)
    assert m.watcher.take(362) == []


async def test_bets_not_yet_in_a_360_go_out_after_a_restart(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m, pool_id, pool, alice = await alice_in_a_pool(actors, 1_000)
    first = await pool.ask(p.PlaceBet(alice, "a", "1"))  # the first 360 goes out at once
    second = await pool.ask(p.PlaceBet(alice, "a", "2"))  # this one waits for the interval
    assert [set(d["distribution"]["a"]["bets"]) for d in m.watcher.take(360)] == [{first.bet_id}]
    actors.services.supervisor.kill(f"pool:{pool_id}")  # before that interval is up
    await trio.sleep(1)
    [late] = m.watcher.take(360)
    assert set(late["distribution"]["a"]["bets"]) == {second.bet_id}
    assert str(late["distribution"]["a"]["amount_total"]) == "3.0"


# -- the kit's serve loop ----------------------------------------------------------------


class Counter(Actor):
    """A kit actor: "slow" takes a while, "count" counts, "boom" is a bug."""

    def __init__(self, inbox: Mailbox) -> None:
        super().__init__(inbox)
        self.count = 0

    async def handle(self, body: Any) -> Any:
        if body == "slow":
            await trio.sleep(5)
        if body == "boom":
            raise ValueError("a bug")
        self.count += body == "count"
        return self.count


async def test_a_request_withdrawn_before_it_was_taken_is_never_applied(
    supervisor: Supervisor,
) -> None:
    counter: list[Counter] = []

    async def make(inbox: Mailbox) -> Counter:
        counter.append(Counter(inbox))
        return counter[-1]

    box = await supervisor.spawn("counter", make)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.ask, "slow")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(DomainError) as caught:
            await box.ask("count", timeout=1)  # queued behind "slow" until it gave up
    assert caught.value.code == "REQUEST_TIMED_OUT"
    assert not isinstance(caught.value, OutcomeUnknown)  # certain: not applied
    assert await box.ask("read") == 0


async def test_a_request_that_hits_a_bug_fails_alone(supervisor: Supervisor) -> None:
    box = await supervisor.spawn("counter", lambda inbox: _ready(Counter(inbox)))
    assert await box.ask("count") == 1
    with pytest.raises(DomainError) as caught:
        await box.ask("boom")
    assert caught.value.code == "INTERNAL_ERROR"
    assert await box.ask("count") == 2  # same incarnation, same state
    assert supervisor.restarts("counter") == 0


async def test_an_actor_that_cannot_be_loaded_is_unavailable_to_its_caller(
    supervisor: Supervisor,
) -> None:
    async def broken(inbox: Mailbox) -> Counter:
        raise OverflowError("a stored time out of range")

    with pytest.raises(DomainError) as caught:
        await supervisor.spawn("broken", broken)
    assert caught.value.code == "UNAVAILABLE"
    assert supervisor.mailbox("broken") is None
    assert await (await supervisor.spawn("counter", lambda i: _ready(Counter(i)))).ask("count")


async def _ready(actor: Actor) -> Actor:
    return actor


class Deferring(Actor):
    """A kit actor that answers "later" batches on a later turn ("now" answers them)."""

    def __init__(self, inbox: Mailbox) -> None:
        super().__init__(inbox)
        self.waiting: list[Request] = []

    def batch_key(self, body: Any) -> Hashable | None:
        return "later" if body == "later" else None

    async def handle_batch(self, requests: list[Request]) -> None:
        for request in requests:
            self.defer(request)
            self.waiting.append(request)

    async def handle(self, body: Any) -> Any:
        answered, self.waiting = self.waiting, []
        for request in answered:
            request.reply("answered later")
        return len(answered)


async def test_a_deferred_request_is_answered_on_a_later_turn_or_by_the_supervisor(
    supervisor: Supervisor,
) -> None:
    box = await supervisor.spawn("deferring", lambda inbox: _ready(Deferring(inbox)))
    answers: list[Any] = []

    async def ask_later() -> None:
        try:
            answers.append(await box.ask("later"))
        except DomainError as error:
            answers.append(error.code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_later)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []  # not failed as unanswered at the batch's end
        assert await box.ask("now") == 1
    assert answers == ["answered later"]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_later)
        await trio.testing.wait_all_tasks_blocked()
        supervisor.kill("deferring")  # still taken: the supervisor answers it
    assert answers[1] == "ACTOR_RESTARTED"
