"""The SQL audit (storage/audit.py) finds exactly what the domain's audit finds, in the
same words and order, on any stored book and stored balances: it is the same rules,
computed by SQLite."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import audit, balances
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
_accounts = st.sampled_from(["wallet:1", "wallet:2", "WALLET:1", "escrow:p", "house", "operator"])
_currencies = st.sampled_from(["EUR", "JPY"])
_lines = st.lists(
    st.tuples(st.sampled_from(["t1", "t2", "t3", "t4"]), _accounts, _currencies, _amounts),
    max_size=30,
)
#: Stored balances: the account's ledger total ("total", when it fits a row), that total
#: off by one ("off"), or any amount.
_balances = st.dictionaries(
    st.tuples(_accounts, _currencies),
    st.one_of(st.sampled_from(["total", "off"]), st.integers(-INT64_MAX, INT64_MAX)),
    max_size=6,
)


def _stored(lines: list[tuple], stored: dict[tuple[str, str], int | str]) -> Database:
    database = Database(":memory:")
    database.conn.executemany(
        "INSERT INTO ledger (tx_id, seq, account, currency, amount) VALUES (?, ?, ?, ?, ?)",
        [(tx, seq, account, cur, amount) for seq, (tx, account, cur, amount) in enumerate(lines)],
    )
    rows = database.conn.execute("SELECT tx_id, account, currency, amount FROM ledger")
    totals = balances(row for row in rows if type(row[3]) is int)
    for key, value in stored.items():
        if isinstance(value, str):
            total = totals.get(key, 0)
            value = total + (value == "off") if abs(total) < INT64_MAX else 0
        database.conn.execute("INSERT INTO balances VALUES (?, ?, ?)", (*key, value))
    return database


@settings(max_examples=300)
@given(lines=_lines, stored=_balances)
def test_the_sql_audit_finds_what_the_domain_audit_finds(
    lines: list[tuple], stored: dict[tuple[str, str], int | str]
) -> None:
    database = _stored(lines, stored)
    rows = [
        tuple(row)
        for row in database.conn.execute(
            "SELECT tx_id, account, currency, amount FROM ledger ORDER BY rowid"
        )
    ]
    saved = {(a, c): b for a, c, b in database.conn.execute("SELECT * FROM balances")}
    books = audit_ledger(database.conn)
    assert books.problems == audit(rows, saved)
    assert (books.lines, books.transactions) == (len(rows), len({row[0] for row in rows}))
