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
    "source_id",
    "game_id",
    "game_name",
    "type",
    "open_at",
    "live_start_at",
    "live_finish_at",
    "close_at",
    "hashtag",
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
    """Op 370 (with the seed's actions and targets) or 3701, overridden by ``fields``;
    returns the 340 or 3401 (a 666 fails the test)."""
    request = {
        "source_id": source_id,
        "game_name": "Argentina - Brazil",
        "type": "football",
        "currency": "EUR",
    }
    if op == 370:
        request |= {"actions": ["Goal", "Offside"], "targets": TARGETS}
    return await ws.call(op, {370: 340, 3701: 3401}[op], **request | fields)


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
    assert (await ws.call(363, 333, game_id=game_id))["res"] == 333
    await ws.drain()


async def binary_pool(ws: WsClient, game_id: str) -> str:
    created = await ws.call(
        385, 350, game_id=game_id, description="Penalty shoot-out?", pool_type=3
    )
    assert created["res"] == 350 and created["pool_type"] == 3, created
    return created["pool_id"]


async def team_pool(ws: WsClient, game_id: str, **fields: Any) -> str:
    created = await ws.call(
        385,
        350,
        game_id=game_id,
        description="Next goal",
        action="goal",
        targets="argentina,brazil",
        **fields,
    )
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
    admin: WsClient, player: WsClient, outsider: WsClient, source_id: str, game_id: str
) -> None:
    first, pool_id = game_id, await team_pool(admin, game_id)
    second = (await create_game(admin, source_id, 3701))["game_id"]
    await joined(player, first)
    await refused(player, 366, "NOT_AUTHORIZED", source_id=source_id)
    await refused(outsider, 366, "NOT_AUTHORIZED", source_id=source_id)
    await refused(admin, 366, "MISSING_PARAMETER")
    await refused(admin, 366, "NOT_FOUND", source_id="no-such-source")
    assert await status(admin, first) == "game_in_progress_betting_active"

    closed = await admin.call(366, 336, source_id=source_id)
    assert set(closed) == {"response_header", "res", "source_id"}
    assert (closed["res"], closed["source_id"]) == (336, source_id)
    resolved = await player.expect(362)
    assert (resolved["pool_id"], resolved["winning_target"]) == (pool_id, "none")
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
        admin,
        source_id,
        open_at=start_s,
        live_start_at=start_s + 600,
        live_finish_at=start_s + 6000,
        hashtag="#ArgBra",
    )
    assert game["res"] == 340
    assert GAME_HEADER | {"actions", "targets"} <= set(game)
    assert game["source_id"] == source_id and game["game_name"] == "Argentina - Brazil"
    assert game["type"] == "football" and game["hashtag"] == "#ArgBra"
    assert game["actions"] == WIRE_ACTIONS
    assert game["targets"] == WIRE_TARGETS
    assert (game["open_at"], game["live_start_at"], game["live_finish_at"]) == (
        start_s * 1000,
        (start_s + 600) * 1000,
        (start_s + 6000) * 1000,
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
    assert set(created) >= GAME_HEADER and not {"actions", "targets"} & set(created)
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


async def test_upcoming_game_gets_targets_from_373_then_opens(
    admin: WsClient, source_id: str
) -> None:
    game_id = (await create_game(admin, source_id, 3701))["game_id"]
    await admin.call(373, 343, game_id=game_id, actions=["Goal", "Offside"], targets=TARGETS)
    assert await status(admin, game_id) == "betting_not_yet_active"
    opened = await admin.call(3702, 340, game_id=game_id)
    assert opened["actions"] == WIRE_ACTIONS and opened["targets"] == WIRE_TARGETS


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
    harness: Harness,
    admin: WsClient,
    source_id: str,
    op: int,
    open_in: int,
    live_in: int,
    expected: str,
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
    for _ in range(2):  # asking again is harmless
        became = await admin.call(616, 640, game_id=game_id)
        assert set(became) == {"response_header", "res", "game_id"}
        assert (became["res"], became["game_id"]) == (640, game_id)

    async with client(harness, "second", "developer") as second:
        r = await harness.http.post(
            f"/v1/sources/{source_id}/admins", json={"user_id": second.user_id}
        )
        assert r.status_code == 200, r.text
        full = await second.call(616, 645, game_id=game_id)
        assert full["res"] == 645 and full["game_id"] == game_id
        assert full["reason"] == "This game already has enough admins."
    for stranger in (player, outsider):
        denied = await stranger.call(616, 645, game_id=game_id)
        assert denied["res"] == 645 and denied["game_id"] == game_id and denied["reason"]
    await refused(admin, 616, "MISSING_PARAMETER")
    await refused(admin, 616, "NOT_FOUND", game_id="no-such-game")


# -- details and updates (372, 373) -------------------------------------------------------


async def test_details_answer_342_with_status_and_past_events(
    admin: WsClient, player: WsClient, game_id: str
) -> None:
    details = await player.call(372, 342, game_id=game_id)
    assert {
        "status",
        "game_id",
        "name",
        "hashtag",
        "past_events",
        "actions",
        "currency",
        "type",
        "targets",
        "open_at",
        "live_start_at",
        "live_finish_at",
        "close_at",
    } <= set(details)
    assert details["status"] == "game_in_progress_betting_active"
    assert (details["game_id"], details["name"]) == (game_id, "Argentina - Brazil")
    assert (details["currency"], details["type"]) == ("EUR", "football")
    assert details["actions"] == WIRE_ACTIONS and details["targets"] == WIRE_TARGETS
    assert details["past_events"] == {}

    event = await admin.call(395, 366, game_id=game_id, action_id="Goal", target_id="Argentina:1")
    details = await player.call(372, 342, game_id=game_id)
    assert details["past_events"] == {
        event["event_id"]: {
            "happened_at": event["happened_at"],
            "target_id": "argentina:1",
            "action_id": "goal",
        }
    }


async def test_update_answers_343_and_broadcasts_342(
    admin: WsClient, player: WsClient, outsider: WsClient, game_id: str
) -> None:
    await joined(player, game_id)
    await refused(player, 373, "NOT_AUTHORIZED", game_id=game_id, targets="Chile")
    await refused(outsider, 373, "NOT_AUTHORIZED", game_id=game_id, targets="Chile")
    assert res_codes(await player.drain()) == []

    updated = await admin.call(
        373, 343, game_id=game_id, actions=["Corner", "goal"], targets=["Brazil:9", "Argentina"]
    )
    assert set(updated) == {"response_header", "res", "game_id"}
    assert (updated["res"], updated["game_id"]) == (343, game_id)
    published = await player.expect(342)
    assert "request_id" not in published["response_header"]
    assert published["game_id"] == game_id
    assert published["status"] == "game_in_progress_betting_active"
    assert published["actions"] == {**WIRE_ACTIONS, "corner": {"name": "Corner"}}
    assert published["targets"]["brazil"]["targets"]["9"] == node("9", "9")
    assert published["targets"]["argentina"] == WIRE_TARGETS["argentina"]
    assert await admin.call(372, 342, game_id=game_id) | {"response_header": None} == (
        published | {"response_header": None, "res": 342}
    )


# -- join and leave (363, 364) ------------------------------------------------------------


async def test_join_and_leave_are_published(
    harness: Harness, admin: WsClient, player: WsClient, game_id: str
) -> None:
    await joined(admin, game_id)
    joined_reply = await player.call(363, 333, game_id=game_id)
    assert set(joined_reply) == {"response_header", "res", "game_id", "seq", "viewers"}
    assert (joined_reply["res"], joined_reply["game_id"]) == (333, game_id)
    news = await admin.expect(470)
    assert {k: news[k] for k in ("game_id", "user_id", "user_name")} == {
        "game_id": game_id,
        "user_id": player.user_id,
        "user_name": "player",
    }
    assert (await player.call(363, 333, game_id=game_id))["res"] == 333  # again: no news
    left = await player.call(364, 334, game_id=game_id)
    assert (left["res"], left["game_id"]) == (334, game_id)
    news = await admin.expect(480)
    assert (news["game_id"], news["user_id"], news["user_name"]) == (
        game_id,
        player.user_id,
        "player",
    )
    assert res_codes(await admin.drain()) == []

    await admin.call(373, 343, game_id=game_id, targets="Chile")
    assert 342 not in res_codes(await player.drain(0.2))  # no longer subscribed


async def test_join_refusals(admin: WsClient, player: WsClient, game_id: str) -> None:
    await refused(player, 363, "MISSING_PARAMETER")
    await refused(player, 363, "NOT_FOUND", game_id="no-such-game")
    await refused(player, 364, "NOT_FOUND", game_id="no-such-game")
    await admin.call(375, 341, game_id=game_id)
    await refused(player, 363, "INVALID_STATE", game_id=game_id)


# -- closing (375) -----------------------------------------------------------------------


async def test_close_resolves_parimutuel_pools_and_answers_341(
    admin: WsClient, player: WsClient, source_id: str, game_id: str
) -> None:
    pool_id = await team_pool(admin, game_id, recreate_on_end=True)
    await joined(player, game_id)
    await refused(player, 375, "NOT_AUTHORIZED", game_id=game_id)

    closed = await admin.call(375, 341, game_id=game_id)
    assert set(closed) == {"response_header", "res", "game_id"}
    assert (closed["res"], closed["game_id"]) == (341, game_id)
    resolved = await player.expect(362)
    assert (resolved["pool_id"], resolved["winning_target"]) == (pool_id, "none")
    published = await player.expect(341)
    assert published["game_id"] == game_id and "request_id" not in published["response_header"]
    assert await status(player, game_id) == "game_closed"
    assert game_id not in await listed(player, source_id)
    # a closed game gets no successor pool, recreate_on_end or not
    assert 352 not in res_codes(await player.drain())
    assert (await player.call(387, 3535, game_id=game_id))["pools_list"] == {}
    await refused(admin, 375, "INVALID_STATE", game_id=game_id)
    await refused(admin, 373, "INVALID_STATE", game_id=game_id, targets="Chile")
    await refused(admin, 385, "INVALID_STATE", game_id=game_id, pool_type=3)


async def test_close_waits_for_binary_pools(
    admin: WsClient, player: WsClient, game_id: str
) -> None:
    team = await team_pool(admin, game_id)
    binary = await binary_pool(admin, game_id)
    await joined(player, game_id)

    blocked = await admin.call(375, 368, game_id=game_id)
    assert blocked["res"] == 368, blocked
    assert blocked["pool_id"] == binary and isinstance(blocked["blocked_at"], int)
    assert (await player.expect(362))["pool_id"] == team
    assert (await player.expect(368))["pool_id"] == binary
    assert 341 not in res_codes(await admin.drain() + await player.drain())
    assert await status(player, game_id) == "game_in_progress_betting_closed"
    await refused(admin, 385, "INVALID_STATE", game_id=game_id, pool_type=3)
    assert (await admin.call(375, 368, game_id=game_id))["pool_id"] == binary  # still waits
    assert await status(player, game_id) == "game_in_progress_betting_closed"

    resolved = await admin.call(396, 362, pool_id=binary, target="yes")
    assert (resolved["res"], resolved["winning_target"]) == (362, "yes")
    assert (await admin.call(375, 341, game_id=game_id))["res"] == 341
    assert (await player.expect(341))["game_id"] == game_id
    assert await status(player, game_id) == "game_closed"


# -- listing (380) ------------------------------------------------------------------------


async def test_list_games_for_source_leaves_closed_games_out(
    harness: Harness, admin: WsClient, player: WsClient, source_id: str
) -> None:
    assert await listed(player, source_id) == {}
    later = now_ms(harness) + HOUR_MS
    running = (await create_game(admin, source_id, close_at=later))["game_id"]
    upcoming = (await create_game(admin, source_id, 3701, game_name="Chile - Peru"))["game_id"]
    finished = (await create_game(admin, source_id))["game_id"]
    await admin.call(375, 341, game_id=finished)

    reply = await player.call(380, 345, source_id=source_id)
    assert reply["res"] == 345
    assert reply["games"] == {
        running: {
            "status": "game_in_progress_betting_active",
            "name": "Argentina - Brazil",
            "type": "football",
            "open_at": reply["games"][running]["open_at"],
            "close_at": later,
        },
        upcoming: {
            "status": "betting_not_yet_active",
            "name": "Chile - Peru",
            "type": "football",
            "open_at": reply["games"][upcoming]["open_at"],
            "close_at": None,
        },
    }
    await refused(player, 380, "MISSING_PARAMETER")
    await refused(player, 380, "NOT_FOUND", source_id="no-such-source")


# -- the list of every source's games (3801, ours) -----------------------------------------


async def all_pages(ws: WsClient, **fields: Any) -> list[list[dict[str, Any]]]:
    """Every page of 3801, following ``next_cursor`` until it is null."""
    pages, cursor = [], None
    while True:
        reply = await ws.call(3801, 3451, **fields, **({"cursor": cursor} if cursor else {}))
        assert reply["res"] == 3451, reply
        pages.append(reply["games"])
        cursor = reply["next_cursor"]
        if cursor is None:
            return pages


async def test_list_games_pages_every_sources_games_newest_first(
    harness: Harness, admin: WsClient, outsider: WsClient, player: WsClient, source_id: str
) -> None:
    """Games of two sources, newest first, closed ones left out; two at a time the pages
    join up with nothing twice, and anyone logged in gets the same list."""
    elsewhere = (await outsider.call(611, 621))["sources"][0]["id"]
    first = (await create_game(admin, source_id))["game_id"]
    upcoming = (await create_game(outsider, elsewhere, 3701, game_name="Chile - Peru"))["game_id"]
    closed = (await create_game(admin, source_id))["game_id"]
    newest = (await create_game(outsider, elsewhere, game_name="Spain - Italy"))["game_id"]
    await admin.call(375, 341, game_id=closed)

    pages = await all_pages(player, limit=2)
    assert [len(page) for page in pages] == [2, 1]
    games = [game for page in pages for game in page]
    assert [game["game_id"] for game in games] == [newest, upcoming, first]
    assert games[1] == {
        "game_id": upcoming,
        "name": "Chile - Peru",
        "status": "betting_not_yet_active",
        "source_id": elsewhere,
        "source_name": "elsewhere.org",
        "type": "football",
        "open_at": games[1]["open_at"],
        "live_start_at": games[1]["open_at"],
        "close_at": None,
    }
    assert games[2]["status"] == "game_in_progress_betting_active"
    assert games[2]["source_name"] == "example.com"
    for ws in (admin, outsider):  # roles: any logged-in user, the same list
        assert await all_pages(ws) == [games]


async def test_list_games_is_bounded_to_100_a_page(admin: WsClient, source_id: str) -> None:
    """101 games: the default page is the bound, 100, and the next has the oldest."""
    made = [(await create_game(admin, source_id))["game_id"] for _ in range(101)]
    pages = await all_pages(admin)
    assert [len(page) for page in pages] == [100, 1]
    assert [game["game_id"] for page in pages for game in page] == made[::-1]
    await refused(admin, 3801, "INVALID_PARAMETER", limit=101)


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": [5]}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"cursor": 0}, "cursor"),
        ({"cursor": "-3"}, "cursor"),
        ({"cursor": "next"}, "cursor"),
        ({"cursor": 2**63}, "cursor"),
        ({"cursor": {"after": 1}}, "cursor"),
    ],
)
async def test_list_games_refuses_bad_paging(
    player: WsClient, admin: WsClient, game_id: str, fields: dict[str, Any], parameter: str
) -> None:
    before = await all_pages(player)
    reply = await refused(player, 3801, "INVALID_PARAMETER", **fields)
    assert reply["parameter"] == parameter
    assert await all_pages(player) == before


# -- roles on every message ---------------------------------------------------------------


def admin_requests(source_id: str, game_id: str, upcoming_id: str) -> dict[int, dict[str, Any]]:
    """A well-formed request for each op that only admins may send."""
    return {
        370: {"source_id": source_id, "game_name": "Chile - Peru"},
        3701: {"source_id": source_id, "game_name": "Chile - Peru"},
        3702: {"game_id": upcoming_id, "targets": "Chile"},
        373: {"game_id": game_id, "targets": "Chile"},
        375: {"game_id": game_id},
        385: {"game_id": game_id, "action": "goal", "targets": "argentina,brazil"},
        395: {"game_id": game_id, "action_id": "goal", "target_id": "argentina:1"},
    }


async def test_players_and_other_developers_are_refused_admin_ops(
    admin: WsClient, player: WsClient, outsider: WsClient, source_id: str, game_id: str
) -> None:
    upcoming = (await create_game(admin, source_id, 3701))["game_id"]
    before = (await listed(admin, source_id), await admin.call(372, 342, game_id=game_id))
    for ws in (player, outsider):
        for op, fields in admin_requests(source_id, game_id, upcoming).items():
            await refused(ws, op, "NOT_AUTHORIZED", **fields)
        denied = await ws.call(616, 645, game_id=game_id)
        assert denied["res"] == 645 and denied["reason"]
    after = (await listed(admin, source_id), await admin.call(372, 342, game_id=game_id))
    assert before[0] == after[0]
    assert before[1]["targets"] == after[1]["targets"]
    assert before[1]["past_events"] == after[1]["past_events"] == {}


async def test_source_admins_need_616_for_pools_and_events(
    harness: Harness, admin: WsClient, source_id: str, game_id: str
) -> None:
    pool_id = await binary_pool(admin, game_id)
    async with client(harness, "second", "developer") as second:
        r = await harness.http.post(
            f"/v1/sources/{source_id}/admins", json={"user_id": second.user_id}
        )
        assert r.status_code == 200, r.text
        await refused(second, 385, "NOT_AUTHORIZED", game_id=game_id, pool_type=3)
        await refused(
            second,
            395,
            "NOT_AUTHORIZED",
            game_id=game_id,
            action_id="goal",
            target_id="argentina:1",
        )
        await refused(second, 396, "NOT_AUTHORIZED", pool_id=pool_id, target="yes")
        # source-level ops need no 616
        assert (await second.call(373, 343, game_id=game_id, targets="Chile"))["res"] == 343
        assert (await second.call(616, 640, game_id=game_id))["res"] == 640
        assert (
            await second.call(395, 366, game_id=game_id, action_id="goal", target_id="argentina:1")
        )["res"] == 366


# -- malformed requests -------------------------------------------------------------------

SOURCE, GAME = "<source>", "<game>"
MALFORMED = [
    (372, {}, "MISSING_PARAMETER"),
    (372, {"game_id": ""}, "MISSING_PARAMETER"),
    (372, {"game_id": "no-such-game"}, "NOT_FOUND"),
    (372, {"game_id": 17}, "NOT_FOUND"),
    (372, {"game_id": ["x"]}, "INVALID_PARAMETER"),
    (373, {"targets": "Chile"}, "MISSING_PARAMETER"),
    (373, {"game_id": GAME, "targets": 5}, "INVALID_PARAMETER"),
    (373, {"game_id": GAME, "targets": "Chile::1"}, "INVALID_TARGET"),
    (373, {"game_id": GAME, "targets": "None:1"}, "INVALID_TARGET"),
    (373, {"game_id": GAME, "actions": [1]}, "INVALID_PARAMETER"),
    (363, {}, "MISSING_PARAMETER"),
    (364, {}, "MISSING_PARAMETER"),
    (375, {}, "MISSING_PARAMETER"),
    (375, {"game_id": "no-such-game"}, "NOT_FOUND"),
    (616, {}, "MISSING_PARAMETER"),
    (3702, {}, "MISSING_PARAMETER"),
    (3702, {"game_id": "no-such-game"}, "NOT_FOUND"),
    (370, {"game_name": "X"}, "MISSING_PARAMETER"),
    (370, {"source_id": "no-such-source", "game_name": "X"}, "NOT_FOUND"),
    (370, {"source_id": SOURCE}, "MISSING_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "currency": "EURO"}, "INVALID_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "currency": "E1R"}, "INVALID_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "currency": 978}, "INVALID_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "close_at": 1417104170}, "INVALID_PARAMETER"),
    (
        370,
        {
            "source_id": SOURCE,
            "game_name": "X",
            "open_at": 4102444800000,
            "close_at": 4070908800000,
        },
        "INVALID_PARAMETER",
    ),  # closes in 2099, opens in 2100
    (370, {"source_id": SOURCE, "game_name": "X", "open_at": "soon"}, "INVALID_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "open_at": -5}, "INVALID_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "targets": {"a": 1}}, "INVALID_PARAMETER"),
    (370, {"source_id": SOURCE, "game_name": "X", "targets": "A,,B:"}, "INVALID_TARGET"),
    (370, {"source_id": SOURCE, "game_name": "X", "takeout": "2"}, "INVALID_PARAMETER"),
    (3701, {"source_id": SOURCE, "game_name": "X" * 300}, "INVALID_PARAMETER"),
    (380, {}, "MISSING_PARAMETER"),
    (366, {}, "MISSING_PARAMETER"),
]


@pytest.mark.parametrize(("op", "fields", "code"), MALFORMED)
async def test_malformed_requests_are_refused_without_effect(
    admin: WsClient, source_id: str, game_id: str, op: int, fields: dict[str, Any], code: str
) -> None:
    fields = {
        k: {SOURCE: source_id, GAME: game_id}.get(v, v) if isinstance(v, str) else v
        for k, v in fields.items()
    }
    before = (await listed(admin, source_id), await admin.call(372, 342, game_id=game_id))
    await refused(admin, op, code, **fields)
    after = (await listed(admin, source_id), await admin.call(372, 342, game_id=game_id))
    assert before[0] == after[0]
    assert {k: v for k, v in before[1].items() if k != "response_header"} == {
        k: v for k, v in after[1].items() if k != "response_header"
    }
