"""General ops: ping, op-code listing, logon, balances and game sources."""

from __future__ import annotations

from typing import Any

from actors import registry as reg
from actors.wallet import Balance, GetBalances
from domain import params
from domain.errors import DomainError
from domain.money import exponent_of, parse_currency, to_wire
from transport.optable import RESPONSES, Context, Op, recorder

_DECLARED: list[Op] = []
op = recorder(_DECLARED)


@op(1, "ping", replies=(1,))
async def ping(ctx: Context, msg: dict[str, Any]) -> None:
    """Check that the connection is alive."""
    ctx.reply(1)


@op(2, "get_opcodes", replies=(2,))
async def get_opcodes(ctx: Context, msg: dict[str, Any]) -> None:
    """List every op code and response code the server knows."""
    ctx.reply(
        2,
        {
            "opcodes": {
                spec.name: spec.code for spec in sorted(ctx.ops.values(), key=lambda s: s.code)
            },
            "response_codes": dict(RESPONSES),
        },
    )


@op(100, "logon", replies=(100, 110, 112))
async def logon(ctx: Context, msg: dict[str, Any]) -> None:
    """Confirm the logon the handshake already authenticated (112 when repeated)."""
    try:
        user = await ctx.services.ask_registry(reg.GetUser(ctx.user_id))
    except Exception:
        ctx.reply(110, {"text": "You have not been logged in."})
        return
    if ctx.conn.logged_on:
        ctx.reply(112, {"user_id": user.id, "user_name": user.name})
        return
    ctx.conn.logged_on = True
    ctx.reply(100, {"user_id": user.id, "user_name": user.name})


async def _balance(
    ctx: Context, msg: dict[str, Any], *, held_here: bool = False
) -> tuple[str, Balance]:
    """The user's balance in one currency. In remote wallet mode only the exposure
    (``held_here``) is ours to tell: the operator keeps the rest."""
    if ctx.services.settings.remote_wallet and not held_here:
        raise DomainError(
            "REMOTE_WALLET", "The operator keeps your balance; op 840 shows your exposure here."
        )
    currency = parse_currency(msg.get("currency"), default=ctx.services.settings.default_currency)
    balances = await ctx.services.ask_wallet(GetBalances(ctx.user_id))
    return currency, balances.get(currency, Balance(0, 0, 0))


@op(800, "get_my_current_balance", replies=(800,))
async def current_balance(ctx: Context, msg: dict[str, Any]) -> None:
    """Your current balance: available plus exposure."""
    currency, balance = await _balance(ctx, msg)
    ctx.reply(
        800,
        {"currency": currency, "current_balance": to_wire(balance.current, exponent_of(currency))},
    )


@op(810, "get_my_available_balance", replies=(810,))
async def available_balance(ctx: Context, msg: dict[str, Any]) -> None:
    """Your available balance: what you can stake now."""
    currency, balance = await _balance(ctx, msg)
    ctx.reply(
        810,
        {
            "currency": currency,
            "available_balance": to_wire(balance.available, exponent_of(currency)),
        },
    )


@op(840, "get_my_exposure", replies=(840,))
async def exposure(ctx: Context, msg: dict[str, Any]) -> None:
    """Your exposure: stakes in pools not yet resolved."""
    currency, balance = await _balance(ctx, msg, held_here=True)
    ctx.reply(
        840, {"currency": currency, "exposure": to_wire(balance.exposure, exponent_of(currency))}
    )


@op(365, "open_game_source", replies=(335,), command=reg.OpenSource)
async def open_game_source(ctx: Context, msg: dict[str, Any]) -> None:
    """Register a game source; you become its admin."""
    source = await ctx.services.ask_registry(
        reg.OpenSource(
            ctx.user_id,
            params.text(msg, "source_name", required_=True) or "",
            params.text(msg, "description", default="", max_len=512) or "",
        )
    )
    ctx.reply(335, {"source_id": source.id})


@op(366, "close_game_source", replies=(336, 368), command=reg.CloseSource)
async def close_game_source(ctx: Context, msg: dict[str, Any]) -> None:
    """Close a game source you admin and every game it runs; like op 375, binary pools
    are blocked (368) and the source closes (336) once they are resolved and 366 resent."""
    source_id = params.text(msg, "source_id", required_=True) or ""
    ctx.answer(await ctx.services.games.close_source(ctx.user_id, source_id))


@op(611, "list_game_sources_i_am_admin_of", replies=(621,))
async def list_sources(ctx: Context, msg: dict[str, Any]) -> None:
    """The game sources you admin."""
    sources = await ctx.services.ask_registry(reg.SourcesOf(ctx.user_id))
    ctx.reply(621, {"sources": [source.public() for source in sources]})


#: this module's ops, in the order declared (``transport.ops`` builds ``OPS`` from it)
TABLE: tuple[Op, ...] = tuple(_DECLARED)
