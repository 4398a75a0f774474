"""The registry actor: users, sessions, handshake nonces, game sources and their admins.

It answers "who is this and what may they do" for every message, so roles are checked
against its current state, never against what a connection cached when it opened.
Password hashing (scrypt) is slow on purpose and runs in a worker thread in the caller,
never in this actor and never on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from actors.clock import WallClock
from actors.runtime import Actor, Mailbox
from domain.errors import DomainError
from storage.actor import Storage
from storage.changes import Change, Delete, Insert, Update
from storage.database import Database

SESSION_TTL_MS = 24 * 3600 * 1000
ROLES = frozenset({"developer", "player"})


@dataclass
class User:
    id: int
    name: str
    roles: list[str]
    password: str = ""

    def public(self) -> dict[str, Any]:
        return {"user_id": self.id, "name": self.name, "roles": list(self.roles)}


@dataclass
class Source:
    id: str
    name: str
    description: str
    owner_id: int
    closed: bool = False
    admins: set[int] = field(default_factory=set)
    games: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateUser:
    name: str
    password_hash: str
    roles: Sequence[str]


@dataclass(frozen=True, slots=True)
class GetUser:
    user_id: int


@dataclass(frozen=True, slots=True)
class FindUser:
    name: str


@dataclass(frozen=True, slots=True)
class CreateSession:
    user_id: int


@dataclass(frozen=True, slots=True)
class Authenticate:
    user_id: int
    nonce: str
    digest: str


@dataclass(frozen=True, slots=True)
class OpenSource:
    user_id: int
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class CloseSource:
    user_id: int
    source_id: str


@dataclass(frozen=True, slots=True)
class SourcesOf:
    user_id: int


@dataclass(frozen=True, slots=True)
class AddSourceAdmin:
    source_id: str
    user_id: int
    by: int | None  # None: the operator


@dataclass(frozen=True, slots=True)
class CheckSourceAdmin:
    source_id: str
    user_id: int


@dataclass(frozen=True, slots=True)
class AddGame:
    source_id: str
    game_id: str


@dataclass(frozen=True, slots=True)
class GamesOf:
    source_id: str


# -- passwords (run these in a worker thread) -----------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(candidate.hex(), digest)


def handshake_digest(user_id: int | str, nonce: str, session_key: str) -> str:
    """sha256(user_id + nonce + session_key), as the upstream connecting page says."""
    return hashlib.sha256(f"{user_id}{nonce}{session_key}".encode()).hexdigest()


class RegistryActor(Actor):
    def __init__(self, inbox: Mailbox, storage: Storage, clock: WallClock, state: dict) -> None:
        super().__init__(inbox)
        self.storage = storage
        self.clock = clock
        self.users: dict[int, User] = state["users"]
        self.by_name = {u.name.casefold(): u for u in self.users.values()}
        self.sessions: dict[int, dict[str, int]] = state["sessions"]  # user -> key -> expiry
        self.nonces: dict[tuple[int, str], int] = state["nonces"]
        self.sources: dict[str, Source] = state["sources"]
        self.game_source: dict[str, str] = {g: s.id for s in self.sources.values() for g in s.games}

    @classmethod
    async def load(cls, inbox: Mailbox, storage: Storage, clock: WallClock) -> RegistryActor:
        return cls(inbox, storage, clock, await storage.read(_load_state))

    async def _commit(self, changes: list[Change]) -> None:
        await self.storage.commit(changes)

    async def handle(self, body: Any) -> Any:
        match body:
            case GetUser(user_id):
                return self._user(user_id)
            case FindUser(name):
                user = self.by_name.get(name.casefold())
                if user is None:
                    raise DomainError("AUTHENTICATION_FAILED", "Wrong name or password.")
                return user
            case CreateUser():
                return await self._create_user(body)
            case CreateSession(user_id):
                return await self._create_session(user_id)
            case Authenticate():
                return await self._authenticate(body)
            case OpenSource():
                return await self._open_source(body)
            case CloseSource(user_id, source_id):
                source = self._admin_source(source_id, user_id)
                await self._commit([Update("sources", {"id": source_id}, {"closed": 1})])
                source.closed = True
                return source
            case SourcesOf(user_id):
                return [
                    s.public()
                    for s in self.sources.values()
                    if user_id in s.admins and not s.closed
                ]
            case AddSourceAdmin(source_id, user_id, by):
                source = self._source(source_id)
                if by is not None and by not in source.admins:
                    raise DomainError("NOT_AUTHORIZED", "Only a source admin may add admins.")
                self._user(user_id)
                if user_id not in source.admins:
                    await self._commit(
                        [Insert("source_admins", {"source_id": source_id, "user_id": user_id})]
                    )
                    source.admins.add(user_id)
                return source.public() | {"admins": sorted(source.admins)}
            case CheckSourceAdmin(source_id, user_id):
                return self._admin_source(source_id, user_id)
            case AddGame(source_id, game_id):
                source = self._source(source_id)
                source.games.append(game_id)
                self.game_source[game_id] = source_id
                return None
            case GamesOf(source_id):
                return list(self._source(source_id).games)
        raise DomainError("UNKNOWN_OP", f"The registry does not handle {type(body).__name__}.")

    # -- users and sessions -----------------------------------------------------------

    def _user(self, user_id: int) -> User:
        user = self.users.get(user_id)
        if user is None:
            raise DomainError("NOT_FOUND", f"There is no user {user_id}.")
        return user

    async def _create_user(self, body: CreateUser) -> User:
        if body.name.casefold() in self.by_name:
            raise DomainError("CONFLICT", f"The name {body.name!r} is taken.")
        unknown = set(body.roles) - ROLES
        if unknown:
            raise DomainError("INVALID_PARAMETER", f"Unknown roles: {', '.join(sorted(unknown))}.")
        user = User(
            max(self.users, default=0) + 1, body.name, sorted(set(body.roles)), body.password_hash
        )
        await self._commit(
            [
                Insert(
                    "users",
                    {
                        "id": user.id,
                        "name": user.name,
                        "password": user.password,
                        "roles": msgspec.json.encode(user.roles).decode(),
                        "blocked": 0,
                        "created_at": self.clock.now_ms(),
                    },
                )
            ]
        )
        self.users[user.id] = user
        self.by_name[user.name.casefold()] = user
        return user

    async def _create_session(self, user_id: int) -> dict[str, Any]:
        self._user(user_id)
        now = self.clock.now_ms()
        key = secrets.token_urlsafe(24)
        expires_at = now + SESSION_TTL_MS
        sessions = self.sessions.setdefault(user_id, {})
        expired = [k for k, exp in sessions.items() if exp <= now]
        stale_nonces = [n for n, exp in self.nonces.items() if n[0] == user_id and exp <= now]
        await self._commit(
            [
                Insert("sessions", {"key": key, "user_id": user_id, "expires_at": expires_at}),
                *(Delete("sessions", {"key": k}) for k in expired),
                *(Delete("nonces", {"user_id": u, "nonce": n}) for u, n in stale_nonces),
            ]
        )
        for k in expired:
            del sessions[k]
        for nonce_key in stale_nonces:
            del self.nonces[nonce_key]
        sessions[key] = expires_at
        return {"user_id": user_id, "session_key": key, "expires_at": expires_at}

    async def _authenticate(self, body: Authenticate) -> tuple[User, int]:
        """The user and the expiry of the session that signed the handshake."""
        refused = DomainError(
            "AUTHENTICATION_FAILED", "Unknown user, wrong digest or expired session."
        )
        user = self.users.get(body.user_id)
        if user is None or not body.nonce or len(body.nonce) > 128:
            raise refused
        now = self.clock.now_ms()
        match = None
        for key, expires_at in self.sessions.get(user.id, {}).items():
            if expires_at > now and hmac.compare_digest(
                handshake_digest(user.id, body.nonce, key), body.digest.lower()
            ):
                match = expires_at
                break
        if match is None:
            raise refused
        nonce_key = (user.id, body.nonce)
        if self.nonces.get(nonce_key, 0) > now:
            raise DomainError("AUTHENTICATION_FAILED", "This nonce was already used.")
        await self._commit(
            [Insert("nonces", {"user_id": user.id, "nonce": body.nonce, "expires_at": match})]
            if nonce_key not in self.nonces
            else [
                Update("nonces", {"user_id": user.id, "nonce": body.nonce}, {"expires_at": match})
            ]
        )
        self.nonces[nonce_key] = match
        return user, match

    # -- sources ----------------------------------------------------------------------

    def _source(self, source_id: str) -> Source:
        source = self.sources.get(source_id)
        if source is None:
            raise DomainError("NOT_FOUND", f"There is no game source {source_id!r}.")
        return source

    def _admin_source(self, source_id: str, user_id: int) -> Source:
        source = self._source(source_id)
        if user_id not in source.admins:
            raise DomainError("NOT_AUTHORIZED", "You are not an admin of this game source.")
        if source.closed:
            raise DomainError("INVALID_STATE", "This game source is closed.")
        return source

    async def _open_source(self, body: OpenSource) -> Source:
        user = self._user(body.user_id)
        if "developer" not in user.roles:
            raise DomainError("NOT_AUTHORIZED", "Only developers may open a game source.")
        if not body.name:
            raise DomainError(
                "MISSING_PARAMETER", "source_name is required.", parameter="source_name"
            )
        if len(body.description) > 512:
            raise DomainError("INVALID_PARAMETER", "description is limited to 512 characters.")
        source = Source(str(uuid.uuid4()), body.name, body.description, user.id, admins={user.id})
        await self._commit(
            [
                Insert(
                    "sources",
                    {
                        "id": source.id,
                        "name": source.name,
                        "description": source.description,
                        "owner_id": user.id,
                        "closed": 0,
                        "created_at": self.clock.now_ms(),
                    },
                ),
                Insert("source_admins", {"source_id": source.id, "user_id": user.id}),
            ]
        )
        self.sources[source.id] = source
        return source


def _load_state(db: Database) -> dict[str, Any]:
    users = {
        r["id"]: User(
            r["id"], r["name"], msgspec.json.decode(r["roles"] or "[]"), r["password"] or ""
        )
        for r in db.rows("SELECT * FROM users")
    }
    sessions: dict[int, dict[str, int]] = {}
    for r in db.rows("SELECT * FROM sessions"):
        sessions.setdefault(r["user_id"], {})[r["key"]] = r["expires_at"]
    nonces = {(r["user_id"], r["nonce"]): r["expires_at"] for r in db.rows("SELECT * FROM nonces")}
    sources = {
        r["id"]: Source(
            r["id"], r["name"], r["description"] or "", r["owner_id"], bool(r["closed"])
        )
        for r in db.rows("SELECT * FROM sources")
    }
    for r in db.rows("SELECT * FROM source_admins"):
        if r["source_id"] in sources:
            sources[r["source_id"]].admins.add(r["user_id"])
    for r in db.rows("SELECT id, source_id FROM games ORDER BY rowid"):
        if r["source_id"] in sources:
            sources[r["source_id"]].games.append(r["id"])
    return {"users": users, "sessions": sessions, "nonces": nonces, "sources": sources}
