"""A stake split into cents does not multiply the minimum dividend (hostile review of
issue 23). The house's top-up was rounded up per bet: at a minimum dividend of 1.10 a
one-cent bet got ceil(1.1) = 2 cents, so a player who split 100.00 on the favourite into
10,000 one-cent bets was paid 200.00 (the house adding 100.00) where one bet got 110.00.
The minimum holds per winner, on their stakes on the winner together."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import Harness
from tests.test_ws_pools import table

BETS = 20


async def test_twenty_one_cent_bets_get_the_minimum_dividend_of_their_sum(
    harness: Harness,
) -> None:
    async with table(harness, "alice", "bob", deposit="1") as t:
        pool_id = await t.pool(min_dividend="1.10")
        for _ in range(BETS):
            await t.bet("alice", pool_id, "argentina", "0.01")
        await t.bet("bob", pool_id, "brazil", "0.01")
        assert (await t.admin.call(396, 362, pool_id=pool_id, target="argentina"))["res"] == 362
        # shares: 20 x floor(0.21 / 0.20 cents) = 0.20; the minimum: ceil(0.20 x 1.10) = 0.22
        assert (await t.balance("alice"))["available"] == Decimal("1.02")
    assert await harness.audit() == []
