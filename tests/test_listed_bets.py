"""What a listing (387-390) or a 393 shows of a pool's bets (hostile review of issue 23):
a player's own bets, found without a pass over every bet of the pool (each listing asked
every pool for them, so a crowded game made each 387 of any subscriber cost the loop a
pass over all its bets); a game admin's view of everybody's, bounded to the latest
``MAX_LISTED_BETS`` with ``omitted_bets`` counting the others."""

from __future__ import annotations

import pytest

from domain import pool as pool_domain
from tests.conftest import Harness, setup_game

LISTED = 3


async def test_a_player_sees_their_own_bets_and_an_admin_the_latest_of_everybodys(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_domain, "MAX_LISTED_BETS", LISTED)
    admin_user = await harness.user("listed-admin", roles=["developer"])
    alice = await harness.user("listed-alice", deposit="10")
    bob = await harness.user("listed-bob", deposit="10")
    async with (
        harness.connect(admin_user) as admin,
        harness.connect(alice) as a,
        harness.connect(bob) as b,
    ):
        game_id = await setup_game(admin)
        pool_id = (await admin.call(385, 350, game_id=game_id, action="Goal", targets="Brazil"))[
            "pool_id"
        ]
        alice_bets = [
            (await a.call(392, 356, pool_id=pool_id, target="Brazil", amount="0.5"))["bet_id"]
            for _ in range(4)
        ]
        bob_bet = (await b.call(392, 356, pool_id=pool_id, target="Brazil", amount="1"))["bet_id"]

        def bets(reply: dict) -> set[str]:
            return set(reply["distribution"]["brazil"]["bets"])

        mine = await a.call(393, 360, pool_id=pool_id)
        assert bets(mine) == set(alice_bets) and "omitted_bets" not in mine
        assert bets(await b.call(393, 360, pool_id=pool_id)) == {bob_bet}
        everybody = await admin.call(393, 360, pool_id=pool_id)
        assert bets(everybody) == {*alice_bets[-2:], bob_bet}
        assert everybody["omitted_bets"] == 2
        entry = (await admin.call(387, 3535, game_id=game_id))["pools_list"][pool_id]
        assert (len(entry["distributions"]["brazil"]["bets"]), entry["omitted_bets"]) == (3, 2)
        entry = (await a.call(389, 354, game_id=game_id))["pools_list"][pool_id]
        assert set(entry["distributions"]["brazil"]["bets"]) == set(alice_bets)
