"""Partner keys in SQLite: who may call the betslip endpoint besides the operator. Only
the key's hash is stored; a revocation is a timestamp, read on every call."""

from __future__ import annotations

from storage.changes import Change, Insert, Update
from storage.database import Database


def key_is_live(db: Database, key_hash: str) -> bool:
    """Whether a partner holds the key of this hash and it is not revoked."""
    return bool(
        db.scalar(
            "SELECT COUNT(*) FROM partners WHERE key_hash = ? AND revoked_at IS NULL",
            (key_hash,),
        )
    )


def partner_exists(db: Database, partner_id: str) -> bool:
    return bool(db.scalar("SELECT COUNT(*) FROM partners WHERE id = ?", (partner_id,)))


def new_partner(partner_id: str, key_hash: str, at: int) -> Change:
    """The row of a partner minted at ``at`` (epoch ms)."""
    return Insert(
        "partners", {"id": partner_id, "key_hash": key_hash, "created_at": at, "revoked_at": None}
    )


def revocation(partner_id: str, at: int) -> Change:
    """The change that revokes the partner's key from ``at`` (epoch ms) on."""
    return Update("partners", {"id": partner_id}, {"revoked_at": at})
