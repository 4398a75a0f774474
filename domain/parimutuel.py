"""Parimutuel settlement and odds, exactly per decisions §2, in integer minor units.

Everything here is integer or ``Fraction`` arithmetic: each rounding step is an explicit
floor, so the books always add up to the last minor unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from domain.money import ratio
from domain.rules import PoolRules

DEFAULT_RULES = PoolRules()

__all__ = [
    "DEFAULT_RULES",
    "Settlement",
    "Stake",
    "minimum_payout",
    "multiplier",
    "net_pool",
    "payout_pot",
    "settle",
    "to_win_if_backed",
]


@dataclass(frozen=True)
class Stake:
    """One valid bet in a pool; ``amount`` in minor units (> 0)."""

    bet_id: str
    user_id: int
    target: str
    amount: int


@dataclass(frozen=True)
class Settlement:
    """The outcome of resolving a pool, before any ledger line is written.

    Invariant: ``sum(payouts) + takeout + breakage + carried_out + unclaimed
    - house_cover - guarantee_topup == total + carried_in``.
    """

    #: bet id -> amount credited to the bettor (stake + profit, house cover included);
    #: in a money return every bet id maps to its stake.
    payouts: dict[str, int]
    #: user id -> total credited; empty for a money return (the refunds are in ``payouts``).
    winners: dict[int, int]
    #: sorted user ids that had only losing bets; empty for a money return.
    losers: list[int]
    takeout: int
    breakage: int
    #: what the house pays in so that no winner gets less than ``stake * min_dividend``
    #: (a "minus pool"; with the default dividend of 1, their stake back).
    house_cover: int
    is_money_return: bool
    #: ``T``, the sum of all stakes.
    total: int
    #: ``N``, the net pool after takeout plus any carried-in pot (``total`` for a money
    #: return).
    net: int = 0
    #: what the house adds so that a won pool pays out its guarantee.
    guarantee_topup: int = 0
    #: the pot a previous pool carried into this one (part of its escrow).
    carried_in: int = 0
    #: the net pot moved to the successor pool when nobody backed the winner.
    carried_out: int = 0
    #: carried-in money nobody can be paid and no successor takes: to the house.
    unclaimed: int = 0


def _check_takeout(takeout: Fraction) -> None:
    if not 0 <= takeout < 1:
        raise ValueError(f"takeout must be in [0, 1), got {takeout}")


def _check_stakes(stakes: Sequence[Stake]) -> None:
    seen: set[str] = set()
    for s in stakes:
        if isinstance(s.amount, bool) or not isinstance(s.amount, int) or s.amount <= 0:
            raise ValueError(f"stake {s.bet_id!r} has a non-positive or non-integer amount")
        if s.bet_id in seen:
            raise ValueError(f"duplicate bet id {s.bet_id!r}")
        seen.add(s.bet_id)


def net_pool(total: int, takeout: Fraction) -> int:
    """``N = T - floor(T * takeout)``: the takeout is rounded down, in the players' favour.
    In integers (exact, and every 360 computes it per target: no Fraction arithmetic)."""
    _check_takeout(takeout)
    return total - total * takeout.numerator // takeout.denominator


def minimum_payout(stake: int, min_dividend: Fraction) -> int:
    """``ceil(stake * min_dividend)``: "at least" the minimum dividend, to the minor unit."""
    return -(-stake * min_dividend.numerator // min_dividend.denominator)


def settle(
    stakes: Sequence[Stake],
    winning_target: str,
    takeout: Fraction,
    rules: PoolRules = DEFAULT_RULES,
    *,
    carried_in: int = 0,
    carry: bool = False,
) -> Settlement:
    """Resolve a pool whose winning target is ``winning_target``.

    Each winning bet of stake ``s`` gets ``floor(s * P / W)`` where the pot ``P`` is the net
    pool (plus ``carried_in``), raised to ``rules.guarantee`` by the house when below it;
    the floors' remainder is the breakage. The house tops each winner up to
    ``ceil(S * min_dividend)``, ``S`` their stakes on the winner (``house_cover``, on
    their last bet). When nobody backed the winner (``W == 0``)
    the net pot moves to the successor when ``carry`` (the pool carries over and has one),
    else every stake is refunded without takeout and a carried-in pot goes to the house.
    """
    _check_takeout(takeout)
    _check_stakes(stakes)
    if carried_in < 0:
        raise ValueError("carried_in may not be negative")
    total = sum(s.amount for s in stakes)
    on_winner = sum(s.amount for s in stakes if s.target == winning_target)
    if on_winner:
        return _paid_out(stakes, winning_target, takeout, rules, carried_in)
    if carry and total + carried_in > 0:
        net = net_pool(total, takeout)
        return Settlement(
            payouts={},
            winners={},
            losers=sorted({s.user_id for s in stakes}),
            takeout=total - net,
            breakage=0,
            house_cover=0,
            is_money_return=False,
            total=total,
            net=net + carried_in,
            carried_in=carried_in,
            carried_out=net + carried_in,
        )
    return Settlement(
        payouts={s.bet_id: s.amount for s in stakes},
        winners={},
        losers=[],
        takeout=0,
        breakage=0,
        house_cover=0,
        is_money_return=True,
        total=total,
        net=total,
        carried_in=carried_in,
        unclaimed=carried_in,
    )


def _paid_out(
    stakes: Sequence[Stake],
    winning_target: str,
    takeout: Fraction,
    rules: PoolRules,
    carried_in: int,
) -> Settlement:
    """``settle`` when someone backed the winner."""
    total = sum(s.amount for s in stakes)
    on_winner = sum(s.amount for s in stakes if s.target == winning_target)
    net = net_pool(total, takeout) + carried_in
    topup = max(0, (rules.guarantee or 0) - net)
    pot = net + topup
    payouts: dict[str, int] = {}
    winners: dict[int, int] = {}  # the shares, then with the cover
    staked: dict[int, int] = {}
    last_bet: dict[int, str] = {}
    for s in stakes:
        if s.target != winning_target:
            continue
        payouts[s.bet_id] = s.amount * pot // on_winner
        winners[s.user_id] = winners.get(s.user_id, 0) + payouts[s.bet_id]
        staked[s.user_id] = staked.get(s.user_id, 0) + s.amount
        last_bet[s.user_id] = s.bet_id
    floors = sum(payouts.values())
    cover = 0
    for user_id, share in winners.items():
        # per winner, not per bet: rounded up per bet, a stake split into cents got
        # ceil(1 x 1.10) = 2 cents each, twice the stake, from the house
        owed = max(0, minimum_payout(staked[user_id], rules.min_dividend) - share)
        payouts[last_bet[user_id]] += owed
        winners[user_id] = share + owed
        cover += owed
    losers = sorted({s.user_id for s in stakes if s.user_id not in winners})
    return Settlement(
        payouts=payouts,
        winners=winners,
        losers=losers,
        takeout=total + carried_in - net,
        breakage=pot - floors,
        house_cover=cover,
        is_money_return=False,
        total=total,
        net=net,
        guarantee_topup=topup,
        carried_in=carried_in,
    )


def payout_pot(total: int, takeout: Fraction, rules: PoolRules, carried_in: int) -> int:
    """What a won pool pays out before minimum dividends: the net pool plus a carried-in
    pot, or the guarantee when that is more."""
    return max(net_pool(total, takeout) + carried_in, rules.guarantee or 0)


def multiplier(
    total: int,
    on_target: int,
    takeout: Fraction,
    rules: PoolRules = DEFAULT_RULES,
    carried_in: int = 0,
) -> Decimal:
    """Current return per unit staked on a target: ``P / on_target`` (``payout_pot``),
    ``1.0`` when empty. A minimum dividend is shown apart (it pays only a minus pool)."""
    if on_target == 0:
        return ratio(1, 1)
    return ratio(payout_pot(total, takeout, rules, carried_in), on_target)


def to_win_if_backed(
    total: int,
    on_target: int,
    takeout: Fraction,
    unit: int,
    rules: PoolRules = DEFAULT_RULES,
    carried_in: int = 0,
) -> Decimal:
    """Return per unit if one more ``unit`` went on the target: ``P' / (on_target + unit)``.

    ``unit`` is in minor units (e.g. one currency unit, ``10 ** exponent``). An empty pool
    with no takeout shows ``1.0``, as in the seed.
    """
    if unit <= 0:
        raise ValueError("unit must be positive")
    return ratio(payout_pot(total + unit, takeout, rules, carried_in), on_target + unit)
