"""Game ops (seed 001): create, open, admins, details, join, leave, close, list; and
our list of every source's games (3801)."""

from __future__ import annotations

from typing import Any, TypeVar

from actors import game as g
from actors.directory_protocol import CreateGame
from domain import params
from domain.errors import DomainError, about
from domain.game import GameStatus
from domain.rules import RULE_FIELDS
from domain.targets import TargetTree, build_actions, parse_list
from kit.runtime import Ask
from storage.game_list import ListedGame, open_games_page
from transport.optable import Context, Op, recorder
from transport.presenters import acknowledged

R = TypeVar("R")

_DECLARED: list[Op] = []
op = recorder(_DECLARED)


def _game_id(msg: dict[str, Any]) -> str:
    return params.text(msg, "game_id", required_=True) or ""


def _additions(msg: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The actions and targets a 3702 or 373 adds to its game, checked as names here
    (so a refusal names its field); the game checks them against what it has."""
    with about("actions"):
        actions = parse_list(msg.get("actions"), "actions")
        build_actions(actions)
    with about("targets"):
        targets = parse_list(msg.get("targets"), "targets")
        TargetTree.build(targets)
    return actions, targets


async def _ask_game(ctx: Context, msg: dict[str, Any], body: Ask[R]) -> R:
    box = await ctx.services.games.game(_game_id(msg))
    return await box.ask(body, timeout=ctx.services.settings.request_timeout)


async def _create(ctx: Context, msg: dict[str, Any], *, opened: bool) -> None:
    source_id = params.text(msg, "source_id", required_=True) or ""
    game = await ctx.services.games.create_game(
        CreateGame(source_id, ctx.user_id, msg, opened=opened)
    )
    if opened:
        ctx.reply(340, game.opened_message())
    else:
        ctx.reply(3401, game.header())


@op(370, "create_and_open_game", replies=(340,), command=CreateGame)
async def create_and_open_game(ctx: Context, msg: dict[str, Any]) -> None:
    """Create a game with its actions and targets, open for pools at once."""
    await _create(ctx, msg, opened=True)


@op(3701, "create_game", replies=(3401,), command=CreateGame)
async def create_game(ctx: Context, msg: dict[str, Any]) -> None:
    """Create an upcoming game; open it later with op 3702."""
    await _create(ctx, msg, opened=False)


@op(3702, "open_game", replies=(340,), command=g.OpenGame)
async def open_game(ctx: Context, msg: dict[str, Any]) -> None:
    """Open an upcoming game, adding actions and targets."""
    opened = await _ask_game(ctx, msg, g.OpenGame(ctx.user_id, *_additions(msg)))
    ctx.reply(340, opened.fields)


@op(616, "become_an_admin_for_game", replies=(640, 645), command=g.BecomeAdmin)
async def become_admin(ctx: Context, msg: dict[str, Any]) -> None:
    """Become one of the game's admins (up to the per-game limit)."""
    grant = await _ask_game(ctx, msg, g.BecomeAdmin(ctx.user_id))
    ctx.answer(grant)


@op(372, "get_game_details", replies=(342,))
async def game_details(ctx: Context, msg: dict[str, Any]) -> None:
    """Full details of a game, with its status and past events."""
    details = await _ask_game(ctx, msg, g.Details())
    ctx.reply(342, details.wire())


@op(373, "update_game_details", replies=(343, 342), command=g.UpdateDetails)
async def update_details(ctx: Context, msg: dict[str, Any]) -> None:
    """Add actions and targets, set pool rules; subscribers get the new details (342)."""
    rules = {name: msg[name] for name in RULE_FIELDS if name in msg}
    ack = await _ask_game(ctx, msg, g.UpdateDetails(ctx.user_id, *_additions(msg), rules))
    ctx.reply(343, acknowledged(ack))


@op(363, "join_game", replies=(333, 470, 471))
async def join_game(ctx: Context, msg: dict[str, Any]) -> None:
    """Subscribe to a game's messages; with since_seq, every broadcast numbered above it
    follows the 333 (resumed), or the 333 says to read the game again."""
    since_seq = _since_seq(msg)
    await _ask_game(
        ctx, msg, g.Join(ctx.user_id, ctx.conn.user_name, ctx.conn.push, since_seq, ctx.answer)
    )


def _since_seq(msg: dict[str, Any]) -> int | None:
    """The optional ``since_seq``: a non-negative integer (INVALID_PARAMETER otherwise)."""
    if isinstance(msg.get("since_seq"), bool):
        raise DomainError(
            "INVALID_PARAMETER", "since_seq must be a non-negative integer.", parameter="since_seq"
        )
    return params.integer(msg, "since_seq", minimum=0)


@op(364, "leave_game", replies=(334, 480))
async def leave_game(ctx: Context, msg: dict[str, Any]) -> None:
    """Unsubscribe from a game; the others hear of it (480)."""
    ack = await _ask_game(ctx, msg, g.Leave(ctx.user_id, ctx.conn.user_name, ctx.conn.push))
    ctx.reply(334, acknowledged(ack))


@op(375, "close_game", replies=(341, 362, 368), command=g.Close)
async def close_game(ctx: Context, msg: dict[str, Any]) -> None:
    """Resolve parimutuel pools to none, block binary ones; 341 once none is left."""
    closure = await _ask_game(ctx, msg, g.Close(ctx.user_id))
    ctx.answer(closure)


@op(380, "list_games_for_source", replies=(345,))
async def list_games(ctx: Context, msg: dict[str, Any]) -> None:
    """The source's games that are not closed."""
    source_id = params.text(msg, "source_id", required_=True) or ""
    games = ctx.services.games
    listed = {}
    for game_id in await games.games_of(source_id):
        summary = await (await games.game(game_id)).ask(
            g.Summary(), timeout=ctx.services.settings.request_timeout
        )
        if summary.status is not GameStatus.CLOSED:
            listed[game_id] = summary.wire()
    ctx.reply(345, {"source_id": source_id, "games": listed})


#: The most games one 3801 answers (its ``limit``'s bound and default).
GAME_PAGE_MAX = 100


@op(3801, "list_games", replies=(3451,))
async def list_all_games(ctx: Context, msg: dict[str, Any]) -> None:
    """The games of every source that are not closed, newest first, a page at a time."""
    limit = params.integer(msg, "limit", default=GAME_PAGE_MAX, minimum=1, maximum=GAME_PAGE_MAX)
    before = params.integer(msg, "cursor", minimum=1, maximum=params.INT64_MAX)
    assert limit is not None  # it has a default
    # one row more than shown says whether a next page exists
    rows = await ctx.services.storage.read(lambda db: open_games_page(db, before, limit + 1))
    now = ctx.services.clock.now_ms()
    shown = rows[:limit]
    ctx.reply(
        3451,
        {
            "games": [_listed_game(game, now) for game in shown],
            "next_cursor": str(shown[-1].position) if len(rows) > limit else None,
        },
    )


def _listed_game(game: ListedGame, now: int) -> dict[str, Any]:
    """One entry of 3451."""
    return {
        "game_id": game.game_id,
        "name": game.name,
        "status": game.status(now),
        "source_id": game.source_id,
        "source_name": game.source_name,
        "type": game.type,
        "open_at": game.open_at,
        "live_start_at": game.live_start_at,
        "close_at": game.close_at,
    }


#: this module's ops, in the order declared (``transport.ops`` builds ``OPS`` from it)
TABLE: tuple[Op, ...] = tuple(_DECLARED)
