"""A game as data: its definition, its status over time, and its wire shapes (seed 001)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from domain.targets import TargetTree

NOT_YET = "betting_not_yet_active"
PRE_GAME = "pre_game_betting_active"
IN_PROGRESS = "game_in_progress_betting_active"
BETTING_CLOSED = "game_in_progress_betting_closed"
CLOSED = "game_closed"


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
    takeout: str = "0"
    closing: bool = False
    closed_at: int | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Game:
        return cls(**doc)

    @property
    def tree(self) -> TargetTree:
        return TargetTree(self.targets)

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    def status(self, now: int) -> str:
        if self.is_closed:
            return CLOSED
        if not self.opened or now < self.open_at:
            return NOT_YET
        if self.closing:
            return BETTING_CLOSED
        if now < self.live_start_at:
            return PRE_GAME
        return IN_PROGRESS

    def accepts_pools(self, now: int) -> bool:
        return self.status(now) in (PRE_GAME, IN_PROGRESS)

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

    def details(self, now: int, past_events: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Res 342."""
        return {
            "status": self.status(now),
            "game_id": self.id,
            "name": self.name,
            "game_name": self.name,
            "hashtag": self.hashtag,
            "past_events": past_events,
            "actions": self.actions,
            "currency": self.currency,
            "type": self.type,
            "targets": self.tree.to_wire(),
            "open_at": self.open_at,
            "live_start_at": self.live_start_at,
            "live_finish_at": self.live_finish_at,
            "close_at": self.close_at,
            "source_id": self.source_id,
        }

    def summary(self, now: int) -> dict[str, Any]:
        """One entry of res 345."""
        return {
            "status": self.status(now),
            "name": self.name,
            "type": self.type,
            "open_at": self.open_at,
            "close_at": self.close_at,
        }


def default_hashtag(name: str) -> str:
    return "#" + "".join(ch for ch in name.title() if ch.isalnum())
