"""A game's pools, bounded and listed at a cost the lister pays (hostile review of
issue 23): at most ``MAX_OPEN_POOLS`` open at once, over the real websocket; op 390
starts the actors of the resolved pools the sender bet in, not of every pool the game
ever had; a listing shows odds that follow the bets."""

from __future__ import annotations

from pathlib import Path

from domain.game import MAX_OPEN_POOLS
from tests.conftest import Harness, WsClient, running_harness, setup_game


async def create_pool(admin: WsClient, game_id: str) -> dict:
    return await admin.call(385, game_id=game_id, action="goal", targets="Argentina,Brazil")


async def test_a_game_has_at_most_max_open_pools_and_a_resolved_one_makes_room(
    harness: Harness,
) -> None:
    user = await harness.user("pool-count-admin", roles=["developer"])
    async with harness.connect(user) as admin:
        game_id = await setup_game(admin)
        pools = [(await create_pool(admin, game_id))["pool_id"] for _ in range(MAX_OPEN_POOLS)]
        refused = await create_pool(admin, game_id)
        assert refused["res"] == 666, refused
        assert refused["error_code"] == "INVALID_PARAMETER"
        assert (refused["parameter"], refused["limit"]) == ("game_id", MAX_OPEN_POOLS)
        listed = await admin.call(387, 3535, game_id=game_id)
        assert sorted(listed["pools_list"]) == sorted(pools)  # the refusal made nothing
        assert (await admin.call(399, 362, pool_id=pools[0]))["res"] == 362
        assert (await create_pool(admin, game_id))["res"] == 350


async def test_390_starts_only_the_resolved_pools_the_player_bet_in(tmp_path: Path) -> None:
    async with running_harness(tmp_path) as h:
        admin_user = await h.user("resolved-admin", roles=["developer"])
        player = await h.user("resolved-player", deposit="10")
        async with h.connect(admin_user) as admin, h.connect(player) as ws:
            game_id = await setup_game(admin)
            backed, other = [(await create_pool(admin, game_id))["pool_id"] for _ in range(2)]
            placed = await ws.call(392, pool_id=backed, target="Argentina", amount="1")
            assert placed["res"] == 356, placed
            for pool_id in (backed, other):
                assert (await admin.call(399, 362, pool_id=pool_id))["res"] == 362
    async with running_harness(tmp_path) as h:  # resolved pools are not started at start
        supervisor = h.services.supervisor
        assert supervisor.mailbox(f"pool:{other}") is None
        async with h.connect(player) as ws:
            listed = await ws.call(390, 355, game_id=game_id)
        assert list(listed["pools_list"]) == [backed]
        assert supervisor.mailbox(f"pool:{other}") is None


async def test_a_listing_shows_odds_that_follow_the_bets(harness: Harness) -> None:
    """The odds of a listing are computed once per bet: a bet changes them at once."""
    admin_user = await harness.user("odds-admin", roles=["developer"])
    player = await harness.user("odds-player", deposit="10")
    async with harness.connect(admin_user) as admin, harness.connect(player) as ws:
        game_id = await setup_game(admin)
        pool_id = (await create_pool(admin, game_id))["pool_id"]
        before = (await ws.call(387, 3535, game_id=game_id))["pools_list"][pool_id]
        assert before["distributions"]["brazil"]["amount_total"] == 0
        assert (await ws.call(392, pool_id=pool_id, target="Brazil", amount="2"))["res"] == 356
        after = (await ws.call(387, 3535, game_id=game_id))["pools_list"][pool_id]
        brazil = after["distributions"]["brazil"]
        assert (brazil["amount_total"], brazil["backing_people"]) == (2, 1)
        assert after["distributions"]["argentina"]["to_win_if_backed"] == 3
