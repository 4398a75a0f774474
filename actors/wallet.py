"""The wallet actor: the one owner of balances and of the double-entry ledger.

Every movement of money is a transaction of ledger lines that sum to zero, written in
the same commit as whatever it pays for (a bet row, a settled pool). Balances in memory
are only updated after that commit, so a reply never confirms money that is not saved.
The database keeps each wallet's total too (the ``balances`` table, adjusted in the same
commit) and refuses an overdraft itself, should memory ever allow one.

Requests that queue up while a commit runs are handled as one batch and one commit.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from domain import ledger
from domain.errors import DomainError, ErrorCode
from domain.limits import (
    LONGEST_MS,
    Flow,
    Flows,
    FlowSource,
    Kind,
    Period,
    PlayerLimits,
    Slot,
    exclusion_end,
)
from domain.money import check_deposit, exponent_of, to_wire
from kit.clock import WallClock
from kit.runtime import Actor, Ask, Handlers, Mailbox, Request
from storage import limits as stored_limits
from storage import wallet as wallet_store
from storage.actor import Storage
from storage.changes import Change, Insert, Update
from storage.database import Database

log = logging.getLogger(__name__)
Key = tuple[int, str]  # (user_id, currency)


@dataclass(frozen=True, slots=True)
class Balance:
    current: int
    available: int
    exposure: int


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    """Told to a user's connections after a commit moved their money (event)."""

    currency: str
    balance: Balance


# -- messages -------------------------------------------------------------------------
# Each declares its reply (``Ask[...]``) and, under ``Raises:``, the error codes it can fail
# with besides those of every request (``REQUEST_TIMED_OUT``, ``ACTOR_RESTARTED``,
# ``UNAVAILABLE``, ``INTERNAL_ERROR``). A refusal inside a batch of stakes is an answer (one
# DomainError-or-None per item), not an error.


@dataclass(frozen=True, slots=True)
class MoneyMoved:
    """A deposit or withdrawal taken; ``duplicate``: its reference was seen before (with
    the same user, currency and amount), so nothing moved this time."""

    duplicate: bool
    balance: Balance


@dataclass(frozen=True, slots=True)
class Deposit(Ask[MoneyMoved]):
    """Pay money in. Raises: REMOTE_WALLET, IDEMPOTENCY_CONFLICT (the reference was used
    for another deposit), USER_BLOCKED (self-excluded), LIMIT_REACHED (a deposit limit),
    INVALID_AMOUNT (past the most a balance may hold)."""

    user_id: int
    currency: str
    amount: int
    reference: str


@dataclass(frozen=True, slots=True)
class Withdraw(Ask[MoneyMoved]):
    """Take money out. Raises: REMOTE_WALLET, IDEMPOTENCY_CONFLICT, USER_BLOCKED (blocked),
    INSUFFICIENT_FUNDS."""

    user_id: int
    currency: str
    amount: int
    reference: str


@dataclass(frozen=True, slots=True)
class GetBalances(Ask["dict[str, Balance]"]):
    """The user's balance in each currency they hold. Raises: nothing of its own."""

    user_id: int


@dataclass(frozen=True, slots=True)
class Sync(Ask[None]):
    """Answered once every request queued before it is committed: a restarted actor
    sends it before reading storage, so what it asked of the wallet is there to read.
    Raises: nothing of its own."""


@dataclass(frozen=True, slots=True)
class SetBlocked(Ask[None]):
    """Block (or unblock) a user's bets and withdrawals. Raises: nothing of its own."""

    user_id: int
    blocked: bool


@dataclass(frozen=True, slots=True)
class SetCooldown(Ask[None]):
    """No bets from the user until ``until`` (epoch ms; one in the past lifts it).
    Raises: nothing of its own."""

    user_id: int
    until: int


@dataclass(frozen=True, slots=True)
class GetLimits(Ask["LimitsView"]):
    """A player's limits in one currency. Raises: nothing of its own."""

    user_id: int
    currency: str


@dataclass(frozen=True, slots=True)
class SetLimits(Ask["LimitsView"]):
    """Ask for limits (None: remove); the slots not named stay. A lower or first limit
    applies at once, a raise or removal a day later (decisions §12). The answer is the
    ``LimitsView`` after the change. Raises: nothing of its own (the amounts come checked)."""

    user_id: int
    currency: str
    wanted: dict[Slot, int | None]


@dataclass(frozen=True, slots=True)
class Exclude(Ask["Excluded"]):
    """Self-exclusion: no bets or deposits until ``until`` (epoch ms), at least a day
    ahead and never sooner than one in force. Raises: INVALID_PARAMETER."""

    user_id: int
    until: int


@dataclass(frozen=True, slots=True)
class Excluded:
    user_id: int
    until: int


@dataclass(frozen=True, slots=True)
class LimitsView:
    """A player's limits in one currency as they stand at ``now``, what each still
    allows, and the end of their self-exclusion (None: none in force)."""

    user_id: int
    currency: str
    now: int
    limits: PlayerLimits
    left: dict[Kind, dict[Period, int]]
    excluded_until: int | None


@dataclass(frozen=True, slots=True)
class StakeItem:
    """Move ``amount`` from the user's wallet into a pool's escrow, with ``changes``
    (the bet rows) committed in the same transaction."""

    user_id: int
    currency: str
    amount: int
    pool_id: str
    changes: Sequence[Change] = ()
    #: the stake was held (``Hold``) and is already out of the available balance
    held: bool = False


@dataclass(frozen=True, slots=True)
class Stakes(Ask["list[DomainError | None]"]):
    """A batch of stakes; the answer is one DomainError-or-None per item, in order (each
    USER_BLOCKED, INVALID_STAKE, LIMIT_REACHED or INSUFFICIENT_FUNDS). Raises: nothing
    of its own."""

    items: Sequence[StakeItem]


@dataclass(frozen=True, slots=True)
class Hold(Ask["list[DomainError | None]"]):
    """Bets held for a pool's bet delay (decisions §11): each stake leaves the available
    balance for the exposure now, with ``changes`` (the stored held bet), and no ledger
    line until it is placed (``Stakes`` of ``held`` items) or given back (``Unhold``).
    The answer is one DomainError-or-None per item, in order (as ``Stakes``'s). Raises:
    nothing of its own."""

    items: Sequence[StakeItem]


@dataclass(frozen=True, slots=True)
class Unhold(Ask[None]):
    """Held bets refused at the end of their delay: their stakes are available again and
    ``changes`` (deleting the stored held bets) commit with it. Nothing was taken.
    Raises: nothing of its own."""

    items: Sequence[StakeItem]


@dataclass(frozen=True, slots=True)
class Screen(Ask["list[DomainError | None]"]):
    """Remote wallet mode, before the operator is asked to debit: would these stakes be
    taken (blocked, excluded, limits)? Answered as ``Stakes`` is; changes nothing (the
    ``Stakes`` or ``PlaceSlip`` that follows is judged again). Raises: nothing of its own."""

    items: Sequence[StakeItem]


@dataclass(frozen=True, slots=True)
class PlaceSlip(Ask[None]):
    """A betslip's stakes, all or none, with the slip's own rows and checks, in a
    transaction of its own (a check that fails refuses this slip, nothing else). Judged
    after ``not_after`` (trio time) it is refused unplaced: the pools holding its bets
    stop waiting for it then.

    Raises: REQUEST_TIMED_OUT (judged too late: not placed), USER_BLOCKED, INVALID_STAKE,
    INSUFFICIENT_FUNDS, LIMIT_REACHED, and the code of a ``Check`` that fails in the
    commit (a pool closed, an event pending, a betId reused).
    """

    user_id: int
    items: Sequence[StakeItem]
    changes: Sequence[Change]
    not_after: float


@dataclass(frozen=True, slots=True)
class Settle(Ask[None]):
    """Pay a pool out: ``lines`` leave the escrow at zero, ``released`` is the exposure
    (stake) each user gets back from this pool, ``changes`` mark the pool settled.
    Raises: INTERNAL_ERROR (lines that do not sum to zero), and the code of a failing
    ``Check`` (the pool's bets changed since it looked)."""

    tx_id: str
    kind: str
    lines: Sequence[ledger.Line]
    released: dict[Key, int]
    changes: Sequence[Change] = ()


@dataclass
class _Pending:
    """What a batch will change, applied to memory only after its commit."""

    changes: list[Change] = field(default_factory=list)
    lines: list[ledger.Line] = field(default_factory=list)  # every transaction's, in order
    available: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    exposure: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    references: dict[str, str] = field(default_factory=dict)  # added by this batch
    stored_references: dict[str, str] = field(default_factory=dict)  # read ahead from SQLite
    blocked: dict[int, bool] = field(default_factory=dict)
    cooldowns: dict[int, int] = field(default_factory=dict)
    exclusions: dict[int, int] = field(default_factory=dict)
    limits: dict[Key, PlayerLimits] = field(default_factory=dict)
    #: flows of limited players' money in this batch, and the history (read ahead from
    #: SQLite) of those this batch sets a first limit for
    flows: dict[Key, list[Flow]] = field(default_factory=lambda: defaultdict(list))
    histories: dict[Key, Flows] = field(default_factory=dict)
    replies: list[tuple[Request, Any]] = field(default_factory=list)


class WalletActor(Actor):
    def __init__(
        self,
        inbox: Mailbox,
        storage: Storage,
        clock: WallClock,
        *,
        available: dict[Key, int],
        exposure: dict[Key, int],
        blocked: set[int],
        cooldowns: dict[int, int],
        exclusions: dict[int, int],
        limits: dict[Key, PlayerLimits],
        flows: dict[Key, Flows],
        on_balance: Callable[[int, BalanceChanged], None] = lambda *_: None,
        remote: bool = False,
    ) -> None:
        super().__init__(inbox)
        #: remote wallet mode (seed 004): stakes come debited from the operator's wallet
        #: and credits go back to it; tote keeps exposure, not balances
        self.remote = remote
        self.storage = storage
        self.clock = clock
        self.available = defaultdict(int, available)
        self.exposure = defaultdict(int, exposure)
        self.blocked = blocked
        self.cooldowns = cooldowns  # user -> no bets before this epoch ms
        self.exclusions = exclusions  # user -> no bets or deposits before this epoch ms
        self.limits = limits  # the players' limits (decisions §12)
        #: what counts toward them, for each (user, currency) in ``limits`` only
        self.flows = flows
        self.on_balance = on_balance
        self.currencies: dict[int, set[str]] = defaultdict(set)  # user -> currencies held
        for user_id, currency in [*self.available, *self.exposure]:
            self.currencies[user_id].add(currency)

    @classmethod
    async def load(
        cls,
        inbox: Mailbox,
        storage: Storage,
        clock: WallClock,
        on_balance: Callable[[int, BalanceChanged], None] = lambda *_: None,
        remote: bool = False,
    ) -> WalletActor:
        """Rebuild balances from the ledger and the unresolved bets."""
        now = clock.now_ms()
        state = await storage.read(lambda db: _load_state(db, now))
        return cls(inbox, storage, clock, on_balance=on_balance, remote=remote, **state)

    # -- the loop: every request queued together is judged together, one commit ------

    def batch_key(self, body: Any) -> Hashable:
        # a slip or a settlement carries checks that may refuse it: alone, so a refusal
        # never takes anyone else's request down with it
        return id(body) if isinstance(body, PlaceSlip | Settle) else "wallet"

    async def handle_batch(self, requests: list[Request]) -> None:
        pending = await self._judge(requests)
        try:
            await self._commit(pending)
        except DomainError as error:
            if error.code != ErrorCode.INSUFFICIENT_FUNDS:
                raise  # the kit answers the batch; unknown outcomes have the wallet rebuilt
            # the database refused an overdraft memory allowed: memory was wrong or another
            # writer spent the money. Judged again on what is stored, only the requests
            # that really overdraw are refused; a second refusal fails the batch.
            log.warning("the database refused an overdraft the wallet allowed: reloading")
            await self._reload_money()
            pending = await self._judge([request for request, _ in pending.replies])
            await self._commit(pending)
        touched = self._apply(pending)
        for request, result in pending.replies:
            request.reply(result() if callable(result) else result)
        for user_id, currency in touched:
            self.on_balance(user_id, BalanceChanged(currency, self.balance(user_id, currency)))
        await _let_answered_pools_send_again()

    async def _judge(self, requests: list[Request]) -> _Pending:
        """Each request judged against memory and what the batch did before it; a refused
        one is answered now. Changes nothing in memory (``_apply`` does, after COMMIT)."""
        pending = _Pending(
            stored_references=await self._read_references(requests),
            histories=await self._read_histories(requests),
        )
        for request in requests:
            try:
                result = self._handle(request.body, pending)
            except DomainError as error:
                request.fail(error)
            else:
                pending.replies.append((request, result))
        return pending

    async def _commit(self, pending: _Pending) -> None:
        """The batch's changes, then the stored balances its lines move (one adjustment a
        wallet, in one order for every commit).

        Raises:
            INSUFFICIENT_FUNDS: the database refused a wallet's overdraft (nothing saved).
        """
        await self.storage.commit([*pending.changes, *wallet_store.balance_changes(pending.lines)])

    async def _reload_money(self) -> None:
        """Available balances and exposure as stored, in place of what memory holds."""
        available, exposure = await self.storage.read(
            lambda db: _money(wallet_store.wallet_rows(db))
        )
        self.available = defaultdict(int, available)
        self.exposure = defaultdict(int, exposure)
        for user_id, currency in [*available, *exposure]:
            self.currencies[user_id].add(currency)

    def _apply(self, pending: _Pending) -> set[Key]:
        for key, delta in pending.available.items():
            self.available[key] += delta
        for key, delta in pending.exposure.items():
            self.exposure[key] += delta
        for user_id, blocked in pending.blocked.items():
            (self.blocked.add if blocked else self.blocked.discard)(user_id)
        self.cooldowns.update(pending.cooldowns)
        self.exclusions.update(pending.exclusions)
        self.limits.update(pending.limits)
        self.flows.update(pending.histories)
        now = self.clock.now_ms()
        for key, flows in pending.flows.items():
            log = self.flows.setdefault(key, Flows())
            for flow in flows:
                log.add(flow)
            log.forget(now)
        touched = set(pending.available) | set(pending.exposure)
        for user_id, currency in touched:
            self.currencies[user_id].add(currency)
        return touched

    # -- reads ------------------------------------------------------------------------

    def balance(self, user_id: int, currency: str) -> Balance:
        available = self.available.get((user_id, currency), 0)
        exposure = self.exposure.get((user_id, currency), 0)
        return Balance(available + exposure, available, exposure)

    def balances(self, user_id: int) -> dict[str, Balance]:
        return {c: self.balance(user_id, c) for c in sorted(self.currencies.get(user_id, ()))}

    # -- handlers: validate against memory plus this batch, record the changes --------

    def _handle(self, body: Any, pending: _Pending) -> Any:
        """Judge one request of the batch into ``pending``: its answer (or a function
        that makes it once the batch committed), or a DomainError refusing it alone."""
        return self.handlers.of(body)(self, body, pending)

    # -- the handlers (``handlers`` at the end of the class) --------------------------

    def _get_balances(self, body: GetBalances, _: _Pending) -> Callable[[], dict[str, Balance]]:
        return lambda: self.balances(body.user_id)

    def _sync(self, _: Sync, __: _Pending) -> None:
        return None  # answered after the commit of everything queued before it

    def _on_move_money(
        self, body: Deposit | Withdraw, pending: _Pending
    ) -> Callable[[], MoneyMoved]:
        if self.remote:
            raise DomainError(
                "REMOTE_WALLET",
                "The operator keeps the money in remote wallet mode: no deposits or "
                "withdrawals here.",
            )
        return self._move_money(body, pending)

    def _set_blocked(self, body: SetBlocked, pending: _Pending) -> None:
        pending.blocked[body.user_id] = body.blocked
        pending.changes.append(
            Update("users", {"id": body.user_id}, {"blocked": int(body.blocked)})
        )

    def _set_cooldown(self, body: SetCooldown, pending: _Pending) -> None:
        pending.cooldowns[body.user_id] = body.until
        pending.changes.append(
            Update("users", {"id": body.user_id}, {"cooldown_until": body.until})
        )

    def _stakes(self, body: Stakes, pending: _Pending) -> list[DomainError | None]:
        return [self._stake(item, pending) for item in body.items]

    def _holds(self, body: Hold, pending: _Pending) -> list[DomainError | None]:
        return [self._hold(item, pending) for item in body.items]

    def _unholds(self, body: Unhold, pending: _Pending) -> None:
        for item in body.items:
            self._unhold(item, pending)

    def _screen(self, body: Screen, _: _Pending) -> list[DomainError | None]:
        scratch = _Pending()  # judged, never committed
        return [self._stake(item, scratch) for item in body.items]

    def _get_limits(self, body: GetLimits, _: _Pending) -> Callable[[], LimitsView]:
        return lambda: self.limits_view(body.user_id, body.currency)

    def _exclude(self, body: Exclude, pending: _Pending) -> Excluded:
        user_id = body.user_id
        current = pending.exclusions.get(user_id, self.exclusions.get(user_id, 0))
        end = exclusion_end(current, body.until, self.clock.now_ms())
        pending.exclusions[user_id] = end
        pending.changes.append(stored_limits.exclusion_change(user_id, end))
        return Excluded(user_id, end)

    async def _read_references(self, batch: list[Request]) -> dict[str, str]:
        """Idempotency references live in SQLite, not memory (they only grow): read the
        ones this batch names, in one query, before judging it."""
        keys = [_reference_key(r.body) for r in batch if isinstance(r.body, Deposit | Withdraw)]
        if not keys:
            return {}
        return await self.storage.read(lambda db: wallet_store.reference_fingerprints(db, keys))

    async def _read_histories(self, batch: list[Request]) -> dict[Key, Flows]:
        """The flows of the last month of each (user, currency) this batch sets a first
        limit for: a new limit counts what was already deposited or lost."""
        keys = {
            (r.body.user_id, r.body.currency)
            for r in batch
            if isinstance(r.body, SetLimits)
            and r.body.wanted
            and (r.body.user_id, r.body.currency) not in self.flows
        }
        if not keys:
            return {}
        since = self.clock.now_ms() - LONGEST_MS
        read = await self.storage.read(lambda db: stored_limits.load_flows(db, keys, since))
        return {key: Flows(flows) for key, flows in read.items()}

    def _limits_of(self, key: Key, pending: _Pending) -> PlayerLimits | None:
        return pending.limits.get(key, self.limits.get(key))

    def _flows_of(self, key: Key, pending: _Pending) -> FlowSource:
        known = pending.histories.get(key) or self.flows.get(key) or Flows()
        return known.plus(pending.flows.get(key, ()))

    def _count(self, key: Key, kind: Kind, amount: int, pending: _Pending) -> None:
        """Remember money that counts toward a limit, for the players who have one (or
        get their first in this batch: their history was read ahead of it)."""
        if key in self.flows or key in pending.histories:
            pending.flows[key].append(Flow(self.clock.now_ms(), kind, amount))

    def _limit_refusal(
        self, key: Key, kind: Kind, amount: int, pending: _Pending
    ) -> DomainError | None:
        """LIMIT_REACHED when ``amount`` more would pass a limit of ``kind`` in force."""
        limits = self._limits_of(key, pending)
        if limits is None:
            return None
        breach = limits.breach(self._flows_of(key, pending), kind, amount, self.clock.now_ms())
        if breach is None:
            return None
        exp = exponent_of(key[1])
        limit, left = to_wire(breach.limit, exp), to_wire(breach.left, exp)
        return DomainError(
            "LIMIT_REACHED",
            f"Your {breach.kind} limit is {limit} {key[1]} a {breach.period}; "
            f"{left} is left of it.",
            limit=breach.kind.value,
            period=breach.period.value,
            left=left,
        )

    def _set_limits(self, body: SetLimits, pending: _Pending) -> Callable[[], LimitsView]:
        key = (body.user_id, body.currency)
        current = self._limits_of(key, pending) or PlayerLimits()
        changed = current.changed(body.wanted, self.clock.now_ms())
        if body.wanted:
            pending.limits[key] = changed
            pending.changes.extend(
                stored_limits.limit_changes(body.user_id, body.currency, changed, body.wanted)
            )
        return lambda: self.limits_view(body.user_id, body.currency)

    def limits_view(self, user_id: int, currency: str) -> LimitsView:
        """A player's limits in ``currency`` as they stand now (memory, after commits)."""
        now = self.clock.now_ms()
        limits = self.limits.get((user_id, currency), PlayerLimits())
        until = self.exclusions.get(user_id, 0)
        left = limits.left(self.flows.get((user_id, currency)) or Flows(), now)
        return LimitsView(user_id, currency, now, limits, left, until if until > now else None)

    def _available(self, key: Key, pending: _Pending) -> int:
        return self.available.get(key, 0) + pending.available.get(key, 0)

    def _move_money(self, body: Deposit | Withdraw, pending: _Pending) -> Callable[[], MoneyMoved]:
        kind = "deposit" if isinstance(body, Deposit) else "withdrawal"
        ref_key = _reference_key(body)
        fingerprint = f"{body.user_id}:{body.currency}:{body.amount}"
        seen = pending.references.get(ref_key) or pending.stored_references.get(ref_key)
        key = (body.user_id, body.currency)
        if seen is not None:
            if seen != fingerprint:
                raise DomainError(
                    "IDEMPOTENCY_CONFLICT",
                    f"Reference {body.reference!r} was already used for a different {kind}.",
                )
            return lambda: MoneyMoved(True, self.balance(*key))
        if isinstance(body, Withdraw):
            if body.user_id in self.blocked or pending.blocked.get(body.user_id):
                raise DomainError("USER_BLOCKED", "This user is blocked.")
            if self._available(key, pending) < body.amount:
                raise DomainError(
                    "INSUFFICIENT_FUNDS", "The available balance does not cover this withdrawal."
                )
            lines = ledger.transfer(
                ledger.wallet(body.user_id), ledger.OPERATOR, body.currency, body.amount
            )
            pending.available[key] -= body.amount
        else:
            self._check_deposit_allowed(body, pending)
            balance = self._available(key, pending) + self.exposure.get(key, 0)
            check_deposit(balance, body.amount, exponent_of(body.currency))
            self._count(key, Kind.DEPOSIT, body.amount, pending)
            lines = ledger.transfer(
                ledger.OPERATOR, ledger.wallet(body.user_id), body.currency, body.amount
            )
            pending.available[key] += body.amount
        pending.references[ref_key] = fingerprint
        self._transaction(pending, uuid.uuid4().hex, kind, lines)
        pending.changes.append(Insert("idempotency", {"key": ref_key, "fingerprint": fingerprint}))
        return lambda: MoneyMoved(False, self.balance(*key))

    def _check_deposit_allowed(self, body: Deposit, pending: _Pending) -> None:
        """USER_BLOCKED while the player is self-excluded, LIMIT_REACHED past a deposit
        limit (decisions §12)."""
        refusal = self._excluded(body.user_id, pending)
        if refusal is None:
            refusal = self._limit_refusal(
                (body.user_id, body.currency), Kind.DEPOSIT, body.amount, pending
            )
        if refusal is not None:
            raise refusal

    def _stake(self, item: StakeItem, pending: _Pending) -> DomainError | None:
        key = (item.user_id, item.currency)
        refusal = self._stake_refusal(item, pending)
        if refusal is not None:
            return refusal
        lines = ledger.transfer(
            ledger.wallet(item.user_id), ledger.escrow(item.pool_id), item.currency, item.amount
        )
        if self.remote:  # debited by the operator before we were asked: it arrives here
            lines = [
                *ledger.transfer(
                    ledger.OPERATOR, ledger.wallet(item.user_id), item.currency, item.amount
                ),
                *lines,
            ]
        elif not item.held:  # a held stake left the available balance when it was held
            refusal = self._take_available(key, item.amount, pending)
            if refusal is not None:
                return refusal
        if not item.held:
            pending.exposure[key] += item.amount
        self._count(key, Kind.LOSS, item.amount, pending)
        self._transaction(pending, uuid.uuid4().hex, "stake", lines)
        pending.changes.extend(item.changes)
        return None

    def _hold(self, item: StakeItem, pending: _Pending) -> DomainError | None:
        """Hold a delayed bet's stake as exposure (``Hold``); refused as a stake is. The
        loss limit is judged now and again when the bet is placed (its stake counts
        toward the limit from then: a held bet has no ledger line yet)."""
        key = (item.user_id, item.currency)
        refusal = self._stake_refusal(item, pending)
        if refusal is None and not self.remote:
            refusal = self._take_available(key, item.amount, pending)
        if refusal is not None:
            return refusal
        pending.exposure[key] += item.amount
        pending.changes.extend(item.changes)
        return None

    def _stake_refusal(self, item: StakeItem, pending: _Pending) -> DomainError | None:
        """Why this stake may not be taken (``_may_stake``, then the loss limit), or None."""
        refusal = self._may_stake(item, pending)
        if refusal is None:
            key = (item.user_id, item.currency)
            refusal = self._limit_refusal(key, Kind.LOSS, item.amount, pending)
        return refusal

    def _take_available(
        self, key: tuple[int, str], amount: int, pending: _Pending
    ) -> DomainError | None:
        """Move ``amount`` out of the available balance, or INSUFFICIENT_FUNDS (nothing moved)."""
        if self._available(key, pending) < amount:
            return DomainError(
                "INSUFFICIENT_FUNDS", "Your available balance does not cover this stake."
            )
        pending.available[key] -= amount
        return None

    def _unhold(self, item: StakeItem, pending: _Pending) -> None:
        key = (item.user_id, item.currency)
        if not self.remote:
            pending.available[key] += item.amount
        pending.exposure[key] -= item.amount
        pending.changes.extend(item.changes)

    def _may_stake(self, item: StakeItem, pending: _Pending) -> DomainError | None:
        """``_may_bet`` for the item's user, and ``INVALID_STAKE`` for a stake not positive."""
        refusal = self._may_bet(item.user_id, pending)
        if refusal is None and item.amount <= 0:
            return DomainError("INVALID_STAKE", "A stake must be positive.", parameter="amount")
        return refusal

    def _may_bet(self, user_id: int, pending: _Pending) -> DomainError | None:
        """USER_BLOCKED for a blocked user, one in a cool-down (decisions §6) or one who
        excluded themselves (§12)."""
        if user_id in self.blocked or pending.blocked.get(user_id):
            return DomainError("USER_BLOCKED", "You are blocked from betting.")
        until = pending.cooldowns.get(user_id, self.cooldowns.get(user_id, 0))
        if until > self.clock.now_ms():
            return DomainError("USER_BLOCKED", f"You are in a cool-down until {until}.")
        return self._excluded(user_id, pending)

    def _excluded(self, user_id: int, pending: _Pending) -> DomainError | None:
        until = pending.exclusions.get(user_id, self.exclusions.get(user_id, 0))
        if until > self.clock.now_ms():
            return DomainError(
                "USER_BLOCKED",
                f"You have excluded yourself from betting and deposits until {until}.",
                excluded_until=until,
            )
        return None

    def _place_slip(self, body: PlaceSlip, pending: _Pending) -> None:
        if trio.current_time() > body.not_after:
            raise DomainError("REQUEST_TIMED_OUT", "The betslip was not placed in time.")
        refusal = self._may_bet(body.user_id, pending)
        if refusal is not None:
            raise refusal
        if any(item.amount <= 0 or item.user_id != body.user_id for item in body.items):
            raise DomainError("INVALID_STAKE", "A slip stakes positive amounts of its user.")
        needed: dict[Key, int] = defaultdict(int)
        for item in body.items:
            needed[(item.user_id, item.currency)] += item.amount
        if not self.remote and any(
            self._available(key, pending) < amount for key, amount in needed.items()
        ):
            raise DomainError(
                "INSUFFICIENT_FUNDS", "Your available balance does not cover the slip's stakes."
            )
        for key, amount in needed.items():
            refusal = self._limit_refusal(key, Kind.LOSS, amount, pending)
            if refusal is not None:
                raise refusal
        pending.changes.extend(body.changes)  # its checks read the state before its bets
        # checked above: none of these can be refused, so the slip is all or none
        for item in body.items:
            self._stake(item, pending)

    def _settle(self, body: Settle, pending: _Pending) -> None:
        ledger.check_balanced(body.lines)
        lines = list(body.lines)
        for line in body.lines:
            if line.account.startswith("wallet:"):
                user_id = int(line.account.removeprefix("wallet:"))
                if self.remote:  # credited at the operator (its /winners call): it leaves
                    lines += ledger.transfer(
                        line.account, ledger.OPERATOR, line.currency, line.amount
                    )
                else:
                    pending.available[(user_id, line.currency)] += line.amount
                if line.amount > 0:  # a return: it counts against the period's losses
                    self._count((user_id, line.currency), Kind.LOSS, -line.amount, pending)
        for key, amount in body.released.items():
            pending.exposure[key] -= amount
        self._transaction(pending, body.tx_id, body.kind, lines)
        pending.changes.extend(body.changes)

    def _transaction(
        self, pending: _Pending, tx_id: str, kind: str, lines: Sequence[ledger.Line]
    ) -> None:
        """A transaction's row and ledger lines into the batch; its lines are kept for
        the stored balances they move (``_commit``)."""
        pending.changes.append(
            Insert("transactions", {"id": tx_id, "kind": kind, "created_at": self.clock.now_ms()})
        )
        pending.lines.extend(lines)
        pending.changes.extend(
            Insert(
                "ledger",
                {
                    "tx_id": tx_id,
                    "seq": seq,
                    "account": line.account,
                    "currency": line.currency,
                    "amount": line.amount,
                },
            )
            for seq, line in enumerate(lines)
        )

    handlers = Handlers(
        "The wallet",
        {
            GetBalances: _get_balances,
            Sync: _sync,
            Deposit: _on_move_money,
            Withdraw: _on_move_money,
            SetBlocked: _set_blocked,
            SetCooldown: _set_cooldown,
            Stakes: _stakes,
            Hold: _holds,
            Unhold: _unholds,
            Screen: _screen,
            GetLimits: _get_limits,
            SetLimits: _set_limits,
            Exclude: _exclude,
            PlaceSlip: _place_slip,
            Settle: _settle,
        },
    )


#: Scheduler passes the wallet waits after answering a batch, before it gathers the next:
#: a pool just answered needs two to send the stakes queued behind (its inbox receive
#: and its next batch), so they join the next commit instead of waiting one behind it.
GATHER_PASSES = 3


async def _let_answered_pools_send_again() -> None:
    """Yield ``GATHER_PASSES`` scheduler passes: more bets per transaction (each commit
    costs a thread hop and an fsync whatever it carries)."""
    for _ in range(GATHER_PASSES):
        await trio.lowlevel.checkpoint()


def _reference_key(body: Deposit | Withdraw) -> str:
    kind = "deposit" if isinstance(body, Deposit) else "withdrawal"
    return f"{kind}:{body.reference}"


def _money(rows: wallet_store.WalletRows) -> tuple[dict[Key, int], dict[Key, int]]:
    """Each wallet's available balance and exposure from its stored totals."""
    available = dict(rows.balances)
    exposure = dict(rows.active_stakes)
    for key, amount in rows.held_stakes.items():  # exposure already, not yet in the ledger
        available[key] = available.get(key, 0) - amount
        exposure[key] = exposure.get(key, 0) + amount
    return available, exposure


def _load_state(db: Database, now_ms: int) -> dict[str, Any]:
    """The wallet's memory, built from what storage holds."""
    rows = wallet_store.wallet_rows(db)
    available, exposure = _money(rows)
    blocked = set(rows.blocked)
    cooldowns = dict(rows.cooldowns)
    limits = stored_limits.load_limits(db)
    return {
        "available": available,
        "exposure": exposure,
        "blocked": blocked,
        "cooldowns": cooldowns,
        "exclusions": stored_limits.load_exclusions(db),
        "limits": limits,
        "flows": {
            key: Flows(flows)
            for key, flows in stored_limits.load_flows(db, limits, now_ms - LONGEST_MS).items()
        },
    }
