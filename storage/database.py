"""Synchronous database access, SQLite or PostgreSQL (issue 21). Only the storage actor
writes, one call at a time, from its own thread; snapshot reads open connections of
their own (``Reader``).

``Database`` is SQLite (the embedded default) and the interface; ``PostgresDatabase``
the same surface on one psycopg connection (psycopg's synchronous API: its async one
needs asyncio, and tote runs on trio). ``open_database`` picks by URL.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
import psycopg.errors
import sqlite_utils
from psycopg import pq
from psycopg.adapt import Dumper
from psycopg.rows import dict_row
from psycopg.types.numeric import NumericLoader

from domain.errors import DomainError, OutcomeUnknown
from storage import leases, schema
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
from storage.dialect import Engine, engine_of, placeholders, redacted

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long a PostgreSQL statement waits for a row another transaction locked, and how
#: long one may run: past them the request fails, and no batch waits for ever.
LOCK_TIMEOUT_MS = 10_000
STATEMENT_TIMEOUT_MS = 120_000
#: Tries of a whole batch that PostgreSQL rolled back for a deadlock (40P01) or a
#: serialization failure (40001): nothing of it was committed, so it is run again.
BATCH_TRIES = 4
RETRIED = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
#: What the writers of a batch whose COMMIT lost its connection are told.
COMMIT_UNKNOWN = "The database connection was lost during the commit: the change may be saved."

#: What every request of a batch refused by the fence is told.
FENCED = (
    "This node no longer owns the games (another node took the lease): nothing was saved; "
    "reconnect to be served by the new owner."
)


class Fenced(DomainError):
    """A write batch of a node that no longer holds the lease it is fenced by (issue 22,
    docs/cluster.md): rolled back before any change, so certainly not applied."""

    def __init__(self) -> None:
        super().__init__("UNAVAILABLE", FENCED)


#: ``SUM(amount)`` in two halves that cannot overflow SQLite's 64-bit integers (a plain
#: SUM raises "integer overflow" once its running total passes 2^63 - 1, and the server
#: could not start): the high parts are each at most 2^63 / 10^9 and the low parts below
#: 10^9, so either sum needs billions of rows to overflow. Python adds them exactly.
EXACT_SUM = "SUM(amount / 1000000000) AS high, SUM(amount % 1000000000) AS low"


def exact_total(high: int | None, low: int | None) -> int:
    """The exact sum the two parts of ``EXACT_SUM`` stand for (0 over no rows)."""
    return (high or 0) * 1_000_000_000 + (low or 0)


class Reader(Protocol):
    """What a read runs on: the writer's ``Database`` or a snapshot connection of its own
    (``Storage.read_snapshot``). Rows are dicts by column name; SQL takes ``?``."""

    @property
    def engine(self) -> Engine: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...


class SqliteReader:
    """A ``Reader`` on a plain sqlite3 connection (a snapshot, a backup's copy)."""

    engine = Engine.SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


def reader_of(source: Reader | sqlite3.Connection) -> Reader:
    """``source`` as a ``Reader`` (a bare sqlite3 connection is wrapped)."""
    return SqliteReader(source) if isinstance(source, sqlite3.Connection) else source


class Database:
    """One SQLite connection in WAL mode.

    ``synchronous`` defaults to FULL: a confirmed bet must survive a power cut, not only a
    ``kill -9``. Group commit (many requests, one transaction) pays that fsync once per
    batch rather than once per request.
    """

    engine = Engine.SQLITE

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
        cur = self._begin()
        try:
            results = [self._request(cur, changes) for changes in batch]
            self._commit(cur)
        except BaseException:
            self._abandon(cur)
            raise
        self.transactions += 1
        self.requests += len(batch)
        return results

    def _request(self, cur: Any, changes: Sequence[Change]) -> Exception | None:
        """One request under a savepoint: its failure, or None when it is in."""
        cur.execute("SAVEPOINT request")
        failure: Exception | None = None
        try:
            for change in changes:
                self._execute(cur, change)
        except Exception as exc:  # a bad request must not sink the batch
            if self._sinks_batch(exc):
                raise
            cur.execute("ROLLBACK TO request")
            failure = exc
        cur.execute("RELEASE request")
        return failure

    def _begin(self) -> Any:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        return cur

    def _execute(self, cur: Any, change: Change) -> None:
        _execute(cur, change)

    def _sinks_batch(self, exc: Exception) -> bool:
        """Whether ``exc`` fails the whole batch rather than its request alone."""
        return False

    def _commit(self, cur: Any) -> None:
        cur.execute("COMMIT")

    def _abandon(self, cur: Any) -> None:
        if self.conn.in_transaction:
            cur.execute("ROLLBACK")

    # -- reads ------------------------------------------------------------------------

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.conn.execute(sql, params)]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]


class _WholeNumeric(NumericLoader):
    """PostgreSQL's ``SUM`` of BIGINTs is a numeric: read a whole one as an int, as SQLite
    gives it (money is integer minor units)."""

    def load(self, data: Any) -> Any:
        value = super().load(data)
        return int(value) if value.is_finite() and value == value.to_integral_value() else value


class _FlagAsInteger(Dumper):
    """A Python bool into a BIGINT column (1 or 0), as SQLite stores it."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def connect_postgres(url: str) -> psycopg.Connection[Any]:
    """A connection in autocommit mode (transactions are begun explicitly), reading whole
    numerics as ints and writing bools as 1 or 0."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    conn.adapters.register_loader("numeric", _WholeNumeric)
    conn.adapters.register_dumper(bool, _FlagAsInteger)
    return conn


class _PostgresCursor:
    """A psycopg cursor that takes the ``?`` placeholders of storage/'s SQL: ``_execute``
    renders a change through it as through a sqlite3 cursor (``execute`` returns the
    cursor, with ``fetchone`` and ``rowcount``), so a change kind rendered there runs on
    both engines when its SQL does."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.cursor.execute(placeholders(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(placeholders(sql), rows)


class PostgresDatabase(Database):
    """One PostgreSQL connection, the single writer, used from the storage actor's thread
    (READ COMMITTED: a ``Check`` takes the row lock it names). A deadlock or
    serialization failure runs the batch again; a connection lost during COMMIT is an
    ``OutcomeUnknown``; a lost connection is opened anew by the next call.

    ``fence`` (a cluster's owner: lease name, node id, epoch; None on a single node and
    on an edge) makes every write transaction begin with the lease check
    (``storage.leases.fence_sql``): when the node no longer holds the lease at that
    epoch, the batch is rolled back, raises ``Fenced`` and ``on_fenced`` is called (at
    each refused batch), from the storage actor's thread: it must only hand the news to
    trio (``trio.from_thread``, a flag)."""

    engine = Engine.POSTGRESQL

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.path = url  # the URL, password included: never log it (``redacted``)
        self.synchronous = synchronous
        self.fence: tuple[str, str, int] | None = None
        self.on_fenced: Callable[[], None] = lambda: None
        #: while fenced, PostgreSQL ends this session when it sits this long inside a
        #: transaction (``idle_in_transaction_session_timeout``): an owner paused in the
        #: middle of a write (SIGSTOP, a frozen VM) would otherwise hold the fence's lock
        #: on the lease row, and no node could take the lease until it woke
        self.fence_idle_ms: int | None = None
        self._idle_limited: psycopg.Connection[Any] | None = None  # the connection it is set on
        self.transactions = 0
        self.requests = 0
        self.pg = self._connect()
        with self.pg.transaction():
            # one migrating start at a time: CREATE ... IF NOT EXISTS races with itself
            self.pg.execute("SELECT pg_advisory_xact_lock(21)")
            for statement in schema.postgres_ddl(*_schema_there(self.pg)):
                self.pg.execute(statement)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = connect_postgres(self.path)
        # FULL waits for the commit's WAL flush, as SQLite's FULL for its fsync; NORMAL
        # may lose the last commits if PostgreSQL (not tote) crashes
        durable = "on" if self.synchronous.upper() == "FULL" else "off"
        conn.execute(f"SET synchronous_commit = {durable}")
        conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection, opened anew when the last one was lost."""
        if self.pg.closed or self.pg.broken:
            log.warning("reconnecting to PostgreSQL at %s", redacted(self.path))
            self.pg.close()
            self.pg = self._connect()
        return self.pg

    def close(self) -> None:
        self.pg.close()

    def apply_batch(self, batch: Sequence[Sequence[Change]]) -> list[Exception | None]:
        """``Database.apply_batch``, run again (up to ``BATCH_TRIES``) when PostgreSQL
        rolled it back for a deadlock or a serialization failure. Raises ``OutcomeUnknown``
        when the connection was lost during COMMIT."""
        tries = 1
        while True:
            try:
                return super().apply_batch(batch)
            except RETRIED as exc:
                if tries == BATCH_TRIES:
                    raise
                log.warning("batch rolled back (%s), try %d", exc.sqlstate, tries + 1)
                tries += 1

    def _begin(self) -> Any:
        """BEGIN, then the fence when there is one (each try of a batch checks it anew).
        Raises ``Fenced`` (not retried) when it holds no row, having rolled back."""
        cur = _PostgresCursor(self._connection().cursor())
        fence = self.fence
        if fence is not None and self.fence_idle_ms and self._idle_limited is not self.pg:
            cur.execute(f"SET idle_in_transaction_session_timeout = {int(self.fence_idle_ms)}")
            self._idle_limited = self.pg  # a session setting: once per connection
        cur.execute("BEGIN")
        if fence is None:
            return cur
        try:
            held = cur.execute(leases.fence_sql(), fence).fetchone()
        except BaseException:
            self._abandon(cur)
            raise
        if held is None:
            self._abandon(cur)
            log.error("write refused by the fence: lease %r of %s at epoch %d is gone", *fence)
            self.on_fenced()
            raise Fenced()
        return cur

    def _execute(self, cur: Any, change: Change) -> None:
        _execute_postgres(cur, change)

    def _sinks_batch(self, exc: Exception) -> bool:
        return isinstance(exc, RETRIED) or self.pg.broken

    def _commit(self, cur: Any) -> None:
        """COMMIT; a fenced transaction first records its epoch (``fence_log_sql``)."""
        if self.fence is not None:
            _, node_id, epoch = self.fence
            cur.execute(leases.fence_log_sql(), (epoch, node_id))
        try:
            cur.execute("COMMIT")
        except psycopg.Error as exc:
            if self.pg.broken or self.pg.closed:
                raise OutcomeUnknown("UNAVAILABLE", COMMIT_UNKNOWN) from exc
            raise

    def _abandon(self, cur: Any) -> None:
        if not self.pg.broken and self.pg.info.transaction_status != pq.TransactionStatus.IDLE:
            cur.execute("ROLLBACK")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return postgres_rows(self._connection(), sql, params)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._connection().execute(placeholders(sql), params).fetchone()
        return None if row is None else row[0]


def _schema_there(conn: psycopg.Connection[Any]) -> tuple[set[tuple[str, str]], set[str]]:
    """The ``(table, column)`` pairs and the index names of the connection's schema, read
    from the catalog (which takes no lock of the tables)."""
    columns = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    ).fetchall()
    indexes = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    ).fetchall()
    return {(table, column) for table, column in columns}, {name for (name,) in indexes}


def postgres_rows(
    conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(placeholders(sql), params)
        return cur.fetchall()


class PostgresReader:
    """A ``Reader`` on a PostgreSQL connection (a snapshot's)."""

    engine = Engine.POSTGRESQL

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return postgres_rows(self.conn, sql, params)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(placeholders(sql), params).fetchone()
        return None if row is None else row[0]


def postgres_snapshot(url: str, query: Callable[[Reader], T]) -> T:
    """``query`` on a connection of its own in one REPEATABLE READ READ ONLY transaction:
    one snapshot, which holds up no writer."""
    with connect_postgres(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            return query(PostgresReader(conn))
        finally:
            if not conn.broken:
                conn.execute("ROLLBACK")


def open_database(url: str | Path, *, synchronous: str = "FULL") -> Database:
    """The database at ``url``: ``postgresql://USER:PASS@HOST:PORT/DB`` (or
    ``postgres://``) on PostgreSQL, else a SQLite file path or ``:memory:``. Creates
    what the schema lacks."""
    text = str(url)
    if engine_of(text) is Engine.POSTGRESQL:
        return PostgresDatabase(text, synchronous=synchronous)
    return Database(text, synchronous=synchronous)


def _execute(cur: Any, change: Change) -> None:
    """SQLite's rendering of one change (PostgreSQL's is ``_execute_postgres``)."""
    match change:
        case Insert(table, row):
            columns = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            cur.execute(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', tuple(row.values()))
        case Upsert(table, row):
            # ON CONFLICT DO UPDATE keeps the row (and its rowid, the creation order the
            # listings page by); INSERT OR REPLACE deleted it and inserted a new one last.
            # The conflict target is the primary key (PostgreSQL requires one).
            columns = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in row)
            keys = ", ".join(f'"{c}"' for c in schema.primary_key(table))
            cur.execute(
                f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'
                f" ON CONFLICT ({keys}) DO UPDATE SET {sets}",
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


def _execute_postgres(cur: _PostgresCursor, change: Change) -> None:
    """PostgreSQL's rendering of one change: SQLite's SQL (through ``?`` placeholders),
    and first the row lock a ``Check`` names (held until the commit)."""
    if isinstance(change, Check) and change.lock is not None:
        lock = change.lock
        where = " AND ".join(f'"{c}" = ?' for c in lock.key)
        cur.execute(
            f'SELECT 1 FROM "{lock.table}" WHERE {where} FOR {lock.mode}',
            tuple(lock.key.values()),
        )
    _execute(cur, change)


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
