"""A whole match over the websocket: source, game, admins, pools, bets, events, payouts."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import Harness, setup_game


async def test_next_goal_pool_pays_winners_to_the_cent(harness: Harness) -> None:
    admin = await harness.user("admin", roles=["developer"])
    alice = await harness.user("alice", deposit="100.00")
    bob = await harness.user("bob", deposit="100.00")
    carol = await harness.user("carol", deposit="100.00")
    async with (
        harness.connect(admin) as aws,
        harness.connect(alice) as a,
        harness.connect(bob) as b,
        harness.connect(carol) as c,
    ):
        game_id = await setup_game(aws)
        for ws in (a, b, c):
            await ws.call(363, 333, game_id=game_id)
        created = await aws.call(
            385,
            350,
            game_id=game_id,
            description="Next goal by team",
            action="Goal",
            targets="argentina,brazil",
            pool_type="1",
            takeout="0.1",
        )
        pool_id = created["pool_id"]
        announced = await a.expect(352)
        assert set(announced["targets"]) == {"argentina", "brazil", "none"}
        assert (await a.call(392, 356, pool_id=pool_id, target="brazil", amount="10"))["res"] == 356
        assert (await b.call(392, 356, pool_id=pool_id, target="brazil", amount=30))["res"] == 356
        assert (await c.call(392, 356, pool_id=pool_id, target="argentina", amount="60"))[
            "res"
        ] == 356
        refused = await c.call(392, pool_id=pool_id, target="brazil", amount="1")
        assert refused["res"] == 666 and refused["error_code"] == "INVALID_TARGET"
        event = await aws.call(395, 366, game_id=game_id, action_id="goal", target_id="brazil:7")
        assert event["res"] == 366
        result = await a.expect(362)
        assert result["winning_target"] == "brazil"
        # T=100, N=90, W=40: alice floor(10*90/40)=22.5->22.50, bob floor(30*90/40)=67.50
        assert result["winners"] == {
            str(alice["user_id"]): Decimal("22.5"),
            str(bob["user_id"]): Decimal("67.5"),
        }
        assert result["losers"] == [carol["user_id"]]
        balance = await a.call(800, 800, currency="EUR")
        assert balance["current_balance"] == Decimal("112.5")
