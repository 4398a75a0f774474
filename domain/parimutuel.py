"""Parimutuel settlement and odds, exactly per decisions §2, in integer minor units.

Everything here is integer or ``Fraction`` arithmetic: each rounding step is an explicit
floor, so the books always add up to the last minor unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from domain.money import ratio

__all__ = [
    "Settlement",
    "Stake",
    "multiplier",
    "net_pool",
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

    Invariant: ``sum(payouts.values()) + takeout + breakage - house_cover == total``.
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
    #: what the house pays in so that no winner gets less than their stake ("minus pool").
    house_cover: int
    is_money_return: bool
    #: ``T``, the sum of all stakes.
    total: int
    #: ``N``, the net pool after takeout (``total`` for a money return).
    net: int = 0


def _check_takeout(takeout: Fraction) -> None:
    if not 0 <= takeout < 1:
        raise ValueError(f"takeout must be in [0, 1), got {takeout}")


def net_pool(total: int, takeout: Fraction) -> int:
    """``N = T - floor(T * takeout)``: the takeout is rounded down, in the players' favour."""
    _check_takeout(takeout)
    return total - math.floor(total * takeout)


def settle(stakes: Sequence[Stake], winning_target: str, takeout: Fraction) -> Settlement:
    """Resolve a pool whose winning target is ``winning_target``.

    Each winning bet of stake ``s`` gets ``floor(s * N / W)``; the sum of what those floors
    drop is the breakage. When the takeout would leave a winner below their stake the house
    tops them up to it (``house_cover``). When nobody backed the winner (``W == 0``) every
    stake is refunded and no takeout is taken.
    """
    _check_takeout(takeout)
    seen: set[str] = set()
    for s in stakes:
        if isinstance(s.amount, bool) or not isinstance(s.amount, int) or s.amount <= 0:
            raise ValueError(f"stake {s.bet_id!r} has a non-positive or non-integer amount")
        if s.bet_id in seen:
            raise ValueError(f"duplicate bet id {s.bet_id!r}")
        seen.add(s.bet_id)

    total = sum(s.amount for s in stakes)
    on_winner = sum(s.amount for s in stakes if s.target == winning_target)

    if on_winner == 0:
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
        )

    net = net_pool(total, takeout)
    cut = total - net
    payouts: dict[str, int] = {}
    winners: dict[int, int] = {}
    floors = 0
    cover = 0
    for s in stakes:
        if s.target != winning_target:
            continue
        share = s.amount * net // on_winner
        floors += share
        paid = max(share, s.amount)
        cover += paid - share
        payouts[s.bet_id] = paid
        winners[s.user_id] = winners.get(s.user_id, 0) + paid
    losers = sorted({s.user_id for s in stakes if s.user_id not in winners})
    return Settlement(
        payouts=payouts,
        winners=winners,
        losers=losers,
        takeout=cut,
        breakage=net - floors,
        house_cover=cover,
        is_money_return=False,
        total=total,
        net=net,
    )


def multiplier(total: int, on_target: int, takeout: Fraction) -> Decimal:
    """Current return per unit staked on a target: ``N / on_target``, ``1.0`` when empty."""
    if on_target == 0:
        return ratio(1, 1)
    return ratio(net_pool(total, takeout), on_target)


def to_win_if_backed(total: int, on_target: int, takeout: Fraction, unit: int) -> Decimal:
    """Return per unit if one more ``unit`` went on the target: ``N' / (on_target + unit)``.

    ``unit`` is in minor units (e.g. one currency unit, ``10 ** exponent``). An empty pool
    with no takeout shows ``1.0``, as in the seed.
    """
    if unit <= 0:
        raise ValueError("unit must be positive")
    return ratio(net_pool(total + unit, takeout), on_target + unit)
