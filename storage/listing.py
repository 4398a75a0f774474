"""Reads behind the operator listings (``GET /v1/sources``, ``/v1/games``,
``/v1/games/<id>/pools``): pages of rows in creation order, each read with a fixed number
of queries whatever its size. They run inside the storage actor (``services.storage.read``).
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database
from storage.dialect import json_number


@dataclass(frozen=True, slots=True)
class SourceRow:
    id: str
    name: str
    description: str
    owner_id: int | None
    admins: tuple[int, ...]
    closed: bool
    created_at: int
    games: int


@dataclass(frozen=True, slots=True)
class GameRow:
    doc: str  # the stored game document (JSON)
    pools: dict[str, int]  # how many of its pools are in each status


@dataclass(frozen=True, slots=True)
class PoolRow:
    doc: str  # the stored pool document (JSON)
    bets: int
    staked: int  # minor units of the pool's currency


def sources_page(db: Database, limit: int, offset: int) -> list[SourceRow]:
    """Up to ``limit`` sources from ``offset``, with their admins and game counts."""
    rows = db.rows(
        "SELECT s.id, s.name, s.description, s.owner_id, s.closed, s.created_at,"
        " (SELECT COUNT(*) FROM games g WHERE g.source_id = s.id) AS games"
        " FROM sources s ORDER BY s.rowid LIMIT ? OFFSET ?",
        (limit, offset),
    )
    admins: dict[str, list[int]] = {}
    for row in db.rows(
        "SELECT source_id, user_id FROM source_admins WHERE source_id IN"
        " (SELECT id FROM sources ORDER BY rowid LIMIT ? OFFSET ?) ORDER BY user_id",
        (limit, offset),
    ):
        admins.setdefault(row["source_id"], []).append(row["user_id"])
    return [
        SourceRow(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            owner_id=row["owner_id"],
            admins=tuple(admins.get(row["id"], ())),
            closed=bool(row["closed"]),
            created_at=row["created_at"],
            games=row["games"],
        )
        for row in rows
    ]


def games_page(db: Database, limit: int, offset: int) -> list[GameRow]:
    """Up to ``limit`` games from ``offset``: each document and its pools by status."""
    rows = db.rows("SELECT id, doc FROM games ORDER BY rowid LIMIT ? OFFSET ?", (limit, offset))
    counts: dict[str, dict[str, int]] = {}
    for row in db.rows(
        "SELECT game_id, status, COUNT(*) AS n FROM pools WHERE game_id IN"
        " (SELECT id FROM games ORDER BY rowid LIMIT ? OFFSET ?) GROUP BY game_id, status",
        (limit, offset),
    ):
        counts.setdefault(row["game_id"], {})[row["status"]] = row["n"]
    return [GameRow(row["doc"], counts.get(row["id"], {})) for row in rows]


def pools_page(db: Database, game_id: str, limit: int, offset: int) -> list[PoolRow] | None:
    """Up to ``limit`` of the game's pools from ``offset`` in creation order, with their
    bets and stakes; None when there is no such game."""
    if db.scalar("SELECT 1 FROM games WHERE id = ?", (game_id,)) is None:
        return None
    rows = db.rows(
        "SELECT p.doc, COUNT(b.id) AS bets, COALESCE(SUM(b.amount), 0) AS staked"
        " FROM pools p LEFT JOIN bets b ON b.pool_id = p.id WHERE p.game_id = ?"
        # creation order: a pool's rowid changes each time it is saved (INSERT OR REPLACE)
        f" GROUP BY p.id ORDER BY {json_number(db.engine, 'p.doc', 'start_at')}, p.rowid"
        " LIMIT ? OFFSET ?",
        (game_id, limit, offset),
    )
    return [PoolRow(row["doc"], row["bets"], row["staked"]) for row in rows]
