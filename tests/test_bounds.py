"""The bounds of decisions §13 over the real websocket: a game has at most 1,000 targets,
100 actions and 10,000 events, a pool at most 200 targets (and a target name 128
characters, an action name 64). Every op that would pass one
is refused with INVALID_PARAMETER and changes nothing; a game stored over a bound before
the bounds existed still loads, is served and takes what adds nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from trio_websocket import open_websocket_url

from actors.game import game_row
from domain.game import MAX_GAME_EVENTS, Game
from domain.targets import (
    MAX_ACTION_NAME,
    MAX_GAME_ACTIONS,
    MAX_GAME_TARGETS,
    MAX_POOL_TARGETS,
    MAX_TARGET_NAME,
    TargetTree,
)
from storage.changes import Insert, Upsert
from tests.conftest import Harness, WsClient, setup_game
from tests.test_ws_games import refused


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


#: The 342 of a game at the bounds is over a megabyte (10,000 events): more than
#: trio-websocket takes by default (docs/protocol.md says so).
LARGEST_MESSAGE = 4 << 20


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[WsClient]:
    user = await harness.user("bounds-admin", roles=["developer"])
    url = harness.ws_url(user)
    async with open_websocket_url(url, max_message_size=LARGEST_MESSAGE) as ws:
        yield WsClient(ws, user["user_id"])


@pytest.fixture
async def source_id(admin: WsClient) -> str:
    return (await admin.call(365, 335, source_name="bounds.example"))["source_id"]


async def details(ws: WsClient, game_id: str) -> dict[str, Any]:
    """The game's 342, without its envelope."""
    reply = await ws.call(372, 342, game_id=game_id)
    return {key: value for key, value in reply.items() if key != "response_header"}


def over(reply: dict[str, Any], parameter: str, bound: int) -> None:
    assert reply["parameter"] == parameter and reply["limit"] == bound, reply
    assert str(bound) in reply["text"], reply


async def game_count(harness: Harness) -> int:
    return await harness.services.storage.read(lambda db: db.scalar("SELECT COUNT(*) FROM games"))


@pytest.mark.parametrize("op", [370, 3701])
async def test_a_new_game_past_a_bound_is_refused_and_not_made(
    harness: Harness, admin: WsClient, source_id: str, op: int
) -> None:
    game = {"source_id": source_id, "game_name": "Too big"}
    many_targets = {**game, "actions": "goal", "targets": names("t", MAX_GAME_TARGETS + 1)}
    over(await refused(admin, op, "INVALID_PARAMETER", **many_targets), "targets", 1_000)
    # implied parents count: 600 players of 2 teams are 602 targets, 1,002 of them 1,004
    nested = [f"{team}:{n}" for team in ("a", "b") for n in range(501)]
    over(await refused(admin, op, "INVALID_PARAMETER", **game, targets=nested), "targets", 1_000)
    many_actions = {**game, "actions": names("a", MAX_GAME_ACTIONS + 1), "targets": "x"}
    over(await refused(admin, op, "INVALID_PARAMETER", **many_actions), "actions", 100)
    assert await game_count(harness) == 0
    at_the_bounds = {
        **game,
        "actions": names("a", MAX_GAME_ACTIONS),
        "targets": names("t", MAX_GAME_TARGETS),
    }
    assert (await admin.call(op, **at_the_bounds))["res"] in (340, 3401)


async def test_additions_past_a_bound_are_refused_and_change_nothing(
    admin: WsClient, source_id: str
) -> None:
    created = await admin.call(
        3701,
        3401,
        source_id=source_id,
        game_name="Nearly full",
        actions=names("a", MAX_GAME_ACTIONS - 1),
        targets=names("t", MAX_GAME_TARGETS - 1),
    )
    game_id = created["game_id"]
    await admin.call(616, 640, game_id=game_id)
    before = await details(admin, game_id)
    for op in (3702, 373):
        two = {"game_id": game_id, "targets": ["new1", "new2"]}
        over(await refused(admin, op, "INVALID_PARAMETER", **two), "targets", 1_000)
        two = {"game_id": game_id, "actions": ["new1", "new2"]}
        over(await refused(admin, op, "INVALID_PARAMETER", **two), "actions", 100)
        assert await details(admin, game_id) == before
    # repeats add nothing; one more of each fills the game to its bounds
    full = {"actions": ["A0", "last"], "targets": ["T0", "last"]}
    assert (await admin.call(3702, 340, game_id=game_id, **full))["res"] == 340
    shown = await details(admin, game_id)
    assert len(shown["actions"]) == MAX_GAME_ACTIONS
    assert len(shown["targets"]) == MAX_GAME_TARGETS + 1  # and "none"


async def test_a_pool_past_its_bound_is_refused_and_not_opened(
    harness: Harness, admin: WsClient, source_id: str
) -> None:
    created = await admin.call(
        370,
        340,
        source_id=source_id,
        game_name="Many players",
        actions="goal",
        targets=names("t", MAX_POOL_TARGETS + 1),
    )
    game_id = created["game_id"]
    await admin.call(616, 640, game_id=game_id)
    pool = {"game_id": game_id, "action": "goal"}
    too_many = names("T", MAX_POOL_TARGETS + 1)
    over(await refused(admin, 385, "INVALID_PARAMETER", **pool, targets=too_many), "targets", 200)
    pools = "SELECT COUNT(*) FROM pools"
    assert await harness.services.storage.read(lambda db: db.scalar(pools)) == 0
    # "none" is not counted, and a name sent twice is one target
    at_the_bound = [*too_many[:MAX_POOL_TARGETS], "none", "T0", "t0"]
    opened = await admin.call(385, 350, **pool, targets=at_the_bound)
    assert opened["res"] == 350


async def stored_events(harness: Harness, game_id: str, count: int) -> None:
    """``count`` events stored as 395 would store them (10,000 ops take minutes)."""
    await harness.services.storage.commit(
        [
            Insert(
                "events",
                {
                    "id": str(uuid.uuid4()),
                    "game_id": game_id,
                    "action_id": "goal",
                    "target_id": "argentina:1",
                    "happened_at": 1_700_000_000_000 + i,
                    "reported_at": None,
                    "registered_at": 1_700_000_000_000 + i,
                },
            )
            for i in range(count)
        ]
    )
    harness.services.supervisor.kill(f"game:{game_id}")  # it reloads them


async def event_count(harness: Harness, game_id: str) -> int:
    sql = "SELECT COUNT(*) FROM events WHERE game_id = ?"
    return await harness.services.storage.read(lambda db: db.scalar(sql, (game_id,)))


async def test_an_event_past_the_bound_is_refused_and_not_recorded(
    harness: Harness, admin: WsClient
) -> None:
    game_id = await setup_game(admin)
    await stored_events(harness, game_id, MAX_GAME_EVENTS - 1)
    event = {"game_id": game_id, "action_id": "goal", "target_id": "Brazil:7"}
    assert (await admin.call(395, 366, **event))["res"] == 366
    over(await refused(admin, 395, "INVALID_PARAMETER", **event), "game_id", 10_000)
    assert await event_count(harness, game_id) == MAX_GAME_EVENTS
    assert len((await details(admin, game_id))["past_events"]) == MAX_GAME_EVENTS
    assert await harness.audit() == []


async def test_a_game_stored_over_the_bounds_is_served_and_takes_no_more(
    harness: Harness, admin: WsClient, source_id: str
) -> None:
    """As an older version could have stored it: 1,200 targets, 120 actions."""
    created = await admin.call(370, 340, source_id=source_id, game_name="Old", targets="x")
    game_id = created["game_id"]
    await admin.call(616, 640, game_id=game_id)
    read = "SELECT doc FROM games WHERE id = ?"
    doc = await harness.services.storage.read(lambda db: db.scalar(read, (game_id,)))
    game = Game.from_doc(msgspec.json.decode(doc))
    game.targets = TargetTree({f"t{i}": f"T{i}" for i in range(1_200)}).as_dict()
    game.actions = {f"a{i}": {"name": f"A{i}"} for i in range(120)}
    await harness.services.storage.commit([Upsert("games", game_row(game))])
    harness.services.supervisor.kill(f"game:{game_id}")

    shown = await details(admin, game_id)
    assert (len(shown["targets"]), len(shown["actions"])) == (1_201, 120)
    draw = await harness.http.get(f"/draws/{game_id}")
    assert draw.status_code == 200, draw.text
    # what adds nothing is taken; what adds is refused
    again = {"game_id": game_id, "targets": ["T5"], "actions": ["A5"]}
    assert (await admin.call(373, 343, **again))["res"] == 343
    more = {"game_id": game_id, "targets": ["T5", "fresh"]}
    over(await refused(admin, 373, "INVALID_PARAMETER", **more), "targets", 1_000)
    assert len((await details(admin, game_id))["targets"]) == 1_201
    pool = {"game_id": game_id, "action": "a1", "targets": names("t", 150)}
    assert (await admin.call(385, 350, **pool))["res"] == 350


async def test_names_past_their_length_are_refused(
    harness: Harness, admin: WsClient, source_id: str
) -> None:
    """Every event repeats its target and action: their lengths are bounds too."""
    game = {"source_id": source_id, "game_name": "Long names"}
    long_target = {**game, "targets": ["Team:" + "x" * (MAX_TARGET_NAME - 4)]}
    over(await refused(admin, 370, "INVALID_PARAMETER", **long_target), "targets", 128)
    long_action = {**game, "actions": ["y" * (MAX_ACTION_NAME + 1)], "targets": "a"}
    over(await refused(admin, 3701, "INVALID_PARAMETER", **long_action), "actions", 64)
    assert await game_count(harness) == 0
    longest = {**game, "actions": ["y" * MAX_ACTION_NAME], "targets": ["x" * MAX_TARGET_NAME]}
    game_id = (await admin.call(370, 340, **longest))["game_id"]
    await admin.call(616, 640, game_id=game_id)
    more = {"game_id": game_id, "targets": ["z" * (MAX_TARGET_NAME + 1)]}
    over(await refused(admin, 373, "INVALID_PARAMETER", **more), "targets", 128)
