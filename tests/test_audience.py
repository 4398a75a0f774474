"""A live audience (decisions §9) over the real websocket: every broadcast numbered
(``seq``, ``game_id``) and in order across restarts, resuming with ``since_seq``, presence
above ``presence_limit`` (471), and the page's counterpart in tests/test_browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors import hub as hub_module
from tests.conftest import Harness, WsClient, running_harness, setup_game

TEAMS = {"description": "Next goal", "action": "Goal", "targets": "argentina,brazil"}


@pytest.fixture
async def admin(harness: Harness) -> AsyncIterator[WsClient]:
    """A developer, who becomes the source's and the game's admin in ``setup_game``."""
    user = await harness.user("admin", roles=["developer"])
    async with harness.connect(user) as ws:
        yield ws


async def new_game(admin: WsClient) -> str:
    """``setup_game``, with its own 470 (the admin joining) read."""
    game_id = await setup_game(admin)
    await admin.expect(470)
    return game_id


async def open_pool(admin: WsClient, game_id: str) -> int:
    """Create a pool (one 352 to the game's subscribers) and return its seq."""
    await admin.call(385, 350, game_id=game_id, pool_type="1", **TEAMS)
    return header(await admin.expect(352))["seq"]


def header(message: dict[str, Any]) -> dict[str, Any]:
    return message["response_header"]


async def refused(ws: WsClient, code: str, **fields: Any) -> None:
    reply = await ws.call(363, **fields)
    assert (reply["res"], reply["error_code"]) == (666, code), reply


# -- seq ----------------------------------------------------------------------------


async def test_seq_goes_up_by_one_per_broadcast_and_never_back_across_a_restart(
    tmp_path: Path,
) -> None:
    async with running_harness(tmp_path) as h:
        admin = await h.user("admin", roles=["developer"])
        async with h.connect(admin) as ws:
            game_id = await new_game(ws)
            seqs = [await open_pool(ws, game_id) for _ in range(3)]
            assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
            event = await ws.call(395, 366, game_id=game_id, action_id="goal", target_id="brazil:7")
            assert "seq" not in header(event)  # the admin's own reply: not numbered
            news = await ws.expect(366, request_id=None)
            assert "request_id" not in header(news)
            assert (header(news)["game_id"], header(news)["seq"]) == (game_id, seqs[-1] + 1)
            last = (await ws.call(363, 333, game_id=game_id))["seq"]
            assert last >= seqs[-1] + 1
    async with running_harness(tmp_path) as h, h.connect(admin) as ws:
        joined = await ws.call(363, 333, game_id=game_id, since_seq=last)
        # history is in memory: a restart loses it, and the numbering jumps past the gap
        assert joined["resumed"] is False and joined["seq"] > last
        assert header(await ws.expect(470))["seq"] == joined["seq"] + 1  # its own join
        assert await open_pool(ws, game_id) == joined["seq"] + 2


# -- resume -------------------------------------------------------------------------


async def test_a_client_that_drops_and_resumes_misses_nothing_and_sees_nothing_twice(
    harness: Harness,
) -> None:
    admin = await harness.user("admin", roles=["developer"])
    player = await harness.user("player")
    async with harness.connect(admin) as admin_ws:
        game_id = await new_game(admin_ws)
        async with harness.connect(player) as ws:
            seen = (await ws.call(363, 333, game_id=game_id))["seq"]
            seen = header(await ws.expect(470))["seq"]  # its own join, to everyone
            await open_pool(admin_ws, game_id)
            seen = header(await ws.expect(352))["seq"]
        # dropped: the game goes on without it
        missed = [await open_pool(admin_ws, game_id) for _ in range(4)]
        async with harness.connect(player) as ws:
            joined = await ws.call(363, 333, game_id=game_id, since_seq=seen)
            assert (joined["resumed"], joined["seq"]) == (True, missed[-1])
            live = await open_pool(admin_ws, game_id)
            got = [await ws.receive() for _ in range(len(missed) + 2)]  # + its 470, + live
            assert [header(m)["seq"] for m in got] == [*missed, missed[-1] + 1, live]
            assert [m["res"] for m in got] == [352, 352, 352, 352, 470, 352]
            assert await ws.drain() == []


async def test_resume_is_refused_when_the_broadcasts_are_no_longer_all_kept(
    harness: Harness, admin: WsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "HISTORY_COUNT", 2)
    monkeypatch.setattr(hub_module, "HISTORY_SECONDS", 0.0)
    game_id = await new_game(admin)
    first = await open_pool(admin, game_id)
    for _ in range(3):
        await open_pool(admin, game_id)
    joined = await admin.call(363, 333, game_id=game_id, since_seq=first)
    assert joined["resumed"] is False and joined["seq"] == first + 3
    assert await admin.drain() == []  # nothing replayed: the client reads the game again
    kept = await admin.call(363, 333, game_id=game_id, since_seq=first + 1)
    assert kept["resumed"] is True
    assert [header(m)["seq"] for m in await admin.drain()] == [first + 2, first + 3]


async def test_a_replay_larger_than_half_the_outbox_is_not_resumed(
    harness: Harness, admin: WsClient
) -> None:
    game_id = await new_game(admin)
    first = await open_pool(admin, game_id)
    await open_pool(admin, game_id)
    harness.services.settings.outbox_bytes = 1_000  # a 352 is some hundred bytes
    joined = await admin.call(363, 333, game_id=game_id, since_seq=first - 1)
    assert joined["resumed"] is False
    assert await admin.drain() == []


async def test_without_since_seq_the_join_carries_the_latest_seq_only(admin: WsClient) -> None:
    game_id = await new_game(admin)
    latest = await open_pool(admin, game_id)
    joined = await admin.call(363, 333, game_id=game_id)
    assert set(joined) == {"response_header", "res", "game_id", "seq", "viewers"}
    assert joined["seq"] == latest


async def test_a_bad_since_seq_is_refused_and_subscribes_nobody(
    harness: Harness, admin: WsClient
) -> None:
    game_id = await new_game(admin)
    latest = await open_pool(admin, game_id)
    player = await harness.user("player")
    async with harness.connect(player) as ws:
        for bad in (-1, "x", True, 1.5, [1], {"a": 1}, "9" * 40, latest + 1):
            await refused(ws, "INVALID_PARAMETER", game_id=game_id, since_seq=bad)
        assert harness.services.hub.viewers(game_id) == 1  # the admin alone
        assert await admin.drain() == []  # nobody joined: no 470


# -- presence -----------------------------------------------------------------------


async def test_joins_go_to_everyone_up_to_the_limit_then_to_admins_with_counts_for_all() -> None:
    async with running_harness(presence_limit=2) as h:
        admin = await h.user("admin", roles=["developer"])
        async with h.connect(admin) as admin_ws:
            game_id = await new_game(admin_ws)  # one subscriber: the admin
            one, two = await h.user("one"), await h.user("two")
            async with h.connect(one) as one_ws, h.connect(two) as two_ws:
                await one_ws.call(363, 333, game_id=game_id)  # two subscribers: at the limit
                to_all = await admin_ws.expect(470)
                assert header(to_all)["game_id"] == game_id and "seq" in header(to_all)
                assert (await one_ws.expect(470))["user_id"] == one_ws.user_id

                await two_ws.call(363, 333, game_id=game_id)  # three: above it
                to_admin = await admin_ws.expect(470)
                assert to_admin["user_id"] == two_ws.user_id
                assert header(to_admin)["game_id"] == game_id and "seq" not in header(to_admin)
                for ws in (admin_ws, one_ws, two_ws):
                    counted = await ws.expect(471)
                    assert {k: counted[k] for k in ("game_id", "viewers")} == {
                        "game_id": game_id,
                        "viewers": 3,
                    }
                    assert header(counted)["game_id"] == game_id and "seq" in header(counted)
                assert 470 not in [m["res"] for m in await one_ws.drain()]

                await two_ws.call(364, 334, game_id=game_id)  # back to two: 480 to all
                assert (await one_ws.expect(480))["user_id"] == two_ws.user_id
                assert (await one_ws.expect(471))["viewers"] == 2  # the count put right


async def test_op_2_lists_471(admin: WsClient) -> None:
    listing = await admin.call(2, 2)
    assert 471 in listing["response_codes"].values()
