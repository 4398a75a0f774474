"""``tote backup``: a consistent, checked copy of a running server's database, taken while
deposits keep committing."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from domain.codec import decode
from domain.ledger import audit
from kit.settings import Settings
from storage.backup import BackupError, backup
from tests.conftest import CHEAP_SCRYPT_N, Harness
from tote import cli
from tote.server import Server, ServerConfig

pytestmark = pytest.mark.sqlite_only(
    "tote backup copies the SQLite file; PostgreSQL is backed up with pg_dump"
)


@asynccontextmanager
async def file_server(data_dir: Path) -> AsyncIterator[Harness]:
    """A server on a real database file in WAL mode, as `tote serve` runs it."""
    server = Server(
        ServerConfig(
            data_dir=data_dir,
            ws_port=0,
            http_port=0,
            synchronous="NORMAL",
            settings=Settings(scrypt_n=CHEAP_SCRYPT_N),
        )
    )
    async with trio.open_nursery() as nursery:
        h = Harness(await nursery.start(server.run), nursery)
        try:
            yield h
        finally:
            await h.aclose()
            server.request_stop()


def inspect(path: Path) -> tuple[list[tuple[str, str, str, int]], str, str, list[str]]:
    """The copy's ledger lines, journal mode and integrity check, read afresh, and the
    files beside it."""
    files = sorted(p.name for p in path.parent.iterdir())
    assert path.stat().st_mode & 0o777 == 0o600, "the copy holds secrets: owner only"
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT tx_id, account, currency, amount FROM ledger").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return rows, journal, conn.execute("PRAGMA integrity_check").fetchone()[0], files
    finally:
        conn.close()


async def test_a_backup_under_writes_is_consistent_and_audits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir, copy = tmp_path / "data", tmp_path / "copy.db"
    async with file_server(data_dir) as h:
        user = await h.user(deposit="1.00")
        confirmed = 1
        under_way, backed_up = trio.Event(), trio.Event()

        async def keep_depositing() -> None:
            nonlocal confirmed
            while not backed_up.is_set():
                r = await h.http.post(
                    f"/v1/users/{user['user_id']}/deposits",
                    json={"currency": "EUR", "amount": "0.01", "reference": f"d{confirmed}"},
                )
                assert r.status_code == 201, r.text
                confirmed += 1
                if confirmed == 20:
                    under_way.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_depositing)
            await under_way.wait()  # the copy starts among writes
            before = confirmed
            code = await trio.to_thread.run_sync(
                cli.main, ["backup", str(copy), "--data-dir", str(data_dir)]
            )
            after = confirmed
            backed_up.set()
        report = decode(capsys.readouterr().out)
        assert code == 0 and report["ok"] is True and report["integrity"] == "ok"

        rows, journal, integrity, files = await trio.to_thread.run_sync(inspect, copy)
        assert audit(rows) == [] and report["ledger_lines"] == len(rows)
        # each deposit is two lines: the copy holds every deposit confirmed before it began
        # and none that was not yet confirmed when it ended (a prefix, as of one commit)
        assert before <= len(rows) // 2 <= after + 1
        assert (journal, integrity) == ("delete", "ok")  # one self-contained file
        assert files == ["copy.db", "data"]  # no partial file left beside it


def test_backup_refuses_a_target_that_exists_no_database_or_no_folder(tmp_path: Path) -> None:
    target = tmp_path / "there.db"
    target.write_text("keep me")
    with pytest.raises(BackupError, match="exists"):
        backup(tmp_path / "tote.db", target)
    assert target.read_text() == "keep me"
    with pytest.raises(BackupError, match="no database"):
        backup(tmp_path / "tote.db", tmp_path / "new.db")
    assert not (tmp_path / "tote.db").exists(), "the backup must not create a database"
    (tmp_path / "tote.db").write_bytes(b"")
    with pytest.raises(BackupError, match="cannot write"):
        backup(tmp_path / "tote.db", tmp_path / "no-such-dir" / "new.db")


def test_tote_backup_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["backup", str(tmp_path / "x.db"), "--data-dir", str(tmp_path)])
    assert code == 1 and "no database" in capsys.readouterr().err


def test_a_copy_whose_ledger_does_not_balance_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from storage.database import Database

    database = Database(tmp_path / "tote.db")
    database.conn.execute(
        "INSERT INTO ledger (tx_id, seq, account, currency, amount)"
        " VALUES ('t', 0, 'house', 'EUR', 5)"
    )
    database.close()
    code = cli.main(["backup", str(tmp_path / "copy.db"), "--data-dir", str(tmp_path)])
    report = decode(capsys.readouterr().err)
    assert code == 1 and report["ok"] is False and report["problems"]
