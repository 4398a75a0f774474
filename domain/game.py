"""A game as data: its definition, its status over time, and its wire shapes (seed 001)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from domain import params
from domain.errors import DomainError, about
from domain.money import (
    exponent_of,
    parse_amount,
    parse_currency,
    parse_rate,
    rate_text,
    stored_rate,
)
from domain.params import stored_time
from domain.rules import PoolRules, parse_rules
from domain.targets import NONE, TargetTree, build_actions, check_bound, parse_list

#: Events one game may record (decisions §13): its 342 and its draw carry every one.
MAX_GAME_EVENTS = 10_000
#: Pools one game may have open at once: every 387-389 describes each of them, and each
#: event asks each of them whether it resolves it.
MAX_OPEN_POOLS = 50


class GameStatus(StrEnum):
    """A game's status over time, as seed 001 names it."""

    NOT_YET = "betting_not_yet_active"
    PRE_GAME = "pre_game_betting_active"
    IN_PROGRESS = "game_in_progress_betting_active"
    BETTING_CLOSED = "game_in_progress_betting_closed"
    CLOSED = "game_closed"


def game_status(
    now: int, *, closed: bool, opened: bool, closing: bool, open_at: int, live_start_at: int
) -> GameStatus:
    """A game's status at ``now`` from the few fields it depends on, so a listing read
    from storage words it as the game actor does without loading the whole game."""
    if closed:
        return GameStatus.CLOSED
    if not opened or now < open_at:
        return GameStatus.NOT_YET
    if closing:
        return GameStatus.BETTING_CLOSED
    if now < live_start_at:
        return GameStatus.PRE_GAME
    return GameStatus.IN_PROGRESS


_TIME_FIELDS = ("open_at", "live_start_at", "live_finish_at", "close_at", "created_at", "closed_at")


@dataclass
class Game:
    id: str
    source_id: str
    name: str
    type: str | None
    currency: str
    hashtag: str
    open_at: int
    live_start_at: int
    live_finish_at: int | None
    close_at: int | None
    created_at: int
    opened: bool = False
    actions: dict[str, dict[str, str]] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=lambda: TargetTree.build([]).as_dict())
    admins: list[int] = field(default_factory=list)
    takeout: str = "0"  # exact decimal text (money.rate_text), the pools' default
    #: the most one user may stake in one pool, in minor units: its pools' default
    max_liability: int | None = None
    closing: bool = False
    closed_at: int | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the rules its pools get unless 385 sets their own (decisions §11)
    rules: PoolRules = field(default_factory=PoolRules)

    def to_doc(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["rules"] = self.rules.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Game:
        """The stored game; out-of-range times and the ``"1/20"`` takeouts of older
        versions are read into today's forms rather than crash the actor."""
        fields = dict(doc)
        for name in _TIME_FIELDS:
            if name in fields:
                fields[name] = stored_time(fields[name], name)
        fields["takeout"] = rate_text(stored_rate(fields.get("takeout", "0")))
        fields["rules"] = PoolRules.from_doc(fields.get("rules"))
        return cls(**fields)

    def with_rules(self, fields: dict[str, Any]) -> Game:
        """This game with the pool rules ``fields`` set (op 373); INVALID_PARAMETER as
        ``parse_rules``."""
        rules = parse_rules(fields, self.currency, exponent_of(self.currency), self.rules)
        return replace(self, rules=rules)

    @property
    def tree(self) -> TargetTree:
        return TargetTree(self.targets)

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    def status(self, now: int) -> GameStatus:
        return game_status(
            now,
            closed=self.is_closed,
            opened=self.opened,
            closing=self.closing,
            open_at=self.open_at,
            live_start_at=self.live_start_at,
        )

    def accepts_pools(self, now: int) -> bool:
        return self.status(now) in (GameStatus.PRE_GAME, GameStatus.IN_PROGRESS)

    def header(self) -> dict[str, Any]:
        """The fields shared by 340, 3401 and 3402."""
        return {
            "source_id": self.source_id,
            "game_id": self.id,
            "game_name": self.name,
            "type": self.type,
            "open_at": self.open_at,
            "live_start_at": self.live_start_at,
            "live_finish_at": self.live_finish_at,
            "close_at": self.close_at,
            "hashtag": self.hashtag,
            "currency": self.currency,
        }

    def opened_message(self) -> dict[str, Any]:
        return {**self.header(), "actions": self.actions, "targets": self.tree.to_wire()}

    def details(self, now: int, past_events: Any, targets: Any = None) -> GameDetails:
        """Res 342; ``past_events`` and ``targets`` (default: the tree's wire shape) may be
        given ready-encoded."""
        return GameDetails(
            status=self.status(now),
            game_id=self.id,
            name=self.name,
            hashtag=self.hashtag,
            past_events=past_events,
            actions=self.actions,
            currency=self.currency,
            type=self.type,
            targets=self.tree.to_wire() if targets is None else targets,
            open_at=self.open_at,
            live_start_at=self.live_start_at,
            live_finish_at=self.live_finish_at,
            close_at=self.close_at,
            source_id=self.source_id,
            rules=self.rules,
        )

    def summary(self, now: int) -> GameSummary:
        """One entry of res 345."""
        return GameSummary(self.status(now), self.name, self.type, self.open_at, self.close_at)


@dataclass(frozen=True, slots=True)
class GameOpened:
    """A game as it opened (res 340): its header, actions and targets."""

    game_id: str
    fields: dict[str, Any]  # res 340's, as ``Game.opened_message`` builds them

    @classmethod
    def of(cls, game: Game) -> GameOpened:
        return cls(game.id, game.opened_message())


@dataclass(frozen=True, slots=True)
class GameDetails:
    """A game's details as of one moment (res 342)."""

    status: GameStatus
    game_id: str
    name: str
    hashtag: str
    past_events: Any  # the events by id, or their JSON ready-encoded (``msgspec.Raw``)
    actions: dict[str, dict[str, str]]
    currency: str
    type: str | None
    targets: Any  # the target tree's wire shape, or its JSON ready-encoded
    open_at: int
    live_start_at: int
    live_finish_at: int | None
    close_at: int | None
    source_id: str
    rules: PoolRules

    def wire(self) -> dict[str, Any]:
        """The fields of res 342."""
        return {
            "status": self.status,
            "game_id": self.game_id,
            "name": self.name,
            "game_name": self.name,
            "hashtag": self.hashtag,
            "past_events": self.past_events,
            "actions": self.actions,
            "currency": self.currency,
            "type": self.type,
            "targets": self.targets,
            "open_at": self.open_at,
            "live_start_at": self.live_start_at,
            "live_finish_at": self.live_finish_at,
            "close_at": self.close_at,
            "source_id": self.source_id,
            **self.rules.wire(exponent_of(self.currency)),
        }


@dataclass(frozen=True, slots=True)
class GameSummary:
    """A game in a source's list (one entry of res 345)."""

    status: GameStatus
    name: str
    type: str | None
    open_at: int
    close_at: int | None

    def wire(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "name": self.name,
            "type": self.type,
            "open_at": self.open_at,
            "close_at": self.close_at,
        }


def default_hashtag(name: str) -> str:
    return "#" + "".join(ch for ch in name.title() if ch.isalnum())


def new_game(
    source_id: str, fields: dict[str, Any], now: int, *, opened: bool, default_currency: str
) -> Game:
    """Validate an op 370/3701 request and build the game (not yet saved)."""
    name = params.text(fields, "game_name", required_=True) or ""
    currency = parse_currency(fields.get("currency"), default=default_currency)
    open_at = params.epoch_ms(fields, "open_at", default=now) or now
    close_at = params.epoch_ms(fields, "close_at")
    if close_at is not None and close_at <= max(open_at, now):
        raise DomainError(
            "INVALID_PARAMETER", "close_at must be after open_at and now.", parameter="close_at"
        )
    with about("actions"):
        actions = build_actions(parse_list(fields.get("actions"), "actions"))
    with about("targets"):
        targets = TargetTree.build(parse_list(fields.get("targets"), "targets"))
    return Game(
        id=str(uuid.uuid4()),
        source_id=source_id,
        name=name,
        type=params.text(fields, "type"),
        currency=currency,
        hashtag=params.text(fields, "hashtag") or default_hashtag(name),
        open_at=open_at,
        live_start_at=params.epoch_ms(fields, "live_start_at", default=open_at) or open_at,
        live_finish_at=params.epoch_ms(fields, "live_finish_at"),
        close_at=close_at,
        created_at=now,
        opened=opened,
        actions=actions,
        targets=targets.as_dict(),
        takeout=rate_text(parse_rate(fields.get("takeout"))),
        max_liability=optional_amount(fields, "max_liability", exponent_of(currency)),
        rules=parse_rules(fields, currency, exponent_of(currency), PoolRules()),
    )


def optional_amount(fields: dict[str, Any], name: str, exponent: int) -> int | None:
    """An optional limit in minor units (``INVALID_PARAMETER`` naming the field)."""
    if params.is_null(fields.get(name)):
        return None
    return parse_amount(fields[name], exponent, field=name, code="INVALID_PARAMETER")


def check_event_room(recorded: int) -> None:
    """Refuse one more event past ``MAX_GAME_EVENTS`` (``INVALID_PARAMETER``)."""
    check_bound("A game's events", recorded, recorded + 1, MAX_GAME_EVENTS, parameter="game_id")


def check_pool_room(open_pools: int) -> None:
    """Refuse one more open pool past ``MAX_OPEN_POOLS`` (``INVALID_PARAMETER``)."""
    check_bound(
        "A game's open pools", open_pools, open_pools + 1, MAX_OPEN_POOLS, parameter="game_id"
    )


def event_target(tree: TargetTree, raw: object) -> str:
    """The target an event (op 395) names: a leaf of the game's tree. An unknown name and
    a known team are different mistakes, and the reply says which."""
    target = raw.strip().lower() if isinstance(raw, str) else None
    if target is None or target == NONE or target not in tree:
        raise DomainError(
            "INVALID_TARGET",
            f"{str(raw)[:64]!r} is not a target of this game.",
            parameter="target_id",
        )
    if not tree.is_leaf(target):
        raise DomainError(
            "INVALID_TARGET",
            f"{raw!r} is not a leaf target; events name the most specific target "
            "(a player, not a team).",
            parameter="target_id",
        )
    return target
