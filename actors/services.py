"""What the transports hold: the addresses of the long-lived actors and the hub, and the
narrow interfaces (protocols) of the directory, the betslip desk and the operator's
wallet: declared here, implemented above (``actors.directory``, ``actors.betslips``,
``actors.remote``), so this module imports none of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from actors.hub import Hub
from domain.game import Game
from domain.remote import Answer
from kit.clock import WallClock
from kit.metrics import Metrics
from kit.runtime import Mailbox, Supervisor
from kit.settings import Settings
from storage.actor import Storage


class Directory(Protocol):
    """Where game and pool actors live (``actors.directory.Games``); each call raises
    NOT_FOUND for an id it does not know."""

    async def game(self, game_id: Any) -> Mailbox: ...
    async def pool(self, pool_id: Any) -> tuple[str, Mailbox]: ...
    async def pools_of(
        self, game_id: str, *, open_only: bool = False
    ) -> list[tuple[str, Mailbox]]: ...
    def game_of_pool(self, pool_id: Any) -> str: ...
    def open_count(self, game_id: str) -> int: ...
    async def games_of(self, source_id: str) -> list[str]: ...
    async def start_pool(
        self, pool_id: str, *, game_id: str | None = None, announce: bool = False
    ) -> Mailbox: ...
    async def adopt_open_pools(self, game_id: str) -> None: ...
    def pool_resolved(self, pool_id: str) -> None: ...
    async def create_game(self, command: Any) -> Game: ...
    async def close_source(self, user_id: int, source_id: str) -> Any: ...


class SlipDesk(Protocol):
    """The betslip desk (``actors.betslips.BetslipDesk``): a slip's final answer as
    ``render`` shows it, or a DomainError that is not final."""

    async def place(
        self, key: str, body: Any, render: Callable[[Any], Any], ip: str = ""
    ) -> Any: ...


class OperatorWallet(Protocol):
    """The operator's wallet in remote wallet mode (``actors.remote.OperatorClient``)."""

    async def post(self, path: str, payload: Any, key: str) -> tuple[Answer, str]: ...
    async def aclose(self) -> None: ...


@dataclass
class Services:
    storage: Storage
    supervisor: Supervisor
    registry: Mailbox
    wallet: Mailbox
    hub: Hub
    clock: WallClock
    settings: Settings
    operator_key: str
    #: the bound ports, once each transport listens (the page and the Origin check need them)
    ws_port: int = 0
    http_port: int = 0
    ready: trio.Event = field(default_factory=trio.Event)
    #: the directory of game and pool actors; ``Games.load`` sets it (it needs these
    #: services to spawn actors, and the actors need it)
    games: Directory = field(init=False)
    #: the betslip desk (seed 002); it places bets through the directory's pools
    betslips: SlipDesk = field(init=False)
    #: remote wallet mode: the operator's wallet, and the outbox worker's address
    operator: OperatorWallet | None = None
    callbacks: Mailbox | None = None
    metrics: Metrics = field(default_factory=Metrics)

    async def ask_registry(self, body: Any) -> Any:
        return await self.registry.ask(body, timeout=self.settings.request_timeout)

    async def ask_wallet(self, body: Any) -> Any:
        return await self.wallet.ask(body, timeout=self.settings.request_timeout)
