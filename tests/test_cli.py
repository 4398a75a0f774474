"""The ``tote`` command line against a real server: each command is ``tote.cli.main`` run
in a worker thread (it blocks on urllib), talking HTTP to the harness server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.registry import OpenSource
from domain.codec import decode
from storage.changes import Insert
from tests.conftest import Harness
from tote import cli


class Cli:
    """Runs ``tote ...`` and returns (exit status, stdout, stderr)."""

    def __init__(self, harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = str(harness.http.base_url)
        self.key = harness.endpoints.operator_key
        self.capsys = capsys

    async def raw(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await trio.to_thread.run_sync(cli.main, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        # "=" form: a generated key may start with "-", which argparse would take for an option.
        return await self.raw(*argv, f"--url={self.url}", f"--operator-key={self.key}")

    async def ok(self, *argv: str) -> Any:
        code, out, err = await self(*argv)
        assert code == 0, err
        return decode(out)


@pytest.fixture
def tote(
    harness: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.delenv("TOTE_OPERATOR_KEY", raising=False)
    monkeypatch.delenv("TOTE_URL", raising=False)
    return Cli(harness, capsys)


async def test_provisioning_round_trip(tote: Cli) -> None:
    user = await tote.ok("user", "create", "frank", "--password", "pw", "--role", "developer")
    assert user == {"user_id": 1, "name": "frank", "roles": ["developer"]}
    session = await tote.ok("session", "create", "1")
    assert session["user_id"] == 1 and session["session_key"]
    login = await tote.ok("login", "frank", "pw")
    assert login["id"] == 1 and login["user_session_key"]

    first = await tote.ok("deposit", "1", "eur", "10.10")
    assert first["currency"] == "EUR" and first["duplicate"] is False
    assert len(first["reference"]) == 36  # a fresh uuid4 when none is given
    await tote.ok("deposit", "1", "EUR", "0.20", "--reference", "r-1")
    again = await tote.ok("deposit", "1", "EUR", "0.20", "--reference", "r-1")
    assert again["duplicate"] is True
    code, out, _ = await tote("balances", "1")
    assert code == 0 and '"current": 10.3' in out and "10.29" not in out

    withdrawal = await tote.ok("withdraw", "1", "EUR", "0.30")
    assert withdrawal["balance"]["available"] == 10
    assert await tote.ok("block", "1") == {"user_id": 1, "blocked": True}
    assert await tote.ok("unblock", "1") == {"user_id": 1, "blocked": False}
    assert await tote.ok("audit") == {"ok": True, "problems": [], "transactions": 3, "lines": 6}


async def test_refusals_exit_1_with_the_error_on_stderr(tote: Cli) -> None:
    await tote.ok("user", "create", "gina", "--password", "pw")
    code, out, err = await tote("withdraw", "1", "EUR", "5")
    assert code == 1 and out == ""
    assert decode(err)["errorCode"] == "INSUFFICIENT_FUNDS"
    code, _, err = await tote("deposit", "1", "EUR", "1.005")
    assert code == 1 and decode(err)["errorCode"] == "INVALID_AMOUNT"
    code, _, err = await tote("login", "gina", "wrong")
    assert code == 1 and decode(err)["errorCode"] == "AUTHENTICATION_FAILED"
    code, _, err = await tote("balances", "42")
    assert code == 1 and decode(err)["errorCode"] == "NOT_FOUND"
    code, _, err = await tote.raw("balances", "1", "--url", tote.url, "--operator-key", "bad")
    assert code == 1 and decode(err)["errorCode"] == "AUTHENTICATION_FAILED"


async def test_source_admin_add(tote: Cli, harness: Harness) -> None:
    developer = (await tote.ok("user", "create", "dev", "--role", "developer"))["user_id"]
    player = (await tote.ok("user", "create", "pat"))["user_id"]
    source = await harness.services.ask_registry(OpenSource(developer, "cup", ""))
    answer = await tote.ok("source-admin", "add", source.id, str(player))
    assert answer["admins"] == [developer, player]


async def test_audit_exits_1_when_the_books_do_not_balance(tote: Cli, harness: Harness) -> None:
    await harness.services.storage.commit(
        [
            Insert("transactions", {"id": "odd", "kind": "test", "created_at": 0}),
            Insert(
                "ledger",
                {"tx_id": "odd", "seq": 0, "account": "house", "currency": "EUR", "amount": 3},
            ),
        ]
    )
    code, out, _ = await tote("audit")
    assert code == 1 and decode(out)["ok"] is False
    await harness.services.storage.commit(
        [
            Insert(
                "ledger",
                {"tx_id": "odd", "seq": 1, "account": "operator", "currency": "EUR", "amount": -3},
            )
        ]
    )
    code, _, _ = await tote("audit")
    assert code == 0


async def test_where_the_url_and_key_come_from(
    tote: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await tote.ok("user", "create", "hal")
    # Options before the command work too.
    code, out, _ = await tote.raw(
        f"--url={tote.url}", f"--operator-key={tote.key}", "balances", "1"
    )
    assert code == 0 and decode(out) == {}
    # The key the server keeps in its data directory.
    (tmp_path / "operator_key").write_text(tote.key + "\n")
    code, _, err = await tote.raw("balances", "1", "--url", tote.url, "--data-dir", str(tmp_path))
    assert code == 0, err
    # The environment.
    monkeypatch.setenv("TOTE_URL", tote.url)
    monkeypatch.setenv("TOTE_OPERATOR_KEY", tote.key)
    code, _, err = await tote.raw("balances", "1")
    assert code == 0, err


async def test_no_key_or_no_server_exits_2(tote: Cli, tmp_path: Path) -> None:
    code, _, err = await tote.raw("audit", "--url", tote.url, "--data-dir", str(tmp_path))
    assert code == 2 and "operator key" in err
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = await tote.raw(
        "audit", "--url", f"http://127.0.0.1:{port}", "--operator-key", "k"
    )
    assert code == 2 and "cannot reach" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["deposit", "x", "EUR", "1"],
        ["user", "create", "n", "--role", "admin"],
        ["user"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2


def test_reference_defaults_to_a_new_uuid() -> None:
    args = cli.build_parser().parse_args(["deposit", "1", "EUR", "1"])
    method, path, body, auth = cli.COMMANDS[args.action](args)
    again = cli.COMMANDS[args.action](args)[2]
    assert (method, path, auth) == ("POST", "/v1/users/1/deposits", True)
    assert body["amount"] == "1" and body["reference"] != again["reference"]
    assert body["currency"] == "EUR"


def test_tote_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`tote --help` names every command `tote` runs: the client commands, the server
    ones and `bench`, whose options its own parser reads (`tote bench --help`)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    listed = set(re.findall(r"^ {4}(\S+)", capsys.readouterr().out, re.M))
    runs = {name.split()[0] for name in cli.COMMANDS} | {"serve", "backup", "demo", "bench"}
    assert listed == runs
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    assert "--quick" in capsys.readouterr().out


async def test_limits_and_exclude(tote: Cli, harness: Harness) -> None:
    await tote.ok("user", "create", "gina")
    shown = await tote.ok("limits", "1")
    assert (shown["deposit"], shown["loss"], shown["pending"]) == ({}, {}, [])
    set_ = await tote.ok("limits", "1", "--deposit", "day=50", "--loss", "week=20")
    assert (set_["deposit"], set_["loss"]) == ({"day": "50.0"}, {"week": "20.0"})
    raised = await tote.ok("limits", "1", "--loss", "week=none")
    assert raised["loss"] == {"week": "20.0"} and raised["pending"][0]["amount"] is None
    code, _, err = await tote("limits", "1", "--loss", "year=5")
    assert code == 1 and "INVALID_PARAMETER" in err
    until = harness.services.clock.now_ms() + 2 * 24 * 3600 * 1000
    assert await tote.ok("exclude", "1", str(until)) == {"user_id": 1, "excluded_until": until}
    code, _, err = await tote("exclude", "1", str(until - 1))
    assert code == 1 and "cannot be shortened" in err
    assert (await tote.ok("limits", "1"))["excluded_until"] == until
