"""Scenario 3, the cancellation sweep: a bet placement and a settlement, each with one of
the actors on its path (pool, wallet, storage), or the caller itself, cancelled after k
scheduler steps, for every k from 0 to the number of steps the operation takes (counted
with a trio Instrument on an undisturbed run). Whatever k, nothing is half written: the
books audit, each pool's escrow is its active stakes, a finished pool was paid once,
the wallet's memory is the ledger's sum, and a settlement retried after a lost answer
pays exactly once.

Slips and outbound wallet callbacks join as further ``OPERATIONS`` entries: a setup, the
operation, and the actors on their path."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from actors import pool as p
from actors.runtime import Mailbox
from domain.errors import DomainError
from tests.conftest import ActorHarness, Match, open_match
from tests.reliability.invariants import all_problems

STAKE = "2.50"
#: The operation's own caller gives up (its scope is cancelled), as a client that leaves.
CALLER = "caller"
CHAOS_ERRORS = {"ACTOR_RESTARTED", "REQUEST_TIMED_OUT", "UNAVAILABLE"}


class StepCounter(trio.abc.Instrument):
    """Counts task steps: the checkpoints at which a cancellation can land."""

    def __init__(self) -> None:
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1


Operation = Callable[[], Awaitable[Any]]


@dataclass
class Sweep:
    """The match the sweep runs in, a pool its bets share, and every player it made."""

    match: Match
    pool: tuple[str, Mailbox]
    users: list[int] = field(default_factory=list)


async def bet_setup(sweep: Sweep, n: int) -> tuple[Operation, Operation, list[str]]:
    """A fresh player's bet into the shared pool: landed once or not at all."""
    pool_id, box = sweep.pool
    player = await sweep.match.player(f"bettor{n}")
    sweep.users.append(player)

    async def place() -> Any:
        return await box.ask(p.PlaceBet(player, "a", STAKE))

    async def settle_up() -> None:  # a bet needs no finishing: one or none is fine
        return None

    return place, settle_up, [f"pool:{pool_id}", "wallet", "storage"]


async def settlement_setup(sweep: Sweep, n: int) -> tuple[Operation, Operation, list[str]]:
    """A fresh pool with two bets, resolved; then resolved again, which settles it if
    the first did not and is refused (POOL_CLOSED) if it did: paid exactly once."""
    pool_id, box = await sweep.match.pool()
    for side in ("a", "b"):
        player = await sweep.match.player(f"s{n}{side}")
        sweep.users.append(player)
        await box.ask(p.PlaceBet(player, side, STAKE))

    async def resolve() -> Any:
        return await box.ask(p.ResolveByHand("a"))

    async def finish() -> None:
        try:
            await box.ask(p.ResolveByHand("a"))
        except DomainError as error:
            assert error.code == "POOL_CLOSED", error

    return resolve, finish, [f"pool:{pool_id}", "wallet", "storage"]


OPERATIONS = {"bet": bet_setup, "settlement": settlement_setup}


async def count_steps(operation: Operation) -> int:
    counter = StepCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        await operation()
    finally:
        trio.lowlevel.remove_instrument(counter)
    return counter.steps


async def cancel_after(steps: int, kill: Callable[[], None]) -> None:
    for _ in range(steps):
        await trio.lowlevel.checkpoint()
    kill()


@pytest.mark.parametrize("kind", sorted(OPERATIONS))
async def test_every_checkpoint_of_an_operation_can_be_cancelled(
    actors: ActorHarness, kind: str, autojump_clock: trio.testing.MockClock
) -> None:
    actors.services.settings.request_timeout = 5
    match = await open_match(actors)
    sweep = Sweep(match, await match.pool())
    setup = OPERATIONS[kind]
    counter = itertools.count()
    first, _, _ = await setup(sweep, next(counter))
    steps = await count_steps(first)
    answers = {"confirmed": 0, "refused": 0, "abandoned": 0}
    sweeps = 0
    for k in range(steps + 1):
        for victim_index in range(4):
            operation, finish, victims = await setup(sweep, next(counter))
            victim = (*victims, CALLER)[victim_index]
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as caller:
                    kill = (
                        caller.cancel
                        if victim == CALLER
                        else partial(actors.services.supervisor.kill, victim)
                    )
                    nursery.start_soon(cancel_after, k, kill)
                    try:
                        await operation()
                        answers["confirmed"] += 1
                    except DomainError as error:
                        assert error.code in CHAOS_ERRORS, error
                        answers["refused"] += 1
                answers["abandoned"] += caller.cancelled_caught
            await trio.testing.wait_all_tasks_blocked()  # whatever was under way lands
            await finish()
            problems = await all_problems(actors.services, sweep.users)
            assert problems == [], (kind, k, victim)
            sweeps += 1
    assert answers["refused"] > 0 and answers["abandoned"] > 0  # it landed inside
    print(f"cancellation sweep {kind}: {steps} steps, {sweeps} cancellations, {answers}")
