"""The SQL audit (storage/audit.py) finds exactly what the domain's audit finds, in the
same words and order, on any stored book: it is the same rules, computed by SQLite."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import audit
from storage.audit import audit_ledger
from storage.database import Database

pytestmark = pytest.mark.sqlite_only(
    "stores amounts of any type, as only SQLite's dynamic typing lets a book hold"
)

INT64_MAX = 2**63 - 1

_amounts = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(-INT64_MAX, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["5", "x", None]),
)
_lines = st.lists(
    st.tuples(
        st.sampled_from(["t1", "t2", "t3", "t4"]),
        st.sampled_from(["wallet:1", "wallet:2", "WALLET:1", "escrow:p", "house", "operator"]),
        st.sampled_from(["EUR", "JPY"]),
        _amounts,
    ),
    max_size=30,
)


def _stored(lines: list[tuple]) -> Database:
    database = Database(":memory:")
    database.conn.executemany(
        "INSERT INTO ledger (tx_id, seq, account, currency, amount) VALUES (?, ?, ?, ?, ?)",
        [(tx, seq, account, cur, amount) for seq, (tx, account, cur, amount) in enumerate(lines)],
    )
    return database


@settings(max_examples=300)
@given(lines=_lines)
def test_the_sql_audit_finds_what_the_domain_audit_finds(lines: list[tuple]) -> None:
    database = _stored(lines)
    rows = [
        tuple(row)
        for row in database.conn.execute(
            "SELECT tx_id, account, currency, amount FROM ledger ORDER BY rowid"
        )
    ]
    books = audit_ledger(database.conn)
    assert books.problems == audit(rows)
    assert (books.lines, books.transactions) == (len(rows), len({row[0] for row in rows}))
