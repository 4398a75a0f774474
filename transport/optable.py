"""The one op-code table: it drives dispatch, the op-code listing (op 2) and the docs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from actors.services import Services
from domain.roles import Role
from transport.presenters import answer_messages, server_message


class Connection(Protocol):
    """What an op handler uses of its websocket connection (``transport.websocket``
    implements it; declared here so the table need not import the server that imports
    the table)."""

    user_id: int
    user_name: str
    logged_on: bool
    ws: Any  # the trio-websocket connection: its ``remote`` is the peer

    def push(self, data: bytes) -> None:
        """Queue bytes for the client without waiting."""


@dataclass
class Context:
    """One request being handled: who sent it and how to answer, and the op table it was
    dispatched from (op 2 lists it; handed in so no handler imports ``transport.ops``)."""

    conn: Connection
    services: Services
    op: int
    request_id: Any
    ops: Mapping[int, Op]

    @property
    def user_id(self) -> int:
        return self.conn.user_id

    @property
    def peer_ip(self) -> str:
        """The client's IP address (the operator's /bets carries the bettor's)."""
        return self.conn.peer_ip

    def reply(self, res: int, fields: dict[str, Any] | None = None) -> None:
        self.conn.push(
            server_message(
                res, fields or {}, t=self.services.clock.now_ms(), request_id=self.request_id
            )
        )

    def answer(self, result: object) -> None:
        """Reply with the messages that present ``result`` (transport.presenters)."""
        now = self.services.clock.now_ms()
        for message in answer_messages(result, t=now, request_id=self.request_id):
            self.conn.push(message)


#: An op's handler: the request as the general path decodes it (a dict), or, for an op
#: with a typed fast path (``Op.read``), the body that path read.
Handler = Callable[[Context, Any], Awaitable[None]]


class Typed(Protocol):
    """A request read by an op's typed fast path (``Op.read``)."""

    @property
    def request_id(self) -> Any:
        """The ``request_id`` its replies echo, checked as ``codec.request_id_in`` does."""


#: An op's typed fast path: the request read straight into its body when it has the
#: op's usual shape, None for anything else (the general path then decodes it, with its
#: errors); only what the general path would take as it is comes through here.
Reader = Callable[[str | bytes], Typed | None]


@dataclass(frozen=True)
class Op:
    code: int
    name: str
    replies: tuple[int, ...]
    #: the actor message the op sends; its declared ``role`` is who may send the op, and
    #: the actor that owns the message checks it
    command: type | None
    summary: str
    handler: Handler
    read: Reader | None = None

    @property
    def role(self) -> Role:
        return getattr(self.command, "role", Role.ANYONE)


# Response codes by name (op 2's "response_codes"); decisions §1 and the seeds.
RESPONSES: dict[str, int] = {
    "pong": 1,
    "opcodes": 2,
    "logon_success": 100,
    "logon_fail": 110,
    "logon_fail_already_logged_in": 112,
    "game_source_opened": 335,
    "game_source_closed": 336,
    "game_joined": 333,
    "game_left": 334,
    "game_created_and_opened": 340,
    "game_created": 3401,
    "game_closed": 341,
    "game_details": 342,
    "game_details_updated": 343,
    "games_list_for_source": 345,
    "games_list": 3451,
    "betting_pool_created": 350,
    "betting_pool_opened": 352,
    "your_open_pools_list_for_game": 353,
    "your_running_pools_for_game": 354,
    "your_resolved_pools_for_game": 355,
    "bet_placed_in_betting_pool": 356,
    "new_betting_pool_bets_distribution": 360,
    "bet_pool_resolved": 362,
    "bet_pool_expired": 363,
    "new_game_event": 366,
    "betting_in_pool_blocked": 368,
    "betting_in_pool_allowed": 369,
    "betting_for_game_and_action_blocked": 370,
    "betting_for_game_and_action_allowed": 371,
    "user_joined_game": 470,
    "user_left_game": 480,
    "game_viewers": 471,
    "game_sources_i_am_admin_of_list": 621,
    "become_an_admin_for_game_success": 640,
    "become_an_admin_for_game_fail": 645,
    "all_betting_pools_for_game": 3535,
    "error": 666,
    "your_current_balance": 800,
    "your_available_balance": 810,
    "balance_update": 815,
    "your_exposure": 840,
    "your_limits": 850,
    "you_are_excluded": 852,
}


def recorder(declared: list[Op]) -> Callable[..., Callable[[Handler], Handler]]:
    """An ``@op(code, name, replies=..., command=..., summary=..., read=...)`` decorator that
    appends each handler's ``Op`` to ``declared`` (one list per ``ops_*`` module)."""

    def op(
        code: int,
        name: str,
        *,
        replies: tuple[int, ...],
        command: type | None = None,
        summary: str = "",
        read: Reader | None = None,
    ) -> Callable[[Handler], Handler]:
        def record(handler: Handler) -> Handler:
            doc = summary or (handler.__doc__ or "").strip()
            declared.append(Op(code, name, replies, command, doc, handler, read))
            return handler

        return record

    return op


def build_ops(*tables: Iterable[Op]) -> dict[int, Op]:
    """The op table by code, from each module's ``TABLE``; a code declared twice is refused."""
    ops: dict[int, Op] = {}
    for table in tables:
        for spec in table:
            if spec.code in ops:
                raise ValueError(
                    f"op {spec.code} declared twice: {ops[spec.code].name!r} and {spec.name!r}"
                )
            ops[spec.code] = spec
    return ops


def markdown_table(ops: Mapping[int, Op]) -> str:
    """The op listing for docs/protocol.md, generated from the table."""
    rows = [
        "| op | name | replies | who may send it | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in sorted(ops.values(), key=lambda s: s.code):
        replies = ", ".join(str(r) for r in spec.replies)
        rows.append(f"| {spec.code} | `{spec.name}` | {replies} | {spec.role} | {spec.summary} |")
    return "\n".join(rows)
