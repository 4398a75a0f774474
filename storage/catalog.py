"""Reads behind the lotteries.io resources (seed 003): sources, games, pools and bet counts
as stored. Each function runs inside the storage actor (``services.storage.read``), so it
sees every committed change and never a half-done one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.database import Database

_SOURCE_COLUMNS = "id, name, description, closed, created_at"


def sources_page(db: Database, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """How many sources there are, and the ones in ``[offset, offset + limit)``, oldest
    first."""
    total = db.scalar("SELECT COUNT(*) FROM sources")
    rows = db.rows(
        f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY created_at, rowid LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return total, rows


def source(db: Database, source_id: str) -> dict[str, Any] | None:
    rows = db.rows(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = ?", (source_id,))
    return rows[0] if rows else None


def game(db: Database, game_id: str) -> tuple[str, list[dict[str, Any]]] | None:
    """The game's document and its events in the order they happened."""
    rows = db.rows("SELECT doc FROM games WHERE id = ?", (game_id,))
    if not rows:
        return None
    events = db.rows(
        "SELECT action_id, target_id, happened_at FROM events WHERE game_id = ?"
        " ORDER BY happened_at, rowid",
        (game_id,),
    )
    return rows[0]["doc"], events


def pools_of(
    db: Database, source_id: str, game_id: str | None = None
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The source's games (id -> document) and the pools on them (or on one of them):
    each pool's document and whether an event resolution is committed for it."""
    games = {
        row["id"]: row["doc"]
        for row in db.rows("SELECT id, doc FROM games WHERE source_id = ?", (source_id,))
    }
    if game_id is not None and game_id not in games:
        return games, []
    where, args = ("p.game_id = ?", (game_id,)) if game_id else ("g.source_id = ?", (source_id,))
    pools = db.rows(
        "SELECT p.id, p.doc, r.pool_id IS NOT NULL AS resolving FROM pools p"
        " JOIN games g ON g.id = p.game_id"
        " LEFT JOIN pending_resolutions r ON r.pool_id = p.id"
        f" WHERE {where} ORDER BY p.rowid",
        args,
    )
    return games, pools


def pool(db: Database, pool_id: str) -> dict[str, Any] | None:
    """One pool's document, its game's document and source, and whether it is resolving."""
    rows = db.rows(
        "SELECT p.id, p.doc, g.doc AS game_doc, g.source_id,"
        " r.pool_id IS NOT NULL AS resolving FROM pools p"
        " JOIN games g ON g.id = p.game_id"
        " LEFT JOIN pending_resolutions r ON r.pool_id = p.id WHERE p.id = ?",
        (pool_id,),
    )
    return rows[0] if rows else None


def statistics(db: Database, pool_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per pool: bettors, distinct (bettor, target) selections, bets and their stakes.
    Pools without bets are absent."""
    found: dict[str, dict[str, int]] = {}
    # a few hundred ids at a time: SQLite caps the parameters of one statement
    for start in range(0, len(pool_ids), 500):
        chunk = list(pool_ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        for row in db.rows(
            "SELECT pool_id, COUNT(DISTINCT user_id) AS orders,"
            " COUNT(DISTINCT CAST(user_id AS TEXT) || ':' || target) AS bet_specifications,"
            " COUNT(*) AS bets, SUM(amount) AS stakes"
            f" FROM bets WHERE pool_id IN ({marks}) GROUP BY pool_id",
            chunk,
        ):
            found[row.pop("pool_id")] = row
    return found


def resolved_pools_bet_in(db: Database, game_id: str, user_id: int) -> list[str]:
    """The ids of the game's resolved pools the user has a bet in (op 390): read here
    so that a listing starts the actors of those pools only, not of every pool the
    game ever had."""
    rows = db.rows(
        "SELECT DISTINCT pool_id FROM bets WHERE user_id = ? AND pool_id IN "
        "(SELECT id FROM pools WHERE game_id = ? AND status != 'open') ORDER BY pool_id",
        (user_id, game_id),
    )
    return [row["pool_id"] for row in rows]
