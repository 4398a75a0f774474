"""The websocket connection layer through a real client on loopback: handshake, envelope,
errors, limits, logon, op listing, balances."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from actors.registry import Authenticate, CreateSession, CreateUser
from domain.errors import DomainError
from tests.conftest import ActorHarness, Harness
from transport.ops import OPS, RESPONSES


async def test_ping_and_request_id_echo(harness: Harness) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        reply = await ws.call(1)
        assert reply["res"] == 1
        assert isinstance(reply["response_header"]["t"], int)
        assert reply["response_header"]["request_id"].startswith("r")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda url: url.replace("&h=", "&h=00"),  # wrong digest
        lambda url: url.replace("?id=", "?id=999"),  # unknown user
        lambda url: url.replace("?id=", "?id=x"),  # not a user id
        lambda url: url.split("&n=")[0],  # no nonce, no digest
    ],
)
async def test_a_bad_handshake_is_refused_with_401_before_the_upgrade(
    harness: Harness, spoil: object
) -> None:
    user = await harness.user()
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(spoil(harness.ws_url(user))):  # type: ignore[operator]
            pass
    assert caught.value.status_code == 401
    assert b"AUTHENTICATION_FAILED" in (caught.value.body or b"")


async def test_a_nonce_is_good_once(harness: Harness) -> None:
    user = await harness.user()
    url = harness.ws_url(user, nonce="n-1")
    async with open_websocket_url(url):
        pass
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(url):
            pass
    assert caught.value.status_code == 401


async def test_an_expired_session_is_refused(
    actors: ActorHarness, autojump_clock: trio.testing.MockClock
) -> None:
    from actors.registry import handshake_digest

    user = await actors.services.ask_registry(CreateUser("eve", "", []))
    session = await actors.services.ask_registry(CreateSession(user.id))
    digest = handshake_digest(user.id, "n", session.session_key)
    await actors.services.ask_registry(Authenticate(user.id, "n", digest))
    await trio.sleep(24 * 3600 + 1)
    digest = handshake_digest(user.id, "n2", session.session_key)
    with pytest.raises(DomainError) as caught:
        await actors.services.ask_registry(Authenticate(user.id, "n2", digest))
    assert caught.value.code == "AUTHENTICATION_FAILED"


@pytest.mark.parametrize(
    ("raw", "code", "op"),
    [
        ("not json", "MALFORMED_MESSAGE", None),
        ("[1, 2]", "MALFORMED_MESSAGE", None),
        ('{"header": {}}', "MALFORMED_MESSAGE", None),
        ('{"header": {}, "op": "ping"}', "MALFORMED_MESSAGE", "ping"),
        ('{"header": 5, "op": 1}', "MALFORMED_MESSAGE", 1),
        ('{"header": {}, "op": 12345}', "UNKNOWN_OP", 12345),
        ('{"header": {}, "op": 385}', "MISSING_PARAMETER", 385),
        (
            '{"header": {}, "op": 392, "pool_id": {"x": 1}, "target": "a", "amount": 1}',
            "INVALID_PARAMETER",
            392,
        ),
    ],
)
async def test_bad_messages_get_a_666_and_the_connection_stays_open(
    harness: Harness, raw: str, code: str, op: object
) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        await ws.send_raw(raw)
        error = await ws.expect(666)
        assert (error["error_code"], error["op"]) == (code, op)
        assert error["text"]
        assert (await ws.call(1))["res"] == 1


async def test_op_listing_comes_from_the_one_table(harness: Harness) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        reply = await ws.call(2, 2)
    assert reply["opcodes"] == {spec.name: code for code, spec in OPS.items()}
    assert reply["response_codes"] == RESPONSES
    assert reply["opcodes"]["resolve_betting_pool"] == 396
    assert reply["opcodes"]["void_betting_pool"] == 399


async def test_logon_then_logon_again(harness: Harness) -> None:
    user = await harness.user("logan")
    async with harness.connect(user) as ws:
        first = await ws.call(100)
        second = await ws.call(100)
    assert (first["res"], first["user_name"]) == (100, "logan")
    assert second["res"] == 112


async def test_balances_and_the_pushed_815(harness: Harness) -> None:
    user = await harness.user(deposit="12.30")
    async with harness.connect(user) as ws:
        assert (await ws.call(800, 800, currency="EUR"))["current_balance"] == Decimal("12.3")
        assert (await ws.call(810, 810))["available_balance"] == Decimal("12.3")  # default EUR
        assert (await ws.call(840, 840, currency="EUR"))["exposure"] == Decimal("0.0")
        assert (await ws.call(800, 800, currency="USD"))["current_balance"] == Decimal("0.0")
        r = await harness.http.post(
            f"/v1/users/{user['user_id']}/deposits",
            json={"currency": "EUR", "amount": "0.70", "reference": "more"},
        )
        assert r.status_code == 201
        pushed = await ws.expect(815)
    assert (pushed["current_balance"], pushed["available_balance"], pushed["currency"]) == (
        Decimal("13.0"),
        Decimal("13.0"),
        "EUR",
    )
    assert "request_id" not in pushed["response_header"]


async def test_an_oversized_frame_closes_with_1009(harness: Harness) -> None:
    user = await harness.user()
    async with harness.connect(user) as ws:
        await ws.send_raw('{"op": 1, "pad": "' + "x" * 70_000 + '"}')
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
    assert caught.value.reason.code == 1009


async def test_a_flood_is_rate_limited(harness: Harness) -> None:
    harness.services.settings.rate_burst = 5
    harness.services.settings.rate_per_second = 1
    user = await harness.user()
    async with harness.connect(user) as ws:
        for _ in range(10):
            await ws.send(1)
        replies = [await ws.receive() for _ in range(10)]
    assert sum(r["res"] == 1 for r in replies) == 5
    limited = [r for r in replies if r["res"] == 666]
    assert {r["error_code"] for r in limited} == {"RATE_LIMITED"}
