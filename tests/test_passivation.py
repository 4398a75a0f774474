"""Resolved pools and closed games leave memory when idle and come back on demand, and a
restart only starts what is live."""

from __future__ import annotations

import trio

from actors import game as g
from actors import pool as p
from tests.conftest import ActorHarness, open_match
from tests.postgres import open_test_database
from tote.server import ServerConfig, start_services


async def test_idle_resolved_pools_and_closed_games_leave_memory_and_come_back(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services, supervisor = actors.services, actors.services.supervisor
    idle = services.settings.idle_seconds
    m = await open_match(actors)
    open_id, _ = await m.pool()
    resolved_id, resolved = await m.pool()
    alice = await m.player("alice")
    await resolved.ask(p.PlaceBet(alice, "a", "3"))
    await resolved.ask(p.ResolveByHand("a"))

    await trio.sleep(idle + 1)
    assert supervisor.mailbox(f"pool:{resolved_id}") is None  # idle and resolved: gone
    assert supervisor.mailbox(f"pool:{open_id}") is not None  # open pools stay

    _, revived = await services.games.pool(resolved_id)  # back on demand, from storage
    listing = (await revived.ask(p.Describe(alice, everything=False))).listing
    assert (listing["winning_target"], str(listing["total_winnings"])) == ("a", "3.0")

    assert (await m.game.ask(g.Close(None))).closed is True
    await trio.sleep(idle + 1)
    assert supervisor.mailbox(f"game:{m.game_id}") is None
    details = await (await services.games.game(m.game_id)).ask(g.Details())
    assert details.status == "game_closed"


async def test_a_restart_starts_only_live_games_and_open_pools(
    autojump_clock: trio.testing.MockClock,
) -> None:
    database = open_test_database()
    config = ServerConfig(offload=False)
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, config, database, "key")
        m = await open_match(ActorHarness(services, nursery))
        open_id, _ = await m.pool()
        resolved_id, resolved = await m.pool()
        await resolved.ask(p.Void())
        closed = await open_match(ActorHarness(services, nursery), name="other")
        await closed.game.ask(g.Close(None))
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, config, database, "key")
        running = {
            name
            for name in (
                f"game:{m.game_id}",
                f"pool:{open_id}",
                f"pool:{resolved_id}",
                f"game:{closed.game_id}",
            )
            if services.supervisor.mailbox(name) is not None
        }
        assert running == {f"game:{m.game_id}", f"pool:{open_id}"}
        _, box = await services.games.pool(resolved_id)
        assert (await box.ask(p.Info())).open is False
        nursery.cancel_scope.cancel()
    database.close()
