"""Events (op 395): they close the pools they resolve before anyone hears of them, a
resent event is not counted twice, and one pool that cannot settle stops no other."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio

from actors import game as g
from actors import pool as p
from domain.errors import DomainError
from storage.changes import Upsert
from tests.conftest import ActorHarness, FakeConnection, open_match


class Sniper(FakeConnection):
    """A subscriber that bets on the event's target the moment it hears of the event."""

    def __init__(self, user_id: int, nursery: trio.Nursery) -> None:
        super().__init__(user_id)
        self.nursery = nursery
        self.pool: Any = None
        self.answers: list[Any] = []

    def push(self, data: bytes) -> None:
        super().push(data)
        if self.received[-1]["res"] == 366:
            self.nursery.start_soon(self._snipe)

    async def _snipe(self) -> None:
        try:
            self.answers.append(await self.pool.ask(p.PlaceBet(self.user_id, "b", "100")))
        except DomainError as error:
            self.answers.append(error.code)


async def test_an_event_stamped_ahead_of_our_clock_lets_no_late_bet_win(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, pool = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    sniper = Sniper(await m.player("carol"), actors.nursery)
    sniper.pool = pool
    await m.game.ask(sniper.join())
    await pool.ask(p.PlaceBet(alice, "a", "10"))
    await pool.ask(p.PlaceBet(bob, "b", "10"))
    received = m.now
    reply = await m.game.ask(g.RegisterEvent(m.admin, "goal", "b:1", received + 30_000))
    assert reply.event.fields["happened_at"] == received  # never later than we heard of it
    [result] = reply.resolved
    assert result.fields["winners"] == {str(bob): 20}
    await trio.testing.wait_all_tasks_blocked()
    assert sniper.answers == ["POOL_CLOSED"]


async def test_a_resent_event_is_recognised_and_not_counted_twice(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    at = m.now - 1_000
    first = await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", at))
    again = await m.game.ask(g.RegisterEvent(m.admin, "Goal", "A:1", at))
    assert again.duplicate is True
    assert again.event.fields["event_id"] == first.event.fields["event_id"]
    assert again.event.fields["current_count"] == {"a:1": 1}
    assert len(m.watcher.take(366)) == 1
    details = await m.game.ask(g.Details())
    assert list(msgspec.json.decode(details.past_events)) == [first.event.fields["event_id"]]
    later = await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", at + 1))
    assert later.event.fields["current_count"] == {"a:1": 2}


async def test_a_pool_that_cannot_settle_stops_no_other_and_settles_later(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    m = await open_match(actors)
    (stuck_id, stuck), (fine_id, fine) = await m.pool(), await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    for pool in (stuck, fine):
        await pool.ask(p.PlaceBet(alice, "a", "10"))
        await pool.ask(p.PlaceBet(bob, "b", "10"))
    [row] = await services.storage.read(
        lambda db: db.rows("SELECT * FROM pools WHERE id = ?", (stuck_id,))
    )
    broken = msgspec.json.decode(row["doc"])
    del broken["currency"]  # the pool can no longer be loaded
    broken_doc = msgspec.json.encode(broken).decode()
    await services.storage.commit([Upsert("pools", {**row, "doc": broken_doc})])
    services.supervisor.kill(f"pool:{stuck_id}")

    reply = await m.game.ask(g.RegisterEvent(m.admin, "goal", "a:1", None))
    assert [r.fields["pool_id"] for r in reply.resolved] == [fine_id]
    with pytest.raises(DomainError):
        await fine.ask(p.PlaceBet(bob, "b", "1"))

    await services.storage.commit([Upsert("pools", row)])  # an operator repairs it
    await trio.sleep(services.settings.request_timeout * 2)  # the game tries again
    assert (await stuck.ask(p.Info())).open is False
    pending = await services.storage.read(lambda db: db.rows("SELECT * FROM pending_resolutions"))
    assert pending == []
    winners = {r["pool_id"]: r["winners"] for r in m.watcher.take(362)}
    assert winners == {fine_id: {str(alice): 20}, stuck_id: {str(alice): 20}}
