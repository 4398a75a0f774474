"""``GET /v1/sources``, ``/v1/games`` and ``/v1/games/{id}/pools`` and the ``tote sources``,
``tote games`` and ``tote pools`` commands over them, against a real server."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.codec import decode
from tests.conftest import Harness
from tests.test_cli import Cli
from tests.test_ws_pools import table


@pytest.fixture
def tote(harness: Harness, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The command line against the harness (the URL and key given as flags)."""
    return Cli(harness, capsys)


async def test_lists_show_sources_games_and_pools(harness: Harness, tote: Cli) -> None:
    async with table(harness, "ann", "bob") as t:
        pool_id = await t.pool()
        await t.bet("ann", pool_id, "argentina", "2.50")
        await t.bet("bob", pool_id, "brazil", "1")
        await t.pool(description="another")

        sources = (await tote.ok("sources"))["sources"]
        assert len(sources) == 1 and sources[0]["name"] == "example.com"
        assert sources[0]["games"] == 1 and sources[0]["closed"] is False
        admin = sources[0]["owner_id"]
        assert sources[0]["admins"] == [admin]

        listed = await tote.ok("games")
        assert listed["more"] is False
        (game,) = listed["games"]
        assert game["game_id"] == t.game_id and game["source_id"] == sources[0]["source_id"]
        assert game["game_name"] == "Argentina - Brazil" and game["pools"] == {"open": 2}
        assert game["status"] == "game_in_progress_betting_active" and game["admins"] == [admin]

        pools = await tote.ok("pools", t.game_id)
        assert pools["game_id"] == t.game_id and pools["more"] is False
        first, second = pools["pools"]
        assert first["pool_id"] == pool_id and first["status"] == "open"
        assert (first["bets"], first["staked"]) == (2, Decimal("3.5"))
        assert (second["bets"], second["staked"]) == (0, 0)

        page = await tote.ok("pools", t.game_id, "--limit", "1", "--offset", "1")
        assert [p["pool_id"] for p in page["pools"]] == [second["pool_id"]]
        assert (await tote.ok("pools", t.game_id, "--limit", "1"))["more"] is True


async def test_empty_lists(tote: Cli) -> None:
    assert await tote.ok("sources") == {"sources": [], "more": False}
    assert await tote.ok("games") == {"games": [], "more": False}


@pytest.mark.parametrize(
    ("path", "status", "code", "parameter"),
    [
        ("/v1/games/nope/pools", 404, "NOT_FOUND", "game_id"),
        ("/v1/games/a%20b/pools", 400, "INVALID_PARAMETER", "game_id"),
        (f"/v1/games/{'x' * 65}/pools", 400, "INVALID_PARAMETER", "game_id"),
        ("/v1/games?limit=0", 400, "INVALID_PARAMETER", "limit"),
        ("/v1/games?limit=1001", 400, "INVALID_PARAMETER", "limit"),
        ("/v1/sources?limit=x", 400, "INVALID_PARAMETER", "limit"),
        ("/v1/sources?limit=1.5", 400, "INVALID_PARAMETER", "limit"),
        ("/v1/games?offset=-1", 400, "INVALID_PARAMETER", "offset"),
        ("/v1/games?offset=99999999999999999999", 400, "INVALID_PARAMETER", "offset"),
    ],
)
async def test_bad_paths_and_pages_are_refused(
    harness: Harness, path: str, status: int, code: str, parameter: str
) -> None:
    r = await harness.http.get(path)
    assert r.status_code == status, r.text
    body = decode(r.content)
    assert (body["errorCode"], body["parameter"]) == (code, parameter)


@pytest.mark.parametrize("path", ["/v1/sources", "/v1/games", "/v1/games/x/pools"])
async def test_lists_need_the_operator_key(harness: Harness, path: str) -> None:
    r = await harness.http.get(path, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert decode(r.content)["errorCode"] == "AUTHENTICATION_FAILED"
