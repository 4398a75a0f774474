"""kill -9 the real server while betslips are being placed, restart it: every slip is
whole or absent, a replay of an answered key answers byte for byte what it answered
before, a replay of an unanswered one finishes it once, and the books balance."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from actors.registry import handshake_digest
from domain.codec import decode
from tests.conftest import WsClient, setup_game
from tests.test_crash_recovery import client, running_server

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

SLIPS = 24
ANSWERED_BEFORE_KILL = 8


def slip_bet(game_id: str, pool_id: str, target: str, stake: str) -> dict[str, Any]:
    labels = (
        "sportId",
        "sportName",
        "sportDisplayName",
        "eventName",
        "eventDisplayName",
        "competitionId",
        "competitionName",
        "competitionDisplayName",
        "marketName",
        "marketDisplayName",
        "selectionName",
        "selectionDisplayName",
    )
    return {
        **{label: label.lower() for label in labels},
        "betId": str(uuid.uuid4()),
        "eventId": game_id,
        "eventStage": "IN_PLAY",
        "marketTypeId": "goal",
        "marketId": pool_id,
        "marketStage": "IN_PLAY",
        "selectionId": target,
        "decimalPrice": "1.9",
        "stake": stake,
    }


async def provision(http: httpx.AsyncClient, ws_port: int) -> tuple[list[dict], list[str]]:
    """A live game with two pools, and players with money and a session each."""
    admin = (await http.post("/v1/users", json={"name": "admin", "roles": ["developer"]})).json()
    key = (await http.post(f"/v1/users/{admin['user_id']}/sessions")).json()["session_key"]
    nonce = secrets.token_hex(8)
    url = (
        f"ws://127.0.0.1:{ws_port}/?id={admin['user_id']}&n={nonce}"
        f"&h={handshake_digest(admin['user_id'], nonce, key)}"
    )
    async with open_websocket_url(url) as ws:
        admin_ws = WsClient(ws, admin["user_id"])
        game_id = await setup_game(admin_ws)
        pools = [
            (
                await admin_ws.call(
                    385, 350, game_id=game_id, pool_type="1", action="goal", targets=targets
                )
            )["pool_id"]
            for targets in ("argentina,brazil", "argentina:1,brazil:7")
        ]
    players = []
    for i in range(4):
        user = (await http.post("/v1/users", json={"name": f"p{i}"})).json()
        user["session_key"] = (await http.post(f"/v1/users/{user['user_id']}/sessions")).json()[
            "session_key"
        ]
        await http.post(
            f"/v1/users/{user['user_id']}/deposits",
            json={"currency": "EUR", "amount": "1000", "reference": f"d{i}"},
        )
        players.append(user)
    return players, [game_id, *pools]


async def test_slips_are_whole_or_absent_after_kill_9(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    slips: list[tuple[str, dict[str, Any]]] = []
    answered: dict[str, httpx.Response] = {}
    async with running_server(tmp_path, log) as (proc, url, ws_port), client(url) as http:
        players, (game_id, teams, scorers) = await provision(http, ws_port)
        for i in range(SLIPS):
            player = players[i % len(players)]
            body = {
                "requestId": str(uuid.uuid4()),
                "userId": str(player["user_id"]),
                "sessionToken": player["session_key"],
                "timestamp": "1795000000000",
                "bets": [
                    slip_bet(game_id, teams, "brazil", "1.25"),
                    slip_bet(game_id, scorers, "brazil:7", "2"),
                ],
            }
            slips.append((str(uuid.uuid4()), body))
        enough = trio.Event()

        async def place(key: str, body: dict[str, Any]) -> None:
            try:
                r = await http.post("/v1/betslips", json=body, headers={"X-Idempotency-Key": key})
            except httpx.HTTPError:
                return  # the server died under it: unknown, replayed below
            answered[key] = r
            if len(answered) >= ANSWERED_BEFORE_KILL:
                enough.set()

        async with trio.open_nursery() as nursery:
            for key, body in slips:
                nursery.start_soon(place, key, body)
            await enough.wait()
            proc.kill()  # kill -9 with slips in flight
    async with running_server(tmp_path, log) as (_, url, _), client(url) as http:
        for key, body in slips:
            replay = await http.post("/v1/betslips", json=body, headers={"X-Idempotency-Key": key})
            assert replay.status_code == 200, replay.text
            if key in answered and answered[key].status_code == 200:
                assert replay.content == answered[key].content
            again = await http.post("/v1/betslips", json=body, headers={"X-Idempotency-Key": key})
            assert again.content == replay.content
        audit = (await http.get("/v1/audit")).json()
        assert audit["ok"] is True, audit
        for player in players:
            balance = decode((await http.get(f"/v1/users/{player['user_id']}/balances")).content)
            assert balance["EUR"]["exposure"] == Decimal("19.5")  # six slips each, once
