"""The cluster's nodes and leases in PostgreSQL (issue 22, docs/cluster.md): which node
processes are alive, which one owns the games, and the fence every owner's write
transaction begins with.

Times are PostgreSQL's, never a node's: ``expires_at`` is milliseconds since the Unix
epoch from ``clock_timestamp()`` (the time of the statement as it runs, also after it
waited for a lock; ``now()`` is when its transaction began). A lease is held while
``clock_timestamp() < expires_at``.

``LeaseStore`` has a connection of its own in autocommit mode, so that a renewal never
waits behind the storage actor's write batches, and is meant to be used from a thread of
its own (``cluster.lease.OwnerLease`` does). Only PostgreSQL can hold a lease: a
cluster needs one database all its nodes share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

from domain.errors import DomainError
from storage.dialect import Engine, engine_of, placeholders, redacted

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The tables (added to ``storage.schema.TABLES``, so both engines create them).
Table = tuple[dict[str, type], str]
NODES_TABLE: Table = ({"node_id": str, "started_at_ms": int, "expires_at": int}, "node_id")
LEASES_TABLE: Table = ({"name": str, "node_id": str, "epoch": int, "expires_at": int}, "name")
#: What the owners' fenced transactions committed, per epoch of the games lease: the
#: first and last such commit's time (PostgreSQL's clock, just before COMMIT) and how
#: many; a checker reads that no epoch wrote after the next one's first write.
FENCE_LOG_TABLE: Table = (
    {"epoch": int, "node_id": str, "first_ms": int, "last_ms": int, "batches": int},
    "epoch",
)

#: PostgreSQL's time now, in epoch milliseconds, as the statement runs.
NOW_MS = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
#: A node row whose process stopped this long ago is deleted by the next heartbeat.
FORGET_NODE_MS = 3_600_000
#: How long a lease statement waits for a lock (a take waits for the old owner's write
#: transactions) and may run: past them it fails and the caller tries again later.
LOCK_TIMEOUT_MS = 10_000
STATEMENT_TIMEOUT_MS = 20_000
#: How long the kernel lets sent data go unacknowledged before the connection counts as
#: lost (a PostgreSQL host gone from the network fails a call, it does not hang it).
TCP_USER_TIMEOUT_MS = 10_000
NEEDS_POSTGRESQL = "a cluster lease needs PostgreSQL: expected postgresql://USER:PASS@HOST:PORT/DB"


class LeaseUnavailable(DomainError):
    """The lease table could not be read or written (connection lost, timeout): nothing
    is known of the call's effect. The caller tries again later; the store reconnects."""

    def __init__(self, text: str) -> None:
        super().__init__("UNAVAILABLE", text)


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A lease as stored: its holder, its epoch, and whether it has expired."""

    node_id: str
    epoch: int
    expired: bool


def fence_sql() -> str:
    """The fence: the first statement of every write transaction of an owner, with
    parameters (lease name, node id, epoch). It gives a row only while that node holds
    the lease at that epoch, and locks the row (``FOR KEY SHARE``) until the commit, so a
    takeover (``take`` locks it ``FOR UPDATE``) waits for the transaction to end, and the
    transaction started after the takeover finds no row. ``KEY SHARE`` and not ``SHARE``:
    the owner's own renewal (an ``UPDATE`` of ``expires_at``, a non-key column) does not
    conflict with it and never waits behind a write batch."""
    return "SELECT 1 FROM leases WHERE name = ? AND node_id = ? AND epoch = ? FOR KEY SHARE"


def fence_log_sql() -> str:
    """The last statement of every fenced transaction, before its COMMIT, with parameters
    (epoch, node id): its epoch's row in ``fence_log`` made or moved on (``last_ms``,
    ``batches``). Rolled back with the transaction, so it counts committed writes only;
    one row per epoch, written by one node's storage actor, so it is never contended."""
    return (
        "INSERT INTO fence_log (epoch, node_id, first_ms, last_ms, batches) "
        f"VALUES (?, ?, {NOW_MS}, {NOW_MS}, 1) ON CONFLICT (epoch) DO UPDATE "
        f"SET last_ms = {NOW_MS}, batches = fence_log.batches + 1"
    )


@dataclass(frozen=True, slots=True)
class EpochWrites:
    """One epoch's committed fenced writes (``fence_log``)."""

    epoch: int
    node_id: str
    first_ms: int
    last_ms: int
    batches: int


class LeaseStore:
    """Nodes and leases on a PostgreSQL connection of its own (opened at the first call,
    and again after one was lost). Every method raises ``LeaseUnavailable`` when
    PostgreSQL cannot answer. Not thread-safe: one call at a time."""

    def __init__(self, url: str) -> None:
        """Raises ValueError for a URL that is not PostgreSQL's."""
        if engine_of(url) is not Engine.POSTGRESQL:
            raise ValueError(NEEDS_POSTGRESQL)
        self.url = url  # password included: never log it (``redacted``)
        self.conn: psycopg.Connection[Any] | None = None

    # -- nodes ------------------------------------------------------------------------

    def heartbeat(self, node_id: str, ttl: float) -> None:
        """Mark ``node_id`` alive for ``ttl`` seconds from now (a first call writes its
        row and ``started_at_ms``); forgets nodes stopped long ago. A ttl of 0 marks it
        stopped."""
        sql = (
            f"INSERT INTO nodes (node_id, started_at_ms, expires_at) VALUES (?, {NOW_MS}, "
            f"{NOW_MS} + ?) ON CONFLICT (node_id) DO UPDATE SET expires_at = excluded.expires_at"
        )
        forget = f"DELETE FROM nodes WHERE expires_at < {NOW_MS} - ?"

        def beat(conn: psycopg.Connection[Any]) -> None:
            conn.execute(placeholders(sql), (node_id, _ms(ttl)))
            conn.execute(placeholders(forget), (FORGET_NODE_MS,))

        self._run(beat)

    def live_nodes(self) -> list[str]:
        """The ids of the nodes whose heartbeat has not expired, in id order."""
        sql = f"SELECT node_id FROM nodes WHERE expires_at > {NOW_MS} ORDER BY node_id"
        return self._run(lambda conn: [row[0] for row in conn.execute(sql)])

    # -- leases -----------------------------------------------------------------------

    def take(self, name: str, node_id: str, ttl: float) -> int | None:
        """Take lease ``name`` for ``ttl`` seconds when it is absent, expired or already
        ``node_id``'s (an earlier take whose answer was lost): its new epoch (1 for a new
        lease, else the last one + 1), or None when another node holds it. One
        transaction that locks the row ``FOR UPDATE``: it waits for the old owner's
        fenced transactions to end, and of two nodes taking at once one wins."""
        return self._run(lambda conn: _take(conn, name, node_id, _ms(ttl)))

    def renew(self, name: str, node_id: str, epoch: int, ttl: float) -> bool:
        """Extend the lease to ``ttl`` seconds from now; False when ``node_id`` no longer
        holds it at ``epoch`` (taken over: the caller has lost it)."""
        sql = (
            f"UPDATE leases SET expires_at = {NOW_MS} + ? "
            "WHERE name = ? AND node_id = ? AND epoch = ?"
        )
        params = (_ms(ttl), name, node_id, epoch)
        return self._run(lambda conn: conn.execute(placeholders(sql), params).rowcount == 1)

    def owner(self, name: str) -> LeaseView | None:
        """Who holds lease ``name`` (or held it last: ``expired``); None when it was
        never taken."""
        sql = f"SELECT node_id, epoch, expires_at <= {NOW_MS} FROM leases WHERE name = ?"

        def read(conn: psycopg.Connection[Any]) -> LeaseView | None:
            row = conn.execute(placeholders(sql), (name,)).fetchone()
            return None if row is None else LeaseView(row[0], row[1], row[2])

        return self._run(read)

    def fence_log(self) -> list[EpochWrites]:
        """Every epoch's committed fenced writes, by epoch."""
        sql = "SELECT epoch, node_id, first_ms, last_ms, batches FROM fence_log ORDER BY epoch"
        return self._run(lambda conn: [EpochWrites(*row) for row in conn.execute(sql)])

    def release(self, name: str, node_id: str, epoch: int) -> None:
        """Let the lease expire now (a clean stop), so another node takes it at once;
        nothing when ``node_id`` no longer holds it at ``epoch``."""
        sql = (
            f"UPDATE leases SET expires_at = {NOW_MS} WHERE name = ? AND node_id = ? AND epoch = ?"
        )
        self._run(lambda conn: conn.execute(placeholders(sql), (name, node_id, epoch)))

    def expire_for_tests(self, name: str) -> None:
        """Tests only: the lease ``name`` expired a second ago, as if its holder had
        stopped renewing (no test waits for a lease to run out)."""
        sql = f"UPDATE leases SET expires_at = {NOW_MS} - 1000 WHERE name = ?"
        self._run(lambda conn: conn.execute(placeholders(sql), (name,)))

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- the connection ---------------------------------------------------------------

    def _run(self, call: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``call`` on the connection; a psycopg error closes it (the next call opens
        another) and becomes ``LeaseUnavailable``."""
        try:
            return call(self._connection())
        except psycopg.Error as exc:
            log.warning("lease store call failed: %s", exc)
            self.close()
            raise LeaseUnavailable(f"the lease table did not answer: {exc}") from exc

    def _connection(self) -> psycopg.Connection[Any]:
        if self.conn is not None and (self.conn.closed or self.conn.broken):
            self.close()
        if self.conn is None:
            log.info("lease store connecting to %s", redacted(self.url))
            self.conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=10, tcp_user_timeout=TCP_USER_TIMEOUT_MS
            )
            self.conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
            self.conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        return self.conn


def _take(conn: psycopg.Connection[Any], name: str, node_id: str, ttl_ms: int) -> int | None:
    """``LeaseStore.take`` in one transaction: the row made if absent (epoch 0, expired),
    locked, and taken when it is expired or ``node_id``'s."""
    with conn.transaction():
        conn.execute(
            placeholders(
                "INSERT INTO leases (name, node_id, epoch, expires_at) VALUES (?, '', 0, 0) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            (name,),
        )
        row = conn.execute(
            placeholders(
                f"SELECT expires_at <= {NOW_MS} OR node_id = ? FROM leases WHERE name = ? "
                "FOR UPDATE"
            ),
            (node_id, name),
        ).fetchone()
        if row is None or not row[0]:
            return None
        taken = conn.execute(
            placeholders(
                f"UPDATE leases SET node_id = ?, epoch = epoch + 1, expires_at = {NOW_MS} + ? "
                "WHERE name = ? RETURNING epoch"
            ),
            (node_id, ttl_ms, name),
        ).fetchone()
        return None if taken is None else int(taken[0])


def _ms(seconds: float) -> int:
    """Seconds as whole milliseconds; ValueError for a negative time."""
    if seconds < 0:
        raise ValueError(f"a negative time: {seconds}")
    return round(seconds * 1000)
