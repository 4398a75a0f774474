"""The registry's tables in SQLite, read once when the registry actor starts: users,
sessions, handshake nonces, game sources with their admins and games."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from storage.database import Database

#: user id → key (a session key or a nonce) → when it expires (epoch ms)
Expiries = dict[int, dict[str, int]]


@dataclass(frozen=True, slots=True)
class StoredUser:
    id: int
    name: str
    roles: tuple[str, ...]
    password: str  # its hash; empty for a user who signs in by digest only


@dataclass(frozen=True, slots=True)
class StoredSource:
    id: str
    name: str
    description: str
    owner_id: int
    closed: bool
    admins: tuple[int, ...]
    games: tuple[str, ...]  # in creation order


@dataclass(frozen=True, slots=True)
class RegistryRows:
    users: tuple[StoredUser, ...]
    sessions: Expiries
    nonces: Expiries
    sources: tuple[StoredSource, ...]


def registry_rows(db: Database) -> RegistryRows:
    """Everything the registry keeps in memory, as stored."""
    users = tuple(
        StoredUser(
            r["id"], r["name"], tuple(msgspec.json.decode(r["roles"] or "[]")), r["password"] or ""
        )
        for r in db.rows("SELECT id, name, roles, password FROM users ORDER BY rowid")
    )
    return RegistryRows(
        users,
        _expiries(db.rows("SELECT user_id, key, expires_at FROM sessions")),
        _expiries(db.rows("SELECT user_id, nonce AS key, expires_at FROM nonces")),
        _sources(db),
    )


def _expiries(rows: list[dict]) -> Expiries:
    found: Expiries = {}
    for r in rows:
        found.setdefault(r["user_id"], {})[r["key"]] = r["expires_at"]
    return found


def _sources(db: Database) -> tuple[StoredSource, ...]:
    admins: dict[str, list[int]] = {}
    for r in db.rows("SELECT source_id, user_id FROM source_admins ORDER BY rowid"):
        admins.setdefault(r["source_id"], []).append(r["user_id"])
    games: dict[str, list[str]] = {}
    for r in db.rows("SELECT id, source_id FROM games ORDER BY rowid"):
        games.setdefault(r["source_id"], []).append(r["id"])
    return tuple(
        StoredSource(
            r["id"],
            r["name"],
            r["description"] or "",
            r["owner_id"],
            bool(r["closed"]),
            tuple(admins.get(r["id"], ())),
            tuple(games.get(r["id"], ())),
        )
        for r in db.rows(
            "SELECT id, name, description, owner_id, closed FROM sources ORDER BY rowid"
        )
    )
