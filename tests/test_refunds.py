"""A 362 (or an expiry's 363) that gives stakes back says to whom and how much: `refunds`,
user id -> the amount returned (decisions §11), whichever way the stakes came back: a
time-based pool that expires, a void (399), an event nobody backed, bets placed after
the event (in test_ws_pools). Seen by real subscribers; the books are audited after each."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from actors import pool as p
from domain.pool import Bet, BetStatus, refunds_by_user
from tests.conftest import ActorHarness, Harness, open_match
from tests.test_ws_pools import expect_pool, table

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

D = Decimal


async def test_an_expired_pool_names_what_it_gave_back(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(pool_type=2, finish_at=m.now + 60_000)
    alice, bob = await m.player("alice"), await m.player("bob")
    await pool.ask(p.PlaceBet(alice, "a", "5"))
    await pool.ask(p.PlaceBet(bob, "b", "2.55"))
    await trio.sleep(61)
    [expired] = m.watcher.take(363)
    assert (expired["pool_id"], expired["is_money_return"]) == (pool_id, True)
    assert (expired["winners"], expired["losers"]) == ({}, [])
    assert expired["refunds"] == {str(alice): D("5"), str(bob): D("2.55")}


async def test_a_void_names_each_refund(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        pool_id = await t.pool(takeout="0.1")
        await t.bet("alice", pool_id, "brazil", "10")
        await t.bet("bob", pool_id, "argentina", "20.55")
        result = await t.admin.call(399, 362, pool_id=pool_id)
        assert result["is_money_return"] is True and result["winners"] == {}
        refunds = {t.uid("alice"): D("10"), t.uid("bob"): D("20.55")}
        assert result["refunds"] == refunds
        assert (await expect_pool(t["bob"], 362, pool_id))["refunds"] == refunds


async def test_an_event_nobody_backed_names_each_refund(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        pool_id = await t.pool(takeout="0.1")
        await t.bet("alice", pool_id, "argentina", "10")
        await t.bet("bob", pool_id, "argentina", "0.05")
        await t.admin.call(395, 366, game_id=t.game_id, action_id="goal", target_id="brazil:7")
        result = await expect_pool(t["alice"], 362, pool_id)
        assert (result["winning_target"], result["is_money_return"]) == ("brazil", True)
        assert result["refunds"] == {t.uid("alice"): D("10"), t.uid("bob"): D("0.05")}
        assert (await t.balance("bob"))["current"] == D("100")


async def test_a_paid_pool_with_no_late_bets_has_no_refunds(harness: Harness) -> None:
    async with table(harness, "alice", "bob") as t:
        pool_id = await t.pool()
        await t.bet("alice", pool_id, "brazil", "10")
        await t.bet("bob", pool_id, "argentina", "30")
        result = await t.admin.call(396, 362, pool_id=pool_id, target="brazil")
        assert (result["winners"], result["refunds"]) == ({t.uid("alice"): D("40")}, {})


def test_refunds_are_the_refunded_bets_summed_by_user() -> None:
    bets = [Bet("1", 7, "a", 500, 0), Bet("2", 7, "b", 255, 0), Bet("3", 9, "a", 100, 0)]
    status = {
        "1": (BetStatus.REFUNDED, 500),
        "2": (BetStatus.REFUNDED, 255),
        "3": (BetStatus.WON, 855),
    }
    assert refunds_by_user(bets, status) == {7: 755}
    assert refunds_by_user(bets, {**status, "1": (BetStatus.LOST, 0)}) == {7: 255}
