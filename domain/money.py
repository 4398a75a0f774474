"""Exact money: integer minor units inside, exact decimal text on the wire.

Binary floats are refused everywhere: ``0.1 + 0.2`` is not a sum an operator running real
money can explain to a player, so amounts are parsed straight from decimal text (or an
int / ``Decimal``) into integer minor units and only turned back into ``Decimal`` for output.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from domain.errors import DomainError

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_BALANCE",
    "MAX_MINOR",
    "MAX_POOL_TOTAL",
    "check_deposit",
    "exponent_of",
    "parse_amount",
    "parse_currency",
    "parse_factor",
    "parse_rate",
    "rate_text",
    "ratio",
    "stored_rate",
    "to_wire",
]

#: Largest single amount accepted from the wire (deposit, withdrawal, stake, min/max
#: stake), in minor units: 10^13 EUR. Far above any real stake, refused past it.
MAX_MINOR = 10**15

#: Largest balance a deposit may bring a wallet to, in minor units (winnings may pass it;
#: then the wallet only takes no more deposits).
MAX_BALANCE = 10**15

#: Largest total of stakes in one pool, in minor units, so that a payout line (at most the
#: pool's total) stays far inside SQLite's 64-bit integers (2^63 - 1 ~ 9.2 * 10^18) even
#: when a whole batch of maximal stakes is checked against the total before the batch.
MAX_POOL_TOTAL = 10**17

#: Most decimal places accepted in a takeout rate; more is noise and only grows fractions.
MAX_RATE_PLACES = 10

#: Longest decimal text accepted; a real amount or rate is far shorter.
_MAX_TEXT = 64

#: The active ISO 4217 currency codes and their minor-unit exponents (decimal places).
#: A static table (decisions: no dependency for 180 rows that change once in years);
#: codes without a minor unit (gold XAU, SDR XDR, test XTS, none XXX...) are left out:
#: no one stakes in them. A code not listed here is refused, never guessed.
_CODES_BY_EXPONENT = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    2: "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP "
    "ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR "
    "JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU "
    "MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR "
    "RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
CURRENCY_EXPONENTS: dict[str, int] = {
    code: exponent for exponent, codes in _CODES_BY_EXPONENT.items() for code in codes.split()
}

# Plain decimal text only: ASCII digits, one optional point, optional short exponent.
# ``Decimal()`` alone would also take "1_000", Unicode digits and "NaN".
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")


def exponent_of(currency: str) -> int:
    """Decimal places of ``currency`` (its ISO 4217 minor unit).

    Input goes through ``parse_currency`` first; only a wallet or game stored by an older
    version can hold an unlisted code, and it keeps the 2 places it was written with.
    """
    return CURRENCY_EXPONENTS.get(currency.strip().upper(), 2)


def parse_currency(value: object, *, field: str = "currency", default: str | None = None) -> str:
    """An ISO 4217 code from the wire (any case, blank means ``default``), or
    ``INVALID_PARAMETER``: a mistyped ``ZZZ`` must not create a wallet or a game."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "None", "null")):
        if default is None:
            raise DomainError("MISSING_PARAMETER", f"{field} is required.", parameter=field)
        value = default
    code = value.strip().upper() if isinstance(value, str) else None
    if code not in CURRENCY_EXPONENTS:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{field} must be an ISO 4217 currency code like EUR, not {str(value)[:16]!r}.",
            parameter=field,
        )
    return code


def _to_decimal(value: object, field: str, code: str) -> Decimal:
    """Read a wire value as an exact finite ``Decimal``; refuse floats and non-numbers."""
    if isinstance(value, bool) or value is None:
        raise DomainError(code, f"{field} must be a number.", parameter=field)
    if isinstance(value, float):
        raise DomainError(
            code,
            f"{field} must be an exact decimal (a number or a string), not a binary float.",
            parameter=field,
        )
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise DomainError(code, f"{field} must be a finite number.", parameter=field)
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_TEXT or not _DECIMAL_TEXT.fullmatch(text):
            raise DomainError(
                code, f"{field} must be a decimal number, like 10.50.", parameter=field
            )
        return Decimal(text)
    raise DomainError(code, f"{field} must be a number.", parameter=field)


def _stripped(d: Decimal) -> tuple[int, int]:
    """``d`` as ``(coefficient, exponent)`` without trailing zeros, computed exactly.

    ``Decimal.normalize`` would round to the context precision; this never rounds.
    """
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)  # callers pass finite values only
    end = len(digits)
    while end > 1 and digits[end - 1] == 0:
        end -= 1
    exp += len(digits) - end
    coefficient = int("".join(map(str, digits[:end])) or "0")
    return (-coefficient if sign else coefficient), exp


def parse_amount(
    value: object, exponent: int, *, field: str = "amount", code: str = "INVALID_STAKE"
) -> int:
    """Turn a wire amount into positive integer minor units, or raise ``DomainError(code)``.

    Accepts ``int``, ``Decimal`` and decimal text. An amount with more decimals than the
    currency allows is refused rather than rounded: silently moving money is worse than a
    clear error. ``"1.50"`` and ``"1.500"`` are fine for a 2-decimal currency: they are exact.
    """
    if exponent < 0:
        raise ValueError("exponent must be >= 0")
    d = _to_decimal(value, field, code)
    if d <= 0:
        raise DomainError(
            code, f"{field} must be greater than zero.", parameter=field, limit="positive"
        )
    # Exact comparison (Decimal compares without rounding); done before any scaling so
    # a huge exponent such as 1E+999999 never turns into a huge integer.
    if d > Decimal(MAX_MINOR).scaleb(-exponent):
        raise DomainError(
            code,
            f"{field} may be at most {to_wire(MAX_MINOR, exponent)}.",
            parameter=field,
            limit="max_amount",
        )
    coefficient, exp = _stripped(d)
    if exp + exponent < 0:
        places = "no decimals" if exponent == 0 else f"at most {exponent} decimal places"
        raise DomainError(
            code, f"{field} may have {places} in this currency.", parameter=field, limit="decimals"
        )
    return coefficient * 10 ** (exp + exponent)


def check_deposit(balance: int, amount: int, exponent: int) -> None:
    """Refuse a deposit that would take a wallet's balance past ``MAX_BALANCE``."""
    if balance + amount > MAX_BALANCE:
        raise DomainError(
            "INVALID_AMOUNT",
            f"A balance may not exceed {to_wire(MAX_BALANCE, exponent)}; "
            f"this deposit would bring it to {to_wire(balance + amount, exponent)}.",
            parameter="amount",
            limit="max_balance",
        )


def to_wire(minor: int, exponent: int) -> Decimal:
    """Minor units as an exact ``Decimal`` for JSON: ``1050, 2 -> 10.5``, ``1000, 2 -> 10.0``.

    Always at least one decimal digit (the seeds show ``0.0`` and ``10.0``), never
    superfluous trailing zeros. Built from text so no context precision can round it.
    """
    if exponent < 0:
        raise ValueError("exponent must be >= 0")
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exponent + 1, "0")
    if exponent == 0:
        whole, frac = digits, ""
    else:
        whole, frac = digits[:-exponent], digits[-exponent:]
    return Decimal(f"{sign}{whole}.{frac.rstrip('0') or '0'}")


def fixed_text(minor: int, exponent: int) -> str:
    """Minor units as text with exactly the currency's decimals, as money is written for
    other systems (the operator's wallet): ``450, 2 -> "4.50"``, ``5, 0 -> "5"``."""
    sign, digits, _ = Decimal(minor).as_tuple()
    return decimal_text(Decimal((sign, digits, -exponent)), exponent)


def decimal_text(value: Decimal, exponent: int) -> str:
    """An exact amount as text with at least the currency's decimals, more only where the
    amount has them (it is never rounded): ``7.5, 2 -> "7.50"``, ``1.2345, 2 -> "1.2345"``."""
    if exponent < 0:
        raise ValueError("exponent must be >= 0")
    sign, digits, power = value.as_tuple()
    if not isinstance(power, int):
        raise ValueError("not a finite amount")
    decimals = -power
    while decimals > exponent and digits and digits[-1] == 0:  # zeros that say nothing
        digits, decimals = digits[:-1], decimals - 1
    return f"{Decimal((sign, digits or (0,), -decimals)):.{max(exponent, decimals)}f}"


def ratio(numerator: int, denominator: int, places: int = 4) -> Decimal:
    """``numerator / denominator`` rounded toward zero to ``places`` decimals.

    Used for multipliers: rounding down never promises a player more than the pool pays.
    Trailing zeros are stripped but one decimal is kept: ``ratio(1, 1) -> 1.0``.
    """
    if denominator == 0:
        raise ZeroDivisionError("ratio with a zero denominator")
    negative = (numerator < 0) != (denominator < 0)
    scaled = abs(numerator) * 10**places // abs(denominator)
    return to_wire(-scaled if negative and scaled else scaled, places)


def rate_text(rate: Fraction) -> str:
    """The one stored form of a rate: exact decimal text (``Fraction(1, 20) -> "0.05"``),
    which ``parse_rate`` reads back. Every rate comes from decimal text, so it ends."""
    places = 0
    while (rate * 10**places).denominator != 1:
        places += 1
        if places > MAX_RATE_PLACES:
            raise ValueError(f"{rate} has no short decimal form")
    return str(to_wire((rate * 10**places).numerator, places))


def stored_rate(text: str) -> Fraction:
    """A rate read back from a stored document: ``rate_text``'s form, or the ``"1/20"``
    that older versions wrote."""
    return Fraction(text)


def parse_rate(value: object, *, field: str = "takeout") -> Fraction:
    """A takeout rate from the wire as an exact ``Fraction`` with ``0 <= rate < 1``.

    ``None``, ``""`` and ``"None"`` mean "not given", i.e. no takeout. A rate of 1 or more
    would leave nothing to pay winners, so it is refused.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return Fraction(0)
    if isinstance(value, Fraction):
        rate = value
    else:
        d = _to_decimal(value, field, "INVALID_PARAMETER")
        if d < 0 or d >= 1:
            raise DomainError(
                "INVALID_PARAMETER", f"{field} must be at least 0 and below 1.", parameter=field
            )
        if _stripped(d)[1] < -MAX_RATE_PLACES:
            raise DomainError(
                "INVALID_PARAMETER",
                f"{field} may have at most {MAX_RATE_PLACES} decimal places.",
                parameter=field,
            )
        rate = Fraction(d)
    if rate < 0 or rate >= 1:
        raise DomainError(
            "INVALID_PARAMETER", f"{field} must be at least 0 and below 1.", parameter=field
        )
    return rate


def parse_factor(
    value: object, *, field: str, minimum: Fraction, maximum: Fraction, places: int
) -> Fraction:
    """An exact factor from the wire (a minimum dividend) in ``[minimum, maximum]`` with at
    most ``places`` decimals, or ``INVALID_PARAMETER`` naming ``field``."""
    d = _to_decimal(value, field, "INVALID_PARAMETER")
    if not minimum <= Fraction(d) <= maximum:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{field} must be from {rate_text(minimum)} to {rate_text(maximum)}.",
            parameter=field,
        )
    if _stripped(d)[1] < -places:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{field} may have at most {places} decimal places.",
            parameter=field,
        )
    return Fraction(d)
