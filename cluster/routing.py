"""What the transports of a cluster node hold instead of the actors themselves (docs/
cluster.md, "Requests to the owner"): addresses that ask locally while this node is the
owner and forward to the owner otherwise, a directory that resolves ids from storage, and
a betslip desk that forwards the whole slip.

Keys name the actor a request is for: ``registry``, ``wallet``, ``game:<id>``,
``pool:<id>``, ``directory`` (``CreateGame``, ``CloseSourceFor``) and ``desk``
(``PlaceSlip``). ``LocalActors`` is the owner's side: the same key, answered by its own
services, as a single node would.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from actors import pool as pool_msgs
from actors.directory import CreateGame
from actors.game import Join, Leave
from actors.services import Askable, Services
from cluster.broadcasts import BroadcastReader, join_on_edge, leave_on_edge
from cluster.forward import Forwarder, Later
from cluster.messages import CloseSourceFor, PlaceSlip
from domain.betslip import SlipAnswer, fingerprint
from domain.errors import DomainError, ErrorCode, OutcomeUnknown
from domain.game import Game
from domain.pool import PoolStatus
from kit.runtime import Mailbox
from storage import betslips as betslips_store
from storage import games as games_store
from storage.actor import Storage

#: The transport's presenter of a slip's outcome (``routes_betslips``), which the owner's
#: desk stores and replays byte for byte.
Render = Callable[[Any], Any]


class LocalActors:
    """The owner's answer to a request by key, from its own services (the actors as
    ``tote.server`` started them)."""

    def __init__(self, services: Services, render: Render) -> None:
        self.services = services
        self.render = render

    async def ask(self, key: str, message: Any, timeout: float) -> Any:
        """What the actor at ``key`` answers, as a local ask would (a held bet is answered
        ``BetHeld``, its decision to wait for). Raises the actor's DomainError, NOT_FOUND
        for an unknown key."""
        kind, _, name = key.partition(":")
        games = self.services.games
        if kind == "directory":
            return await self._directory(message)
        if kind == "desk":
            return await self.services.betslips.place(
                message.key, message.body, self.render, message.ip
            )
        box: Askable
        if kind == "pool":
            _, box = await games.pool(name)
        elif kind == "game":
            box = await games.game(name)
        elif key in ("registry", "wallet"):
            box = self.services.registry if key == "registry" else self.services.wallet
        else:
            raise DomainError(ErrorCode.NOT_FOUND, f"There is no actor {key!r}.")
        return await box.ask(message, timeout=timeout)

    async def _directory(self, message: Any) -> Any:
        if isinstance(message, CreateGame):
            return await self.services.games.create_game(message)
        if isinstance(message, CloseSourceFor):
            return await self.services.games.close_source(message.user_id, message.source_id)
        raise DomainError(ErrorCode.INVALID_PARAMETER, f"Not a directory request: {message!r}.")

    async def handle(self, key: str, message: Any, remaining: float) -> Any:
        """A forwarded request (the RequestServer's handle): as ``ask``, but a held bet is
        answered ``Later`` with its decision (a caller on another node cannot wait on it
        here). Raises OutcomeUnknown (REQUEST_TIMED_OUT) past ``remaining``: the actor
        may have taken it (this scope, not the ask's, may see the deadline first)."""
        deadline = trio.current_time() + remaining
        with trio.move_on_at(deadline):
            answer = await self.ask(key, message, remaining)
            if isinstance(answer, pool_msgs.BetHeld):
                return Later(partial(_decision, answer, deadline))
            return answer
        raise OutcomeUnknown(
            ErrorCode.REQUEST_TIMED_OUT,
            "The owner did not finish in time: the request may or may not have been applied.",
        )


async def _decision(held: pool_msgs.BetHeld, deadline: float) -> Any:
    """A held bet's decision, by ``deadline`` (trio time); REQUEST_TIMED_OUT (unknown
    to the caller) past it."""
    with trio.move_on_at(deadline):
        return await held.decision.wait()
    raise OutcomeUnknown(
        ErrorCode.REQUEST_TIMED_OUT,
        "The pool did not decide the held bet in time; it is placed or refused all the same "
        "(see your balance).",
    )


class EdgeGames:
    """A game's joins and leaves on an edge: the subscription is this node's (its hub's
    copy of the game), the count the owner's game actor's (``join_on_edge``)."""

    def __init__(
        self, reader: BroadcastReader, forwarder: Forwarder, node_id: str, replay_bytes: int
    ) -> None:
        self.reader = reader
        self.forwarder = forwarder
        self.node_id = node_id
        self.replay_bytes = replay_bytes

    async def ask(self, game_id: str, message: Join | Leave, timeout: float) -> Any:
        key = f"game:{game_id}"

        async def ask_owner(request: Any, within: float) -> Any:
            return await self.forwarder.ask(key, request, within)

        if isinstance(message, Join):
            return await join_on_edge(
                self.reader,
                ask_owner,
                self.node_id,
                game_id,
                message,
                timeout=timeout,
                replay_bytes=self.replay_bytes,
            )
        return await leave_on_edge(
            self.reader.hub, ask_owner, self.node_id, game_id, message, timeout=timeout
        )


class Router:
    """Where a key's actor is: this node's own (``local()`` is not None: this node owns
    the actors now) or the owner's, through the ``Forwarder``; a game's joins and leaves
    on an edge go to ``edge`` (they hold this node's connections, which cannot travel)."""

    def __init__(
        self,
        forwarder: Forwarder,
        local: Callable[[], LocalActors | None],
        edge: EdgeGames | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.local = local
        self.edge = edge

    async def ask(self, key: str, message: Any, timeout: float) -> Any:
        here = self.local()
        if here is not None:
            return await here.ask(key, message, timeout)
        kind, _, name = key.partition(":")
        if kind == "game" and self.edge is not None and isinstance(message, (Join, Leave)):
            return await self.edge.ask(name, message, timeout)
        return await self.forwarder.ask(key, message, timeout)

    async def ask_remote_game(self, game_id: str, message: Any, timeout: float) -> Any:
        """``message`` to the game's actor on the owner; nothing (None) while this node is
        the owner (an edge's report of its own viewers)."""
        if self.local() is not None:
            return None
        return await self.forwarder.ask(f"game:{game_id}", message, timeout)


class RoutedMailbox:
    """An actor's address on any node of the cluster (``Askable``)."""

    def __init__(self, router: Router, key: str) -> None:
        self.router = router
        self.key = key

    async def ask(self, body: Any, *, timeout: float) -> Any:
        return await self.router.ask(self.key, body, timeout)


class RoutedDirectory:
    """The directory the transports of a cluster node hold (``actors.services.Directory``):
    the owner's own while this node is the owner; otherwise ids checked in storage and
    asks forwarded by key. What only the owner's actors call raises RuntimeError here."""

    def __init__(self, router: Router, storage: Storage, timeout: float) -> None:
        self.router = router
        self.storage = storage
        self.timeout = timeout
        #: a game never goes away and a pool never changes its game: bounded caches
        self._games: dict[str, str] = {}
        self._pool_game: dict[str, str] = {}

    def _owner(self) -> Services | None:
        here = self.router.local()
        return None if here is None else here.services

    async def game(self, game_id: Any) -> Askable:
        if owner := self._owner():
            return await owner.games.game(game_id)
        known = isinstance(game_id, str) and (
            game_id in self._games
            or await self.storage.read(lambda db: games_store.game_exists(db, game_id))
        )
        if not known:
            raise DomainError(ErrorCode.NOT_FOUND, f"There is no game {game_id!r}.")
        _remember(self._games, game_id, game_id)
        return RoutedMailbox(self.router, f"game:{game_id}")

    async def pool(self, pool_id: Any) -> tuple[str, Askable]:
        if owner := self._owner():
            return await owner.games.pool(pool_id)
        return await self.game_of_pool(pool_id), RoutedMailbox(self.router, f"pool:{pool_id}")

    async def game_of_pool(self, pool_id: Any) -> str:
        if owner := self._owner():
            return await owner.games.game_of_pool(pool_id)
        game_id = self._pool_game.get(pool_id) if isinstance(pool_id, str) else None
        if game_id is None and isinstance(pool_id, str):
            game_id = await self.storage.read(lambda db: games_store.game_of_pool(db, pool_id))
        if game_id is None:
            raise DomainError(ErrorCode.NOT_FOUND, f"There is no pool {pool_id!r}.")
        _remember(self._pool_game, pool_id, game_id)
        return game_id

    async def pools_of(self, game_id: str, *, open_only: bool = False) -> list[tuple[str, Askable]]:
        if owner := self._owner():
            return await owner.games.pools_of(game_id, open_only=open_only)
        rows = await self.storage.read(lambda db: games_store.pools_of_game(db, game_id))
        return [
            (row.id, RoutedMailbox(self.router, f"pool:{row.id}"))
            for row in rows
            if not open_only or row.status == PoolStatus.OPEN
        ]

    async def games_of(self, source_id: str) -> list[str]:
        if owner := self._owner():
            return await owner.games.games_of(source_id)
        return await self.storage.read(lambda db: games_store.games_of_source(db, source_id))

    async def create_game(self, command: Any) -> Game:
        game: Game = await self.router.ask("directory", command, self.timeout)
        return game

    async def close_source(self, user_id: int, source_id: str) -> Any:
        return await self.router.ask(
            "directory", CloseSourceFor(user_id, source_id), self._long_timeout()
        )

    def _long_timeout(self) -> float:
        """Closing a source closes each of its games, one request each."""
        return self.timeout * 4

    def open_count(self, game_id: str) -> int:
        raise RuntimeError("only the owner's directory counts open pools")

    async def start_pool(
        self, pool_id: str, *, game_id: str | None = None, announce: bool = False
    ) -> Mailbox:
        raise RuntimeError("only the owner's directory starts pools")

    async def adopt_open_pools(self, game_id: str) -> None:
        raise RuntimeError("only the owner's directory adopts pools")

    def pool_resolved(self, pool_id: str) -> None:
        raise RuntimeError("only the owner's directory hears of resolved pools")

    async def start(self) -> None:
        """Nothing to start: an edge's directory keeps no actors."""


#: Ids an edge's directory remembers at most per cache (then it starts again).
CACHED_IDS = 100_000


def _remember(cache: dict[str, str], key: str, value: str) -> None:
    if key not in cache and len(cache) >= CACHED_IDS:
        cache.clear()
    cache[key] = value


class RoutedDesk:
    """The betslip desk a cluster node's transports hold (``actors.services.SlipDesk``):
    the whole slip goes to the owner's desk, which renders and stores its answer."""

    def __init__(self, router: Router, storage: Storage, timeout: float) -> None:
        self.router = router
        self.storage = storage
        self.timeout = timeout

    async def place(self, key: str, body: Any, render: Render, ip: str = "") -> Any:
        """The slip's answer as the owner's desk rendered it (``render`` is the owner's
        copy of the same presenter). When the forward's outcome is unknown (the owner
        died or did not answer in time), the answer stored under the key if there is
        one; else REQUEST_IN_PROGRESS: sent again with the same key, the slip is
        answered as stored or, never placed, run (never placed twice)."""
        try:
            return await self.router.ask("desk", PlaceSlip(key, body, ip), self.timeout)
        except OutcomeUnknown as unknown:
            stored = await self.storage.read(lambda db: betslips_store.stored_slip(db, key))
            if stored is None:
                raise DomainError(
                    ErrorCode.REQUEST_IN_PROGRESS,
                    "The slip's outcome is not known yet: send it again with the same "
                    f"X-Idempotency-Key ({unknown.text})",
                ) from None
            if stored.fingerprint != fingerprint(body):
                raise DomainError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "This X-Idempotency-Key came with another body.",
                ) from None
            return SlipAnswer(stored.refusal, stored.body)
