"""What every HTTP blueprint shares: JSON answers through the exact-decimal codec, the
seed-002 error body, request-field parsing, operator authentication, ASCII path ids."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec

from quart import Response, request
from werkzeug.routing import IntegerConverter

from actors.registry import ROLES
from actors.services import Services
from actors.wallet import Balance
from domain.codec import DecodeError, decode, encode
from domain.errors import DomainError, ErrorCode
from domain.money import exponent_of, parse_currency, to_wire

log = logging.getLogger(__name__)

P = ParamSpec("P")

MAX_PASSWORD = 1024
MAX_REFERENCE = 128
#: errorCode -> HTTP status. Codes not listed are server faults: 500.
STATUS_OF: dict[str, int] = {
    ErrorCode.MISSING_PARAMETER: 400,
    ErrorCode.INVALID_PARAMETER: 400,
    ErrorCode.INVALID_AMOUNT: 400,
    ErrorCode.MALFORMED_MESSAGE: 400,
    ErrorCode.INSUFFICIENT_FUNDS: 400,
    ErrorCode.USER_BLOCKED: 400,
    ErrorCode.LIMIT_REACHED: 400,
    ErrorCode.AUTHENTICATION_FAILED: 401,
    ErrorCode.NOT_AUTHORIZED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.REMOTE_WALLET: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.REQUEST_TIMED_OUT: 503,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.ACTOR_RESTARTED: 503,
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- responses ------------------------------------------------------------------------


def json_response(body: object, status: int = 200) -> Response:
    """A JSON answer through the exact-decimal codec (never the stdlib json)."""
    return Response(encode(body), status=status, content_type="application/json")


def error_body(error: DomainError) -> dict[str, Any]:
    """The seed-002 error body, plus the error's extra fields (``parameter``, ``limit``)."""
    return {**error.extra, "status": "FAILURE", "errorCode": error.code, "errorMessage": error.text}


def error_response(error: DomainError, status: int | None = None) -> Response:
    """The error's body (:func:`error_body`) at its status."""
    return json_response(error_body(error), status or STATUS_OF.get(error.code, 500))


def balance_wire(currency: str, balance: Balance) -> dict[str, Any]:
    exp = exponent_of(currency)
    return {
        "current": to_wire(balance.current, exp),
        "available": to_wire(balance.available, exp),
        "exposure": to_wire(balance.exposure, exp),
    }


# -- request parsing ------------------------------------------------------------------


async def drain_body() -> None:
    """Read what is left of the request body before refusing it: answering before the
    body is read can stall the kept-alive connection in hypercorn's h11 cycle (the next
    request on it was never answered). The app caps bodies at 64 KiB, so this is bounded."""
    try:
        await request.get_data()
    except Exception:  # too large, or the client went away: nothing left to keep alive
        log.debug("request body not drained", exc_info=True)


async def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or MALFORMED_MESSAGE; size is capped by the app."""
    data = await request.get_data()
    try:
        body = decode(data)
    except DecodeError as error:  # not JSON, not UTF-8, too deep, a key given twice
        raise DomainError("MALFORMED_MESSAGE", str(error)) from None
    if not isinstance(body, dict):
        raise DomainError("MALFORMED_MESSAGE", "The request body must be a JSON object.")
    return body


def text_field(body: dict[str, Any], name: str, *, max_len: int) -> str:
    """A required string field without its surrounding blanks.

    MISSING_PARAMETER when absent or blank; INVALID_PARAMETER when it is not a string, is
    too long or holds control characters.
    """
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DomainError("MISSING_PARAMETER", f"{name} is required.", parameter=name)
    if not isinstance(value, str):
        raise DomainError("INVALID_PARAMETER", f"{name} must be a string.", parameter=name)
    value = value.strip()
    if len(value) > max_len or _CONTROL.search(value):
        raise DomainError(
            "INVALID_PARAMETER",
            f"{name} must be at most {max_len} printable characters.",
            parameter=name,
        )
    return value


def password_field(body: dict[str, Any]) -> str:
    """The password exactly as sent (blanks are significant), or "" when absent."""
    value = body.get("password")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_PASSWORD:
        raise DomainError(
            "INVALID_PARAMETER",
            f"password must be a string of at most {MAX_PASSWORD} characters.",
            parameter="password",
        )
    return value


def user_id_field(body: dict[str, Any], name: str = "user_id") -> int:
    """An integer user id; digit strings are accepted as the websocket API does."""
    value = body.get(name)
    if value is None or value == "":
        raise DomainError("MISSING_PARAMETER", f"{name} is required.", parameter=name)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DomainError(
            "INVALID_PARAMETER", f"{name} must be a positive integer.", parameter=name
        )
    return value


def roles_field(body: dict[str, Any]) -> list[str]:
    """Roles as an array or a comma-separated string, each one of ``ROLES``."""
    value = body.get("roles")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        raise DomainError(
            "INVALID_PARAMETER", "roles must be a list of strings.", parameter="roles"
        )
    unknown = sorted(set(value) - ROLES)
    if unknown:
        raise DomainError(
            "INVALID_PARAMETER",
            f"Unknown roles: {', '.join(unknown)}; use {', '.join(sorted(ROLES))}.",
            parameter="roles",
        )
    return sorted(set(value))


def currency_field(body: dict[str, Any], default: str) -> str:
    return parse_currency(body.get("currency"), default=default)


# -- operator auth --------------------------------------------------------------------


def operator_only(
    services: Services,
) -> Callable[[Callable[P, Awaitable[Response]]], Callable[P, Awaitable[Response]]]:
    """Refuse the call with 401 unless it carries ``Authorization: Bearer <operator key>``."""
    expected = services.operator_key.encode()

    def decorate(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
        @wraps(handler)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), expected
            ):
                raise DomainError(
                    "AUTHENTICATION_FAILED", "This call needs Authorization: Bearer <operator key>."
                )
            return await handler(*args, **kwargs)

        return guarded

    return decorate


class AsciiIntegerConverter(IntegerConverter):
    """Path ids are ASCII digits: werkzeug's ``\\d`` also matches "٣", which int() reads
    as 3, so a look-alike path would reach another user."""

    regex = r"(?:0|[1-9][0-9]{0,17})"
