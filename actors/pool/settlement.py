"""A pool's settlement as data: the pay-out and every row it changes, committed by one
wallet ``Settle`` (ledger lines, bet results, the pool's new state, the pending event
resolution gone, and the successor a ``recreate_on_end`` pool opens). Pure and
CPU-heavy (most of a second for 100,000 bets): the actor runs it off the event loop."""

from __future__ import annotations

import dataclasses

from actors.pool.changes import pool_row
from actors.pool.protocol import PoolExpired, PoolResolved, PoolSettled
from domain.pool import Outcome, Pool, PoolStatus
from storage import pools as pools_store
from storage.changes import Change, Delete, Insert, UpdateMany, Upsert


def settlement_changes(
    pool: Pool,
    winner: str | None,
    status: PoolStatus,
    now: int,
    happened_at: int | None,
    successor: Pool | None = None,
) -> tuple[Outcome, list[Change]]:
    """The pay-out and the rows it changes. A ``successor`` (the recreated pool) is
    inserted with it, holding the pot this one carries over. The commit fails with
    POOL_CHANGED when storage holds more bets than ``pool`` (a betslip landed since)."""
    outcome = pool.settle(
        winner,
        now=now,
        happened_at=happened_at,
        successor=successor.id if successor is not None else None,
    )
    settled = dataclasses.replace(pool)
    settled.mark_settled(outcome, status)
    bet_rows = [(s, paid, bet_id) for bet_id, (s, paid) in outcome.bet_status.items()]
    return outcome, [
        # a betslip that landed since the pool last looked makes it reload, then settle
        pools_store.bet_count_is(
            pool.id,
            len(pool.bets),
            "POOL_CHANGED",
            "A betslip reached the pool while it was settling.",
            lock="UPDATE",
        ),
        Upsert("pools", pool_row(settled)),
        Delete("pending_resolutions", {"pool_id": pool.id}),
        UpdateMany("bets", "id", ("status", "payout"), bet_rows),
        *(
            [
                Insert(
                    "pools",
                    pool_row(
                        dataclasses.replace(successor, carried_in=outcome.house["carried_out"])
                    ),
                )
            ]
            if successor is not None
            else []
        ),
    ]


def result_event(pool: Pool) -> PoolSettled:
    """What a settled pool announces: 363 for an expired one, 362 otherwise."""
    fields = pool.result_fields()
    return PoolExpired(fields) if pool.status is PoolStatus.EXPIRED else PoolResolved(fields)
