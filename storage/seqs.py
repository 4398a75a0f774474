"""Each game's reserved broadcast numbers (``seq``, decisions §9): read at a game actor's
start, raised before the hub uses them, so a seq is never sent twice across restarts."""

from __future__ import annotations

from storage.changes import Change, Upsert
from storage.database import Database


def reserved_seq(db: Database, game_id: str) -> int:
    """The highest seq reserved for the game so far (0: none yet)."""
    rows = db.rows("SELECT reserved FROM game_seqs WHERE game_id = ?", (game_id,))
    return rows[0]["reserved"] if rows else 0


def reserve_seq(game_id: str, reserved: int) -> Change:
    """The change that reserves the game's numbers up to ``reserved``."""
    return Upsert("game_seqs", {"game_id": game_id, "reserved": reserved})
