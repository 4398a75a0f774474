"""The operator's money endpoints: deposits, withdrawals and balances of a user."""

from __future__ import annotations

from quart import Blueprint, Response

from actors.registry import GetUser
from actors.services import Services
from actors.wallet import Balance, Deposit, GetBalances, Withdraw
from domain.errors import DomainError
from domain.money import exponent_of, parse_amount
from transport.httpkit import (
    MAX_REFERENCE,
    balance_wire,
    currency_field,
    json_body,
    json_response,
    operator_only,
    text_field,
)


def money_blueprint(services: Services) -> Blueprint:
    routes = Blueprint("money", __name__)
    operator = operator_only(services)

    async def move_money(user_id: int, kind: type[Deposit] | type[Withdraw]) -> Response:
        body = await json_body()
        currency = currency_field(body, services.settings.default_currency)
        if "amount" not in body:
            raise DomainError("MISSING_PARAMETER", "amount is required.", parameter="amount")
        amount = parse_amount(
            body["amount"], exponent_of(currency), field="amount", code="INVALID_AMOUNT"
        )
        reference = text_field(body, "reference", max_len=MAX_REFERENCE)
        await services.ask_registry(GetUser(user_id))
        moved = await services.ask_wallet(kind(user_id, currency, amount, reference))
        return json_response(
            {
                "user_id": user_id,
                "currency": currency,
                "reference": reference,
                "duplicate": moved.duplicate,
                "balance": balance_wire(currency, moved.balance),
            },
            200 if moved.duplicate else 201,
        )

    @routes.post("/v1/users/<int:user_id>/deposits")
    @operator
    async def deposit(user_id: int) -> Response:
        return await move_money(user_id, Deposit)

    @routes.post("/v1/users/<int:user_id>/withdrawals")
    @operator
    async def withdraw(user_id: int) -> Response:
        return await move_money(user_id, Withdraw)

    @routes.get("/v1/users/<int:user_id>/balances")
    @operator
    async def balances(user_id: int) -> Response:
        await services.ask_registry(GetUser(user_id))
        found: dict[str, Balance] = await services.ask_wallet(GetBalances(user_id))
        if services.settings.remote_wallet:  # the operator keeps the rest
            return json_response(
                {
                    cur: {"exposure": balance_wire(cur, bal)["exposure"]}
                    for cur, bal in found.items()
                }
            )
        return json_response({cur: balance_wire(cur, bal) for cur, bal in found.items()})

    return routes
