"""Synchronous SQLite access. Only the storage actor calls this, one call at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from domain.errors import DomainError
from storage import schema
from storage.changes import (
    AdjustBalance,
    Change,
    Check,
    Delete,
    Insert,
    Update,
    UpdateMany,
    Upsert,
)

#: ``SUM(amount)`` in two halves that cannot overflow SQLite's 64-bit integers (a plain
#: SUM raises "integer overflow" once its running total passes 2^63 - 1, and the server
#: could not start): the high parts are each at most 2^63 / 10^9 and the low parts below
#: 10^9, so either sum needs billions of rows to overflow. Python adds them exactly.
EXACT_SUM = "SUM(amount / 1000000000) AS high, SUM(amount % 1000000000) AS low"


def exact_total(high: int | None, low: int | None) -> int:
    """The exact sum the two parts of ``EXACT_SUM`` stand for (0 over no rows)."""
    return (high or 0) * 1_000_000_000 + (low or 0)


class Database:
    """One SQLite connection in WAL mode.

    ``synchronous`` defaults to FULL: a confirmed bet must survive a power cut, not only a
    ``kill -9``. Group commit (many requests, one transaction) pays that fsync once per
    batch rather than once per request.
    """

    def __init__(self, path: str | Path = ":memory:", *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.db = sqlite_utils.Database(self.conn)
        self.transactions = 0  # commits and requests so far: the group-commit ratio
        self.requests = 0
        schema.create(self.db)

    def close(self) -> None:
        self.conn.close()

    # -- writes -----------------------------------------------------------------------

    def apply_batch(self, batch: Sequence[Sequence[Change]]) -> list[Exception | None]:
        """Commit many requests in one transaction; each is all-or-nothing on its own."""
        results: list[Exception | None] = []
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for changes in batch:
                cur.execute("SAVEPOINT request")
                try:
                    for change in changes:
                        _execute(cur, change)
                except Exception as exc:  # a bad request must not sink the batch
                    cur.execute("ROLLBACK TO request")
                    results.append(exc)
                else:
                    results.append(None)
                cur.execute("RELEASE request")
            cur.execute("COMMIT")
            self.transactions += 1
            self.requests += len(batch)
        except BaseException:
            if self.conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        return results

    # -- reads ------------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


def _execute(cur: sqlite3.Cursor, change: Change) -> None:
    match change:
        case Insert(table, row):
            columns = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            cur.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', tuple(row.values()))
        case Upsert(table, row):
            # ON CONFLICT DO UPDATE keeps the row (and its rowid, the creation order the
            # listings page by); INSERT OR REPLACE deleted it and inserted a new one last.
            columns = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in row)
            cur.execute(
                f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'
                f" ON CONFLICT DO UPDATE SET {sets}",
                tuple(row.values()),
            )
        case Update(table, key, values):
            sets = ", ".join(f'"{c}" = ?' for c in values)
            where = " AND ".join(f'"{c}" = ?' for c in key)
            cur.execute(
                f'UPDATE "{table}" SET {sets} WHERE {where}',
                (*values.values(), *key.values()),
            )
        case UpdateMany(table, key, columns, rows):
            sets = ", ".join(f'"{c}" = ?' for c in columns)
            cur.executemany(f'UPDATE "{table}" SET {sets} WHERE "{key}" = ?', rows)
        case Delete(table, key):
            where = " AND ".join(f'"{c}" = ?' for c in key)
            cur.execute(f'DELETE FROM "{table}" WHERE {where}', tuple(key.values()))
        case Check(sql, params, expected, code, message):
            row = cur.execute(sql, params).fetchone()
            if (None if row is None else row[0]) != expected:
                raise DomainError(code, message)
        case AdjustBalance():
            if cur.execute(*adjust_balance(change)).rowcount != 1:
                raise DomainError("INSUFFICIENT_FUNDS", OVERDRAFT)
        case _:
            raise TypeError(f"not a change: {change!r}")


#: What a request is told when the database refused to overdraw a wallet.
OVERDRAFT = "The balance does not cover this: the database refused the overdraft."


def adjust_balance(change: AdjustBalance) -> tuple[str, tuple[Any, ...]]:
    """One statement, the same on SQLite and PostgreSQL, that adds ``change.delta`` to a
    stored balance only when the result is not negative: it writes one row (a new one,
    or the old one updated) or none. A new row is proposed only for a delta that is not
    negative or when a row exists (the conflict then decides); the ``WHERE`` of the
    update is read on the row as locked, so two writers cannot both spend one balance."""
    return (
        "INSERT INTO balances (account, currency, balance) SELECT ?, ?, ? "
        "WHERE ? >= 0 OR EXISTS (SELECT 1 FROM balances WHERE account = ? AND currency = ?) "
        "ON CONFLICT (account, currency) DO UPDATE SET balance = balances.balance + "
        "excluded.balance WHERE balances.balance + excluded.balance >= 0",
        (
            change.account,
            change.currency,
            change.delta,
            change.delta,
            change.account,
            change.currency,
        ),
    )
