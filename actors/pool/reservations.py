"""What a pool holds outside its book, as plain data (no trio, no storage): betslips
reserved and not yet decided, bets whose operator debit is in flight, and bets held for
the pool's bet delay. Each counts for the one-target rule and the user's liability, so
the pool judges a new bet against them as against its book."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from domain.pool import Bet
from kit.runtime import Request

#: The user of a slip held only to be decided from storage (its bets are read back then).
NO_USER = 0


@dataclass(frozen=True, slots=True)
class HeldSlip:
    """A reserved betslip's bets here, and when (trio time) the desk stops trying to
    commit them: past it the pool learns the outcome from storage."""

    user_id: int
    bets: tuple[Bet, ...]
    until: float


@dataclass(slots=True)
class Delayed:
    """A bet held for the pool's delay: ``decision`` is None when it was read back after
    a restart (nobody waits for it; it is still placed or refused when due)."""

    bet: Bet
    due_at: int
    decision: Request | None = None


class Reservations:
    """The slips a pool holds (by slip key) and the bets it is debiting (by bet id)."""

    def __init__(self) -> None:
        self.slips: dict[str, HeldSlip] = {}
        self.debiting: dict[str, Bet] = {}

    def backing(self, delayed: Iterable[Bet] = ()) -> tuple[dict[int, str], defaultdict[int, int]]:
        """By user: the target backed (one per pool) and the stakes held (they count
        toward the user's liability), over slips, debits in flight and ``delayed``."""
        targets: dict[int, str] = {}
        stakes: defaultdict[int, int] = defaultdict(int)
        held = [bet for slip in self.slips.values() for bet in slip.bets]
        for bet in (*held, *self.debiting.values(), *delayed):
            targets[bet.user_id] = bet.target
            stakes[bet.user_id] += bet.amount
        return targets, stakes

    def hold(self, key: str, user_id: int, bets: Iterable[Bet], until: float) -> None:
        self.slips[key] = HeldSlip(user_id, tuple(bets), until)

    def release(self, key: str) -> HeldSlip | None:
        """Forget the slip; what it held, if anything."""
        return self.slips.pop(key, None)

    def due_now(self, key: str, held: HeldSlip | None, now: float) -> None:
        """The desk could not learn the slip's outcome: hold it (with no bets when this
        pool held nothing for it) until ``now``, so the timer decides it from storage."""
        if held is None:
            held = HeldSlip(NO_USER, (), now)
        self.slips[key] = HeldSlip(held.user_id, held.bets, now)

    def due(self, now: float | None = None) -> list[str]:
        """The keys of the slips past their time by ``now`` (every slip when None)."""
        return [k for k, slip in self.slips.items() if now is None or slip.until <= now]

    def deadlines(self) -> list[float]:
        return [slip.until for slip in self.slips.values()]

    def start_debits(self, bets: Iterable[Bet]) -> None:
        for bet in bets:
            self.debiting[bet.id] = bet

    def end_debits(self, bets: Iterable[Bet]) -> None:
        for bet in bets:
            self.debiting.pop(bet.id, None)
