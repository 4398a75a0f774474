"""The directory of game and pool actors: which exist, and their actors on demand."""

from __future__ import annotations

import msgspec

from actors import pool as pool_msgs
from actors.directory_protocol import CreateGame, GameClosure, SourceClosure
from actors.game import Close, GameActor, game_row
from actors.pool import PoolActor
from actors.registry import AddGame, CheckSourceAdmin, CloseSource, GamesOf
from actors.services import Services
from domain.errors import DomainError
from domain.game import Game, new_game
from domain.pool import PoolStatus
from kit.runtime import Mailbox
from storage import games as games_store
from storage.changes import Insert


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

    async def start(self) -> None:
        """Learn every game and pool id from storage, and start the live games and the
        open pools (the services hold this directory by now: their actors use it)."""
        game_rows, pool_rows = await self.services.storage.read(
            lambda db: (games_store.every_game(db), games_store.every_pool(db))
        )
        for pool in pool_rows:
            self._index_pool(pool.id, pool.game_id)
            if pool.status == PoolStatus.OPEN:
                self._open.add(pool.id)
        for game in game_rows:
            self._pools_by_game.setdefault(game.id, [])
            if msgspec.json.decode(game.doc).get("closed_at") is None:
                await self.start_game(game.id)
        for pool_id in list(self._open):
            await self.start_pool(pool_id)

    async def adopt_open_pools(self, game_id: str) -> None:
        """Start the game's open pools that storage has and this directory does not know:
        a pool created by a commit whose answer was lost is real all the same."""
        pool_ids = await self.services.storage.read(
            lambda db: games_store.open_pool_ids(db, game_id)
        )
        for pool_id in pool_ids:
            if pool_id not in self._pool_game:
                self._open.add(pool_id)
                await self.start_pool(pool_id, game_id=game_id, announce=True)

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
            game_id = (await box.ask(pool_msgs.Info(), timeout=timeout)).game_id
        self._index_pool(pool_id, game_id)
        if announce:
            self._open.add(pool_id)
            self.services.hub.to_game(
                game_id, await box.ask(pool_msgs.Announcement(), timeout=timeout)
            )
        return box

    async def create_game(self, command: CreateGame) -> Game:
        services = self.services
        await services.ask_registry(CheckSourceAdmin(command.source_id, command.user_id))
        game = new_game(
            command.source_id,
            command.fields,
            services.clock.now_ms(),
            opened=command.opened,
            default_currency=services.settings.default_currency,
        )
        await services.storage.commit([Insert("games", game_row(game))])
        await services.ask_registry(AddGame(command.source_id, game.id))
        await self.start_game(game.id)
        return game

    async def game(self, game_id: str) -> Mailbox:
        """The game's mailbox, its actor started if it was not running."""
        if not isinstance(game_id, str) or game_id not in self._pools_by_game:
            raise DomainError("NOT_FOUND", f"There is no game {game_id!r}.")
        return await self.start_game(game_id)

    async def pool(self, pool_id: str) -> tuple[str, Mailbox]:
        """The pool's game id and mailbox, its actor started if it was not running. Every
        bet comes here: a running pool's address is a lookup, not a spawn."""
        game_id = self._pool_game.get(pool_id) if isinstance(pool_id, str) else None
        if game_id is None:
            raise DomainError("NOT_FOUND", f"There is no pool {pool_id!r}.")
        box = self.services.supervisor.mailbox(f"pool:{pool_id}")
        return game_id, box or await self.start_pool(pool_id, game_id=game_id)

    def open_count(self, game_id: str) -> int:
        """How many of the game's pools are not resolved yet (no actor is started)."""
        return sum(pool_id in self._open for pool_id in self._pools_by_game.get(game_id, ()))

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

    async def game_of_pool(self, pool_id: str) -> str:
        """The id of the pool's game (no actor is started)."""
        game_id = self._pool_game.get(pool_id) if isinstance(pool_id, str) else None
        if game_id is None:
            raise DomainError("NOT_FOUND", f"There is no pool {pool_id!r}.")
        return game_id

    async def close_source(self, user_id: int, source_id: str) -> SourceClosure:
        """Op 366, whose role is the source's admin: close every game of the source as op
        375 would; the source itself closes once no binary pool is left waiting."""
        services = self.services
        await services.ask_registry(CheckSourceAdmin(source_id, user_id))
        waiting: list[GameClosure] = []
        for game_id in await self.games_of(source_id):
            try:
                closure = await (await self.game(game_id)).ask(
                    Close(None), timeout=services.settings.request_timeout
                )
            except DomainError as error:
                if error.code != "INVALID_STATE":  # already closed
                    raise
                continue
            if not closure.closed:
                waiting.append(closure)
        if not waiting:
            await services.ask_registry(CloseSource(user_id, source_id))
        return SourceClosure(source_id, waiting)
