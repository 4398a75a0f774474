"""What the transports and the actors hold: the addresses of the long-lived actors and the
hub, and the narrow interfaces (protocols) of the directory, the betslip desk and the
operator's wallet: declared here, implemented above (``actors.directory``,
``actors.betslips``, ``actors.remote``), so this module imports none of them; what they
take and answer is declared below them too (``actors.directory_protocol``,
``actors.betslip_protocol``, ``domain``). The process (``tote.server``) hands their
constructors to ``Services``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any, Protocol, TypeVar, overload

import trio

from actors.betslip_protocol import Render
from actors.directory_protocol import CreateGame, SourceClosure
from actors.hub import Hub
from domain.betslip import SlipAnswer
from domain.game import Game
from domain.remote import Answer
from kit.clock import WallClock
from kit.metrics import Metrics
from kit.runtime import Ask, Mailbox, Supervisor
from kit.settings import Settings
from storage.actor import Storage

R = TypeVar("R")


class Askable(Protocol):
    """An actor's address as its callers use it: a local ``Mailbox``, or in a cluster an
    address that may forward to the owner node (``cluster.routing.RoutedMailbox``)."""

    async def ask(self, body: Any, *, timeout: float) -> Any: ...


class Directory(Protocol):
    """Where game and pool actors live (``actors.directory.Games``); each call raises
    NOT_FOUND for an id it does not know (the transports hand ids on as clients sent
    them, so an implementation checks that one is a string at all)."""

    async def game(self, game_id: str) -> Askable: ...
    async def pool(self, pool_id: str) -> tuple[str, Askable]: ...
    async def pools_of(
        self, game_id: str, *, open_only: bool = False
    ) -> list[tuple[str, Askable]]: ...
    async def game_of_pool(self, pool_id: str) -> str: ...
    def open_count(self, game_id: str) -> int: ...
    async def games_of(self, source_id: str) -> list[str]: ...
    async def start_pool(
        self, pool_id: str, *, game_id: str | None = None, announce: bool = False
    ) -> Mailbox: ...
    async def adopt_open_pools(self, game_id: str) -> None: ...
    def pool_resolved(self, pool_id: str) -> None: ...
    async def start(self) -> None: ...
    async def create_game(self, command: CreateGame) -> Game: ...
    async def close_source(self, user_id: int, source_id: str) -> SourceClosure: ...


class SlipDesk(Protocol):
    """The betslip desk (``actors.betslips.BetslipDesk``): a slip's final answer as
    ``render`` shows it, or a DomainError that is not final."""

    async def place(self, key: str, body: Any, render: Render, ip: str = "") -> SlipAnswer: ...


class OperatorWallet(Protocol):
    """The operator's wallet in remote wallet mode (``actors.remote.OperatorClient``)."""

    async def post(self, path: str, payload: dict[str, Any], key: str) -> tuple[Answer, str]: ...
    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Base:
    """What every node of a cluster runs, owner or not (and a single node too): the
    supervisor, the hub, the storage actor, the clock and the metrics."""

    supervisor: Supervisor
    hub: Hub
    storage: Storage
    clock: WallClock
    metrics: Metrics


@dataclass
class Services:
    """Everything long-lived, complete once constructed. The directory, the betslip desk
    and the operator's wallet client each hold these services (the game and pool actors
    the directory spawns hold them too, and read the directory from them), so the
    constructor builds them, from the factories it is given, once every other field is
    set: nothing is set from outside afterwards but the bound ports and ``ready``."""

    storage: Storage
    supervisor: Supervisor
    registry: Askable
    wallet: Askable
    hub: Hub
    clock: WallClock
    settings: Settings
    operator_key: str
    #: builds the directory of game and pool actors (``actors.directory.Games``)
    directory: InitVar[Callable[[Services], Directory]]
    #: builds the betslip desk (seed 002; ``actors.betslips.BetslipDesk``)
    desk: InitVar[Callable[[Services], SlipDesk]]
    #: remote wallet mode: builds the operator's wallet client (``actors.remote``)
    wallet_client: InitVar[Callable[[Services], OperatorWallet] | None] = None
    metrics: Metrics = field(default_factory=Metrics)
    #: the bound ports, once each transport listens (the page and the Origin check need
    #: them), and set once both listen
    ws_port: int = 0
    http_port: int = 0
    ready: trio.Event = field(default_factory=trio.Event)
    games: Directory = field(init=False)
    betslips: SlipDesk = field(init=False)
    #: remote wallet mode: the operator's wallet (None: tote keeps the money)
    operator: OperatorWallet | None = field(init=False)

    def __post_init__(
        self,
        directory: Callable[[Services], Directory],
        desk: Callable[[Services], SlipDesk],
        wallet_client: Callable[[Services], OperatorWallet] | None,
    ) -> None:
        self.operator = None if wallet_client is None else wallet_client(self)
        self.games = directory(self)
        self.betslips = desk(self)

    @overload
    async def ask_registry(self, body: Ask[R]) -> R: ...
    @overload
    async def ask_registry(self, body: Any) -> Any: ...

    async def ask_registry(self, body: Any) -> Any:
        return await self.registry.ask(body, timeout=self.settings.request_timeout)

    @overload
    async def ask_wallet(self, body: Ask[R]) -> R: ...
    @overload
    async def ask_wallet(self, body: Any) -> Any: ...

    async def ask_wallet(self, body: Any) -> Any:
        return await self.wallet.ask(body, timeout=self.settings.request_timeout)
