"""What the cancellation sweep found, kept as regression tests (docs/reliability.md,
"Found by the sweep")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from actors import pool as p
from actors.wallet import PlaceSlip
from domain.errors import DomainError
from tests.conftest import ActorHarness, open_match
from tests.reliability.invariants import all_problems, pool_memory_problems
from tests.reliability.test_cancellation_sweep import Sweep, slip_setup
from tests.test_betslip_pools import commit, reserve

#: Scheduler steps a pool needs to flush one distribution, many times over; a pool that
#: spins on a deadline it never clears takes them all without the clock moving.
STEP_BOUND = 20_000


class StepGuard(trio.abc.Instrument):
    """Cancels ``scope`` once the run has taken ``STEP_BOUND`` task steps."""

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1
        if self.steps == STEP_BOUND:
            self.scope.cancel()


async def test_a_distribution_due_at_a_rounded_instant_is_flushed_not_spun_on(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """A pool last flushed at t, with bets unsent, is due at ``t + interval``; at that
    instant ``now - t`` can round a hair below the interval (0.13 + 0.25 - 0.13 <
    0.25), and the pool spun at that instant for ever (a hang under the mock clock, a
    busy loop until the real clock moved)."""
    interval = actors.services.settings.distribution_interval
    m = await open_match(actors)
    _, box = await m.pool()
    alice, bob = await m.player("alice"), await m.player("bob")
    while (trio.current_time() + interval) - trio.current_time() >= interval:
        autojump_clock.jump(0.01)  # to an instant whose sum rounds the wrong way
    await box.ask(p.PlaceBet(alice, "a", "1"))  # flushed at once: the first since start
    await box.ask(p.PlaceBet(bob, "b", "1"))  # due at that instant + interval
    with trio.CancelScope() as guarded:
        guard = StepGuard(guarded)
        trio.lowlevel.add_instrument(guard)
        try:
            await trio.sleep(2 * interval)
        finally:
            trio.lowlevel.remove_instrument(guard)
    assert not guarded.cancelled_caught, f"the pool spun: {guard.steps} steps, no time passed"


async def test_a_slip_whose_caller_left_during_its_commit_stays_in_its_pools(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    """The caller gives up (its scope cancelled, as a client that disconnects) while
    the wallet commits the slip: the commit lands, and the desk used to tell each pool
    "not placed", so the pools forgot bets that storage holds (never settled, their
    stakes stuck in escrow). The desk now learns the slip's fate first."""
    actors.services.settings.request_timeout = 5
    match = await open_match(actors)
    sweep = Sweep(match, await match.pool())
    place, retry, _ = await slip_setup(sweep, 0)
    await _leave_during_the_slip_commit(actors, monkeypatch, place)
    assert await pool_memory_problems(actors.services, sweep.open_pools()) == []
    await retry()  # and the key answers as placed, once
    assert await all_problems(actors.services, sweep.users) == []


async def _leave_during_the_slip_commit(
    actors: ActorHarness,
    monkeypatch: Any,
    place: Callable[[], Awaitable[Any]],
    then: Callable[[], None] = lambda: None,
) -> None:
    """``place`` with its caller cancelled (a client that disconnects) once the wallet
    has taken the slip and is writing it; ``then`` runs at that moment."""
    storage = actors.services.storage
    committing = trio.Event()
    commit = storage.commit

    async def watched_commit(changes: list[Any], *args: Any, **kwargs: Any) -> Any:
        if any(getattr(change, "table", None) == "betslips" for change in changes):
            then()
            committing.set()
        return await commit(changes, *args, **kwargs)

    monkeypatch.setattr(storage, "commit", watched_commit)
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as caller:
            nursery.start_soon(_cancel_when, committing, caller)
            await place()
    assert caller.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    monkeypatch.setattr(storage, "commit", commit)


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def test_a_slip_placed_after_its_pool_restarted_joins_the_new_incarnation(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    """Remote wallet mode puts the operator's /bets call between a slip's reservation
    and its commit, long enough for a pool to be killed and reloaded: the new pool held
    nothing for the slip and ignored its "placed" release, so it never knew the bets
    storage holds. It now reads a placed slip's bets it lacks back from storage."""
    pool_id, box, alice = await _committed_after_a_pool_restart(actors)
    await box.ask(p.Release("slip-1", True))
    await box.ask(p.Release("slip-1", True))  # told twice: still one bet
    await _settles_with_the_slip(actors, pool_id, box, alice)


async def test_a_placed_release_whose_storage_read_fails_is_decided_later(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    """A pool restarted between a slip's reservation and its commit reads the placed
    slip's bets back from storage on its release; when that read failed, the release
    was lost and the pool never knew bets that storage holds (never settled). It now
    keeps the slip held and decides it from storage on its timer, as for a silent desk."""
    pool_id, box, alice = await _committed_after_a_pool_restart(actors)
    storage = actors.services.storage
    read = storage.read

    async def failing_read(query: Any) -> Any:
        monkeypatch.setattr(storage, "read", read)  # once
        raise DomainError("STORAGE_FAILURE", "The read failed.")

    monkeypatch.setattr(storage, "read", failing_read)
    with pytest.raises(DomainError):
        await box.ask(p.Release("slip-1", True))
    await trio.sleep(1)  # the pool's timer decides what it still holds
    await _settles_with_the_slip(actors, pool_id, box, alice)


async def test_a_slip_of_unknown_fate_reaches_a_pool_that_restarted_before_its_commit(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    """The caller leaves while the wallet commits a slip, the desk's read of the slip's
    fate fails, and a pool of the slip restarted (and loaded) before the commit: the
    desk told no pool anything, trusting each to decide the slip from storage at its
    time, but the new pool held nothing for it and never learned of its bets. The desk
    now tells every pool "unknown", and each decides the slip from storage."""
    actors.services.settings.request_timeout = 5
    match = await open_match(actors)
    sweep = Sweep(match, await match.pool())
    place, retry, _ = await slip_setup(sweep, 0)
    storage, supervisor = actors.services.storage, actors.services.supervisor
    slip_pools = [pool_id for pool_id, _ in await sweep.slip_pools()]
    read, ask_wallet = storage.read, actors.services.ask_wallet

    async def failing_read(query: Any) -> Any:
        raise DomainError("STORAGE_FAILURE", "The read failed.")

    async def restarting_first(body: Any) -> Any:
        if isinstance(body, PlaceSlip):  # reserved, not yet committed
            supervisor.kill(f"pool:{slip_pools[0]}")
            _, box = await actors.services.games.pool(slip_pools[0])
            await box.ask(p.Info())  # the new incarnation loaded before the commit
        return await ask_wallet(body)

    def fail_the_fate_read() -> None:
        monkeypatch.setattr(storage, "read", failing_read)

    monkeypatch.setattr(actors.services, "ask_wallet", restarting_first)
    await _leave_during_the_slip_commit(actors, monkeypatch, place, fail_the_fate_read)
    monkeypatch.setattr(storage, "read", read)
    await trio.sleep(60)  # every pool's timer has decided what it held
    assert await pool_memory_problems(actors.services, sweep.open_pools()) == []
    await retry()
    assert await all_problems(actors.services, sweep.users) == []


async def test_two_slips_racing_on_pools_that_restart_between_reserve_and_commit(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock, monkeypatch: Any
) -> None:
    """Two players' slips over the same pools at once, and each slip pool killed as the
    first slip reaches the wallet: both slips land once, every pool's memory equals
    storage, and the books balance."""
    match = await open_match(actors)
    sweep = Sweep(match, await match.pool())
    (place_a, retry_a, _), (place_b, retry_b, _) = [await slip_setup(sweep, n) for n in (0, 1)]
    supervisor, ask_wallet = actors.services.supervisor, actors.services.ask_wallet
    slip_pools = [pool_id for pool_id, _ in await sweep.slip_pools()]
    killed = False

    async def restarting_first(body: Any) -> Any:
        nonlocal killed
        if isinstance(body, PlaceSlip) and not killed:
            killed = True
            for pool_id in slip_pools:
                supervisor.kill(f"pool:{pool_id}")
        return await ask_wallet(body)

    monkeypatch.setattr(actors.services, "ask_wallet", restarting_first)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(place_a)
        nursery.start_soon(place_b)
    await trio.sleep(60)  # every pool's timer has decided what it held
    assert await pool_memory_problems(actors.services, sweep.open_pools()) == []
    await retry_a()
    await retry_b()
    assert await all_problems(actors.services, sweep.users) == []


async def _committed_after_a_pool_restart(actors: ActorHarness) -> tuple[str, Any, int]:
    """alice's slip-1 (10 on "a") reserved, its pool killed and reloaded, then committed:
    the new incarnation loaded before the commit and holds nothing for the slip."""
    m = await open_match(actors)
    pool_id, box = await m.pool()
    alice = await m.player("alice")
    reserved = await reserve(m, box, alice, "slip-1", "a", "10")
    actors.services.supervisor.kill(f"pool:{pool_id}")
    await box.ask(p.Info())  # the new incarnation is up, loaded before the commit
    await commit(m, reserved, alice, "slip-1")
    return pool_id, box, alice


async def _settles_with_the_slip(actors: ActorHarness, pool_id: str, box: Any, alice: int) -> None:
    """The pool's memory equals storage, and settling pays alice's slip once."""
    assert await pool_memory_problems(actors.services, [pool_id]) == []
    settled = await box.ask(p.ResolveByHand("a"))
    assert settled.fields["winners"] == {str(alice): 10}
    assert await all_problems(actors.services, [alice]) == []
