"""The storage changes a pool commits, built from the pool as data: its row, its 360
watermark, a bet's stake and row (placed, held for the delay, or given back), and what a
betslip's commit must still find true of it. No actor state: each is a function of the
pool and the bet."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from actors.wallet import StakeItem
from domain.errors import ErrorCode
from domain.pool import Bet, BetStatus, Pool, PoolStatus
from storage import pools as pools_store
from storage.changes import Change, Check, Delete, Insert, Update


def pool_row(pool: Pool) -> dict[str, Any]:
    """The pool's ``pools`` row (its document and the columns indexed beside it)."""
    return {
        "id": pool.id,
        "game_id": pool.game_id,
        "status": pool.status,
        "fail_safe_at": pool.fail_safe_at,
        "doc": msgspec.json.encode(pool.to_doc()).decode(),
    }


def broadcast_change(pool: Pool) -> Change:
    """Record how many of the pool's bets have gone out in a 360 (its watermark)."""
    return Update("pools", {"id": pool.id}, {"broadcast_bets": pool.broadcast_bets})


def slip_checks(pool_id: str) -> list[Check]:
    """What must still hold when a betslip commits bets in this pool, read inside the
    slip's transaction (the pool actor may be settling meanwhile): the pool's row is
    locked SHARE, so a settlement (which locks it UPDATE) waits for the slip, or the slip
    for the settlement, and the later one reads what the earlier wrote."""
    return [
        pools_store.status_is(
            pool_id,
            PoolStatus.OPEN.value,
            ErrorCode.INVALID_BET_DETAILS,
            "The pool was resolved while the slip was being placed.",
            lock="SHARE",
        ),
        pools_store.no_pending_resolution(
            pool_id,
            ErrorCode.INVALID_BET_DETAILS,
            "An event resolved the pool while the slip was being placed.",
            lock="SHARE",
        ),
    ]


def stake_item(
    pool: Pool,
    bet: Bet,
    debit_changes: tuple[Change, ...] = (),
    columns: dict[str, Any] | None = None,
) -> StakeItem:
    """What the wallet commits for a bet: its stake, its row, and in remote wallet mode
    the record that its debit was used (``debit_changes``)."""
    row = {
        "id": bet.id,
        "pool_id": pool.id,
        "user_id": bet.user_id,
        "target": bet.target,
        "amount": bet.amount,
        "currency": pool.currency,
        "placed_at": bet.placed_at,
        "status": BetStatus.ACTIVE,
        "payout": 0,
        **(columns or {}),
    }
    changes = (Insert("bets", row), *debit_changes)
    return StakeItem(bet.user_id, pool.currency, bet.amount, pool.id, changes)


def held_item(pool: Pool, bet: Bet, due_at: int) -> StakeItem:
    """A bet held for the pool's delay: its stake becomes exposure, its hold is stored."""
    row = {
        **{name: getattr(bet, name) for name in ("id", "user_id", "target", "amount")},
        "pool_id": pool.id,
        "currency": pool.currency,
        "requested_at": bet.placed_at,
        "due_at": due_at,
    }
    return StakeItem(bet.user_id, pool.currency, bet.amount, pool.id, (Insert("held_bets", row),))


def placed_item(pool: Pool, bet: Bet) -> StakeItem:
    """A held bet's stake, placed: its stored hold goes, its bet row comes."""
    item = stake_item(pool, bet)
    changes = (Delete("held_bets", {"id": bet.id}), *item.changes)
    return dataclasses.replace(item, changes=changes, held=True)


def unheld_item(pool: Pool, bet: Bet) -> StakeItem:
    """A held bet refused: its stake is given back (nothing was taken), its hold goes."""
    return StakeItem(
        bet.user_id,
        pool.currency,
        bet.amount,
        pool.id,
        (Delete("held_bets", {"id": bet.id}),),
        held=True,
    )
