"""A small world to attack: a source with a game, a pool and one player's bet, owned by
one admin, next to strangers who each hold some other standing. Shared by the
reliability scenarios, with a fingerprint of everything durable that money or rights
hang on, so a scenario can say "nothing changed"."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from actors.remote import backlog
from kit.settings import Settings
from tests.conftest import ActorHarness, Harness, setup_game
from tests.fake_operator import FakeOperator
from tests.postgres import open_test_database
from tests.test_betslip_crash import slip_bet
from tests.test_fuzz_ws import TABLES
from tote.server import ServerConfig, start_services

#: Tables whose every row a refused request must leave as it was: the fuzz tests' list,
#: and who the users are and who admins which source.
GUARDED_TABLES = (*TABLES, "users", "source_admins", "limits")
#: The secret tote and the fake operator sign remote wallet calls with.
OPERATOR_SECRET = "reliability-secret"


@dataclass
class World:
    """Who is who: ``owner`` opened the source and the game and admins both; ``victim``
    has a bet in the pool; every stranger has a standing in some other place only, and
    no money (so that an op anyone may send, a bet, still changes nothing)."""

    owner: dict[str, Any]
    victim: dict[str, Any]
    strangers: dict[str, dict[str, Any]]
    source_id: str
    game_id: str
    pool_id: str
    bet_id: str

    def fields(self) -> dict[str, Any]:
        """Request fields aimed at the owner's things, good enough to pass validation."""
        return {
            "game_id": self.game_id,
            "pool_id": self.pool_id,
            "source_id": self.source_id,
            "source_name": "mine",
            "game_name": "Mine",
            "actions": ["goal"],
            "targets": "a,b",
            "action": "goal",
            "action_id": "goal",
            "target_id": "argentina:1",
            "target": "brazil",
            "pool_type": "1",
            "currency": "EUR",
            "amount": "1",
        }


async def build_world(harness: Harness) -> World:
    """The owner's source, game, pool and the victim's bet; strangers of every kind."""
    owner = await harness.user("owner", roles=["developer"])
    victim = await harness.user("victim", deposit="10.00")
    strangers = {
        "player": await harness.user("player"),
        "developer": await harness.user("developer", roles=["developer"]),
        "source admin of another source": await harness.user("other-source", roles=["developer"]),
        "game admin of another game": await harness.user("other-game", roles=["developer"]),
    }
    async with harness.connect(owner) as ows, harness.connect(victim) as vws:
        game_id = await setup_game(ows)
        source_id = (await ows.call(372, 342, game_id=game_id))["source_id"]
        pool = await ows.call(
            385, 350, game_id=game_id, pool_type="1", action="goal", targets="argentina,brazil"
        )
        bet = await vws.call(392, 356, pool_id=pool["pool_id"], target="brazil", amount="1")
    async with harness.connect(strangers["source admin of another source"]) as ws:
        await ws.call(365, 335, source_name="elsewhere.example")
    async with harness.connect(strangers["game admin of another game"]) as ws:
        await setup_game(ws)
    return World(owner, victim, strangers, source_id, game_id, pool["pool_id"], bet["bet_id"])


async def fingerprint(harness: Harness) -> dict[str, list[str]]:
    """Every guarded row, as comparable text."""

    def read(db: Any) -> dict[str, list[str]]:
        return {
            table: sorted(repr(sorted(row.items())) for row in db.rows(f'SELECT * FROM "{table}"'))
            for table in GUARDED_TABLES
        }

    return await harness.services.storage.read(read)


@asynccontextmanager
async def running_actors(settings: Settings | None = None) -> AsyncIterator[ActorHarness]:
    """The actors on an in-memory store run inline, as the ``actors`` fixture starts them
    (for scenarios that start many, one per hypothesis example), audited at the end;
    ``settings`` for another mode (remote wallet)."""
    database = open_test_database()
    config = ServerConfig(offload=False, settings=settings or Settings())
    try:
        async with trio.open_nursery() as nursery:
            services = await nursery.start(start_services, config, database, "key")
            h = ActorHarness(services, nursery)
            yield h
            assert await h.audit() == []
            nursery.cancel_scope.cancel()
    finally:
        database.close()


def slip_body(game_id: str, player: int, session: str, legs: list[tuple[str, str, str]]) -> dict:
    """A betslip (seed 002) on the actors' match: a bet per leg (pool, target, stake)."""
    return {
        "requestId": uuid.uuid4().hex,
        "userId": str(player),
        "sessionToken": session,
        "timestamp": "1795000000000",
        "bets": [slip_bet(game_id, pool_id, target, stake) for pool_id, target, stake in legs],
    }


@asynccontextmanager
async def remote_actors() -> AsyncIterator[tuple[ActorHarness, FakeOperator]]:
    """The actors in remote wallet mode, and the fake operator serving on loopback in the
    same trio run (under the autojump clock the clock moves only when nothing is under
    way), checking signatures against tote's clock."""
    operator = FakeOperator(OPERATOR_SECRET)
    async with trio.open_nursery() as nursery:
        await nursery.start(operator.serve)
        settings = Settings(
            wallet_url=operator.url,
            wallet_secret=OPERATOR_SECRET,
            wallet_retry_seconds=0.05,
            request_timeout=5.0,
        )
        async with running_actors(settings) as h:
            operator.clock = lambda: h.services.clock.now_ms() / 1000
            yield h, operator
        nursery.cancel_scope.cancel()


async def drained(services: Any, operator: FakeOperator) -> None:
    """Until the outbox is empty: every debit decided, every credit delivered. Waits on
    the operator's calls; the mock clock moves the worker's passes (a placer that died
    mid-debit leaves an intent the worker takes over once it is stale)."""
    while (await services.storage.read(backlog)).pending:
        with trio.move_on_after(services.settings.wallet_retry_seconds):
            await operator.changed.wait()
