"""The pool actor: one task per betting pool.

It owns the pool's book, takes bets in batches (everything queued while the previous
batch was being committed goes into one wallet request and one commit), fires the pool's
timers (scheduled block/allow, expiry, coalesced distribution broadcasts) from its own
receive loop, and settles the pool exactly once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from actors.runtime import Actor, Mailbox, Request
from actors.services import Services
from actors.wallet import Settle, StakeItem, Stakes, Sync
from domain.codec import server_message
from domain.errors import DomainError
from domain.pool import BINARY, PARIMUTUEL, Bet, Outcome, Pool
from domain.targets import NONE, winning_target
from storage.changes import Change, Delete, Insert, UpdateMany, Upsert
from storage.database import Database

log = logging.getLogger(__name__)

MAX_BATCH = 256
OPEN_TO_RESOLVED = "resolved"

# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceBet:
    user_id: int
    target: Any
    amount: Any


@dataclass(frozen=True, slots=True)
class GetDistribution:
    user_id: int
    everything: bool


@dataclass(frozen=True, slots=True)
class Describe:
    """The pool's listing entry for a user (with their bets, or every bet)."""

    user_id: int
    everything: bool


@dataclass(frozen=True, slots=True)
class Info:
    """What a game needs to know of its pool (cheap: no bets)."""


@dataclass(frozen=True, slots=True)
class Announcement:
    """The full pool as res 352 shows it."""


@dataclass(frozen=True, slots=True)
class Block:
    at: int | None = None


@dataclass(frozen=True, slots=True)
class Allow:
    at: int | None = None


@dataclass(frozen=True, slots=True)
class ResolveByEvent:
    target_id: str
    happened_at: int


@dataclass(frozen=True, slots=True)
class HaltForEvent:
    """An event that resolves this pool is committed (its ``pending_resolutions`` row):
    take no more bets, and settle on ``ResolveByEvent`` or, failing that, by itself."""

    target_id: str
    happened_at: int


@dataclass(frozen=True, slots=True)
class ResolveByHand:
    target: Any


@dataclass(frozen=True, slots=True)
class Void:
    pass


@dataclass(frozen=True, slots=True)
class CloseForGame:
    """The game closes: parimutuel pools resolve to none (time-based ones expire),
    binary pools are blocked. Answers "resolved", "blocked" or "done"."""


def pool_row(pool: Pool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "game_id": pool.game_id,
        "status": pool.status,
        "doc": msgspec.json.encode(pool.to_doc()).decode(),
    }


def settlement_changes(
    pool: Pool, winner: str | None, status: str, now: int, happened_at: int | None
) -> tuple[Outcome, list[Change]]:
    """The pay-out and the rows it changes: the CPU-heavy part of a settlement (most of a
    second for 100,000 bets), which the pool runs off the event loop."""
    outcome = pool.settle(winner, now=now, happened_at=happened_at)
    settled = dataclasses.replace(pool)
    settled.mark_settled(outcome, status)
    bet_rows = [(s, paid, bet_id) for bet_id, (s, paid) in outcome.bet_status.items()]
    return outcome, [
        Upsert("pools", pool_row(settled)),
        Delete("pending_resolutions", {"pool_id": pool.id}),
        UpdateMany("bets", "id", ("status", "payout"), bet_rows),
    ]


def load_pool(db: Database, pool_id: str) -> tuple[Pool, dict[str, Any] | None]:
    row = db.rows("SELECT doc FROM pools WHERE id = ?", (pool_id,))
    if not row:
        raise DomainError("NOT_FOUND", f"There is no pool {pool_id!r}.")
    bets = [
        Bet(r["id"], r["user_id"], r["target"], r["amount"], r["placed_at"])
        for r in db.rows("SELECT * FROM bets WHERE pool_id = ? ORDER BY rowid", (pool_id,))
    ]
    pending = db.rows("SELECT * FROM pending_resolutions WHERE pool_id = ?", (pool_id,))
    return Pool.from_doc(msgspec.json.decode(row[0]["doc"]), bets), (
        pending[0] if pending else None
    )


class PoolActor(Actor):
    max_batch = MAX_BATCH

    def __init__(
        self, inbox: Mailbox, services: Services, pool: Pool, pending: dict[str, Any] | None
    ) -> None:
        super().__init__(inbox)
        self.services = services
        self.pool = pool
        #: the committed event resolution this pool waits to settle (no bets meanwhile)
        self.pending = pending
        self.pending_since = trio.current_time()
        self.last_flush = -math.inf
        self.idle_seconds = services.settings.idle_seconds

    @classmethod
    async def load(cls, inbox: Mailbox, services: Services, pool_id: str) -> PoolActor:
        # The wallet answers in order, after its commits, so whatever an earlier
        # incarnation of this pool asked of it is in storage before the pool is read back.
        await services.ask_wallet(Sync())
        pool, pending = await services.storage.read(lambda db: load_pool(db, pool_id))
        return cls(inbox, services, pool, pending)

    @property
    def now(self) -> int:
        return self.services.clock.now_ms()

    # -- the kit's hooks --------------------------------------------------------------

    async def on_start(self) -> None:
        if not self.pool.is_open and not self.pool.announced:  # settled, result not sent
            await self._announce()
        await self._settle_pending()

    async def on_stop(self) -> None:
        await self._flush_distribution()

    def batch_key(self, body: Any) -> Hashable | None:
        return "bets" if isinstance(body, PlaceBet) else None

    async def handle_batch(self, requests: list[Request]) -> None:
        await self._place_bets(requests)

    def can_passivate(self) -> bool:
        return not self.pool.is_open and not self.pool.unsent_bets

    async def handle(self, body: Any) -> Any:
        pool = self.pool
        match body:
            case GetDistribution(user_id, everything):
                visible = (
                    pool.bets if everything else [b for b in pool.bets if b.user_id == user_id]
                )
                return {
                    "pool_id": pool.id,
                    "target_level": pool.target_level,
                    "distribution": pool.distribution(visible),
                }
            case Describe(user_id, everything):
                return {
                    "listing": pool.listing(user_id, everything),
                    "open": pool.is_open,
                    "has_bet": user_id in pool.user_target,
                }
            case Info():
                return {
                    "open": pool.is_open,
                    "action": pool.action,
                    "pool_type": pool.pool_type,
                    "start_at": pool.start_at,
                    "targets": list(pool.targets),
                    "game_id": pool.game_id,
                }
            case Announcement():
                return pool.created_message()
            case Block(at) | Allow(at):
                return await self._schedule_block(isinstance(body, Block), at)
            case HaltForEvent(target_id, happened_at):
                if pool.is_open and pool.pool_type in PARIMUTUEL and self.pending is None:
                    self.pending = {
                        "winning_target": winning_target(pool.targets, target_id),
                        "happened_at": happened_at,
                    }
                    self.pending_since = trio.current_time()
                return None
            case ResolveByEvent(target_id, happened_at):
                if not pool.is_open or pool.pool_type not in PARIMUTUEL:
                    return None
                return await self._settle(
                    winning_target(pool.targets, target_id),
                    OPEN_TO_RESOLVED,
                    happened_at=happened_at,
                )
            case ResolveByHand(target):
                self._require_open()
                tid = target.strip().lower() if isinstance(target, str) else None
                if tid not in pool.targets:
                    raise DomainError(
                        "INVALID_TARGET",
                        f"{target!r} is not a target of this pool.",
                        parameter="target",
                    )
                return await self._settle(tid, OPEN_TO_RESOLVED)
            case Void():
                self._require_open()
                return await self._settle(None, "voided")
            case CloseForGame():
                if not pool.is_open:
                    return "done"
                if pool.pool_type in BINARY:
                    if not pool.blocked:
                        await self._apply_block(True)
                    return "blocked"
                expired = pool.pool_type == 2
                # a closed game gets no successor pool, whatever recreate_on_end says
                await self._settle(NONE, "expired" if expired else OPEN_TO_RESOLVED, recreate=False)
                return "resolved"
        raise DomainError("UNKNOWN_OP", f"A pool does not handle {type(body).__name__}.")

    def _require_open(self) -> None:
        if not self.pool.is_open:
            raise DomainError("POOL_CLOSED", "This pool is already resolved.")

    # -- bets -------------------------------------------------------------------------

    async def _place_bets(self, batch: list[Request]) -> None:
        pool, now = self.pool, self.now
        accepted: list[tuple[Request, Bet]] = []
        chosen: dict[int, str] = {}
        for request in batch:
            body: PlaceBet = request.body
            if self.pending is not None:
                request.fail(DomainError("POOL_CLOSED", "An event has resolved this pool."))
                continue
            try:
                target, stake = pool.check_bet(
                    body.user_id, body.target, body.amount, now, chosen.get(body.user_id)
                )
            except DomainError as error:
                request.fail(error)
                continue
            chosen[body.user_id] = target
            accepted.append((request, Bet(str(uuid.uuid4()), body.user_id, target, stake, now)))
        if accepted:
            items = [
                StakeItem(
                    bet.user_id,
                    pool.currency,
                    bet.amount,
                    pool.id,
                    (
                        Insert(
                            "bets",
                            {
                                "id": bet.id,
                                "pool_id": pool.id,
                                "user_id": bet.user_id,
                                "target": bet.target,
                                "amount": bet.amount,
                                "currency": pool.currency,
                                "placed_at": bet.placed_at,
                                "status": "active",
                                "payout": 0,
                            },
                        ),
                    ),
                )
                for _, bet in accepted
            ]
            # an error fails the whole batch (the kit answers it): nothing was staked
            results = await self.services.ask_wallet(Stakes(items))
            for (request, bet), refusal in zip(accepted, results, strict=True):
                if refusal is not None:
                    request.fail(refusal)
                    continue
                pool.add(bet)
                request.reply(
                    {
                        "pool_id": pool.id,
                        "bet_id": bet.id,
                        "amount": pool.money(bet.amount),
                        "target": bet.target,
                    }
                )

    # -- block / allow ----------------------------------------------------------------

    async def _schedule_block(self, block: bool, at: int | None) -> dict[str, Any]:
        self._require_open()
        pool, now = self.pool, self.now
        key = "blocked_at" if block else "allowed_at"
        if at is not None and at > now:
            changed = dataclasses.replace(pool, **{"block_at" if block else "allow_at": at})
            await self.services.storage.commit([Upsert("pools", pool_row(changed))])
            if block:
                pool.block_at = at
            else:
                pool.allow_at = at
            return {key: at, "pool_id": pool.id, "scheduled": True}
        return await self._apply_block(block)

    async def _apply_block(self, block: bool, due: int = 0) -> dict[str, Any]:
        """Block or allow now; a timer passes its ``due`` time, the earliest stamp."""
        pool, now = self.pool, max(self.now, due)
        field_name = "block_at" if block else "allow_at"
        changed = dataclasses.replace(
            pool, blocked=block, blocked_at=now if block else None, **{field_name: None}
        )
        await self.services.storage.commit([Upsert("pools", pool_row(changed))])
        pool.blocked, pool.blocked_at = changed.blocked, changed.blocked_at
        setattr(pool, field_name, None)
        key, res = ("blocked_at", 368) if block else ("allowed_at", 369)
        fields = {key: now, "pool_id": pool.id}
        self._broadcast(res, fields)
        return fields

    # -- settlement -------------------------------------------------------------------

    async def _settle(
        self,
        winner: str | None,
        status: str,
        *,
        happened_at: int | None = None,
        recreate: bool = True,
        due: int = 0,
    ) -> dict[str, Any]:
        """Pay out once: ledger lines, bet results, the pool's new state and (if asked) its
        successor are one commit; only then do memory and subscribers hear of it."""
        pool, now = self.pool, max(self.now, due)
        await self._flush_distribution()
        outcome, changes = await self.services.storage.off_loop(
            settlement_changes, pool, winner, status, now, happened_at
        )
        successor = (
            self._successor(now)
            if recreate and pool.recreate_on_end and winner is not None
            else None
        )
        if successor is not None:
            changes.append(Insert("pools", pool_row(successor)))
        await self.services.ask_wallet(
            Settle(f"settle:{pool.id}", "settlement", outcome.lines, outcome.released, changes)
        )
        pool.mark_settled(outcome, status)
        self.pending = None
        self.services.games.pool_resolved(pool.id)
        message = await self._announce()
        if successor is not None:
            try:
                await self.services.games.start_pool(successor.id, announce=True)
            except DomainError:  # it is committed: it starts with the next server start
                log.exception("pool %s: could not start its successor", pool.id)
        return message

    async def _announce(self) -> dict[str, Any]:
        """Broadcast the result (362, or 363 for an expiry), then record that it went out;
        a restart before that record sends it again rather than never."""
        pool = self.pool
        res, fields = pool.result_message()
        self._broadcast(res, fields)
        try:
            await self.services.storage.commit(
                [Upsert("pools", pool_row(dataclasses.replace(pool, announced=True)))]
            )
            pool.announced = True
        except DomainError:
            log.warning("pool %s: result sent, not yet recorded as sent", pool.id)
        return {"res": res, **fields}

    def _successor(self, now: int) -> Pool:
        pool = self.pool
        finish_at = None
        if pool.finish_at is not None:
            finish_at = now + max(0, pool.finish_at - pool.start_at)
        return Pool(
            str(uuid.uuid4()),
            pool.game_id,
            pool.game_name,
            pool.description,
            pool.action,
            pool.pool_type,
            dict(pool.targets),
            pool.target_level,
            pool.currency,
            pool.exponent,
            pool.takeout,
            pool.min_stake,
            pool.max_stake,
            start_at=now,
            finish_at=finish_at,
            recreate_on_end=True,
        )

    # -- timers -----------------------------------------------------------------------

    def _timers(self) -> list[tuple[int, str]]:
        pool = self.pool
        if not pool.is_open:
            return []
        due = [
            (at, name)
            for at, name in ((pool.block_at, "block"), (pool.allow_at, "allow"))
            if at is not None
        ]
        if pool.pool_type == 2 and pool.finish_at is not None:
            due.append((pool.finish_at, "expire"))
        return due

    def next_deadline(self) -> float:
        clock = self.services.clock
        deadlines = [clock.deadline_for(at) for at, _ in self._timers()]
        if self.pool.unsent_bets:
            deadlines.append(self.last_flush + self.services.settings.distribution_interval)
        if self.pending is not None and self.pool.is_open:
            # the game settles us with ResolveByEvent; if it cannot, we do it ourselves
            deadlines.append(self.pending_since + self.services.settings.request_timeout)
        return min(deadlines, default=math.inf)

    async def on_deadline(self) -> None:
        # compared on trio's clock, as the deadline was: epoch ms rounded down could put
        # "now" a millisecond short of a deadline that has passed, and spin the loop
        clock, now = self.services.clock, trio.current_time()
        for at, name in sorted(self._timers()):
            if clock.deadline_for(at) > now or not self.pool.is_open:
                continue
            if name == "expire":
                await self._settle(NONE, "expired", due=at)
            else:
                await self._apply_block(name == "block", due=at)
        if self.pending is not None and now >= self.pending_since + (
            self.services.settings.request_timeout
        ):
            await self._settle_pending()
        if self.pool.unsent_bets and (
            trio.current_time() - self.last_flush >= self.services.settings.distribution_interval
        ):
            await self._flush_distribution()

    async def _settle_pending(self) -> None:
        """Settle the event resolution committed for this pool, if it is still open."""
        if self.pending is not None and self.pool.is_open:
            await self._settle(
                self.pending["winning_target"],
                OPEN_TO_RESOLVED,
                happened_at=self.pending["happened_at"],
            )

    async def _flush_distribution(self) -> None:
        """One 360 for everything since the last: bets new since then, aggregates now.
        Then record how far the 360s got (best effort: a lost record re-sends a few)."""
        pool = self.pool
        if not pool.unsent_bets:
            return
        self._broadcast(
            360,
            {
                "pool_id": pool.id,
                "target_level": pool.target_level,
                "distribution": pool.distribution(pool.unsent_bets),
            },
        )
        pool.broadcast_bets = len(pool.bets)
        self.last_flush = trio.current_time()
        try:
            await self.services.storage.commit([Upsert("pools", pool_row(pool))])
        except DomainError:
            log.warning("pool %s: 360 sent, not yet recorded as sent", pool.id)

    def _broadcast(self, res: int, fields: dict[str, Any]) -> None:
        self.services.hub.to_game(self.pool.game_id, server_message(res, fields, t=self.now))
