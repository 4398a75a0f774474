"""Who may commit the house's money (hostile review of issue 23). A guarantee or a minimum
dividend above 1 is paid by the house, and a game admin resolves pools by hand (396):
any developer could open a source, a game and a pool guaranteeing 10^13 EUR, stake a cent
from an accomplice and resolve it to them. Only a user with the ``house`` role opens a
pool that can cost the house, whether the rule is the pool's own or its game's default;
others get NOT_AUTHORIZED naming the rule, and nothing is created."""

from __future__ import annotations

from tests.conftest import Harness, setup_game


async def test_only_a_house_user_opens_a_pool_that_can_cost_the_house(
    harness: Harness,
) -> None:
    developer = await harness.user("plain-developer", roles=["developer"])
    house = await harness.user("house-trader", roles=["developer", "house"])
    async with harness.connect(developer) as dev, harness.connect(house) as trader:
        game_id = await setup_game(dev)
        pool = {"game_id": game_id, "action": "Goal", "targets": "Argentina,Brazil"}
        for rules in ({"guarantee": "10000000000000"}, {"min_dividend": "100"}):
            refused = await dev.call(385, **pool, **rules)
            assert (refused["error_code"], refused["parameter"]) == (
                "NOT_AUTHORIZED",
                next(iter(rules)),
            )
        assert (await dev.call(385, 350, **pool, min_dividend="1"))["res"] == 350
        # a game default is harmless until a pool carries it: then the same rule holds
        assert (await dev.call(373, 343, game_id=game_id, guarantee="500"))["res"] == 343
        assert (await dev.call(385, **pool))["parameter"] == "guarantee"
        listed = await dev.call(387, 3535, game_id=game_id)
        assert len(listed["pools_list"]) == 1  # the refusals created nothing
        # a house user opens such pools, in a game of their own
        house_game = await setup_game(trader)
        opened = await trader.call(
            385, 350, game_id=house_game, action="Goal", targets="Argentina", guarantee="500"
        )
        assert opened["res"] == 350, opened
    assert await harness.audit() == []
