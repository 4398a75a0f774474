"""The websocket presenter: what actors answer and announce, as instamrkt messages.

Actors speak in domain results and events; this module alone knows their res codes and
wire shapes (decisions §1). The HTTP presenters live beside their blueprints.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from actors import game as g
from actors import pool as p
from actors.directory_protocol import SourceClosure
from actors.hub import Broadcast, Joined
from actors.wallet import BalanceChanged
from domain.codec import encode
from domain.money import exponent_of, to_wire

#: The res code of each event the actors publish.
EVENT_RES: dict[type[Broadcast], int] = {
    g.GameClosed: 341,
    g.DetailsChanged: 342,
    g.EventRegistered: 366,
    g.ActionBlocked: 370,
    g.ActionAllowed: 371,
    g.PlayerJoined: 470,
    g.PlayerLeft: 480,
    g.ViewersCounted: 471,
    p.PoolOpened: 352,
    p.BetsDistributed: 360,
    p.PoolResolved: 362,
    p.PoolExpired: 363,
    p.PoolBlocked: 368,
    p.PoolAllowed: 369,
}


def server_message(
    res: int,
    fields: dict[str, Any],
    *,
    t: int,
    request_id: Any = None,
    header: dict[str, Any] | None = None,
) -> bytes:
    """A server message in the envelope of decisions §1: response_header first, then res.
    ``header``: more response_header fields (a broadcast's ``game_id`` and ``seq``)."""
    response_header: dict[str, Any] = {"t": t}
    if request_id is not None:
        response_header["request_id"] = request_id
    if header:
        response_header.update(header)
    return encode({"response_header": response_header, "res": res, **fields})


def frame(event: object, header: dict[str, Any], *, t: int) -> bytes:
    """One event as the bytes every recipient gets (the hub renders once per event and
    gives the response_header fields it adds: ``game_id``, ``seq``)."""
    if type(event) is BalanceChanged and not header:  # every bet has one: its template
        return balance_message(event, t=t)
    [(res, fields)] = present(event)
    return server_message(res, fields, t=t, header=header)


def answer_messages(result: object, *, t: int, request_id: Any) -> list[bytes]:
    """The messages that answer a request with ``result``, in order."""
    if type(result) is p.BetPlaced:  # every bet has one: its template
        return [bet_placed_message(result, t=t, request_id=request_id)]
    return [
        server_message(res, fields, t=t, request_id=request_id) for res, fields in present(result)
    ]


# -- templates: the bytes ``server_message`` gives for the two messages of every bet (356,
# 815), joined from parts instead of built as dicts and encoded whole; ``present`` stays
# the reference (tests/test_presenter_templates.py holds them to the same bytes).


@lru_cache(maxsize=4096)
def money_json(minor: int, exponent: int) -> bytes:
    """An amount as the JSON number ``to_wire`` gives, computed once per amount (a bet's
    replies repeat a few stakes)."""
    return encode(to_wire(minor, exponent))


def _head(res: int, t: int, request_id: Any) -> bytes:
    """A message's opening up to its first field: the response_header and ``res``."""
    if request_id is None:
        return b'{"response_header":{"t":%d},"res":%d' % (t, res)
    return b'{"response_header":{"t":%d,"request_id":%b},"res":%d' % (
        t,
        encode(request_id),
        res,
    )


def bet_placed_message(placed: p.BetPlaced, *, t: int, request_id: Any) -> bytes:
    """Res 356, as ``present`` shows a ``BetPlaced``."""
    return b'%b,"pool_id":%b,"bet_id":%b,"amount":%b,"target":%b}' % (
        _head(356, t, request_id),
        encode(placed.pool_id),
        encode(placed.bet_id),
        money_json(placed.amount, placed.exponent),
        encode(placed.target),
    )


def balance_message(changed: BalanceChanged, *, t: int) -> bytes:
    """Res 815, as ``present`` shows a ``BalanceChanged`` (a push: no request_id)."""
    exponent = exponent_of(changed.currency)
    return b'%b,"current_balance":%b,"available_balance":%b,"currency":%b}' % (
        _head(815, t, None),
        money_json(changed.balance.current, exponent),
        money_json(changed.balance.available, exponent),
        encode(changed.currency),
    )


def acknowledged(ack: g.GameAcknowledged) -> dict[str, Any]:
    """The fields of res 343 and res 334: the game that took the request."""
    return {"game_id": ack.game_id}


def pool_created_fields(created: g.PoolCreated) -> dict[str, Any]:
    """The fields of res 350."""
    return {
        "game_id": created.game_id,
        "pool_id": created.pool_id,
        "description": created.description,
        "pool_type": created.pool_type,
    }


def distribution_fields(shown: p.PoolDistribution) -> dict[str, Any]:
    """The fields of res 360 (``omitted_bets`` only when some are left out)."""
    fields: dict[str, Any] = {
        "pool_id": shown.pool_id,
        "target_level": shown.target_level,
        "distribution": shown.distribution,
    }
    if shown.omitted_bets:
        fields["omitted_bets"] = shown.omitted_bets
    return fields


def present(result: object) -> list[tuple[int, dict[str, Any]]]:
    """The messages (res, fields) that show a result or an event, in order."""
    match result:
        case Broadcast(fields):
            return [(EVENT_RES[type(result)], fields)]
        case BalanceChanged(currency, balance):
            exponent = exponent_of(currency)
            return [
                (
                    815,
                    {
                        "current_balance": to_wire(balance.current, exponent),
                        "available_balance": to_wire(balance.available, exponent),
                        "currency": currency,
                    },
                )
            ]
        case p.BetPlaced(pool_id, bet_id, target, amount, _, exponent):
            return [
                (
                    356,
                    {
                        "pool_id": pool_id,
                        "bet_id": bet_id,
                        "amount": to_wire(amount, exponent),
                        "target": target,
                    },
                )
            ]
        case Joined(game_id, seq, resumed, viewers):
            joined: dict[str, Any] = {"game_id": game_id, "seq": seq, "viewers": viewers}
            if resumed is not None:
                joined["resumed"] = resumed
            return [(333, joined)]
    return _present_game(result)


def _present_game(result: object) -> list[tuple[int, dict[str, Any]]]:
    """The messages of a game's and a source's life: admin grants, recorded events (and
    the pools they resolved), closures. ``TypeError`` for anything else."""
    match result:
        case g.AdminGrant(game_id, None):
            return [(640, {"game_id": game_id})]
        case g.AdminGrant(game_id, reason):
            return [(645, {"game_id": game_id, "reason": reason})]
        case g.EventRecorded(event, resolved):
            return [message for item in (event, *resolved) for message in present(item)]
        case g.GameClosure(_, blocked, blocked_at) if blocked:
            return [(368, {"blocked_at": blocked_at, "pool_id": pool_id}) for pool_id in blocked]
        case g.GameClosure(game_id):
            return [(341, {"game_id": game_id})]
        case SourceClosure(_, blocked) if blocked:
            return [message for closure in blocked for message in present(closure)]
        case SourceClosure(source_id):
            return [(336, {"source_id": source_id})]
    raise TypeError(f"no websocket presentation for {type(result).__name__}")
