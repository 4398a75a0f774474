"""The ledger audit in SQL: the rules of ``domain.ledger.audit``, computed by the
database's aggregates (SQLite's or PostgreSQL's), so that a book of millions of lines is
audited without holding them in Python (``GET /v1/audit``, ``tote audit``, ``tote
backup``)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from domain.ledger import NON_NEGATIVE_PREFIXES, WALLET_PREFIX, missing_balance, wrong_balance
from storage.database import EXACT_SUM, Reader, exact_total, reader_of
from storage.dialect import Engine, is_integer, starts_with


def _total(engine: Engine) -> str:
    """The group's sum for HAVING. SQLite: ``high * 10^9 + low`` (the ``EXACT_SUM``
    parts), exact within int64 and a float (SQLite's overflow) beyond it, which still has
    the right sign for the comparisons below. PostgreSQL: its SUM, an exact numeric (and
    its HAVING cannot name the output columns)."""
    return "(high * 1000000000 + low)" if engine is Engine.SQLITE else "SUM(amount)"


def _may_not_be_negative(engine: Engine) -> str:
    return " OR ".join(starts_with(engine, "account", prefix) for prefix in NON_NEGATIVE_PREFIXES)


def _stored_balances(engine: Engine) -> str:
    """Each wallet's ledger total (and the total of any other account with a stored
    balance) beside its stored balance, where the two disagree: a stored balance that is
    not the total, or none for a total other than zero. ``has_row`` tells the two apart.
    (PostgreSQL's HAVING names no output column, and says IS DISTINCT FROM.)"""
    if engine is Engine.SQLITE:
        total, stored, has_row, differs = _total(engine), "stored", "has_row", "IS NOT"
    else:
        total = "(SUM(line_high) * 1000000000 + SUM(line_low))"
        stored, has_row, differs = "MAX(row_balance)", "MAX(row_found)", "IS DISTINCT FROM"
    return f"""
SELECT account, currency, SUM(line_high) AS high, SUM(line_low) AS low,
       MAX(row_balance) AS stored, MAX(row_found) AS has_row
FROM (
    SELECT account, currency, amount / 1000000000 AS line_high,
           amount % 1000000000 AS line_low, NULL AS row_balance, 0 AS row_found
    FROM ledger
    WHERE {is_integer(engine, "amount")} AND ({starts_with(engine, "account", WALLET_PREFIX)}
        OR EXISTS (SELECT 1 FROM balances b WHERE b.account = ledger.account
        AND b.currency = ledger.currency))
    UNION ALL
    SELECT account, currency, 0, 0, balance, 1 FROM balances
) lines
GROUP BY account, currency
HAVING ({has_row} = 1 AND {stored} {differs} {total}) OR ({has_row} = 0 AND {total} != 0)
ORDER BY account, currency
"""


@dataclass(frozen=True)
class LedgerAudit:
    problems: list[str]
    transactions: int
    lines: int

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_ledger(source: Reader | sqlite3.Connection) -> LedgerAudit:
    """Every problem ``domain.ledger.audit`` would find in the stored lines, in the same
    words and order: non-integer amounts, transactions that do not balance per currency,
    wallets and escrows below zero, stored balances that are not their ledger totals. Run
    it inside one read transaction for one snapshot."""
    reader = reader_of(source)
    integer = is_integer(reader.engine, "amount")
    problems = [
        f"transaction {row['tx_id']} has a non-integer amount {row['amount']!r}"
        for row in reader.rows(
            f"SELECT tx_id, amount FROM ledger WHERE NOT {integer} ORDER BY rowid"
        )
    ]
    problems += [
        f"transaction {row['tx_id']} does not balance in {row['currency']}: "
        f"off by {exact_total(row['high'], row['low'])}"
        for row in reader.rows(
            f"SELECT tx_id, currency, {EXACT_SUM} FROM ledger WHERE {integer} "
            f"GROUP BY tx_id, currency HAVING {_total(reader.engine)} != 0 ORDER BY MIN(rowid)"
        )
    ]
    problems += [
        f"account {row['account']} is negative in {row['currency']}: "
        f"{exact_total(row['high'], row['low'])}"
        for row in reader.rows(
            f"SELECT account, currency, {EXACT_SUM} FROM ledger "
            f"WHERE {integer} AND ({_may_not_be_negative(reader.engine)}) "
            f"GROUP BY account, currency HAVING {_total(reader.engine)} < 0 "
            "ORDER BY account, currency"
        )
    ]
    problems += [
        wrong_balance(row["account"], row["currency"], row["stored"], _sum(row))
        if row["has_row"]
        else missing_balance(row["account"], row["currency"], _sum(row))
        for row in reader.rows(_stored_balances(reader.engine))
    ]
    counts = reader.rows("SELECT COUNT(*) AS n, COUNT(DISTINCT tx_id) AS txs FROM ledger")[0]
    return LedgerAudit(problems, counts["txs"], counts["n"])


def _sum(row: dict[str, Any]) -> int:
    return exact_total(row["high"], row["low"])
