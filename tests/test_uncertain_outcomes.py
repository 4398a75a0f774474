"""The uncertain-outcome policy on every actor that writes: a commit that lands while its
answer is lost (the caller timed out) leaves the actor's memory equal to the database,
because the kit rebuilds the actor from storage."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from actors import game as g
from actors import pool as p
from actors.registry import CreateUser, FindUser
from actors.wallet import GetBalances, Withdraw
from domain.errors import DomainError
from kit.runtime import OutcomeUnknown
from storage.changes import Change
from tests.conftest import ActorHarness, open_match

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines


@contextmanager
def answer_lost(services: Any, table: str) -> Iterator[list[Sequence[Change]]]:
    """The first commit that writes ``table`` lands, but its answer is lost on the way
    back, as when the caller's deadline passes while SQLite finishes it."""
    storage = services.storage
    real: Callable[[Sequence[Change]], Any] = storage.commit
    lost: list[Sequence[Change]] = []

    async def commit(changes: Sequence[Change]) -> None:
        await real(changes)
        if not lost and any(change.table == table for change in changes):
            lost.append(changes)
            raise OutcomeUnknown("REQUEST_TIMED_OUT", "The answer was lost.")

    storage.commit = commit
    try:
        yield lost
    finally:
        del storage.commit


async def refused(call: Any) -> str:
    with pytest.raises(DomainError) as caught:
        await call
    return caught.value.code


async def test_a_withdrawal_whose_answer_is_lost_cannot_be_spent_twice(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    alice = await actors.user("alice", deposit=100_00)
    with answer_lost(services, "ledger") as lost:
        code = await refused(services.ask_wallet(Withdraw(alice, "EUR", 100_00, "w1")))
    assert lost and code == "REQUEST_TIMED_OUT"
    # the wallet was rebuilt from the ledger, where the withdrawal is
    again = await refused(services.ask_wallet(Withdraw(alice, "EUR", 100_00, "w2")))
    assert again == "INSUFFICIENT_FUNDS"
    assert (await services.ask_wallet(GetBalances(alice)))["EUR"].available == 0
    assert services.supervisor.restarts("wallet") == 1


async def test_a_user_whose_answer_is_lost_keeps_its_id(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    with answer_lost(services, "users") as lost:
        code = await refused(services.ask_registry(CreateUser("bob", "", [])))
    assert lost and code == "REQUEST_TIMED_OUT"
    carol = await services.ask_registry(CreateUser("carol", "", []))
    bob = await services.ask_registry(FindUser("bob"))
    assert bob.id != carol.id
    assert services.supervisor.restarts("registry") == 1


async def test_a_pool_whose_creation_answer_is_lost_is_adopted_by_its_game(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    m = await open_match(actors)
    with answer_lost(services, "pools") as lost:
        await refused(m.game.ask(g.CreatePool(m.admin, {"action": "goal", "targets": "a,b"})))
    assert lost
    await m.game.ask(g.Summary())  # served once the rebuilt game has started
    [row] = await services.storage.read(lambda db: db.rows("SELECT id FROM pools"))
    [announced] = m.watcher.take(352)  # the rebuilt game started it and told subscribers
    assert announced["pool_id"] == row["id"]
    _, pool = await services.games.pool(row["id"])
    alice = await m.player("alice")
    assert (await pool.ask(p.PlaceBet(alice, "a", "1"))).pool_id == row["id"]
    assert services.supervisor.restarts(f"game:{m.game_id}") == 1


async def test_a_pool_saved_whose_actor_cannot_start_is_adopted_by_its_game(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's commit lands, then its actor cannot be loaded (the database went away
    in between): the creation is of unknown outcome, and the rebuilt game adopts the pool
    (the directory never answers NOT_FOUND for a pool storage has)."""
    services = actors.services
    m = await open_match(actors)
    real = p.PoolActor.load
    failures = [DomainError("STORAGE_FAILURE", "The read failed.")]

    async def load(*args: Any) -> p.PoolActor:
        if failures:
            raise failures.pop()
        return await real(*args)

    monkeypatch.setattr(p.PoolActor, "load", load)
    code = await refused(m.game.ask(g.CreatePool(m.admin, {"action": "goal", "targets": "a,b"})))
    assert code == "UNAVAILABLE" and not failures
    await m.game.ask(g.Summary())  # served once the rebuilt game has started
    [row] = await services.storage.read(lambda db: db.rows("SELECT id FROM pools"))
    [announced] = m.watcher.take(352)
    assert announced["pool_id"] == row["id"]
    _, pool = await services.games.pool(row["id"])
    alice = await m.player("alice")
    assert (await pool.ask(p.PlaceBet(alice, "a", "1"))).pool_id == row["id"]
    assert services.supervisor.restarts(f"game:{m.game_id}") == 1


async def test_a_block_whose_answer_is_lost_is_in_force_after_the_rebuild(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    services = actors.services
    m = await open_match(actors)
    pool_id, pool = await m.pool()
    alice = await m.player("alice")
    with answer_lost(services, "pools") as lost:
        await refused(pool.ask(p.Block()))
    assert lost
    assert await refused(pool.ask(p.PlaceBet(alice, "a", "1"))) == "POOL_BLOCKED"
    assert services.supervisor.restarts(f"pool:{pool_id}") == 1
