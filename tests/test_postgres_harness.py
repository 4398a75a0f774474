"""The tests' throwaway PostgreSQL (tests/postgres.py): which server it picks, when a
missing one fails rather than skips, and that each test gets a database of its own with
tote's schema."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests import postgres as engines
from tests.postgres import TestDatabases, ThrowawayPostgres, Unavailable


def test_the_newest_installed_version_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("9.6", "13", "15", "16-beta"):
        (tmp_path / version / "bin").mkdir(parents=True)
    for version in ("9.6", "13", "15"):
        (tmp_path / version / "bin" / "initdb").touch()
    monkeypatch.setattr(engines, "DEBIAN_BINARIES", tmp_path)
    assert engines.binaries() == tmp_path / "15" / "bin"


def test_no_server_is_one_line_naming_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "DEBIAN_BINARIES", tmp_path)
    with pytest.raises(Unavailable, match=r"initdb is missing \(Debian package postgresql"):
        engines.start_server()


@pytest.mark.parametrize(
    ("ci", "engine", "must"),
    [("", "", False), ("1", "", True), ("", "postgresql", True), ("", "sqlite", False)],
)
def test_a_missing_server_fails_in_ci_and_on_postgresql_and_is_skipped_elsewhere(
    ci: str, engine: str, must: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("TOTE_TEST_ENGINE", engine)
    assert engines.must_run() is must


def test_an_unknown_engine_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOTE_TEST_ENGINE", "mysql")
    with pytest.raises(ValueError, match="expected one of sqlite, postgresql"):
        engines.default_engine()


def test_a_postgres_url_is_a_fresh_database_with_the_schema(
    postgres_url: str, postgres: ThrowawayPostgres
) -> None:
    assert postgres_url.startswith("postgresql://") and "@127.0.0.1:" in postgres_url
    with psycopg.connect(postgres_url) as connection:
        tables = {row[0] for row in connection.execute("SELECT tablename FROM pg_tables")}
        assert {"ledger", "bets", "users"} <= tables
        assert connection.execute("SELECT COUNT(*) FROM ledger").fetchone() == (0,)


def test_a_data_directory_keeps_its_database_and_each_is_dropped_after(
    postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    databases = TestDatabases("postgresql", postgres)
    first = databases.url(tmp_path / "a")
    assert databases.url(tmp_path / "a") == first  # a restart finds its books
    assert len({first, databases.url(tmp_path / "b"), databases.url()}) == 3
    databases.drop_all()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(first).close()


def test_on_sqlite_the_harnesses_keep_their_in_memory_databases() -> None:
    databases = TestDatabases("sqlite")
    assert databases.url() == ":memory:"
    assert databases.server_database(Path("data")) is None
    assert databases.serve_flags(Path("data")) == ()
