"""A player's own limits and self-exclusion over the websocket (decisions §12): each op
acts on the sender only, whatever ids the message names."""

from __future__ import annotations

from typing import Any

from actors.wallet import Excluded, GetLimits
from transport.limits_wire import (
    exclude_request,
    limits_currency,
    limits_wire,
    set_limits_request,
)
from transport.optable import Context, Op, recorder

_DECLARED: list[Op] = []
op = recorder(_DECLARED)


@op(850, "get_my_limits", replies=(850,))
async def get_my_limits(ctx: Context, msg: dict[str, Any]) -> None:
    """Your deposit and loss limits in a currency, what is left of them, raises waiting."""
    currency = limits_currency(msg, ctx.services.settings.default_currency)
    view = await ctx.services.ask_wallet(GetLimits(ctx.user_id, currency))
    ctx.reply(850, limits_wire(view))


@op(851, "set_my_limits", replies=(850,))
async def set_my_limits(ctx: Context, msg: dict[str, Any]) -> None:
    """Set limits: lower at once, higher or removed (null) after 24 hours."""
    change = set_limits_request(ctx.user_id, msg, ctx.services.settings.default_currency)
    ctx.reply(850, limits_wire(await ctx.services.ask_wallet(change)))


@op(852, "exclude_me", replies=(852,))
async def exclude_me(ctx: Context, msg: dict[str, Any]) -> None:
    """Exclude yourself from bets and deposits until a time, at least a day away."""
    excluded: Excluded = await ctx.services.ask_wallet(exclude_request(ctx.user_id, msg))
    ctx.reply(852, {"user_id": excluded.user_id, "excluded_until": excluded.until})


#: this module's ops, in the order declared (``transport.ops`` builds ``OPS`` from it)
TABLE: tuple[Op, ...] = tuple(_DECLARED)
