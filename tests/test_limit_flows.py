"""A limited player's many small stakes (hostile review of issue 23): the wallet judged
each stake with a pass over every flow of the player's last 30 days, so a player staking
a cent at a time made each of their bets cost the wallet (which judges everybody's money)
more and more: 80 ms each after 100,000. The flows are now a log with running sums
(``domain.limits.Flows``; its cost is counted in tests/test_domain_limits.py). Here,
through the real websocket and HTTP API: the arithmetic over many stakes is the same,
before and after a restart that rebuilds the log from the ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import running_harness, setup_game

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

STAKES = 60


async def test_many_small_stakes_count_to_the_cent_before_and_after_a_restart(
    tmp_path: Path,
) -> None:
    async with running_harness(tmp_path) as h:
        admin_user = await h.user("flows-admin", roles=["developer"])
        player = await h.user("flows-player", deposit="10")
        put = await h.http.put(f"/v1/users/{player['user_id']}/limits", json={"loss": {"day": "1"}})
        assert put.status_code == 200, put.text
        async with h.connect(admin_user) as admin, h.connect(player) as ws:
            game_id = await setup_game(admin)
            pool = await admin.call(385, 350, game_id=game_id, action="Goal", targets="Brazil")
            for _ in range(STAKES):
                bet = await ws.call(392, pool_id=pool["pool_id"], target="Brazil", amount="0.01")
                assert bet["res"] == 356, bet
            refused = await ws.call(392, pool_id=pool["pool_id"], target="Brazil", amount="0.41")
            assert (refused["error_code"], refused["left"]) == ("LIMIT_REACHED", Decimal("0.4"))
            assert (await ws.call(850, 850))["left"]["loss"]["day"] == "0.4"
    async with running_harness(tmp_path) as h, h.connect(player) as ws:
        assert (await ws.call(850, 850))["left"]["loss"]["day"] == "0.4"
