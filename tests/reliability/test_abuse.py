"""Scenario 7, abuse, the functional half: idle connections held open and a reconnect
storm at the per-user cap while an honest player bets. The honest player gets every
answer, every slot a storm client gave back is usable again, and the books balance.
(Floods past the rate limit and clients that never read are in tests/test_ws_hostile.py;
latency and memory bounds are for the soak, not for a suite that must not time things.)"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from trio_websocket import ConnectionRejected

from tests.conftest import Harness, setup_game

IDLE_USERS = 40
STORM_WAVES = 6
BETS = 20


async def test_idle_connections_and_a_reconnect_storm_do_not_starve_a_bettor(
    harness: Harness,
) -> None:
    cap = harness.services.settings.max_connections_per_user
    admin = await harness.user("admin", roles=["developer"])
    bettor = await harness.user("bettor", deposit="100")
    stormer = await harness.user("stormer")
    idlers = [await harness.user(f"idle{n}") for n in range(IDLE_USERS)]
    figures = {"storm connections": 0, "refused at the cap": 0, "bets": 0}

    async with harness.connect(admin) as aws:
        game_id = await setup_game(aws)
        pool_id = (
            await aws.call(385, 350, game_id=game_id, action="goal", targets="argentina,brazil")
        )["pool_id"]

    async def hold_one(user: dict[str, Any], task_status: trio.TaskStatus[None]) -> None:
        async with harness.connect(user) as ws:
            assert (await ws.call(1))["res"] == 1
            task_status.started()
            await trio.sleep_forever()

    async def storm() -> None:
        for _ in range(STORM_WAVES):
            async with trio.open_nursery() as wave:
                for _ in range(cap):
                    wave.start_soon(connect_until_admitted)

    async def connect_until_admitted() -> None:
        """A slot given back is usable again: wait (explicitly, bounded) until the
        server has seen the last wave's clients leave."""
        with trio.fail_after(20):
            while True:
                try:
                    async with harness.connect(stormer) as ws:
                        assert (await ws.call(1))["res"] == 1
                        figures["storm connections"] += 1
                        return
                except ConnectionRejected as refused:
                    assert refused.status_code == 429, refused
                    figures["refused at the cap"] += 1
                    await trio.testing.wait_all_tasks_blocked()

    async def bet() -> None:
        async with harness.connect(bettor) as ws:
            for _ in range(BETS):
                reply = await ws.call(392, 356, pool_id=pool_id, target="brazil", amount="1")
                assert reply["res"] == 356, reply
                figures["bets"] += 1

    async with trio.open_nursery() as nursery:
        for user in idlers:
            await nursery.start(hold_one, user)
        async with trio.open_nursery() as load:
            load.start_soon(storm)
            load.start_soon(bet)
        nursery.cancel_scope.cancel()
    assert figures["storm connections"] == STORM_WAVES * cap
    assert await harness.audit() == []
    print(f"abuse: {IDLE_USERS} idle connections, {figures}")
