"""The operator HTTP API (decisions §5) on hypercorn + quart-trio.

Everything here is a thin boundary: parse and validate the request, ask the registry or
the wallet actor, and answer in JSON written by ``domain.codec`` so money stays exact.
Every refusal, including the ones the web framework produces (unknown route, wrong
method, body too large), is answered with the seed-002 error body
``{"status": "FAILURE", "errorCode": ..., "errorMessage": ...}`` and changes nothing.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Any, ParamSpec

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import IntegerConverter

from actors.registry import (
    ROLES,
    AddSourceAdmin,
    CreateSession,
    CreateUser,
    FindUser,
    GetUser,
    User,
    hash_password,
    verify_password,
)
from actors.services import Services
from actors.wallet import Balance, Deposit, GetBalances, SetBlocked, Withdraw
from domain.codec import DecodeError, decode, encode
from domain.errors import DomainError
from domain.ledger import audit
from domain.money import exponent_of, parse_amount, parse_currency, to_wire
from domain.names import display_name, name_key
from domain.throttle import AttemptWindow
from transport.openapi import openapi_document

log = logging.getLogger(__name__)

P = ParamSpec("P")

#: Largest request body accepted; every operator call fits in a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024
MAX_PASSWORD = 1024
MAX_REFERENCE = 128
#: Concurrent scrypt computations (128 MiB of memory each at N=2^17): login floods queue
#: up here instead of exhausting memory or the default thread pool.
PASSWORD_THREADS = 2

#: errorCode -> HTTP status. Codes not listed are server faults: 500.
STATUS_OF: dict[str, int] = {
    "MISSING_PARAMETER": 400,
    "INVALID_PARAMETER": 400,
    "INVALID_AMOUNT": 400,
    "MALFORMED_MESSAGE": 400,
    "INSUFFICIENT_FUNDS": 400,
    "USER_BLOCKED": 400,
    "AUTHENTICATION_FAILED": 401,
    "NOT_AUTHORIZED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "INVALID_STATE": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "REQUEST_TIMED_OUT": 503,
    "UNAVAILABLE": 503,
    "ACTOR_RESTARTED": 503,
}

#: What werkzeug's own HTTP errors are called on our wire.
_HTTP_CODES = {
    400: "MALFORMED_MESSAGE",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def dummy_hash(scrypt_n: int) -> str:
    """Verified against when the name is unknown or has no password, so a refusal costs
    the same scrypt time either way and does not reveal which names exist."""
    return f"scrypt${scrypt_n}$8$1${'00' * 16}${'00' * 64}"


# -- responses ------------------------------------------------------------------------


def json_response(body: object, status: int = 200) -> Response:
    """A JSON answer through the exact-decimal codec (never the stdlib json)."""
    return Response(encode(body), status=status, content_type="application/json")


def error_response(error: DomainError, status: int | None = None) -> Response:
    """The seed-002 error body, plus the error's extra fields (``parameter``, ``limit``)."""
    body = {**error.extra, "status": "FAILURE", "errorCode": error.code, "errorMessage": error.text}
    return json_response(body, status or STATUS_OF.get(error.code, 500))


def balance_wire(currency: str, balance: Balance) -> dict[str, Any]:
    exp = exponent_of(currency)
    return {
        "current": to_wire(balance.current, exp),
        "available": to_wire(balance.available, exp),
        "exposure": to_wire(balance.exposure, exp),
    }


# -- request parsing ------------------------------------------------------------------


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


# -- the application ------------------------------------------------------------------


class AsciiIntegerConverter(IntegerConverter):
    """Path ids are ASCII digits: werkzeug's ``\\d`` also matches "٣", which int() reads
    as 3, so a look-alike path would reach another user."""

    regex = r"(?:0|[1-9][0-9]{0,17})"


def create_app(services: Services) -> QuartTrio:
    """The Quart app; every route's logic is a few lines over the actors."""
    app = QuartTrio("tote")
    app.url_map.converters["int"] = AsciiIntegerConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    operator = operator_only(services)
    password_threads = trio.CapacityLimiter(PASSWORD_THREADS)
    settings = services.settings
    login_names = AttemptWindow(settings.login_attempts_per_name, settings.login_window_seconds)
    login_addresses = AttemptWindow(
        settings.login_attempts_per_address, settings.login_window_seconds
    )
    unknown_user_hash = dummy_hash(settings.scrypt_n)

    async def in_password_thread(fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=password_threads)

    async def existing_user(user_id: int) -> User:
        return await services.ask_registry(GetUser(user_id))

    # -- errors ---------------------------------------------------------------------

    @app.errorhandler(DomainError)
    async def domain_error(error: DomainError) -> Response:
        response = error_response(error)
        if "retry_after" in error.extra:
            response.headers["Retry-After"] = str(error.extra["retry_after"])
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status) or (error.name or "error").upper().replace(" ", "_")
        response = error_response(DomainError(code, error.description or code), status)
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.error("HTTP %s %s failed", request.method, request.path, exc_info=error)
        return error_response(
            DomainError("GENERAL_EXCEPTION", "The server failed to handle this request."), 500
        )

    # -- open endpoints -------------------------------------------------------------

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        if services.ready.is_set():
            return json_response({"status": "ready"})
        return json_response({"status": "starting"}, 503)

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return json_response(openapi_document())

    def throttle_login(name: str) -> None:
        """Count a login attempt by name and by address; RATE_LIMITED (429) past either
        limit, before any scrypt work is spent on it."""
        now = trio.current_time()
        wait = login_addresses.attempt(request.remote_addr, now)
        if wait is None:
            wait = login_names.attempt(name_key(name), now)
        if wait is not None:
            raise DomainError(
                "RATE_LIMITED",
                "Too many login attempts; try again later.",
                retry_after=math.ceil(wait),
            )

    @app.post("/v1/login")
    async def login() -> Response:
        body = await json_body()
        name = display_name(body.get("name"), "name")
        password = password_field(body)
        if not password:
            raise DomainError("MISSING_PARAMETER", "password is required.", parameter="password")
        throttle_login(name)
        try:
            user: User | None = await services.ask_registry(FindUser(name))
        except DomainError as error:
            if error.code != "AUTHENTICATION_FAILED":
                raise
            user = None
        stored = user.password if user is not None and user.password else unknown_user_hash
        verified = await in_password_thread(verify_password, password, stored)
        if user is None or not user.password or not verified:
            return error_response(
                DomainError("AUTHENTICATION_FAILED", "Wrong name or password."), 403
            )
        login_names.forget(name_key(name))
        session = await services.ask_registry(CreateSession(user.id))
        return json_response({"id": user.id, "user_session_key": session["session_key"]})

    # -- operator endpoints ---------------------------------------------------------

    @app.post("/v1/users")
    @operator
    async def create_user() -> Response:
        body = await json_body()
        name = display_name(body.get("name"), "name")
        password = password_field(body)
        roles = roles_field(body)
        password_hash = (
            await in_password_thread(hash_password, password, settings.scrypt_n) if password else ""
        )
        user = await services.ask_registry(CreateUser(name, password_hash, roles))
        return json_response(user.public(), 201)

    @app.post("/v1/users/<int:user_id>/sessions")
    @operator
    async def create_session(user_id: int) -> Response:
        return json_response(await services.ask_registry(CreateSession(user_id)), 201)

    async def move_money(user_id: int, kind: type[Deposit] | type[Withdraw]) -> Response:
        body = await json_body()
        currency = currency_field(body, services.settings.default_currency)
        if "amount" not in body:
            raise DomainError("MISSING_PARAMETER", "amount is required.", parameter="amount")
        amount = parse_amount(
            body["amount"], exponent_of(currency), field="amount", code="INVALID_AMOUNT"
        )
        reference = text_field(body, "reference", max_len=MAX_REFERENCE)
        await existing_user(user_id)
        result = await services.ask_wallet(kind(user_id, currency, amount, reference))
        return json_response(
            {
                "user_id": user_id,
                "currency": currency,
                "reference": reference,
                "duplicate": result["duplicate"],
                "balance": balance_wire(currency, result["balance"]),
            },
            200 if result["duplicate"] else 201,
        )

    @app.post("/v1/users/<int:user_id>/deposits")
    @operator
    async def deposit(user_id: int) -> Response:
        return await move_money(user_id, Deposit)

    @app.post("/v1/users/<int:user_id>/withdrawals")
    @operator
    async def withdraw(user_id: int) -> Response:
        return await move_money(user_id, Withdraw)

    @app.get("/v1/users/<int:user_id>/balances")
    @operator
    async def balances(user_id: int) -> Response:
        await existing_user(user_id)
        found: dict[str, Balance] = await services.ask_wallet(GetBalances(user_id))
        return json_response({cur: balance_wire(cur, bal) for cur, bal in found.items()})

    async def set_blocked(user_id: int, blocked: bool) -> Response:
        await existing_user(user_id)
        await services.ask_wallet(SetBlocked(user_id, blocked))
        return json_response({"user_id": user_id, "blocked": blocked})

    @app.post("/v1/users/<int:user_id>/block")
    @operator
    async def block(user_id: int) -> Response:
        return await set_blocked(user_id, True)

    @app.post("/v1/users/<int:user_id>/unblock")
    @operator
    async def unblock(user_id: int) -> Response:
        return await set_blocked(user_id, False)

    @app.post("/v1/sources/<source_id>/admins")
    @operator
    async def add_source_admin(source_id: str) -> Response:
        user_id = user_id_field(await json_body())
        return json_response(
            await services.ask_registry(AddSourceAdmin(source_id, user_id, by=None))
        )

    @app.get("/v1/audit")
    @operator
    async def run_audit() -> Response:
        rows = await services.storage.read(
            lambda db: [
                (r["tx_id"], r["account"], r["currency"], r["amount"])
                for r in db.rows("SELECT tx_id, account, currency, amount FROM ledger")
            ]
        )
        problems = await trio.to_thread.run_sync(audit, rows)
        return json_response(
            {
                "ok": not problems,
                "problems": problems,
                "transactions": len({row[0] for row in rows}),
                "lines": len(rows),
            }
        )

    from transport.page import page_blueprint  # it imports this module's helpers

    app.register_blueprint(page_blueprint(services))
    return app


async def serve_http(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the operator API; ``task_status`` gets the bound port."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, create_app(services), config))
        task_status.started(int(binds[0].rsplit(":", 1)[1]))
