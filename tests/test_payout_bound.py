"""A pool's largest payout stays inside what the ledger can hold (hostile review of issue
23): ``MAX_POOL_TOTAL`` bounds every stake on the winner at the minimum dividend plus
the carried-in pot, counting the stakes not in the book yet (held for a delay, earlier
in the same batch). Before, 95 winners at a minimum dividend of 100 made a settlement
line pass SQLite's 64-bit integers: the pool could never be paid."""

from __future__ import annotations

import pytest
import trio

from actors import pool as p
from domain.errors import DomainError
from domain.money import MAX_POOL_TOTAL
from tests.conftest import ActorHarness, Harness, open_match
from tests.test_ws_pools import table

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

#: The most a pool at a minimum dividend of 100 may hold, in EUR: its stakes times 100
#: reach MAX_POOL_TOTAL (in cents) exactly.
BOUND_EUR = MAX_POOL_TOTAL // 100 // 100


async def test_stakes_times_the_minimum_dividend_are_bounded_and_the_pool_pays(
    harness: Harness,
) -> None:
    async with table(harness, "whale", "minnow", deposit=str(BOUND_EUR)) as t:
        pool_id = await t.pool(min_dividend="100")
        await t.bet("whale", pool_id, "argentina", str(BOUND_EUR))
        refused = await t["minnow"].call(392, pool_id=pool_id, target="brazil", amount="0.01")
        assert (refused["error_code"], refused["limit"]) == ("INVALID_STAKE", "max_pool_total")
        assert (await t.admin.call(396, 362, pool_id=pool_id, target="argentina"))["res"] == 362
        # the minimum dividend: 100 times the stake
        assert (await t.balance("whale"))["available"] == BOUND_EUR * 100
    assert await harness.audit() == []


async def test_a_held_stake_counts_toward_the_bound_of_the_bets_after_it(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    whale = await m.player("whale", deposit=BOUND_EUR * 100)
    minnow = await m.player("minnow", deposit=1_00)
    _, pool = await m.pool(min_dividend="100", bet_delay_ms="5000")
    held = await pool.ask(p.PlaceBet(whale, "a", str(BOUND_EUR)))
    assert isinstance(held, p.BetHeld)
    with pytest.raises(DomainError) as refusal:  # the whale's stake is not in the book yet
        await pool.ask(p.PlaceBet(minnow, "b", "0.01"))
    assert refusal.value.extra["limit"] == "max_pool_total"
    assert isinstance(await held.decision.wait(), p.BetPlaced)
    await pool.ask(p.ResolveByHand("a"))
    assert await actors.audit() == []
