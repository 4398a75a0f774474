"""What a listing (387-390) or a 393 shows of a pool's bets (hostile review of issue 23):
a player's own bets, found without a pass over every bet of the pool (each listing asked
every pool for them, so a crowded game made each 387 of any subscriber cost the loop a
pass over all its bets); a game admin's view of everybody's, bounded to the latest
``MAX_LISTED_BETS`` with ``omitted_bets`` counting the others."""

from __future__ import annotations

import pytest

from domain import pool as pool_domain
from tests.conftest import Harness
from tests.test_ws_pools import table

LISTED = 3


async def test_a_player_sees_their_own_bets_and_an_admin_the_latest_of_everybodys(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_domain, "MAX_LISTED_BETS", LISTED)
    async with table(harness, "alice", "bob", deposit="10") as t:
        pool_id = await t.pool()
        alice_bets = [(await t.bet("alice", pool_id, "brazil", "0.5"))["bet_id"] for _ in range(4)]
        bob_bet = (await t.bet("bob", pool_id, "brazil", "1"))["bet_id"]

        def bets(reply: dict) -> set[str]:
            return set(reply["distribution"]["brazil"]["bets"])

        mine = await t["alice"].call(393, 360, pool_id=pool_id)
        assert bets(mine) == set(alice_bets) and "omitted_bets" not in mine
        assert bets(await t["bob"].call(393, 360, pool_id=pool_id)) == {bob_bet}
        everybody = await t.admin.call(393, 360, pool_id=pool_id)
        assert bets(everybody) == {*alice_bets[-2:], bob_bet}
        assert everybody["omitted_bets"] == 2
        entry = (await t.admin.call(387, 3535, game_id=t.game_id))["pools_list"][pool_id]
        assert (len(entry["distributions"]["brazil"]["bets"]), entry["omitted_bets"]) == (3, 2)
        entry = (await t["alice"].call(389, 354, game_id=t.game_id))["pools_list"][pool_id]
        assert set(entry["distributions"]["brazil"]["bets"]) == set(alice_bets)
