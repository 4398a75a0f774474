"""Games in SQLite as their actors and the directory read them: the game's document with
its events, which games and pools exist, a game's open pools and its pending
resolutions. Each function runs inside the storage actor (``services.storage.read``)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: str
    action_id: str
    target_id: str
    happened_at: int
    reported_at: int | None  # the happened_at the admin sent (None: none sent)


@dataclass(frozen=True, slots=True)
class StoredGame:
    doc: str  # the game document (JSON)
    events: tuple[StoredEvent, ...]  # in the order they happened


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    doc: str  # a game's or pool's stored document (JSON)


@dataclass(frozen=True, slots=True)
class PoolEntry:
    id: str
    game_id: str
    status: str


@dataclass(frozen=True, slots=True)
class PendingResolution:
    pool_id: str
    winning_target: str
    happened_at: int


def game_with_events(db: Database, game_id: str) -> StoredGame | None:
    """The game's document and events; None when there is no such game."""
    rows = db.rows("SELECT doc FROM games WHERE id = ?", (game_id,))
    if not rows:
        return None
    events = db.rows(
        "SELECT id, action_id, target_id, happened_at, reported_at FROM events"
        " WHERE game_id = ? ORDER BY happened_at",
        (game_id,),
    )
    return StoredGame(rows[0]["doc"], tuple(StoredEvent(**row) for row in events))


def every_game(db: Database) -> list[Document]:
    """Every game's document, in creation order."""
    return [Document(**row) for row in db.rows("SELECT id, doc FROM games ORDER BY rowid")]


def every_pool(db: Database) -> list[PoolEntry]:
    """Every pool's id, game and status, in creation order."""
    rows = db.rows("SELECT id, game_id, status FROM pools ORDER BY rowid")
    return [PoolEntry(**row) for row in rows]


def open_pool_ids(db: Database, game_id: str) -> list[str]:
    """The game's open pools, in creation order."""
    rows = db.rows(
        "SELECT id FROM pools WHERE game_id = ? AND status = 'open' ORDER BY rowid", (game_id,)
    )
    return [row["id"] for row in rows]


def open_pool_documents(db: Database, game_id: str) -> list[Document]:
    """The documents of the game's open pools."""
    rows = db.rows(
        "SELECT id, doc FROM pools WHERE game_id = ? AND status = 'open' ORDER BY rowid",
        (game_id,),
    )
    return [Document(**row) for row in rows]


def pending_resolutions(db: Database, game_id: str) -> list[PendingResolution]:
    """The event resolutions committed for the game's pools that are still open."""
    rows = db.rows(
        "SELECT r.pool_id, r.winning_target, r.happened_at FROM pending_resolutions r"
        " JOIN pools p ON p.id = r.pool_id WHERE p.game_id = ? AND p.status = 'open'"
        " ORDER BY r.rowid",
        (game_id,),
    )
    return [PendingResolution(**row) for row in rows]


def game_exists(db: Database, game_id: str) -> bool:
    """Whether there is a game ``game_id`` (an edge's directory checks ids here)."""
    return bool(db.rows("SELECT 1 FROM games WHERE id = ?", (game_id,)))


def game_of_pool(db: Database, pool_id: str) -> str | None:
    """The id of the pool's game; None when there is no such pool."""
    rows = db.rows("SELECT game_id FROM pools WHERE id = ?", (pool_id,))
    return rows[0]["game_id"] if rows else None


def pools_of_game(db: Database, game_id: str) -> list[PoolEntry]:
    """The game's pools, in creation order."""
    rows = db.rows(
        "SELECT id, game_id, status FROM pools WHERE game_id = ? ORDER BY rowid", (game_id,)
    )
    return [PoolEntry(**row) for row in rows]


def games_of_source(db: Database, source_id: str) -> list[str]:
    """The ids of the source's games, in creation order."""
    rows = db.rows("SELECT id FROM games WHERE source_id = ? ORDER BY rowid", (source_id,))
    return [row["id"] for row in rows]
