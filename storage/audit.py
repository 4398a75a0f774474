"""The ledger audit in SQL: the rules of ``domain.ledger.audit``, computed by SQLite's
aggregates, so that a book of millions of lines is audited without holding them in
Python (``GET /v1/audit``, ``tote audit``, ``tote backup``)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from domain.ledger import NON_NEGATIVE_PREFIXES, WALLET_PREFIX, missing_balance, wrong_balance
from storage.database import EXACT_SUM, exact_total

#: ``high * 10^9 + low`` (the ``EXACT_SUM`` parts) in SQL: exact within int64, and a float
#: (SQLite's overflow) beyond it, which still has the right sign for the comparisons below.
_TOTAL = "(high * 1000000000 + low)"
_INTEGER = "typeof(amount) = 'integer'"
_MAY_NOT_BE_NEGATIVE = " OR ".join(f"account GLOB '{prefix}*'" for prefix in NON_NEGATIVE_PREFIXES)
#: Each wallet's ledger total (and the total of any other account with a stored balance)
#: beside its stored balance, where the two disagree: a stored balance that is not the
#: total, or none for a total other than zero. ``has_row`` tells the two apart.
_STORED_BALANCES = f"""
SELECT account, currency, SUM(line_high) AS high, SUM(line_low) AS low,
       MAX(row_balance) AS stored, MAX(row_found) AS has_row
FROM (
    SELECT account, currency, amount / 1000000000 AS line_high,
           amount % 1000000000 AS line_low, NULL AS row_balance, 0 AS row_found
    FROM ledger
    WHERE {_INTEGER} AND (account GLOB '{WALLET_PREFIX}*' OR EXISTS (
        SELECT 1 FROM balances b WHERE b.account = ledger.account
        AND b.currency = ledger.currency))
    UNION ALL
    SELECT account, currency, 0, 0, balance, 1 FROM balances
)
GROUP BY account, currency
HAVING (has_row = 1 AND stored IS NOT {_TOTAL}) OR (has_row = 0 AND {_TOTAL} != 0)
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


def audit_ledger(conn: sqlite3.Connection) -> LedgerAudit:
    """Every problem ``domain.ledger.audit`` would find in the stored lines, in the same
    words and order: non-integer amounts, transactions that do not balance per currency,
    wallets and escrows below zero, stored balances that are not their ledger totals. Run
    it inside one read transaction for one snapshot."""
    problems = [
        f"transaction {tx_id} has a non-integer amount {amount!r}"
        for tx_id, amount in conn.execute(
            f"SELECT tx_id, amount FROM ledger WHERE NOT {_INTEGER} ORDER BY rowid"
        )
    ]
    problems += [
        f"transaction {tx_id} does not balance in {currency}: off by {exact_total(high, low)}"
        for tx_id, currency, high, low in conn.execute(
            f"SELECT tx_id, currency, {EXACT_SUM} FROM ledger WHERE {_INTEGER} "
            f"GROUP BY tx_id, currency HAVING {_TOTAL} != 0 ORDER BY MIN(rowid)"
        )
    ]
    problems += [
        f"account {account} is negative in {currency}: {exact_total(high, low)}"
        for account, currency, high, low in conn.execute(
            f"SELECT account, currency, {EXACT_SUM} FROM ledger "
            f"WHERE {_INTEGER} AND ({_MAY_NOT_BE_NEGATIVE}) "
            f"GROUP BY account, currency HAVING {_TOTAL} < 0 ORDER BY account, currency"
        )
    ]
    problems += [
        wrong_balance(account, currency, stored, exact_total(high, low))
        if has_row
        else missing_balance(account, currency, exact_total(high, low))
        for account, currency, high, low, stored, has_row in conn.execute(_STORED_BALANCES)
    ]
    lines, transactions = conn.execute(
        "SELECT COUNT(*), COUNT(DISTINCT tx_id) FROM ledger"
    ).fetchone()
    return LedgerAudit(problems, transactions, lines)
