"""Every op the table says needs a role refuses a player without it: the documented role
is the enforced one (``Op.role`` is read from the message the op sends). The full matrix
(every op by every kind of stranger, and the HTTP API) is
tests/reliability/test_who_may_do_what.py."""

from __future__ import annotations

from decimal import Decimal

from domain.roles import Role
from tests.conftest import Harness
from tests.reliability.world import build_world
from transport.ops import OPS


async def test_every_op_with_a_role_refuses_a_plain_player(harness: Harness) -> None:
    world = await build_world(harness)
    player = world.victim  # a plain player with a stake in the owner's pool
    async with harness.connect(player) as ws:
        checked = []
        for spec in sorted(OPS.values(), key=lambda s: s.code):
            if spec.role is Role.ANYONE:
                continue
            reply = await ws.call(spec.code, **world.fields())
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
