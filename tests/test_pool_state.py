"""The pool's state outside the actor, without trio: block/allow, timers and the
successor as ``domain.pool.Pool`` values, and what ``actors.pool.reservations`` holds
beside the book (slips, debits in flight, delayed bets)."""

from __future__ import annotations

from typing import Any

from actors.pool.reservations import NO_USER, Reservations
from domain.pool import Bet, Pool, PoolStatus, PoolType


def a_pool(pool_type: int = PoolType.PARIMUTUEL, **fields: Any) -> Pool:
    targets = {"a": "A", "b": "B", "none": "None"}
    return Pool("p", "g", "G", "", "goal", pool_type, targets, 1, "EUR", 2, **fields)


def test_a_scheduled_block_or_allow_is_a_changed_pool() -> None:
    pool = a_pool()
    blocked_later = pool.scheduled(True, 5_000)
    assert (blocked_later.block_at, blocked_later.allow_at, pool.block_at) == (5_000, None, None)
    assert pool.scheduled(False, 7_000).allow_at == 7_000


def test_blocking_now_spends_the_schedule_and_allowing_clears_the_stamp() -> None:
    pool = a_pool(block_at=5_000, allow_at=9_000)
    blocked = pool.blocked_now(True, 6_000)
    assert (blocked.blocked, blocked.blocked_at, blocked.block_at) == (True, 6_000, None)
    assert blocked.allow_at == 9_000 and not pool.blocked
    allowed = blocked.blocked_now(False, 9_000)
    assert (allowed.blocked, allowed.blocked_at, allowed.allow_at) == (False, None, None)


def test_timers_are_an_open_pools_and_expiry_is_a_timed_parimutuels() -> None:
    timed = a_pool(PoolType.TIMED_PARIMUTUEL, finish_at=8_000, fail_safe_at=9_000, block_at=1)
    assert sorted(timed.timers()) == [(1, "block"), (8_000, "expire"), (9_000, "fail_safe")]
    binary = a_pool(PoolType.TIMED_BINARY, finish_at=8_000)
    assert binary.timers() == []  # a binary pool waits for its admin
    assert a_pool(block_at=1, status=PoolStatus.RESOLVED).timers() == []


def test_a_successor_keeps_the_distances_from_its_start() -> None:
    pool = a_pool(start_at=1_000, finish_at=4_000, fail_safe_at=10_000, recreate_on_end=True)
    successor = pool.successor("q", 20_000)
    assert (successor.id, successor.start_at) == ("q", 20_000)
    assert (successor.finish_at, successor.fail_safe_at) == (23_000, 29_000)
    assert successor.targets == pool.targets and successor.targets is not pool.targets
    assert successor.bets == [] and successor.recreate_on_end


def test_reservations_back_targets_and_stakes_over_slips_debits_and_delays() -> None:
    held = Reservations()
    held.hold("slip", 1, [Bet("x", 1, "a", 100, 0)], until=10.0)
    held.start_debits([Bet("y", 2, "b", 50, 0)])
    targets, stakes = held.backing([Bet("z", 2, "b", 25, 0)])
    assert targets == {1: "a", 2: "b"}
    assert dict(stakes) == {1: 100, 2: 75}
    held.end_debits([Bet("y", 2, "b", 50, 0)])
    assert held.backing()[0] == {1: "a"}


def test_reservations_know_which_slips_are_due() -> None:
    held = Reservations()
    held.hold("early", 1, [], until=5.0)
    held.hold("late", 2, [], until=50.0)
    assert held.due(10.0) == ["early"] and sorted(held.due()) == ["early", "late"]
    assert sorted(held.deadlines()) == [5.0, 50.0]
    slip = held.release("late")
    assert slip is not None and slip.user_id == 2 and held.release("late") is None
    held.due_now("lost", None, 12.0)  # a restarted pool held nothing for it
    assert held.slips["lost"].user_id == NO_USER and held.due(12.0) == ["early", "lost"]
