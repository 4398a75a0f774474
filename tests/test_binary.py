"""The single executable (``make binary``) runs every ``tote`` command without Python: it
serves a real websocket client, provisions over HTTP, lists, backs up and stops on
SIGTERM. Run by ``make test-binary``, which builds it first and names it in
``TOTE_BINARY``; skipped otherwise (the build takes minutes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from actors.registry import handshake_digest
from domain.codec import decode
from tests.conftest import WsClient

BINARY = os.environ.get("TOTE_BINARY")
pytestmark = pytest.mark.skipif(not BINARY, reason="make test-binary builds and names it")


def describe(binary: str, start_seconds: float) -> str:
    return f"binary: {Path(binary).stat().st_size} bytes, ready in {start_seconds:.2f}s"


async def tote(*argv: str) -> dict[str, Any]:
    """One client command of the binary; its JSON answer."""
    assert BINARY is not None
    done = await trio.run_process([BINARY, *argv], capture_stdout=True, capture_stderr=True)
    return decode(done.stdout)


async def read_until_ready(process: trio.Process) -> tuple[int, int]:
    """The websocket and HTTP ports from the ``tote ready:`` line."""
    assert process.stdout is not None
    seen = b""
    while b"\n" not in seen.partition(b"tote ready:")[2]:
        chunk = await process.stdout.receive_some()
        assert chunk, f"the binary stopped before it was ready: {seen!r}"
        seen += chunk
    found = re.search(rb"ws://[^:]+:(\d+) +http http://[^:]+:(\d+)", seen)
    assert found, seen
    return int(found[1]), int(found[2])


async def test_the_binary_serves_a_real_client(tmp_path: Path) -> None:
    assert BINARY is not None
    data = tmp_path / "data"
    started = time.monotonic()
    process = await trio.lowlevel.open_process(
        [BINARY, "serve", "--data-dir", str(data), "--ws-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        env={**os.environ, "TOTE_LOG_LEVEL": "WARNING"},
    )
    try:
        with trio.fail_after(60):
            ws_port, http_port = await read_until_ready(process)
        print(describe(BINARY, time.monotonic() - started))  # shown with pytest -s
        server = ["--url", f"http://127.0.0.1:{http_port}", "--data-dir", str(data)]
        user = await tote("user", "create", "ann", *server)
        session = await tote("session", "create", str(user["user_id"]), *server)
        await tote("deposit", str(user["user_id"]), "EUR", "12.50", *server)

        nonce = "n1"
        digest = handshake_digest(user["user_id"], nonce, session["session_key"])
        url = f"ws://127.0.0.1:{ws_port}/?id={user['user_id']}&n={nonce}&h={digest}"
        async with open_websocket_url(url) as ws:
            pong = await WsClient(ws, user["user_id"]).call(1)
        assert pong["res"] == 1

        assert (await tote("games", *server))["games"] == []
        assert (await tote("audit", *server))["ok"] is True
        backup = await tote("backup", str(tmp_path / "copy.db"), "--data-dir", str(data))
        assert backup["ok"] is True and backup["ledger_lines"] == 2
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await process.wait() == 0
