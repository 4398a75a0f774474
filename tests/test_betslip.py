"""POST /v1/betslips (seed 002) through a real HTTP client: every answer code, all or
none, idempotency, and that a placed slip is a bet like any other (360, 815, settlement).
Each refusal checks that nothing changed, and each test ends with the audit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio

from domain.codec import decode, encode
from domain.errors import DomainError
from tests.conftest import Harness, WsClient, setup_game

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines

D = Decimal


@dataclass
class Book:
    """Two live games with pools, an admin subscribed to both, and a player with money."""

    h: Harness
    admin: WsClient
    games: list[str]
    pools: dict[str, tuple[str, str]]  # name -> (game id, pool id)
    player: dict[str, Any]

    def bet(self, pool: str, target: str, stake: Any, **fields: Any) -> dict[str, Any]:
        game_id, pool_id = self.pools[pool]
        return {
            "betId": str(uuid.uuid4()),
            "sportId": "1",
            "sportName": "football",
            "sportDisplayName": "Football",
            "eventId": game_id,
            "eventName": "a-b",
            "eventDisplayName": "A - B",
            "eventStage": "IN_PLAY",
            "competitionId": "c1",
            "competitionName": "cup",
            "competitionDisplayName": "Cup",
            "marketTypeId": "goal",
            "marketId": pool_id,
            "marketName": "next-goal",
            "marketDisplayName": "Next goal",
            "marketStage": "IN_PLAY",
            "selectionId": target,
            "selectionName": target,
            "selectionDisplayName": target.title(),
            "decimalPrice": "2.5",
            "stake": stake,
            **fields,
        }

    def slip(self, *bets: dict[str, Any], user: dict[str, Any] | None = None) -> dict:
        user = user or self.player
        return {
            "requestId": str(uuid.uuid4()),
            "userId": str(user["user_id"]),
            "sessionToken": user["session_key"],
            "timestamp": str(self.h.services.clock.now_ms()),
            "bets": list(bets),
        }

    async def post(
        self, body: Any, key: str | None = None, *, auth: str | None = None
    ) -> httpx.Response:
        headers = {"X-Idempotency-Key": key or str(uuid.uuid4())}
        if auth is not None:
            headers["Authorization"] = f"Bearer {auth}"
        headers["Content-Type"] = "application/json"
        return await self.h.http.post("/v1/betslips", content=encode(body), headers=headers)

    async def balance(self, user: dict[str, Any] | None = None) -> dict[str, Decimal]:
        user = user or self.player
        r = await self.h.http.get(f"/v1/users/{user['user_id']}/balances")
        return decode(r.content).get("EUR", {})

    async def state(self) -> tuple[Any, ...]:
        """What a refused slip must leave unchanged: balances, bets and ledger lines."""
        counts = await self.h.services.storage.read(
            lambda db: (
                db.scalar("SELECT COUNT(*) FROM bets"),
                db.scalar("SELECT COUNT(*) FROM ledger"),
            )
        )
        return (await self.balance(), counts)


@asynccontextmanager
async def book(h: Harness) -> AsyncIterator[Book]:
    admin = await h.user(roles=["developer"])
    async with AsyncExitStack() as stack:
        admin_ws = await stack.enter_async_context(h.connect(admin))
        games = [await setup_game(admin_ws), await setup_game(admin_ws)]
        pools = {}
        for name, game_id, fields in (
            ("teams", games[0], {"targets": "argentina,brazil", "max_stake": "20"}),
            ("players", games[0], {"targets": "argentina:1,brazil:7"}),
            ("other", games[1], {"targets": "argentina,brazil", "min_stake": "2"}),
        ):
            created = await admin_ws.call(
                385, 350, game_id=game_id, pool_type="1", action="goal", **fields
            )
            pools[name] = (game_id, created["pool_id"])
        player = await h.user(deposit="100.00")
        yield Book(h, admin_ws, games, pools, player)


async def test_a_slip_over_two_games_and_three_pools_is_placed_whole(harness: Harness) -> None:
    async with book(harness) as b:
        bets = [
            b.bet("teams", "brazil", "10"),
            b.bet("players", "brazil:7", D("5.5"), decimalPrice=D("3.25")),
            b.bet("other", "argentina", 4),
        ]
        slip = b.slip(*bets)
        r = await b.post(slip)
        assert r.status_code == 200, r.text
        answer = decode(r.content)
        assert answer["status"] == "PLACED"
        assert (answer["requestId"], answer["userId"], answer["sessionToken"]) == (
            slip["requestId"],
            slip["userId"],
            slip["sessionToken"],
        )
        assert answer["timestamp"].isdigit()
        assert [a["betId"] for a in answer["bets"]] == [bet["betId"] for bet in bets]
        assert [a["potentialPayout"] for a in answer["bets"]] == [D("25"), D("17.875"), D("10")]
        assert await b.balance() == {
            "current": D("100"),
            "available": D("80.5"),
            "exposure": D("19.5"),
        }
        # the pools took them like any bet: 360 to the subscribers, 393 shows them
        seen = {m["pool_id"] for m in await b.admin.drain(0.3) if m["res"] == 360}
        assert seen == {pool_id for _, pool_id in b.pools.values()}
    assert await harness.audit() == []


async def test_one_bad_bet_places_nothing_and_lists_it(harness: Harness) -> None:
    async with book(harness) as b:
        before = await b.state()
        good = b.bet("teams", "brazil", "10")
        unknown_target = b.bet("players", "nobody:9", "1")
        wrong_game = b.bet("other", "brazil", "3", eventId=b.games[0])
        r = await b.post(b.slip(good, unknown_target, wrong_game))
        assert r.status_code == 400
        body = decode(r.content)
        assert (body["status"], body["errorCode"]) == ("FAILURE", "INVALID_BET_DETAILS")
        assert {f["betId"] for f in body["failedBets"]} == {
            unknown_target["betId"],
            wrong_game["betId"],
        }
        assert await b.state() == before
    assert await harness.audit() == []


async def test_stake_limits_are_invalid_stake_with_the_limit(harness: Harness) -> None:
    async with book(harness) as b:
        before = await b.state()
        too_much = b.bet("teams", "brazil", "25")
        too_little = b.bet("other", "brazil", "1")
        r = await b.post(b.slip(too_much, too_little))
        body = decode(r.content)
        assert (r.status_code, body["errorCode"]) == (400, "INVALID_STAKE")
        reasons = {f["betId"]: f["reason"] for f in body["failedBets"]}
        assert reasons == {
            too_much["betId"]: {"maxStake": D("20")},
            too_little["betId"]: {"minStake": D("2")},
        }
        assert await b.state() == before
    assert await harness.audit() == []


async def test_each_refusal_has_the_seeds_code_and_changes_nothing(harness: Harness) -> None:
    async with book(harness) as b:
        stranger = await harness.user(deposit="1.00")
        before = await b.state()
        cases: list[tuple[dict[str, Any], int, str]] = [
            (
                {**b.slip(b.bet("teams", "brazil", "1")), "sessionToken": "nope"},
                401,
                "INVALID_SESSION",
            ),
            (
                {**b.slip(b.bet("teams", "brazil", "1")), "sessionToken": stranger["session_key"]},
                401,
                "INVALID_SESSION",
            ),
            ({**b.slip(b.bet("teams", "brazil", "1")), "userId": "999999"}, 400, "INVALID_USER"),
            ({**b.slip(b.bet("teams", "brazil", "1")), "userId": "٣"}, 400, "INVALID_USER"),
            (
                {k: v for k, v in b.slip(b.bet("teams", "brazil", "1")).items() if k != "bets"},
                400,
                "MISSING_PARAMETER",
            ),
            (
                b.slip(
                    {k: v for k, v in b.bet("teams", "brazil", "1").items() if k != "sportName"}
                ),
                400,
                "MISSING_PARAMETER",
            ),
            (
                b.slip(b.bet("teams", "brazil", "1", eventStage="PRE_PLAY")),
                400,
                "INVALID_BET_DETAILS",
            ),
            (b.slip(b.bet("teams", "brazil", "1", decimalPrice="0.5")), 400, "INVALID_BET_DETAILS"),
            (
                b.slip(b.bet("teams", "brazil", "1", marketTypeId="offside")),
                400,
                "INVALID_BET_DETAILS",
            ),
            (
                b.slip(b.bet("teams", "brazil", "5"), b.bet("teams", "argentina", "5")),
                400,
                "INVALID_BET_DETAILS",
            ),
            (b.slip(b.bet("teams", "brazil", "1.001")), 400, "INVALID_STAKE"),
            (b.slip(b.bet("teams", "brazil", "-1")), 400, "INVALID_STAKE"),
            (
                b.slip(b.bet("teams", "brazil", "20"), b.bet("other", "brazil", "90")),
                400,
                "INSUFFICIENT_FUNDS",
            ),
        ]
        for body, status, code in cases:
            r = await b.post(body)
            assert (r.status_code, decode(r.content)["errorCode"]) == (status, code), (body, r.text)
            assert await b.state() == before
        r = await b.post(b.slip(b.bet("teams", "brazil", "1")), auth="not-a-key")
        assert (r.status_code, decode(r.content)["errorCode"]) == (403, "AUTHENTICATION_FAILED")
        r = await harness.http.post("/v1/betslips", json=b.slip(b.bet("teams", "brazil", "1")))
        assert (r.status_code, decode(r.content)["errorCode"]) == (400, "MISSING_PARAMETER")
        await harness.http.post(f"/v1/users/{b.player['user_id']}/block")
        r = await b.post(b.slip(b.bet("teams", "brazil", "1")))
        assert (r.status_code, decode(r.content)["errorCode"]) == (400, "USER_BLOCKED")
        assert await b.state() == before
    assert await harness.audit() == []


async def test_the_same_key_answers_the_same_bytes_and_places_once(harness: Harness) -> None:
    async with book(harness) as b:
        slip, key = b.slip(b.bet("teams", "brazil", "3")), str(uuid.uuid4())
        answers: list[httpx.Response] = []

        async def send() -> None:
            answers.append(await b.post(slip, key))

        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(send)
        placed = [r for r in answers if r.status_code == 200]
        busy = [r for r in answers if r.status_code == 409]
        assert len(placed) + len(busy) == 100 and placed
        assert {r.content for r in placed} == {placed[0].content}
        assert {decode(r.content)["errorCode"] for r in busy} <= {"REQUEST_IN_PROGRESS"}
        again = await b.post(slip, key)
        assert (again.status_code, again.content) == (200, placed[0].content)
        assert (await b.balance())["exposure"] == D("3")
        # the same key with another body executes nothing
        other = await b.post(b.slip(b.bet("teams", "brazil", "4")), key)
        assert (other.status_code, decode(other.content)["errorCode"]) == (
            422,
            "IDEMPOTENCY_KEY_REUSED",
        )
        # a refusal is final too: the same key is refused the same way
        refused_key = str(uuid.uuid4())
        refused_slip = b.slip(b.bet("teams", "nobody", "1"))
        first = await b.post(refused_slip, refused_key)
        assert first.status_code == 400
        assert (await b.post(refused_slip, refused_key)).content == first.content
        assert (await b.balance())["exposure"] == D("3")
    assert await harness.audit() == []


async def test_a_partner_key_places_slips_until_revoked(harness: Harness) -> None:
    async with book(harness) as b:
        r = await harness.http.post("/v1/partners")
        assert r.status_code == 201
        partner = r.json()
        placed = await b.post(b.slip(b.bet("teams", "brazil", "1")), auth=partner["key"])
        assert placed.status_code == 200, placed.text
        # the partner key opens nothing else
        r = await harness.http.get(
            f"/v1/users/{b.player['user_id']}/balances",
            headers={"Authorization": f"Bearer {partner['key']}"},
        )
        assert r.status_code == 401
        assert (
            await harness.http.delete(f"/v1/partners/{partner['partner_id']}")
        ).status_code == 200
        refused = await b.post(b.slip(b.bet("teams", "brazil", "1")), auth=partner["key"])
        assert refused.status_code == 403
    assert await harness.audit() == []


async def test_slips_and_websocket_bets_never_spend_more_than_the_balance(
    harness: Harness,
) -> None:
    async with book(harness) as b, harness.connect(b.player) as ws:
        outcomes: list[int] = []

        async def slip() -> None:
            r = await b.post(b.slip(b.bet("teams", "brazil", "7"), b.bet("other", "brazil", "7")))
            outcomes.append(r.status_code)

        async def ws_bets() -> None:  # one connection answers in order: one after another
            for _ in range(8):
                reply = await ws.call(
                    392, pool_id=b.pools["players"][1], target="brazil:7", amount="9"
                )
                outcomes.append(reply["res"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws_bets)
            for _ in range(8):
                nursery.start_soon(slip)
        balance = await b.balance()
        assert balance["available"] >= 0
        assert balance["current"] == D("100")
        assert 0 < balance["exposure"] <= D("100")
        placed = 14 * outcomes.count(200) + 9 * outcomes.count(356)
        assert balance["exposure"] == placed
        assert 666 in outcomes or 400 in outcomes  # 8 * 14 + 8 * 9 > 100: some were refused
    assert await harness.audit() == []


async def test_a_placed_slip_is_settled_like_any_bet(harness: Harness) -> None:
    async with book(harness) as b:
        other = await harness.user(deposit="50.00")
        game_id, _ = b.pools["teams"]
        assert (await b.post(b.slip(b.bet("teams", "brazil", "10")))).status_code == 200
        assert (
            await b.post(b.slip(b.bet("teams", "argentina", "10"), user=other))
        ).status_code == 200
        await b.admin.call(395, 366, game_id=game_id, action_id="goal", target_id="brazil:7")
        assert await b.balance() == {"current": D("110"), "available": D("110"), "exposure": D("0")}
        assert (await b.balance(other))["current"] == D("40")
    assert await harness.audit() == []


async def test_a_cool_down_refuses_slips_and_websocket_bets_until_it_ends(
    harness: Harness,
) -> None:
    async with book(harness) as b, harness.connect(b.player) as ws:
        now = harness.services.clock.now_ms()
        user = b.player["user_id"]
        r = await harness.http.post(f"/v1/users/{user}/cooldown", json={"until": now + 3_600_000})
        assert r.status_code == 200, r.text
        before = await b.state()
        r = await b.post(b.slip(b.bet("teams", "brazil", "1")))
        assert (r.status_code, decode(r.content)["errorCode"]) == (400, "USER_BLOCKED")
        reply = await ws.call(392, pool_id=b.pools["teams"][1], target="brazil", amount="1")
        assert (reply["res"], reply["error_code"]) == (666, "USER_BLOCKED")
        assert await b.state() == before
        for bad in ({}, {"until": "soon"}, {"until": 10**20}):
            r = await harness.http.post(f"/v1/users/{user}/cooldown", json=bad)
            assert r.status_code == 400, (bad, r.text)
        await harness.http.post(f"/v1/users/{user}/cooldown", json={"until": now - 1})
        assert (await b.post(b.slip(b.bet("teams", "brazil", "1")))).status_code == 200
    assert await harness.audit() == []


async def test_max_liability_per_user_per_pool_counts_every_way_of_betting(
    harness: Harness,
) -> None:
    async with book(harness) as b, harness.connect(b.player) as ws:
        created = await b.admin.call(
            385,
            350,
            game_id=b.games[1],
            pool_type="1",
            action="goal",
            targets="argentina,brazil",
            max_liability="10",
        )
        b.pools["capped"] = (b.games[1], created["pool_id"])
        assert (await b.post(b.slip(b.bet("capped", "brazil", "6")))).status_code == 200
        reply = await ws.call(392, pool_id=created["pool_id"], target="brazil", amount="5")
        assert (reply["res"], reply["error_code"]) == (666, "INVALID_STAKE")
        r = await b.post(b.slip(b.bet("capped", "brazil", "4.01")))
        body = decode(r.content)
        assert (r.status_code, body["errorCode"]) == (400, "INVALID_STAKE")
        assert body["failedBets"][0]["reason"] == {"maxStake": D("4")}
        assert await ws.call(392, 356, pool_id=created["pool_id"], target="brazil", amount="4")
        assert (await b.balance())["exposure"] == D("10")
    assert await harness.audit() == []


async def test_server_faults_are_500_or_503_and_not_kept(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with book(harness) as b:
        before = await b.state()
        slip, key = b.slip(b.bet("teams", "brazil", "1")), str(uuid.uuid4())
        desk = harness.services.betslips
        faults = iter([DomainError("UNAVAILABLE", "storage is restarting"), RuntimeError("bug")])

        async def failing(key: str) -> None:
            raise next(faults)

        monkeypatch.setattr(desk, "_stored", failing)
        r = await b.post(slip, key)
        assert (r.status_code, decode(r.content)["errorCode"]) == (503, "REQUEST_TIMED_OUT")
        r = await b.post(slip, key)
        assert (r.status_code, decode(r.content)["errorCode"]) == (500, "GENERAL_EXCEPTION")
        assert await b.state() == before
        monkeypatch.undo()
        assert (await b.post(slip, key)).status_code == 200  # neither answer was kept
    assert await harness.audit() == []
