"""Pool rules (decisions §11) as pure math: minimum dividend, guarantee, carry-over, their
parsing, and the books they keep, by hand to the cent and under hypothesis."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.ledger import balances, check_balanced, escrow, settlement_lines, transfer, wallet
from domain.parimutuel import Settlement, Stake, settle
from domain.rules import PoolRules, parse_rules

DEFAULTS = PoolRules()


def _lines_for(pool: str, stakes: list[Stake], carried_in: int = 0) -> list:
    """What reached the escrow before settlement: the stakes and a carried-in pot."""
    lines = []
    for s in stakes:
        lines += transfer(wallet(s.user_id), escrow(pool), "EUR", s.amount)
    if carried_in:
        lines += transfer(escrow("before"), escrow(pool), "EUR", carried_in)
    return lines


# -- hand-computed, to the cent ------------------------------------------------------------


def test_minus_pool_at_min_dividend_1_10() -> None:
    # T = 100.00 (alice 60.00 on a, bob 30.00 on a, carol 10.00 on b), takeout 15%:
    # takeout 15.00, N = 85.00, W = 90.00
    # alice floor(60.00 * 85 / 90) = 56.66; at least 60.00 * 1.10 = 66.00: cover 9.34
    # bob   floor(30.00 * 85 / 90) = 28.33; at least 30.00 * 1.10 = 33.00: cover 4.67
    # breakage 85.00 - 84.99 = 0.01; the house: 15.00 + 0.01 - 14.01 = 1.00
    stakes = [Stake("x", 1, "a", 60_00), Stake("y", 2, "a", 30_00), Stake("z", 3, "b", 10_00)]
    rules = PoolRules(min_dividend=Fraction(11, 10))
    s = settle(stakes, "a", Fraction(15, 100), rules)
    assert s.payouts == {"x": 66_00, "y": 33_00}
    assert (s.takeout, s.breakage, s.house_cover, s.guarantee_topup) == (15_00, 1, 14_01, 0)
    lines = settlement_lines("p", "EUR", s, {"x": 1, "y": 2, "z": 3})
    assert lines[:2] == transfer("house", escrow("p"), "EUR", 14_01)
    books = balances(_lines_for("p", stakes) + lines)
    assert books[(escrow("p"), "EUR")] == 0
    assert books[("house", "EUR")] == 1_00


def test_a_minimum_dividend_pays_at_least_the_stake_times_it_rounded_up() -> None:
    # 0.05 * 1.1 = 0.055: "at least" is 0.06, never 0.05
    s = settle([Stake("x", 1, "a", 5)], "a", Fraction(0), PoolRules(min_dividend=Fraction(11, 10)))
    assert (s.payouts, s.house_cover) == ({"x": 6}, 1)


def test_a_guarantee_is_topped_up_when_the_pool_is_short() -> None:
    # T = 300.00 (alice 100.00 on a, bob 200.00 on b), takeout 10%: N = 270.00
    # guarantee 500.00 > N: the house adds 230.00; alice (the only winner) gets 500.00
    stakes = [Stake("x", 1, "a", 100_00), Stake("y", 2, "b", 200_00)]
    s = settle(stakes, "a", Fraction(1, 10), PoolRules(guarantee=500_00))
    assert s.payouts == {"x": 500_00}
    assert (s.takeout, s.breakage, s.guarantee_topup, s.house_cover) == (30_00, 0, 230_00, 0)
    lines = settlement_lines("p", "EUR", s, {"x": 1, "y": 2})
    assert lines[:2] == transfer("house", escrow("p"), "EUR", 230_00)
    books = balances(_lines_for("p", stakes) + lines)
    assert books[("house", "EUR")] == -200_00  # takeout 30.00 in, top-up 230.00 out


def test_a_guarantee_not_needed_costs_the_house_nothing() -> None:
    # T = 600.00, takeout 10%: N = 540.00 >= guarantee 500.00; alice 200.00 on a of W 200.00
    stakes = [Stake("x", 1, "a", 200_00), Stake("y", 2, "b", 400_00)]
    s = settle(stakes, "a", Fraction(1, 10), PoolRules(guarantee=500_00))
    assert s.payouts == {"x": 540_00}
    assert (s.takeout, s.guarantee_topup, s.house_cover) == (60_00, 0, 0)


def test_a_guarantee_with_nobody_on_the_winner_is_a_refund() -> None:
    s = settle([Stake("x", 1, "b", 10_00)], "a", Fraction(0), PoolRules(guarantee=500_00))
    assert s.is_money_return and s.guarantee_topup == 0


def test_a_carry_over_moves_the_net_pot_then_is_won() -> None:
    # pool 1: 10.00 on b and 20.00 on c, takeout 10%, a wins: nobody backed it
    #   takeout 3.00, carried out 27.00
    first = [Stake("x", 1, "b", 10_00), Stake("y", 2, "c", 20_00)]
    s1 = settle(first, "a", Fraction(1, 10), carry=True)
    assert (s1.payouts, s1.losers, s1.is_money_return) == ({}, [1, 2], False)
    assert (s1.takeout, s1.carried_out) == (3_00, 27_00)
    lines1 = settlement_lines("p1", "EUR", s1, {"x": 1, "y": 2}, successor="p2")
    assert lines1[-2:] == transfer(escrow("p1"), escrow("p2"), "EUR", 27_00)
    # pool 2 starts with 27.00: 5.00 on a, carried again: takeout 0.50, out 4.50 + 27.00
    second = [Stake("u", 3, "a", 5_00)]
    s2 = settle(second, "b", Fraction(1, 10), carried_in=27_00, carry=True)
    assert (s2.takeout, s2.carried_out) == (50, 31_50)
    # pool 3 starts with 31.50: alice 4.00 and bob 6.00 on a, takeout 10%, a wins
    #   N = 9.00 + 31.50 = 40.50; alice floor(4 * 40.50 / 10) = 16.20, bob 24.30
    third = [Stake("v", 1, "a", 4_00), Stake("w", 2, "a", 6_00)]
    s3 = settle(third, "a", Fraction(1, 10), carried_in=31_50, carry=True)
    assert s3.payouts == {"v": 16_20, "w": 24_30}
    assert (s3.takeout, s3.breakage, s3.carried_out) == (1_00, 0, 0)
    lines3 = settlement_lines("p3", "EUR", s3, {"v": 1, "w": 2})
    books = balances(_lines_for("p3", third, 31_50) + lines3)
    assert books[(escrow("p3"), "EUR")] == 0


def test_a_carried_in_pot_nobody_can_take_goes_to_the_house() -> None:
    s = settle([Stake("x", 1, "b", 10_00)], "a", Fraction(0), carried_in=7_00)
    assert s.is_money_return and s.payouts == {"x": 10_00} and s.unclaimed == 7_00
    lines = settlement_lines("p", "EUR", s, {"x": 1})
    assert lines[-2:] == transfer(escrow("p"), "house", "EUR", 7_00)


def test_a_carry_over_needs_the_successor() -> None:
    s = settle([Stake("x", 1, "b", 10_00)], "a", Fraction(0), carry=True)
    with pytest.raises(ValueError):
        settlement_lines("p", "EUR", s, {"x": 1})


# -- parsing -------------------------------------------------------------------------------


def test_rules_are_parsed_over_the_defaults() -> None:
    rules = parse_rules(
        {"min_dividend": "1.10", "guarantee": "500", "carry_over": "true", "bet_delay_ms": 3000},
        "EUR",
        2,
        DEFAULTS,
    )
    assert rules == PoolRules(Fraction(11, 10), 500_00, True, 3000)
    assert parse_rules({}, "EUR", 2, rules) == rules
    assert parse_rules({"min_dividend": None, "guarantee": ""}, "EUR", 2, rules) == rules
    assert rules.wire(2) == {
        "min_dividend": Decimal("1.1"),
        "guarantee": Decimal("500.0"),
        "carry_over": True,
        "bet_delay_ms": 3000,
    }
    assert PoolRules.from_doc(rules.to_doc()) == rules
    assert PoolRules.from_doc(None) == DEFAULTS


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"min_dividend": "0.99"}, "min_dividend"),
        ({"min_dividend": "100.01"}, "min_dividend"),
        ({"min_dividend": "1.00001"}, "min_dividend"),
        ({"min_dividend": 1.1}, "min_dividend"),  # a binary float
        ({"min_dividend": "NaN"}, "min_dividend"),
        ({"guarantee": "0"}, "guarantee"),
        ({"guarantee": "-5"}, "guarantee"),
        ({"guarantee": "10.001"}, "guarantee"),  # more decimals than EUR has
        ({"guarantee": "1E+30"}, "guarantee"),
        ({"guarantee": "10", "guarantee_currency": "JPY"}, "guarantee_currency"),
        ({"guarantee": "10", "guarantee_currency": "ZZZ"}, "guarantee_currency"),
        ({"carry_over": "maybe"}, "carry_over"),
        ({"bet_delay_ms": -1}, "bet_delay_ms"),
        ({"bet_delay_ms": 15_001}, "bet_delay_ms"),
        ({"bet_delay_ms": "1.5"}, "bet_delay_ms"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(fields: dict, parameter: str) -> None:
    with pytest.raises(DomainError) as caught:
        parse_rules(fields, "EUR", 2, DEFAULTS)
    assert caught.value.code == "INVALID_PARAMETER"
    assert caught.value.extra.get("parameter") == parameter


def test_a_guarantee_in_yen_has_no_decimals() -> None:
    assert parse_rules({"guarantee": "1000"}, "JPY", 0, DEFAULTS).guarantee == 1000
    with pytest.raises(DomainError):
        parse_rules({"guarantee": "1000.5"}, "JPY", 0, DEFAULTS)


# -- the books, for any bets, rules and outcome -------------------------------------------

_targets = st.sampled_from(["a", "b", "none"])
_stakes = st.lists(st.tuples(st.integers(1, 10), _targets, st.integers(1, 10**9)), max_size=25).map(
    lambda rows: [Stake(f"bet{i}", u, t, amt) for i, (u, t, amt) in enumerate(rows)]
)
_rules = st.builds(
    PoolRules,
    min_dividend=st.fractions(min_value=1, max_value=100, max_denominator=10_000),
    guarantee=st.none() | st.integers(1, 10**12),
    carry_over=st.booleans(),
)


def _books_close(s: Settlement) -> bool:
    """paid + refunded + house - house contributions + carried out - carried in = staked."""
    paid_or_refunded = sum(s.payouts.values())
    house = s.takeout + s.breakage + s.unclaimed
    contributions = s.house_cover + s.guarantee_topup
    return paid_or_refunded + house - contributions + s.carried_out - s.carried_in == s.total


@settings(max_examples=300)
@given(
    stakes=_stakes,
    winner=_targets,
    takeout=st.fractions(min_value=0, max_value=Fraction(99, 100), max_denominator=1000),
    rules=_rules,
    carried_in=st.integers(0, 10**10),
    carry=st.booleans(),
)
def test_the_books_close_for_any_bets_rules_and_outcome(
    stakes: list[Stake],
    winner: str,
    takeout: Fraction,
    rules: PoolRules,
    carried_in: int,
    carry: bool,
) -> None:
    s = settle(stakes, winner, takeout, rules, carried_in=carried_in, carry=carry)
    assert _books_close(s)
    assert min(s.takeout, s.breakage, s.house_cover, s.guarantee_topup, s.carried_out) >= 0
    for user_id in {bet.user_id for bet in stakes if bet.target == winner}:
        # the minimum dividend holds for each winner's stakes on the winner
        backed = sum(
            bet.amount for bet in stakes if bet.target == winner and bet.user_id == user_id
        )
        assert s.winners[user_id] * rules.min_dividend.denominator >= (
            backed * rules.min_dividend.numerator
        )
    if s.payouts and not s.is_money_return:
        assert sum(s.payouts.values()) + s.breakage >= (rules.guarantee or 0)
    lines = settlement_lines("p", "EUR", s, {x.bet_id: x.user_id for x in stakes}, successor="next")
    check_balanced(lines)
    books = balances(_lines_for("p", stakes, carried_in) + lines)
    assert books.get((escrow("p"), "EUR"), 0) == 0
    assert books.get((escrow("next"), "EUR"), 0) == s.carried_out
