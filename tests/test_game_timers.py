"""Game timers under trio's mock clock: the status follows open_at and live_start_at, and a
game with close_at closes itself then (op 375's rules: parimutuel pools resolve to none,
binary pools are blocked and wait for op 396)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import game as g
from actors import pool as p
from actors.directory import CreateGame
from actors.registry import OpenSource
from actors.wallet import Balance, GetBalances
from domain.errors import DomainError
from kit.runtime import Mailbox
from tests.conftest import ActorHarness, FakeConnection

MINUTE_MS = 60_000


class Table:
    """One game of a fresh source: its mailbox, its game admin and a subscriber."""

    def __init__(self, h: ActorHarness, game_id: str, admin: int, watcher: FakeConnection):
        self.h, self.game_id, self.admin, self.watcher = h, game_id, admin, watcher
        box = h.services.supervisor.mailbox(f"game:{game_id}")
        assert box is not None
        self.box = box

    async def status(self) -> str:
        return (await self.box.ask(g.Details())).status

    async def pool(self, **fields: Any) -> Mailbox:
        created = await self.box.ask(g.CreatePool(self.admin, fields))
        return (await self.h.services.games.pool(created.pool_id))[1]


async def table(h: ActorHarness, *, opened: bool = True, **times: int) -> Table:
    """A game with actions "goal" and targets a, b (players a:1, b:1); ``times`` in ms
    from now."""
    admin = await h.user("admin", roles=("developer",))
    source = await h.services.ask_registry(OpenSource(admin, "src", ""))
    now = h.services.clock.now_ms()
    fields = {"game_name": "A - B", "actions": "goal", "targets": "a,b,a:1,b:1"}
    fields |= {name: now + offset for name, offset in times.items()}
    game = await h.services.games.create_game(CreateGame(source.id, admin, fields, opened=opened))
    t = Table(h, game.id, admin, FakeConnection(admin))
    assert (await t.box.ask(g.BecomeAdmin(admin))).refused is None
    await t.box.ask(t.watcher.join())
    t.watcher.received.clear()  # our own 470
    return t


async def test_game_closes_itself_at_close_at(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = await table(actors, close_at=MINUTE_MS)
    pool = await t.pool(action="goal", targets="a,b")
    alice = await actors.user("alice", deposit=1000)
    await pool.ask(p.PlaceBet(alice, "a", "5"))

    await trio.sleep(59)
    assert t.watcher.take(341) == [] and t.watcher.take(362) == []
    assert await t.status() == "game_in_progress_betting_active"
    await trio.sleep(2)
    (resolved,) = t.watcher.take(362)
    assert resolved["winning_target"] == "none" and resolved["is_money_return"] is True
    (closed,) = t.watcher.take(341)
    assert closed["game_id"] == t.game_id
    assert await t.status() == "game_closed"
    balances = await actors.services.ask_wallet(GetBalances(alice))
    assert balances["EUR"] == Balance(1000, 1000, 0)
    with pytest.raises(DomainError) as refused:
        await t.box.ask(g.Close(t.admin))
    assert refused.value.code == "INVALID_STATE"


async def test_status_moves_with_open_at_and_live_start_at(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = await table(actors, open_at=MINUTE_MS, live_start_at=2 * MINUTE_MS, close_at=3 * MINUTE_MS)
    assert await t.status() == "betting_not_yet_active"
    with pytest.raises(DomainError) as refused:
        await t.pool(action="goal", targets="a,b")
    assert refused.value.code == "INVALID_STATE"
    for expected in (
        "pre_game_betting_active",
        "game_in_progress_betting_active",
        "game_closed",
    ):
        await trio.sleep(60)
        assert await t.status() == expected
        if expected == "pre_game_betting_active":
            await t.pool(action="goal", targets="a:1,b:1")  # pools open before kick-off
    assert len(t.watcher.take(362)) == 1 and len(t.watcher.take(341)) == 1


async def test_times_in_seconds_drive_the_timers(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    admin = await actors.user("admin", roles=("developer",))
    source = await actors.services.ask_registry(OpenSource(admin, "src", ""))
    now_s = actors.services.clock.now_ms() // 1000
    game = await actors.services.games.create_game(
        CreateGame(
            source.id,
            admin,
            {"game_name": "A - B", "open_at": now_s + 60, "close_at": now_s + 120},
            opened=True,
        )
    )
    assert (game.open_at, game.close_at) == ((now_s + 60) * 1000, (now_s + 120) * 1000)
    box = await actors.services.games.game(game.id)
    await trio.sleep(61)
    assert (await box.ask(g.Details())).status == "game_in_progress_betting_active"
    await trio.sleep(60)
    assert (await box.ask(g.Details())).status == "game_closed"


async def test_close_at_blocks_binary_pools_until_they_are_resolved(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = await table(actors, close_at=MINUTE_MS)
    binary = await t.pool(pool_type=3, description="Extra time?")
    assert len(t.watcher.take(352)) == 1
    await trio.sleep(61)
    assert len(t.watcher.take(368)) == 1 and t.watcher.take(341) == []
    assert await t.status() == "game_in_progress_betting_closed"
    await trio.sleep(600)  # the timer does not fire again: the admin resends 375
    assert t.watcher.received == []

    assert (await binary.ask(p.ResolveByHand("yes"))).fields["winning_target"] == "yes"
    assert (await t.box.ask(g.Close(t.admin))).closed is True
    assert len(t.watcher.take(341)) == 1
    assert await t.status() == "game_closed"


async def test_an_upcoming_game_closes_at_close_at(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    t = await table(actors, opened=False, close_at=MINUTE_MS)
    assert await t.status() == "betting_not_yet_active"
    await trio.sleep(61)
    assert len(t.watcher.take(341)) == 1
    assert await t.status() == "game_closed"
    with pytest.raises(DomainError) as refused:
        await t.box.ask(g.OpenGame(t.admin, ["goal"], ["a"]))
    assert refused.value.code == "INVALID_STATE"
