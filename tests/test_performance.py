"""Regression tests of the performance work of issue 11 (the figures are the benchmark's,
tote/bench.py; these check the mechanisms, never a duration)."""

from __future__ import annotations

import gc

import trio
import trio.testing

from actors.pool import settlement_changes
from domain.pool import Bet, Pool
from storage.changes import UpdateMany
from tests.conftest import Harness
from tote.server import YOUNG_COLLECTION_THRESHOLD
from transport.websocket import Outbox


async def test_a_started_server_has_frozen_its_start_up_objects(harness: Harness) -> None:
    """Full collections skip what start-up built; young ones run less often."""
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD


async def test_settlement_changes_run_in_a_worker_thread(harness: Harness) -> None:
    """The CPU-heavy part of a settlement runs off the event loop when storage does."""
    threads: list[bool] = []

    def where() -> None:
        threads.append(trio.lowlevel.in_trio_run())

    await harness.services.storage.off_loop(where)
    assert threads == [False]


def test_a_settlement_writes_every_bet_in_one_bulk_change() -> None:
    pool = Pool(
        id="p",
        game_id="g",
        game_name="A - B",
        description="",
        action="goal",
        pool_type=1,
        targets={"a": "a", "b": "b", "none": "none"},
        target_level=1,
        currency="EUR",
        exponent=2,
    )
    pool.bets = [Bet(f"b{i}", i % 3 + 1, "ab"[i % 2], 100, 0) for i in range(1000)]
    outcome, changes = settlement_changes(pool, "a", "resolved", 1, None)
    (bulk,) = [change for change in changes if isinstance(change, UpdateMany)]
    assert len(bulk.rows) == 1000
    assert {row[2]: (row[0], row[1]) for row in bulk.rows} == outcome.bet_status
    assert pool.status != "resolved"  # the live pool changes only after the commit


async def test_garbage_collection_waits_while_a_settlement_is_computed(
    harness: Harness,
) -> None:
    """A collection would scan the objects a settlement builds while holding the GIL."""
    during: list[bool] = []
    assert gc.isenabled()
    await harness.services.storage.off_loop(lambda: during.append(gc.isenabled()))
    assert during == [False]
    assert gc.isenabled()


async def test_the_writer_takes_what_runnable_tasks_push_right_after_the_first() -> None:
    """A bet's 815 and its 356 are pushed two scheduler passes apart: one write."""
    outbox = Outbox(max_bytes=1000)
    taken: list[list[bytes]] = []

    async def writer() -> None:
        taken.append(await outbox.take_all())

    async def bet() -> None:
        outbox.put(b"815")
        await trio.lowlevel.checkpoint()  # the wallet replies to the pool
        await trio.lowlevel.checkpoint()  # the pool replies to the op handler
        outbox.put(b"356")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(bet)
    assert taken == [[b"815", b"356"]]
