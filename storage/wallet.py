"""The wallet's tables in SQLite as the wallet actor reads them: the totals it rebuilds
balances and exposure from, blocked and cooling-down users, and the idempotency
references of deposits and withdrawals (they only grow, so they stay on disk)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from domain.ledger import WALLET_PREFIX, Line
from storage.changes import AdjustBalance
from storage.database import EXACT_SUM, Database, exact_total

#: (user id, currency) → an amount in minor units
Totals = dict[tuple[int, str], int]


@dataclass(frozen=True, slots=True)
class WalletRows:
    balances: Totals  # each wallet account's ledger total
    active_stakes: Totals  # stakes of bets not yet settled
    held_stakes: Totals  # stakes held for a bet delay: exposure, not yet in the ledger
    blocked: frozenset[int]
    cooldowns: dict[int, int]  # user id → no bets before this epoch ms


def wallet_rows(db: Database) -> WalletRows:
    """Every total and user state the wallet keeps in memory, as stored."""
    return WalletRows(
        balances={
            (int(r["account"].removeprefix("wallet:")), r["currency"]): exact_total(
                r["high"], r["low"]
            )
            for r in db.rows(
                f"SELECT account, currency, {EXACT_SUM} FROM ledger "
                "WHERE account LIKE 'wallet:%' GROUP BY account, currency"
            )
        },
        active_stakes=_stakes(
            db,
            f"SELECT user_id, currency, {EXACT_SUM} FROM bets "
            "WHERE status = 'active' GROUP BY user_id, currency",
        ),
        held_stakes=_stakes(
            db, f"SELECT user_id, currency, {EXACT_SUM} FROM held_bets GROUP BY user_id, currency"
        ),
        blocked=frozenset(r["id"] for r in db.rows("SELECT id FROM users WHERE blocked = 1")),
        cooldowns={
            r["id"]: r["cooldown_until"]
            for r in db.rows("SELECT id, cooldown_until FROM users WHERE cooldown_until > 0")
        },
    )


def _stakes(db: Database, sql: str) -> Totals:
    return {(r["user_id"], r["currency"]): exact_total(r["high"], r["low"]) for r in db.rows(sql)}


def balance_changes(lines: Iterable[Line]) -> list[AdjustBalance]:
    """The stored wallet balances these ledger lines move, each wallet's net change in
    one adjustment (none where it nets to zero, as a stake in remote wallet mode does),
    in (account, currency) order: a commit takes the balance rows it needs in the one
    order every commit takes them, so two on a shared database cannot each hold a row
    the other waits for. Any of them fails the request with INSUFFICIENT_FUNDS when it
    would overdraw its wallet."""
    net: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        if line.account.startswith(WALLET_PREFIX):
            net[(line.account, line.currency)] += line.amount
    return [
        AdjustBalance(account, currency, delta)
        for (account, currency), delta in sorted(net.items())
        if delta
    ]


def reference_fingerprints(db: Database, keys: list[str]) -> dict[str, str]:
    """The fingerprint stored under each of these idempotency keys that is taken."""
    marks = ", ".join("?" for _ in keys)
    rows = db.rows(f"SELECT key, fingerprint FROM idempotency WHERE key IN ({marks})", keys)
    return {row["key"]: row["fingerprint"] for row in rows}
