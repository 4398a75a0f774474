"""A pool's largest payout stays inside what the ledger can hold (hostile review of issue
23): ``MAX_POOL_TOTAL`` bounds every stake on the winner at the minimum dividend plus
the carried-in pot, counting the stakes not in the book yet (held for a delay, earlier
in the same batch). Before, 95 winners at a minimum dividend of 100 made a settlement
line pass SQLite's 64-bit integers: the pool could never be paid."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import trio

from actors import pool as p
from domain.errors import DomainError
from domain.money import MAX_POOL_TOTAL
from tests.conftest import ActorHarness, Harness, open_match, setup_game

#: The most a pool at a minimum dividend of 100 may hold, in EUR: its stakes times 100
#: reach MAX_POOL_TOTAL (in cents) exactly.
BOUND_EUR = MAX_POOL_TOTAL // 100 // 100


async def test_stakes_times_the_minimum_dividend_are_bounded_and_the_pool_pays(
    harness: Harness,
) -> None:
    admin_user = await harness.user("payout-admin", roles=["developer", "house"])
    whale = await harness.user("whale", deposit=str(BOUND_EUR))
    minnow = await harness.user("minnow", deposit="1")
    async with (
        harness.connect(admin_user) as admin,
        harness.connect(whale) as big,
        harness.connect(minnow) as small,
    ):
        game_id = await setup_game(admin)
        created = await admin.call(
            385, 350, game_id=game_id, action="Goal", targets="Argentina,Brazil", min_dividend="100"
        )
        pool_id = created["pool_id"]
        placed = await big.call(392, pool_id=pool_id, target="Argentina", amount=str(BOUND_EUR))
        assert placed["res"] == 356, placed
        refused = await small.call(392, pool_id=pool_id, target="Brazil", amount="0.01")
        assert (refused["error_code"], refused["limit"]) == ("INVALID_STAKE", "max_pool_total")
        resolved = await admin.call(396, pool_id=pool_id, target="Argentina")
        assert resolved["res"] == 362, resolved
    reply = await harness.http.get(f"/v1/users/{whale['user_id']}/balances")
    balances = json.loads(reply.text, parse_float=Decimal)
    assert balances["EUR"]["available"] == BOUND_EUR * 100  # the minimum dividend
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
