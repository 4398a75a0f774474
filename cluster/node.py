"""A node of a cluster (docs/cluster.md, "A node's life"): the base every node runs, the
bus, the broadcast relay and the lease; the transports' services routed (asked locally
while this node is the owner, forwarded otherwise); and, once the lease is this node's,
the owner's actors and the reader of the request stream. A node that loses its lease,
or whose write the fence refuses, ends its process (``EXIT_LEASE_LOST``): crash-only, its
clients reconnect elsewhere and a process supervisor starts it again as an edge.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import trio

from actors.remote import OperatorClient
from actors.services import Base, Services
from cluster.broadcasts import Broadcaster, BroadcastReader, report_viewers
from cluster.bus import Bus
from cluster.forward import Forwarder, RequestServer
from cluster.lease import OwnerLease
from cluster.routing import (
    EdgeGames,
    LocalActors,
    Render,
    RoutedDesk,
    RoutedDirectory,
    RoutedMailbox,
    Router,
)
from kit.settings import Settings
from storage.leases import LeaseStore

log = logging.getLogger(__name__)

#: The exit status of a node that lost its lease or was fenced (EX_TEMPFAIL: start it
#: again; it comes back as an edge).
EXIT_LEASE_LOST = 75
#: How much longer than a request a forwarded slip or source close may take (several
#: requests on the owner, one after the other).
SLOW_REQUESTS = 4


#: builds the lease, given what to call when it is lost
LeaseFactory = Callable[[Callable[[], None]], "Lease"]


class Lease(Protocol):
    """The owner lease (``cluster.lease.OwnerLease``)."""

    epoch: int | None
    became_owner: trio.Event

    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...
    async def release(self) -> None: ...


def new_node_id() -> str:
    """A node's name for one process start: ``n-<hex8>``."""
    return f"n-{secrets.token_hex(4)}"


def exit_process(why: str) -> None:
    """End the process now (crash-only), from any thread, after one log line."""
    log.critical("node_exits", extra={"why": why, "status": EXIT_LEASE_LOST})
    print(f"tote: {why}: exiting ({EXIT_LEASE_LOST})", file=sys.stderr, flush=True)
    os._exit(EXIT_LEASE_LOST)


@dataclass(frozen=True)
class Wiring:
    """What the process gives a node: its settings, the base it started, and the hooks
    that build the lease, start the owner's actors and set the storage fence."""

    redis_url: str
    node_id: str
    operator_key: str
    settings: Settings
    base: Base
    lease: LeaseFactory
    #: the owner's actors, started under the base's supervisor (``tote.server.start_owner``)
    start_owner: Callable[[trio.Nursery], Awaitable[Services]]
    #: every write of the storage actor fenced by this lease epoch from now on; a refused
    #: write calls the given exit
    fence: Callable[[int, Callable[[str], None]], None]
    #: the betslip route's presenter (``transport.routes_betslips.render``)
    render: Render
    exit: Callable[[str], None] = exit_process


class Node:
    """One node, startable: ``run`` reports the services the transports hold."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring
        self.bus = Bus(wiring.redis_url, wiring.node_id)
        self.local: LocalActors | None = None  # set once this node is the owner
        self.owner_ready = trio.Event()
        self.reader = BroadcastReader(self.bus.client, wiring.base.hub)
        forwarder = Forwarder(self.bus)
        replay_bytes = wiring.settings.outbox_bytes // 2  # as the game actor's own joins
        edge = EdgeGames(self.reader, forwarder, wiring.node_id, replay_bytes)
        self.router = Router(forwarder, lambda: self.local, edge)
        self.services = self._routed_services()

    def _routed_services(self) -> Services:
        wiring, base, router = self.wiring, self.wiring.base, self.router
        timeout = wiring.settings.request_timeout
        return Services(
            base.storage,
            base.supervisor,
            RoutedMailbox(router, "registry"),
            RoutedMailbox(router, "wallet"),
            base.hub,
            base.clock,
            wiring.settings,
            wiring.operator_key,
            directory=lambda _: RoutedDirectory(router, base.storage, timeout),
            desk=lambda _: RoutedDesk(router, base.storage, timeout * SLOW_REQUESTS),
            # remote wallet mode: the transports pass the bettor's address on, and the
            # status route reads the outbox; the owner's own client makes the calls
            wallet_client=OperatorClient if wiring.settings.remote_wallet else None,
            metrics=base.metrics,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[Services] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect to Redis, relay broadcasts, take part in the lease; once the lease is
        this node's, start the owner's actors and serve the request stream."""
        lease = self.wiring.lease(self._lost)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.bus.run)
                await self._start_broadcast_relay(nursery)
                await nursery.start(lease.run)
                task_status.started(self.services)
                await lease.became_owner.wait()
                assert lease.epoch is not None  # set before became_owner
                await self._become_owner(nursery, lease.epoch)
        finally:
            with trio.move_on_after(2) as cleanup:
                cleanup.shield = True
                await lease.release()
                if self.services.operator is not None:
                    await self.services.operator.aclose()

    async def _become_owner(self, nursery: trio.Nursery, epoch: int) -> None:
        """The fence first (no write of this node's actors without this epoch), then the
        actors recovered from storage, then the requests of the other nodes."""
        wiring = self.wiring
        wiring.fence(epoch, wiring.exit)
        broadcaster = Broadcaster(self.bus, epoch)
        self.bus.on_refused = broadcaster.refused
        wiring.base.hub.mirror = broadcaster
        owner = await wiring.start_owner(nursery)
        self.local = LocalActors(owner, wiring.render)
        consumer = f"{wiring.node_id}/{epoch}"
        await nursery.start(RequestServer(self.bus, self.local.handle, consumer).run)
        log.info("node_is_owner", extra={"node_id": wiring.node_id, "epoch": epoch})
        self.owner_ready.set()

    async def _start_broadcast_relay(self, nursery: trio.Nursery) -> None:
        """The owner's broadcasts into this node's hub (``BroadcastReader``), and this
        node's viewer counts to the owner's game actors (``report_viewers``)."""
        await nursery.start(self.reader.run)
        await nursery.start(
            partial(
                report_viewers,
                self.wiring.base.hub,
                self.router.ask_remote_game,
                self.wiring.node_id,
                timeout=self.wiring.settings.request_timeout,
            )
        )

    def _lost(self) -> None:
        self.wiring.exit("the owner lease is lost")


def lease_from_store(database_url: str, node_id: str, *, lease_seconds: float) -> LeaseFactory:
    """The real lease: ``cluster.lease.OwnerLease`` on a ``storage.leases.LeaseStore``."""

    def build(on_lost: Callable[[], None]) -> Lease:
        return OwnerLease(LeaseStore(database_url), node_id, lease_seconds, on_lost)

    return build
