"""The read behind the page's game list (op 3801): the games not closed, of every source,
newest first, a bounded page at a time. It runs inside the storage actor
(``services.storage.read``), so it sees every committed change, asks no game actor (a
listing never waits behind bets nor wakes a passivated game) and reads only the fields
it shows, never whole game documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.game import GameStatus, game_status
from domain.params import INT64_MAX, stored_time
from storage.database import Database
from storage.dialect import indexed_by, json_flag, json_number, json_text
from storage.schema import OPEN_GAMES_INDEX


@dataclass(frozen=True, slots=True)
class ListedGame:
    """One game of the list, and where it stands in it (``position``: the next page
    starts below the last one shown)."""

    position: int
    game_id: str
    source_id: str
    source_name: str | None
    name: str
    type: str | None
    opened: bool
    closing: bool
    open_at: int
    live_start_at: int
    close_at: int | None

    def status(self, now: int) -> GameStatus:
        return game_status(
            now,
            closed=False,
            opened=self.opened,
            closing=self.closing,
            open_at=self.open_at,
            live_start_at=self.live_start_at,
        )


def open_games_page(db: Database, before: int | None, limit: int) -> list[ListedGame]:
    """Up to ``limit`` games not closed, newest first, below position ``before`` (from
    the newest when None): one indexed range scan of at most ``limit`` rows."""
    engine = db.engine
    fields = [
        *(f"{json_text(engine, 'g.doc', key)} AS {key}" for key in ("name", "type")),
        *(f"{json_flag(engine, 'g.doc', key)} AS {key}" for key in ("opened", "closing")),
        *(
            f"{json_number(engine, 'g.doc', key)} AS {key}"
            for key in ("open_at", "live_start_at", "close_at")
        ),
    ]
    rows = db.rows(
        "SELECT g.rowid AS position, g.id, g.source_id, s.name AS source_name,"
        f" {', '.join(fields)}"
        f" FROM games g{indexed_by(engine, OPEN_GAMES_INDEX)}"
        " LEFT JOIN sources s ON s.id = g.source_id"
        f" WHERE {json_text(engine, 'g.doc', 'closed_at')} IS NULL AND g.rowid < ?"
        " ORDER BY g.rowid DESC LIMIT ?",
        (INT64_MAX if before is None else before, limit),
    )
    return [_listed(row) for row in rows]


def _listed(row: dict[str, Any]) -> ListedGame:
    """A row as a ListedGame; times an older version stored out of range are read as
    ``Game.from_doc`` reads them."""
    open_at = stored_time(row["open_at"], "open_at") or 0
    live_start_at = stored_time(row["live_start_at"], "live_start_at")
    return ListedGame(
        position=row["position"],
        game_id=row["id"],
        source_id=row["source_id"],
        source_name=row["source_name"],
        name=row["name"],
        type=row["type"],
        opened=bool(row["opened"]),
        closing=bool(row["closing"]),
        open_at=open_at,
        live_start_at=open_at if live_start_at is None else live_start_at,
        close_at=stored_time(row["close_at"], "close_at"),
    )
