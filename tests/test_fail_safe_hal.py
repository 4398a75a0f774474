"""Decisions §13 in the HAL pool resource, over real HTTP: every pool shows a
``fail-safe-time``, and a ``closing-time`` that is when it stops taking bets at the
latest (its earliest known closing time, else its fail-safe time); neither is null, for
new pools and for pools stored before every pool had a fail-safe time."""

from __future__ import annotations

from typing import Any

from domain.lotteries import iso_time
from tests.conftest import Harness, WsClient, setup_game
from tests.test_fail_safe import forget_fail_safe

HOUR = 3_600_000
WEEK = 7 * 24 * HOUR


async def pool_resource(harness: Harness, source_id: str, pool_id: str) -> dict[str, Any]:
    r = await harness.http.get(f"/gaming-products/{source_id}/participation-pools/{pool_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def opened(ws: WsClient, game_id: str, **fields: Any) -> tuple[str, int]:
    """A pool on the game: its id and its opening time."""
    pool_id = (await ws.call(385, 350, game_id=game_id, action="goal", **fields))["pool_id"]
    announced = await ws.expect(352)
    assert announced["pool_id"] == pool_id
    return pool_id, announced["start_at"]


async def test_closing_and_fail_safe_times_are_never_null(harness: Harness) -> None:
    admin = await harness.user("hal-admin", roles=["developer"])
    async with harness.connect(admin) as ws:
        now = harness.services.clock.now_ms()
        game_id = await setup_game(ws, close_at=now + 48 * HOUR)
        source_id = (await ws.call(372, 342, game_id=game_id))["source_id"]
        game_without_close = await ws.call(
            370, 340, source_id=source_id, game_name="Open-ended", actions="Goal", targets="x,y"
        )
        open_ended = game_without_close["game_id"]
        await ws.call(616, 640, game_id=open_ended)
        await ws.call(363, 333, game_id=open_ended)

        # no closing time anywhere: both are the opening plus the max lifetime
        bare, start = await opened(ws, open_ended, targets="x,y")
        shown = await pool_resource(harness, source_id, bare)
        assert shown["fail-safe-time"] == shown["closing-time"] == iso_time(start + WEEK)

        # its own stop: closing at the stop, fail-safe a day later
        stopping, _ = await opened(
            ws, game_id, targets="Argentina", stop_accepting_bets_at=now + HOUR
        )
        shown = await pool_resource(harness, source_id, stopping)
        assert shown["closing-time"] == iso_time(now + HOUR)
        assert shown["fail-safe-time"] == iso_time(now + 25 * HOUR)

        # a fail-safe before the game's close: the pool stops taking bets then
        early, _ = await opened(ws, game_id, targets="Argentina", fail_safe_at=now + 2 * HOUR)
        shown = await pool_resource(harness, source_id, early)
        assert shown["closing-time"] == shown["fail-safe-time"] == iso_time(now + 2 * HOUR)

    # a pool stored without one (an older version) shows the one it gets on load
    await harness.services.storage.read(lambda db: forget_fail_safe(db, bare))
    shown = await pool_resource(harness, source_id, bare)
    assert shown["fail-safe-time"] == shown["closing-time"] == iso_time(start + WEEK)
