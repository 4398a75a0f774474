"""Every op the table says needs a role refuses a player without it: the documented role
is the enforced one (``Op.role`` is read from the message the op sends)."""

from __future__ import annotations

from decimal import Decimal

from domain.roles import Role
from tests.conftest import Harness, setup_game
from transport.ops import OPS


async def test_every_op_with_a_role_refuses_a_plain_player(harness: Harness) -> None:
    admin = await harness.user(roles=["developer"])
    player = await harness.user(deposit="10.00")
    async with harness.connect(admin) as admin_ws, harness.connect(player) as ws:
        game_id = await setup_game(admin_ws)
        pool = await admin_ws.call(
            385, 350, game_id=game_id, pool_type="1", action="goal", targets="argentina,brazil"
        )
        await ws.call(392, 356, pool_id=pool["pool_id"], target="brazil", amount="1")
        sources = (await admin_ws.call(611, 621))["sources"]
        fields = {
            "game_id": game_id,
            "pool_id": pool["pool_id"],
            "source_id": sources[0]["id"],
            "source_name": "mine",
            "game_name": "Mine",
            "actions": ["goal"],
            "targets": "a,b",
            "action": "goal",
            "action_id": "goal",
            "target_id": "argentina:1",
            "target": "brazil",
            "pool_type": "1",
        }
        checked = []
        for spec in sorted(OPS.values(), key=lambda s: s.code):
            if spec.role is Role.ANYONE:
                continue
            reply = await ws.call(spec.code, **fields)
            if spec.code == 616:  # a refusal is its own answer (seed 001)
                assert reply["res"] == 645, reply
            else:
                assert (reply["res"], reply["error_code"]) == (666, "NOT_AUTHORIZED"), (
                    spec.code,
                    reply,
                )
            checked.append(spec.code)
        assert len(checked) == 16
        # nothing moved: the player's one stake is still the only one
        balances = (await harness.http.get(f"/v1/users/{player['user_id']}/balances")).json()
        assert Decimal(str(balances["EUR"]["exposure"])) == 1
    assert await harness.audit() == []
