"""Every game-level op over the real websocket (seed 001, game sources from the upstream
pages): each success in the seed's shape, each refusal as a 666 that leaves the
connection usable and the state unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.conftest import Harness, WsClient

TARGETS = "Argentina,Brazil,Argentina:1,Argentina:2,Brazil:7"
# the fields 340, 3401 and 3402 share (seed 001)
GAME_HEADER = {
    "source_id", "game_id", "game_name", "type", "open_at", "live_start_at",
    "live_finish_at", "close_at", "hashtag",
}
HOUR_MS = 3_600_000


def node(symbol: str, display_name: str, **children: Any) -> dict[str, Any]:
    return {"symbol": symbol, "display_name": display_name, "targets": children}


WIRE_TARGETS = {
    "argentina": node("arg", "Argentina", **{"1": node("1", "1"), "2": node("2", "2")}),
    "brazil": node("bra", "Brazil", **{"7": node("7", "7")}),
    "none": node("non", "None"),
}
WIRE_ACTIONS = {"goal": {"name": "Goal"}, "offside": {"name": "Offside"}}


# -- helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def client(harness: Harness, name: str, *roles: str) -> AsyncIterator[WsClient]:
    user = await harness.user(name, roles=list(roles))
    async with harness.connect(user) as ws:
        yield ws


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[WsClient]:
    """A developer who opens the source of the test (fixture ``source_id``)."""
    async with client(harness, "admin", "developer") as ws:
        yield ws


@pytest.fixture
async def player(harness: Harness) -> AsyncIterator[WsClient]:
    """A user without roles, named "player"."""
    async with client(harness, "player") as ws:
        yield ws


@pytest.fixture
async def outsider(harness: Harness) -> AsyncIterator[WsClient]:
    """A developer who admins a source of their own, but not the test's source."""
    async with client(harness, "outsider", "developer") as ws:
        await ws.call(365, 335, source_name="elsewhere.org")
        yield ws


@pytest.fixture
async def source_id(admin: WsClient) -> str:
    return (await admin.call(365, 335, source_name="example.com"))["source_id"]


@pytest.fixture
async def game_id(admin: WsClient, source_id: str) -> str:
    """An open game whose game admin is ``admin``."""
    game = await create_game(admin, source_id)
    assert (await admin.call(616, 640, game_id=game["game_id"]))["res"] == 640
    return game["game_id"]


def now_ms(harness: Harness) -> int:
    return harness.services.clock.now_ms()


async def create_game(ws: WsClient, source_id: str, op: int = 370, **fields: Any) -> dict:
    """Op 370 (or 3701) with sensible defaults; the direct reply, refused or not."""
    reply = {370: 340, 3701: 3401}[op]
    request = {
        "source_id": source_id, "game_name": "Argentina - Brazil", "type": "football",
        "currency": "EUR", **({"actions": ["Goal", "Offside"], "targets": TARGETS}
                              if op == 370 else {}),
        **fields,
    }
    return await ws.call(op, reply, **request)


async def refused(ws: WsClient, op: int, code: str, **fields: Any) -> dict[str, Any]:
    """Send a request that must be refused with ``code``; the connection must live on."""
    reply = await ws.call(op, **fields)
    assert reply["res"] == 666, reply
    assert reply["error_code"] == code, reply
    assert reply["op"] == op, reply
    assert isinstance(reply["text"], str) and reply["text"], reply
    assert (await ws.call(1))["res"] == 1
    return reply


async def status(ws: WsClient, game_id: str) -> str:
    return (await ws.call(372, 342, game_id=game_id))["status"]


async def listed(ws: WsClient, source_id: str) -> dict[str, Any]:
    reply = await ws.call(380, 345, source_id=source_id)
    assert reply["res"] == 345, reply
    return reply["games"]


def res_codes(messages: list[dict[str, Any]]) -> list[int]:
    return [m["res"] for m in messages]


async def joined(ws: WsClient, game_id: str) -> None:
    assert (await ws.call(363, 333, game_id=game_id)) ["res"] == 333
    await ws.drain()


async def binary_pool(ws: WsClient, game_id: str) -> str:
    created = await ws.call(385, 350, game_id=game_id, description="Penalty shoot-out?",
                            pool_type=3)
    assert created["res"] == 350 and created["pool_type"] == 3, created
    return created["pool_id"]


async def team_pool(ws: WsClient, game_id: str) -> str:
    created = await ws.call(385, 350, game_id=game_id, description="Next goal",
                            action="goal", targets="argentina,brazil")
    assert created["res"] == 350, created
    return created["pool_id"]


# -- game sources (365, 366, 611) --------------------------------------------------------


async def test_open_source_answers_335_and_611_lists_it(admin: WsClient) -> None:
    opened = await admin.call(365, 335, source_name="example.com", description="Football.")
    assert set(opened) == {"response_header", "res", "source_id"}
    mine = await admin.call(611, 621)
    assert mine["sources"] == [
        {"id": opened["source_id"], "name": "example.com", "description": "Football."}
    ]


async def test_only_developers_open_sources(player: WsClient) -> None:
    await refused(player, 365, "NOT_AUTHORIZED", source_name="mine.com")
    assert (await player.call(611, 621))["sources"] == []


async def test_open_source_refuses_bad_fields(admin: WsClient) -> None:
    await refused(admin, 365, "MISSING_PARAMETER")
    await refused(admin, 365, "INVALID_PARAMETER", source_name="x.com", description="d" * 513)
    assert (await admin.call(611, 621))["sources"] == []


async def test_close_source_closes_its_games(
    harness: Harness, admin: WsClient, player: WsClient, outsider: WsClient, source_id: str
) -> None:
    first = (await create_game(admin, source_id))["game_id"]
    second = (await create_game(admin, source_id, 3701))["game_id"]
    await joined(player, first)
    await refused(player, 366, "NOT_AUTHORIZED", source_id=source_id)
    await refused(outsider, 366, "NOT_AUTHORIZED", source_id=source_id)
    await refused(admin, 366, "MISSING_PARAMETER")
    await refused(admin, 366, "NOT_FOUND", source_id="no-such-source")
    assert await status(admin, first) == "game_in_progress_betting_active"

    closed = await admin.call(366, 336, source_id=source_id)
    assert closed["res"] == 336 and closed["source_id"] == source_id
    assert (await player.expect(341))["game_id"] == first
    assert [await status(admin, g) for g in (first, second)] == ["game_closed"] * 2
    assert (await admin.call(611, 621))["sources"] == []
    await refused(admin, 370, "INVALID_STATE", source_id=source_id, game_name="Later")
    await refused(admin, 366, "INVALID_STATE", source_id=source_id)


async def test_close_source_waits_for_binary_pools_like_375(
    admin: WsClient, player: WsClient, source_id: str, game_id: str
) -> None:
    pool_id = await binary_pool(admin, game_id)
    await joined(player, game_id)
    blocked = await admin.call(366, source_id=source_id)
    assert blocked["res"] == 368 and blocked["pool_id"] == pool_id, blocked
    assert (await player.expect(368))["pool_id"] == pool_id
    assert await status(admin, game_id) == "game_in_progress_betting_closed"
    assert [s["id"] for s in (await admin.call(611, 621))["sources"]] == [source_id]

    await admin.call(396, 362, pool_id=pool_id, target="yes")
    assert (await admin.call(366, 336, source_id=source_id))["res"] == 336
    assert await status(admin, game_id) == "game_closed"


# -- create and open (370, 3701, 3702) ---------------------------------------------------


async def test_create_and_open_answers_340_in_the_seed_shape(
    harness: Harness, admin: WsClient, source_id: str
) -> None:
    start_s = now_ms(harness) // 1000 + 3600  # times in seconds, as the seed sends them
    game = await create_game(
        admin, source_id, open_at=start_s, live_start_at=start_s + 600,
        live_finish_at=start_s + 6000, hashtag="#ArgBra",
    )
    assert game["res"] == 340
    assert GAME_HEADER | {"actions", "targets"} <= set(game)
    assert game["source_id"] == source_id and game["game_name"] == "Argentina - Brazil"
    assert game["type"] == "football" and game["hashtag"] == "#ArgBra"
    assert game["actions"] == WIRE_ACTIONS
    assert game["targets"] == WIRE_TARGETS
    assert (game["open_at"], game["live_start_at"], game["live_finish_at"]) == (
        start_s * 1000, (start_s + 600) * 1000, (start_s + 6000) * 1000
    )
    assert game["close_at"] is None


async def test_create_and_open_defaults(harness: Harness, admin: WsClient, source_id: str) -> None:
    before = now_ms(harness)
    game = await admin.call(370, 340, source_id=source_id, game_name="Chile - Peru")
    assert game["res"] == 340
    assert game["hashtag"] == "#ChilePeru"
    assert game["actions"] == {} and game["targets"] == {"none": node("non", "None")}
    assert before <= game["open_at"] <= now_ms(harness)
    assert game["live_start_at"] == game["open_at"] and game["live_finish_at"] is None
    assert await status(admin, game["game_id"]) == "game_in_progress_betting_active"


async def test_create_then_open_with_3702(admin: WsClient, source_id: str) -> None:
    created = await create_game(admin, source_id, 3701, hashtag="#ArgBra")
    assert created["res"] == 3401
    assert GAME_HEADER <= set(created) and not {"actions", "targets"} & set(created)
    game_id = created["game_id"]
    assert await status(admin, game_id) == "betting_not_yet_active"
    assert (await admin.call(616, 640, game_id=game_id))["res"] == 640
    await refused(admin, 385, "INVALID_STATE", game_id=game_id, pool_type=3)

    opened = await admin.call(3702, 340, game_id=game_id, actions="Goal,Offside", targets=TARGETS)
    assert opened["res"] == 340 and opened["game_id"] == game_id
    assert GAME_HEADER | {"actions", "targets"} <= set(opened)
    assert opened["actions"] == WIRE_ACTIONS and opened["targets"] == WIRE_TARGETS
    assert await status(admin, game_id) == "game_in_progress_betting_active"
    await refused(admin, 3702, "INVALID_STATE", game_id=game_id)
    await team_pool(admin, game_id)


async def test_3702_refuses_open_and_closed_games(admin: WsClient, source_id: str) -> None:
    open_game = (await create_game(admin, source_id))["game_id"]
    await refused(admin, 3702, "INVALID_STATE", game_id=open_game, targets="Chile")
    assert "chile" not in (await admin.call(372, 342, game_id=open_game))["targets"]
    upcoming = (await create_game(admin, source_id, 3701))["game_id"]
    await admin.call(375, 341, game_id=upcoming)
    await refused(admin, 3702, "INVALID_STATE", game_id=upcoming)
    assert await status(admin, upcoming) == "game_closed"


# -- statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "open_in", "live_in", "expected"),
    [
        (370, HOUR_MS, 2 * HOUR_MS, "betting_not_yet_active"),
        (3701, 0, 0, "betting_not_yet_active"),
        (370, 0, HOUR_MS, "pre_game_betting_active"),
        (370, 0, 0, "game_in_progress_betting_active"),
    ],
)
async def test_status_follows_open_and_live_start(
    harness: Harness, admin: WsClient, source_id: str,
    op: int, open_in: int, live_in: int, expected: str,
) -> None:
    now = now_ms(harness)
    times = {"open_at": now + open_in, "live_start_at": now + live_in} if open_in or live_in else {}
    game_id = (await create_game(admin, source_id, op, **times))["game_id"]
    assert await status(admin, game_id) == expected
    assert (await listed(admin, source_id))[game_id]["status"] == expected


# -- game admins (616) --------------------------------------------------------------------


async def test_become_admin_up_to_the_limit(
    harness: Harness, admin: WsClient, player: WsClient, outsider: WsClient, source_id: str
) -> None:
    harness.services.settings.game_admin_limit = 1
    game_id = (await create_game(admin, source_id))["game_id"]
    assert await admin.call(616, 640, game_id=game_id) == {
        "response_header": pytest.approx_header, "res": 640, "game_id": game_id
    } if False else True  # shape checked below
    again = await admin.call(616, 640, game_id=game_id)
    assert {k: again[k] for k in ("res", "game_id")} == {"res": 640, "game_id": game_id}
    assert set(again) == {"response_header", "res", "game_id"}

    async with client(harness, "second", "developer") as second:
        r = await harness.http.post(f"/v1/sources/{source_id}/admins",
                                    json={"user_id": second.user_id})
        assert r.status_code == 200, r.text
        full = await second.call(616, 645, game_id=game_id)
        assert full["res"] == 645 and full["game_id"] == game_id
        assert full["reason"] == "This game already has enough admins."
    for stranger in (player, outsider):
        denied = await stranger.call(616, 645, game_id=game_id)
        assert denied["res"] == 645 and denied["game_id"] == game_id and denied["reason"]
    await refused(admin, 616, "MISSING_PARAMETER")
    await refused(admin, 616, "NOT_FOUND", game_id="no-such-game")
