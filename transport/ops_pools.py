"""Pool ops (seed 000 and decisions §1): create, events, listings, bets, block, allow,
resolve, void."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import trio

from actors import game as g
from actors import pool as p
from domain import params
from domain.codec import MAX_REQUEST_ID, colons
from domain.errors import DomainError
from storage import catalog
from transport.optable import Context, Op, recorder
from transport.presenters import distribution_fields, pool_created_fields

_DECLARED: list[Op] = []
op = recorder(_DECLARED)


def first_domain_error(group: BaseExceptionGroup) -> DomainError:
    """The first DomainError of a group raised by concurrent requests."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _timeout(ctx: Context) -> float:
    return ctx.services.settings.request_timeout


async def _is_game_admin(ctx: Context, game_id: str) -> bool:
    """Whether the sender sees every bet (a view, not a command: commands are checked by
    the actor that owns them)."""
    return await (await ctx.services.games.game(game_id)).ask(
        g.IsAdmin(ctx.user_id), timeout=_timeout(ctx)
    )


async def _for_pool(ctx: Context, msg: dict[str, Any], command: Any) -> Any:
    """An admin's command to a pool goes through its game, which knows its admins."""
    pool_id = params.text(msg, "pool_id", required_=True) or ""
    game = await ctx.services.games.game(await ctx.services.games.game_of_pool(pool_id))
    return await game.ask(g.ForPool(ctx.user_id, pool_id, command), timeout=_timeout(ctx))


@op(385, "create_betting_pool", replies=(350, 352), command=g.CreatePool)
async def create_pool(ctx: Context, msg: dict[str, Any]) -> None:
    """Open a pool on an action; subscribers get the full pool (352)."""
    box = await ctx.services.games.game(params.text(msg, "game_id", required_=True))
    created = await box.ask(g.CreatePool(ctx.user_id, msg), timeout=_timeout(ctx))
    ctx.reply(350, pool_created_fields(created))


@op(395, "register_game_event", replies=(366, 362), command=g.RegisterEvent)
async def register_event(ctx: Context, msg: dict[str, Any]) -> None:
    """Record an event; it resolves the open parimutuel pools of its action (362)."""
    box = await ctx.services.games.game(params.text(msg, "game_id", required_=True))
    recorded = await box.ask(
        g.RegisterEvent(
            ctx.user_id,
            params.required(msg, "action_id"),
            params.required(msg, "target_id"),
            params.epoch_ms(msg, "happened_at"),
        ),
        timeout=_timeout(ctx),
    )
    ctx.answer(recorded)


async def _listing(
    ctx: Context, msg: dict[str, Any], res: int, keep: Any, *, resolved: bool = False
) -> None:
    """Ask every open pool of the game (or, ``resolved``, every resolved pool the sender
    bet in) at once: not one after another, and not through the game actor, which stays
    free for its own requests."""
    game_id = params.text(msg, "game_id", required_=True) or ""
    question = p.Describe(ctx.user_id, await _is_game_admin(ctx, game_id))
    if resolved:
        boxes = await _resolved_bet_in(ctx, game_id)
    else:
        boxes = await ctx.services.games.pools_of(game_id, open_only=True)
    pools: list[Any] = [None] * len(boxes)

    async def describe(i: int, box: Any) -> None:
        pools[i] = await box.ask(question, timeout=_timeout(ctx))

    try:
        async with trio.open_nursery() as nursery:
            for i, (_, box) in enumerate(boxes):
                nursery.start_soon(describe, i, box)
    except* DomainError as group:  # one refusal is the answer, not an internal error
        raise first_domain_error(group) from None
    ctx.reply(
        res,
        {
            "game_id": game_id,
            "pools_list": {info.listing["pool_id"]: info.listing for info in pools if keep(info)},
        },
    )


async def _resolved_bet_in(ctx: Context, game_id: str) -> list[tuple[str, Any]]:
    """The game's resolved pools the sender has a bet in, as storage says: a game's
    resolved pools only grow (a recreating pool leaves one behind per event), and
    starting the actor of each for every 390 would let one player make everybody wait."""
    user_id, games = ctx.user_id, ctx.services.games
    pool_ids = await ctx.services.storage.read(
        lambda db: catalog.resolved_pools_bet_in(db, game_id, user_id)
    )
    return [await games.pool(pool_id) for pool_id in pool_ids]


@op(387, "list_all_betting_pools_for_game", replies=(3535,))
async def list_all(ctx: Context, msg: dict[str, Any]) -> None:
    """Every open pool of the game."""
    await _listing(ctx, msg, 3535, lambda info: info.open)


@op(388, "list_my_open_betting_pools_for_game", replies=(353,))
async def list_my_open(ctx: Context, msg: dict[str, Any]) -> None:
    """Open pools you have not bet in yet."""
    await _listing(ctx, msg, 353, lambda info: info.open and not info.has_bet)


@op(389, "list_my_running_pools_for_game", replies=(354,))
async def list_my_running(ctx: Context, msg: dict[str, Any]) -> None:
    """Open pools you have bet in."""
    await _listing(ctx, msg, 354, lambda info: info.open and info.has_bet)


@op(390, "list_my_resolved_pools_for_game", replies=(355,))
async def list_my_resolved(ctx: Context, msg: dict[str, Any]) -> None:
    """Resolved pools you had bet in, with your winnings."""
    await _listing(ctx, msg, 355, lambda info: not info.open and info.has_bet, resolved=True)


class _Header(msgspec.Struct, forbid_unknown_fields=True):
    request_id: int | str | msgspec.UnsetType | None = msgspec.UNSET


class BetRequest(msgspec.Struct, forbid_unknown_fields=True, tag_field="op", tag=392):
    """Op 392 as a client usually sends it, read straight from the JSON (every bet comes
    this way: no dict, no envelope and parameter passes). ``read_bet`` takes only what
    the general path would take as it is; anything else goes that path, with its errors."""

    pool_id: str
    target: Any
    amount: Any
    header: _Header | msgspec.UnsetType | None = msgspec.UNSET

    @property
    def request_id(self) -> Any:
        header = self.header
        if header is None or header is msgspec.UNSET or header.request_id is msgspec.UNSET:
            return None
        return header.request_id

    def keys(self) -> int:
        """How many keys the message held: op, pool_id, target, amount, the header's."""
        header = self.header
        if header is msgspec.UNSET:
            return 4
        return 5 if header is None or header.request_id is msgspec.UNSET else 6

    def usual(self) -> bool:
        """Whether the general path would take it as it is: a request_id it accepts, a
        pool_id with nothing to strip, a target and an amount that are not null."""
        request_id, pool_id = self.request_id, self.pool_id
        return (
            (not isinstance(request_id, str) or len(request_id) <= MAX_REQUEST_ID)
            and len(pool_id) <= params.TEXT_MAX
            and pool_id == pool_id.strip()
            and not params.is_null(pool_id)
            and not params.is_null(self.target)
            and not params.is_null(self.amount)
        )


_bet_decoder = msgspec.json.Decoder(BetRequest, float_hook=Decimal)


def read_bet(raw: str | bytes) -> BetRequest | None:
    """Op 392 in its usual shape, or None (not 392, another shape, a key repeated or a
    colon inside a string, a value the general path would strip or refuse)."""
    try:
        bet = _bet_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return bet if colons(raw) == bet.keys() and bet.usual() else None


@op(392, "place_bet_in_betting_pool", replies=(356, 360), read=read_bet)
async def place_bet(ctx: Context, msg: dict[str, Any] | BetRequest) -> None:
    """Stake on a target; answered (356) once the stake is committed."""
    typed = isinstance(msg, BetRequest)
    pool_id = msg.pool_id if typed else params.text(msg, "pool_id", required_=True)
    _, box = await ctx.services.games.pool(pool_id)
    result = await box.ask(
        p.PlaceBet(
            ctx.user_id,
            msg.target if typed else params.required(msg, "target"),
            msg.amount if typed else params.required(msg, "amount"),
            # the address only the operator's wallet needs: a system call per bet otherwise
            ip=ctx.peer_ip if ctx.services.operator is not None else "",
        ),
        timeout=_timeout(ctx),
    )
    if isinstance(result, p.BetHeld):
        result = await _decision(ctx, result)
    ctx.answer(result)


async def _decision(ctx: Context, held: p.BetHeld) -> Any:
    """A held bet's 356 (or refusal) comes once its delay is over and the pool decided;
    REQUEST_TIMED_OUT if the pool has not said by then (it still decides the bet)."""
    delay = max(0, held.due_at - ctx.services.clock.now_ms()) / 1000
    with trio.move_on_after(delay + _timeout(ctx)):
        return await held.decision.wait()
    raise DomainError(
        "REQUEST_TIMED_OUT",
        "The pool did not decide the held bet in time; it is placed or refused all the "
        "same (see your balance).",
    )


@op(393, "get_betting_pool_bets_distribution", replies=(360,))
async def distribution(ctx: Context, msg: dict[str, Any]) -> None:
    """The pool's distribution, with your bets (for game admins, everybody's latest)."""
    game_id, box = await ctx.services.games.pool(params.text(msg, "pool_id", required_=True))
    everything = await _is_game_admin(ctx, game_id)
    shown = await box.ask(p.GetDistribution(ctx.user_id, everything), timeout=_timeout(ctx))
    ctx.reply(360, distribution_fields(shown))


async def _block(ctx: Context, msg: dict[str, Any], block: bool) -> None:
    at = params.epoch_ms(msg, "block_at" if block else "allow_at")
    ctx.answer(await _for_pool(ctx, msg, p.Block(at) if block else p.Allow(at)))


@op(397, "block_betting_in_betting_pool", replies=(368,), command=g.ForPool)
async def block_pool(ctx: Context, msg: dict[str, Any]) -> None:
    """Stop taking bets now, or at block_at."""
    await _block(ctx, msg, True)


@op(398, "allow_betting_in_betting_pool", replies=(369,), command=g.ForPool)
async def allow_pool(ctx: Context, msg: dict[str, Any]) -> None:
    """Take bets again now, or at allow_at."""
    await _block(ctx, msg, False)


async def _block_action(ctx: Context, msg: dict[str, Any], block: bool) -> None:
    box = await ctx.services.games.game(params.text(msg, "game_id", required_=True))
    at = params.epoch_ms(msg, "block_at" if block else "allow_at")
    ctx.answer(
        await box.ask(
            g.BlockAction(ctx.user_id, params.required(msg, "action"), at, block),
            timeout=_timeout(ctx),
        )
    )


@op(3975, "block_betting_for_game_and_action", replies=(370, 368), command=g.BlockAction)
async def block_action(ctx: Context, msg: dict[str, Any]) -> None:
    """Block every open pool of an action, now or at block_at."""
    await _block_action(ctx, msg, True)


@op(3985, "allow_betting_for_game_and_action", replies=(371, 369), command=g.BlockAction)
async def allow_action(ctx: Context, msg: dict[str, Any]) -> None:
    """Allow every open pool of an action again, now or at allow_at."""
    await _block_action(ctx, msg, False)


@op(396, "resolve_betting_pool", replies=(362,), command=g.ForPool)
async def resolve_pool(ctx: Context, msg: dict[str, Any]) -> None:
    """Resolve a pool by hand (the only way for binary pools)."""
    ctx.answer(await _for_pool(ctx, msg, p.ResolveByHand(params.required(msg, "target"))))


@op(399, "void_betting_pool", replies=(362,), command=g.ForPool)
async def void_pool(ctx: Context, msg: dict[str, Any]) -> None:
    """Refund every bet and close the pool (362 with is_money_return)."""
    ctx.answer(await _for_pool(ctx, msg, p.Void()))


#: this module's ops, in the order declared (``transport.ops`` builds ``OPS`` from it)
TABLE: tuple[Op, ...] = tuple(_DECLARED)
