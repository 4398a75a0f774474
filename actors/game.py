"""The game actor (one task per game) and the directory of game and pool actors."""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

import msgspec
import trio

from actors import pool as pool_msgs
from actors.pool import PoolActor, pool_row
from actors.registry import AddGame, CheckSourceAdmin, GamesOf
from actors.runtime import Actor, Mailbox
from actors.services import Services
from domain.codec import server_message
from domain.errors import DomainError
from domain.game import Game, event_target, new_game
from domain.pool import new_pool, resolves_by_event
from domain.targets import action_id, build_actions, winning_target
from storage.changes import Change, Insert, Upsert
from storage.database import Database

log = logging.getLogger(__name__)

HAPPENED_AT_SLACK_MS = 60_000  # an event may be stamped this far ahead of our clock


# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenGame:
    user_id: int
    actions: list[str]
    targets: list[str]


@dataclass(frozen=True, slots=True)
class UpdateDetails:
    user_id: int
    actions: list[str]
    targets: list[str]


@dataclass(frozen=True, slots=True)
class BecomeAdmin:
    user_id: int


@dataclass(frozen=True, slots=True)
class IsAdmin:
    user_id: int


@dataclass(frozen=True, slots=True)
class Details:
    pass


@dataclass(frozen=True, slots=True)
class Summary:
    pass


@dataclass(frozen=True, slots=True)
class Join:
    conn: Any


@dataclass(frozen=True, slots=True)
class Leave:
    conn: Any


@dataclass(frozen=True, slots=True)
class Close:
    user_id: int | None  # None: the system (close_at, or the source closing)


@dataclass(frozen=True, slots=True)
class CreatePool:
    user_id: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RegisterEvent:
    user_id: int
    action: Any
    target: Any
    happened_at: int | None


@dataclass(frozen=True, slots=True)
class BlockAction:
    user_id: int
    action: Any
    at: int | None
    block: bool


def game_row(game: Game) -> dict[str, Any]:
    return {
        "id": game.id,
        "source_id": game.source_id,
        "doc": msgspec.json.encode(game.to_doc()).decode(),
    }


def _load_game(
    db: Database, game_id: str
) -> tuple[Game, dict[str, dict[str, Any]], dict[tuple[str, str, int], str]]:
    rows = db.rows("SELECT doc FROM games WHERE id = ?", (game_id,))
    if not rows:
        raise DomainError("NOT_FOUND", f"There is no game {game_id!r}.")
    stored = db.rows("SELECT * FROM events WHERE game_id = ? ORDER BY happened_at", (game_id,))
    events = {
        r["id"]: {
            "happened_at": r["happened_at"],
            "target_id": r["target_id"],
            "action_id": r["action_id"],
        }
        for r in stored
    }
    reported = {
        (r["action_id"], r["target_id"], r["reported_at"]): r["id"]
        for r in stored
        if r["reported_at"] is not None
    }
    return Game.from_doc(msgspec.json.decode(rows[0]["doc"])), events, reported


class GameActor(Actor):
    def __init__(
        self, inbox: Mailbox, services: Services, game: Game, events: dict[str, dict[str, Any]]
    ) -> None:
        super().__init__(inbox)
        self.services = services
        self.game = game
        self.events = events
        #: (action, target, reported happened_at) -> event id: how a resent event is known
        self.reported: dict[tuple[str, str, int], str] = {}
        self.idle_seconds = services.settings.idle_seconds
        #: when to try again to settle pools that an event resolved but that failed to
        #: settle (their ``pending_resolutions`` rows are still there)
        self.retry_pending_at = math.inf

    @classmethod
    async def load(cls, inbox: Mailbox, services: Services, game_id: str) -> GameActor:
        game, events, reported = await services.storage.read(lambda db: _load_game(db, game_id))
        actor = cls(inbox, services, game, events)
        actor.reported = reported
        return actor

    @property
    def now(self) -> int:
        return self.services.clock.now_ms()

    @property
    def directory(self) -> Games:
        return self.services.games

    # -- the kit's hooks --------------------------------------------------------------

    async def on_start(self) -> None:
        await self.directory.adopt_open_pools(self.game.id)
        await self._finish_pending_resolutions()

    def can_passivate(self) -> bool:
        return self.game.is_closed

    def next_deadline(self) -> float:
        return min(self._close_deadline(), self.retry_pending_at)

    async def on_deadline(self) -> None:
        if trio.current_time() >= self.retry_pending_at:
            await self._finish_pending_resolutions()
        if trio.current_time() >= self._close_deadline():
            await self._close(None)

    async def _finish_pending_resolutions(self) -> None:
        """Settle every pool an event resolved that has not settled yet (its game or the
        pool died meanwhile, or the pool did not answer): the rows say what to settle."""
        game_id = self.game.id
        rows = await self.services.storage.read(
            lambda db: db.rows(
                "SELECT r.pool_id, r.winning_target, r.happened_at FROM pending_resolutions r"
                " JOIN pools p ON p.id = r.pool_id WHERE p.game_id = ? AND p.status = 'open'",
                (game_id,),
            )
        )
        await self._resolve_pools(
            [(row["pool_id"], row["winning_target"], row["happened_at"]) for row in rows]
        )

    async def _resolve_pools(self, pools: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
        """Ask each pool (at once, not one after another) to settle its committed event
        resolution. A pool that fails does not stop the others; it is tried again later,
        and it also settles itself once it knows of the event."""
        results: list[dict[str, Any]] = []
        failed = False

        async def resolve(pool_id: str, target_id: str, happened_at: int) -> None:
            nonlocal failed
            try:
                _, box = await self.directory.pool(pool_id)
                result = await box.ask(
                    pool_msgs.ResolveByEvent(target_id, happened_at),
                    timeout=self.services.settings.request_timeout,
                )
            except DomainError as error:
                failed = True
                log.warning("game %s: pool %s not settled yet: %s", self.game.id, pool_id, error)
                return
            if result is not None:
                results.append(result)

        async with trio.open_nursery() as nursery:
            for pool in pools:
                nursery.start_soon(resolve, *pool)
        self.retry_pending_at = (
            trio.current_time() + self.services.settings.request_timeout if failed else math.inf
        )
        return results

    async def _halt_pools(self, pools: list[tuple[str, str, int]]) -> None:
        """Tell each pool an event resolves to take no more bets, before anyone hears of
        the event. (The event's commit already closed them; this tells their actors.)"""

        async def halt(pool_id: str, target_id: str, happened_at: int) -> None:
            try:
                _, box = await self.directory.pool(pool_id)
                await box.ask(
                    pool_msgs.HaltForEvent(target_id, happened_at),
                    timeout=self.services.settings.request_timeout,
                )
            except DomainError as error:  # it is settled from its pending row instead
                log.warning("game %s: pool %s not halted: %s", self.game.id, pool_id, error)

        async with trio.open_nursery() as nursery:
            for pool in pools:
                nursery.start_soon(halt, *pool)

    def _close_deadline(self) -> float:
        game = self.game
        if game.close_at is None or game.is_closed:  # an upcoming game closes at close_at too
            return math.inf
        if game.closing:
            return math.inf  # waiting for binary pools; the admin resends 375
        return self.services.clock.deadline_for(game.close_at)

    async def handle(self, body: Any) -> Any:  # one flat dispatch
        game = self.game
        match body:
            case Details():
                return game.details(self.now, self.events)
            case Summary():
                return game.summary(self.now)
            case IsAdmin(user_id):
                return user_id in game.admins
            case OpenGame(user_id, actions, targets):
                await self._source_admin(user_id)
                self._require_not_closed()
                if game.opened:
                    raise DomainError("INVALID_STATE", "This game is already open.")
                await self._save(self._with_details(actions, targets, opened=True))
                return self.game.opened_message()  # the saved game, not ``game``
            case UpdateDetails(user_id, actions, targets):
                await self._source_admin(user_id)
                self._require_not_closed()
                await self._save(self._with_details(actions, targets, opened=game.opened))
                self._broadcast(342, self.game.details(self.now, self.events))
                return {"game_id": game.id}
            case BecomeAdmin(user_id):
                return await self._become_admin(user_id)
            case Join(conn):
                self._require_not_closed()
                if self.services.hub.subscribe(game.id, conn):
                    self._broadcast(
                        470,
                        {"game_id": game.id, "user_id": conn.user_id, "user_name": conn.user_name},
                    )
                return {"game_id": game.id}
            case Leave(conn):
                if self.services.hub.unsubscribe(game.id, conn):
                    self._broadcast(
                        480,
                        {"game_id": game.id, "user_id": conn.user_id, "user_name": conn.user_name},
                    )
                return {"game_id": game.id}
            case Close(user_id):
                if user_id is not None:
                    await self._source_admin(user_id)
                return await self._close(user_id)
            case CreatePool(user_id, fields):
                self._game_admin(user_id)
                return await self._create_pool(fields)
            case RegisterEvent():
                self._game_admin(body.user_id)
                return await self._register_event(body)
            case BlockAction(user_id, action, at, block):
                self._game_admin(user_id)
                return await self._block_action(action, at, block)
        raise DomainError("UNKNOWN_OP", f"A game does not handle {type(body).__name__}.")

    # -- roles ------------------------------------------------------------------------

    async def _source_admin(self, user_id: int) -> None:
        await self.services.ask_registry(CheckSourceAdmin(self.game.source_id, user_id))

    def _game_admin(self, user_id: int) -> None:
        if user_id not in self.game.admins:
            raise DomainError(
                "NOT_AUTHORIZED", "Only admins of this game may do this; ask with op 616 first."
            )

    async def _become_admin(self, user_id: int) -> dict[str, Any]:
        game = self.game
        try:
            await self._source_admin(user_id)
        except DomainError as error:
            return {"res": 645, "game_id": game.id, "reason": error.text}
        if user_id in game.admins:
            return {"res": 640, "game_id": game.id}
        if len(game.admins) >= self.services.settings.game_admin_limit:
            return {
                "res": 645,
                "game_id": game.id,
                "reason": "This game already has enough admins.",
            }
        await self._save(replace(game, admins=[*game.admins, user_id]))
        return {"res": 640, "game_id": game.id}

    # -- state changes ----------------------------------------------------------------

    def _require_not_closed(self) -> None:
        if self.game.is_closed:
            raise DomainError("INVALID_STATE", "This game is closed.")

    def _with_details(self, actions: list[str], targets: list[str], *, opened: bool) -> Game:
        game = self.game
        merged_actions = {
            **game.actions,
            **{k: v for k, v in build_actions(actions).items() if k not in game.actions},
        }
        tree = game.tree.merged(targets)
        return replace(game, actions=merged_actions, targets=tree.as_dict(), opened=opened)

    async def _save(self, game: Game, extra: list[Change] | None = None) -> None:
        """Commit the game's new state, then adopt it (never the other way round)."""
        await self.services.storage.commit([Upsert("games", game_row(game)), *(extra or [])])
        self.game = game

    async def _close(self, user_id: int | None) -> dict[str, Any]:
        game = self.game
        self._require_not_closed()
        blocked: list[str] = []
        for pool_id, box in await self.directory.pools_of(game.id, open_only=True):
            outcome = await box.ask(
                pool_msgs.CloseForGame(), timeout=self.services.settings.request_timeout
            )
            if outcome == "blocked":
                blocked.append(pool_id)
        if blocked:
            if not game.closing:
                await self._save(replace(game, closing=True))
            return {"closed": False, "game_id": game.id, "blocked": blocked, "blocked_at": self.now}
        await self._save(replace(game, closed_at=self.now))
        self._broadcast(341, {"game_id": game.id})
        return {"closed": True, "game_id": game.id}

    async def _create_pool(self, fields: dict[str, Any]) -> dict[str, Any]:
        game, now = self.game, self.now
        if not game.accepts_pools(now):
            raise DomainError(
                "INVALID_STATE", f"Pools cannot be opened while the game is {game.status(now)}."
            )
        pool = new_pool(
            game, fields, now, fail_safe_delay_ms=self.services.settings.fail_safe_delay_ms
        )
        await self.services.storage.commit([Insert("pools", pool_row(pool))])
        await self.directory.start_pool(pool.id, announce=True)
        return {
            "game_id": game.id,
            "pool_id": pool.id,
            "description": pool.description,
            "pool_type": pool.pool_type,
        }

    async def _register_event(self, body: RegisterEvent) -> dict[str, Any]:
        game, now = self.game, self.now
        self._require_not_closed()
        if not isinstance(body.action, str) or action_id(body.action) not in game.actions:
            raise DomainError(
                "INVALID_PARAMETER",
                f"{body.action!r} is not an action of this game.",
                parameter="action_id",
            )
        action = action_id(body.action)
        tree = game.tree
        target = event_target(tree, body.target)
        reported = body.happened_at
        if reported is not None and reported > now + HAPPENED_AT_SLACK_MS:
            raise DomainError(
                "INVALID_PARAMETER", "happened_at is in the future.", parameter="happened_at"
            )
        if reported is not None and (seen := self.reported.get((action, target, reported))):
            # a resend: not counted again; whatever it left unsettled is settled now
            await self._finish_pending_resolutions()
            return {"event": self._event_message(seen), "resolved": [], "duplicate": True}
        # A clock ahead of ours must not keep bets placed from now on valid: an event
        # never happened later than we heard of it.
        happened_at = now if reported is None else min(reported, now)
        hit = [
            (pool_id, winning_target(info["targets"], target), happened_at)
            for pool_id, info in await self._open_pools()
            if resolves_by_event(info, action, happened_at)
        ]
        event_id = str(uuid.uuid4())
        counts = {**game.counts, action: dict(game.counts.get(action, {}))}
        counts[action][target] = counts[action].get(target, 0) + 1
        event = {"happened_at": happened_at, "target_id": target, "action_id": action}
        changes: list[Change] = [
            Insert(
                "events",
                {
                    "id": event_id,
                    "game_id": game.id,
                    **event,
                    "reported_at": reported,
                    "registered_at": now,
                },
            ),
        ]
        changes += [
            Upsert(
                "pending_resolutions",
                {
                    "pool_id": pool_id,
                    "winning_target": winner,
                    "happened_at": happened_at,
                    "event_id": event_id,
                },
            )
            for pool_id, winner, _ in hit
        ]
        await self._save(replace(game, counts=counts), changes)
        self.events[event_id] = event
        if reported is not None:
            self.reported[(action, target, reported)] = event_id
        # every pool it resolves stops taking bets before anyone hears of the event
        await self._halt_pools(hit)
        message = self._event_message(event_id)
        self._broadcast(366, message)
        return {"event": message, "resolved": await self._resolve_pools(hit)}

    def _event_message(self, event_id: str) -> dict[str, Any]:
        event = self.events[event_id]
        action, target = event["action_id"], event["target_id"]
        return {
            "action_id": action,
            "target_id": target,
            "target_display_name": self.game.tree.display_name(target),
            "current_count": self.game.counts.get(action, {}),
            "game_id": self.game.id,
            "happened_at": event["happened_at"],
            "event_id": event_id,
        }

    async def _open_pools(self) -> list[tuple[str, dict[str, Any]]]:
        """What an event needs to know of the game's open pools, read from storage (a pool
        whose actor is down or busy still counts)."""
        game_id = self.game.id
        rows = await self.services.storage.read(
            lambda db: db.rows(
                "SELECT id, doc FROM pools WHERE game_id = ? AND status = 'open'", (game_id,)
            )
        )
        pools = []
        for row in rows:
            try:
                doc = msgspec.json.decode(row["doc"])
                info = {key: doc[key] for key in ("action", "pool_type", "start_at", "targets")}
            except (msgspec.DecodeError, KeyError, TypeError):
                log.error("game %s: pool %s is unreadable in storage", self.game.id, row["id"])
                continue
            pools.append((row["id"], {**info, "open": True}))
        return pools

    async def _block_action(self, action: Any, at: int | None, block: bool) -> dict[str, Any]:
        game = self.game
        self._require_not_closed()
        if not isinstance(action, str) or action_id(action) not in game.actions:
            raise DomainError(
                "INVALID_PARAMETER",
                f"{action!r} is not an action of this game.",
                parameter="action",
            )
        aid = action_id(action)
        now = self.now
        if at is not None and at <= now:
            at = None
        timeout = self.services.settings.request_timeout
        done = []
        for _, box in await self.directory.pools_of(game.id, open_only=True):
            info = await box.ask(pool_msgs.Info(), timeout=timeout)
            if info["open"] and info["action"] == aid:
                done.append(
                    await box.ask(
                        pool_msgs.Block(at) if block else pool_msgs.Allow(at), timeout=timeout
                    )
                )
        key, res = ("blocked_at", 370) if block else ("allowed_at", 371)
        message = {"game_id": game.id, "action": aid, key: at or now}
        self._broadcast(res, message)
        return {"res": res, **message, "pools": done}

    def _broadcast(self, res: int, fields: dict[str, Any]) -> None:
        self.services.hub.to_game(self.game.id, server_message(res, fields, t=self.now))


class Games:
    """Where game and pool actors live: knows every game and pool id, and spawns an actor
    (from storage) when one is needed. At start only live games and open pools are
    started; closed games and resolved pools come back on demand, and leave memory again
    when idle (``Settings.idle_seconds``)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._pools_by_game: dict[str, list[str]] = {}
        self._pool_game: dict[str, str] = {}
        self._open: set[str] = set()  # pools not yet resolved, as their actors report

    @classmethod
    async def load(cls, services: Services) -> Games:
        games = cls(services)
        services.games = games
        game_rows, pool_rows = await services.storage.read(
            lambda db: (
                db.rows("SELECT id, doc FROM games ORDER BY rowid"),
                db.rows("SELECT id, game_id, status FROM pools ORDER BY rowid"),
            )
        )
        for row in pool_rows:
            games._index_pool(row["id"], row["game_id"])
            if row["status"] == "open":
                games._open.add(row["id"])
        for row in game_rows:
            games._pools_by_game.setdefault(row["id"], [])
            if msgspec.json.decode(row["doc"]).get("closed_at") is None:
                await games.start_game(row["id"])
        for pool_id in list(games._open):
            await games.start_pool(pool_id)
        return games

    async def adopt_open_pools(self, game_id: str) -> None:
        """Start the game's open pools that storage has and this directory does not know:
        a pool created by a commit whose answer was lost is real all the same."""
        rows = await self.services.storage.read(
            lambda db: db.rows(
                "SELECT id FROM pools WHERE game_id = ? AND status = 'open' ORDER BY rowid",
                (game_id,),
            )
        )
        for row in rows:
            if row["id"] not in self._pool_game:
                self._open.add(row["id"])
                await self.start_pool(row["id"], game_id=game_id, announce=True)

    def pool_resolved(self, pool_id: str) -> None:
        """A pool actor says it settled: events and closes need not wake it again."""
        self._open.discard(pool_id)

    def _index_pool(self, pool_id: str, game_id: str) -> None:
        if pool_id not in self._pool_game:
            self._pool_game[pool_id] = game_id
            self._pools_by_game.setdefault(game_id, []).append(pool_id)

    async def start_game(self, game_id: str) -> Mailbox:
        self._pools_by_game.setdefault(game_id, [])
        return await self.services.supervisor.spawn(
            f"game:{game_id}", lambda inbox: GameActor.load(inbox, self.services, game_id)
        )

    async def start_pool(
        self, pool_id: str, *, game_id: str | None = None, announce: bool = False
    ) -> Mailbox:
        """Spawn a pool actor (or find it running); with ``announce`` broadcast it (352)."""
        box = await self.services.supervisor.spawn(
            f"pool:{pool_id}",
            lambda inbox: PoolActor.load(inbox, self.services, pool_id),
            capacity=1024,
        )
        timeout = self.services.settings.request_timeout
        game_id = game_id or self._pool_game.get(pool_id)
        if game_id is None:
            game_id = (await box.ask(pool_msgs.Info(), timeout=timeout))["game_id"]
        self._index_pool(pool_id, game_id)
        if announce:
            self._open.add(pool_id)
            created = await box.ask(pool_msgs.Announcement(), timeout=timeout)
            self.services.hub.to_game(
                game_id, server_message(352, created, t=self.services.clock.now_ms())
            )
        return box

    async def create_game(
        self, source_id: str, user_id: int, fields: dict[str, Any], *, opened: bool
    ) -> Game:
        services = self.services
        await services.ask_registry(CheckSourceAdmin(source_id, user_id))
        game = new_game(
            source_id,
            fields,
            services.clock.now_ms(),
            opened=opened,
            default_currency=services.settings.default_currency,
        )
        await services.storage.commit([Insert("games", game_row(game))])
        await services.ask_registry(AddGame(source_id, game.id))
        await self.start_game(game.id)
        return game

    async def game(self, game_id: Any) -> Mailbox:
        """The game's mailbox, its actor started if it was not running."""
        if not isinstance(game_id, str) or game_id not in self._pools_by_game:
            raise DomainError("NOT_FOUND", f"There is no game {game_id!r}.")
        return await self.start_game(game_id)

    async def pool(self, pool_id: Any) -> tuple[str, Mailbox]:
        """The pool's game id and mailbox, its actor started if it was not running."""
        game_id = self._pool_game.get(pool_id) if isinstance(pool_id, str) else None
        if game_id is None:
            raise DomainError("NOT_FOUND", f"There is no pool {pool_id!r}.")
        return game_id, await self.start_pool(pool_id, game_id=game_id)

    async def pools_of(self, game_id: str, *, open_only: bool = False) -> list[tuple[str, Mailbox]]:
        """The game's pools (only unresolved ones with ``open_only``), each actor started
        if it was not running."""
        return [
            (pool_id, await self.start_pool(pool_id, game_id=game_id))
            for pool_id in list(self._pools_by_game.get(game_id, []))
            if not open_only or pool_id in self._open
        ]

    async def games_of(self, source_id: str) -> list[str]:
        return await self.services.ask_registry(GamesOf(source_id))

    async def close_source(self, source_id: str) -> list[dict[str, Any]]:
        """Close every game of a closing source, as op 375 would. Returns the binary pools
        still waiting for op 396 (as 368 fields): while there are any, the source stays
        open, and its admin resolves them and resends op 366."""
        waiting: list[dict[str, Any]] = []
        for game_id in await self.games_of(source_id):
            try:
                reply = await (await self.game(game_id)).ask(
                    Close(None), timeout=self.services.settings.request_timeout
                )
            except DomainError as error:
                if error.code != "INVALID_STATE":  # already closed
                    raise
                continue
            if not reply["closed"]:
                waiting += [
                    {"blocked_at": reply["blocked_at"], "pool_id": pool_id}
                    for pool_id in reply["blocked"]
                ]
        return waiting
