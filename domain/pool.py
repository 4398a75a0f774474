"""A betting pool as data: its definition, its book of bets, the rules for taking a bet,
and the shapes it shows on the wire (seed 000). No trio, no storage: the pool actor
wraps this with plumbing, and tests can drive it directly."""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum
from fractions import Fraction
from typing import Any

from domain import ledger, params, parimutuel
from domain.errors import DomainError, about
from domain.game import Game, optional_amount
from domain.money import (
    MAX_POOL_TOTAL,
    exponent_of,
    parse_amount,
    parse_rate,
    rate_text,
    stored_rate,
    to_wire,
)
from domain.params import stored_time
from domain.rules import PoolRules, parse_rules
from domain.targets import (
    NONE,
    TargetTree,
    action_id,
    level,
    parse_list,
    pool_targets,
    symbol,
)


class PoolType(IntEnum):
    """A pool's ``pool_type`` (seed 000): parimutuel or binary, timed (a finish time) or
    not."""

    PARIMUTUEL = 1
    TIMED_PARIMUTUEL = 2
    BINARY = 3
    TIMED_BINARY = 4


PARIMUTUEL = frozenset({PoolType.PARIMUTUEL, PoolType.TIMED_PARIMUTUEL})
BINARY = frozenset({PoolType.BINARY, PoolType.TIMED_BINARY})
TIMED = frozenset({PoolType.TIMED_PARIMUTUEL, PoolType.TIMED_BINARY})


class PoolStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    VOIDED = "voided"
    EXPIRED = "expired"


class BetStatus(StrEnum):
    ACTIVE = "active"
    WON = "won"
    LOST = "lost"
    REFUNDED = "refunded"


#: How long after its closing an unresolved pool is voided when 385 sets no
#: ``fail_safe_at`` (``Settings.fail_safe_delay_ms`` overrides it): a day.
DEFAULT_FAIL_SAFE_MS = 24 * 60 * 60 * 1000
#: How long after its opening a pool with no closing time is voided, unresolved
#: (decisions §13; ``Settings.max_pool_lifetime_ms`` overrides it): a week.
DEFAULT_MAX_POOL_LIFETIME_MS = 7 * 24 * 60 * 60 * 1000
#: Everybody's bets a game admin's listing or 393 shows of a pool: the latest this many
#: (``omitted_bets`` counts the others), as a 360 shows the latest 50 of a flow.
MAX_LISTED_BETS = 1_000


@dataclass(frozen=True, slots=True)
class FailSafeRule:
    """When a pool that names no ``fail_safe_at`` is voided (decisions §13): its closing
    time plus ``delay_ms``, else its opening time plus ``lifetime_ms``. So every pool has
    a fail-safe time, and no stake stays in escrow for ever."""

    delay_ms: int = DEFAULT_FAIL_SAFE_MS
    lifetime_ms: int = DEFAULT_MAX_POOL_LIFETIME_MS

    def default_for(self, pool: Pool, game_close_at: int | None) -> int:
        """The pool's fail-safe time when none was sent, no later than the last time
        there is."""
        closing = pool.closing_at(game_close_at)
        at = pool.start_at + self.lifetime_ms if closing is None else closing + self.delay_ms
        return min(at, params.TIME_MAX_MS)

    def fill(self, pool: Pool, game_close_at: int | None) -> bool:
        """Give a pool stored before every pool had one its fail-safe time; True when it
        had none (the caller saves it)."""
        if pool.fail_safe_at is not None:
            return False
        pool.fail_safe_at = self.default_for(pool, game_close_at)
        return True


#: A 360 broadcast lists at most this many of the bets added since the previous one.
BROADCAST_BETS = 50


@dataclass(frozen=True, slots=True)
class Bet:
    id: str
    user_id: int
    target: str
    amount: int
    placed_at: int

    def wire(self, exponent: int) -> dict[str, Any]:
        return {
            "placed_at": self.placed_at,
            "amount": to_wire(self.amount, exponent),
            "user_id": self.user_id,
        }


@dataclass
class Outcome:
    """A settled pool: the ledger lines and bet updates to commit, and the 362 fields."""

    lines: list[ledger.Line]
    bet_status: dict[str, tuple[BetStatus, int]]  # bet id -> (status, amount credited)
    released: dict[tuple[int, str], int]
    message: dict[str, Any]
    #: what the house paid in and what moved on, minor units: ``house_cover``
    #: (min_dividend), ``guarantee_topup``, ``carried_out``, ``unclaimed``
    house: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingResolution:
    """An event resolution committed for a pool (its ``pending_resolutions`` row): the
    pool takes no more bets and settles with this winner."""

    winning_target: str
    happened_at: int


@dataclass
class Pool:
    id: str
    game_id: str
    game_name: str
    description: str
    action: str
    pool_type: int
    targets: dict[str, str]  # target id -> display name, "none" included for parimutuel
    target_level: int
    currency: str
    exponent: int
    takeout: Fraction = Fraction(0)
    min_stake: int | None = None
    max_stake: int | None = None
    #: the most one user may stake in this pool in all, in minor units (decisions §6)
    max_liability: int | None = None
    start_at: int = 0
    finish_at: int | None = None
    stop_accepting_bets_at: int | None = None
    #: seed 003: still unresolved at this time, the pool is voided. Every pool has one
    #: (decisions §13); None only in a pool stored before that, until ``FailSafeRule.fill``
    fail_safe_at: int | None = None
    block_at: int | None = None
    allow_at: int | None = None
    blocked: bool = False
    blocked_at: int | None = None
    recreate_on_end: bool = False
    #: minimum dividend, guarantee, carry-over, bet delay (decisions §11)
    rules: PoolRules = field(default_factory=PoolRules)
    #: the pot the pool it was recreated from carried over into its escrow
    carried_in: int = 0
    status: PoolStatus = PoolStatus.OPEN
    resolved_at: int | None = None
    winning_target: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    #: False from the settling commit until its 362/363 went out: a pool that restarts in
    #: between sends it then (at least once), so subscribers never miss a result.
    announced: bool = True
    #: how many of ``bets`` (in order) have gone out in a 360; recorded after each 360,
    #: so a restart re-sends at most the last few (bets are keyed by id: harmless)
    broadcast_bets: int = 0
    bets: list[Bet] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    backers: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    user_target: dict[int, str] = field(default_factory=dict)
    user_stake: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    user_bets: dict[int, list[Bet]] = field(default_factory=lambda: defaultdict(list))
    #: ``odds()`` as of a version of the pool (bets, carried-in pot, rules)
    _odds: tuple[Any, dict[str, dict[str, Any]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    # -- persistence ------------------------------------------------------------------

    _DOC_FIELDS = (
        "id",
        "game_id",
        "game_name",
        "description",
        "action",
        "pool_type",
        "targets",
        "target_level",
        "currency",
        "exponent",
        "min_stake",
        "max_stake",
        "max_liability",
        "start_at",
        "finish_at",
        "stop_accepting_bets_at",
        "fail_safe_at",
        "block_at",
        "allow_at",
        "blocked",
        "blocked_at",
        "recreate_on_end",
        "carried_in",
        "status",
        "resolved_at",
        "winning_target",
        "result",
        "announced",
        "broadcast_bets",
    )
    _TIME_FIELDS = (
        "start_at",
        "finish_at",
        "stop_accepting_bets_at",
        "fail_safe_at",
        "block_at",
        "allow_at",
        "blocked_at",
        "resolved_at",
    )

    def to_doc(self) -> dict[str, Any]:
        doc = {name: getattr(self, name) for name in self._DOC_FIELDS}
        doc["takeout"] = rate_text(self.takeout)
        doc["rules"] = self.rules.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any], bets: list[Bet]) -> Pool:
        """The stored pool; a time an older version let through out of range is made
        harmless (``params.stored_time``) rather than crash the actor on every start."""
        fields = {k: v for k, v in doc.items() if k in cls._DOC_FIELDS}
        for name in cls._TIME_FIELDS:
            if name in fields:
                fields[name] = stored_time(fields[name], name)
        fields["status"] = PoolStatus(fields.get("status", PoolStatus.OPEN))
        pool = cls(
            **fields,
            takeout=stored_rate(doc.get("takeout", "0")),
            rules=PoolRules.from_doc(doc.get("rules")),
        )
        for bet in bets:
            pool.add(bet)
        return pool

    # -- the book ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status is PoolStatus.OPEN

    @property
    def has_unsent_bets(self) -> bool:
        """Bets were added since the last 360 broadcast."""
        return len(self.bets) > self.broadcast_bets

    # -- block / allow, timers, successor (each returns a changed pool) ---------------

    def scheduled(self, block: bool, at: int) -> Pool:
        """This pool with a block (or allow) scheduled for ``at``."""
        return dataclasses.replace(self, **{"block_at" if block else "allow_at": at})

    def blocked_now(self, block: bool, now: int) -> Pool:
        """This pool blocked (or allowed) at ``now``: the schedule for it is spent."""
        return dataclasses.replace(
            self,
            blocked=block,
            blocked_at=now if block else None,
            **{"block_at" if block else "allow_at": None},
        )

    def timers(self) -> list[tuple[int, str]]:
        """What an open pool has due, and when (epoch ms): ``block``, ``allow``,
        ``expire`` (a timed parimutuel pool's finish) and ``fail_safe``."""
        if not self.is_open:
            return []
        due = [
            (at, name)
            for at, name in ((self.block_at, "block"), (self.allow_at, "allow"))
            if at is not None
        ]
        if self.pool_type == PoolType.TIMED_PARIMUTUEL and self.finish_at is not None:
            due.append((self.finish_at, "expire"))
        if self.fail_safe_at is not None:
            due.append((self.fail_safe_at, "fail_safe"))
        return due

    def successor(self, pool_id: str, now: int) -> Pool:
        """The pool ``recreate_on_end`` opens at ``now`` when this one settles: the same
        definition, its times the same distance from its start."""
        finish_at = fail_safe_at = None
        if self.finish_at is not None:
            finish_at = now + max(0, self.finish_at - self.start_at)
        if self.fail_safe_at is not None:
            fail_safe_at = now + max(0, self.fail_safe_at - self.start_at)
        return Pool(
            pool_id,
            self.game_id,
            self.game_name,
            self.description,
            self.action,
            self.pool_type,
            dict(self.targets),
            self.target_level,
            self.currency,
            self.exponent,
            self.takeout,
            self.min_stake,
            self.max_stake,
            self.max_liability,
            start_at=now,
            finish_at=finish_at,
            fail_safe_at=fail_safe_at,
            recreate_on_end=True,
            rules=self.rules,
        )

    def latest_unsent(self, limit: int = BROADCAST_BETS) -> tuple[list[Bet], int]:
        """The latest ``limit`` bets not yet in a 360 broadcast, and how many others were
        added since then (its ``omitted_bets``): a 360 stays small whatever the flow
        (decisions §9)."""
        unsent = len(self.bets) - self.broadcast_bets
        shown = min(unsent, limit)
        return self.bets[len(self.bets) - shown :], unsent - shown

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    def add(self, bet: Bet) -> None:
        self.bets.append(bet)
        self.totals[bet.target] += bet.amount
        self.backers[bet.target].add(bet.user_id)
        self.user_target[bet.user_id] = bet.target
        self.user_stake[bet.user_id] += bet.amount
        self.user_bets[bet.user_id].append(bet)

    def closing_at(self, game_close_at: int | None) -> int | None:
        """When betting ends for good (seed 003's closing time): the pool's own stop or
        finish time, else its game's ``close_at`` (closing a game closes its pools);
        None while neither is known."""
        finish_at = self.finish_at if self.pool_type in TIMED else None
        own = [at for at in (self.stop_accepting_bets_at, finish_at) if at is not None]
        return min(own, default=game_close_at)

    def last_bet_at(self, game_close_at: int | None) -> int | None:
        """When the pool stops taking bets at the latest (decisions §13): its closing time
        or its fail-safe time, whichever comes first (None only without either)."""
        known = [at for at in (self.closing_at(game_close_at), self.fail_safe_at) if at is not None]
        return min(known, default=None)

    def refusal(self, now: int) -> DomainError | None:
        """Why no bet can be taken at ``now``, or None."""
        if not self.is_open:
            return DomainError("POOL_CLOSED", "This pool is resolved.")
        if self.blocked:
            return DomainError("POOL_BLOCKED", "Betting in this pool is blocked.")
        if self.stop_accepting_bets_at is not None and now >= self.stop_accepting_bets_at:
            return DomainError("POOL_CLOSED", "This pool no longer accepts bets.")
        if self.pool_type in TIMED and self.finish_at is not None and now >= self.finish_at:
            return DomainError("POOL_CLOSED", "This pool has finished.")
        return None

    def check_bet(
        self,
        user_id: int,
        target: Any,
        amount: Any,
        now: int,
        pending_target: str | None = None,
        pending_stake: int = 0,
        pending_total: int = 0,
    ) -> tuple[str, int]:
        """Validate a bet; returns (target id, stake in minor units) or raises.
        ``pending_*``: what the user (``pending_total``: everybody) has in this pool that
        is not in the book yet (the same batch, a reserved betslip, a held bet)."""
        refusal = self.refusal(now)
        if refusal is not None:
            raise refusal
        tid = self._checked_target(user_id, target, pending_target)
        stake = parse_amount(amount, self.exponent, field="amount", code="INVALID_STAKE")
        self._check_stake_limits(stake, pending_total)
        self._check_liability(user_id, stake, pending_stake)
        return tid, stake

    def _checked_target(self, user_id: int, target: Any, pending_target: str | None) -> str:
        """The target id of a bet on ``target``; ``INVALID_TARGET`` when the pool has no
        such target or the user already backed another one (one target per pool)."""
        if not isinstance(target, str) or target.strip().lower() not in self.targets:
            raise DomainError(
                "INVALID_TARGET",
                f"{str(target)[:64]!r} is not a target of this pool.",
                parameter="target",
            )
        tid = target.strip().lower()
        backed = pending_target or self.user_target.get(user_id)
        if backed is not None and backed != tid:
            raise DomainError(
                "INVALID_TARGET",
                f"You already backed {backed!r} in this pool; one target per pool.",
                parameter="target",
            )
        return tid

    def _check_stake_limits(self, stake: int, pending_total: int) -> None:
        """``INVALID_STAKE`` when ``stake`` is below min_stake, above max_stake, or would
        take the pool's possible payout past ``MAX_POOL_TOTAL``."""
        if self.min_stake is not None and stake < self.min_stake:
            raise DomainError(
                "INVALID_STAKE",
                "The stake is below the pool's min_stake.",
                parameter="amount",
                limit="min_stake",
                min_stake=to_wire(self.min_stake, self.exponent),
            )
        if self.largest_payout(self.total + pending_total + stake) > MAX_POOL_TOTAL:
            raise DomainError(
                "INVALID_STAKE",
                "The pool's total stakes (times its minimum dividend, plus what it carried "
                f"in) would pass its limit of {to_wire(MAX_POOL_TOTAL, self.exponent)}.",
                parameter="amount",
                limit="max_pool_total",
            )
        if self.max_stake is not None and stake > self.max_stake:
            raise DomainError(
                "INVALID_STAKE",
                "The stake is above the pool's max_stake.",
                parameter="amount",
                limit="max_stake",
                max_stake=to_wire(self.max_stake, self.exponent),
            )

    def _check_liability(self, user_id: int, stake: int, pending_stake: int) -> None:
        """``INVALID_STAKE`` when the user's stakes in this pool would pass max_liability."""
        staked = self.user_stake.get(user_id, 0) + pending_stake
        if self.max_liability is not None and staked + stake > self.max_liability:
            room = max(0, self.max_liability - staked)
            raise DomainError(
                "INVALID_STAKE",
                f"Your stakes in this pool may total at most "
                f"{to_wire(self.max_liability, self.exponent)}; {to_wire(room, self.exponent)} "
                "is left.",
                parameter="amount",
                limit="max_liability",
                max_stake=to_wire(room, self.exponent),
            )

    # -- odds and views ---------------------------------------------------------------

    def largest_payout(self, total: int) -> int:
        """What the pool could pay out with ``total`` staked, before a guarantee: every
        stake on the winner at the minimum dividend, and the carried-in pot. Bounded by
        ``MAX_POOL_TOTAL``, it keeps every settlement line far inside SQLite's integers."""
        return parimutuel.minimum_payout(total, self.rules.min_dividend) + self.carried_in

    def odds(self) -> dict[str, dict[str, Any]]:
        """Per target, what 352 and every listing show of the whole pool: its odds, its
        money and its backers. Computed once per bet added (the odds of every target
        read the pool's total), not once per reader: a 387 over a game's pools, asked
        again and again, costs the loop lookups, not two ratios per target each."""
        key = (len(self.bets), self.carried_in, self.rules)
        if self._odds is None or self._odds[0] != key:
            total, unit = self.total, 10**self.exponent
            self._odds = (key, {t: self._target_odds(t, total, unit) for t in self.targets})
        return self._odds[1]

    def _target_odds(self, target: str, total: int, unit: int) -> dict[str, Any]:
        on_target = self.totals.get(target, 0)
        rules, carried_in = self.rules, self.carried_in
        return {
            "multiplier": parimutuel.multiplier(total, on_target, self.takeout, rules, carried_in),
            "amount_total": self.money(on_target),
            "backing_people": len(self.backers.get(target, ())),
            "to_win_if_backed": parimutuel.to_win_if_backed(
                total, on_target, self.takeout, unit, rules, carried_in
            ),
        }

    def rules_wire(self) -> dict[str, Any]:
        """The pool's rules and carried-in pot, as 352 and the listings show them."""
        return {**self.rules.wire(self.exponent), "carried_in": self.money(self.carried_in)}

    def money(self, minor: int) -> Decimal:
        return to_wire(minor, self.exponent)

    def distribution(self, visible: list[Bet]) -> dict[str, Any]:
        """Per target: the visible bets, and aggregates over the whole pool."""
        shown: dict[str, dict[str, Any]] = {t: {} for t in self.targets}
        for bet in visible:
            shown[bet.target][bet.id] = bet.wire(self.exponent)
        odds = self.odds()
        return {
            t: {"bets": shown[t], "display_name": name, **odds[t]}
            for t, name in self.targets.items()
        }

    def created_message(self) -> dict[str, Any]:
        """The full pool, as res 352 shows it."""
        odds = self.odds()
        return {
            "game_id": self.game_id,
            "pool_id": self.id,
            "description": self.description,
            "pool_type": self.pool_type,
            "action": self.action,
            "people_involved": len(self.user_target),
            "money_at_stake": self.money(self.total),
            "target_level": self.target_level,
            "targets": {
                t: {
                    "backing_people": odds[t]["backing_people"],
                    "to_win_if_backed": odds[t]["to_win_if_backed"],
                    "display_name": {"symbol": symbol(t), "display_name": name},
                    "backing_money": odds[t]["amount_total"],
                }
                for t, name in self.targets.items()
            },
            "start_at": self.start_at,
            "finish_at": self.finish_at,
            "stop_accepting_bets_at": self.stop_accepting_bets_at,
            "fail_safe_at": self.fail_safe_at,
            "takeout": Decimal(self.takeout.numerator) / Decimal(self.takeout.denominator),
            "currency": self.currency,
            **self.rules_wire(),
        }

    def visible_bets(self, user_id: int, everything: bool) -> tuple[list[Bet], int]:
        """The bets a listing or a 393 shows, and how many it leaves out: the caller's own
        (all of them: each cost its sender a stake), or for a game admin the latest
        ``MAX_LISTED_BETS`` of everybody's. Neither is a pass over the pool's bets: a
        pool's bets grow with its crowd, and any subscriber may list every pool."""
        if not everything:
            return self.user_bets.get(user_id, []), 0
        shown = self.bets[-MAX_LISTED_BETS:]
        return shown, len(self.bets) - len(shown)

    def listing(self, user_id: int, everything: bool) -> dict[str, Any]:
        """One entry of the 387-390 listings, with the caller's own bets (or all)."""
        visible, omitted = self.visible_bets(user_id, everything)
        entry: dict[str, Any] = {
            "pool_id": self.id,
            "description": self.description,
            "name": self.description,
            "type": self.pool_type,
            "pool_type": self.pool_type,
            "action_id": self.action,
            "start_at": self.start_at,
            "finish_at": self.finish_at,
            "stop_accepting_bets_at": self.stop_accepting_bets_at,
            "fail_safe_at": self.fail_safe_at,
            "money_at_stake": self.money(self.total),
            "people_involved": len(self.user_target),
            "target_level": self.target_level,
            "blocked": self.blocked,
            "distributions": self.distribution(visible),
            "game_id": self.game_id,
            "game_name": self.game_name,
            **self.rules_wire(),
        }
        if omitted:
            entry["omitted_bets"] = omitted
        if user_id in self.user_target:
            entry["user_backed"] = {self.user_target[user_id]: self.money(self.user_stake[user_id])}
        if not self.is_open:
            entry["resolved_at"] = self.resolved_at
            entry["winning_target"] = self.winning_target
            winners = self.result.get("winners", {})
            entry["total_winnings"] = self.money(winners.get(str(user_id), 0))
        return entry

    # -- resolution -------------------------------------------------------------------

    def settle(
        self,
        winner: str | None,
        *,
        now: int,
        happened_at: int | None = None,
        successor: str | None = None,
    ) -> Outcome:
        """Pay the pool out for ``winner`` (None: void, every stake back) under its rules;
        a pot nobody won moves to ``successor`` when the pool carries over.

        Bets placed after ``happened_at`` are invalidated: refunded, left out of ``T``.
        """
        late = [b for b in self.bets if happened_at is not None and b.placed_at > happened_at]
        late_ids = {b.id for b in late}
        valid = [b for b in self.bets if b.id not in late_ids]
        settlement = self._settlement(valid, winner, successor)
        user_of_bet = {b.id: b.user_id for b in self.bets}
        lines = ledger.settlement_lines(self.id, self.currency, settlement, user_of_bet, successor)
        for bet in late:
            lines += ledger.transfer(
                ledger.escrow(self.id), ledger.wallet(bet.user_id), self.currency, bet.amount
            )
        ledger.check_balanced(lines)
        bet_status = self._bet_statuses(settlement, late_ids)
        released: dict[tuple[int, str], int] = defaultdict(int)
        for bet in self.bets:
            released[(bet.user_id, self.currency)] += bet.amount
        message = self._settled_message(winner, settlement, bet_status, late, now)
        return Outcome(lines, bet_status, dict(released), message, _house_part(settlement))

    def _settlement(
        self, valid: list[Bet], winner: str | None, successor: str | None
    ) -> parimutuel.Settlement:
        """The parimutuel split of the ``valid`` bets: for ``winner`` under the pool's
        takeout and rules, or (None) a void that gives every stake back."""
        stakes = [parimutuel.Stake(b.id, b.user_id, b.target, b.amount) for b in valid]
        if winner is None:
            return parimutuel.settle(stakes, "\0void", Fraction(0), carried_in=self.carried_in)
        return parimutuel.settle(
            stakes,
            winner,
            self.takeout,
            self.rules,
            carried_in=self.carried_in,
            carry=self.rules.carry_over and successor is not None,
        )

    def _bet_statuses(
        self, settlement: parimutuel.Settlement, late_ids: set[str]
    ) -> dict[str, tuple[BetStatus, int]]:
        """Bet id -> (status, amount paid or refunded) after ``settlement``."""
        bet_status: dict[str, tuple[BetStatus, int]] = {}
        for bet in self.bets:
            paid = settlement.payouts.get(bet.id, 0)
            if bet.id in late_ids or settlement.is_money_return:
                bet_status[bet.id] = (BetStatus.REFUNDED, bet.amount)
            else:
                bet_status[bet.id] = (BetStatus.WON if paid else BetStatus.LOST, paid)
        return bet_status

    def _settled_message(
        self,
        winner: str | None,
        settlement: parimutuel.Settlement,
        bet_status: Mapping[str, tuple[BetStatus, int]],
        late: list[Bet],
        now: int,
    ) -> dict[str, Any]:
        """What the pool announces on settling (362), in wire amounts."""
        refunds = refunds_by_user(self.bets, bet_status)
        message = {
            "pool_id": self.id,
            "game_id": self.game_id,
            "winning_target": winner,
            "description": self.description,
            "winners": {str(u): self.money(a) for u, a in sorted(settlement.winners.items())},
            "losers": settlement.losers,
            "invalidated_bettors": sorted({b.user_id for b in late}),
            "is_money_return": settlement.is_money_return or winner is None,
            "refunds": {str(u): self.money(a) for u, a in sorted(refunds.items())},
            "resolved_at": now,
        }
        if settlement.carried_out:
            message["carried_over"] = self.money(settlement.carried_out)
        return message

    def mark_settled(self, outcome: Outcome, status: PoolStatus) -> None:
        self.status = status
        self.resolved_at = outcome.message["resolved_at"]
        self.winning_target = outcome.message["winning_target"]
        self.result = {
            "winners": self._minor_by_user(outcome.message["winners"]),
            "losers": outcome.message["losers"],
            "invalidated_bettors": outcome.message["invalidated_bettors"],
            "is_money_return": outcome.message["is_money_return"],
            "refunds": self._minor_by_user(outcome.message["refunds"]),
            **outcome.house,
        }
        self.announced = False

    def result_fields(self) -> dict[str, Any]:
        """What a settled pool announces (362, or 363 with ``expired_at``), from its stored
        result."""
        fields: dict[str, Any] = {
            "pool_id": self.id,
            "game_id": self.game_id,
            "winning_target": self.winning_target,
            "description": self.description,
            "winners": self._wire_by_user(self.result.get("winners", {})),
            "losers": self.result.get("losers", []),
            "invalidated_bettors": self.result.get("invalidated_bettors", []),
            "is_money_return": self.result.get("is_money_return", False),
            # a pool settled before refunds were recorded announces none
            "refunds": self._wire_by_user(self.result.get("refunds", {})),
            "resolved_at": self.resolved_at,
        }
        if self.result.get("carried_out"):
            fields["carried_over"] = self.money(self.result["carried_out"])
        if self.status is PoolStatus.EXPIRED:
            fields["expired_at"] = self.resolved_at
        return fields

    def _minor_by_user(self, amounts: Mapping[str, Decimal]) -> dict[str, int]:
        """User id -> wire amount, back to minor units (what the stored result keeps)."""
        return {user: int(amount.scaleb(self.exponent)) for user, amount in amounts.items()}

    def _wire_by_user(self, amounts: Mapping[str, int]) -> dict[str, Decimal]:
        return {user: self.money(amount) for user, amount in amounts.items()}


def refunds_by_user(
    bets: list[Bet], bet_status: Mapping[str, tuple[BetStatus, int]]
) -> dict[int, int]:
    """User id -> the stakes given back (minor units): a money return's every bet, and
    the bets an event invalidated."""
    refunds: dict[int, int] = defaultdict(int)
    for bet in bets:
        status, amount = bet_status[bet.id]
        if status is BetStatus.REFUNDED:
            refunds[bet.user_id] += amount
    return dict(refunds)


def _house_part(settlement: parimutuel.Settlement) -> dict[str, int]:
    """The settlement's amounts beyond stakes and payouts, kept in the pool's result so
    that every cent of its escrow is explained."""
    return {
        "house_cover": settlement.house_cover,
        "guarantee_topup": settlement.guarantee_topup,
        "carried_out": settlement.carried_out,
        "unclaimed": settlement.unclaimed,
    }


def resolves_by_event(info: Mapping[str, Any], action: str, happened_at: int) -> bool:
    """An event resolves the open parimutuel pools of its action opened before it happened.

    ``info`` is what a pool tells its game: ``open``, ``pool_type``, ``action``, ``start_at``.
    """
    return (
        info["open"]
        and info["pool_type"] in PARIMUTUEL
        and info["action"] == action
        and info["start_at"] <= happened_at
    )


def new_pool(
    game: Game,
    fields: dict[str, Any],
    now: int,
    *,
    fail_safe: FailSafeRule = FailSafeRule(),
    tree: TargetTree | None = None,
) -> Pool:
    """Validate an op 385 request against its game and build the pool (not yet saved).
    ``tree``: the game's target tree, when the caller has it built already.
    Raises ``DomainError`` (``INVALID_PARAMETER``, ``MISSING_PARAMETER``,
    ``INVALID_TARGET``, ...) on a field that does not fit, before anything is built."""
    pool_type = params.integer(
        fields,
        "pool_type",
        default=int(PoolType.PARIMUTUEL),
        minimum=int(min(PoolType)),
        maximum=int(max(PoolType)),
    )
    if pool_type in BINARY:
        action, targets, target_level = "binary", _binary_targets(fields), 1
    else:
        action, targets, target_level = _action_targets(fields, game, tree)
    finish_at, stop_at = _closing_times(fields, pool_type, now)
    exponent = exponent_of(game.currency)
    limits = _stake_limits(fields, exponent)
    takeout = (
        stored_rate(game.takeout)
        if params.is_null(fields.get("takeout"))
        else parse_rate(fields["takeout"])
    )
    recreate = params.boolean(fields, "recreate_on_end")
    pool = Pool(
        str(uuid.uuid4()),
        game.id,
        game.name,
        params.text(fields, "description", default="", max_len=512) or "",
        action,
        pool_type,
        targets,
        target_level,
        game.currency,
        exponent,
        takeout,
        limits["min_stake"],
        limits["max_stake"],
        limits["max_liability"] if limits["max_liability"] is not None else game.max_liability,
        start_at=now,
        finish_at=finish_at,
        stop_accepting_bets_at=stop_at,
        recreate_on_end=recreate,
        rules=pool_rules(fields, game, exponent, recreate=recreate),
    )
    pool.fail_safe_at = fail_safe_time(fields, pool, game.close_at, now, fail_safe)
    return pool


def _action_targets(
    fields: dict[str, Any], game: Game, tree: TargetTree | None
) -> tuple[str, dict[str, str], int]:
    """A parimutuel or timed pool's action, its targets (id -> display name) and their
    level in the game's tree; ``INVALID_PARAMETER`` for an action the game lacks."""
    raw_action = params.text(fields, "action", required_=True) or ""
    with about("action"):
        action = action_id(raw_action)
    if action not in game.actions:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{raw_action!r} is not an action of this game.",
            parameter="action",
        )
    tree = game.tree if tree is None else tree
    with about("targets"):
        ids = pool_targets(tree, parse_list(fields.get("targets"), "targets"))
    targets = {t: tree.display_name(t) for t in ids}
    return action, targets, level(next(t for t in ids if t != NONE))


def _closing_times(
    fields: dict[str, Any], pool_type: int, now: int
) -> tuple[int | None, int | None]:
    """(finish_at, stop_accepting_bets_at) as sent: each in the future, and finish_at
    required of a time-based pool (``MISSING_PARAMETER``)."""
    finish_at = params.epoch_ms(fields, "finish_at")
    stop_at = params.epoch_ms(fields, "stop_accepting_bets_at")
    if pool_type in TIMED and finish_at is None:
        raise DomainError(
            "MISSING_PARAMETER", "A time-based pool needs finish_at.", parameter="finish_at"
        )
    for name, at in (("finish_at", finish_at), ("stop_accepting_bets_at", stop_at)):
        if at is not None and at <= now:
            raise DomainError("INVALID_PARAMETER", f"{name} must be in the future.", parameter=name)
    return finish_at, stop_at


def _stake_limits(fields: dict[str, Any], exponent: int) -> dict[str, int | None]:
    """min_stake, max_stake and max_liability as sent (minor units, None when absent);
    ``INVALID_PARAMETER`` when min_stake is above max_stake."""
    limits = {
        name: optional_amount(fields, name, exponent)
        for name in ("min_stake", "max_stake", "max_liability")
    }
    if limits["min_stake"] and limits["max_stake"] and limits["min_stake"] > limits["max_stake"]:
        raise DomainError(
            "INVALID_PARAMETER", "min_stake is above max_stake.", parameter="min_stake"
        )
    return limits


def pool_rules(fields: dict[str, Any], game: Game, exponent: int, *, recreate: bool) -> PoolRules:
    """The rules 385 sets over its game's. A carry-over needs a pool recreated on its end:
    asked for without one it is ``INVALID_PARAMETER``; the game's default only applies to
    such pools."""
    rules = parse_rules(fields, game.currency, exponent, game.rules)
    if rules.carry_over and not recreate:
        if not params.is_null(fields.get("carry_over")):
            raise DomainError(
                "INVALID_PARAMETER",
                "carry_over needs recreate_on_end: the pot moves to the recreated pool.",
                parameter="carry_over",
            )
        rules = dataclasses.replace(rules, carry_over=False)
    return rules


def fail_safe_time(
    fields: dict[str, Any], pool: Pool, game_close_at: int | None, now: int, rule: FailSafeRule
) -> int:
    """Seed 003's fail-safe time: ``fail_safe_at`` as sent (after now and after the pool's
    finish and stop times; ``INVALID_PARAMETER`` otherwise), else ``rule``'s default."""
    at = params.epoch_ms(fields, "fail_safe_at")
    if at is None:
        return rule.default_for(pool, game_close_at)
    for name, after in (
        ("now", now),
        ("finish_at", pool.finish_at),
        ("stop_accepting_bets_at", pool.stop_accepting_bets_at),
    ):
        if after is not None and at <= after:
            raise DomainError(
                "INVALID_PARAMETER", f"fail_safe_at must be after {name}.", parameter="fail_safe_at"
            )
    return at


def _binary_targets(fields: dict[str, Any]) -> dict[str, str]:
    """A binary pool's two targets (``yes``/``no`` unless named), id -> display name."""
    with about("targets"):
        names = parse_list(fields.get("targets"), "targets") or ["yes", "no"]
    ids = list(dict.fromkeys(n.strip().lower() for n in names))
    if len(ids) != 2 or any(":" in t or not t for t in ids):
        raise DomainError(
            "INVALID_TARGET", "A binary pool has exactly two targets.", parameter="targets"
        )
    return dict(zip(ids, (n.strip() for n in names), strict=False))


__all__ = [
    "BINARY",
    "NONE",
    "PARIMUTUEL",
    "TIMED",
    "Bet",
    "BetStatus",
    "FailSafeRule",
    "Outcome",
    "Pool",
    "PoolStatus",
    "fail_safe_time",
    "new_pool",
    "pool_rules",
    "resolves_by_event",
]
