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
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec
import trio

from actors import remote
from actors.hub import Broadcast
from actors.services import Services
from actors.wallet import Hold, Screen, Settle, StakeItem, Stakes, Sync, Unhold
from domain.errors import DomainError
from domain.pool import BINARY, PARIMUTUEL, Bet, BetStatus, Outcome, Pool, PoolStatus
from domain.rules import REMOTE_DELAY
from domain.targets import NONE, winning_target
from kit.runtime import Actor, Ask, Mailbox, OutcomeUnknown, Request
from storage import pools as pools_store
from storage.changes import Change, Check, Delete, Insert, Update, UpdateMany, Upsert
from storage.pools import load_pool

log = logging.getLogger(__name__)

MAX_BATCH = 256
#: The user of a slip held only to be decided from storage (its bets are read back then).
NO_USER = 0

# -- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlaceBet(Ask["BetPlaced | BetHeld"]):
    user_id: int
    target: Any
    amount: Any
    ip: str = ""  # the bettor's address, for the operator's /bets in remote wallet mode


@dataclass(frozen=True, slots=True)
class GetDistribution(Ask["PoolDistribution"]):
    user_id: int
    everything: bool


@dataclass(frozen=True, slots=True)
class Describe(Ask["PoolDescription"]):
    """The pool's listing entry for a user (with their bets, or every bet)."""

    user_id: int
    everything: bool


@dataclass(frozen=True, slots=True)
class Info(Ask["PoolInfo"]):
    """What a game needs to know of its pool (cheap: no bets)."""


@dataclass(frozen=True, slots=True)
class Announcement(Ask["PoolOpened"]):
    """The full pool as res 352 shows it."""


@dataclass(frozen=True, slots=True)
class Block(Ask["PoolBlocked | PoolAllowed"]):
    at: int | None = None


@dataclass(frozen=True, slots=True)
class Allow(Ask["PoolBlocked | PoolAllowed"]):
    at: int | None = None


@dataclass(frozen=True, slots=True)
class ResolveByEvent(Ask["PoolResolved | PoolExpired | None"]):
    target_id: str
    happened_at: int


@dataclass(frozen=True, slots=True)
class HaltForEvent(Ask[None]):
    """An event that resolves this pool is committed (its ``pending_resolutions`` row):
    take no more bets, and settle on ``ResolveByEvent`` or, failing that, by itself."""

    target_id: str
    happened_at: int


@dataclass(frozen=True, slots=True)
class ResolveByHand(Ask["PoolResolved | PoolExpired"]):
    target: Any


@dataclass(frozen=True, slots=True)
class Void(Ask["PoolResolved | PoolExpired"]):
    pass


@dataclass(frozen=True, slots=True)
class CloseForGame(Ask["PoolClosure"]):
    """The game closes: parimutuel pools resolve to none (time-based ones expire),
    binary pools are blocked. Answers a ``PoolClosure``."""


@dataclass(frozen=True, slots=True)
class SlipStake:
    """One bet of a betslip for this pool: its place in the slip, target and exact stake
    (major units), and the slip's own columns of its bet row."""

    index: int
    target: Any
    stake: Decimal
    columns: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reserve(Ask["Reserved"]):
    """Check a betslip's bets for this pool as bets are checked, and hold them until
    ``Release``: meanwhile they count for the one-target rule, and the pool settles only
    after it knows whether they were placed. ``until`` (trio time) is when the desk stops
    trying to commit them. Answers ``Reserved``."""

    slip_key: str
    user_id: int
    game_id: str
    action: str
    stakes: list[SlipStake]
    until: float


@dataclass(frozen=True, slots=True)
class Release(Ask[None]):
    """The desk's decision on a reserved slip: placed (the bets join the book) or not;
    None when the desk could not learn it (the pool then decides it from storage)."""

    slip_key: str
    placed: bool | None


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reserved:
    """What the pool holds for a slip (its bets with their rows and stake items), and
    the refusal of each bet it could not take, by the bet's place in the slip."""

    pool_id: str
    exponent: int
    held: list[tuple[int, Bet, StakeItem]]
    refusals: list[tuple[int, DomainError]]


@dataclass(frozen=True, slots=True)
class PoolDistribution:
    """The answer to ``GetDistribution`` (res 360's fields, see
    ``transport.presenters.distribution_fields``): ``omitted_bets`` counts the bets left
    out of ``distribution``."""

    pool_id: str
    target_level: int
    distribution: dict[str, Any]
    omitted_bets: int = 0


@dataclass(frozen=True, slots=True)
class PoolDescription:
    """The answer to ``Describe``: the pool's listing entry (as the 353 to 3535 lists
    show it), whether it is open and whether the user bet in it."""

    listing: dict[str, Any]
    open: bool
    has_bet: bool


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """What a game needs to know of its pool (the answer to ``Info``)."""

    open: bool
    action: str
    pool_type: int
    start_at: int
    targets: list[str]
    game_id: str


@dataclass(frozen=True, slots=True)
class BetPlaced:
    """A bet committed: its stake in minor units of the pool's currency."""

    pool_id: str
    bet_id: str
    target: str
    amount: int
    currency: str
    exponent: int


@dataclass(frozen=True, slots=True)
class BetHeld:
    """A bet held for the pool's bet delay (decisions §11): ``decision`` is answered
    once, at ``due_at`` (epoch ms), with its ``BetPlaced`` or its refusal."""

    pool_id: str
    bet_id: str
    due_at: int
    decision: Request


@dataclass(slots=True)
class Delayed:
    """A held bet in memory: ``decision`` is None when it was read back after a restart
    (nobody waits for it; it is still placed or refused when due)."""

    bet: Bet
    due_at: int
    decision: Request | None = None


class PoolClosure(Enum):
    """What closing its game did to a pool."""

    ALREADY_SETTLED = "already settled"
    SETTLED = "settled"
    BLOCKED = "blocked"  # a binary pool: it waits for its admin to resolve it


# -- events (to the game's subscribers; a settlement's also answers its request) -----


class PoolOpened(Broadcast):
    """The full pool, when it opens."""


class BetsDistributed(Broadcast):
    """The bets since the last such event, and the pool's totals now (coalesced)."""


class PoolResolved(Broadcast):
    """The pool settled: winners, losers, refunds."""


class PoolExpired(Broadcast):
    """A time-based pool settled at its finish time."""


class PoolBlocked(Broadcast):
    """No bets are taken (now, or from ``blocked_at`` when scheduled)."""


class PoolAllowed(Broadcast):
    """Bets are taken again."""


PoolSettled = PoolResolved | PoolExpired


def slip_checks(pool_id: str) -> list[Check]:
    """What must still hold when a betslip commits bets in this pool, read inside the
    slip's transaction (the pool actor may be settling meanwhile): the pool's row is
    locked SHARE, so a settlement (which locks it UPDATE) waits for the slip, or the slip
    for the settlement, and the later one reads what the earlier wrote."""
    return [
        pools_store.status_is(
            pool_id,
            PoolStatus.OPEN.value,
            "INVALID_BET_DETAILS",
            "The pool was resolved while the slip was being placed.",
            lock="SHARE",
        ),
        pools_store.no_pending_resolution(
            pool_id,
            "INVALID_BET_DETAILS",
            "An event resolved the pool while the slip was being placed.",
            lock="SHARE",
        ),
    ]


def pool_row(pool: Pool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "game_id": pool.game_id,
        "status": pool.status,
        "fail_safe_at": pool.fail_safe_at,
        "doc": msgspec.json.encode(pool.to_doc()).decode(),
    }


def settlement_changes(
    pool: Pool,
    winner: str | None,
    status: PoolStatus,
    now: int,
    happened_at: int | None,
    successor: Pool | None = None,
) -> tuple[Outcome, list[Change]]:
    """The pay-out and the rows it changes: the CPU-heavy part of a settlement (most of a
    second for 100,000 bets), which the pool runs off the event loop. A ``successor``
    (the recreated pool) is inserted with it, holding the pot this one carries over."""
    outcome = pool.settle(
        winner,
        now=now,
        happened_at=happened_at,
        successor=successor.id if successor is not None else None,
    )
    settled = dataclasses.replace(pool)
    settled.mark_settled(outcome, status)
    bet_rows = [(s, paid, bet_id) for bet_id, (s, paid) in outcome.bet_status.items()]
    return outcome, [
        # a betslip that landed since the pool last looked makes it reload, then settle
        pools_store.bet_count_is(
            pool.id,
            len(pool.bets),
            "POOL_CHANGED",
            "A betslip reached the pool while it was settling.",
            lock="UPDATE",
        ),
        Upsert("pools", pool_row(settled)),
        Delete("pending_resolutions", {"pool_id": pool.id}),
        UpdateMany("bets", "id", ("status", "payout"), bet_rows),
        *(
            [Insert("pools", pool_row(replace(successor, carried_in=outcome.house["carried_out"])))]
            if successor is not None
            else []
        ),
    ]


def broadcast_change(pool: Pool) -> Change:
    """Record how many of the pool's bets have gone out in a 360 (its watermark)."""
    return Update("pools", {"id": pool.id}, {"broadcast_bets": pool.broadcast_bets})


class PoolActor(Actor):
    max_batch = MAX_BATCH

    def __init__(
        self,
        inbox: Mailbox,
        services: Services,
        pool: Pool,
        pending: dict[str, Any] | None,
        delayed: Iterable[Delayed] = (),
    ) -> None:
        super().__init__(inbox)
        self.services = services
        self.pool = pool
        #: the committed event resolution this pool waits to settle (no bets meanwhile)
        self.pending = pending
        self.pending_since = trio.current_time()
        self.last_flush = -math.inf
        #: the 360 watermark storage holds; a newer one rides on the next bet commit
        self.recorded_broadcast = pool.broadcast_bets
        self.idle_seconds = services.settings.idle_seconds
        #: betslips reserved here and not yet decided: slip key -> (user, bets, until)
        self.held: dict[str, tuple[int, list[Bet], float]] = {}
        #: bets held for the pool's bet delay, by bet id (stored in ``held_bets``)
        self.delayed: dict[str, Delayed] = {d.bet.id: d for d in delayed}
        #: a pool stored before every pool had a fail-safe time was given one on load
        self.unsaved_fail_safe = False

    @classmethod
    async def load(cls, inbox: Mailbox, services: Services, pool_id: str) -> PoolActor:
        # The wallet answers in order, after its commits, so whatever an earlier
        # incarnation of this pool asked of it is in storage before the pool is read back.
        await services.ask_wallet(Sync())
        stored = await services.storage.read(lambda db: load_pool(db, pool_id))
        held = await services.storage.read(lambda db: pools_store.held_bets(db, pool_id))
        delayed = [Delayed(h.bet, h.due_at) for h in held]
        actor = cls(inbox, services, stored.pool, stored.pending, delayed)
        actor.unsaved_fail_safe = services.settings.fail_safe_rule.fill(
            stored.pool, stored.game_close_at
        )
        return actor

    @property
    def now(self) -> int:
        return self.services.clock.now_ms()

    # -- the kit's hooks --------------------------------------------------------------

    async def on_start(self) -> None:
        if self.unsaved_fail_safe:
            await self._save_fail_safe()
        if not self.pool.is_open and not self.pool.announced:  # settled, result not sent
            await self._announce()
        await self._settle_pending()

    async def _save_fail_safe(self) -> None:
        """Record the fail-safe time the pool was given on load (best effort: the next
        load gives the same one, from the same rule)."""
        log.info("pool %s: given the fail-safe time %s", self.pool.id, self.pool.fail_safe_at)
        try:
            await self.services.storage.commit([Upsert("pools", pool_row(self.pool))])
            self.unsaved_fail_safe = False
        except DomainError:
            log.warning("pool %s: fail-safe time not recorded yet", self.pool.id)

    async def on_stop(self) -> None:
        await self._flush_distribution()
        if self.pool.broadcast_bets > self.recorded_broadcast:
            try:
                await self.services.storage.commit([broadcast_change(self.pool)])
            except DomainError:
                log.warning("pool %s: 360 sent, not yet recorded as sent", self.pool.id)

    def batch_key(self, body: Any) -> Hashable | None:
        return "bets" if isinstance(body, PlaceBet) else None

    async def handle_batch(self, requests: list[Request]) -> None:
        await self._place_bets(requests)

    def can_passivate(self) -> bool:
        return not self.pool.is_open and not self.pool.has_unsent_bets and not self.delayed

    async def handle(self, body: Any) -> Any:
        pool = self.pool
        match body:
            case GetDistribution(user_id, everything):
                visible, omitted = pool.visible_bets(user_id, everything)
                return PoolDistribution(
                    pool.id, pool.target_level, pool.distribution(visible), omitted
                )
            case Describe(user_id, everything):
                return PoolDescription(
                    listing=pool.listing(user_id, everything),
                    open=pool.is_open,
                    has_bet=user_id in pool.user_target,
                )
            case Info():
                return PoolInfo(
                    open=pool.is_open,
                    action=pool.action,
                    pool_type=pool.pool_type,
                    start_at=pool.start_at,
                    targets=list(pool.targets),
                    game_id=pool.game_id,
                )
            case Announcement():
                return PoolOpened(pool.created_message())
            case Reserve():
                return self._reserve(body)
            case Release(slip_key, placed):
                held = self.held.pop(slip_key, None)
                if placed is None:  # due now: a pool that restarted holds nothing for it
                    user_id, bets = held[:2] if held else (NO_USER, [])
                    self.held[slip_key] = (user_id, bets, trio.current_time())
                elif placed:
                    for bet in held[1] if held else await self._read_or_hold(slip_key):
                        pool.add(bet)
                return None
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
                    PoolStatus.RESOLVED,
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
                return await self._settle(tid, PoolStatus.RESOLVED)
            case Void():
                self._require_open()
                return await self._settle(None, PoolStatus.VOIDED)
            case CloseForGame():
                if not pool.is_open:
                    return PoolClosure.ALREADY_SETTLED
                if pool.pool_type in BINARY:
                    if not pool.blocked:
                        await self._apply_block(True)
                    return PoolClosure.BLOCKED
                expired = pool.pool_type == 2
                # a closed game gets no successor pool, whatever recreate_on_end says
                await self._settle(
                    NONE, PoolStatus.EXPIRED if expired else PoolStatus.RESOLVED, recreate=False
                )
                return PoolClosure.SETTLED
        raise DomainError("UNKNOWN_OP", f"A pool does not handle {type(body).__name__}.")

    def _require_open(self) -> None:
        if not self.pool.is_open:
            raise DomainError("POOL_CLOSED", "This pool is already resolved.")

    # -- bets -------------------------------------------------------------------------

    async def _place_bets(self, batch: list[Request]) -> None:
        pool, now = self.pool, self.now
        accepted: list[tuple[Request, Bet]] = []
        chosen, staked = self._held()
        waiting = sum(staked.values())
        for request in batch:
            body: PlaceBet = request.body
            if self.pending is not None:
                request.fail(DomainError("POOL_CLOSED", "An event has resolved this pool."))
                continue
            try:
                target, stake = pool.check_bet(
                    body.user_id,
                    body.target,
                    body.amount,
                    now,
                    chosen.get(body.user_id),
                    staked[body.user_id],
                    waiting,
                )
            except DomainError as error:
                request.fail(error)
                continue
            chosen[body.user_id] = target
            staked[body.user_id] += stake
            waiting += stake
            accepted.append((request, Bet(str(uuid.uuid4()), body.user_id, target, stake, now)))
        if accepted and pool.rules.bet_delay_ms:
            if self.services.operator is None:
                await self._hold_bets(accepted)
            else:  # a pool stored with a delay before the server ran in this mode
                for request, _ in accepted:
                    request.fail(DomainError("INVALID_BET_DETAILS", REMOTE_DELAY))
            return
        debits: dict[str, remote.Debit] = {}
        if accepted and self.services.operator is not None:
            accepted = await self._screen(accepted)
            accepted, debits = await self._debit_each(accepted)
        if accepted:
            items = self._stake_items(accepted, debits)
            try:
                # an error fails the whole batch (the kit answers it): nothing was staked
                results = await self.services.ask_wallet(Stakes(items))
            except DomainError:
                await self._give_up(debits.values())
                raise
            if results[0] is None:  # the first item carried the watermark, if it moved
                self.recorded_broadcast = pool.broadcast_bets
            for (request, bet), refusal in zip(accepted, results, strict=True):
                if refusal is not None:
                    await self._give_up([debits[bet.id]] if bet.id in debits else [])
                    request.fail(refusal)
                    continue
                pool.add(bet)
                request.reply(
                    BetPlaced(pool.id, bet.id, bet.target, bet.amount, pool.currency, pool.exponent)
                )

    async def _screen(self, accepted: list[tuple[Request, Bet]]) -> list[tuple[Request, Bet]]:
        """Remote wallet mode: the bets the wallet would refuse (blocked, excluded, a
        limit) are answered here, before the operator is asked to debit them."""
        refusals = await self.services.ask_wallet(
            Screen([self._stake_item(bet) for _, bet in accepted])
        )
        kept = []
        for (request, bet), refusal in zip(accepted, refusals, strict=True):
            if refusal is None:
                kept.append((request, bet))
            else:
                request.fail(refusal)
        return kept

    async def _debit_each(
        self, accepted: list[tuple[Request, Bet]]
    ) -> tuple[list[tuple[Request, Bet]], dict[str, remote.Debit]]:
        """Remote wallet mode: each websocket bet is one placement, debited at the
        operator (all at once). Refused or unknown ones are answered here."""
        pool = self.pool
        deadline = trio.current_time() + self.services.settings.request_timeout / 2
        debits: dict[str, remote.Debit] = {}

        async def debit(request: Request, bet: Bet) -> None:
            entry = {
                "user_id": bet.user_id,
                "pool_id": pool.id,
                "bet_id": bet.id,
                "currency": pool.currency,
                "amount": bet.amount,
                "potential": None,
            }
            debits[bet.id] = await remote.debit(self.services, [entry], request.body.ip, deadline)

        async with trio.open_nursery() as nursery:
            for request, bet in accepted:
                nursery.start_soon(debit, request, bet)
        debited = []
        for request, bet in accepted:
            outcome = debits[bet.id]
            if outcome.answer is remote.Answer.DONE:
                debited.append((request, bet))
            elif outcome.answer is remote.Answer.REFUSED:
                request.fail(DomainError("INSUFFICIENT_FUNDS", outcome.reason))
            else:
                request.fail(
                    DomainError(
                        "REQUEST_TIMED_OUT",
                        "The operator's wallet did not answer: the bet is not placed (money "
                        "it took is given back).",
                    )
                )
        return debited, debits

    async def _give_up(self, debits: Iterable[remote.Debit]) -> None:
        for debit in debits:
            await remote.give_up(self.services, debit.key)

    def _stake_items(
        self, accepted: list[tuple[Request, Bet]], debits: dict[str, remote.Debit]
    ) -> list[StakeItem]:
        """The wallet's items for ``accepted``. The first also records how far the 360s
        got, when that moved: the watermark rides on a bet commit, not on one of its own."""
        items = [self._stake_item(bet, debits.get(bet.id)) for _, bet in accepted]
        if self.pool.broadcast_bets > self.recorded_broadcast:
            first = items[0]
            items[0] = replace(first, changes=(*first.changes, broadcast_change(self.pool)))
        return items

    def _stake_item(
        self,
        bet: Bet,
        debit: remote.Debit | None = None,
        columns: dict[str, Any] | None = None,
    ) -> StakeItem:
        """What the wallet commits for a bet: its stake, its row, and in remote wallet
        mode the record that its debit was used."""
        pool = self.pool
        row = {
            "id": bet.id,
            "pool_id": pool.id,
            "user_id": bet.user_id,
            "target": bet.target,
            "amount": bet.amount,
            "currency": pool.currency,
            "placed_at": bet.placed_at,
            "status": BetStatus.ACTIVE,
            "payout": 0,
            **(columns or {}),
        }
        changes = (Insert("bets", row), *(debit.changes if debit else ()))
        return StakeItem(bet.user_id, pool.currency, bet.amount, pool.id, changes)

    # -- bets held for the pool's delay (decisions §11) ------------------------------

    async def _hold_bets(self, accepted: list[tuple[Request, Bet]]) -> None:
        """Hold checked bets for the delay: their stakes become exposure and they are
        stored, in one wallet commit; each request is answered with a ``BetHeld``."""
        pool = self.pool
        due_at = self.now + pool.rules.bet_delay_ms
        items = [self._held_item(bet, due_at) for _, bet in accepted]
        results = await self.services.ask_wallet(Hold(items))
        for (request, bet), refusal in zip(accepted, results, strict=True):
            if refusal is not None:
                request.fail(refusal)
                continue
            decision = Request(bet)
            self.inbox.adopt(decision)  # answered ACTOR_RESTARTED if this actor dies
            self.delayed[bet.id] = Delayed(bet, due_at, decision)
            request.reply(BetHeld(pool.id, bet.id, due_at, decision))

    def _held_item(self, bet: Bet, due_at: int) -> StakeItem:
        pool = self.pool
        row = {
            **{name: getattr(bet, name) for name in ("id", "user_id", "target", "amount")},
            "pool_id": pool.id,
            "currency": pool.currency,
            "requested_at": bet.placed_at,
            "due_at": due_at,
        }
        return StakeItem(
            bet.user_id, pool.currency, bet.amount, pool.id, (Insert("held_bets", row),)
        )

    def _delay_refusal(self) -> DomainError | None:
        """Why a held bet due now is refused: the pool stopped taking bets, or an event
        that resolves it came, during the delay."""
        if self.pending is not None:
            return DomainError(
                "POOL_CLOSED", "An event that resolves this pool came during the bet's delay."
            )
        if self.pool.refusal(self.now) is not None:
            return DomainError(
                "POOL_CLOSED", "The pool stopped taking bets during the bet's delay."
            )
        return None

    async def _decide_delayed(self) -> None:
        """Place, or refuse, the held bets whose delay is over."""
        clock, now = self.services.clock, trio.current_time()
        due = [d for d in self.delayed.values() if clock.deadline_for(d.due_at) <= now]
        if not due:
            return
        refusal = self._delay_refusal()
        if refusal is not None:
            await self._refuse_delayed(due, refusal)
            return
        placed = [(d, dataclasses.replace(d.bet, placed_at=d.due_at)) for d in due]
        items = [self._placed_item(bet) for _, bet in placed]
        results = await self.services.ask_wallet(Stakes(items))
        for (delayed, bet), refused in zip(placed, results, strict=True):
            if refused is not None:
                await self._refuse_delayed([delayed], refused)
                continue
            self.pool.add(bet)
            del self.delayed[bet.id]
            pool = self.pool
            if delayed.decision is not None:
                delayed.decision.reply(
                    BetPlaced(pool.id, bet.id, bet.target, bet.amount, pool.currency, pool.exponent)
                )

    def _placed_item(self, bet: Bet) -> StakeItem:
        """A held bet's stake, placed: its stored hold goes, its bet row comes."""
        item = self._stake_item(bet)
        changes = (Delete("held_bets", {"id": bet.id}), *item.changes)
        return dataclasses.replace(item, changes=changes, held=True)

    async def _refuse_delayed(self, delayed: list[Delayed], refusal: DomainError) -> None:
        """Give held bets' stakes back (nothing was taken) and answer them ``refusal``."""
        if not delayed:
            return
        pool = self.pool
        items = [
            StakeItem(
                d.bet.user_id,
                pool.currency,
                d.bet.amount,
                pool.id,
                (Delete("held_bets", {"id": d.bet.id}),),
                held=True,
            )
            for d in delayed
        ]
        await self.services.ask_wallet(Unhold(items))
        for d in delayed:
            del self.delayed[d.bet.id]
            if d.decision is not None:
                d.decision.fail(refusal)

    # -- betslips ---------------------------------------------------------------------

    def _held(self) -> tuple[dict[int, str], defaultdict[int, int]]:
        """What reserved slips hold here, by user: the target backed (one per pool), and
        the stakes (they count toward the user's liability in this pool)."""
        targets: dict[int, str] = {}
        stakes: defaultdict[int, int] = defaultdict(int)
        for user_id, bets, _ in self.held.values():
            for bet in bets:
                targets[user_id] = bet.target
                stakes[user_id] += bet.amount
        for delayed in self.delayed.values():
            targets[delayed.bet.user_id] = delayed.bet.target
            stakes[delayed.bet.user_id] += delayed.bet.amount
        return targets, stakes

    def _reserve(self, body: Reserve) -> Reserved:
        pool, now = self.pool, self.now
        held: list[tuple[int, Bet, StakeItem]] = []
        refusals: list[tuple[int, DomainError]] = []
        chosen, staked = self._held()
        waiting = sum(staked.values())
        for stake in body.stakes:
            try:
                if body.game_id != pool.game_id or body.action != pool.action:
                    raise DomainError(
                        "INVALID_TARGET", "marketId is not a pool of this eventId and marketTypeId."
                    )
                if self.pending is not None:
                    raise DomainError("POOL_CLOSED", "An event has resolved this pool.")
                if pool.rules.bet_delay_ms:
                    raise DomainError(
                        "INVALID_BET_DETAILS",
                        "This pool holds each bet for a delay before placing it; bet on it "
                        "over the websocket.",
                    )
                target, minor = pool.check_bet(
                    body.user_id,
                    stake.target,
                    stake.stake,
                    now,
                    chosen.get(body.user_id),
                    staked[body.user_id],
                    waiting,
                )
            except DomainError as error:
                refusals.append((stake.index, error))
                continue
            chosen[body.user_id] = target
            staked[body.user_id] += minor
            waiting += minor
            bet = Bet(str(uuid.uuid4()), body.user_id, target, minor, now)
            held.append((stake.index, bet, self._stake_item(bet, columns=stake.columns)))
        if held and not refusals:
            self.held[body.slip_key] = (body.user_id, [bet for _, bet, _ in held], body.until)
        return Reserved(pool.id, pool.exponent, held, refusals)

    async def _stored_slip_bets(self, slip_key: str) -> list[Bet]:
        """A placed slip this pool holds nothing for (it restarted after the
        reservation, and may have loaded before the slip committed): its bets here that
        memory lacks, read back from storage."""
        known = {bet.id for bet in self.pool.bets}
        pool_id = self.pool.id
        bets = await self.services.storage.read(
            lambda db: pools_store.stored_bets(db, pool_id, slip_key)
        )
        return [bet for bet in bets if bet.id not in known]

    async def _read_or_hold(self, slip_key: str) -> list[Bet]:
        """``_stored_slip_bets``; when the read fails, the slip stays held with no bets
        (read back once decided) and due now, so the pool's timer retries it: a lost
        release would leave memory without bets that storage holds."""
        try:
            return await self._stored_slip_bets(slip_key)
        except DomainError:
            self.held[slip_key] = (NO_USER, [], trio.current_time())
            raise

    async def _decide_held(self, only_expired: bool) -> None:
        """Learn from storage what became of reserved slips whose desk did not say (gone,
        or slower than ``until``): the wallet answers in order after its commits, so once
        it has answered a ``Sync`` every slip it took is in storage or never will be."""
        now = trio.current_time()
        keys = [k for k, (_, _, until) in self.held.items() if not only_expired or until <= now]
        if not keys:
            return
        await self.services.ask_wallet(Sync())
        pool_id = self.pool.id
        placed = await self.services.storage.read(
            lambda db: pools_store.placed_slips(db, pool_id, keys)
        )
        for key in keys:
            _, bets, _ = self.held[key]
            if key in placed:
                for bet in bets or await self._stored_slip_bets(key):
                    self.pool.add(bet)
            del self.held[key]

    # -- block / allow ----------------------------------------------------------------

    async def _schedule_block(self, block: bool, at: int | None) -> PoolBlocked | PoolAllowed:
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
            return (PoolBlocked if block else PoolAllowed)(
                {key: at, "pool_id": pool.id, "scheduled": True}
            )
        return await self._apply_block(block)

    async def _apply_block(self, block: bool, due: int = 0) -> PoolBlocked | PoolAllowed:
        """Block or allow now; a timer passes its ``due`` time, the earliest stamp."""
        pool, now = self.pool, max(self.now, due)
        field_name = "block_at" if block else "allow_at"
        changed = dataclasses.replace(
            pool, blocked=block, blocked_at=now if block else None, **{field_name: None}
        )
        await self.services.storage.commit([Upsert("pools", pool_row(changed))])
        pool.blocked, pool.blocked_at = changed.blocked, changed.blocked_at
        setattr(pool, field_name, None)
        event = (
            PoolBlocked({"blocked_at": now, "pool_id": pool.id})
            if block
            else PoolAllowed({"allowed_at": now, "pool_id": pool.id})
        )
        self._publish(event)
        return event

    # -- settlement -------------------------------------------------------------------

    async def _settle(
        self,
        winner: str | None,
        status: PoolStatus,
        *,
        happened_at: int | None = None,
        recreate: bool = True,
        due: int = 0,
    ) -> PoolSettled:
        """Pay out once: ledger lines, bet results, the pool's new state and (if asked) its
        successor are one commit; only then do memory and subscribers hear of it."""
        await self._decide_held(only_expired=False)
        await self._refuse_delayed(
            list(self.delayed.values()),
            DomainError("POOL_CLOSED", "The pool was resolved during the bet's delay."),
        )
        pool, now = self.pool, max(self.now, due)
        await self._flush_distribution()
        successor = (
            self._successor(now)
            if recreate and pool.recreate_on_end and winner is not None
            else None
        )
        outcome, changes = await self.services.storage.off_loop(
            settlement_changes, pool, winner, status, now, happened_at, successor
        )
        if self.services.operator is not None and pool.bets:
            changes.append(remote.winners_call(pool.id, now))  # /winners, from the outbox
        try:
            await self.services.ask_wallet(
                Settle(f"settle:{pool.id}", "settlement", outcome.lines, outcome.released, changes)
            )
        except DomainError as error:
            if error.code == "POOL_CHANGED":
                raise OutcomeUnknown(
                    "ACTOR_RESTARTED", "The pool took a betslip while settling; try again."
                ) from error
            raise
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

    async def _announce(self) -> PoolSettled:
        """Publish the result, then record that it went out; a restart before that record
        publishes it again rather than never."""
        pool = self.pool
        fields = pool.result_fields()
        event = PoolExpired(fields) if pool.status is PoolStatus.EXPIRED else PoolResolved(fields)
        self._publish(event)
        try:
            await self.services.storage.commit(
                [Upsert("pools", pool_row(dataclasses.replace(pool, announced=True)))]
            )
            pool.announced = True
        except DomainError:
            log.warning("pool %s: result sent, not yet recorded as sent", pool.id)
        return event

    def _successor(self, now: int) -> Pool:
        pool = self.pool
        finish_at = fail_safe_at = None
        if pool.finish_at is not None:
            finish_at = now + max(0, pool.finish_at - pool.start_at)
        if pool.fail_safe_at is not None:  # the same distance from its start
            fail_safe_at = now + max(0, pool.fail_safe_at - pool.start_at)
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
            pool.max_liability,
            start_at=now,
            finish_at=finish_at,
            fail_safe_at=fail_safe_at,
            recreate_on_end=True,
            rules=pool.rules,
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
        if pool.fail_safe_at is not None:
            due.append((pool.fail_safe_at, "fail_safe"))
        return due

    def next_deadline(self) -> float:
        clock = self.services.clock
        deadlines = [clock.deadline_for(at) for at, _ in self._timers()]
        if self.pool.has_unsent_bets:
            deadlines.append(self.last_flush + self.services.settings.distribution_interval)
        if self.pending is not None and self.pool.is_open:
            # the game settles us with ResolveByEvent; if it cannot, we do it ourselves
            deadlines.append(self.pending_since + self.services.settings.request_timeout)
        deadlines += [until for _, _, until in self.held.values()]
        deadlines += [clock.deadline_for(d.due_at) for d in self.delayed.values()]
        return min(deadlines, default=math.inf)

    async def on_deadline(self) -> None:
        # compared on trio's clock, as the deadline was: epoch ms rounded down could put
        # "now" a millisecond short of a deadline that has passed, and spin the loop
        clock, now = self.services.clock, trio.current_time()
        await self._decide_held(only_expired=True)
        await self._decide_delayed()
        for at, name in sorted(self._timers()):
            if clock.deadline_for(at) > now or not self.pool.is_open:
                continue
            if name == "expire":
                await self._settle(NONE, PoolStatus.EXPIRED, due=at)
            elif name == "fail_safe":
                await self._fail_safe(at)
            else:
                await self._apply_block(name == "block", due=at)
        if self.pending is not None and now >= self.pending_since + (
            self.services.settings.request_timeout
        ):
            await self._settle_pending()
        # the sum, as next_deadline computes it: "now - last_flush" can round a hair below
        # the interval at the very deadline, and the actor would spin without flushing
        if self.pool.has_unsent_bets and (
            trio.current_time() >= self.last_flush + self.services.settings.distribution_interval
        ):
            await self._flush_distribution()

    async def _fail_safe(self, due: int) -> None:
        """Seed 003: nobody resolved the pool by its fail-safe time, so it is voided as op
        399 does (every stake back); an event resolution already committed still wins."""
        if self.pending is not None:
            await self._settle_pending()
            return
        log.warning("pool %s: unresolved at its fail-safe time, voided", self.pool.id)
        await self._settle(None, PoolStatus.VOIDED, due=due)

    async def _settle_pending(self) -> None:
        """Settle the event resolution committed for this pool, if it is still open."""
        if self.pending is not None and self.pool.is_open:
            await self._settle(
                self.pending["winning_target"],
                PoolStatus.RESOLVED,
                happened_at=self.pending["happened_at"],
            )

    async def _flush_distribution(self) -> None:
        """One 360 for everything since the last: the latest bets new since then (at
        most 50, ``omitted_bets`` counts the others), aggregates now. How far the 360s
        got is recorded by the next bet commit (``_stake_items``), not by a commit here:
        a restart before it re-sends these few (bets are keyed by id: harmless)."""
        pool = self.pool
        if not pool.has_unsent_bets:
            return
        shown, omitted = pool.latest_unsent()
        self._publish(
            BetsDistributed(
                {
                    "pool_id": pool.id,
                    "target_level": pool.target_level,
                    "distribution": pool.distribution(shown),
                    "omitted_bets": omitted,
                }
            )
        )
        pool.broadcast_bets = len(pool.bets)
        self.last_flush = trio.current_time()

    def _publish(self, event: Broadcast) -> None:
        self.services.hub.to_game(self.pool.game_id, event)
