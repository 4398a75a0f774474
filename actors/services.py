"""What the transports hold: the addresses of the long-lived actors and the hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from actors.hub import Hub
from kit.clock import WallClock
from kit.runtime import Mailbox, Supervisor
from kit.settings import Settings
from storage.actor import Storage
from tote.metrics import Metrics

if TYPE_CHECKING:
    from actors.betslips import BetslipDesk
    from actors.directory import Games
    from actors.remote import OperatorClient


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
    games: Games = field(init=False)
    #: the betslip desk (seed 002); it places bets through the directory's pools
    betslips: BetslipDesk = field(init=False)
    #: remote wallet mode: the operator's wallet, and the outbox worker's address
    operator: OperatorClient | None = None
    callbacks: Mailbox | None = None
    metrics: Metrics = field(default_factory=Metrics)

    async def ask_registry(self, body: Any) -> Any:
        return await self.registry.ask(body, timeout=self.settings.request_timeout)

    async def ask_wallet(self, body: Any) -> Any:
        return await self.wallet.ask(body, timeout=self.settings.request_timeout)
