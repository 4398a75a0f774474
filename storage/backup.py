"""A consistent copy of a live database (``tote backup PATH``).

SQLite's online backup API copies every page under one read transaction when asked to
copy them all in one step, so the copy is the database as of one commit. In WAL mode
that read lock does not stop the server's writer: the backup runs beside a serving
server, from its own connection. The copy is then made a single file (journal mode
DELETE), checked with ``PRAGMA integrity_check`` and audited like the live ledger.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage.audit import audit_ledger

#: How long the backup waits for a lock the writer holds (a checkpoint, the schema).
BUSY_TIMEOUT_MS = 10_000


class BackupError(Exception):
    """The backup could not be made; the message says why, in one line."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int
    integrity: str
    ledger_lines: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not self.problems


def backup(database: Path, target: Path) -> BackupReport:
    """Copy ``database`` to ``target`` (which must not exist) and check the copy. The
    copy is written beside ``target``, readable by its owner only, and renamed into
    place, so ``target`` is either absent or complete."""
    if target.exists():
        raise BackupError(f"{target} exists; choose a new path")
    if not database.is_file():
        raise BackupError(f"there is no database at {database}")
    partial = target.with_name(f".{target.name}.partial")
    try:
        # private (0600) like the operator key: it holds password hashes and session keys
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise BackupError(f"cannot write beside {target}: {error.strerror}") from None
    try:
        # mode=rw: never create an empty database where the real one was expected
        source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=rw", uri=True)
        try:
            source.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
                report = check(copy, target)
            finally:
                copy.close()
        finally:
            source.close()
        os.replace(partial, target)
    except sqlite3.Error as error:
        raise BackupError(f"the backup of {database} failed: {error}") from None
    finally:
        partial.unlink(missing_ok=True)
    return report


def check(conn: sqlite3.Connection, path: Path) -> BackupReport:
    """SQLite's integrity check and the ledger audit of an open copy."""
    integrity = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    books = audit_ledger(conn)
    return BackupReport(
        path=path,
        bytes=conn.execute("PRAGMA page_count").fetchone()[0]
        * conn.execute("PRAGMA page_size").fetchone()[0],
        integrity=integrity,
        ledger_lines=books.lines,
        problems=books.problems,
    )
