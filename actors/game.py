"""The game actor: one task per game. Its protocol (messages, results, events) first."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import msgspec
import trio

from actors import pool as pool_msgs
from actors.directory_protocol import GameClosure
from actors.hub import RESERVE_AHEAD, Address, Broadcast, Joined
from actors.pool import pool_row
from actors.registry import CheckSourceAdmin, GetUser
from actors.services import Directory, Services
from domain.codec import encode
from domain.errors import DomainError, OutcomeUnknown
from domain.game import (
    Game,
    GameDetails,
    GameOpened,
    GameSummary,
    check_event_room,
    check_pool_room,
    event_target,
)
from domain.pool import new_pool, resolves_by_event
from domain.roles import Role
from domain.rules import REMOTE_DELAY, check_house_role
from domain.targets import TargetTree, action_id, merged_actions, winning_target
from kit.runtime import Actor, Ask, Handlers, Mailbox
from storage import games as games_store
from storage.changes import Change, Insert, Upsert
from storage.database import Database
from storage.seqs import reserve_seq, reserved_seq

log = logging.getLogger(__name__)

HAPPENED_AT_SLACK_MS = 60_000  # an event may be stamped this far ahead of our clock
POOL_NOT_STARTED = (
    "The pool was saved but could not be started yet; it is announced once it is. "
    "List the game's pools before creating it again."
)


# -- messages -------------------------------------------------------------------------
# A command's ``role`` says who may send it; ``GameActor._authorize`` checks it.
# Each declares its reply (``Ask[...]``) and, under ``Raises:``, the error codes it can fail
# with besides those of every request (``REQUEST_TIMED_OUT``, ``ACTOR_RESTARTED``,
# ``UNAVAILABLE``, ``INTERNAL_ERROR``). A command from a user may also raise
# ``NOT_AUTHORIZED`` (not an admin of the source or game) and, for a source admin's,
# ``NOT_FOUND`` / ``INVALID_STATE`` (the source unknown or closed).


@dataclass(frozen=True, slots=True)
class OpenGame(Ask[GameOpened]):
    """Open an upcoming game, adding actions and targets.

    Raises: INVALID_STATE (closed, or already open), INVALID_PARAMETER (past a bound).
    """

    role: ClassVar[Role] = Role.SOURCE_ADMIN
    user_id: int
    actions: list[str]
    targets: list[str]


@dataclass(frozen=True, slots=True)
class UpdateDetails(Ask["GameAcknowledged"]):
    """Add actions and targets, set the pool rules of the game's future pools.

    Raises: INVALID_STATE (closed), INVALID_PARAMETER (past a bound, a rule out of range).
    """

    role: ClassVar[Role] = Role.SOURCE_ADMIN
    user_id: int
    actions: list[str]
    targets: list[str]
    #: pool rules for the game's future pools (decisions §11), as sent
    rules: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BecomeAdmin(Ask["AdminGrant"]):
    """Answered with an ``AdminGrant``: a refusal is an answer, not an error (seed 001).

    Raises: nothing of its own (not even NOT_AUTHORIZED: that is the grant's refusal).
    """

    role: ClassVar[Role] = Role.SOURCE_ADMIN
    user_id: int


@dataclass(frozen=True, slots=True)
class IsAdmin(Ask[bool]):
    """Whether the user is one of the game's admins. Raises: nothing of its own."""

    user_id: int


@dataclass(frozen=True, slots=True)
class Details(Ask[GameDetails]):
    """The game's details now (res 342). Raises: nothing of its own."""


@dataclass(frozen=True, slots=True)
class Summary(Ask[GameSummary]):
    """The game as a source's list shows it (res 345). Raises: nothing of its own."""


@dataclass(frozen=True, slots=True)
class Join(Ask[Joined]):
    """Subscribe ``address`` to the game's events. With ``since_seq``, the broadcasts
    numbered above it follow ``greet``'s answer (decisions §9); ``greet`` gets the
    ``Joined`` before anything else is queued to ``address``.

    Raises: INVALID_STATE (the game is closed).
    """

    user_id: int
    user_name: str
    address: Address
    since_seq: int | None = None
    greet: Callable[[Joined], None] | None = None


@dataclass(frozen=True, slots=True)
class JoinFrom(Ask[Joined]):
    """A join on another node of the cluster (its hub holds the subscriber): ``viewers``
    is that node's count of the game's subscribers now (an absolute count, so a lost one
    is mended by the next), and presence counts the whole cluster. ``announce``: the
    subscriber is new there, so the others hear of it (470, or a 471 count). The answer's
    ``seq`` is the game's latest before that 470: the node greets once its copy of the
    game's broadcasts reached it; ``viewers`` is the cluster's count.

    Raises: INVALID_STATE (the game is closed), INVALID_PARAMETER (``since_seq`` past the
    game's latest: nothing counted).
    """

    user_id: int
    user_name: str
    node_id: str
    viewers: int
    announce: bool = True
    since_seq: int | None = None


@dataclass(frozen=True, slots=True)
class LeaveFrom(Ask["GameAcknowledged"]):
    """A leave on another node: ``viewers`` is that node's count now (absolute);
    ``announce``: a subscriber was removed there, so the others hear of it (480).
    Without ``announce`` it only sets the count (the node's periodic report of its
    subscribers: connections that dropped are counted that way).

    Raises: nothing of its own.
    """

    user_id: int
    user_name: str
    node_id: str
    viewers: int
    announce: bool = True


@dataclass(frozen=True, slots=True)
class ReserveSeqs(Ask[None]):
    """The hub used half of the game's reserved broadcast numbers: reserve more.

    Raises: nothing of its own (a failed commit is storage's error).
    """


@dataclass(frozen=True, slots=True)
class Leave(Ask["GameAcknowledged"]):
    """Unsubscribe ``address``; the others hear of it. Raises: nothing of its own."""

    user_id: int
    user_name: str
    address: Address


@dataclass(frozen=True, slots=True)
class Close(Ask["GameClosure"]):
    """Close the game; binary pools still open are blocked and keep it open (the answer
    names them) until their admins resolve them.

    Raises: INVALID_STATE (already closed).
    """

    role: ClassVar[Role] = Role.SOURCE_ADMIN
    user_id: int | None  # None: the system (close_at, or the source closing)


@dataclass(frozen=True, slots=True)
class CreatePool(Ask["PoolCreated"]):
    """Open a pool on the game (op 385).

    Raises: INVALID_STATE (the game takes no pools now), INVALID_PARAMETER (a field, too
    many open pools, a bet delay in remote wallet mode), INVALID_TARGET, NOT_AUTHORIZED
    (house money without the house role).
    """

    role: ClassVar[Role] = Role.GAME_ADMIN
    user_id: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RegisterEvent(Ask["EventRecorded"]):
    """Something happened (op 395): counted, and the pools it resolves settle.

    Raises: INVALID_STATE (closed), INVALID_PARAMETER (an unknown action, ``happened_at``
    ahead of our clock, too many events), INVALID_TARGET (not a leaf of the game's tree).
    """

    role: ClassVar[Role] = Role.GAME_ADMIN
    user_id: int
    action: Any
    target: Any
    happened_at: int | None


@dataclass(frozen=True, slots=True)
class BlockAction(Ask["ActionBlocked | ActionAllowed"]):
    """Block (or allow) every open pool of an action, now or at ``at``.

    Raises: INVALID_STATE (closed), INVALID_PARAMETER (an unknown action).
    """

    role: ClassVar[Role] = Role.GAME_ADMIN
    user_id: int
    action: Any
    at: int | None
    block: bool


@dataclass(frozen=True, slots=True)
class ForPool(Ask[Any]):
    """An admin's command to one of the game's pools (``Block``, ``Allow``,
    ``ResolveByHand``, ``Void``): the game owns who its admins are, so it checks, then
    forwards; the answer is the pool's.

    Raises: NOT_FOUND (not a pool of this game), and whatever the command raises.
    """

    role: ClassVar[Role] = Role.GAME_ADMIN
    user_id: int
    pool_id: str
    command: pool_msgs.Block | pool_msgs.Allow | pool_msgs.ResolveByHand | pool_msgs.Void


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolCreated:
    """The answer to ``CreatePool`` (res 350's fields)."""

    game_id: str
    pool_id: str
    description: str
    pool_type: int


@dataclass(frozen=True, slots=True)
class GameAcknowledged:
    """The game took an ``UpdateDetails`` or a ``Leave`` (res 343, res 334)."""

    game_id: str


@dataclass(frozen=True, slots=True)
class AdminGrant:
    game_id: str
    refused: str | None = None  # why not, when the user did not become an admin


@dataclass(frozen=True, slots=True)
class EventRecorded:
    event: EventRegistered
    resolved: list[pool_msgs.PoolSettled]
    duplicate: bool = False


# -- events (to the game's subscribers) ----------------------------------------------


class DetailsChanged(Broadcast):
    """The game's details, after actions or targets were added."""


class GameClosed(Broadcast):
    pass


class PlayerJoined(Broadcast):
    pass


class PlayerLeft(Broadcast):
    pass


class ViewersCounted(Broadcast):
    """How many watch the game, sent instead of each join and leave above
    ``presence_limit`` (decisions §9), at most once a second."""


class EventRegistered(Broadcast):
    """Something happened in the game (a goal); the pools it resolves follow."""


class ActionBlocked(Broadcast):
    """Every open pool of an action is blocked (or will be, at ``blocked_at``)."""


class ActionAllowed(Broadcast):
    pass


def game_row(game: Game) -> dict[str, Any]:
    return {
        "id": game.id,
        "source_id": game.source_id,
        "doc": msgspec.json.encode(game.to_doc()).decode(),
    }


def _load_game(
    db: Database, game_id: str
) -> tuple[Game, dict[str, dict[str, Any]], dict[tuple[str, str, int], str]]:
    """The game, its events by id and its resent reports; NOT_FOUND when there is none."""
    stored = games_store.game_with_events(db, game_id)
    if stored is None:
        raise DomainError("NOT_FOUND", f"There is no game {game_id!r}.")
    events = {
        e.id: {"happened_at": e.happened_at, "target_id": e.target_id, "action_id": e.action_id}
        for e in stored.events
    }
    reported = {
        (e.action_id, e.target_id, e.reported_at): e.id
        for e in stored.events
        if e.reported_at is not None
    }
    return Game.from_doc(msgspec.json.decode(stored.doc)), events, reported


def _event_changes(row: dict[str, Any], hit: list[tuple[str, str, int]]) -> list[Change]:
    """The event's row and a pending resolution for each pool it resolves (``hit``: pool,
    winning target, when): one commit, after which the resolutions are durable."""
    pending = [
        Upsert(
            "pending_resolutions",
            {
                "pool_id": pool_id,
                "winning_target": winner,
                "happened_at": at,
                "event_id": row["id"],
            },
        )
        for pool_id, winner, at in hit
    ]
    return [Insert("events", row), *pending]


def encoded_large_fields(
    tree: TargetTree, events: dict[str, dict[str, Any]]
) -> tuple[msgspec.Raw, msgspec.Raw]:
    """The 342's targets and past events as ready JSON (``msgspec.Raw`` is copied as is
    into every message that holds it). CPU work: run in a worker thread."""
    return msgspec.Raw(encode(tree.to_wire())), msgspec.Raw(encode(events))


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
        #: the highest broadcast seq storage holds as reserved for this game
        self.seq_reserved = 0
        #: the audience a 471 last told (None: none told, joins and leaves go to all) and
        #: when the count may be looked at again (at most once a second)
        self.viewers_shown: int | None = None
        self.viewers_check_at = -math.inf
        #: the other nodes' subscribers of the game, as each last told (``JoinFrom``)
        self.remote_viewers: dict[str, int] = {}
        #: (game, events recorded, targets, past events): the 342's large fields as JSON,
        #: for that version of the game (a new event or a save replaces it)
        self._encoded: tuple[Game, int, msgspec.Raw, msgspec.Raw] | None = None
        #: (the game's targets, their tree): rebuilt when a save brings new targets
        self._tree: tuple[dict[str, str], TargetTree] | None = None

    @classmethod
    async def load(cls, inbox: Mailbox, services: Services, game_id: str) -> GameActor:
        game, events, reported, reserved = await services.storage.read(
            lambda db: (*_load_game(db, game_id), reserved_seq(db, game_id))
        )
        actor = cls(inbox, services, game, events)
        actor.reported = reported
        await actor._reserve_seqs(reserved)
        return actor

    async def _reserve_seqs(self, reserved_before: int) -> None:
        """Reserve the game's next broadcast numbers in storage, then let the hub use
        them: whatever it sends stays below what storage holds, so after a restart the
        game's seq starts above anything ever sent (decisions §9)."""
        hub, game_id = self.services.hub, self.game.id
        reserved = max(reserved_before, hub.last_seq(game_id)) + RESERVE_AHEAD
        await self.services.storage.commit([reserve_seq(game_id, reserved)])
        self.seq_reserved = reserved
        hub.reserve(game_id, reserved_before, reserved, self._ask_for_seqs)

    def _ask_for_seqs(self) -> bool:
        """The hub's call when half the reservation is used (it cannot wait for storage)."""
        return self.inbox.tell(ReserveSeqs())

    @property
    def now(self) -> int:
        return self.services.clock.now_ms()

    @property
    def directory(self) -> Directory:
        return self.services.games

    # -- the kit's hooks --------------------------------------------------------------

    async def on_start(self) -> None:
        await self.directory.adopt_open_pools(self.game.id)
        await self._finish_pending_resolutions()

    def can_passivate(self) -> bool:
        return self.game.is_closed

    def next_deadline(self) -> float:
        return min(self._close_deadline(), self.retry_pending_at, self._viewers_deadline())

    async def on_deadline(self) -> None:
        if trio.current_time() >= self._viewers_deadline():
            self._count_viewers()
        if trio.current_time() >= self.retry_pending_at:
            await self._finish_pending_resolutions()
        if trio.current_time() >= self._close_deadline():
            await self._close()

    async def _finish_pending_resolutions(self) -> None:
        """Settle every pool an event resolved that has not settled yet (its game or the
        pool died meanwhile, or the pool did not answer): the rows say what to settle."""
        game_id = self.game.id
        rows = await self.services.storage.read(
            lambda db: games_store.pending_resolutions(db, game_id)
        )
        await self._resolve_pools([(r.pool_id, r.winning_target, r.happened_at) for r in rows])

    async def _resolve_pools(
        self, pools: list[tuple[str, str, int]]
    ) -> list[pool_msgs.PoolSettled]:
        """Ask each pool (at once, not one after another) to settle its committed event
        resolution. A pool that fails does not stop the others; it is tried again later,
        and it also settles itself once it knows of the event."""
        results: list[pool_msgs.PoolSettled] = []
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

    async def handle(self, body: Any) -> Any:
        handler = self.handlers.of(body)
        if not isinstance(body, BecomeAdmin):  # its refusal is an answer, not an error
            await self._authorize(body)
        return await handler(self, body)

    # -- the handlers (``handlers`` at the end of the class) --------------------------

    async def _on_details(self, _: Details) -> GameDetails:
        return await self._details()

    async def _on_summary(self, _: Summary) -> GameSummary:
        return self.game.summary(self.now)

    async def _is_admin(self, body: IsAdmin) -> bool:
        return body.user_id in self.game.admins

    async def _open(self, body: OpenGame) -> GameOpened:
        self._require_not_closed()
        if self.game.opened:
            raise DomainError("INVALID_STATE", "This game is already open.")
        await self._save(await self._with_details(body.actions, body.targets, opened=True))
        return GameOpened.of(self.game)  # the saved game

    async def _update_details(self, body: UpdateDetails) -> GameAcknowledged:
        self._require_not_closed()
        game = self.game
        changed = await self._with_details(body.actions, body.targets, opened=game.opened)
        await self._save(changed.with_rules(body.rules))
        self._publish(DetailsChanged((await self._details()).wire()))
        return GameAcknowledged(game.id)

    async def _leave(self, body: Leave) -> GameAcknowledged:
        if self.services.hub.leave(self.game.id, body.address):
            self._announce_presence(PlayerLeft(self._player(body.user_id, body.user_name)))
        return GameAcknowledged(self.game.id)

    async def _leave_from(self, body: LeaveFrom) -> GameAcknowledged:
        self._count_node(body.node_id, body.viewers)
        if body.announce:
            self._announce_presence(PlayerLeft(self._player(body.user_id, body.user_name)))
        return GameAcknowledged(self.game.id)

    async def _on_reserve_seqs(self, _: ReserveSeqs) -> None:
        await self._reserve_seqs(self.seq_reserved)

    async def _on_close(self, _: Close) -> GameClosure:
        return await self._close()

    async def _for_pool(self, body: ForPool) -> Any:
        game_id, box = await self.directory.pool(body.pool_id)
        if game_id != self.game.id:
            raise DomainError("NOT_FOUND", f"This game has no pool {body.pool_id!r}.")
        return await box.ask(body.command, timeout=self.services.settings.request_timeout)

    async def _details(self) -> GameDetails:
        """Res 342. Its large fields (up to 1,000 targets and 10,000 events) are encoded
        once per version of the game, in a worker thread, and reused until the game
        changes: a client asking again and again costs the event loop a copy."""
        game, recorded = self.game, len(self.events)
        cached = self._encoded
        if cached is None or cached[0] is not game or cached[1] != recorded:
            targets, events = await self.services.storage.off_loop(
                encoded_large_fields, self.tree, self.events
            )
            cached = self._encoded = (game, recorded, targets, events)
        _, _, targets, events = cached
        return game.details(self.now, events, targets)

    def _player(self, user_id: int, user_name: str) -> dict[str, Any]:
        return {"game_id": self.game.id, "user_id": user_id, "user_name": user_name}

    # -- subscribers (decisions §9) ---------------------------------------------------

    async def _join(self, body: Join) -> Joined:
        """Subscribe, and resume from ``since_seq``: the hub's work, O(1) in the number
        of subscribers (plus what the client missed)."""
        self._require_not_closed()
        joined, added = self.services.hub.join(
            self.game.id,
            body.address,
            since_seq=body.since_seq,
            greet=body.greet,
            replay_bytes=self.services.settings.outbox_bytes // 2,
        )
        if added:
            self._announce_presence(PlayerJoined(self._player(body.user_id, body.user_name)))
        return joined

    async def _join_from(self, body: JoinFrom) -> Joined:
        """Count another node's subscribers; the answer's ``seq`` comes before the 470."""
        self._require_not_closed()
        seq = self.services.hub.last_seq(self.game.id)
        if body.since_seq is not None and body.since_seq > seq:
            raise DomainError(
                "INVALID_PARAMETER",
                f"since_seq {body.since_seq} is past this game's latest seq ({seq}).",
                parameter="since_seq",
            )
        self._count_node(body.node_id, body.viewers)
        if body.announce:
            self._announce_presence(PlayerJoined(self._player(body.user_id, body.user_name)))
        return Joined(self.game.id, seq, None, self._audience())

    def _count_node(self, node_id: str, viewers: int) -> None:
        if viewers > 0:
            self.remote_viewers[node_id] = viewers
        else:
            self.remote_viewers.pop(node_id, None)

    def _audience(self) -> int:
        """The game's subscribers on every node of the cluster (this one's hub, and what
        the others last told)."""
        return self.services.hub.viewers(self.game.id) + sum(self.remote_viewers.values())

    def _announce_presence(self, event: PlayerJoined | PlayerLeft) -> None:
        """A join or leave goes to everyone while the audience is small; above
        ``presence_limit`` to the game's admins only, the others get counts (471)."""
        hub, game_id = self.services.hub, self.game.id
        if self._audience() <= self.services.settings.presence_limit:
            self._publish(event)
        else:
            hub.to_game_users(game_id, self.game.admins, event)

    def _viewers_deadline(self) -> float:
        """When to look at the audience again: once a second while it is above
        ``presence_limit``, or while the last 471 told a count that changed since.
        Looking is how leaves the game actor never hears of (a dropped connection) count."""
        above = self._audience() > self.services.settings.presence_limit
        return self.viewers_check_at if above or self.viewers_shown is not None else math.inf

    def _count_viewers(self) -> None:
        """Tell everyone the audience (471) if it changed since the last count."""
        viewers = self._audience()
        self.viewers_check_at = trio.current_time() + 1.0
        if viewers != self.viewers_shown:
            self._publish(ViewersCounted({"game_id": self.game.id, "viewers": viewers}))
            above = viewers > self.services.settings.presence_limit
            self.viewers_shown = viewers if above else None

    # -- roles ------------------------------------------------------------------------

    async def _authorize(self, body: Any) -> None:
        """The one check of who may send a command: the role its message declares."""
        role = getattr(body, "role", Role.ANYONE)
        user_id = getattr(body, "user_id", None)
        if role is Role.ANYONE or user_id is None:  # None: the game's own timers
            return
        if role is Role.SOURCE_ADMIN:
            await self.services.ask_registry(CheckSourceAdmin(self.game.source_id, user_id))
        elif user_id not in self.game.admins:
            raise DomainError(
                "NOT_AUTHORIZED", "Only admins of this game may do this; ask with op 616 first."
            )

    async def _become_admin(self, body: BecomeAdmin) -> AdminGrant:
        game = self.game
        try:
            await self._authorize(body)
        except DomainError as error:
            return AdminGrant(game.id, refused=error.text)
        if body.user_id in game.admins:
            return AdminGrant(game.id)
        if len(game.admins) >= self.services.settings.game_admin_limit:
            return AdminGrant(game.id, refused="This game already has enough admins.")
        await self._save(replace(game, admins=[*game.admins, body.user_id]))
        return AdminGrant(game.id)

    # -- state changes ----------------------------------------------------------------

    def _require_not_closed(self) -> None:
        if self.game.is_closed:
            raise DomainError("INVALID_STATE", "This game is closed.")

    async def _with_details(self, actions: list[str], targets: list[str], *, opened: bool) -> Game:
        """The game with ``actions`` and ``targets`` added (``INVALID_PARAMETER`` past a
        bound), merged in a worker thread: a tree of 1,000 targets is rebuilt whole."""
        game, tree = self.game, self.tree
        merged = await self.services.storage.off_loop(tree.merged, targets)
        return replace(
            game,
            actions=merged_actions(game.actions, actions),
            targets=merged.as_dict(),
            opened=opened,
        )

    @property
    def tree(self) -> TargetTree:
        """The game's target tree, built once per change of its targets (it takes
        milliseconds at 1,000 targets, and every event needs it)."""
        targets = self.game.targets
        if self._tree is None or self._tree[0] is not targets:
            self._tree = (targets, TargetTree(targets))
        return self._tree[1]

    async def _save(self, game: Game, extra: list[Change] | None = None) -> None:
        """Commit the game's new state, then adopt it (never the other way round)."""
        await self.services.storage.commit([Upsert("games", game_row(game)), *(extra or [])])
        self.game = game

    async def _close(self) -> GameClosure:
        game = self.game
        self._require_not_closed()
        blocked: list[str] = []
        for pool_id, box in await self.directory.pools_of(game.id, open_only=True):
            outcome = await box.ask(
                pool_msgs.CloseForGame(), timeout=self.services.settings.request_timeout
            )
            if outcome is pool_msgs.PoolClosure.BLOCKED:
                blocked.append(pool_id)
        if blocked:
            if not game.closing:
                await self._save(replace(game, closing=True))
            return GameClosure(game.id, blocked, self.now)
        await self._save(replace(game, closed_at=self.now))
        self._publish(GameClosed({"game_id": game.id}))
        return GameClosure(game.id)

    async def _create_pool(self, body: CreatePool) -> PoolCreated:
        game, now, user_id, fields = self.game, self.now, body.user_id, body.fields
        if not game.accepts_pools(now):
            raise DomainError(
                "INVALID_STATE", f"Pools cannot be opened while the game is {game.status(now)}."
            )
        check_pool_room(self.directory.open_count(game.id))
        rule = self.services.settings.fail_safe_rule
        pool = new_pool(game, fields, now, fail_safe=rule, tree=self.tree)
        if pool.rules.bet_delay_ms and self.services.operator is not None:
            raise DomainError("INVALID_PARAMETER", REMOTE_DELAY, parameter="bet_delay_ms")
        if pool.rules.house_money() is not None:
            user = await self.services.ask_registry(GetUser(user_id))
            check_house_role(pool.rules, user.roles)
        await self.services.storage.commit([Insert("pools", pool_row(pool))])
        try:
            await self.directory.start_pool(pool.id, announce=True)
        except DomainError as error:  # e.g. the database went away just after the commit
            # The pool is real but the directory may not know it: the rebuilt game adopts
            # it from storage and announces it (``on_start``), never a pool it cannot find.
            raise OutcomeUnknown("UNAVAILABLE", POOL_NOT_STARTED) from error
        return PoolCreated(game.id, pool.id, pool.description, pool.pool_type)

    def _known_action(self, raw: Any, parameter: str) -> str:
        """The action ``raw`` names; INVALID_PARAMETER (naming ``parameter``) when it is
        not one of the game's."""
        if not isinstance(raw, str) or action_id(raw) not in self.game.actions:
            raise DomainError(
                "INVALID_PARAMETER", f"{raw!r} is not an action of this game.", parameter=parameter
            )
        return action_id(raw)

    async def _register_event(self, body: RegisterEvent) -> EventRecorded:
        game, now = self.game, self.now
        self._require_not_closed()
        action = self._known_action(body.action, "action_id")
        target = event_target(self.tree, body.target)
        reported = body.happened_at
        if reported is not None and reported > now + HAPPENED_AT_SLACK_MS:
            raise DomainError(
                "INVALID_PARAMETER", "happened_at is in the future.", parameter="happened_at"
            )
        if reported is not None and (seen := self.reported.get((action, target, reported))):
            # a resend: not counted again; whatever it left unsettled is settled now
            await self._finish_pending_resolutions()
            return EventRecorded(self._event_message(seen), [], duplicate=True)
        check_event_room(len(self.events))
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
        stored = {"id": event_id, "game_id": game.id, **event, "reported_at": reported}
        changes = _event_changes({**stored, "registered_at": now}, hit)
        await self._save(replace(game, counts=counts), changes)
        self.events[event_id] = event
        if reported is not None:
            self.reported[(action, target, reported)] = event_id
        # every pool it resolves stops taking bets before anyone hears of the event
        await self._halt_pools(hit)
        message = self._event_message(event_id)
        self._publish(message)
        return EventRecorded(message, await self._resolve_pools(hit))

    def _event_message(self, event_id: str) -> EventRegistered:
        event = self.events[event_id]
        action, target = event["action_id"], event["target_id"]
        return EventRegistered(
            {
                "action_id": action,
                "target_id": target,
                "target_display_name": self.tree.display_name(target),
                "current_count": self.game.counts.get(action, {}),
                "game_id": self.game.id,
                "happened_at": event["happened_at"],
                "event_id": event_id,
            }
        )

    async def _open_pools(self) -> list[tuple[str, dict[str, Any]]]:
        """What an event needs to know of the game's open pools, read from storage (a pool
        whose actor is down or busy still counts)."""
        game_id = self.game.id
        rows = await self.services.storage.read(
            lambda db: games_store.open_pool_documents(db, game_id)
        )
        pools = []
        for row in rows:
            try:
                doc = msgspec.json.decode(row.doc)
                info = {key: doc[key] for key in ("action", "pool_type", "start_at", "targets")}
            except (msgspec.DecodeError, KeyError, TypeError):
                log.error("game %s: pool %s is unreadable in storage", self.game.id, row.id)
                continue
            pools.append((row.id, {**info, "open": True}))
        return pools

    async def _block_action(self, body: BlockAction) -> ActionBlocked | ActionAllowed:
        action, at, block = body.action, body.at, body.block
        game = self.game
        self._require_not_closed()
        aid = self._known_action(action, "action")
        now = self.now
        if at is not None and at <= now:
            at = None
        timeout = self.services.settings.request_timeout
        for _, box in await self.directory.pools_of(game.id, open_only=True):
            info = await box.ask(pool_msgs.Info(), timeout=timeout)
            if info.open and info.action == aid:
                await box.ask(
                    pool_msgs.Block(at) if block else pool_msgs.Allow(at), timeout=timeout
                )
        event = (
            ActionBlocked({"game_id": game.id, "action": aid, "blocked_at": at or now})
            if block
            else ActionAllowed({"game_id": game.id, "action": aid, "allowed_at": at or now})
        )
        self._publish(event)
        return event

    def _publish(self, event: Broadcast) -> None:
        self.services.hub.to_game(self.game.id, event)

    handlers = Handlers(
        "A game",
        {
            BecomeAdmin: _become_admin,
            Details: _on_details,
            Summary: _on_summary,
            IsAdmin: _is_admin,
            OpenGame: _open,
            UpdateDetails: _update_details,
            Join: _join,
            Leave: _leave,
            JoinFrom: _join_from,
            LeaveFrom: _leave_from,
            ReserveSeqs: _on_reserve_seqs,
            Close: _on_close,
            CreatePool: _create_pool,
            RegisterEvent: _register_event,
            BlockAction: _block_action,
            ForPool: _for_pool,
        },
    )
