"""Pool timers under trio's mock clock: expiry, scheduled block/allow, stop times, type-4
finish, recreate_on_end, coalesced 360s, and timers that outlive a restart."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
import trio

from actors import game as g
from actors import pool as p
from domain.errors import DomainError
from kit.runtime import Mailbox
from tests.conftest import ActorHarness, FakeConnection, open_match

AGGREGATES = ("multiplier", "amount_total", "backing_people", "to_win_if_backed")


async def refused(box: Mailbox, body: Any, code: str) -> None:
    with pytest.raises(DomainError) as caught:
        await box.ask(body)
    assert caught.value.code == code, caught.value


# -- expiry, block_at, allow_at, stop_accepting_bets_at, type 4 ---------------------------


async def test_time_based_pool_expires_to_none_at_finish_at(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    finish_at = m.now + 60_000
    pool_id, pool = await m.pool(pool_type=2, finish_at=finish_at)
    alice = await m.player("alice")
    await pool.ask(p.PlaceBet(alice, "a", "5"))
    await trio.sleep(59)
    assert m.watcher.take(363) == []
    await trio.sleep(2)
    expired = m.watcher.take(363)
    assert len(expired) == 1 and expired[0]["winning_target"] == "none"
    assert expired[0]["pool_id"] == pool_id and expired[0]["expired_at"] == finish_at
    # nobody backed "none": every stake comes back
    assert expired[0]["is_money_return"] is True and expired[0]["losers"] == []
    await refused(pool, p.PlaceBet(alice, "a", "5"), "POOL_CLOSED")


async def test_scheduled_block_and_allow_take_effect_at_their_time(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice = await m.player("alice")
    block_at = m.now + 10_000
    scheduled = await pool.ask(p.Block(block_at))
    assert (scheduled.fields["pool_id"], scheduled.fields["blocked_at"]) == (pool_id, block_at)
    await trio.sleep(9.9)
    await pool.ask(p.PlaceBet(alice, "a", "1"))
    assert m.watcher.take(368) == []
    await trio.sleep(0.1)
    await refused(pool, p.PlaceBet(alice, "a", "1"), "POOL_BLOCKED")
    [blocked] = m.watcher.take(368)
    assert isinstance(blocked["response_header"].pop("seq"), int)
    assert blocked == {
        "response_header": {"t": block_at, "game_id": m.game_id},
        "res": 368,
        "blocked_at": block_at,
        "pool_id": pool_id,
    }

    allow_at = m.now + 5_000
    assert (await pool.ask(p.Allow(allow_at))).fields["allowed_at"] == allow_at
    await trio.sleep(4.9)
    await refused(pool, p.PlaceBet(alice, "a", "1"), "POOL_BLOCKED")
    assert m.watcher.take(369) == []
    await trio.sleep(0.1)
    await pool.ask(p.PlaceBet(alice, "a", "1"))
    assert [msg["allowed_at"] for msg in m.watcher.take(369)] == [allow_at]


async def test_action_wide_block_at_fires_in_every_pool_of_the_action(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    goals = {(await m.pool())[0], (await m.pool(targets="a:1,b:1"))[0]}
    block_at = m.now + 3_000
    reply = await m.game.ask(g.BlockAction(m.admin, "goal", block_at, True))
    assert (type(reply), reply.fields["blocked_at"]) == (g.ActionBlocked, block_at)
    assert m.watcher.take(370)[0]["blocked_at"] == block_at
    await trio.sleep(2.9)
    assert m.watcher.take(368) == []
    await trio.sleep(0.2)
    assert {msg["pool_id"]: msg["blocked_at"] for msg in m.watcher.take(368)} == {
        pool_id: block_at for pool_id in goals
    }


async def test_stop_accepting_bets_at_refuses_later_bets_but_keeps_the_pool_open(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, pool = await m.pool(stop_accepting_bets_at=m.now + 30_000)
    alice, bob = await m.player("alice"), await m.player("bob")
    await trio.sleep(29.9)
    await pool.ask(p.PlaceBet(alice, "a", "10"))
    await trio.sleep(0.1)
    await refused(pool, p.PlaceBet(bob, "b", "10"), "POOL_CLOSED")
    result = await pool.ask(p.ResolveByHand("a"))
    assert result.fields["winners"] == {str(alice): 10}


async def test_binary_time_based_pool_stops_at_finish_at_and_waits_for_396(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(pool_type=4, finish_at=m.now + 60_000, action="", targets="")
    alice, bob = await m.player("alice"), await m.player("bob")
    await pool.ask(p.PlaceBet(alice, "yes", "10"))
    await pool.ask(p.PlaceBet(bob, "no", "30"))
    await trio.sleep(61)
    await refused(pool, p.PlaceBet(alice, "yes", "1"), "POOL_CLOSED")
    assert m.watcher.take(362) == [] and m.watcher.take(363) == []
    assert (await pool.ask(p.Info())).open is True
    await trio.sleep(3600)
    assert (await pool.ask(p.Info())).open is True
    result = await pool.ask(p.ResolveByHand("yes"))
    assert (type(result), result.fields["winning_target"], result.fields["winners"]) == (
        p.PoolResolved,
        "yes",
        {str(alice): 40},
    )
    assert [msg["pool_id"] for msg in m.watcher.take(362)] == [pool_id]


# -- recreate_on_end ----------------------------------------------------------------------


async def test_recreate_on_end_opens_a_fresh_pool_when_the_old_resolves(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    old_id, old = await m.pool(description="Next goal", recreate_on_end="True", takeout="0.1")
    alice = await m.player("alice")
    await old.ask(p.PlaceBet(alice, "a", "10"))
    m.watcher.received.clear()
    await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    assert [msg["res"] for msg in m.watcher.received if msg["res"] in (352, 362)] == [362, 352]
    fresh = m.watcher.take(352)[0]
    assert fresh["pool_id"] != old_id
    assert (fresh["description"], fresh["action"], fresh["pool_type"], fresh["takeout"]) == (
        "Next goal",
        "goal",
        1,
        Decimal("0.1"),
    )
    assert fresh["targets"].keys() == {"a", "b", "none"} and fresh["money_at_stake"] == 0
    _, box = await actors.services.games.pool(fresh["pool_id"])
    await box.ask(p.PlaceBet(alice, "b", "1"))
    # and the fresh pool recreates itself in turn
    await box.ask(p.ResolveByHand("b"))
    assert len(m.watcher.take(352)) == 1


async def test_recreated_time_based_pool_keeps_its_duration(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    await m.pool(pool_type=2, finish_at=m.now + 60_000, recreate_on_end=True)
    m.watcher.take(352)
    await trio.sleep(61)
    assert len(m.watcher.take(363)) == 1
    fresh = m.watcher.take(352)
    assert len(fresh) == 1 and fresh[0]["finish_at"] - fresh[0]["start_at"] == 60_000
    await trio.sleep(60)
    assert [msg["pool_id"] for msg in m.watcher.take(363)] == [fresh[0]["pool_id"]]


async def test_void_and_game_close_do_not_recreate(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, voided = await m.pool(recreate_on_end=True)
    await voided.ask(p.Void())
    await m.pool(recreate_on_end=True)
    m.watcher.received.clear()
    assert (await m.game.ask(g.Close(None))).closed is True
    assert len(m.watcher.take(362)) == 1
    assert m.watcher.take(352) == []


# -- coalesced distribution -------------------------------------------------------------


class TimedConnection(FakeConnection):
    """Also notes the trio time at which each message arrived."""

    def __init__(self, user_id: int) -> None:
        super().__init__(user_id)
        self.times: list[float] = []

    def push(self, data: bytes) -> None:
        super().push(data)
        self.times.append(trio.current_time())


def aggregates(distribution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t: {a: row[a] for a in AGGREGATES} for t, row in distribution.items()}


async def test_360_goes_out_at_most_once_per_interval_with_the_latest_state(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    interval = actors.services.settings.distribution_interval
    watcher = TimedConnection(0)
    m = await open_match(actors, watcher)
    pool_id, pool = await m.pool()
    players = [await m.player(name) for name in ("alice", "bob", "carol")]
    bet_ids = []
    for i in range(40):
        placed = await pool.ask(p.PlaceBet(players[i % 3], "ab"[i % 3 % 2], f"0.{i + 1:02d}"))
        bet_ids.append(placed.bet_id)
        await trio.sleep(0.03)
    await trio.sleep(1)
    sent = [
        (when, msg)
        for when, msg in zip(watcher.times, watcher.received, strict=True)
        if msg["res"] == 360
    ]
    times = [when for when, _ in sent]
    assert all(later - earlier >= interval - 1e-9 for earlier, later in pairwise(times))
    assert len(sent) <= 40 * 0.03 / interval + 2
    seen = Counter(
        b for _, msg in sent for row in msg["distribution"].values() for b in row["bets"]
    )
    assert seen == Counter(bet_ids)
    final = await pool.ask(p.GetDistribution(m.admin, True))
    assert aggregates(sent[-1][1]["distribution"]) == aggregates(final.distribution)
    assert all(msg["pool_id"] == pool_id for _, msg in sent)


# -- restarts ---------------------------------------------------------------------------


async def test_scheduled_block_and_allow_survive_a_restart(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice = await m.player("alice")
    block_at = m.now + 10_000
    await pool.ask(p.Block(block_at))
    await pool.ask(p.Allow(block_at + 10_000))
    actors.services.supervisor.kill(f"pool:{pool_id}")
    await trio.sleep(1)
    assert actors.services.supervisor.restarts(f"pool:{pool_id}") == 1
    await pool.ask(p.PlaceBet(alice, "a", "1"))
    await trio.sleep(9.5)
    assert [msg["blocked_at"] for msg in m.watcher.take(368)] == [block_at]
    await refused(pool, p.PlaceBet(alice, "a", "1"), "POOL_BLOCKED")
    actors.services.supervisor.kill(f"pool:{pool_id}")
    await trio.sleep(10)
    assert [msg["allowed_at"] for msg in m.watcher.take(369)] == [block_at + 10_000]
    await pool.ask(p.PlaceBet(alice, "a", "1"))


async def test_expiry_survives_a_restart(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    finish_at = m.now + 60_000
    pool_id, pool = await m.pool(pool_type=2, finish_at=finish_at)
    alice = await m.player("alice")
    await pool.ask(p.PlaceBet(alice, "a", "5"))
    actors.services.supervisor.kill(f"pool:{pool_id}")
    await trio.sleep(61)
    expired = m.watcher.take(363)
    assert [(msg["pool_id"], msg["expired_at"]) for msg in expired] == [(pool_id, finish_at)]
    assert actors.services.supervisor.restarts(f"pool:{pool_id}") == 1


async def test_timers_fire_on_time_whatever_the_clock_anchor(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """Epoch ms derived from trio's float clock can read a millisecond short exactly at a
    deadline; a timer must fire (and be stamped with its time) all the same."""
    from kit.clock import WallClock

    await trio.sleep(0.1234567)
    actors.services.clock = WallClock(1_700_000_000_123)
    m = await open_match(actors)
    times = [m.now + 1_001 + 7 * i for i in range(25)]
    for at in times:
        await (await m.pool())[1].ask(p.Block(at))
    await trio.sleep(2)
    assert sorted(msg["blocked_at"] for msg in m.watcher.take(368)) == times
