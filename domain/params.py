"""Reading request fields the lenient way the seeds write them (decisions §1 "Times").

Blank strings and "None" mean null; "True"/"False"/"1" are booleans and integers; a time
below 10^11 is in seconds; lists come as arrays or comma-separated strings. Anything
else is refused with a clear error, never guessed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.errors import DomainError

SECONDS_LIMIT = 10**11


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
    max_len: int = 256,
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


def integer(msg: dict[str, Any], name: str, *, default: int | None = None) -> int | None:
    value = msg.get(name)
    if is_null(value):
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise DomainError("INVALID_PARAMETER", f"{name} must be an integer.", parameter=name)


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
    """Epoch milliseconds; a value below 10^11 is read as seconds."""
    raw = msg.get(name)
    if is_null(raw):
        return default
    value = raw if isinstance(raw, Decimal) else Decimal(integer(msg, name) or 0)
    if value < 0:
        raise DomainError("INVALID_PARAMETER", f"{name} must be a time.", parameter=name)
    return int(value * 1000 if value < SECONDS_LIMIT else value)
