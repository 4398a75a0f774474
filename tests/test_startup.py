"""``tote serve`` when it cannot start: one line that names the port and the option to
change, a non-zero exit, and an operator key that was shown (and kept 0600) even so."""

from __future__ import annotations

import os
import resource
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tote import cli
from tote.server import (
    EXIT_CANNOT_START,
    ServerConfig,
    open_storage,
    operator_key_for,
    raise_open_file_limit,
)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def _serve(data_dir: Path, *ports: str) -> int:
    return cli.main(["serve", "--data-dir", str(data_dir), *ports])


@pytest.mark.parametrize("option", ["--ws-port", "--http-port"])
def test_a_taken_port_is_one_line_naming_it_and_a_non_zero_exit(
    tmp_path: Path,
    taken_port: int,
    option: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TOTE_OPERATOR_KEY", raising=False)
    ports = {"--ws-port": "0", "--http-port": "0", option: str(taken_port)}
    code = _serve(tmp_path, *[part for pair in ports.items() for part in pair])
    out, err = capsys.readouterr()
    assert code == EXIT_CANNOT_START
    [line] = [line for line in err.splitlines() if line.startswith("tote:")]
    assert str(taken_port) in line and option in line
    assert "Traceback" not in err and "ExceptionGroup" not in err
    # the failed first start still showed the key it made, and kept it private
    key = (tmp_path / "operator_key").read_text().strip()
    assert f"operator key (new, kept in {tmp_path}/operator_key): {key}" in out
    assert stat.S_IMODE((tmp_path / "operator_key").stat().st_mode) == 0o600
    # the next start says where the key is and does not print the secret again
    assert _serve(tmp_path, "--ws-port", "0", option, str(taken_port)) == EXIT_CANNOT_START
    out, _ = capsys.readouterr()
    assert f"operator key: kept in {tmp_path}/operator_key" in out and key not in out


def test_the_key_file_is_private_from_its_first_byte_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOTE_OPERATOR_KEY", raising=False)
    previous = os.umask(0)
    try:
        key, is_new = operator_key_for(ServerConfig(data_dir=tmp_path / "new"))
    finally:
        os.umask(previous)
    path = tmp_path / "new" / "operator_key"
    assert is_new and path.read_text() == key + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["operator_key"]  # no temporary left
    assert operator_key_for(ServerConfig(data_dir=tmp_path / "new")) == (key, False)


@pytest.mark.sqlite_only("the file mode of tote.db and its -wal")
def test_a_new_data_directory_and_its_database_are_private_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOTE_OPERATOR_KEY", raising=False)
    data_dir = tmp_path / "new"
    previous = os.umask(0)
    try:
        database, _ = open_storage(ServerConfig(data_dir=data_dir))
        database.conn.execute("CREATE TABLE probe (x)")  # the -wal file is there now
        files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}
        database.conn.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert {"tote.db", "tote.db-wal", "operator_key"} <= files.keys()
    assert set(files.values()) == {0o600}, files


def test_an_empty_key_file_is_refused_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOTE_OPERATOR_KEY", raising=False)
    (tmp_path / "operator_key").write_text("\n")
    assert _serve(tmp_path, "--ws-port", "0", "--http-port", "0") == EXIT_CANNOT_START
    assert "operator_key is empty" in capsys.readouterr().err


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        before, after = raise_open_file_limit()
        assert before == lowered
        assert after == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert after == hard or (hard == resource.RLIM_INFINITY and after == lowered)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.sqlite_only("the file mode of tote.db")
def test_a_database_others_may_read_is_named_with_its_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOTE_OPERATOR_KEY", raising=False)
    (tmp_path / "tote.db").touch(mode=0o644)
    (tmp_path / "tote.db").chmod(0o644)
    database, _ = open_storage(ServerConfig(data_dir=tmp_path))
    database.close()
    [record] = [r for r in caplog.records if r.getMessage() == "database_readable_by_others"]
    assert record.mode == "0644" and record.fix == f"chmod 600 {tmp_path / 'tote.db'}"
    assert stat.S_IMODE((tmp_path / "tote.db").stat().st_mode) == 0o644  # the operator's call
