"""kill -9 in the middle of a match with bets in flight, then restart: every confirmed
bet is in its pool, the pools resolve correctly, and nothing is settled twice."""

from __future__ import annotations

import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from actors.registry import handshake_digest
from domain.codec import decode
from tests.conftest import WsClient, setup_game
from tests.test_crash_recovery import client, running_server

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

STAKE = Decimal("1.25")


class Match:
    """Users made over HTTP, sessions that survive restarts, websocket clients on demand."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.users: dict[str, dict[str, Any]] = {}

    async def user(self, name: str, roles: list[str], deposit: str) -> None:
        user = (await self.http.post("/v1/users", json={"name": name, "roles": roles})).json()
        user["session_key"] = (
            await self.http.post(f"/v1/users/{user['user_id']}/sessions")
        ).json()["session_key"]
        await self.http.post(
            f"/v1/users/{user['user_id']}/deposits",
            json={"currency": "EUR", "amount": deposit, "reference": f"seed-{name}"},
        )
        self.users[name] = user

    def connect(self, ws_port: int, name: str) -> Any:
        user = self.users[name]
        nonce = secrets.token_hex(8)
        digest = handshake_digest(user["user_id"], nonce, user["session_key"])
        return open_websocket_url(
            f"ws://127.0.0.1:{ws_port}/?id={user['user_id']}&n={nonce}&h={digest}"
        )


async def test_kill_9_mid_match_loses_no_confirmed_bet_and_settles_once(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    confirmed: dict[str, tuple[str, str, Decimal]] = {}  # bet id -> (player, target, stake)
    enough_confirmed = trio.Event()
    players = ["p1", "p2", "p3", "p4"]

    with trio.fail_after(120):
        async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
            match = Match(http)
            await match.user("admin", ["developer"], "1")
            for name in players:
                await match.user(name, [], "1000")
            async with match.connect(ws_port, "admin") as raw:
                admin = WsClient(raw, 0)
                game_id = await setup_game(admin)
                pool_id = (
                    await admin.call(
                        385,
                        350,
                        game_id=game_id,
                        action="goal",
                        targets="argentina,brazil",
                        takeout="0.05",
                    )
                )["pool_id"]

            async def bettor(name: str, target: str) -> None:
                async with match.connect(ws_port, name) as raw:
                    ws = WsClient(raw, 0)
                    while True:
                        reply = await ws.call(
                            392, pool_id=pool_id, target=target, amount=str(STAKE)
                        )
                        assert reply["res"] == 356, reply
                        confirmed[reply["bet_id"]] = (name, target, STAKE)
                        if len(confirmed) >= 40:
                            enough_confirmed.set()

            try:
                async with trio.open_nursery() as nursery:
                    for n, name in enumerate(players):
                        nursery.start_soon(bettor, name, "argentina" if n % 2 else "brazil")
                    with trio.fail_after(30):
                        await enough_confirmed.wait()
                    proc.kill()  # SIGKILL with bets in flight
                    await proc.wait()
            except BaseExceptionGroup as group:  # the clients lose their server: expected
                assert not group.subgroup(AssertionError), group

        async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
            match.http = http
            async with match.connect(ws_port, "admin") as raw:
                admin = WsClient(raw, 0)
                dist = await admin.call(393, 360, pool_id=pool_id)
                stored = {
                    bet_id: bet
                    for target in dist["distribution"].values()
                    for bet_id, bet in target["bets"].items()
                }
                assert set(confirmed) <= set(stored)  # every confirmed bet is back
                totals = {t: v["amount_total"] for t, v in dist["distribution"].items()}
                assert sum(totals.values()) == STAKE * len(stored)
                await admin.call(363, 333, game_id=game_id)
                event = await admin.call(
                    395, 366, game_id=game_id, action_id="goal", target_id="argentina:1"
                )
                assert event["res"] == 366
                result = await admin.expect(362)
                assert result["winning_target"] == "argentina"
                paid = sum(result["winners"].values())
                total = STAKE * len(stored)
                assert paid <= total - (total * Decimal("0.05")).quantize(Decimal("0.01"))
                assert paid > 0
            audit = (await http.get("/v1/audit")).json()
            assert audit["ok"], audit
            balances_after = {
                name: decode(
                    (await http.get(f"/v1/users/{match.users[name]['user_id']}/balances")).content
                )["EUR"]
                for name in players
            }
            proc.kill()
            await proc.wait()

        async with running_server(data_dir, log) as (proc, url, ws_port), client(url) as http:
            match.http = http
            async with match.connect(ws_port, "admin") as raw:
                admin = WsClient(raw, 0)
                again = await admin.call(396, pool_id=pool_id, target="brazil")
                assert again["res"] == 666 and again["error_code"] == "POOL_CLOSED"
            for name in players:
                r = await http.get(f"/v1/users/{match.users[name]['user_id']}/balances")
                assert decode(r.content)["EUR"] == balances_after[name]
                assert decode(r.content)["EUR"]["exposure"] == 0
            assert (await http.get("/v1/audit")).json()["ok"]
