"""Betslips in SQLite: each slip's final answer under its idempotency key (replayed byte
for byte), and the condition that a slip's bet ids are new, read inside its commit."""

from __future__ import annotations

from dataclasses import dataclass

from storage.changes import Change, Check, Insert
from storage.database import Database


@dataclass(frozen=True, slots=True)
class StoredSlip:
    fingerprint: str  # of the request body the answer is for
    refusal: str | None  # the code that refused the slip; None: placed
    body: bytes  # the answer as rendered


def stored_slip(db: Database, key: str) -> StoredSlip | None:
    """The answer stored under the idempotency key; None when the slip never committed."""
    rows = db.rows("SELECT fingerprint, refusal, body FROM betslips WHERE key = ?", (key,))
    if not rows:
        return None
    return StoredSlip(rows[0]["fingerprint"], rows[0]["refusal"], bytes(rows[0]["body"]))


def slip_answer(
    key: str, fingerprint: str, user_id: int | None, refusal: str | None, body: bytes, at: int
) -> Change:
    """The row that keeps the slip's answer (as rendered) under its key, committed with the
    slip or with its refusal."""
    return Insert(
        "betslips",
        {
            "key": key,
            "fingerprint": fingerprint,
            "user_id": user_id,
            "refusal": refusal,
            "body": body,
            "created_at": at,
        },
    )


def bet_ids_unused(user_id: int, bet_ids: list[str], code: str, message: str) -> Check:
    """Fails the commit with ``code`` when the user already placed one of ``bet_ids``.
    Locks nothing: two slips that store the same bet id at once are kept apart by the
    unique index on (user_id, external_bet_id), which fails the second."""
    marks = ", ".join("?" for _ in bet_ids)
    return Check(
        f"SELECT COUNT(*) FROM bets WHERE user_id = ? AND external_bet_id IN ({marks})",
        (user_id, *bet_ids),
        0,
        code,
        message,
    )
