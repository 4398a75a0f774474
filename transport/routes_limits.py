"""The operator's side of player protection (decisions §12): a player's limits and
their self-exclusion, under the same rules as the player's own websocket ops."""

from __future__ import annotations

from quart import Blueprint, Response, request

from actors.registry import GetUser
from actors.services import Services
from actors.wallet import Excluded, GetLimits
from transport.httpkit import json_body, json_response, operator_only
from transport.limits_wire import (
    exclude_request,
    limits_currency,
    limits_wire,
    set_limits_request,
)


def limits_blueprint(services: Services) -> Blueprint:
    routes = Blueprint("limits", __name__)
    operator = operator_only(services)
    default_currency = services.settings.default_currency

    @routes.get("/v1/users/<int:user_id>/limits")
    @operator
    async def get_limits(user_id: int) -> Response:
        currency = limits_currency(dict(request.args), default_currency)
        await services.ask_registry(GetUser(user_id))
        return json_response(limits_wire(await services.ask_wallet(GetLimits(user_id, currency))))

    @routes.put("/v1/users/<int:user_id>/limits")
    @operator
    async def set_limits(user_id: int) -> Response:
        change = set_limits_request(user_id, await json_body(), default_currency)
        await services.ask_registry(GetUser(user_id))
        return json_response(limits_wire(await services.ask_wallet(change)))

    @routes.post("/v1/users/<int:user_id>/exclusion")
    @operator
    async def exclude(user_id: int) -> Response:
        exclusion = exclude_request(user_id, await json_body())
        await services.ask_registry(GetUser(user_id))
        excluded: Excluded = await services.ask_wallet(exclusion)
        return json_response({"user_id": excluded.user_id, "excluded_until": excluded.until})

    return routes
