"""A stake split into cents does not multiply the minimum dividend (hostile review of
issue 23). The house's top-up was rounded up per bet: at a minimum dividend of 1.10 a
one-cent bet got ceil(1.1) = 2 cents, so a player who split 100.00 on the favourite into
10,000 one-cent bets was paid 200.00 (the house adding 100.00) where one bet got 110.00.
The minimum holds per winner, on their stakes on the winner together."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.conftest import Harness, setup_game

BETS = 20


async def test_twenty_one_cent_bets_get_the_minimum_dividend_of_their_sum(
    harness: Harness,
) -> None:
    admin_user = await harness.user("split-admin", roles=["developer", "house"])
    alice = await harness.user("split-alice", deposit="1")
    bob = await harness.user("split-bob", deposit="1")
    async with (
        harness.connect(admin_user) as admin,
        harness.connect(alice) as a,
        harness.connect(bob) as b,
    ):
        game_id = await setup_game(admin)
        rules = {"action": "Goal", "targets": "Argentina,Brazil", "min_dividend": "1.10"}
        pool_id = (await admin.call(385, 350, game_id=game_id, **rules))["pool_id"]
        for _ in range(BETS):
            await a.call(392, 356, pool_id=pool_id, target="Argentina", amount="0.01")
        await b.call(392, 356, pool_id=pool_id, target="Brazil", amount="0.01")
        assert (await admin.call(396, 362, pool_id=pool_id, target="Argentina"))["res"] == 362
    reply = await harness.http.get(f"/v1/users/{alice['user_id']}/balances")
    # shares: 20 x floor(0.21 / 0.20 cents) = 0.20; the minimum: ceil(0.20 x 1.10) = 0.22
    assert json.loads(reply.text, parse_float=Decimal)["EUR"]["available"] == Decimal("1.02")
    assert await harness.audit() == []
