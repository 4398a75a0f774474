"""Double-entry ledger rules (decisions §3)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.ledger import (
    HOUSE,
    OPERATOR,
    Line,
    audit,
    balances,
    check_balanced,
    escrow,
    settlement_lines,
    transfer,
    wallet,
)
from domain.parimutuel import Stake, settle


def test_account_names() -> None:
    assert wallet(17) == "wallet:17"
    assert escrow("p1") == "escrow:p1"
    assert (HOUSE, OPERATOR) == ("house", "operator")


def test_transfer() -> None:
    assert transfer("wallet:1", "escrow:p", "EUR", 500) == [
        Line("wallet:1", "EUR", -500),
        Line("escrow:p", "EUR", 500),
    ]
    for bad in (0, -1):
        with pytest.raises(ValueError):
            transfer("a", "b", "EUR", bad)
    with pytest.raises(ValueError):
        transfer("a", "a", "EUR", 1)
    with pytest.raises(TypeError):
        Line("a", "EUR", 1.5)  # type: ignore[arg-type]


def test_check_balanced() -> None:
    check_balanced([])
    check_balanced(transfer("a", "b", "EUR", 5) + transfer("a", "b", "JPY", 7))
    with pytest.raises(ValueError):
        check_balanced([Line("a", "EUR", -5), Line("b", "JPY", 5)])


def _stake_lines(pool: str, stakes: list[Stake]) -> list[Line]:
    lines: list[Line] = []
    for s in stakes:
        lines += transfer(wallet(s.user_id), escrow(pool), "EUR", s.amount)
    return lines


def test_worked_settlement_lines() -> None:
    stakes = [
        Stake("a", 1, "brazil", 10),
        Stake("b", 2, "brazil", 30),
        Stake("c", 3, "argentina", 60),
    ]
    s = settle(stakes, "brazil", Fraction(1, 10))
    lines = settlement_lines("p", "EUR", s, {x.bet_id: x.user_id for x in stakes})
    assert lines == [
        Line("escrow:p", "EUR", -22),
        Line("wallet:1", "EUR", 22),
        Line("escrow:p", "EUR", -67),
        Line("wallet:2", "EUR", 67),
        Line("escrow:p", "EUR", -10),
        Line("house", "EUR", 10),
        Line("escrow:p", "EUR", -1),
        Line("house", "EUR", 1),
    ]
    books = balances(_stake_lines("p", stakes) + lines)
    assert books[("escrow:p", "EUR")] == 0
    assert books[("house", "EUR")] == 11
    assert books[("wallet:3", "EUR")] == -60


def test_minus_pool_lines_bring_house_money_in_first() -> None:
    stakes = [Stake("a", 1, "brazil", 33), Stake("b", 2, "brazil", 67)]
    s = settle(stakes, "brazil", Fraction(1, 10))
    lines = settlement_lines("p", "EUR", s, {"a": 1, "b": 2})
    assert lines[:2] == [Line("house", "EUR", -11), Line("escrow:p", "EUR", 11)]
    books = balances(_stake_lines("p", stakes) + lines)
    assert books[("escrow:p", "EUR")] == 0
    assert books[("house", "EUR")] == 0
    assert books[("wallet:1", "EUR")] == 0 and books[("wallet:2", "EUR")] == 0


def test_money_return_lines_refund_each_user() -> None:
    stakes = [Stake("a", 1, "x", 10), Stake("b", 1, "y", 5), Stake("c", 2, "y", 7)]
    s = settle(stakes, "none", Fraction(1, 10))
    lines = settlement_lines("p", "EUR", s, {"a": 1, "b": 1, "c": 2})
    assert lines == transfer("escrow:p", "wallet:1", "EUR", 15) + transfer(
        "escrow:p", "wallet:2", "EUR", 7
    )


def test_settlement_lines_needs_every_bet_user() -> None:
    s = settle([Stake("a", 1, "x", 10)], "x", Fraction(0))
    with pytest.raises(ValueError):
        settlement_lines("p", "EUR", s, {})


def test_balances_accepts_lines_and_rows() -> None:
    rows = [("t1", "a", "EUR", -5), ("t1", "b", "EUR", 5)]
    assert balances(rows) == {("a", "EUR"): -5, ("b", "EUR"): 5}
    assert balances([Line("a", "EUR", 3), ("a", "EUR", 4)]) == {("a", "EUR"): 7}


def test_audit_clean_and_problems() -> None:
    rows = [
        ("t1", "house", "EUR", -10),
        ("t1", "wallet:1", "EUR", 10),
        ("t2", "wallet:1", "EUR", -4),
        ("t2", "escrow:p", "EUR", 4),
    ]
    assert audit(rows) == []
    unbalanced = [*rows, ("t3", "wallet:1", "EUR", 1)]
    assert any("t3" in p for p in audit(unbalanced))
    overdrawn = [*rows, ("t4", "wallet:1", "EUR", -7), ("t4", "house", "EUR", 7)]
    problems = audit(overdrawn)
    assert len(problems) == 1 and "wallet:1" in problems[0]
    mixed = [("t5", "wallet:1", "EUR", 5), ("t5", "house", "JPY", -5)]
    assert len([p for p in audit(mixed) if "t5" in p]) == 2
    assert audit([("t6", "a", "EUR", 1.0), ("t6", "b", "EUR", -1)])  # floats are a problem


_targets = st.sampled_from(["a", "b", "none"])
_stakes = st.lists(st.tuples(st.integers(1, 10), _targets, st.integers(1, 10**9)), max_size=25).map(
    lambda rows: [Stake(f"bet{i}", u, t, amt) for i, (u, t, amt) in enumerate(rows)]
)
_takeouts = st.fractions(min_value=0, max_value=Fraction(99, 100), max_denominator=1000)


@settings(max_examples=200)
@given(stakes=_stakes, winner=_targets, takeout=_takeouts)
def test_settlement_lines_balance_and_zero_escrow(
    stakes: list[Stake], winner: str, takeout: Fraction
) -> None:
    s = settle(stakes, winner, takeout)
    lines = settlement_lines("p", "EUR", s, {x.bet_id: x.user_id for x in stakes})
    check_balanced(lines)
    assert all(line.amount != 0 for line in lines)
    books = balances(_stake_lines("p", stakes) + lines)
    assert books.get(("escrow:p", "EUR"), 0) == 0
    for user_id, credited in s.winners.items():
        assert sum(line.amount for line in lines if line.account == wallet(user_id)) == credited


_accounts = st.sampled_from(["wallet:1", "wallet:2", "house", "escrow:p", "operator"])
_transfers = st.lists(
    st.tuples(_accounts, _accounts, st.sampled_from(["EUR", "JPY"]), st.integers(1, 10**6)).filter(
        lambda t: t[0] != t[1]
    ),
    max_size=30,
)


def _rows(tx_id: str, lines: list[Line]) -> list[tuple[str, str, str, int]]:
    return [(tx_id, ln.account, ln.currency, ln.amount) for ln in lines]


@settings(max_examples=200)
@given(moves=_transfers, tx_index=st.integers(0, 29), skew=st.integers(-5, 5).filter(bool))
def test_audit_random_books(
    moves: list[tuple[str, str, str, int]], tx_index: int, skew: int
) -> None:
    # Fund the wallets and the escrow from the operator first so none of them goes negative.
    rows: list[tuple[str, str, str, int]] = []
    for cur in ("EUR", "JPY"):
        for acc in ("wallet:1", "wallet:2", "escrow:p"):
            rows += _rows(f"fund-{acc}-{cur}", transfer(OPERATOR, acc, cur, 30 * 10**6))
    for i, (src, dst, cur, amount) in enumerate(moves):
        rows += _rows(f"tx{i}", transfer(src, dst, cur, amount))
    assert audit(rows) == []
    if moves:
        i = tx_index % len(moves)
        tx, account, cur, _amount = next(r for r in rows if r[0] == f"tx{i}")
        broken = [*rows, (tx, account, cur, skew)]
        assert any(f"tx{i} " in p for p in audit(broken))
