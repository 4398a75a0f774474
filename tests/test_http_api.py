"""The operator HTTP API over real HTTP on loopback: every call, every refusal.

Each refusal is checked for the seed-002 error body and for having changed nothing: the
user's balances and the number of ledger lines are the same before and after.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
import pytest
import trio

from actors.registry import OpenSource, SourcesOf
from domain.codec import decode
from tests.conftest import Harness
from transport.http import MAX_BODY_BYTES, create_app

# -- helpers --------------------------------------------------------------------------


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = decode(r.content)
    assert body["status"] == "FAILURE"
    assert body["errorCode"] == code, body
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    return body


async def new_user(h: Harness, **fields: Any) -> int:
    r = await h.http.post("/v1/users", json={"name": f"u-{secrets.token_hex(4)}", **fields})
    assert r.status_code == 201, r.text
    return r.json()["user_id"]


async def deposit(
    h: Harness,
    user_id: int,
    amount: Any,
    *,
    currency: str = "EUR",
    reference: str | None = None,
    kind: str = "deposits",
) -> httpx.Response:
    return await h.http.post(
        f"/v1/users/{user_id}/{kind}",
        json={
            "currency": currency,
            "amount": amount,
            "reference": reference or secrets.token_hex(8),
        },
    )


async def state(h: Harness, user_id: int) -> tuple[str, int]:
    """The raw balances text and the ledger line count: what a refusal must not change."""
    r = await h.http.get(f"/v1/users/{user_id}/balances")
    assert r.status_code == 200, r.text
    audit = await h.http.get("/v1/audit")
    return r.text, audit.json()["lines"]


@pytest.fixture
async def anon(harness: Harness) -> Any:
    """A client with no operator key."""
    async with httpx.AsyncClient(base_url=str(harness.http.base_url)) as client:
        yield client


# -- health and documents -------------------------------------------------------------


async def test_healthz_and_readyz_need_no_key(harness: Harness, anon: httpx.AsyncClient) -> None:
    assert (await anon.get("/healthz")).json() == {"status": "ok"}
    assert (await anon.get("/readyz")).json() == {"status": "ready"}


async def test_openapi_describes_every_route(harness: Harness, anon: httpx.AsyncClient) -> None:
    r = await anon.get("/openapi.json")
    assert r.status_code == 200
    doc = decode(r.content)
    assert doc["openapi"].startswith("3.1")
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in create_app(harness.services).url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes
    assert "Error" in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "200" in op["responses"] or "201" in op["responses"], (path, method)
            public = path.startswith(("/gaming-products", "/draws/", "/web/")) or path == "/"
            open_paths = ("/healthz", "/readyz", "/openapi.json", "/v1/login", "/metrics")
            if path not in open_paths and not public:
                assert op["security"] == [{"operator": []}], (path, method)


async def test_unknown_route_and_wrong_method_answer_json(harness: Harness) -> None:
    assert_error(await harness.http.get("/v1/nothing-here"), 404, "NOT_FOUND")
    assert_error(await harness.http.get("/v1/users/abc/balances"), 404, "NOT_FOUND")
    r = await harness.http.delete("/v1/users")
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in r.headers["allow"]


# -- operator auth --------------------------------------------------------------------

OPERATOR_CALLS = [
    ("POST", "/v1/users", {"name": "mallory"}),
    ("POST", "/v1/users/1/sessions", None),
    ("POST", "/v1/users/1/deposits", {"currency": "EUR", "amount": "5", "reference": "x"}),
    ("POST", "/v1/users/1/withdrawals", {"currency": "EUR", "amount": "5", "reference": "y"}),
    ("GET", "/v1/users/1/balances", None),
    ("POST", "/v1/users/1/block", None),
    ("POST", "/v1/users/1/unblock", None),
    ("POST", "/v1/sources/s/admins", {"user_id": 1}),
    ("GET", "/v1/audit", None),
]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer", ""])
@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_CALLS)
async def test_operator_calls_need_the_operator_key(
    harness: Harness,
    anon: httpx.AsyncClient,
    authorization: str | None,
    method: str,
    path: str,
    body: Any,
) -> None:
    user_id = await new_user(harness)
    assert user_id == 1
    assert (await deposit(harness, user_id, "10")).status_code == 201
    before = await state(harness, user_id)
    headers = {} if authorization is None else {"Authorization": authorization}
    r = await anon.request(method, path, json=body, headers=headers)
    assert_error(r, 401, "AUTHENTICATION_FAILED")
    assert await state(harness, user_id) == before
    users = await harness.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM users"))
    assert users == 1


# -- users ----------------------------------------------------------------------------


async def test_create_user(harness: Harness) -> None:
    r = await harness.http.post(
        "/v1/users", json={"name": "ann", "password": "secret", "roles": ["player", "developer"]}
    )
    assert r.status_code == 201
    assert r.json() == {"user_id": 1, "name": "ann", "roles": ["developer", "player"]}
    r = await harness.http.post("/v1/users", json={"name": "bob", "roles": "developer"})
    assert r.json() == {"user_id": 2, "name": "bob", "roles": ["developer"]}
    stored = await harness.services.storage.read(
        lambda db: {r["name"]: r["password"] for r in db.rows("SELECT * FROM users")}
    )
    assert stored["ann"].startswith("scrypt$") and "secret" not in stored["ann"]
    assert stored["bob"] == ""


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "MALFORMED_MESSAGE"),
        (b"", 400, "MALFORMED_MESSAGE"),
        (b"[1, 2]", 400, "MALFORMED_MESSAGE"),
        (b'"ann"', 400, "MALFORMED_MESSAGE"),
        (b"[" * 50_000, 400, "MALFORMED_MESSAGE"),
        (b"\xff\xfe{}", 400, "MALFORMED_MESSAGE"),
        (b"{}", 400, "MISSING_PARAMETER"),
        (b'{"name": "  "}', 400, "MISSING_PARAMETER"),
        (b'{"name": 7}', 400, "INVALID_PARAMETER"),
        (b'{"name": "a\\u0000b"}', 400, "INVALID_PARAMETER"),
        (b'{"name": "' + b"n" * 65 + b'"}', 400, "INVALID_PARAMETER"),
        (b'{"name": "ann", "password": 5}', 400, "INVALID_PARAMETER"),
        (b'{"name": "ann", "roles": ["admin"]}', 400, "INVALID_PARAMETER"),
        (b'{"name": "ann", "roles": [1]}', 400, "INVALID_PARAMETER"),
        (b'{"name": "ann", "roles": {"a": 1}}', 400, "INVALID_PARAMETER"),
        (b'{"name": "taken"}', 409, "CONFLICT"),
        (b'{"name": "TAKEN"}', 409, "CONFLICT"),
    ],
)
async def test_create_user_refusals(harness: Harness, body: bytes, status: int, code: str) -> None:
    await new_user(harness, name="taken")
    r = await harness.http.post("/v1/users", content=body)
    assert_error(r, status, code)
    count = await harness.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM users"))
    assert count == 1


async def test_oversized_body_is_refused(harness: Harness) -> None:
    r = await harness.http.post("/v1/users", content=b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}')
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")


# -- sessions and login ---------------------------------------------------------------


async def test_operator_mints_a_session(harness: Harness) -> None:
    user_id = await new_user(harness)
    r = await harness.http.post(f"/v1/users/{user_id}/sessions")
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"user_id", "session_key", "expires_at"}
    assert body["user_id"] == user_id
    assert body["expires_at"] > harness.services.clock.now_ms()
    async with harness.connect({"user_id": user_id, "session_key": body["session_key"]}) as ws:
        assert (await ws.call(1))["res"] == 1
    assert_error(await harness.http.post("/v1/users/999/sessions"), 404, "NOT_FOUND")


async def test_login_with_own_credentials(harness: Harness, anon: httpx.AsyncClient) -> None:
    user_id = await new_user(harness, name="carol", password=" pass word ")
    r = await anon.post("/v1/login", json={"name": "carol", "password": " pass word "})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "user_session_key"} and body["id"] == user_id
    async with harness.connect({"user_id": user_id, "session_key": body["user_session_key"]}) as ws:
        assert (await ws.call(1))["res"] == 1


async def test_login_refusals_do_not_tell_which_part_was_wrong(
    harness: Harness,
    anon: httpx.AsyncClient,
) -> None:
    await new_user(harness, name="dave", password="right")
    await new_user(harness, name="nopass")
    wrong_password = assert_error(
        await anon.post("/v1/login", json={"name": "dave", "password": "wrong"}),
        403,
        "AUTHENTICATION_FAILED",
    )
    unknown_name = assert_error(
        await anon.post("/v1/login", json={"name": "eve", "password": "right"}),
        403,
        "AUTHENTICATION_FAILED",
    )
    no_password = assert_error(
        await anon.post("/v1/login", json={"name": "nopass", "password": "x"}),
        403,
        "AUTHENTICATION_FAILED",
    )
    assert wrong_password == unknown_name == no_password
    assert_error(await anon.post("/v1/login", json={"name": "dave"}), 400, "MISSING_PARAMETER")
    assert_error(
        await anon.post("/v1/login", json={"name": "dave", "password": 1}), 400, "INVALID_PARAMETER"
    )
    assert_error(await anon.post("/v1/login", content=b"nope"), 400, "MALFORMED_MESSAGE")
    sessions = await harness.services.storage.read(
        lambda db: db.scalar("SELECT COUNT(*) FROM sessions")
    )
    assert sessions == 0


# -- deposits and withdrawals ---------------------------------------------------------


async def test_deposits_add_up_exactly(harness: Harness) -> None:
    user_id = await new_user(harness)
    r = await harness.http.post(
        f"/v1/users/{user_id}/deposits",
        content=b'{"currency":"EUR","amount":10.10,"reference":"a"}',
    )
    assert r.status_code == 201, r.text
    r = await deposit(harness, user_id, "0.20", reference="b")
    assert r.status_code == 201
    assert '"current":10.3' in r.text and "10.29" not in r.text and "10.30000" not in r.text
    assert r.json() == {
        "user_id": user_id,
        "currency": "EUR",
        "reference": "b",
        "duplicate": False,
        "balance": {"current": 10.3, "available": 10.3, "exposure": 0.0},
    }
    r = await harness.http.get(f"/v1/users/{user_id}/balances")
    assert r.text == '{"EUR":{"current":10.3,"available":10.3,"exposure":0.0}}'


async def test_currency_is_normalised_and_has_its_own_decimals(harness: Harness) -> None:
    user_id = await new_user(harness)
    assert (await deposit(harness, user_id, "1.5", currency="usd")).json()["currency"] == "USD"
    assert (await deposit(harness, user_id, "1.005", currency="KWD")).status_code == 201
    assert (await deposit(harness, user_id, 100, currency="JPY")).status_code == 201
    body = assert_error(
        await deposit(harness, user_id, "100.5", currency="JPY"), 400, "INVALID_AMOUNT"
    )
    assert body["parameter"] == "amount" and body["limit"] == "decimals"
    r = await harness.http.post(
        f"/v1/users/{user_id}/deposits", json={"amount": "2", "reference": "no-currency"}
    )
    assert r.status_code == 201 and r.json()["currency"] == "EUR"
    r = await harness.http.get(f"/v1/users/{user_id}/balances")
    assert r.text == (
        '{"EUR":{"current":2.0,"available":2.0,"exposure":0.0},'
        '"JPY":{"current":100.0,"available":100.0,"exposure":0.0},'
        '"KWD":{"current":1.005,"available":1.005,"exposure":0.0},'
        '"USD":{"current":1.5,"available":1.5,"exposure":0.0}}'
    )


@pytest.mark.parametrize("kind", ["deposits", "withdrawals"])
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{oops", 400, "MALFORMED_MESSAGE"),
        (b"", 400, "MALFORMED_MESSAGE"),
        (b"[]", 400, "MALFORMED_MESSAGE"),
        (b"12", 400, "MALFORMED_MESSAGE"),
        (b'{"currency": "EUR", "reference": "r"}', 400, "MISSING_PARAMETER"),
        (b'{"currency": "EUR", "amount": "1"}', 400, "MISSING_PARAMETER"),
        (b'{"currency": "EUR", "amount": "1", "reference": ""}', 400, "MISSING_PARAMETER"),
        (b'{"currency": "EUR", "amount": "1", "reference": 5}', 400, "INVALID_PARAMETER"),
        (
            b'{"currency": "EUR", "amount": "1", "reference": "' + b"r" * 129 + b'"}',
            400,
            "INVALID_PARAMETER",
        ),
        (b'{"currency": "EURO", "amount": "1", "reference": "r"}', 400, "INVALID_PARAMETER"),
        (b'{"currency": 978, "amount": "1", "reference": "r"}', 400, "INVALID_PARAMETER"),
        (b'{"currency": "E1R", "amount": "1", "reference": "r"}', 400, "INVALID_PARAMETER"),
        (b'{"currency": "EUR", "amount": "1.005", "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": 1.005, "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": "-1", "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": -1, "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": "0", "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": 0.00, "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": "ten", "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": "NaN", "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": true, "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": null, "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": [1], "reference": "r"}', 400, "INVALID_AMOUNT"),
        (b'{"currency": "EUR", "amount": 1e30, "reference": "r"}', 400, "INVALID_AMOUNT"),
    ],
)
async def test_money_refusals_change_nothing(
    harness: Harness, kind: str, body: bytes, status: int, code: str
) -> None:
    user_id = await new_user(harness)
    assert (await deposit(harness, user_id, "5.00")).status_code == 201
    before = await state(harness, user_id)
    assert_error(await harness.http.post(f"/v1/users/{user_id}/{kind}", content=body), status, code)
    assert await state(harness, user_id) == before


@pytest.mark.parametrize("kind", ["deposits", "withdrawals"])
async def test_money_for_an_unknown_user_is_refused(harness: Harness, kind: str) -> None:
    user_id = await new_user(harness)
    assert (await deposit(harness, user_id, "5")).status_code == 201
    before = await state(harness, user_id)
    assert_error(await deposit(harness, 999, "1", kind=kind), 404, "NOT_FOUND")
    assert await state(harness, user_id) == before
    assert_error(await harness.http.get("/v1/users/999/balances"), 404, "NOT_FOUND")


async def test_deposit_replay_and_conflict(harness: Harness) -> None:
    user_id = await new_user(harness)
    other = await new_user(harness)
    first = await deposit(harness, user_id, "7.25", reference="dep-1")
    assert first.status_code == 201 and first.json()["duplicate"] is False
    replay = await deposit(harness, user_id, "7.250", reference="dep-1")
    assert replay.status_code == 200
    assert replay.json() == {**first.json(), "duplicate": True}
    before = await state(harness, user_id)
    for amount, currency, target in (
        ("8", "EUR", user_id),
        ("7.25", "USD", user_id),
        ("7.25", "EUR", other),
    ):
        assert_error(
            await deposit(harness, target, amount, currency=currency, reference="dep-1"),
            409,
            "IDEMPOTENCY_CONFLICT",
        )
    assert await state(harness, user_id) == before
    assert (await harness.http.get(f"/v1/users/{other}/balances")).json() == {}


async def test_concurrent_replays_apply_once(harness: Harness) -> None:
    user_id = await new_user(harness)
    statuses: list[int] = []

    async def send(reference: str) -> None:
        statuses.append((await deposit(harness, user_id, "0.10", reference=reference)).status_code)

    async with trio.open_nursery() as nursery:
        for i in range(30):
            nursery.start_soon(send, "same")
            nursery.start_soon(send, f"own-{i}")
    assert sorted(statuses).count(201) == 31 and statuses.count(200) == 29
    r = await harness.http.get(f"/v1/users/{user_id}/balances")
    assert r.text == '{"EUR":{"current":3.1,"available":3.1,"exposure":0.0}}'


async def test_withdrawals(harness: Harness) -> None:
    user_id = await new_user(harness)
    assert (await deposit(harness, user_id, "10.00", reference="same-ref")).status_code == 201
    r = await deposit(harness, user_id, "2.55", reference="same-ref", kind="withdrawals")
    assert r.status_code == 201, r.text  # a deposit reference does not clash with a withdrawal
    assert r.json()["balance"] == {"current": 7.45, "available": 7.45, "exposure": 0.0}
    replay = await deposit(harness, user_id, "2.55", reference="same-ref", kind="withdrawals")
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    before = await state(harness, user_id)
    assert_error(
        await deposit(harness, user_id, "7.46", kind="withdrawals"), 400, "INSUFFICIENT_FUNDS"
    )
    assert_error(
        await deposit(harness, user_id, "1", currency="USD", kind="withdrawals"),
        400,
        "INSUFFICIENT_FUNDS",
    )
    assert_error(
        await deposit(harness, user_id, "2.00", reference="same-ref", kind="withdrawals"),
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    assert await state(harness, user_id) == before
    r = await deposit(harness, user_id, "7.45", kind="withdrawals")
    assert r.status_code == 201
    assert r.json()["balance"] == {"current": 0.0, "available": 0.0, "exposure": 0.0}


# -- balances, block, source admins ---------------------------------------------------


async def test_balances_of_a_new_user_are_empty(harness: Harness) -> None:
    user_id = await new_user(harness)
    r = await harness.http.get(f"/v1/users/{user_id}/balances")
    assert r.status_code == 200 and r.json() == {}


async def test_block_and_unblock(harness: Harness) -> None:
    user_id = await new_user(harness)
    assert (await deposit(harness, user_id, "3")).status_code == 201
    r = await harness.http.post(f"/v1/users/{user_id}/block")
    assert r.status_code == 200 and r.json() == {"user_id": user_id, "blocked": True}
    before = await state(harness, user_id)
    assert_error(await deposit(harness, user_id, "1", kind="withdrawals"), 400, "USER_BLOCKED")
    assert await state(harness, user_id) == before
    assert (await deposit(harness, user_id, "1")).status_code == 201  # deposits still land
    r = await harness.http.post(f"/v1/users/{user_id}/unblock")
    assert r.status_code == 200 and r.json() == {"user_id": user_id, "blocked": False}
    assert (await deposit(harness, user_id, "4", kind="withdrawals")).status_code == 201
    blocked = await harness.services.storage.read(
        lambda db: db.scalar("SELECT blocked FROM users WHERE id = ?", [user_id])
    )
    assert blocked == 0
    for action in ("block", "unblock"):
        assert_error(await harness.http.post(f"/v1/users/999/{action}"), 404, "NOT_FOUND")


async def test_add_source_admin(harness: Harness) -> None:
    developer = await new_user(harness, roles=["developer"])
    player = await new_user(harness)
    source = await harness.services.ask_registry(OpenSource(developer, "league", ""))
    r = await harness.http.post(f"/v1/sources/{source.id}/admins", json={"user_id": player})
    assert r.status_code == 200, r.text
    assert r.json()["admins"] == sorted([developer, player])
    r = await harness.http.post(f"/v1/sources/{source.id}/admins", json={"user_id": str(player)})
    assert r.status_code == 200  # adding twice is harmless
    mine = await harness.services.ask_registry(SourcesOf(player))
    assert [s.id for s in mine] == [source.id]

    url = f"/v1/sources/{source.id}/admins"
    assert_error(await harness.http.post(url, json={"user_id": 999}), 404, "NOT_FOUND")
    assert_error(
        await harness.http.post("/v1/sources/nope/admins", json={"user_id": player}),
        404,
        "NOT_FOUND",
    )
    assert_error(await harness.http.post(url, json={}), 400, "MISSING_PARAMETER")
    for bad in ("x", True, -1, 1.5, [1]):
        assert_error(await harness.http.post(url, json={"user_id": bad}), 400, "INVALID_PARAMETER")
    assert_error(await harness.http.post(url, content=b"[]"), 400, "MALFORMED_MESSAGE")


# -- audit ----------------------------------------------------------------------------


async def test_audit_endpoint(harness: Harness) -> None:
    r = await harness.http.get("/v1/audit")
    assert r.json() == {"ok": True, "problems": [], "transactions": 0, "lines": 0}
    user_id = await new_user(harness)
    await deposit(harness, user_id, "5")
    await deposit(harness, user_id, "2", kind="withdrawals")
    r = await harness.http.get("/v1/audit")
    assert r.json() == {"ok": True, "problems": [], "transactions": 2, "lines": 4}


async def test_audit_reports_unbalanced_books(harness: Harness) -> None:
    from storage.changes import Insert

    await harness.services.storage.commit(
        [
            Insert("transactions", {"id": "bad", "kind": "test", "created_at": 0}),
            Insert(
                "ledger",
                {"tx_id": "bad", "seq": 0, "account": "house", "currency": "EUR", "amount": 5},
            ),
        ]
    )
    r = await harness.http.get("/v1/audit")
    body = r.json()
    assert r.status_code == 200 and body["ok"] is False and body["lines"] == 1
    assert any("bad" in problem for problem in body["problems"])
    # Undo it, so the harness's own audit at the end of the test passes.
    await harness.services.storage.commit(
        [
            Insert(
                "ledger",
                {"tx_id": "bad", "seq": 1, "account": "operator", "currency": "EUR", "amount": -5},
            )
        ]
    )
    assert (await harness.http.get("/v1/audit")).json()["ok"] is True


# -- server-side failures -------------------------------------------------------------


async def test_a_timeout_answers_503(harness: Harness) -> None:
    user_id = await new_user(harness)
    before = await state(harness, user_id)
    settings = harness.services.settings
    saved, settings.request_timeout = settings.request_timeout, 0
    try:
        assert_error(await deposit(harness, user_id, "1"), 503, "REQUEST_TIMED_OUT")
    finally:
        settings.request_timeout = saved
    assert await state(harness, user_id) == before


async def test_a_bug_answers_500_without_details(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(query: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(harness.services.storage, "read_snapshot", broken)
    body = assert_error(await harness.http.get("/v1/audit"), 500, "GENERAL_EXCEPTION")
    assert "secret" not in str(body)
