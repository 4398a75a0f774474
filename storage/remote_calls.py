"""Remote wallet mode's durable outbox in SQLite (seed 004): every debit's intent and
every credit to send, under its idempotency key, with its retry state; and what the
callback worker reads to build a credit. Reads run inside the storage actor."""

from __future__ import annotations

from dataclasses import dataclass, fields

from domain.remote import CreditBet
from storage.changes import Check, Lock
from storage.database import Database


@dataclass(frozen=True, slots=True)
class RemoteCall:
    """One row of the outbox."""

    key: str
    kind: str
    state: str
    user_id: int | None
    pool_id: str | None
    payload: str  # the call's JSON body (a debit's bets)
    created_at: int
    attempts: int
    next_at: int
    last_error: str


#: The outbox's columns, as ``RemoteCall`` names them (``SELECT *`` would bring
#: PostgreSQL's ``rowid`` too).
_CALL_COLUMNS = ", ".join(f.name for f in fields(RemoteCall))


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the outbox holds (for the audit and the metrics)."""

    pending: int
    oldest_ms: int | None
    max_attempts: int


def due_calls(
    db: Database, now: int, retry: tuple[str, ...], stale_state: str, stale: int, limit: int
) -> list[RemoteCall]:
    """Up to ``limit`` calls due by ``now``, soonest first: those in a ``retry`` state, and
    those still in ``stale_state`` since before ``stale`` (their placer is gone)."""
    marks = ", ".join("?" for _ in retry)
    rows = db.rows(
        f"SELECT {_CALL_COLUMNS} FROM remote_calls WHERE next_at <= ? AND (state IN ({marks})"
        " OR (state = ? AND created_at < ?)) ORDER BY next_at LIMIT ?",
        (now, *retry, stale_state, stale, limit),
    )
    return [RemoteCall(**row) for row in rows]


def backlog(db: Database, pending: tuple[str, ...]) -> Backlog:
    """How many calls are in a ``pending`` state, since when, and the most attempts."""
    marks = ", ".join("?" for _ in pending)
    row = db.rows(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest, COALESCE(MAX(attempts), 0) AS most"
        f" FROM remote_calls WHERE state IN ({marks})",
        pending,
    )[0]
    return Backlog(row["n"], row["oldest"], row["most"])


def state_is(key: str, state: str, code: str, message: str) -> Check:
    """Fails the commit with ``code`` unless the call is still in ``state``. Locks the call's
    row (UPDATE): each commit that checks a state then moves the call on, and two of them
    (the placer and the worker) must not both move it from the same state."""
    return Check(
        "SELECT state FROM remote_calls WHERE key = ?",
        (key,),
        state,
        code,
        message,
        Lock("remote_calls", {"key": key}, "UPDATE"),
    )


def pool_bets_for_credit(db: Database, pool_id: str) -> list[CreditBet]:
    """Every bet of a settled pool with its player's name, as ``domain.remote`` builds a
    /winners body from them, in the order they were placed."""
    rows = db.rows(
        "SELECT b.id, b.user_id, u.name, b.amount, b.payout, b.status, b.price, b.target,"
        " b.currency, b.external_bet_id FROM bets b JOIN users u ON u.id = b.user_id"
        " WHERE b.pool_id = ? ORDER BY b.rowid",
        (pool_id,),
    )
    return [CreditBet(**row) for row in rows]


def user_name(db: Database, user_id: int | None) -> str | None:
    rows = db.rows("SELECT name FROM users WHERE id = ?", (user_id,))
    return rows[0]["name"] if rows else None
