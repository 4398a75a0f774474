"""Player limits and self-exclusion through real clients (decisions §12): the player's
ops 850-852 over the websocket, the operator's routes over HTTP, the betslip endpoint
and the remote wallet mode; refusals with their codes, nothing changed by them, the
audit after each (the harness audits when it stops)."""

from __future__ import annotations

import uuid
from decimal import Decimal as D
from typing import Any

from domain.limits import DAY_MS
from tests.conftest import Harness, WsClient, setup_game
from tests.reliability.world import fingerprint, slip_body
from tests.test_remote_wallet import bet, shop


async def open_pool(admin: WsClient) -> tuple[str, str]:
    """(game id, pool id) of an open pool on argentina and brazil."""
    game_id = await setup_game(admin)
    pool = await admin.call(
        385, 350, game_id=game_id, pool_type="1", action="goal", targets="argentina,brazil"
    )
    return game_id, pool["pool_id"]


def one_bet_slip(game_id: str, pool_id: str, player: dict) -> dict:
    return slip_body(game_id, player["user_id"], player["session_key"], [(pool_id, "brazil", "1")])


async def refused_unchanged(h: Harness, reply: Any, code: str) -> None:
    assert reply["error_code"] == code, reply
    assert await h.audit() == []


async def test_a_player_sets_and_reads_limits_and_is_refused_past_them(harness: Harness) -> None:
    admin = await harness.user(roles=["developer"])
    alice = await harness.user(deposit="100.00")
    async with harness.connect(admin) as aws, harness.connect(alice) as ws:
        _, pool_id = await open_pool(aws)
        reply = await ws.call(851, 850, loss={"day": "20"}, deposit={"week": 50})
        assert reply["loss"] == {"day": "20.0"} and reply["deposit"] == {"week": "50.0"}
        # the 100.00 deposited an instant ago counts: nothing is left of the week's 50
        assert reply["left"] == {"deposit": {"week": "0.0"}, "loss": {"day": "20.0"}}
        assert reply["pending"] == [] and reply["excluded_until"] is None
        assert (await ws.call(392, 356, pool_id=pool_id, target="argentina", amount="15"))[
            "res"
        ] == 356
        before = await fingerprint(harness)
        reply = await ws.call(392, pool_id=pool_id, target="argentina", amount="5.01")
        assert (reply["res"], reply["error_code"]) == (666, "LIMIT_REACHED")
        assert (reply["limit"], reply["period"], reply["left"]) == ("loss", "day", D("5.0"))
        assert await fingerprint(harness) == before
        # a raise waits a day; the answer says so
        asked = harness.services.clock.now_ms()
        raised = await ws.call(851, 850, loss={"day": "100"})
        answered = harness.services.clock.now_ms()
        assert raised["loss"] == {"day": "20.0"}
        [waiting] = raised["pending"]
        assert waiting["kind"] == "loss" and waiting["period"] == "day"
        assert waiting["amount"] == "100.0"
        assert asked + DAY_MS <= waiting["from"] <= answered + DAY_MS  # a day after it was asked
        read = await ws.call(850, 850)
        assert read["left"]["loss"] == {"day": "5.0"} and read["pending"] == raised["pending"]
        # the operator reads the same
        r = await harness.http.get(f"/v1/users/{alice['user_id']}/limits")
        assert r.status_code == 200
        assert {k: r.json()[k] for k in ("loss", "deposit", "pending")} == {
            k: read[k] for k in ("loss", "deposit", "pending")
        }


async def test_bad_limits_are_refused_and_change_nothing(harness: Harness) -> None:
    alice = await harness.user()
    before = await fingerprint(harness)
    async with harness.connect(alice) as ws:
        for fields in (
            {"loss": {"year": "5"}},
            {"loss": "5"},
            {"deposit": {"day": "-1"}},
            {"deposit": {"day": "1.001"}},
            {"currency": "ZZZ", "loss": {"day": "1"}},
        ):
            reply = await ws.call(851, **fields)
            assert reply["error_code"] == "INVALID_PARAMETER", (fields, reply)
        for until in (None, harness.services.clock.now_ms() + 3_600_000):
            reply = await ws.call(852, until=until)
            assert reply["error_code"] in ("MISSING_PARAMETER", "INVALID_PARAMETER"), reply
    uid = alice["user_id"]
    for body in ({"loss": {"day": 0}}, {"deposit": []}, {"currency": 5}):
        r = await harness.http.put(f"/v1/users/{uid}/limits", json=body)
        assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_PARAMETER", r.text
    r = await harness.http.put("/v1/users/999/limits", json={"loss": {"day": "1"}})
    assert r.status_code == 404
    r = await harness.http.post(f"/v1/users/{uid}/exclusion", json={})
    assert r.status_code == 400 and r.json()["errorCode"] == "MISSING_PARAMETER"
    assert await fingerprint(harness) == before


async def test_the_ops_act_on_the_sender_only(harness: Harness) -> None:
    alice, bob = await harness.user(), await harness.user()
    async with harness.connect(alice) as ws:
        reply = await ws.call(851, 850, user_id=bob["user_id"], loss={"day": "1"})
        assert reply["user_id"] == alice["user_id"]
    r = await harness.http.get(f"/v1/users/{bob['user_id']}/limits")
    assert r.json()["loss"] == {}


async def test_the_operator_sets_limits_and_a_deposit_past_one_is_refused(
    harness: Harness,
) -> None:
    alice = await harness.user()
    uid = alice["user_id"]
    r = await harness.http.put(
        f"/v1/users/{uid}/limits", json={"currency": "EUR", "deposit": {"day": "50"}}
    )
    assert r.status_code == 200 and r.json()["deposit"] == {"day": "50.0"}
    r = await harness.http.put(f"/v1/users/{uid}/limits", json={"loss": {"week": "20"}})
    assert r.json()["deposit"] == {"day": "50.0"} and r.json()["loss"] == {"week": "20.0"}

    async def deposit(amount: str, reference: str) -> Any:
        return await harness.http.post(
            f"/v1/users/{uid}/deposits",
            json={"currency": "EUR", "amount": amount, "reference": reference},
        )

    assert (await deposit("30", "a")).status_code == 201
    before = await fingerprint(harness)
    r = await deposit("20.01", "b")
    assert r.status_code == 400 and r.json()["errorCode"] == "LIMIT_REACHED", r.text
    assert await fingerprint(harness) == before
    assert (await deposit("20", "c")).status_code == 201
    r = await harness.http.put(f"/v1/users/{uid}/limits", json={"deposit": {"day": None}})
    assert r.json()["deposit"] == {"day": "50.0"}  # a removal waits a day
    assert r.json()["pending"][0]["amount"] is None
    assert await harness.audit() == []


async def test_self_exclusion_refuses_bets_deposits_and_betslips(harness: Harness) -> None:
    admin = await harness.user(roles=["developer"])
    alice = await harness.user(deposit="10.00")
    uid = alice["user_id"]
    partner = (await harness.http.post("/v1/partners")).json()["key"]
    async with harness.connect(admin) as aws, harness.connect(alice) as ws:
        game_id, pool_id = await open_pool(aws)
        until = harness.services.clock.now_ms() + 2 * DAY_MS
        reply = await ws.call(852, 852, until=until)
        assert reply == {**reply, "user_id": uid, "excluded_until": until}
        before = await fingerprint(harness)
        reply = await ws.call(392, pool_id=pool_id, target="argentina", amount="1")
        await refused_unchanged(harness, reply, "USER_BLOCKED")
        assert reply["excluded_until"] == until
        r = await harness.http.post(
            f"/v1/users/{uid}/deposits", json={"amount": "1", "reference": "x"}
        )
        assert r.status_code == 400 and r.json()["errorCode"] == "USER_BLOCKED"
        slip = one_bet_slip(game_id, pool_id, alice)
        r = await harness.http.post(
            "/v1/betslips",
            json=slip,
            headers={"Authorization": f"Bearer {partner}", "X-Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 400 and r.json()["errorCode"] == "USER_BLOCKED", r.text
        # never shortened, by the player or the operator
        reply = await ws.call(852, until=until - 1)
        assert reply["error_code"] == "INVALID_PARAMETER"
        r = await harness.http.post(f"/v1/users/{uid}/exclusion", json={"until": until - 1})
        assert r.status_code == 400 and r.json()["excluded_until"] == until
        assert await fingerprint(harness) == before
        r = await harness.http.post(f"/v1/users/{uid}/exclusion", json={"until": until + DAY_MS})
        assert r.json() == {"user_id": uid, "excluded_until": until + DAY_MS}
        assert (await ws.call(850, 850))["excluded_until"] == until + DAY_MS


async def test_a_betslip_past_a_loss_limit_is_user_blocked_with_the_reason(
    harness: Harness,
) -> None:
    admin = await harness.user(roles=["developer"])
    alice = await harness.user(deposit="10.00")
    partner = (await harness.http.post("/v1/partners")).json()["key"]
    r = await harness.http.put(
        f"/v1/users/{alice['user_id']}/limits", json={"loss": {"day": "0.5"}}
    )
    assert r.status_code == 200
    async with harness.connect(admin) as aws:
        game_id, pool_id = await open_pool(aws)
    before = await fingerprint(harness)
    r = await harness.http.post(
        "/v1/betslips",
        json=one_bet_slip(game_id, pool_id, alice),
        headers={"Authorization": f"Bearer {partner}", "X-Idempotency-Key": str(uuid.uuid4())},
    )
    body = r.json()
    assert r.status_code == 400, r.text
    assert (body["errorCode"], body["reason"]) == ("USER_BLOCKED", "LIMIT_REACHED")
    tables = ("bets", "ledger", "limits", "users")
    assert {t: (await fingerprint(harness))[t] for t in tables} == {t: before[t] for t in tables}


async def test_remote_wallet_mode_refuses_before_asking_the_operator() -> None:
    async with shop() as s:
        alice = s.players["alice"]["user_id"]
        r = await s.h.http.put(f"/v1/users/{alice}/limits", json={"loss": {"day": "10"}})
        assert r.status_code == 200
        assert (await bet(s, "alice", "brazil", "6"))["res"] == 356
        calls = s.operator.calls["/bets"]
        reply = await bet(s, "alice", "brazil", "4.01")
        assert (reply["res"], reply["error_code"]) == (666, "LIMIT_REACHED")
        assert s.operator.calls["/bets"] == calls  # the operator was never asked
        await s.check_money()
