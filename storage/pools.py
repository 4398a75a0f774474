"""Pools in SQLite as their actors read them: the pool with its bets, the bets it holds
for its delay, which slips reached it, and the conditions (``Check``) a commit that
touches a pool reads inside its transaction. Reads run inside the storage actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from domain.errors import DomainError
from domain.params import stored_time
from domain.pool import Bet, PendingResolution, Pool
from storage.changes import Check, Lock, LockMode
from storage.database import Database
from storage.dialect import json_number


@dataclass(frozen=True, slots=True)
class StoredPool:
    """What a pool actor starts from: the pool and its bets, the event resolution
    committed for it, and its game's ``close_at`` (a fail-safe time may count from it)."""

    pool: Pool
    pending: PendingResolution | None
    game_close_at: int | None


@dataclass(frozen=True, slots=True)
class HeldBet:
    """A bet the pool holds for its delay, and when it is decided (epoch ms)."""

    bet: Bet
    due_at: int


def load_pool(db: Database, pool_id: str) -> StoredPool:
    """The pool as stored; NOT_FOUND when there is none."""
    row = db.rows(
        "SELECT p.doc, p.broadcast_bets,"
        f" {json_number(db.engine, 'g.doc', 'close_at')} AS close_at"
        " FROM pools p LEFT JOIN games g ON g.id = p.game_id WHERE p.id = ?",
        (pool_id,),
    )
    if not row:
        raise DomainError("NOT_FOUND", f"There is no pool {pool_id!r}.")
    bets = stored_bets(db, pool_id)
    pending = db.rows(
        "SELECT winning_target, happened_at FROM pending_resolutions WHERE pool_id = ?",
        (pool_id,),
    )
    pool = Pool.from_doc(msgspec.json.decode(row[0]["doc"]), bets)
    # how far the 360s got: the document has it as of its last write, the column as of
    # the last bet commit (``actors.pool.changes.broadcast_change``); both only grow
    pool.broadcast_bets = max(pool.broadcast_bets, row[0]["broadcast_bets"] or 0)
    return StoredPool(
        pool,
        PendingResolution(pending[0]["winning_target"], pending[0]["happened_at"])
        if pending
        else None,
        stored_time(row[0]["close_at"], "close_at"),
    )


def stored_bets(db: Database, pool_id: str, slip_key: str | None = None) -> list[Bet]:
    """The pool's stored bets (only one slip's, if given), oldest first."""
    sql = "SELECT id, user_id, target, amount, placed_at FROM bets WHERE pool_id = ?"
    params: list[Any] = [pool_id]
    if slip_key is not None:
        sql, params = f"{sql} AND slip_key = ?", [pool_id, slip_key]
    return [
        Bet(r["id"], r["user_id"], r["target"], r["amount"], r["placed_at"])
        for r in db.rows(f"{sql} ORDER BY rowid", params)
    ]


def held_bets(db: Database, pool_id: str) -> list[HeldBet]:
    """The pool's bets held for its delay, oldest first (decided by its timer)."""
    return [
        HeldBet(
            Bet(r["id"], r["user_id"], r["target"], r["amount"], r["requested_at"]), r["due_at"]
        )
        for r in db.rows(
            "SELECT id, user_id, target, amount, requested_at, due_at FROM held_bets"
            " WHERE pool_id = ? ORDER BY rowid",
            (pool_id,),
        )
    ]


def placed_slips(db: Database, pool_id: str, keys: list[str]) -> set[str]:
    """Which of these betslips have bets stored in the pool (so were placed)."""
    marks = ", ".join("?" for _ in keys)
    rows = db.rows(
        f"SELECT DISTINCT slip_key FROM bets WHERE pool_id = ? AND slip_key IN ({marks})",
        (pool_id, *keys),
    )
    return {row["slip_key"] for row in rows}


# The checks of a commit that touches a pool it does not own (a betslip) or that must see
# every bet of it (the settlement) lock the pool's row first, so that neither reads before
# the other wrote: a slip takes it SHARE (slips on one pool go on side by side), the
# settlement UPDATE (alone). Which one the caller says with ``lock``.


def _pool_row(pool_id: str, lock: LockMode) -> Lock:
    return Lock("pools", {"id": pool_id}, lock)


def status_is(pool_id: str, status: str, code: str, message: str, *, lock: LockMode) -> Check:
    """Fails the commit with ``code`` unless the pool's stored status is ``status``."""
    return Check(
        "SELECT status FROM pools WHERE id = ?",
        (pool_id,),
        status,
        code,
        message,
        _pool_row(pool_id, lock),
    )


def no_pending_resolution(pool_id: str, code: str, message: str, *, lock: LockMode) -> Check:
    """Fails the commit with ``code`` when an event resolution is pending for the pool.
    (An event's resolution does not lock the pool: a slip that commits after it is caught
    by the settlement's ``bet_count_is``, which reloads the pool.)"""
    return Check(
        "SELECT COUNT(*) FROM pending_resolutions WHERE pool_id = ?",
        (pool_id,),
        0,
        code,
        message,
        _pool_row(pool_id, lock),
    )


def bet_count_is(pool_id: str, count: int, code: str, message: str, *, lock: LockMode) -> Check:
    """Fails the commit with ``code`` unless the pool has ``count`` bets stored."""
    return Check(
        "SELECT COUNT(*) FROM bets WHERE pool_id = ?",
        (pool_id,),
        count,
        code,
        message,
        _pool_row(pool_id, lock),
    )
