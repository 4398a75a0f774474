"""Player limits and self-exclusions in SQLite (decisions §12): the rows the wallet
writes and the reads that rebuild its memory of them."""

from __future__ import annotations

from collections.abc import Iterable

from domain import ledger
from domain.limits import Flow, Kind, Limit, Period, PlayerLimits, Slot, flow_of
from storage.changes import Change, Update, Upsert
from storage.database import Database

Key = tuple[int, str]  # (user_id, currency)


def limit_changes(
    user_id: int, currency: str, limits: PlayerLimits, slots: Iterable[Slot]
) -> list[Change]:
    """The rows of ``slots`` as ``limits`` now holds them."""
    changes: list[Change] = []
    for kind, period in slots:
        limit = limits.slots.get((kind, period), Limit())
        changes.append(
            Upsert(
                "limits",
                {
                    "user_id": user_id,
                    "currency": currency,
                    "kind": kind.value,
                    "period": period.value,
                    "amount": limit.amount,
                    "pending_amount": limit.pending_amount,
                    "pending_from": limit.pending_from,
                },
            )
        )
    return changes


def exclusion_change(user_id: int, until: int) -> Change:
    return Update("users", {"id": user_id}, {"excluded_until": until})


def load_limits(db: Database) -> dict[Key, PlayerLimits]:
    """Every player's limits, by user and currency."""
    slots: dict[Key, dict[Slot, Limit]] = {}
    for row in db.rows(
        "SELECT user_id, currency, kind, period, amount, pending_amount, pending_from FROM limits"
    ):
        key = (row["user_id"], row["currency"])
        slot = (Kind(row["kind"]), Period(row["period"]))
        slots.setdefault(key, {})[slot] = Limit(
            row["amount"], row["pending_amount"], row["pending_from"]
        )
    return {key: PlayerLimits(by_slot) for key, by_slot in slots.items()}


def load_exclusions(db: Database) -> dict[int, int]:
    """Every self-exclusion ever set, by user (the past ones are harmless)."""
    return {
        r["id"]: r["excluded_until"]
        for r in db.rows("SELECT id, excluded_until FROM users WHERE excluded_until > 0")
    }


def load_flows(db: Database, keys: Iterable[Key], since: int) -> dict[Key, list[Flow]]:
    """The flows after ``since`` of each (user, currency), oldest first, read from the
    ledger lines of the user's wallet."""
    out: dict[Key, list[Flow]] = {}
    for user_id, currency in keys:
        rows = db.rows(
            "SELECT t.created_at AS at, t.kind AS kind, l.amount AS amount "
            "FROM ledger l JOIN transactions t ON t.id = l.tx_id "
            "WHERE l.account = ? AND l.currency = ? AND t.created_at > ? "
            "ORDER BY t.created_at, l.tx_id, l.seq",
            (ledger.wallet(user_id), currency, since),
        )
        flows = (flow_of(r["at"], r["kind"], r["amount"]) for r in rows)
        out[(user_id, currency)] = [f for f in flows if f is not None]
    return out
