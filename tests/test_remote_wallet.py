"""Remote wallet mode (seed 004) against a fake operator that is a real HTTP server: every
path of a debit and a credit, each ending with the money check: the operator's balances
plus tote's escrow and house are the money there was, every settled bet is credited
exactly once, and the audit passes."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from actors.registry import handshake_digest
from domain.codec import decode
from domain.remote import number_id
from tests.conftest import Harness, WsClient, running_harness, setup_game
from tests.fake_operator import FakeOperator, Mode
from tests.test_betslip_crash import provision, slip_bet
from tests.test_crash_recovery import client, running_server

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

SECRET = "s3cret-for-tests"
START = Decimal(100)


@dataclass
class Shop:
    h: Harness
    operator: FakeOperator
    admin: WsClient
    game_id: str
    pool_id: str
    players: dict[str, dict]

    async def tote_money(self) -> Decimal:
        """What tote holds: escrow and house (wallets stay at zero in remote mode)."""
        rows = await self.h.services.storage.read(
            lambda db: db.rows("SELECT account, SUM(amount) AS total FROM ledger GROUP BY account")
        )
        held = {r["account"]: r["total"] for r in rows}
        assert all(v == 0 for k, v in held.items() if k.startswith("wallet:")), held
        return (
            Decimal(sum(v for k, v in held.items() if k.startswith("escrow:") or k == "house"))
            / 100
        )

    async def check_money(self) -> None:
        total = START * len(self.players)
        assert self.operator.total() + await self.tote_money() == total
        assert await self.h.audit() == []

    async def settled_once(self) -> None:
        """Every settled bet credited exactly once at the operator, once the outbox drains."""
        bets = await self.h.services.storage.read(
            lambda db: db.rows("SELECT id FROM bets WHERE status != 'active'")
        )
        uids = {number_id(row["id"]) for row in bets}
        await self.operator.wait_until(lambda: all(self.operator.credited[u] for u in uids))
        assert all(self.operator.credited[u] == 1 for u in uids)


@asynccontextmanager
async def shop(**settings: object) -> AsyncIterator[Shop]:
    operator = FakeOperator(SECRET)
    async with trio.open_nursery() as nursery:
        await nursery.start(operator.serve)
        # generous times: a busy machine must not turn a good answer into an unknown one
        chosen = {"wallet_timeout": 5.0, "request_timeout": 20.0, **settings}
        async with running_harness(
            wallet_url=operator.url, wallet_secret=SECRET, wallet_retry_seconds=0.02, **chosen
        ) as h:
            admin = await h.user(roles=["developer"])
            players = {name: await h.user() for name in ("alice", "bob")}
            for user in players.values():
                operator.balances[user["user_id"]] = START
            async with h.connect(admin) as admin_ws:
                game_id = await setup_game(admin_ws)
                pool = await admin_ws.call(
                    385,
                    350,
                    game_id=game_id,
                    pool_type="1",
                    action="goal",
                    targets="argentina,brazil",
                )
                yield Shop(h, operator, admin_ws, game_id, pool["pool_id"], players)
        nursery.cancel_scope.cancel()


async def bet(s: Shop, name: str, target: str, amount: str) -> dict:
    async with s.h.connect(s.players[name]) as ws:
        return await ws.call(392, pool_id=s.pool_id, target=target, amount=amount)


async def test_bets_are_debited_then_every_one_is_settled_and_credited_once() -> None:
    async with shop() as s:
        assert (await bet(s, "alice", "brazil", "10"))["res"] == 356
        assert (await bet(s, "bob", "argentina", "30"))["res"] == 356
        assert s.operator.balances[s.players["alice"]["user_id"]] == 90
        await s.check_money()
        await s.admin.call(395, 366, game_id=s.game_id, action_id="goal", target_id="brazil:7")
        await s.settled_once()
        assert s.operator.balances[s.players["alice"]["user_id"]] == 130
        assert s.operator.balances[s.players["bob"]["user_id"]] == 70  # lost: credited 0
        assert s.operator.bad_signatures == 0
        await s.check_money()
        audit = (await s.h.http.get("/v1/audit")).json()
        assert audit["callbacks"]["pending"] == 0


async def test_a_refused_debit_places_nothing_and_says_why() -> None:
    async with shop() as s:
        s.operator.modes["/bets"].append(Mode.REFUSE)
        reply = await bet(s, "alice", "brazil", "10")
        assert (reply["res"], reply["error_code"]) == (666, "INSUFFICIENT_FUNDS")
        assert reply["text"] == "Not enough money"
        reply = await bet(s, "alice", "brazil", "101")  # more than the operator holds
        assert reply["error_code"] == "INSUFFICIENT_FUNDS"
        assert (
            await s.h.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM bets")) == 0
        )
        await s.check_money()


async def test_failures_and_lost_answers_are_retried_with_one_key_and_debit_once() -> None:
    async with shop() as s:
        for mode in (Mode.FAIL, Mode.DROP):
            s.operator.modes["/bets"].append(mode)
            assert (await bet(s, "alice", "brazil", "5"))["res"] == 356
        assert s.operator.balances[s.players["alice"]["user_id"]] == 90
        assert sorted(s.operator.debited.values()) == [1, 1]
        await s.check_money()


async def test_a_debit_the_operator_is_slow_to_answer_holds_up_no_other_bet() -> None:
    """The pool debits outside its serve loop: while alice's debit waits at the operator,
    bob's bet in the same pool is placed, and alice's bet still counts as hers (one
    target per pool); once the operator answers, hers is placed too."""
    async with shop() as s:
        s.operator.modes["/bets"].append(Mode.HOLD)
        placed: dict[str, dict] = {}

        async def alice_bets() -> None:
            placed["alice"] = await bet(s, "alice", "brazil", "10")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(alice_bets)
            await s.operator.wait_until(lambda: s.operator.misbehaved[Mode.HOLD] == 1)
            assert (await bet(s, "bob", "argentina", "30"))["res"] == 356
            other = await bet(s, "alice", "argentina", "5")
            assert (other["res"], other["error_code"]) == (666, "INVALID_TARGET")
            assert "alice" not in placed
            s.operator.proceed.set()
        assert placed["alice"]["res"] == 356
        assert s.operator.balances[s.players["alice"]["user_id"]] == 90
        await s.check_money()


async def test_a_debit_of_unknown_fate_is_not_placed_and_is_given_back() -> None:
    # 9 calls that never answer outlast the player's 1 s however slow the machine is
    async with shop(wallet_timeout=0.3, request_timeout=2.0) as s:
        # applied, then no answer, then no answer again until the player's time is up
        s.operator.modes["/bets"].extend([Mode.LATE, *[Mode.HANG] * 8])
        reply = await bet(s, "alice", "brazil", "10")
        assert (reply["res"], reply["error_code"]) == (666, "REQUEST_TIMED_OUT")
        alice = s.players["alice"]["user_id"]
        s.operator.modes["/bets"].clear()
        await s.operator.wait_until(lambda: s.operator.balances[alice] == START)
        assert (
            await s.h.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM bets")) == 0
        )
        await s.check_money()


async def test_credits_wait_for_an_operator_that_is_down() -> None:
    async with shop() as s:
        assert (await bet(s, "alice", "brazil", "10"))["res"] == 356
        s.operator.down = True
        await s.admin.call(395, 366, game_id=s.game_id, action_id="goal", target_id="brazil:7")
        await s.operator.wait_until(lambda: s.operator.calls["/winners"] >= 3)
        audit = (await s.h.http.get("/v1/audit")).json()
        assert audit["callbacks"]["pending"] == 1 and audit["callbacks"]["max_attempts"] >= 1
        s.operator.down = False
        await s.settled_once()
        await s.check_money()


async def test_deposits_and_balances_belong_to_the_operator() -> None:
    async with shop() as s:
        alice = s.players["alice"]["user_id"]
        r = await s.h.http.post(
            f"/v1/users/{alice}/deposits", json={"amount": "5", "reference": "x"}
        )
        assert (r.status_code, r.json()["errorCode"]) == (409, "REMOTE_WALLET")
        assert (await bet(s, "alice", "brazil", "10"))["res"] == 356
        balances = decode((await s.h.http.get(f"/v1/users/{alice}/balances")).content)
        assert balances == {"EUR": {"exposure": Decimal(10)}}
        async with s.h.connect(s.players["alice"]) as ws:
            assert (await ws.call(800))["error_code"] == "REMOTE_WALLET"
            assert (await ws.call(840, 840))["exposure"] == 10


async def test_payouts_owed_across_a_kill_9_arrive_exactly_once(tmp_path: Path) -> None:
    """Settle while the operator is down, kill -9 tote, restart it, bring the operator
    up: every bet is credited exactly once, and the money adds up."""
    operator = FakeOperator(SECRET)
    log = tmp_path / "server.log"
    async with trio.open_nursery() as nursery:
        await nursery.start(operator.serve)
        flags = (
            f"--wallet-url={operator.url}",
            f"--wallet-secret={SECRET}",
            "--wallet-retry-seconds=0.05",
        )
        async with running_server(tmp_path, log, *flags) as (proc, url, ws_port):
            async with client(url) as http:
                players, (game_id, *pools) = await provision(http, ws_port)
                for player in players:
                    operator.balances[player["user_id"]] = START
                placed = 0
                for i, player in enumerate(players):
                    bets = [
                        slip_bet(game_id, pools[0], "brazil", str(i + 1)),
                        slip_bet(game_id, pools[1], "brazil:7", "2"),
                    ]
                    r = await post_slip(http, player, bets)
                    assert r.status_code == 200, r.text
                    placed += len(bets)
                operator.down = True
                await settle(http, ws_port, game_id)
                await operator.wait_until(lambda: operator.calls["/winners"] >= 2)
            proc.kill()  # kill -9 with every payout still owed
        operator.down = False
        async with running_server(tmp_path, log, *flags) as (_, url, _), client(url) as http:
            await operator.wait_until(lambda: len(operator.credited) == placed)
            audit = (await http.get("/v1/audit")).json()
            assert audit["ok"] is True, audit
        assert sorted(operator.credited.values()) == [1] * placed
        assert operator.total() == START * len(players)  # paid out whole: no takeout
        nursery.cancel_scope.cancel()


async def post_slip(http: httpx.AsyncClient, player: dict, bets: list[dict]) -> httpx.Response:
    """POST /v1/betslips: ``bets`` as one slip of ``player``, under a fresh key."""
    body = {
        "requestId": str(uuid.uuid4()),
        "userId": str(player["user_id"]),
        "sessionToken": player["session_key"],
        "timestamp": "1795000000000",
        "bets": bets,
    }
    return await http.post(
        "/v1/betslips", json=body, headers={"X-Idempotency-Key": str(uuid.uuid4())}
    )


async def settle(http: httpx.AsyncClient, ws_port: int, game_id: str) -> None:
    """The event that resolves both pools, sent by the game's admin (user 1)."""
    key = (await http.post("/v1/users/1/sessions")).json()["session_key"]
    nonce = secrets.token_hex(8)
    url = f"ws://127.0.0.1:{ws_port}/?id=1&n={nonce}&h={handshake_digest(1, nonce, key)}"
    async with open_websocket_url(url) as ws:
        admin = WsClient(ws, 1)
        await admin.call(395, 366, game_id=game_id, action_id="goal", target_id="brazil:7")


async def test_a_betslip_is_one_debit_and_a_refusal_is_its_insufficient_funds() -> None:
    async with shop() as s:
        alice = s.players["alice"]

        def body(*stakes: str) -> dict:
            return {
                "requestId": str(uuid.uuid4()),
                "userId": str(alice["user_id"]),
                "sessionToken": alice["session_key"],
                "timestamp": "1795000000000",
                "bets": [slip_bet(s.game_id, s.pool_id, "brazil", stake) for stake in stakes],
            }

        async def post(slip: dict) -> httpx.Response:
            return await s.h.http.post(
                "/v1/betslips", json=slip, headers={"X-Idempotency-Key": str(uuid.uuid4())}
            )

        before = s.operator.calls["/bets"]
        assert (await post(body("3", "4"))).status_code == 200
        assert s.operator.calls["/bets"] == before + 1  # the whole slip in one call
        assert s.operator.balances[alice["user_id"]] == 93
        s.operator.modes["/bets"].append(Mode.REFUSE)
        r = await post(body("1"))
        assert (r.status_code, r.json()["errorCode"], r.json()["errorMessage"]) == (
            400,
            "INSUFFICIENT_FUNDS",
            "Not enough money",
        )
        assert (await s.h.http.get(f"/v1/users/{alice['user_id']}/balances")).json() == {
            "EUR": {"exposure": 7.0}
        }
        await s.check_money()
