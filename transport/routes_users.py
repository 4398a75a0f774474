"""Users, their sessions and logins, blocking, and game-source admins."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio
from quart import Blueprint, Response, request

from actors.registry import (
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
from actors.wallet import SetBlocked, SetCooldown
from domain import params
from domain.errors import DomainError
from domain.names import display_name, name_key
from domain.throttle import AttemptWindow
from transport.httpkit import (
    error_response,
    json_body,
    json_response,
    operator_only,
    password_field,
    roles_field,
    user_id_field,
)

#: Concurrent scrypt computations (128 MiB of memory each at N=2^17): login floods queue
#: up here instead of exhausting memory or the default thread pool.
PASSWORD_THREADS = 2


def dummy_hash(scrypt_n: int) -> str:
    """Verified against when the name is unknown or has no password, so a refusal costs
    the same scrypt time either way and does not reveal which names exist."""
    return f"scrypt${scrypt_n}$8$1${'00' * 16}${'00' * 64}"


def users_blueprint(services: Services) -> Blueprint:
    routes = Blueprint("users", __name__)
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

    @routes.post("/v1/login")
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
        return json_response({"id": user.id, "user_session_key": session.session_key})

    @routes.post("/v1/users")
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

    @routes.post("/v1/users/<int:user_id>/sessions")
    @operator
    async def create_session(user_id: int) -> Response:
        session = await services.ask_registry(CreateSession(user_id))
        return json_response(session.public(), 201)

    async def set_blocked(user_id: int, blocked: bool) -> Response:
        await services.ask_registry(GetUser(user_id))
        await services.ask_wallet(SetBlocked(user_id, blocked))
        return json_response({"user_id": user_id, "blocked": blocked})

    @routes.post("/v1/users/<int:user_id>/block")
    @operator
    async def block(user_id: int) -> Response:
        return await set_blocked(user_id, True)

    @routes.post("/v1/users/<int:user_id>/unblock")
    @operator
    async def unblock(user_id: int) -> Response:
        return await set_blocked(user_id, False)

    @routes.post("/v1/users/<int:user_id>/cooldown")
    @operator
    async def cooldown(user_id: int) -> Response:
        until = params.epoch_ms(await json_body(), "until")
        if until is None:
            raise DomainError("MISSING_PARAMETER", "until is required.", parameter="until")
        await services.ask_registry(GetUser(user_id))
        await services.ask_wallet(SetCooldown(user_id, until))
        return json_response({"user_id": user_id, "cooldown_until": until})

    @routes.post("/v1/sources/<source_id>/admins")
    @operator
    async def add_source_admin(source_id: str) -> Response:
        user_id = user_id_field(await json_body())
        source = await services.ask_registry(AddSourceAdmin(source_id, user_id, by=None))
        return json_response(source.public() | {"admins": sorted(source.admins)})

    return routes
