"""Exact money parsing and formatting (decisions §2 Money)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.money import (
    MAX_MINOR,
    decimal_text,
    exponent_of,
    fixed_text,
    parse_amount,
    parse_rate,
    ratio,
    to_wire,
)


def test_domain_error_carries_code_text_and_extra() -> None:
    err = DomainError("INVALID_STAKE", "Too much.", limit="max_stake")
    assert err.code == "INVALID_STAKE"
    assert err.text == "Too much."
    assert err.extra == {"limit": "max_stake"}
    assert "INVALID_STAKE" in str(err)


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("EUR", 2), ("usd", 2), ("XYZ", 2), ("JPY", 0), ("krw", 0), (" ISK ", 0), ("CLP", 0),
     ("VND", 0), ("BHD", 3), ("kwd", 3), ("JOD", 3), ("OMR", 3), ("TND", 3)],
)  # fmt: skip
def test_exponent_of(currency: str, exponent: int) -> None:
    assert exponent_of(currency) == exponent


@pytest.mark.parametrize(
    ("value", "exponent", "minor"),
    [
        (1, 2, 100),
        ("1", 2, 100),
        ("10.50", 2, 1050),
        (" 2.5 ", 2, 250),
        ("1.50", 2, 150),
        ("1.500", 2, 150),
        ("0.01", 2, 1),
        (".5", 2, 50),
        (Decimal("10.5"), 2, 1050),
        (Decimal("1E+2"), 2, 10000),
        (Decimal("1.000000000000000000000000000000"), 2, 100),
        ("7", 0, 7),
        ("7.0", 0, 7),
        ("1.234", 3, 1234),
        ("10000000000000", 2, MAX_MINOR),
    ],
)
def test_parse_amount_accepts_exact_values(value: object, exponent: int, minor: int) -> None:
    assert parse_amount(value, exponent) == minor


@pytest.mark.parametrize(
    ("value", "limit"),
    [
        (1.5, None),
        (True, None),
        (None, None),
        ("", None),
        ("abc", None),
        ("NaN", None),
        ("Infinity", None),
        ("1_000", None),
        ("1,5", None),
        ([1], None),
        (Decimal("NaN"), None),
        (Decimal("Infinity"), None),
        (0, "positive"),
        ("0.00", "positive"),
        ("-1", "positive"),
        (Decimal("-0"), "positive"),
        ("1.005", "decimals"),
        ("0.001", "decimals"),
        (Decimal("1.0000000000000000000000000001"), "decimals"),  # 29 digits: no rounding
        (Decimal("1E-999999"), "decimals"),
        ("10000000000000.01", "max_amount"),
        (Decimal("1E+999999"), "max_amount"),
    ],
)
def test_parse_amount_rejects(value: object, limit: str | None) -> None:
    with pytest.raises(DomainError) as info:
        parse_amount(value, 2, field="stake")
    assert info.value.code == "INVALID_STAKE"
    assert "stake" in info.value.text
    assert info.value.extra.get("limit") == limit


def test_parse_amount_custom_code_and_zero_decimal_currency() -> None:
    with pytest.raises(DomainError) as info:
        parse_amount("1.5", 0, field="amount", code="INVALID_PARAMETER")
    assert info.value.code == "INVALID_PARAMETER"
    assert "no decimals" in info.value.text


@pytest.mark.parametrize(
    ("minor", "exponent", "text"),
    [
        (1050, 2, "10.5"),
        (1000, 2, "10.0"),
        (0, 2, "0.0"),
        (1, 2, "0.01"),
        (5, 0, "5.0"),
        (-250, 2, "-2.5"),
        (1234, 3, "1.234"),
        (1200, 3, "1.2"),
        (10**15, 2, "10000000000000.0"),
    ],
)
def test_to_wire(minor: int, exponent: int, text: str) -> None:
    out = to_wire(minor, exponent)
    assert str(out) == text
    assert out == Decimal(text)


@pytest.mark.parametrize(
    ("num", "den", "text"),
    [(3, 2, "1.5"), (1, 1, "1.0"), (10, 3, "3.3333"), (2, 3, "0.6666"), (90, 40, "2.25"),
     (0, 5, "0.0"), (5, 1, "5.0")],
)  # fmt: skip
def test_ratio_rounds_down(num: int, den: int, text: str) -> None:
    assert str(ratio(num, den)) == text


def test_ratio_places() -> None:
    assert str(ratio(2, 3, places=2)) == "0.66"
    with pytest.raises(ZeroDivisionError):
        ratio(1, 0)


@pytest.mark.parametrize(
    ("value", "rate"),
    [
        (None, Fraction(0)),
        ("", Fraction(0)),
        ("None", Fraction(0)),
        (0, Fraction(0)),
        ("0.05", Fraction(1, 20)),
        (Decimal("0.1"), Fraction(1, 10)),
        (" 0.125 ", Fraction(1, 8)),
        (Fraction(1, 3), Fraction(1, 3)),
    ],
)
def test_parse_rate(value: object, rate: Fraction) -> None:
    assert parse_rate(value) == rate


@pytest.mark.parametrize(
    "value", [0.05, 1, "1", "1.0", "-0.01", "abc", True, "NaN", "0.00000000001", [0.1]]
)
def test_parse_rate_rejects(value: object) -> None:
    with pytest.raises(DomainError) as info:
        parse_rate(value)
    assert info.value.code == "INVALID_PARAMETER"


@settings(max_examples=200)
@given(minor=st.integers(min_value=1, max_value=MAX_MINOR), exponent=st.integers(0, 3))
def test_wire_round_trip(minor: int, exponent: int) -> None:
    wire = to_wire(minor, exponent)
    assert parse_amount(wire, exponent) == minor
    assert parse_amount(str(wire), exponent) == minor
    assert wire.as_tuple().exponent < 0  # always at least one decimal digit


@settings(max_examples=200)
@given(num=st.integers(0, 10**12), den=st.integers(1, 10**12))
def test_ratio_is_floor_of_true_value(num: int, den: int) -> None:
    r = Fraction(ratio(num, den))
    assert r <= Fraction(num, den) < r + Fraction(1, 10**4)


@pytest.mark.parametrize(
    ("minor", "exponent", "text"),
    [(450, 2, "4.50"), (500, 2, "5.00"), (0, 2, "0.00"), (5, 0, "5"), (-5, 2, "-0.05"),
     (1, 3, "0.001"), (10**30 + 7, 4, "100000000000000000000000000.0007")],
)  # fmt: skip
def test_fixed_text_has_exactly_the_currencys_decimals(
    minor: int, exponent: int, text: str
) -> None:
    assert fixed_text(minor, exponent) == text


@pytest.mark.parametrize(
    ("value", "exponent", "text"),
    [("7.5", 2, "7.50"), ("2.8500", 2, "2.85"), ("1.2345", 2, "1.2345"), ("1E+3", 2, "1000.00"),
     ("3", 0, "3"), ("0.125", 0, "0.125")],
)  # fmt: skip
def test_decimal_text_never_rounds_and_pads_to_the_exponent(
    value: str, exponent: int, text: str
) -> None:
    assert decimal_text(Decimal(value), exponent) == text


@settings(max_examples=200)
@given(minor=st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR), exponent=st.integers(0, 4))
def test_fixed_text_round_trip(minor: int, exponent: int) -> None:
    text = fixed_text(minor, exponent)
    assert Decimal(text).scaleb(exponent) == minor
    assert len(text.partition(".")[2]) == exponent
