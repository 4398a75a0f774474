"""Seed 003's fail-safe time under trio's mock clock: a pool nobody resolved by then is
voided exactly as op 399 does, once, across restarts; a resolved pool is left alone."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
import trio

from actors import pool as p
from actors.services import Services
from actors.wallet import GetBalances
from domain.errors import DomainError
from kit.clock import WallClock
from storage.changes import Update
from storage.database import Database
from tests.conftest import ActorHarness, Match, ledger_problems, open_match
from tests.postgres import open_test_database
from tote.server import ServerConfig, start_services

DAY_MS = 24 * 3600 * 1000


async def available(services: Services, user_id: int) -> int:
    return (await services.ask_wallet(GetBalances(user_id)))["EUR"].available


async def stored_pool(services: Services, pool_id: str) -> dict[str, Any]:
    return (
        await services.storage.read(
            lambda db: db.rows("SELECT status, fail_safe_at FROM pools WHERE id = ?", (pool_id,))
        )
    )[0]


async def two_bettors(m: Match, pool: Any) -> tuple[int, int]:
    alice, bob = await m.player("alice"), await m.player("bob")
    await pool.ask(p.PlaceBet(alice, "a", "10"))
    await pool.ask(p.PlaceBet(bob, "b", "30"))
    for conn in m.pushes.values():
        conn.take(815)
    return alice, bob


async def test_an_unresolved_pool_is_voided_at_its_fail_safe_time(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    fail_safe_at = m.now + 60_000
    pool_id, pool = await m.pool(fail_safe_at=fail_safe_at)
    alice, bob = await two_bettors(m, pool)
    assert (await stored_pool(actors.services, pool_id))["fail_safe_at"] == fail_safe_at
    await trio.sleep(59.9)
    assert m.watcher.take(362) == []
    await trio.sleep(0.2)
    [voided] = m.watcher.take(362)
    assert voided["pool_id"] == pool_id and voided["resolved_at"] == fail_safe_at
    assert voided["is_money_return"] is True and voided["winning_target"] is None
    assert voided["winners"] == {} and voided["losers"] == []
    for user in (alice, bob):
        assert await available(actors.services, user) == 100_00
        [pushed] = m.pushes[user].take(815)
        assert pushed["available_balance"] == 100
    assert (await stored_pool(actors.services, pool_id))["status"] == "voided"
    with pytest.raises(DomainError) as refused:
        await pool.ask(p.PlaceBet(alice, "a", "1"))
    assert refused.value.code == "POOL_CLOSED"
    await trio.sleep(3600)
    assert m.watcher.take(362) == []


async def test_the_default_fail_safe_counts_from_the_pool_closing(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    actors.services.settings.fail_safe_delay_ms = 10 * 60_000
    m = await open_match(actors)
    stop_at = m.now + 30 * 60_000
    pool_id, pool = await m.pool(stop_accepting_bets_at=stop_at)
    await two_bettors(m, pool)
    assert (await stored_pool(actors.services, pool_id))["fail_safe_at"] == stop_at + 600_000
    [announced] = m.watcher.take(352)  # players see it from the start
    assert announced["fail_safe_at"] == stop_at + 600_000
    await trio.sleep(39 * 60 + 59)
    assert m.watcher.take(362) == []
    await trio.sleep(2)
    assert [msg["resolved_at"] for msg in m.watcher.take(362)] == [stop_at + 600_000]


async def test_a_pool_without_a_closing_time_is_voided_after_the_max_lifetime(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """Decisions §13: no closing time, no fail_safe_at: voided max_pool_lifetime_ms after
    its opening, every stake back, so no stake stays in escrow for ever."""
    actors.services.settings.max_pool_lifetime_ms = lifetime = 3 * DAY_MS
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice, bob = await two_bettors(m, pool)
    [announced] = m.watcher.take(352)
    fail_safe_at = announced["start_at"] + lifetime
    assert announced["fail_safe_at"] == fail_safe_at
    assert (await stored_pool(actors.services, pool_id))["fail_safe_at"] == fail_safe_at
    await trio.sleep((fail_safe_at - m.now) / 1000 - 1)
    assert m.watcher.take(362) == []
    await trio.sleep(2)
    [voided] = m.watcher.take(362)
    assert (voided["resolved_at"], voided["is_money_return"]) == (fail_safe_at, True)
    for user in (alice, bob):
        assert await available(actors.services, user) == 100_00
    assert (await stored_pool(actors.services, pool_id))["status"] == "voided"
    assert await actors.audit() == []


async def test_a_pool_resolved_before_its_fail_safe_time_is_untouched(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(fail_safe_at=m.now + 60_000)
    alice, bob = await two_bettors(m, pool)
    await pool.ask(p.ResolveByHand("b"))
    assert [msg["winning_target"] for msg in m.watcher.take(362)] == ["b"]
    paid = await available(actors.services, bob)
    await trio.sleep(120)
    assert m.watcher.take(362) == []
    assert (await stored_pool(actors.services, pool_id))["status"] == "resolved"
    assert await available(actors.services, bob) == paid
    assert await available(actors.services, alice) == 90_00


async def test_an_event_resolution_under_way_wins_over_the_fail_safe(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    fail_safe_at = m.now + 5_000  # before the pool would settle the event by itself
    _, pool = await m.pool(fail_safe_at=fail_safe_at)
    alice, _ = await two_bettors(m, pool)
    await pool.ask(p.HaltForEvent("a", m.now))
    await trio.sleep(6)
    [settled] = m.watcher.take(362)
    assert (settled["winning_target"], settled["is_money_return"]) == ("a", False)
    assert settled["winners"] == {str(alice): 40}


async def test_a_recreated_pool_keeps_its_fail_safe_distance(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    _, pool = await m.pool(fail_safe_at=m.now + 60_000, recreate_on_end=True)
    await trio.sleep(10)
    await pool.ask(p.ResolveByHand("a"))
    [fresh] = [msg for msg in m.watcher.take(352) if msg["start_at"] == m.now]
    stored = await stored_pool(actors.services, fresh["pool_id"])
    assert stored["fail_safe_at"] == fresh["start_at"] + 60_000


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"fail_safe_at": "soon"}, "must be"),
        ({"fail_safe_at": 10**30}, "2200"),
        ({"fail_safe_at": True}, "must be"),
        ({"fail_safe_at": "-5"}, "2200"),
        ({"fail_safe_at": "past"}, "now"),
        ({"finish_at": "+60000", "pool_type": 2, "fail_safe_at": "+30000"}, "finish_at"),
        ({"stop_accepting_bets_at": "+60000", "fail_safe_at": "+60000"}, "stop_accepting"),
    ],
)
async def test_a_bad_fail_safe_at_is_refused_and_opens_no_pool(
    actors: ActorHarness, fields: dict[str, Any], why: str
) -> None:
    m = await open_match(actors)
    now = m.now
    relative = {
        k: now + int(v) if isinstance(v, str) and v.startswith("+") else v
        for k, v in fields.items()
    }
    if relative.get("fail_safe_at") == "past":
        relative["fail_safe_at"] = now - 1000
    with pytest.raises(DomainError) as refused:
        await m.pool(**relative)
    assert refused.value.code == "INVALID_PARAMETER"
    assert refused.value.extra["parameter"] == "fail_safe_at"
    assert why in refused.value.text
    rows = await actors.services.storage.read(lambda db: db.rows("SELECT id FROM pools"))
    assert rows == []


async def test_fail_safe_at_in_seconds_is_read_as_every_time_field(
    actors: ActorHarness,
) -> None:
    m = await open_match(actors)
    seconds = m.now // 1000 + 3600
    pool_id, _ = await m.pool(fail_safe_at=str(seconds))
    assert (await stored_pool(actors.services, pool_id))["fail_safe_at"] == seconds * 1000


# -- restarts -----------------------------------------------------------------------------


async def test_the_fail_safe_survives_a_pool_restart_and_voids_once(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool(fail_safe_at=m.now + 60_000)
    await two_bettors(m, pool)
    actors.services.supervisor.kill(f"pool:{pool_id}")
    await trio.sleep(61)
    assert actors.services.supervisor.restarts(f"pool:{pool_id}") == 1
    assert len(m.watcher.take(362)) == 1
    actors.services.supervisor.kill(f"pool:{pool_id}")
    assert (await pool.ask(p.Info())).open is False
    await trio.sleep(600)
    assert m.watcher.take(362) == []


async def test_a_server_down_across_the_fail_safe_time_voids_the_pool_when_it_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first run lives an hour in the past, so its pool's fail-safe time has passed
    when the second run starts on the same database; a third run finds nothing to do."""
    database = open_test_database()
    config = ServerConfig(offload=False)
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, config, database, "key")
        services.clock = WallClock(int(time.time() * 1000) - 3_600_000)
        m = await open_match(ActorHarness(services, nursery))
        pool_id, pool = await m.pool(fail_safe_at=m.now + 60_000)
        alice, bob = await two_bettors(m, pool)
        assert await available(services, alice) == 90_00
        nursery.cancel_scope.cancel()

    await voided_once_at_each_start(database, pool_id, (alice, bob))
    database.close()


async def voided_once_at_each_start(
    database: Database, pool_id: str, bettors: tuple[int, ...], fail_safe_at: int | None = None
) -> None:
    """Start twice on ``database``: the pool is voided (at ``fail_safe_at``, if given)
    once, every bettor has their money back, and the books balance."""
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            services = await nursery.start(
                start_services, ServerConfig(offload=False), database, "key"
            )
            _, box = await services.games.pool(pool_id)
            assert (await box.ask(p.Info())).open is False
            stored = await stored_pool(services, pool_id)
            assert stored["status"] == "voided"
            assert fail_safe_at in (None, stored["fail_safe_at"])
            for user in bettors:
                assert await available(services, user) == 100_00
            assert await ledger_problems(services) == []
            nursery.cancel_scope.cancel()
    settlements = "SELECT COUNT(*) FROM transactions WHERE id = ?"
    assert database.scalar(settlements, (f"settle:{pool_id}",)) == 1


async def test_a_pool_stored_without_a_fail_safe_time_gets_one_on_load_and_is_voided(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A pool made before every pool had a fail-safe time (none stored): the next start
    gives it its opening plus max_pool_lifetime_ms, records it, and voids it when that
    time has passed, across restarts."""
    database = open_test_database()
    config = ServerConfig(offload=False)
    async with trio.open_nursery() as nursery:
        services = await nursery.start(start_services, config, database, "key")
        services.clock = WallClock(int(time.time() * 1000) - 8 * DAY_MS)  # 8 days ago
        m = await open_match(ActorHarness(services, nursery))
        pool_id, pool = await m.pool()
        alice, bob = await two_bettors(m, pool)
        opened_at = (await pool.ask(p.Info())).start_at
        nursery.cancel_scope.cancel()
    forget_fail_safe(database, pool_id)
    await voided_once_at_each_start(database, pool_id, (alice, bob), opened_at + 7 * DAY_MS)
    database.close()


def forget_fail_safe(db: Database, pool_id: str) -> None:
    """Store the pool as an older version did: without a fail-safe time."""
    doc = msgspec.json.decode(db.scalar("SELECT doc FROM pools WHERE id = ?", (pool_id,)))
    doc["fail_safe_at"] = None
    values = {"fail_safe_at": None, "doc": msgspec.json.encode(doc).decode()}
    assert db.apply_batch([[Update("pools", {"id": pool_id}, values)]]) == [None]


async def test_a_restart_resumes_the_lifetime_timer(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    await two_bettors(m, pool)
    [announced] = m.watcher.take(352)
    await trio.sleep(6 * 24 * 3600)
    actors.services.supervisor.kill(f"pool:{pool_id}")
    assert (await pool.ask(p.Info())).open is True
    assert actors.services.supervisor.restarts(f"pool:{pool_id}") == 1
    await trio.sleep(24 * 3600 + 1)
    [voided] = m.watcher.take(362)
    assert voided["resolved_at"] == announced["start_at"] + 7 * DAY_MS
