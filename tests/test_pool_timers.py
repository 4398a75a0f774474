"""Pool timers under trio's mock clock: expiry, scheduled block/allow, coalesced 360s."""

from __future__ import annotations

import trio

from actors import game as g
from actors import pool as p
from actors.registry import OpenSource
from tests.conftest import ActorHarness, FakeConnection


async def open_game(h: ActorHarness) -> tuple[str, int, FakeConnection]:
    admin = await h.user("admin", roles=("developer",))
    source = await h.services.ask_registry(OpenSource(admin, "src", ""))
    game = await h.services.games.create_game(source.id, admin, {
        "game_name": "A - B", "actions": "goal", "targets": "a,b,a:1,b:1"}, opened=True)
    box = h.services.games.game(game.id)
    assert (await box.ask(g.BecomeAdmin(admin)))["res"] == 640
    watcher = FakeConnection(admin)
    await box.ask(g.Join(watcher))
    return game.id, admin, watcher


async def test_time_based_pool_expires_to_none_at_finish_at(
        actors: ActorHarness, autojump_clock: trio.testing.MockClock) -> None:
    game_id, admin, watcher = await open_game(actors)
    now = actors.services.clock.now_ms()
    created = await actors.services.games.game(game_id).ask(g.CreatePool(admin, {
        "action": "goal", "targets": "a,b", "pool_type": 2, "finish_at": now + 60_000}))
    _, pool = actors.services.games.pool(created["pool_id"])
    alice = await actors.user("alice", deposit=1000)
    await pool.ask(p.PlaceBet(alice, "a", "5"))
    await trio.sleep(59)
    assert watcher.take(363) == []
    await trio.sleep(2)
    expired = watcher.take(363)
    assert len(expired) == 1 and expired[0]["winning_target"] == "none"
    # nobody backed "none": every stake comes back
    assert expired[0]["is_money_return"] is True and expired[0]["losers"] == []
