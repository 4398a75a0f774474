"""The registry actor: users, sessions, handshake nonces, game sources and their admins.

It answers "who is this and what may they do" for every message, so roles are checked
against its current state, never against what a connection cached when it opened.
Password hashing (scrypt) is slow on purpose and runs in a worker thread in the caller,
never in this actor and never on the event loop.

Handshakes are cheap and bounded: a user has at most ``MAX_SESSIONS_PER_USER`` live
sessions (a new one retires the oldest), so checking a digest costs at most that many
sha256s; handshakes that queue up together commit their nonces in one storage request;
expired sessions and nonces are pruned on a timer, a bounded number per pass.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import math
import re
import secrets
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import trio

from domain.errors import DomainError
from domain.names import display_name, name_key
from domain.roles import Role
from domain.rules import HOUSE_ROLE
from kit.clock import WallClock
from kit.runtime import Actor, Ask, Handlers, Mailbox, OutcomeUnknown, Request
from storage import registry as registry_store
from storage.actor import Storage
from storage.changes import Change, Delete, Insert, Update, Upsert
from storage.database import Database

log = logging.getLogger(__name__)

SESSION_TTL_MS = 24 * 3600 * 1000
ROLES = frozenset({"developer", "player", HOUSE_ROLE})
#: Live sessions a user may hold; a new one retires the oldest (bounds a handshake's cost).
MAX_SESSIONS_PER_USER = 16
#: Remembered nonces per user; past it handshakes are refused until some expire.
MAX_NONCES_PER_USER = 10_000
#: Expired sessions and nonces are deleted every this many seconds, at most PRUNE_BATCH.
PRUNE_INTERVAL_SECONDS = 60.0
PRUNE_BATCH = 1000
MAX_SOURCE_NAME = 256
#: A nonce is 1 to 128 visible ASCII characters; a digest is a sha256 hexdigest.
_NONCE = re.compile(r"[\x21-\x7e]{1,128}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class User:
    """A user as the registry knows them (never changed in place: handed out as is)."""

    id: int
    name: str
    roles: tuple[str, ...]
    password: str = ""  # the scrypt hash ("" for a user who cannot log in)

    def public(self) -> dict[str, Any]:
        return {"user_id": self.id, "name": self.name, "roles": list(self.roles)}


@dataclass(frozen=True, slots=True)
class Session:
    """A session the registry opened (``CreateSession``'s answer)."""

    user_id: int
    session_key: str
    expires_at: int  # epoch ms

    def public(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "session_key": self.session_key,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class SourceView:
    """A game source as of one moment: what the registry hands out (its ``Source``
    itself changes as admins, games and the close arrive, and never leaves it)."""

    id: str
    name: str
    description: str
    owner_id: int
    closed: bool
    admins: frozenset[int]
    games: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description}


@dataclass
class Source:
    """The registry's own record of a source (mutable, never handed out: ``view``)."""

    id: str
    name: str
    description: str
    owner_id: int
    closed: bool = False
    admins: set[int] = field(default_factory=set)
    games: list[str] = field(default_factory=list)

    def view(self) -> SourceView:
        return SourceView(
            self.id,
            self.name,
            self.description,
            self.owner_id,
            self.closed,
            frozenset(self.admins),
            tuple(self.games),
        )


# -- messages -------------------------------------------------------------------------
# Each declares its reply (``Ask[...]``) and, under ``Raises:``, the error codes it can fail
# with besides those of every request (``REQUEST_TIMED_OUT``, ``ACTOR_RESTARTED``,
# ``UNAVAILABLE``, ``INTERNAL_ERROR``).


@dataclass(frozen=True, slots=True)
class CreateUser(Ask["User"]):
    """A new user. Raises: CONFLICT (the name is taken), INVALID_PARAMETER (the name, a
    role unknown)."""

    name: str
    password_hash: str
    roles: Sequence[str]


@dataclass(frozen=True, slots=True)
class GetUser(Ask["User"]):
    """Raises: NOT_FOUND."""

    user_id: int


@dataclass(frozen=True, slots=True)
class CheckSession(Ask[User]):
    """A session key presented as is (the betslip's ``sessionToken``): the user.

    Raises: INVALID_USER (no such user), INVALID_SESSION (unknown, expired or not theirs).
    """

    user_id: int
    session_key: str


@dataclass(frozen=True, slots=True)
class FindUser(Ask["User"]):
    """The user of a name (a login). Raises: AUTHENTICATION_FAILED (no such name)."""

    name: str


@dataclass(frozen=True, slots=True)
class CreateSession(Ask["Session"]):
    """A new session; expired ones and the oldest past ``MAX_SESSIONS_PER_USER`` go.
    Raises: NOT_FOUND (no such user)."""

    user_id: int


@dataclass(frozen=True, slots=True)
class Authenticate(Ask[tuple[User, int]]):
    """A websocket handshake: the user and when their session expires (handshakes queued
    together are judged together and commit their nonces once).

    Raises: AUTHENTICATION_FAILED (a malformed field, an unknown user, a wrong digest, an
    expired session, a nonce used before or too many of them).
    """

    user_id: int
    nonce: str
    digest: str


@dataclass(frozen=True, slots=True)
class OpenSource(Ask["SourceView"]):
    """Raises: NOT_FOUND (no such user), NOT_AUTHORIZED (not a developer),
    INVALID_PARAMETER (the name or the description)."""

    role: ClassVar[Role] = Role.DEVELOPER
    user_id: int
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class CloseSource(Ask["SourceView"]):
    """Raises: NOT_FOUND, NOT_AUTHORIZED (not its admin), INVALID_STATE (closed already)."""

    role: ClassVar[Role] = Role.SOURCE_ADMIN
    user_id: int
    source_id: str


@dataclass(frozen=True, slots=True)
class SourcesOf(Ask["list[SourceView]"]):
    """The open sources the user admins. Raises: nothing of its own."""

    user_id: int


@dataclass(frozen=True, slots=True)
class AddSourceAdmin(Ask["SourceView"]):
    """Raises: NOT_FOUND (the source or the user), NOT_AUTHORIZED (``by`` is not its
    admin)."""

    source_id: str
    user_id: int
    by: int | None  # None: the operator


@dataclass(frozen=True, slots=True)
class CheckSourceAdmin(Ask["SourceView"]):
    """Raises: NOT_FOUND, NOT_AUTHORIZED (not its admin), INVALID_STATE (closed)."""

    source_id: str
    user_id: int


@dataclass(frozen=True, slots=True)
class AddGame(Ask["None"]):
    """Raises: NOT_FOUND (no such source)."""

    source_id: str
    game_id: str


@dataclass(frozen=True, slots=True)
class GamesOf(Ask["tuple[str, ...]"]):
    """The ids of the source's games. Raises: NOT_FOUND (no such source)."""

    source_id: str


# -- passwords (run these in a worker thread) -----------------------------------------

#: Today's recommended scrypt cost (OWASP: N=2^17, r=8, p=1); stored with each hash.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
#: The cost of hashes stored as ``scrypt$salt$digest``, before parameters were stored.
_LEGACY_COST = (2**14, 8, 1)
#: A stored hash asking for more than this is refused rather than run (memory).
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$n$r$p$salt$digest``: the cost travels with the hash, so it can be raised."""
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${salt.hex()}${_scrypt(password, salt, n, r, p).hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (either format); False for a damaged hash."""
    parts = stored.split("$")
    try:
        if len(parts) == 3 and parts[0] == "scrypt":
            (n, r, p), salt, digest = _LEGACY_COST, parts[1], parts[2]
        elif len(parts) == 6 and parts[0] == "scrypt":
            n, r, p = (int(part) for part in parts[1:4])
            salt, digest = parts[4], parts[5]
        else:
            return False
        if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
            return False
        candidate = _scrypt(password, bytes.fromhex(salt), n, r, p)
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest.lower())


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # scrypt needs 128 * n * r * p bytes; hashlib refuses more than 32 MiB unless told.
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=128 * n * r * p + 2**20,
    )


def handshake_digest(user_id: int | str, nonce: str, session_key: str) -> str:
    """sha256(user_id + nonce + session_key), as the upstream connecting page says."""
    return hashlib.sha256(f"{user_id}{nonce}{session_key}".encode()).hexdigest()


def _valid_handshake(body: Authenticate) -> bool:
    """Whether the handshake's fields have the right types and shapes (any content)."""
    return (
        type(body.user_id) is int
        and isinstance(body.nonce, str)
        and isinstance(body.digest, str)
        and _NONCE.fullmatch(body.nonce) is not None
        and _DIGEST.fullmatch(body.digest) is not None
    )


class RegistryActor(Actor):
    def __init__(self, inbox: Mailbox, storage: Storage, clock: WallClock, state: dict) -> None:
        super().__init__(inbox)
        self.storage = storage
        self.clock = clock
        self.next_prune = math.inf  # armed when the actor starts
        self.users: dict[int, User] = state["users"]
        self.by_name = {name_key(u.name): u for u in sorted(self.users.values(), key=_newest)}
        self.sessions: dict[int, dict[str, int]] = state["sessions"]  # user -> key -> expiry
        self.nonces: dict[int, dict[str, int]] = state["nonces"]  # user -> nonce -> expiry
        self.sources: dict[str, Source] = state["sources"]
        self.game_source: dict[str, str] = {g: s.id for s in self.sources.values() for g in s.games}
        # (expires_at, table, user_id, key): what the pruner deletes, soonest first
        self.expiries: list[tuple[int, str, int, str]] = [
            (expires_at, table, user_id, key)
            for table, rows in (("sessions", self.sessions), ("nonces", self.nonces))
            for user_id, keys in rows.items()
            for key, expires_at in keys.items()
        ]
        heapq.heapify(self.expiries)

    @classmethod
    async def load(cls, inbox: Mailbox, storage: Storage, clock: WallClock) -> RegistryActor:
        return cls(inbox, storage, clock, await storage.read(_load_state))

    # -- the kit's hooks: queued handshakes are judged together and commit once -------

    def batch_key(self, body: Any) -> Hashable | None:
        return "handshakes" if isinstance(body, Authenticate) else None

    async def handle_batch(self, requests: list[Request]) -> None:
        await self._authenticate_all(requests)

    async def on_start(self) -> None:
        self.next_prune = trio.current_time() + PRUNE_INTERVAL_SECONDS

    def next_deadline(self) -> float:
        return self.next_prune

    async def on_deadline(self) -> None:
        await self._prune()
        self.next_prune = trio.current_time() + PRUNE_INTERVAL_SECONDS

    async def _commit(self, changes: list[Change]) -> None:
        # an answer of unknown fate stops the registry; the kit rebuilds it from storage
        await self.storage.commit(changes)

    async def handle(self, body: Any) -> Any:
        return await self.handlers.of(body)(self, body)

    # -- the handlers (``handlers`` at the end of the class) --------------------------

    async def _get_user(self, body: GetUser) -> User:
        return self._user(body.user_id)

    async def _on_check_session(self, body: CheckSession) -> User:
        return self._check_session(body.user_id, body.session_key)

    async def _find_user(self, body: FindUser) -> User:
        user = self.by_name.get(name_key(body.name)) if isinstance(body.name, str) else None
        if user is None:
            raise DomainError("AUTHENTICATION_FAILED", "Wrong name or password.")
        return user

    async def _on_create_session(self, body: CreateSession) -> Session:
        return await self._create_session(body.user_id)

    async def _close_source(self, body: CloseSource) -> SourceView:
        source = self._admin_source(body.source_id, body.user_id)
        await self._commit([Update("sources", {"id": body.source_id}, {"closed": 1})])
        source.closed = True
        return source.view()

    async def _sources_of(self, body: SourcesOf) -> list[SourceView]:
        return [
            s.view() for s in self.sources.values() if body.user_id in s.admins and not s.closed
        ]

    async def _add_source_admin(self, body: AddSourceAdmin) -> SourceView:
        source_id, user_id = body.source_id, body.user_id
        source = self._source(source_id)
        if body.by is not None and body.by not in source.admins:
            raise DomainError("NOT_AUTHORIZED", "Only a source admin may add admins.")
        self._user(user_id)
        if user_id not in source.admins:
            await self._commit(
                [Insert("source_admins", {"source_id": source_id, "user_id": user_id})]
            )
            source.admins.add(user_id)
        return source.view()

    async def _check_source_admin(self, body: CheckSourceAdmin) -> SourceView:
        return self._admin_source(body.source_id, body.user_id).view()

    async def _add_game(self, body: AddGame) -> None:
        self._source(body.source_id).games.append(body.game_id)
        self.game_source[body.game_id] = body.source_id

    async def _games_of(self, body: GamesOf) -> tuple[str, ...]:
        return tuple(self._source(body.source_id).games)

    # -- users and sessions -----------------------------------------------------------

    def _user(self, user_id: int) -> User:
        user = self.users.get(user_id) if type(user_id) is int else None
        if user is None:
            raise DomainError("NOT_FOUND", f"There is no user {user_id}.")
        return user

    def _check_session(self, user_id: int, session_key: str) -> User:
        user = self.users.get(user_id) if type(user_id) is int else None
        if user is None:
            raise DomainError("INVALID_USER", "userId is not a user of this operator.")
        expires_at = self.sessions.get(user_id, {}).get(session_key)
        if expires_at is None or expires_at <= self.clock.now_ms():
            raise DomainError("INVALID_SESSION", "The session is unknown, expired or not yours.")
        return user

    async def _create_user(self, body: CreateUser) -> User:
        name = display_name(body.name, "name")
        if name_key(name) in self.by_name:
            raise DomainError("CONFLICT", f"The name {name!r} is taken.", parameter="name")
        unknown = set(body.roles) - ROLES
        if unknown:
            raise DomainError(
                "INVALID_PARAMETER",
                f"Unknown roles: {', '.join(sorted(unknown))}.",
                parameter="roles",
            )
        # Adopted only after the commit; if its answer is lost, the kit rebuilds the
        # registry, so the next id is computed from what the database really holds.
        user = User(
            max(self.users, default=0) + 1, name, tuple(sorted(set(body.roles))), body.password_hash
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
        self.by_name[name_key(user.name)] = user
        return user

    async def _create_session(self, user_id: int) -> Session:
        """A new session; expired ones and the oldest beyond MAX_SESSIONS_PER_USER go."""
        self._user(user_id)
        now = self.clock.now_ms()
        held = self.sessions.get(user_id, {})
        oldest_first = sorted(held, key=held.__getitem__)
        live = [k for k in oldest_first if held[k] > now]
        retired = [k for k in oldest_first if held[k] <= now]
        retired += live[: max(0, len(live) - MAX_SESSIONS_PER_USER + 1)]
        key = secrets.token_urlsafe(24)
        expires_at = now + SESSION_TTL_MS
        await self._commit(
            [
                Insert("sessions", {"key": key, "user_id": user_id, "expires_at": expires_at}),
                *(Delete("sessions", {"key": k}) for k in retired),
            ]
        )
        sessions = self.sessions.setdefault(user_id, {})
        for k in retired:
            del sessions[k]
        sessions[key] = expires_at
        heapq.heappush(self.expiries, (expires_at, "sessions", user_id, key))
        return Session(user_id, key, expires_at)

    def _check_handshake(self, body: Authenticate, claimed: dict[tuple[int, str], int]) -> User:
        """The user, if the digest matches a live session and the nonce is fresh (not
        remembered, not ``claimed`` earlier in this batch); the nonce's expiry goes into
        ``claimed``. Malformed fields of any type are refused like a wrong digest."""
        refused = DomainError(
            "AUTHENTICATION_FAILED", "Unknown user, wrong digest or expired session."
        )
        if not _valid_handshake(body):
            raise refused
        user = self.users.get(body.user_id)
        if user is None:
            raise refused
        now = self.clock.now_ms()
        digest = body.digest.lower()
        expires_at = next(
            (
                expiry
                for key, expiry in self.sessions.get(user.id, {}).items()
                if expiry > now
                and hmac.compare_digest(handshake_digest(user.id, body.nonce, key), digest)
            ),
            None,
        )
        if expires_at is None:
            raise refused
        remembered = self.nonces.get(user.id, {})
        if remembered.get(body.nonce, 0) > now or (user.id, body.nonce) in claimed:
            raise DomainError("AUTHENTICATION_FAILED", "This nonce was already used.")
        pending = sum(1 for claimed_user, _ in claimed if claimed_user == user.id)
        if len(remembered) + pending >= MAX_NONCES_PER_USER:
            raise DomainError(
                "AUTHENTICATION_FAILED",
                "Too many handshakes for this user; try again once older sessions expire.",
            )
        claimed[(user.id, body.nonce)] = expires_at
        return user

    async def _authenticate_all(self, requests: list[Request]) -> None:
        """Answer a run of handshakes: each gets (user, session expiry) or a refusal; the
        nonces of the accepted ones are committed in one request, then remembered."""
        if not requests:
            return
        claimed: dict[tuple[int, str], int] = {}
        accepted: list[tuple[Request, User, int]] = []
        for request in requests:
            try:
                user = self._check_handshake(request.body, claimed)
            except DomainError as error:
                request.fail(error)
                continue
            accepted.append((request, user, claimed[(user.id, request.body.nonce)]))
        # a failed commit fails the run (the kit answers it, and rebuilds the registry
        # when the outcome is unknown)
        await self._commit(
            [
                Upsert("nonces", {"user_id": user_id, "nonce": nonce, "expires_at": expiry})
                for (user_id, nonce), expiry in claimed.items()
            ]
        )
        for (user_id, nonce), expiry in claimed.items():
            self.nonces.setdefault(user_id, {})[nonce] = expiry
            heapq.heappush(self.expiries, (expiry, "nonces", user_id, nonce))
        for request, user, expiry in accepted:
            request.reply((user, expiry))

    async def _prune(self) -> None:
        """Delete up to PRUNE_BATCH expired sessions and nonces in one commit."""
        now = self.clock.now_ms()
        due: list[tuple[int, str, int, str]] = []
        while self.expiries and self.expiries[0][0] <= now and len(due) < PRUNE_BATCH:
            entry = heapq.heappop(self.expiries)
            expires_at, table, user_id, key = entry
            if self._rows(table).get(user_id, {}).get(key) == expires_at:  # else: stale
                due.append(entry)
        try:
            await self._commit(
                [
                    Delete("sessions", {"key": key})
                    if table == "sessions"
                    else Delete("nonces", {"user_id": user_id, "nonce": key})
                    for _, table, user_id, key in due
                ]
            )
        except OutcomeUnknown:
            raise
        except DomainError:
            log.warning("pruning %d expired sessions and nonces failed", len(due), exc_info=True)
            for entry in due:  # tried again next pass (a reload rebuilt them already)
                heapq.heappush(self.expiries, entry)
            return
        for _, table, user_id, key in due:
            rows = self._rows(table)
            keys = rows.get(user_id, {})
            keys.pop(key, None)  # an entry pushed back after a failed pass may repeat
            if not keys:
                rows.pop(user_id, None)

    def _rows(self, table: str) -> dict[int, dict[str, int]]:
        return self.sessions if table == "sessions" else self.nonces

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

    async def _open_source(self, body: OpenSource) -> SourceView:
        user = self._user(body.user_id)
        if Role.DEVELOPER not in user.roles:
            raise DomainError("NOT_AUTHORIZED", "Only developers may open a game source.")
        name = display_name(body.name, "source_name", max_length=MAX_SOURCE_NAME)
        if len(body.description) > 512:
            raise DomainError(
                "INVALID_PARAMETER",
                "description is limited to 512 characters.",
                parameter="description",
            )
        source = Source(str(uuid.uuid4()), name, body.description, user.id, admins={user.id})
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
        return source.view()

    handlers = Handlers(
        "The registry",
        {
            GetUser: _get_user,
            CheckSession: _on_check_session,
            FindUser: _find_user,
            CreateUser: _create_user,
            CreateSession: _on_create_session,
            OpenSource: _open_source,
            CloseSource: _close_source,
            SourcesOf: _sources_of,
            AddSourceAdmin: _add_source_admin,
            CheckSourceAdmin: _check_source_admin,
            AddGame: _add_game,
            GamesOf: _games_of,
        },
    )


def _newest(user: User) -> int:
    """Sort key, newest user first: where legacy names fold together, the oldest wins."""
    return -user.id


def _load_state(db: Database) -> dict[str, Any]:
    """The registry's memory, built from what storage holds."""
    rows = registry_store.registry_rows(db)
    users = {u.id: User(u.id, u.name, tuple(u.roles), u.password) for u in rows.users}
    sources = {
        s.id: Source(
            s.id, s.name, s.description, s.owner_id, s.closed, set(s.admins), list(s.games)
        )
        for s in rows.sources
    }
    return {"users": users, "sessions": rows.sessions, "nonces": rows.nonces, "sources": sources}
