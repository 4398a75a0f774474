"""Reading request fields the lenient way the seeds write them (decisions §1 "Times").

Blank strings and "None" mean null; "True"/"False"/"1" are booleans and integers; a time
below 10^11 is in seconds; lists come as arrays or comma-separated strings. Anything
else is refused with a clear error, never guessed.
"""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any

from domain.errors import DomainError

log = logging.getLogger(__name__)

SECONDS_LIMIT = 10**11

#: The range every time field must fall in, epoch ms: 2000-01-01 and 2200-01-01 UTC.
#: Nothing real happens outside it, and a bound keeps every deadline a finite float.
TIME_MIN_MS = 946_684_800_000
TIME_MAX_MS = 7_258_118_400_000

#: The widest integer any field takes: SQLite's 64-bit INTEGER. Fields narrow it.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# ASCII digits only (``str.isdigit`` is also true for "²" and "٣"), and no longer than
# any int64: ``int()`` of thousands of digits is slow or raises.
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,19}")


#: The longest text a parameter read with ``text`` may hold unless it says otherwise.
TEXT_MAX = 256


def is_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "None", "null"))


def required(msg: dict[str, Any], name: str) -> Any:
    value = msg.get(name)
    if is_null(value):
        raise DomainError("MISSING_PARAMETER", f"{name} is required.", parameter=name)
    return value


def text(
    msg: dict[str, Any],
    name: str,
    *,
    default: str | None = None,
    required_: bool = False,
    max_len: int = TEXT_MAX,
) -> str | None:
    value = msg.get(name)
    if is_null(value):
        if required_:
            raise DomainError("MISSING_PARAMETER", f"{name} is required.", parameter=name)
        return default
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise DomainError("INVALID_PARAMETER", f"{name} must be a string.", parameter=name)
    value = str(value).strip()
    if len(value) > max_len:
        raise DomainError(
            "INVALID_PARAMETER", f"{name} is longer than {max_len} characters.", parameter=name
        )
    return value


def integer(
    msg: dict[str, Any],
    name: str,
    *,
    default: int | None = None,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int | None:
    """An integer in ``[minimum, maximum]``; the range is checked before any conversion,
    so no value (``1E+400000``, a 5000-digit string) costs more than a comparison."""
    value = msg.get(name)
    if is_null(value):
        return default
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    elif not isinstance(value, int | Decimal) or (
        isinstance(value, Decimal) and not value.is_finite()
    ):
        raise DomainError("INVALID_PARAMETER", f"{name} must be an integer.", parameter=name)
    if not minimum <= value <= maximum:  # exact for int and Decimal alike
        raise DomainError(
            "INVALID_PARAMETER",
            f"{name} must be an integer from {minimum} to {maximum}.",
            parameter=name,
        )
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise DomainError("INVALID_PARAMETER", f"{name} must be an integer.", parameter=name)
        value = int(value)
    return value


def boolean(msg: dict[str, Any], name: str, *, default: bool = False) -> bool:
    value = msg.get(name)
    if is_null(value):
        return default
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise DomainError("INVALID_PARAMETER", f"{name} must be true or false.", parameter=name)


def epoch_ms(msg: dict[str, Any], name: str, *, default: int | None = None) -> int | None:
    """Epoch milliseconds; a value below 10^11 is read as seconds. Every time field of
    every request comes through here, and is refused outside 2000-01-01..2200-01-01."""
    raw = msg.get(name)
    if is_null(raw):
        return default
    if isinstance(raw, Decimal) and raw.is_finite():
        value: int | Decimal = raw  # seconds may have a fraction: 1417104170.5
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        value = integer(msg, name) or 0
    if not 0 <= value <= TIME_MAX_MS:  # before any arithmetic on a huge number
        raise _out_of_range(name)
    millis = int(value * 1000 if value < SECONDS_LIMIT else value)
    if not TIME_MIN_MS <= millis <= TIME_MAX_MS:
        raise _out_of_range(name)
    return millis


def _out_of_range(name: str) -> DomainError:
    return DomainError(
        "INVALID_PARAMETER",
        f"{name} must be a time from 2000-01-01 to 2200-01-01 UTC (epoch seconds or milliseconds).",
        parameter=name,
    )


def stored_time(value: Any, name: str) -> int | None:
    """A time read back from storage, made harmless: an older version may have stored
    one far beyond the range (``10**400``, ``1e30``). Such a time means "never" and
    becomes ``TIME_MAX_MS`` (so a closed game stays closed and a pending block never
    fires); a negative one becomes 0, long past. Logged, since it is a data problem."""
    if value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= TIME_MAX_MS
    ):
        return value
    is_number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    is_nan = value.is_nan() if isinstance(value, Decimal) else value != value
    if not is_number or is_nan:
        sane = TIME_MAX_MS
    else:
        sane = 0 if value < 0 else TIME_MAX_MS if value > TIME_MAX_MS else int(value)
    log.warning("stored %s=%.40r is out of range; read as %d", name, value, sane)
    return sane
