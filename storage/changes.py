"""Changes as plain data: what an actor asks the storage actor to commit.

Actors describe a change; only the storage actor turns it into SQL. One request is a
list of changes committed all together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Insert:
    """A new row; a clash with an existing key fails the whole request."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert, or replace the row with the same primary key."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    table: str
    key: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateMany:
    """The same columns of many rows, each found by ``key``: ``rows`` hold the new values
    in ``columns`` order, then the key. One statement run for every row (a pool's bets at
    settlement: 100,000 plain tuples, not 100,000 objects and statements)."""

    table: str
    key: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    key: dict[str, Any]


LockMode = Literal["SHARE", "UPDATE"]


@dataclass(frozen=True, slots=True)
class Lock:
    """The row a ``Check`` locks before it reads, until the commit: ``SHARE`` beside
    other sharers (slips on one pool), ``UPDATE`` alone (the settlement of that pool).
    PostgreSQL takes it (``FOR SHARE`` / ``FOR UPDATE``); SQLite has one writer, whose
    ``BEGIN IMMEDIATE`` already excludes every other, and ignores it."""

    table: str
    key: dict[str, Any]
    mode: LockMode


@dataclass(frozen=True, slots=True)
class Check:
    """A condition the request needs, read inside its transaction: when ``sql`` does not
    give ``expected``, the request fails with ``code`` and changes nothing. How an actor
    that is not the only writer of a row (a betslip on a pool, a settlement) stays right.
    ``lock`` names the row that keeps the condition true until the commit: without it,
    two transactions of READ COMMITTED could each read before the other wrote (write
    skew: a pool settled with 2 bets while a slip stored a third). None: the condition
    is on a row the request itself writes, or one no concurrent writer changes."""

    sql: str
    params: tuple[Any, ...]
    expected: Any
    code: str
    message: str
    lock: Lock | None = None


@dataclass(frozen=True, slots=True)
class AdjustBalance:
    """Add ``delta`` to an account's stored balance in ``currency`` (the ``balances``
    table; a missing row is zero) in one conditional statement: when the balance would
    fall below zero nothing is written and the request fails with INSUFFICIENT_FUNDS,
    changing nothing. The database's own refusal of an overdraft, whatever the memory
    of the actor that asked believes."""

    account: str
    currency: str
    delta: int


Change = Insert | Upsert | Update | UpdateMany | Delete | Check | AdjustBalance
