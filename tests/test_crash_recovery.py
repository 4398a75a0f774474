"""kill -9 the real server (a subprocess) and restart it on the same data directory:
every confirmed deposit and withdrawal must be back, and the books must balance.

Decisions §4: a reply that confirms a change is sent only after the change is committed,
so whatever the operator saw confirmed survives a crash. Requests still in flight when
the process dies may or may not have landed; replaying their reference after the restart
must then apply each exactly once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio

from domain.codec import decode
from tests import postgres as engines

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

ROOT = Path(__file__).resolve().parent.parent
KEY = "-crash-test-operator-key"  # leading "-": the CLI must still take it
READY = re.compile(rb"tote ready: websocket ws://\S+:(\d+)\s+http (http://\S+:\d+)\s")


@asynccontextmanager
async def running_server(
    data_dir: Path, log: Path, *extra: str
) -> AsyncIterator[tuple[trio.Process, str, int]]:
    """Start ``tote serve`` as a subprocess (on PostgreSQL, on the data directory's
    database); yields it, its HTTP base URL and its websocket port once ready.
    The process is always SIGKILLed and reaped on the way out."""
    flags = (f"--operator-key={KEY}", *engines.current.serve_flags(data_dir), *extra)
    proc, url, ws_port = await launch_serve(("--data-dir", str(data_dir), *flags), log)
    try:
        yield proc, url, ws_port
    finally:
        await reap(proc)


async def launch_serve(flags: Sequence[str], log: Path) -> tuple[trio.Process, str, int]:
    """``tote serve`` on ports 0 with ``flags``, its stderr appended to ``log``: the
    process, its HTTP base URL and its websocket port, once it printed that it is ready.
    Raises AssertionError (with the log) when it ends first, trio.TooSlowError when it
    is not ready in 30 s; the process is then killed and reaped."""
    with log.open("ab") as stderr:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tote.cli", "serve", "--ws-port", "0", "--http-port", "0",
             *flags],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
        )  # fmt: skip
    assert proc.stdout is not None
    try:
        seen = b""
        with trio.fail_after(30):
            while not (match := READY.search(seen)):
                chunk = await proc.stdout.receive_some(4096)
                if not chunk:
                    raise AssertionError(
                        f"server ended before ready:\n{await trio.Path(log).read_text()}"
                    )
                seen += chunk
    except BaseException:
        await reap(proc)
        raise
    return proc, match.group(2).decode(), int(match.group(1))


async def reap(proc: trio.Process) -> None:
    """SIGKILL (nothing if it has ended) and wait for it, shielded, at most 10 s."""
    proc.kill()
    with trio.CancelScope(shield=True), trio.move_on_after(10):
        await proc.wait()
        if proc.stdout is not None:
            await proc.stdout.aclose()


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)


async def move(
    http: httpx.AsyncClient, user_id: int, kind: str, amount: str, reference: str
) -> httpx.Response:
    return await http.post(
        f"/v1/users/{user_id}/{kind}",
        json={"currency": "EUR", "amount": amount, "reference": reference},
    )


async def test_confirmed_money_survives_kill_9(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    expected: dict[int, Decimal] = {}
    in_flight: list[tuple[int, str, str]] = []  # sent while the server died

    with trio.fail_after(120):
        async with running_server(data_dir, log) as (proc, url, _), client(url) as http:
            users = []
            for name in ("ann", "bob", "cid"):
                r = await http.post("/v1/users", json={"name": name, "password": "pw-" + name})
                assert r.status_code == 201, r.text
                users.append(r.json()["user_id"])
            for i, user_id in enumerate(users):
                expected[user_id] = Decimal(0)
                for j, amount in enumerate(("10.10", "0.20", "3.33")):
                    r = await move(http, user_id, "deposits", amount, f"d-{i}-{j}")
                    assert r.status_code == 201, r.text
                    expected[user_id] += Decimal(amount)
                r = await move(http, user_id, "withdrawals", "1.01", f"w-{i}")
                assert r.status_code == 201, r.text
                expected[user_id] -= Decimal("1.01")
            await http.post(f"/v1/users/{users[2]}/block")

            async def keep_depositing(user_id: int) -> None:
                for n in range(10_000):
                    reference = f"late-{user_id}-{n}"
                    in_flight.append((user_id, "0.01", reference))
                    try:
                        r = await move(http, user_id, "deposits", "0.01", reference)
                    except httpx.HTTPError:
                        return  # the server died under this request
                    assert r.status_code == 201, r.text

            async with trio.open_nursery() as nursery:
                for user_id in users[:2]:
                    nursery.start_soon(keep_depositing, user_id)
                await trio.sleep(0.3)
                proc.kill()  # SIGKILL: no shutdown, no flush, no goodbye
                await proc.wait()
            assert proc.returncode == -9

        async with running_server(data_dir, log) as (proc, url, _), client(url) as http:
            # Replaying every late reference applies exactly those that had not landed;
            # every confirmed one (all but the last per user) must answer "duplicate".
            last = {user_id: ref for user_id, _, ref in in_flight}
            for user_id, amount, reference in in_flight:
                r = await move(http, user_id, "deposits", amount, reference)
                assert r.status_code in (200, 201), r.text
                if reference != last[user_id]:
                    assert r.json()["duplicate"] is True, reference
                expected[user_id] += Decimal(amount)
            for user_id, total in expected.items():
                r = await http.get(f"/v1/users/{user_id}/balances")
                balance = decode(r.content)["EUR"]
                assert balance["current"] == balance["available"] == total, (user_id, r.text)
            # Replays of confirmed movements are still duplicates: idempotency survived.
            r = await move(http, users[0], "withdrawals", "1.01", "w-0")
            assert r.status_code == 200 and r.json()["duplicate"] is True
            r = await move(http, users[0], "deposits", "9.99", "d-0-0")
            assert r.status_code == 409
            # So did the block, and the users' passwords.
            r = await move(http, users[2], "withdrawals", "0.01", "w-blocked")
            assert r.json()["errorCode"] == "USER_BLOCKED"
            r = await http.post("/v1/login", json={"name": "bob", "password": "pw-bob"})
            assert r.status_code == 200 and r.json()["id"] == users[1]
            audit = (await http.get("/v1/audit")).json()
            assert audit["ok"] is True, audit
            assert audit["lines"] == 2 * audit["transactions"]


async def test_sigterm_shuts_down_gracefully_and_keeps_everything(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    with trio.fail_after(60):
        async with running_server(data_dir, log) as (proc, url, _), client(url) as http:
            user_id = (await http.post("/v1/users", json={"name": "sam"})).json()["user_id"]
            r = await move(http, user_id, "deposits", "7.77", "d-sam")
            assert r.status_code == 201
            proc.terminate()  # SIGTERM: stop taking traffic, drain the actors, close
            assert await proc.wait() == 0
        log_text = log.read_text()
        assert "shutting down" in log_text and "Traceback" not in log_text
        async with running_server(data_dir, log) as (proc, url, _), client(url) as http:
            balance = decode((await http.get(f"/v1/users/{user_id}/balances")).content)["EUR"]
            assert balance["current"] == Decimal("7.77")
