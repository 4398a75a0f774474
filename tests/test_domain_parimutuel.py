"""Parimutuel settlement and odds (decisions §2 Payout, Odds), with hand-worked numbers."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.parimutuel import Settlement, Stake, multiplier, net_pool, settle, to_win_if_backed

TEN_PERCENT = Fraction(1, 10)


def _invariant_holds(s: Settlement) -> bool:
    return sum(s.payouts.values()) + s.takeout + s.breakage - s.house_cover == s.total


def test_worked_example_with_takeout_and_breakage() -> None:
    # T = 100, takeout 10% -> 10, N = 90, W = 40.
    # A: floor(10 * 90 / 40) = floor(22.5) = 22; B: floor(30 * 90 / 40) = floor(67.5) = 67.
    # Breakage = 90 - 89 = 1.
    stakes = [
        Stake("a", 1, "brazil", 10),
        Stake("b", 2, "brazil", 30),
        Stake("c", 3, "argentina", 60),
    ]
    s = settle(stakes, "brazil", TEN_PERCENT)
    assert s.total == 100
    assert s.net == 90
    assert s.takeout == 10
    assert s.payouts == {"a": 22, "b": 67}
    assert s.breakage == 1
    assert s.house_cover == 0
    assert s.winners == {1: 22, 2: 67}
    assert s.losers == [3]
    assert not s.is_money_return
    assert _invariant_holds(s)


def test_no_takeout_exact_split() -> None:
    # T = 60, N = 60, W = 20 -> 3x: 5 -> 15, 15 -> 45; no breakage.
    stakes = [Stake("a", 1, "x", 5), Stake("b", 2, "x", 15), Stake("c", 3, "y", 40)]
    s = settle(stakes, "x", Fraction(0))
    assert s.payouts == {"a": 15, "b": 45}
    assert (s.takeout, s.breakage, s.house_cover) == (0, 0, 0)
    assert s.losers == [3]


def test_minus_pool_everyone_on_winner_is_refunded_by_house_cover() -> None:
    # T = W = 100, takeout 10 -> N = 90. Floors: 33 * 0.9 = 29.7 -> 29; 67 * 0.9 = 60.3 -> 60.
    # Breakage = 90 - 89 = 1. Cover = (33 - 29) + (67 - 60) = 11. House nets 10 + 1 - 11 = 0.
    stakes = [Stake("a", 1, "brazil", 33), Stake("b", 2, "brazil", 67)]
    s = settle(stakes, "brazil", TEN_PERCENT)
    assert s.payouts == {"a": 33, "b": 67}
    assert s.winners == {1: 33, 2: 67}
    assert s.losers == []
    assert s.takeout == 10
    assert s.breakage == 1
    assert s.house_cover == 11
    assert s.takeout + s.breakage - s.house_cover == 0
    assert not s.is_money_return
    assert _invariant_holds(s)


def test_minus_pool_with_small_losing_side() -> None:
    # T = 102, takeout 10% -> floor(10.2) = 10, N = 92, W = 100 -> each winner below stake.
    # a: floor(50 * 92 / 100) = 46 -> covered by 4; b likewise. Breakage 92 - 92 = 0.
    stakes = [Stake("a", 1, "y", 50), Stake("b", 2, "y", 50), Stake("c", 3, "n", 2)]
    s = settle(stakes, "y", TEN_PERCENT)
    assert s.payouts == {"a": 50, "b": 50}
    assert (s.takeout, s.breakage, s.house_cover) == (10, 0, 8)
    assert s.losers == [3]
    assert _invariant_holds(s)


def test_nobody_on_winner_is_a_money_return() -> None:
    stakes = [Stake("a", 1, "brazil", 10), Stake("b", 2, "argentina", 25)]
    s = settle(stakes, "none", TEN_PERCENT)
    assert s.is_money_return
    assert s.payouts == {"a": 10, "b": 25}
    assert s.winners == {}
    assert s.losers == []
    assert (s.takeout, s.breakage, s.house_cover) == (0, 0, 0)
    assert s.total == 35
    assert _invariant_holds(s)


def test_empty_pool_is_a_money_return() -> None:
    s = settle([], "brazil", TEN_PERCENT)
    assert s.is_money_return
    assert s.payouts == {}
    assert s.total == 0


def test_user_with_a_winning_bet_is_not_a_loser() -> None:
    stakes = [Stake("a", 1, "x", 10), Stake("b", 1, "y", 10), Stake("c", 2, "y", 10)]
    s = settle(stakes, "x", Fraction(0))
    assert s.winners == {1: 30}
    assert s.losers == [2]


def test_same_user_two_winning_bets_are_summed() -> None:
    # T = 40, N = 36, W = 30: a: floor(10 * 36 / 30) = 12, b: floor(20 * 36 / 30) = 24.
    stakes = [Stake("a", 7, "x", 10), Stake("b", 7, "x", 20), Stake("c", 8, "y", 10)]
    s = settle(stakes, "x", TEN_PERCENT)
    assert s.payouts == {"a": 12, "b": 24}
    assert s.winners == {7: 36}
    assert (s.takeout, s.breakage) == (4, 0)


def test_takeout_is_floored() -> None:
    # T = 99 at 10% -> floor(9.9) = 9 taken, N = 90.
    assert net_pool(99, TEN_PERCENT) == 90
    assert net_pool(0, TEN_PERCENT) == 0
    assert net_pool(7, Fraction(0)) == 7


@pytest.mark.parametrize(
    "stakes",
    [
        [Stake("a", 1, "x", 0)],
        [Stake("a", 1, "x", -5)],
        [Stake("a", 1, "x", 5), Stake("a", 2, "x", 5)],
    ],
)
def test_settle_refuses_bad_input(stakes: list[Stake]) -> None:
    with pytest.raises(ValueError):
        settle(stakes, "x", Fraction(0))


def test_settle_refuses_bad_takeout() -> None:
    with pytest.raises(ValueError):
        settle([Stake("a", 1, "x", 5)], "x", Fraction(1))


def test_multiplier() -> None:
    # Worked example pool: T = 100, N = 90. brazil 40 -> 2.25; argentina 60 -> 1.5.
    assert multiplier(100, 40, TEN_PERCENT) == Decimal("2.25")
    assert multiplier(100, 60, TEN_PERCENT) == Decimal("1.5")
    assert str(multiplier(100, 0, TEN_PERCENT)) == "1.0"
    assert str(multiplier(0, 0, Fraction(0))) == "1.0"
    # 90 / 70 = 1.285714... rounded down to 4 places
    assert str(multiplier(100, 70, TEN_PERCENT)) == "1.2857"


def test_to_win_if_backed() -> None:
    # Empty pool, no takeout: 1 / 1.
    assert str(to_win_if_backed(0, 0, Fraction(0), 100)) == "1.0"
    # T = 100 (minor), unit 100: T' = 200, N' = 180, on brazil 40 + 100 = 140 -> 1.2857.
    assert str(to_win_if_backed(100, 40, TEN_PERCENT, 100)) == "1.2857"
    # Nothing on the target: T' = 200, N' = 180, 180 / 100 = 1.8.
    assert str(to_win_if_backed(100, 0, TEN_PERCENT, 100)) == "1.8"
    with pytest.raises(ValueError):
        to_win_if_backed(0, 0, Fraction(0), 0)


_targets = st.sampled_from(["a", "b", "c", "none"])
_stakes = st.lists(st.tuples(st.integers(1, 20), _targets, st.integers(1, 10**9)), max_size=30).map(
    lambda rows: [Stake(f"bet{i}", u, t, amt) for i, (u, t, amt) in enumerate(rows)]
)
_takeouts = st.one_of(
    st.just(Fraction(0)),
    st.fractions(min_value=0, max_value=Fraction(99, 100), max_denominator=10**6),
)


@settings(max_examples=200)
@given(stakes=_stakes, winner=_targets, takeout=_takeouts)
def test_settlement_properties(stakes: list[Stake], winner: str, takeout: Fraction) -> None:
    s = settle(stakes, winner, takeout)
    total = sum(x.amount for x in stakes)
    winning = [x for x in stakes if x.target == winner]
    assert s.total == total
    assert _invariant_holds(s)
    assert s.takeout >= 0 and s.breakage >= 0 and s.house_cover >= 0
    if not winning:
        assert s.is_money_return
        assert s.payouts == {x.bet_id: x.amount for x in stakes}
        assert (s.takeout, s.breakage, s.house_cover) == (0, 0, 0)
        assert s.winners == {} and s.losers == []
        return
    assert not s.is_money_return
    assert set(s.payouts) == {x.bet_id for x in winning}
    for user_id in {x.user_id for x in winning}:  # each winner gets their stakes back
        assert s.winners[user_id] >= sum(x.amount for x in winning if x.user_id == user_id)
    # each floor drops strictly less than one minor unit
    assert s.breakage < len(winning)
    assert s.takeout == total - net_pool(total, takeout)
    winner_users = {x.user_id for x in winning}
    assert set(s.winners) == winner_users
    assert sum(s.winners.values()) == sum(s.payouts.values())
    assert s.losers == sorted({x.user_id for x in stakes} - winner_users)
    # the house covers only when N < W, and then every winner gets exactly their stake,
    # so the house keeps no more than the losing stakes
    on_winner = sum(x.amount for x in winning)
    if s.net >= on_winner:
        assert s.house_cover == 0
    else:
        assert sum(s.payouts.values()) == on_winner
        assert s.takeout + s.breakage - s.house_cover == total - on_winner


@settings(max_examples=200)
@given(
    total=st.integers(0, 10**12),
    extra=st.integers(0, 10**12),
    takeout=_takeouts,
    unit=st.integers(1, 10**4),
)
def test_odds_never_overstate(total: int, extra: int, takeout: Fraction, unit: int) -> None:
    on_target = min(total, extra)
    net = net_pool(total, takeout)
    m = multiplier(total, on_target, takeout)
    if on_target:
        assert Fraction(m) <= Fraction(net, on_target) < Fraction(m) + Fraction(1, 10**4)
    else:
        assert m == 1
    w = to_win_if_backed(total, on_target, takeout, unit)
    assert Fraction(w) <= Fraction(net_pool(total + unit, takeout), on_target + unit)
