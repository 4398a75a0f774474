"""The storage actor: the one task that writes to the database (SQLite or PostgreSQL).

Writers send a list of changes and get the answer only after COMMIT. Requests that queue
up while a transaction is running are committed together in the next one (group
commit), so throughput does not fall to one fsync per request. SQLite work runs in a
worker thread so the event loop never blocks; with ``offload=False`` it runs inline,
which is what tests under trio's mock clock want (no threads for the clock to outrun).
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import trio

from domain.errors import DomainError, OutcomeUnknown
from kit.runtime import DEFAULT_TIMEOUT, Actor, Mailbox, Request
from storage.changes import Change
from storage.database import Database, Fenced, Reader, SqliteReader, postgres_snapshot
from storage.dialect import Engine, engine_of

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH = 512
#: Snapshot reads (audits) running at once, each in a thread and on a connection of its
#: own: the rest wait their turn, holding neither threads nor descriptors.
SNAPSHOT_THREADS = 2
#: Large documents built at once for HTTP readers (a draw of 10,000 events, a listing of
#: a thousand games), each in a worker thread: a crowd asking for them waits its turn
#: rather than taking every thread, and the event loop builds none of them.
DOCUMENT_THREADS = 2
#: What a caller is told: the database's own words name tables and columns, so they go to
#: the log.
READ_FAILED = "The read failed; the server log says why."
NOT_SAVED = "The change was not saved; the server log says why."
REFUSED = "The change was refused by the database; the server log says why."


@dataclass(frozen=True, slots=True)
class Commit:
    changes: Sequence[Change]


@dataclass(frozen=True, slots=True)
class Read:
    query: Callable[[Database], Any]


class StorageActor(Actor):
    max_batch = MAX_BATCH

    def __init__(
        self,
        database: Database,
        inbox: Mailbox,
        *,
        offload: bool = True,
        on_commit: Callable[[int, float], None] = lambda requests, seconds: None,
    ) -> None:
        super().__init__(inbox)
        self.database = database
        self.offload = offload
        self.on_commit = on_commit  # (requests in the batch, seconds): metrics and logs
        #: the writer's own thread token: however many tasks wait on trio's default
        #: limiter (listings, audits, settlements), a commit never queues behind them
        self.thread = trio.CapacityLimiter(1)

    def batch_key(self, body: Commit | Read) -> Hashable | None:
        # reads are served one at a time, in order: each sees every earlier commit
        return "commit" if isinstance(body, Commit) else None

    async def handle(self, body: Read) -> Any:
        try:
            return await self._call(body.query, self.database)
        except DomainError:
            raise
        except Exception as exc:
            log.exception("read failed")
            raise DomainError("STORAGE_FAILURE", READ_FAILED) from exc

    async def handle_batch(self, batch: list[Request]) -> None:
        started = time.perf_counter()
        try:
            results = await self._call(
                self.database.apply_batch, [request.body.changes for request in batch]
            )
        except OutcomeUnknown as unknown:  # the COMMIT lost its connection: maybe saved
            log.exception("commit of %d requests has an unknown outcome", len(batch))
            for request in batch:
                request.fail(unknown)
            return
        except Fenced:  # every request of the batch is told: certainly not applied
            raise
        except Exception as exc:
            log.exception("commit of %d requests failed", len(batch))
            raise DomainError("STORAGE_FAILURE", NOT_SAVED) from exc
        self.on_commit(len(batch), time.perf_counter() - started)
        for request, failure in zip(batch, results, strict=True):
            if failure is None:
                request.reply()
            elif isinstance(failure, DomainError):  # a Check that did not hold
                request.fail(failure)
            else:
                log.warning("request refused by the database: %s", failure)
                request.fail(DomainError("STORAGE_CONFLICT", REFUSED))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await in_thread(self.offload, self.thread, fn, *args)


class Storage:
    """The handle other actors hold: commit changes, run a read, or prepare a large
    commit off the event loop."""

    def __init__(
        self,
        inbox: Mailbox,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        offload: bool = True,
        path: str = ":memory:",
    ) -> None:
        self.inbox = inbox
        self.timeout = timeout
        self.offload = offload
        self.path = path  # the database file, for reads on a connection of their own
        self.snapshot_threads = trio.CapacityLimiter(SNAPSHOT_THREADS)
        self.document_threads = trio.CapacityLimiter(DOCUMENT_THREADS)

    async def off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, so that CPU work of a second (settling a pool
        of 100,000 bets) does not stall every connection; inline when SQLite is (tests
        under a mock clock). ``fn`` must not touch what other tasks change meanwhile.

        Garbage collection waits while ``fn`` runs: a collection in the middle would scan
        the 100,000 objects it is building while holding the GIL (37 ms of stall for
        every connection, measured), and what it builds holds no reference cycle."""
        return await in_thread(self.offload, None, without_collections, fn, *args)

    async def build_document(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread on the documents' own limiter (see
        ``DOCUMENT_THREADS``); inline when SQLite is. For what an HTTP reader asks: an
        actor uses ``off_loop``, whose threads no crowd of readers can take."""
        return await in_thread(self.offload, self.document_threads, fn, *args)

    async def commit(self, changes: Sequence[Change]) -> None:
        if changes:
            await self.inbox.ask(Commit(tuple(changes)), timeout=self.timeout)

    async def read(self, query: Callable[[Database], T]) -> T:
        return await self.inbox.ask(Read(query), timeout=self.timeout)

    async def read_snapshot(self, query: Callable[[Reader], T]) -> T:
        """``query`` on a read-only connection of its own, in one read transaction (one
        snapshot: SQLite's WAL, PostgreSQL's REPEATABLE READ), in a worker thread: a read
        of millions of rows holds up no commit. An in-memory database has no second
        connection: the actor runs it."""
        if self.path == ":memory:":
            return await self.read(query)
        return await in_thread(
            self.offload, self.snapshot_threads, _read_snapshot, self.path, query
        )


async def in_thread(
    offload: bool, limiter: trio.CapacityLimiter | None, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(*args)`` in a worker thread (on ``limiter``, else trio's default), so SQLite
    never blocks the event loop; inline when ``offload`` is off (tests under a mock
    clock, which would race ahead of a thread)."""
    if offload:
        return await trio.to_thread.run_sync(fn, *args, limiter=limiter)
    return fn(*args)


def _read_snapshot(path: str, query: Callable[[Reader], T]) -> T:
    """``query`` in one read transaction of a connection of its own (``path``: a SQLite
    file or a PostgreSQL URL). Raises STORAGE_FAILURE when the database fails."""
    try:
        if engine_of(path) is Engine.POSTGRESQL:
            return postgres_snapshot(path, query)
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("BEGIN")
            return query(SqliteReader(conn))
        finally:
            conn.close()
    except (sqlite3.Error, psycopg.Error) as exc:
        log.exception("snapshot read failed")
        raise DomainError("STORAGE_FAILURE", READ_FAILED) from exc


class _CollectionPause:
    """Garbage collection off while at least one holder runs, from any thread; back to
    what it was when the last one is done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if not self._holders:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._holders += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._holders -= 1
            if not self._holders and self._was_enabled:
                gc.enable()


_collections_paused = _CollectionPause()


def without_collections(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with garbage collection paused (see ``Storage.off_loop``)."""
    with _collections_paused:
        return fn(*args)
