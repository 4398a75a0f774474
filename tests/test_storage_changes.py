"""Changes the storage actor turns into SQL: the bulk update a settlement uses, upserts."""

from __future__ import annotations

import pytest

from storage.changes import Insert, UpdateMany, Upsert
from tests.postgres import open_test_database

#: Storage and money: on SQLite and on PostgreSQL (tests/conftest.py).
pytestmark = pytest.mark.both_engines


def _bet(bet_id: str) -> dict[str, object]:
    return {
        "id": bet_id,
        "pool_id": "p",
        "user_id": 1,
        "target": "a",
        "amount": 100,
        "currency": "EUR",
        "placed_at": 0,
        "status": "open",
        "payout": 0,
    }


def test_update_many_sets_each_row_by_its_key_in_one_request() -> None:
    db = open_test_database()
    db.apply_batch([[Insert("bets", _bet(f"b{i}")) for i in range(1000)]])
    rows = [("won" if i % 2 else "lost", i, f"b{i}") for i in range(1000)]
    assert db.apply_batch([[UpdateMany("bets", "id", ("status", "payout"), rows)]]) == [None]
    stored = {r["id"]: (r["status"], r["payout"]) for r in db.rows("SELECT * FROM bets")}
    assert stored == {bet_id: (status, payout) for status, payout, bet_id in rows}


def test_a_failing_request_undoes_its_bulk_update_and_spares_the_others() -> None:
    db = open_test_database()
    db.apply_batch([[Insert("bets", _bet("b0"))]])
    settle = [UpdateMany("bets", "id", ("status",), [("won", "b0")]), Insert("bets", _bet("b0"))]
    other = [Insert("bets", _bet("b1"))]
    results = db.apply_batch([settle, other])
    assert results[0] is not None and results[1] is None
    assert db.rows("SELECT id, status FROM bets ORDER BY id") == [
        {"id": "b0", "status": "open"},
        {"id": "b1", "status": "open"},
    ]


def test_an_upsert_keeps_the_row_in_its_creation_order() -> None:
    """The listings page pools in creation order (rowid): a pool whose document is saved
    again (a bet's 360, a block) must not move behind the pools created after it."""
    db = open_test_database()
    db.apply_batch([[Insert("bets", _bet("b0"))], [Insert("bets", _bet("b1"))]])
    db.apply_batch([[Upsert("bets", {**_bet("b0"), "status": "won"})]])
    db.apply_batch([[Upsert("bets", _bet("b2"))]])
    assert db.rows("SELECT id, status FROM bets ORDER BY rowid") == [
        {"id": "b0", "status": "won"},
        {"id": "b1", "status": "open"},
        {"id": "b2", "status": "open"},
    ]
