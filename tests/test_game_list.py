"""The read behind op 3801 (storage/game_list.py) on a database of its own: a page costs
its own rows however many closed games there are, and odd stored times are read safely.
The op itself, over the websocket, is in tests/test_ws_games.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgspec
import pytest

from actors.game import game_row
from domain.game import GameStatus, new_game
from domain.params import TIME_MAX_MS
from storage.changes import Insert, Update
from storage.database import Database
from storage.game_list import open_games_page
from tests.postgres import open_test_database

NOW = 1_700_000_000_000


def add_games(db: Database, count: int, *, closed: bool, name: str = "Game") -> list[str]:
    """``count`` games of source "s", closed or not; their ids, oldest first."""
    games = [
        new_game("s", {"game_name": f"{name} {i}"}, NOW, opened=True, default_currency="EUR")
        for i in range(count)
    ]
    if closed:
        games = [replace(game, closed_at=NOW) for game in games]
    db.apply_batch([[Insert("games", game_row(game)) for game in games]])
    return [game.id for game in games]


def instructions(db: Database, read: Callable[[], Any]) -> int:
    """How many SQLite virtual-machine steps ``read`` takes: a count, not a time."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.conn.set_progress_handler(count, 1)
    try:
        read()
    finally:
        db.conn.set_progress_handler(None, 1)
    return steps


@pytest.mark.sqlite_only("counts SQLite virtual-machine steps")
def test_a_page_does_not_step_over_closed_games() -> None:
    """A page of 3 costs about the same with 5,000 closed games between them as with none:
    the read walks the index on closed_at, not the table."""
    alone = open_test_database()
    add_games(alone, 3, closed=False)
    crowded = open_test_database()
    first = add_games(crowded, 1, closed=False)
    add_games(crowded, 5000, closed=True)
    rest = add_games(crowded, 2, closed=False)
    crowded.conn.execute("ANALYZE")  # statistics that would lead the planner to the table
    page = open_games_page(crowded, None, 10)
    assert [game.game_id for game in page] == (first + rest)[::-1]
    baseline = instructions(alone, lambda: open_games_page(alone, None, 10))
    assert instructions(crowded, lambda: open_games_page(crowded, None, 10)) < 2 * baseline


def test_pages_follow_the_cursor_newest_first() -> None:
    db = open_test_database()
    made = add_games(db, 5, closed=False)
    first = open_games_page(db, None, 2)
    second = open_games_page(db, first[-1].position, 2)
    third = open_games_page(db, second[-1].position, 2)
    assert [g.game_id for g in first + second + third] == made[::-1]
    assert open_games_page(db, third[-1].position, 2) == []
    assert first[0].name == "Game 4" and first[0].status(NOW) is GameStatus.IN_PROGRESS


def test_times_stored_out_of_range_are_read_as_the_game_actor_reads_them() -> None:
    """An older version may have stored a time far out of range: the listing reads it as
    ``Game.from_doc`` does (far future: never) rather than fail the page."""
    db = open_test_database()
    (game_id,) = add_games(db, 1, closed=False)
    doc = msgspec.json.decode(db.scalar("SELECT doc FROM games WHERE id = ?", (game_id,)))
    doc["open_at"] = "far"
    text = msgspec.json.encode(doc).decode().replace('"open_at":"far"', '"open_at":1e400')
    assert db.apply_batch([[Update("games", {"id": game_id}, {"doc": text})]]) == [None]
    (listed,) = open_games_page(db, None, 10)
    assert listed.open_at == TIME_MAX_MS
    assert listed.status(NOW) is GameStatus.NOT_YET
