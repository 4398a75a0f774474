"""The pool actor: one task per betting pool, its hooks only.

It owns the pool's book, takes bets in batches (everything queued while the previous
batch was being committed goes into one wallet request and one commit), fires the pool's
timers (scheduled block/allow, expiry, coalesced distribution broadcasts) from its own
receive loop, and settles the pool exactly once. In remote wallet mode a batch's
operator debits run in a task of the actor's own nursery, outside the serve loop; their
outcome comes back as a ``Debited`` message, so a slow operator holds up only those
bets' replies. What it takes and answers is in ``actors.pool.protocol``; the rows it
writes in ``changes`` and ``settlement``; what it holds outside its book in
``reservations``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections.abc import Hashable, Iterable
from typing import Any

import trio

from actors import remote
from actors.hub import Broadcast
from actors.pool.changes import (
    broadcast_change,
    held_item,
    placed_item,
    pool_row,
    stake_item,
    unheld_item,
)
from actors.pool.protocol import (
    Allow,
    Announcement,
    BetHeld,
    BetPlaced,
    BetsDistributed,
    Block,
    CloseForGame,
    Debited,
    Describe,
    GetDistribution,
    HaltForEvent,
    Info,
    PlaceBet,
    PoolAllowed,
    PoolBlocked,
    PoolClosure,
    PoolDescription,
    PoolDistribution,
    PoolInfo,
    PoolOpened,
    PoolSettled,
    Release,
    Reserve,
    Reserved,
    ResolveByEvent,
    ResolveByHand,
    Void,
)
from actors.pool.reservations import Delayed, Reservations
from actors.pool.settlement import result_event, settlement_changes
from actors.services import Services
from actors.wallet import Hold, Screen, Settle, StakeItem, Stakes, Sync, Unhold
from domain.errors import DomainError
from domain.pool import (
    BINARY,
    PARIMUTUEL,
    Bet,
    PendingResolution,
    Pool,
    PoolStatus,
    PoolType,
)
from domain.rules import REMOTE_DELAY
from domain.targets import NONE, winning_target
from kit.runtime import Actor, Handlers, Mailbox, OutcomeUnknown, Request
from storage import pools as pools_store
from storage.changes import Upsert

log = logging.getLogger(__name__)

MAX_BATCH = 256

Accepted = list[tuple[Request, Bet]]


class PoolActor(Actor):
    max_batch = MAX_BATCH

    def __init__(
        self,
        inbox: Mailbox,
        services: Services,
        pool: Pool,
        pending: PendingResolution | None,
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
        #: betslips reserved here and not yet decided, and bets being debited
        self.reserved = Reservations()
        #: bets held for the pool's bet delay, by bet id (stored in ``held_bets``)
        self.delayed: dict[str, Delayed] = {d.bet.id: d for d in delayed}
        #: a pool stored before every pool had a fail-safe time was given one on load
        self.unsaved_fail_safe = False
        #: where the operator debits run (remote wallet mode), set by ``run``
        self._debits: trio.Nursery | None = None

    @classmethod
    async def load(cls, inbox: Mailbox, services: Services, pool_id: str) -> PoolActor:
        # The wallet answers in order, after its commits, so whatever an earlier
        # incarnation of this pool asked of it is in storage before the pool is read back.
        await services.ask_wallet(Sync())
        stored = await services.storage.read(lambda db: pools_store.load_pool(db, pool_id))
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

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The serve loop, beside the operator debits in flight; they end with it (their
        bets' requests are then answered by the supervisor, and the outbox worker takes
        over their intents)."""
        async with trio.open_nursery() as debits:
            self._debits = debits
            await super().run(task_status=task_status)
            debits.cancel_scope.cancel()

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
        return (
            not self.pool.is_open
            and not self.pool.has_unsent_bets
            and not self.delayed
            and not self.reserved.debiting
        )

    async def handle(self, body: Any) -> Any:
        """One message, by its type (``HANDLERS``); UNKNOWN_OP for any other."""
        return await HANDLERS.of(body)(self, body)

    # -- the handlers, one per message ------------------------------------------------

    async def _distribution(self, body: GetDistribution) -> PoolDistribution:
        pool = self.pool
        visible, omitted = pool.visible_bets(body.user_id, body.everything)
        return PoolDistribution(pool.id, pool.target_level, pool.distribution(visible), omitted)

    async def _describe(self, body: Describe) -> PoolDescription:
        pool = self.pool
        return PoolDescription(
            listing=pool.listing(body.user_id, body.everything),
            open=pool.is_open,
            has_bet=body.user_id in pool.user_target,
        )

    async def _info(self, body: Info) -> PoolInfo:
        pool = self.pool
        return PoolInfo(
            open=pool.is_open,
            action=pool.action,
            pool_type=pool.pool_type,
            start_at=pool.start_at,
            targets=list(pool.targets),
            game_id=pool.game_id,
        )

    async def _announcement(self, body: Announcement) -> PoolOpened:
        return PoolOpened(self.pool.created_message())

    async def _release(self, body: Release) -> None:
        """The desk's decision on a slip: its bets join the book, or are dropped; when
        the desk could not learn it, the slip is due now and decided from storage."""
        held = self.reserved.release(body.slip_key)
        if body.placed is None:  # due now: a pool that restarted holds nothing for it
            self.reserved.due_now(body.slip_key, held, trio.current_time())
        elif body.placed:
            for bet in held.bets if held else await self._read_or_hold(body.slip_key):
                self.pool.add(bet)

    async def _block(self, body: Block | Allow) -> PoolBlocked | PoolAllowed:
        return await self._schedule_block(isinstance(body, Block), body.at)

    async def _halt(self, body: HaltForEvent) -> None:
        """An event that resolves the pool is committed: no more bets from now."""
        pool = self.pool
        if pool.is_open and pool.pool_type in PARIMUTUEL and self.pending is None:
            self.pending = PendingResolution(
                winning_target(pool.targets, body.target_id), body.happened_at
            )
            self.pending_since = trio.current_time()

    async def _resolve_by_event(self, body: ResolveByEvent) -> PoolSettled | None:
        pool = self.pool
        if not pool.is_open or pool.pool_type not in PARIMUTUEL:
            return None
        return await self._settle(
            winning_target(pool.targets, body.target_id),
            PoolStatus.RESOLVED,
            happened_at=body.happened_at,
        )

    async def _resolve_by_hand(self, body: ResolveByHand) -> PoolSettled:
        """Raises POOL_CLOSED (already settled), INVALID_TARGET (not one of its targets)."""
        self._require_open()
        target = body.target
        tid = target.strip().lower() if isinstance(target, str) else None
        if tid not in self.pool.targets:
            raise DomainError(
                "INVALID_TARGET", f"{target!r} is not a target of this pool.", parameter="target"
            )
        return await self._settle(tid, PoolStatus.RESOLVED)

    async def _void(self, body: Void) -> PoolSettled:
        """Raises POOL_CLOSED when already settled."""
        self._require_open()
        return await self._settle(None, PoolStatus.VOIDED)

    async def _close_for_game(self, body: CloseForGame) -> PoolClosure:
        pool = self.pool
        if not pool.is_open:
            return PoolClosure.ALREADY_SETTLED
        if pool.pool_type in BINARY:
            if not pool.blocked:
                await self._apply_block(True)
            return PoolClosure.BLOCKED
        expired = pool.pool_type == PoolType.TIMED_PARIMUTUEL
        # a closed game gets no successor pool, whatever recreate_on_end says
        await self._settle(
            NONE, PoolStatus.EXPIRED if expired else PoolStatus.RESOLVED, recreate=False
        )
        return PoolClosure.SETTLED

    def _require_open(self) -> None:
        if not self.pool.is_open:
            raise DomainError("POOL_CLOSED", "This pool is already resolved.")

    # -- bets -------------------------------------------------------------------------

    def _backing(self) -> tuple[dict[int, str], dict[int, int]]:
        """What slips, debits in flight and delayed bets hold here, by user."""
        return self.reserved.backing(d.bet for d in self.delayed.values())

    def _check_batch(self, batch: list[Request]) -> Accepted:
        """The batch's bets the pool takes (each checked as if the ones before it were
        placed); the others are answered with their refusal here."""
        pool, now = self.pool, self.now
        accepted: Accepted = []
        chosen, staked = self._backing()
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
                    staked.get(body.user_id, 0),
                    waiting,
                )
            except DomainError as error:
                request.fail(error)
                continue
            chosen[body.user_id] = target
            staked[body.user_id] = staked.get(body.user_id, 0) + stake
            waiting += stake
            accepted.append((request, Bet(str(uuid.uuid4()), body.user_id, target, stake, now)))
        return accepted

    async def _place_bets(self, batch: list[Request]) -> None:
        accepted = self._check_batch(batch)
        if not accepted:
            return
        if self.pool.rules.bet_delay_ms:
            if self.services.operator is None:
                await self._hold_bets(accepted)
            else:  # a pool stored with a delay before the server ran in this mode
                for request, _ in accepted:
                    request.fail(DomainError("INVALID_BET_DETAILS", REMOTE_DELAY))
            return
        if self.services.operator is None:
            await self._stake(accepted, {})
            return
        accepted = await self._screen(accepted)
        if accepted:
            self._start_debits(accepted)

    async def _stake(self, accepted: Accepted, debits: dict[str, remote.Debit]) -> None:
        """One wallet commit for ``accepted``; each placed bet joins the book and is
        answered ``BetPlaced``, each refused one its refusal (its debit given up)."""
        pool = self.pool
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

    async def _screen(self, accepted: Accepted) -> Accepted:
        """Remote wallet mode: the bets the wallet would refuse (blocked, excluded, a
        limit) are answered here, before the operator is asked to debit them."""
        refusals = await self.services.ask_wallet(
            Screen([stake_item(self.pool, bet) for _, bet in accepted])
        )
        kept = []
        for (request, bet), refusal in zip(accepted, refusals, strict=True):
            if refusal is None:
                kept.append((request, bet))
            else:
                request.fail(refusal)
        return kept

    # -- operator debits, outside the serve loop (remote wallet mode) -----------------

    def _start_debits(self, accepted: Accepted) -> None:
        """Start the batch's debits in the actor's nursery and answer the requests
        later, on ``Debited``: meanwhile the bets count as held, and the pool serves
        other messages. Must be the batch's last step (nothing may fail after it)."""
        assert self._debits is not None, "PoolActor.run has not started"
        deadline = trio.current_time() + self.services.settings.request_timeout / 2
        self.reserved.start_debits(bet for _, bet in accepted)
        for request, _ in accepted:
            self.defer(request)
        self._debits.start_soon(self._debit_and_report, accepted, deadline)

    async def _debit_and_report(self, accepted: Accepted, deadline: float) -> None:
        """Each bet is one placement, debited at the operator (all at once, until
        ``deadline``); then the outcome goes to the pool as ``Debited``. A pool that
        does not take it in time (or is stopping) places none of them."""
        debits: dict[str, remote.Debit] = {}
        refusals: dict[str, DomainError] = {}
        async with trio.open_nursery() as nursery:
            for request, bet in accepted:
                nursery.start_soon(self._debit, request, bet, deadline, debits, refusals)
        try:
            await self.inbox.ask(
                Debited(accepted, debits, refusals), timeout=self.services.settings.request_timeout
            )
        except OutcomeUnknown:
            return  # the pool took it: it answers them, or the supervisor does
        except DomainError as error:  # never taken: nothing was staked
            self.reserved.end_debits(bet for _, bet in accepted)
            await self._give_up(debits.values())
            for request, _ in accepted:
                request.fail(error)

    async def _debit(
        self,
        request: Request,
        bet: Bet,
        deadline: float,
        debits: dict[str, remote.Debit],
        refusals: dict[str, DomainError],
    ) -> None:
        """One bet's debit; a storage failure before the operator was asked refuses it."""
        pool = self.pool
        entry = {
            "user_id": bet.user_id,
            "pool_id": pool.id,
            "bet_id": bet.id,
            "currency": pool.currency,
            "amount": bet.amount,
            "potential": None,
        }
        try:
            debits[bet.id] = await remote.debit(self.services, [entry], request.body.ip, deadline)
        except DomainError as error:
            refusals[bet.id] = error

    async def _debited(self, body: Debited) -> None:
        """The operator answered: commit the debited bets the pool still takes, answer
        the others (an operator's refusal, an unknown outcome, a pool that stopped taking
        bets meanwhile: their debits are given up, so the worker refunds them)."""
        self.reserved.end_debits(bet for _, bet in body.accepted)
        debited: Accepted = []
        for request, bet in body.accepted:
            refusal = body.refusals.get(bet.id) or self._debit_refusal(body.debits[bet.id], bet)
            if refusal is None:
                debited.append((request, bet))
                continue
            if bet.id in body.debits:
                await self._give_up([body.debits[bet.id]])
            request.fail(refusal)
        if debited:
            await self._stake_debited(debited, body.debits)

    async def _stake_debited(self, debited: Accepted, debits: dict[str, remote.Debit]) -> None:
        """``_stake``, for requests the kit does not answer (it serves ``Debited``): a
        failure answers them here, and what must stop the actor is raised on. A
        cancellation answers nothing: they stay taken, and the supervisor answers them."""
        try:
            await self._stake(debited, {bet.id: debits[bet.id] for _, bet in debited})
        except Exception as error:
            reply = (
                error
                if isinstance(error, DomainError)
                else DomainError("INTERNAL_ERROR", "The server failed to process this request.")
            )
            for request, _ in debited:
                request.fail(reply)
            if isinstance(error, OutcomeUnknown) or not isinstance(error, DomainError):
                raise

    def _debit_refusal(self, debit: remote.Debit, bet: Bet) -> DomainError | None:
        """Why a debited bet is not placed: the operator refused or did not answer, or
        the pool stopped taking bets (an event, a block, its end) while it was asked."""
        if debit.answer is remote.Answer.REFUSED:
            return DomainError("INSUFFICIENT_FUNDS", debit.reason)
        if debit.answer is not remote.Answer.DONE:
            return DomainError(
                "REQUEST_TIMED_OUT",
                "The operator's wallet did not answer: the bet is not placed (money "
                "it took is given back).",
            )
        if self.pending is not None:
            return DomainError("POOL_CLOSED", "An event has resolved this pool.")
        return self.pool.refusal(bet.placed_at)

    async def _give_up(self, debits: Iterable[remote.Debit]) -> None:
        for debit in debits:
            await remote.give_up(self.services, debit.key)

    def _stake_items(self, accepted: Accepted, debits: dict[str, remote.Debit]) -> list[StakeItem]:
        """The wallet's items for ``accepted``. The first also records how far the 360s
        got, when that moved: the watermark rides on a bet commit, not on one of its own."""
        pool = self.pool
        items = [
            stake_item(pool, bet, tuple(debits[bet.id].changes) if bet.id in debits else ())
            for _, bet in accepted
        ]
        if pool.broadcast_bets > self.recorded_broadcast:
            first = items[0]
            items[0] = dataclasses.replace(first, changes=(*first.changes, broadcast_change(pool)))
        return items

    # -- bets held for the pool's delay (decisions §11) ------------------------------

    async def _hold_bets(self, accepted: Accepted) -> None:
        """Hold checked bets for the delay: their stakes become exposure and they are
        stored, in one wallet commit; each request is answered with a ``BetHeld``."""
        pool = self.pool
        due_at = self.now + pool.rules.bet_delay_ms
        items = [held_item(pool, bet, due_at) for _, bet in accepted]
        results = await self.services.ask_wallet(Hold(items))
        for (request, bet), refusal in zip(accepted, results, strict=True):
            if refusal is not None:
                request.fail(refusal)
                continue
            decision = Request(bet)
            self.inbox.adopt(decision)  # answered ACTOR_RESTARTED if this actor dies
            self.delayed[bet.id] = Delayed(bet, due_at, decision)
            request.reply(BetHeld(pool.id, bet.id, due_at, decision))

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
        pool = self.pool
        placed = [(d, dataclasses.replace(d.bet, placed_at=d.due_at)) for d in due]
        items = [placed_item(pool, bet) for _, bet in placed]
        results = await self.services.ask_wallet(Stakes(items))
        for (delayed, bet), refused in zip(placed, results, strict=True):
            if refused is not None:
                await self._refuse_delayed([delayed], refused)
                continue
            pool.add(bet)
            del self.delayed[bet.id]
            if delayed.decision is not None:
                delayed.decision.reply(
                    BetPlaced(pool.id, bet.id, bet.target, bet.amount, pool.currency, pool.exponent)
                )

    async def _refuse_delayed(self, delayed: list[Delayed], refusal: DomainError) -> None:
        """Give held bets' stakes back (nothing was taken) and answer them ``refusal``."""
        if not delayed:
            return
        items = [unheld_item(self.pool, d.bet) for d in delayed]
        await self.services.ask_wallet(Unhold(items))
        for d in delayed:
            del self.delayed[d.bet.id]
            if d.decision is not None:
                d.decision.fail(refusal)

    # -- betslips ---------------------------------------------------------------------

    async def _reserve(self, body: Reserve) -> Reserved:
        """Check a slip's bets as bets are checked; hold them all, or none when any is
        refused (the refusals go back to the desk)."""
        pool, now = self.pool, self.now
        held: list[tuple[int, Bet, StakeItem]] = []
        refusals: list[tuple[int, DomainError]] = []
        chosen, staked = self._backing()
        waiting = sum(staked.values())
        for stake in body.stakes:
            try:
                self._slip_refusal(body)
                target, minor = pool.check_bet(
                    body.user_id,
                    stake.target,
                    stake.stake,
                    now,
                    chosen.get(body.user_id),
                    staked.get(body.user_id, 0),
                    waiting,
                )
            except DomainError as error:
                refusals.append((stake.index, error))
                continue
            chosen[body.user_id] = target
            staked[body.user_id] = staked.get(body.user_id, 0) + minor
            waiting += minor
            bet = Bet(str(uuid.uuid4()), body.user_id, target, minor, now)
            held.append((stake.index, bet, stake_item(pool, bet, columns=stake.columns)))
        if held and not refusals:
            self.reserved.hold(body.slip_key, body.user_id, (bet for _, bet, _ in held), body.until)
        return Reserved(pool.id, pool.exponent, held, refusals)

    def _slip_refusal(self, body: Reserve) -> None:
        """Raises what refuses every bet of the slip here: INVALID_TARGET (another game
        or action), POOL_CLOSED (an event resolved it), INVALID_BET_DETAILS (a delay)."""
        pool = self.pool
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
            self.reserved.due_now(slip_key, None, trio.current_time())
            raise

    async def _decide_held(self, only_expired: bool) -> None:
        """Learn from storage what became of reserved slips whose desk did not say (gone,
        or slower than ``until``): the wallet answers in order after its commits, so once
        it has answered a ``Sync`` every slip it took is in storage or never will be."""
        keys = self.reserved.due(trio.current_time() if only_expired else None)
        if not keys:
            return
        await self.services.ask_wallet(Sync())
        pool_id = self.pool.id
        placed = await self.services.storage.read(
            lambda db: pools_store.placed_slips(db, pool_id, keys)
        )
        for key in keys:
            slip = self.reserved.slips[key]
            if key in placed:
                for bet in slip.bets or await self._stored_slip_bets(key):
                    self.pool.add(bet)
            self.reserved.release(key)

    # -- block / allow ----------------------------------------------------------------

    async def _schedule_block(self, block: bool, at: int | None) -> PoolBlocked | PoolAllowed:
        """Block or allow now, or at ``at`` if that is later. Raises POOL_CLOSED."""
        self._require_open()
        if at is not None and at > self.now:
            changed = self.pool.scheduled(block, at)
            await self.services.storage.commit([Upsert("pools", pool_row(changed))])
            self.pool = changed
            key = "blocked_at" if block else "allowed_at"
            return (PoolBlocked if block else PoolAllowed)(
                {key: at, "pool_id": changed.id, "scheduled": True}
            )
        return await self._apply_block(block)

    async def _apply_block(self, block: bool, due: int = 0) -> PoolBlocked | PoolAllowed:
        """Block or allow now; a timer passes its ``due`` time, the earliest stamp."""
        now = max(self.now, due)
        changed = self.pool.blocked_now(block, now)
        await self.services.storage.commit([Upsert("pools", pool_row(changed))])
        self.pool = changed
        event = (
            PoolBlocked({"blocked_at": now, "pool_id": changed.id})
            if block
            else PoolAllowed({"allowed_at": now, "pool_id": changed.id})
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
            pool.successor(str(uuid.uuid4()), now)
            if recreate and pool.recreate_on_end and winner is not None
            else None
        )
        outcome, changes = await self.services.storage.off_loop(
            settlement_changes, pool, winner, status, now, happened_at, successor
        )
        if self.services.operator is not None and pool.bets:
            changes.append(remote.winners_call(pool.id, now))  # /winners, from the outbox
        await self._commit_settlement(
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

    async def _commit_settlement(self, settle: Settle) -> None:
        """Raises OutcomeUnknown when a betslip reached the pool meanwhile: the pool is
        rebuilt from storage (with it) and settles again."""
        try:
            await self.services.ask_wallet(settle)
        except DomainError as error:
            if error.code == "POOL_CHANGED":
                raise OutcomeUnknown(
                    "ACTOR_RESTARTED", "The pool took a betslip while settling; try again."
                ) from error
            raise

    async def _announce(self) -> PoolSettled:
        """Publish the result, then record that it went out; a restart before that record
        publishes it again rather than never."""
        pool = self.pool
        event = result_event(pool)
        self._publish(event)
        try:
            await self.services.storage.commit(
                [Upsert("pools", pool_row(dataclasses.replace(pool, announced=True)))]
            )
            pool.announced = True
        except DomainError:
            log.warning("pool %s: result sent, not yet recorded as sent", pool.id)
        return event

    # -- timers -----------------------------------------------------------------------

    def next_deadline(self) -> float:
        clock = self.services.clock
        deadlines = [clock.deadline_for(at) for at, _ in self.pool.timers()]
        if self.pool.has_unsent_bets:
            deadlines.append(self.last_flush + self.services.settings.distribution_interval)
        if self.pending is not None and self.pool.is_open:
            # the game settles us with ResolveByEvent; if it cannot, we do it ourselves
            deadlines.append(self.pending_since + self.services.settings.request_timeout)
        deadlines += self.reserved.deadlines()
        deadlines += [clock.deadline_for(d.due_at) for d in self.delayed.values()]
        return min(deadlines, default=math.inf)

    async def on_deadline(self) -> None:
        # compared on trio's clock, as the deadline was: epoch ms rounded down could put
        # "now" a millisecond short of a deadline that has passed, and spin the loop
        now = trio.current_time()
        await self._decide_held(only_expired=True)
        await self._decide_delayed()
        await self._fire_pool_timers(now)
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

    async def _fire_pool_timers(self, now: float) -> None:
        """The pool's own timers due by ``now`` (trio time), earliest first."""
        clock = self.services.clock
        for at, name in sorted(self.pool.timers()):
            if clock.deadline_for(at) > now or not self.pool.is_open:
                continue
            if name == "expire":
                await self._settle(NONE, PoolStatus.EXPIRED, due=at)
            elif name == "fail_safe":
                await self._fail_safe(at)
            else:
                await self._apply_block(name == "block", due=at)

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
                self.pending.winning_target,
                PoolStatus.RESOLVED,
                happened_at=self.pending.happened_at,
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


#: The pool's protocol, message type -> its handler (``PlaceBet`` is served in batches).
HANDLERS = Handlers(
    "A pool",
    {
        GetDistribution: PoolActor._distribution,
        Describe: PoolActor._describe,
        Info: PoolActor._info,
        Announcement: PoolActor._announcement,
        Reserve: PoolActor._reserve,
        Release: PoolActor._release,
        Block: PoolActor._block,
        Allow: PoolActor._block,
        HaltForEvent: PoolActor._halt,
        ResolveByEvent: PoolActor._resolve_by_event,
        ResolveByHand: PoolActor._resolve_by_hand,
        Void: PoolActor._void,
        CloseForGame: PoolActor._close_for_game,
        Debited: PoolActor._debited,
    },
)
