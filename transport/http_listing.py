"""Operator listings: what sources, games and pools there are (``tote sources``, ``tote
games``, ``tote pools GAME``), read from storage rather than asked of the actors, so that
listing never wakes a passivated game or pool nor waits behind their traffic.

Each list is in creation order and paged by ``limit`` (1 to 1000, default 100) and
``offset``; ``more`` says a next page exists.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import quart
from quart import Response, request

from actors.services import Services
from domain import params
from domain.errors import DomainError
from domain.game import Game
from domain.money import to_wire
from storage import listing
from storage.database import Database
from storage.listing import SourceRow
from transport.httpkit import json_response, operator_only

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def page() -> tuple[int, int]:
    """(limit, offset) from the query string; INVALID_PARAMETER names the bad one."""
    query = dict(request.args)
    limit = params.integer(query, "limit", default=DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    offset = params.integer(query, "offset", default=0, minimum=0, maximum=params.INT64_MAX)
    assert limit is not None and offset is not None  # both have defaults
    return limit, offset


def paged(name: str, rows: list[dict[str, Any]], limit: int, **extra: Any) -> dict[str, Any]:
    """The first ``limit`` rows (one more was read to know whether there is more)."""
    return {**extra, name: rows[:limit], "more": len(rows) > limit}


def source_body(row: SourceRow) -> dict[str, Any]:
    """A source as the listing shows it."""
    return {
        "source_id": row.id,
        "name": row.name,
        "description": row.description,
        "owner_id": row.owner_id,
        "admins": list(row.admins),
        "closed": row.closed,
        "created_at": row.created_at,
        "games": row.games,
    }


def game_summary(doc: str, pools: dict[str, int], now: int) -> dict[str, Any]:
    """What an operator needs of a game; its status is computed for ``now``."""
    game = Game.from_doc(msgspec.json.decode(doc))
    return {
        "game_id": game.id,
        "source_id": game.source_id,
        "game_name": game.name,
        "status": game.status(now),
        "currency": game.currency,
        "open_at": game.open_at,
        "live_start_at": game.live_start_at,
        "created_at": game.created_at,
        "closed_at": game.closed_at,
        "admins": game.admins,
        "pools": pools,
    }


def pool_summaries(
    db: Database, game_id: str, limit: int, offset: int
) -> list[dict[str, Any]] | None:
    """The page of the game's pools as the listing shows them (decoded in the storage
    thread, as they are read); None when there is no such game."""
    rows = listing.pools_page(db, game_id, limit, offset)
    if rows is None:
        return None
    return [pool_summary(msgspec.json.decode(row.doc), row.bets, row.staked) for row in rows]


def pool_summary(doc: dict[str, Any], bets: int, staked: int) -> dict[str, Any]:
    """What an operator needs of a pool; ``staked`` in the pool currency's exact decimal."""
    return {
        "pool_id": doc["id"],
        "status": doc["status"],
        "action": doc.get("action"),
        "pool_type": doc.get("pool_type"),
        "currency": doc.get("currency"),
        "start_at": doc.get("start_at"),
        "finish_at": doc.get("finish_at"),
        "winning_target": doc.get("winning_target"),
        "bets": bets,
        "staked": to_wire(staked, doc.get("exponent", 2)),
    }


def listing_blueprint(services: Services) -> quart.Blueprint:
    """``GET /v1/sources``, ``/v1/games`` and ``/v1/games/<id>/pools`` (operator key)."""
    blueprint = quart.Blueprint("listing", __name__)
    operator = operator_only(services)
    read = services.storage.read

    @blueprint.get("/v1/sources")
    @operator
    async def list_sources() -> Response:
        limit, offset = page()
        rows = await read(lambda db: listing.sources_page(db, limit + 1, offset))
        return json_response(paged("sources", [source_body(row) for row in rows], limit))

    @blueprint.get("/v1/games")
    @operator
    async def list_games() -> Response:
        limit, offset = page()
        rows = await read(lambda db: listing.games_page(db, limit + 1, offset))
        now = services.clock.now_ms()
        # up to 1,000 game documents to decode: in a worker thread, not on the loop
        summaries = await services.storage.build_document(
            lambda: [game_summary(row.doc, row.pools, now) for row in rows]
        )
        return json_response(paged("games", summaries, limit))

    @blueprint.get("/v1/games/<game_id>/pools")
    @operator
    async def list_pools(game_id: str) -> Response:
        if not _ID.fullmatch(game_id):
            raise DomainError(
                "INVALID_PARAMETER",
                "game_id must be 1 to 64 letters, digits, '-' or '_'.",
                parameter="game_id",
            )
        limit, offset = page()
        rows = await read(lambda db: pool_summaries(db, game_id, limit + 1, offset))
        if rows is None:
            raise DomainError("NOT_FOUND", f"There is no game {game_id}.", parameter="game_id")
        return json_response(paged("pools", rows, limit, game_id=game_id))

    return blueprint
