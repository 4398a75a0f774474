"""Bugs the reliability suite found, kept as regression tests once fixed."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from tests.test_crash_recovery import KEY, running_server

ATTEMPTS = 100  # the stall hits one connection in three to five; stop at the first
#: A stall is a request never answered; a busy machine may answer slowly, never this slowly.
ANSWER_WITHIN_SECONDS = 30.0


def first_stall_after_an_unread_body(base_url: str) -> int | None:
    """On fresh keep-alive connections: a body the server refuses (401) without reading,
    then a keyed request with a body on the same connection. The first attempt whose
    second request got no answer, or None."""
    for n in range(ATTEMPTS):
        with httpx.Client(base_url=base_url, timeout=ANSWER_WITHIN_SECONDS) as http:
            refused = http.post("/v1/sources/x/admins", json={"user_id": 602})
            assert refused.status_code == 401, refused.text
            try:
                http.post(
                    "/v1/users",
                    json={"name": f"after-refusal-{n}"},
                    headers={"Authorization": f"Bearer {KEY}"},
                )
            except httpx.TimeoutException:
                return n
    return None


async def test_a_refused_request_does_not_stall_its_connection(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", tmp_path / "server.log") as (proc, url, _):
        stalled = await trio.to_thread.run_sync(first_stall_after_an_unread_body, url)
        proc.kill()
    assert stalled is None, f"connection {stalled} got no answer"
