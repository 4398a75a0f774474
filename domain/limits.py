"""Limits a player sets on themselves, and self-exclusion (decisions §12, after the UK
Gambling Commission's RTS 12): the arithmetic only, no trio and no storage.

- A limit is a deposit or loss ceiling over a rolling day, week or month (24 hours,
  7 days, 30 days back from now), in one currency.
- Lowering one (or setting a first one) applies at once; raising or removing one waits
  ``RAISE_DELAY_MS`` and until then the old amount stays in force.
- What a period has used is the sum of the player's ``Flow``s inside it: deposits for a
  deposit limit; for a loss limit each stake counts in full when placed and each return
  (winnings, refunds) counts against it when paid, so a settled bet counts its net.
- A self-exclusion lasts at least ``MIN_EXCLUSION_MS`` and is never shortened.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from domain.errors import DomainError
from domain.money import parse_amount

DAY_MS = 24 * 3600 * 1000
#: a raise or a removal takes effect this long after it is asked for
RAISE_DELAY_MS = DAY_MS
#: the shortest self-exclusion
MIN_EXCLUSION_MS = DAY_MS


class Kind(StrEnum):
    DEPOSIT = "deposit"
    LOSS = "loss"


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"

    @property
    def ms(self) -> int:
        """The rolling window's length."""
        return {Period.DAY: DAY_MS, Period.WEEK: 7 * DAY_MS, Period.MONTH: 30 * DAY_MS}[self]


#: how far back a flow can still count
LONGEST_MS = max(p.ms for p in Period)

_PERIOD_NAMES = frozenset(p.value for p in Period)

Slot = tuple[Kind, Period]
SLOTS: tuple[Slot, ...] = tuple((k, p) for k in Kind for p in Period)


@dataclass(frozen=True, slots=True)
class Limit:
    """One slot's limit: ``amount`` in force (None: no limit), and a raise or removal
    (``pending_amount`` None) waiting until ``pending_from`` (None: nothing waits)."""

    amount: int | None = None
    pending_amount: int | None = None
    pending_from: int | None = None

    def at(self, now: int) -> Limit:
        """This limit as it stands at ``now``: a change whose time has come is in force."""
        if self.pending_from is not None and self.pending_from <= now:
            return Limit(self.pending_amount)
        return self

    def changed(self, wanted: int | None, now: int) -> Limit:
        """The limit after the player asks for ``wanted`` (None: no limit) at ``now``: a
        lower or first limit at once (dropping any change waiting), a higher one or a
        removal after ``RAISE_DELAY_MS``."""
        current = self.at(now).amount
        if wanted is not None and (current is None or wanted <= current):
            return Limit(wanted)
        if current is None:
            return Limit()
        return Limit(current, wanted, now + RAISE_DELAY_MS)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A raise or removal not yet in force (``amount`` None: a removal)."""

    kind: Kind
    period: Period
    amount: int | None
    starts: int


@dataclass(frozen=True, slots=True)
class Flow:
    """Money that counts toward a limit: a deposit, or for losses a stake (positive)
    or a return (negative), at epoch ms ``at``."""

    at: int
    kind: Kind
    amount: int


@dataclass(frozen=True, slots=True)
class Breach:
    """Why a deposit or stake is refused: the limit it would pass, and what was left."""

    kind: Kind
    period: Period
    limit: int
    left: int


@dataclass(frozen=True, slots=True)
class PlayerLimits:
    """A player's limits in one currency, by slot (a slot not named has no limit)."""

    slots: Mapping[Slot, Limit] = field(default_factory=dict)

    def in_force(self, kind: Kind, now: int) -> dict[Period, int]:
        """The amounts in force for ``kind`` at ``now``, by period."""
        out = {}
        for period in Period:
            amount = self.slots.get((kind, period), Limit()).at(now).amount
            if amount is not None:
                out[period] = amount
        return out

    def waiting(self, now: int) -> list[Waiting]:
        """The raises and removals still waiting at ``now``, in slot order."""
        out = []
        for kind, period in SLOTS:
            limit = self.slots.get((kind, period), Limit()).at(now)
            if limit.pending_from is not None:
                out.append(Waiting(kind, period, limit.pending_amount, limit.pending_from))
        return out

    def changed(self, wanted: Mapping[Slot, int | None], now: int) -> PlayerLimits:
        """These limits after the player asks for ``wanted``; the other slots stay."""
        slots = dict(self.slots)
        for slot, amount in wanted.items():
            slots[slot] = slots.get(slot, Limit()).changed(amount, now)
        return PlayerLimits(slots)

    def breach(self, flows: FlowSource, kind: Kind, amount: int, now: int) -> Breach | None:
        """The first limit of ``kind`` that ``amount`` more would pass, or None."""
        for period, limit in self.in_force(kind, now).items():
            used = flows.used(kind, period, now)
            if used + amount > limit:
                return Breach(kind, period, limit, max(limit - used, 0))
        return None

    def left(self, flows: FlowSource, now: int) -> dict[Kind, dict[Period, int]]:
        """What each limit in force still allows at ``now`` (never below zero)."""
        return {
            kind: {
                period: max(limit - flows.used(kind, period, now), 0)
                for period, limit in self.in_force(kind, now).items()
            }
            for kind in Kind
        }


def used_in(flows: Iterable[Flow], kind: Kind, period: Period, now: int) -> int:
    """The sum of ``kind`` flows in the window ending at ``now``: after ``now - period``."""
    start = now - period.ms
    return sum(f.amount for f in flows if f.kind is kind and start < f.at <= now)


class FlowSource(Protocol):
    def used(self, kind: Kind, period: Period, now: int) -> int:
        """The sum of ``kind`` flows after ``now - period`` and up to ``now``."""
        ...


class Flows:
    """A player's flows in one currency, in the order they came, with running sums per
    kind: what a window used is two binary searches, not a pass over every flow of the
    last 30 days. A player staking a cent at a time adds a flow a bet, and the wallet
    judges everybody's money: with a pass per bet, 100,000 flows cost 80 ms of it each.

    Times only grow: a flow dated before the last one (the wall clock stepped back) is
    counted from the last one's time, so it stays in its windows a little longer, never
    less. Flows too old to count are dropped once they are half of the log."""

    def __init__(self, flows: Iterable[Flow] = ()) -> None:
        self._times: dict[Kind, list[int]] = {kind: [] for kind in Kind}
        #: ``_sums[kind][i]``: the sum of the kind's kept flows before its i-th one
        self._sums: dict[Kind, list[int]] = {kind: [0] for kind in Kind}
        for flow in flows:
            self.add(flow)

    def add(self, flow: Flow) -> None:
        times, sums = self._times[flow.kind], self._sums[flow.kind]
        times.append(max(flow.at, times[-1]) if times else flow.at)
        sums.append(sums[-1] + flow.amount)

    def used(self, kind: Kind, period: Period, now: int) -> int:
        times, sums = self._times[kind], self._sums[kind]
        return sums[bisect_right(times, now)] - sums[bisect_right(times, now - period.ms)]

    def forget(self, now: int) -> None:
        """Drop the flows that cannot count at ``now`` or later, once they are half."""
        for kind in Kind:
            times = self._times[kind]
            old = bisect_right(times, now - LONGEST_MS)
            if old * 2 > len(times):
                del times[:old]
                del self._sums[kind][:old]

    def plus(self, pending: Sequence[Flow]) -> FlowSource:
        """These flows and ``pending`` (a batch's, not committed yet) together."""
        return _Plus(self, pending)


@dataclass(frozen=True, slots=True)
class _Plus:
    flows: Flows
    pending: Sequence[Flow]

    def used(self, kind: Kind, period: Period, now: int) -> int:
        return self.flows.used(kind, period, now) + used_in(self.pending, kind, period, now)


def read_changes(body: Mapping[str, Any], exponent: int) -> dict[Slot, int | None]:
    """The limits a request asks for: ``{"deposit": {"day": "50"}, "loss": {"week":
    null}}`` (null removes); INVALID_PARAMETER naming the field for anything else."""
    wanted: dict[Slot, int | None] = {}
    for kind in Kind:
        periods = body.get(kind.value)
        if periods is None:
            continue
        if not isinstance(periods, Mapping):
            raise DomainError(
                "INVALID_PARAMETER",
                f"{kind} must be an object of periods (day, week, month) and amounts.",
                parameter=kind.value,
            )
        for name, value in periods.items():
            if name not in _PERIOD_NAMES:
                raise DomainError(
                    "INVALID_PARAMETER",
                    f"{kind} takes the periods day, week and month, not {str(name)[:16]!r}.",
                    parameter=kind.value,
                )
            field_name = f"{kind}.{name}"
            wanted[(kind, Period(name))] = (
                None
                if value is None
                else parse_amount(value, exponent, field=field_name, code="INVALID_PARAMETER")
            )
    return wanted


def exclusion_end(current: int, wanted: int, now: int) -> int:
    """The end of a self-exclusion asked to last until ``wanted``, given the one in force
    (``current``, epoch ms; 0 or past: none). INVALID_PARAMETER for less than a day or for
    an end before the current one: an exclusion is never lifted or shortened early."""
    if wanted < now + MIN_EXCLUSION_MS:
        raise DomainError(
            "INVALID_PARAMETER",
            "A self-exclusion lasts at least a day: until must be 24 hours or more from now.",
            parameter="until",
        )
    if wanted < current:
        raise DomainError(
            "INVALID_PARAMETER",
            f"The self-exclusion in force lasts until {current}; it cannot be shortened.",
            parameter="until",
            excluded_until=current,
        )
    return wanted


def flow_of(at: int, transaction_kind: str, amount: int) -> Flow | None:
    """What a ledger line of a player's wallet counts for, read back from storage: a
    deposit; a stake (a debit of a ``stake`` transaction) as a loss; any other credit
    but a deposit (winnings, refunds) as a return. Withdrawals and the remote wallet
    mode's pass-through lines count for nothing."""
    if transaction_kind == "deposit" and amount > 0:
        return Flow(at, Kind.DEPOSIT, amount)
    if transaction_kind == "stake" and amount < 0:
        return Flow(at, Kind.LOSS, -amount)
    if transaction_kind not in ("deposit", "withdrawal", "stake") and amount > 0:
        return Flow(at, Kind.LOSS, -amount)
    return None
