"""The owner lease of a cluster (issue 22, docs/cluster.md "The owner lease and the
fence"): which node runs the games, and how it learns in time that it no longer may.

``OwnerLease`` heartbeats its node's row, takes the ``games`` lease when it is free or
expired (the live nodes ranked by rendezvous hashing: the first-ranked tries at once,
rank r after ``r * lease_seconds / 10``, so one node wins without a vote), renews it
every quarter of the lease, and calls ``on_lost`` as soon as a renewal is refused or
none has succeeded for half the lease, measured on the trio clock from when the last
successful one was sent. PostgreSQL's expiry of that renewal is at least a whole lease
after its sending, so the node stops its games with half a lease to spare before any
other node may take them; the fence (``storage.leases.fence_sql``) refuses whatever
write is still late.

Every store call runs in a worker thread on a limiter of its own (a renewal never
queues behind the storage actor's batches or trio's default threads), under a deadline
of a quarter of the lease; a call past it is abandoned and the store's connection,
which the abandoned call may have left mid-statement, is closed and opened anew by the
next call (the limiter holds that call back until the abandoned thread has ended).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from storage.leases import LeaseStore, LeaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

GAMES_LEASE = "games"
#: How a store call is run: in a worker thread by default; tests under a mock clock pass
#: one that calls inline (a thread's work is invisible to ``autojump_clock``).
Runner = Callable[[Callable[[], Any]], Awaitable[Any]]


def rank(name: str, node_id: str, live: list[str]) -> int:
    """``node_id``'s place among ``live`` (itself included even when its heartbeat
    lapsed) for lease ``name``: ordered by a hash of (name, node) that every node
    computes alike, so all agree who tries first, and a node's place differs by lease."""

    def weight(node: str) -> bytes:
        return hashlib.sha256(f"{name}\n{node}".encode()).digest()

    return sorted({*live, node_id}, key=weight).index(node_id)


class OwnerLease:
    """One node's hold on lease ``GAMES_LEASE`` (module docstring). ``epoch`` is the
    epoch held, None when not the owner (also after a loss); ``became_owner`` is set
    once the lease is taken (and stays set: a node that lost it exits)."""

    def __init__(
        self,
        store: LeaseStore,
        node_id: str,
        lease_seconds: float,
        on_lost: Callable[[], None],
        *,
        runner: Runner | None = None,
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.on_lost = on_lost
        self.epoch: int | None = None
        self.became_owner = trio.Event()
        self.limiter = trio.CapacityLimiter(1)
        self.runner: Runner = runner or self._in_thread
        #: a call was abandoned at its deadline: the next one closes the connection first
        self.spoiled = False
        #: the trio time when the last successful renewal (or the take) was sent
        self.renewed_at = 0.0
        self._scope = trio.CancelScope()

    @property
    def period(self) -> float:
        """How often the lease is renewed and the node row heartbeaten."""
        return self.lease_seconds / 4

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat, take the lease, keep it; returns after ``on_lost`` (or when
        ``release`` stopped it). Started once the node row is written; raises
        ``LeaseUnavailable`` when that first heartbeat fails (the start fails)."""
        with self._scope:
            await self._ask(self.store.heartbeat, self.node_id, self.lease_seconds)
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeats)
                await self._acquire()
                await self._keep()
                nursery.cancel_scope.cancel()

    async def release(self) -> None:
        """A clean stop: no more renewals or heartbeats; the lease, when held, expires
        now so another node takes it at once, and the node row stops counting as live.
        A failure is logged: the lease then runs out by itself."""
        self._scope.cancel()
        epoch, self.epoch = self.epoch, None
        try:
            if epoch is not None:
                await self._ask(self.store.release, GAMES_LEASE, self.node_id, epoch)
            await self._ask(self.store.heartbeat, self.node_id, 0.0)
        except LeaseUnavailable as exc:
            log.warning("lease not released (it will expire by itself): %s", exc)

    # -- the loops ----------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            await trio.sleep(self.period)
            try:
                await self._ask(self.store.heartbeat, self.node_id, self.lease_seconds)
            except LeaseUnavailable as exc:
                log.warning("node heartbeat failed: %s", exc)

    async def _acquire(self) -> None:
        """Until this node holds the lease: look every tenth of a lease, try when it is
        free or expired."""
        while True:
            try:
                epoch = await self._try_take()
            except LeaseUnavailable as exc:
                log.warning("lease take failed: %s", exc)
                epoch = None
            if epoch is not None:
                self.epoch = epoch
                log.info("node %s owns the games (epoch %d)", self.node_id, epoch)
                self.became_owner.set()
                return
            await trio.sleep(self.lease_seconds / 10)

    async def _try_take(self) -> int | None:
        """The lease's new epoch when free or expired and taken after this node's
        rank's wait, else None."""
        view = await self._ask(self.store.owner, GAMES_LEASE)
        if view is not None and not view.expired and view.node_id != self.node_id:
            return None
        place = rank(GAMES_LEASE, self.node_id, await self._ask(self.store.live_nodes))
        await trio.sleep(place * self.lease_seconds / 10)
        sent = trio.current_time()
        epoch: int | None = await self._ask(
            self.store.take, GAMES_LEASE, self.node_id, self.lease_seconds
        )
        if epoch is not None:
            self.renewed_at = sent
        return epoch

    async def _keep(self) -> None:
        """Renew every quarter lease; on a refusal, or none for half a lease: on_lost."""
        while await self._renewed():
            pass
        log.error("node %s lost the games lease (epoch %s)", self.node_id, self.epoch)
        self.epoch = None
        self.on_lost()

    async def _renewed(self) -> bool:
        """The next renewal, a quarter lease after the last success was sent, tried
        again on failure until half a lease after it: whether it succeeded."""
        await trio.sleep_until(self.renewed_at + self.period)
        deadline = self.renewed_at + self.lease_seconds / 2
        epoch = self.epoch
        assert epoch is not None
        while (sent := trio.current_time()) < deadline:
            try:
                held: bool = await self._ask(
                    self.store.renew,
                    GAMES_LEASE,
                    self.node_id,
                    epoch,
                    self.lease_seconds,
                    until=min(sent + self.period, deadline),
                )
            except LeaseUnavailable as exc:
                log.warning("lease renewal failed: %s", exc)
                await trio.sleep_until(min(trio.current_time() + self.lease_seconds / 20, deadline))
                continue
            if held:
                self.renewed_at = sent
            return held
        return False

    # -- store calls --------------------------------------------------------------------

    async def _ask(self, fn: Callable[..., T], *args: Any, until: float | None = None) -> T:
        """``fn(*args)`` through the runner by ``until`` (default: a quarter lease from
        now). Raises ``LeaseUnavailable`` when the store failed or did not answer in
        time (the call is abandoned and the connection closed before the next one)."""
        deadline = trio.current_time() + self.period if until is None else until

        def call() -> T:
            # in the worker thread, after any abandoned call's thread has ended (the
            # limiter): only then may the connection be closed
            if self.spoiled:
                self.spoiled = False
                self.store.close()
            return fn(*args)

        with trio.move_on_at(deadline):
            result: T = await self.runner(call)
            return result
        self.spoiled = True
        raise LeaseUnavailable("no answer from the lease table in time (call abandoned)")

    async def _in_thread(self, call: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(call, limiter=self.limiter, abandon_on_cancel=True)
