"""Two PostgreSQL transactions made to meet (the tests of locks: a slip against a
settlement, a write against a lease takeover): one held open after a given change, the
other run in a thread, and a probe of whether it waits for a lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg

from storage.changes import Change
from storage.database import PostgresDatabase

#: How long a probe or a held transaction waits at most (a busy machine is slow).
PATIENCE = 30.0


class HeldAfter(PostgresDatabase):
    """Holds its transaction open right after running ``change`` until ``release`` is set,
    so another transaction runs in between; ``checked`` is set once it is held."""

    def __init__(self, url: str, change: Change) -> None:
        super().__init__(url, synchronous="OFF")
        self.change = change
        self.checked = threading.Event()
        self.release = threading.Event()

    def _execute(self, cur: Any, change: Change) -> None:
        super()._execute(cur, change)
        if change is self.change:
            self.checked.set()
            assert self.release.wait(PATIENCE)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any], threading.Event]:
    """``fn`` run in a thread: the thread, a list that gets its result, and an event set
    when it ended (also by an exception)."""
    result: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            result.append(fn())
        finally:
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result, done


def waits_for_a_lock(url: str, done: threading.Event) -> bool:
    """True once a session of the database waits for a lock, False when ``done`` is set
    first; AssertionError when neither happens within PATIENCE."""
    with psycopg.connect(url, autocommit=True) as monitor:
        for _ in range(int(PATIENCE / 0.01)):
            waiting = monitor.execute(
                "SELECT COUNT(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                return True
            if done.wait(0.01):
                return False
    raise AssertionError("the transaction neither finished nor waited for a lock")
