"""The directory's protocol (``actors.directory.Games``, or any other implementation of
``actors.services.Directory``): the command it takes and what it answers. Declared apart
from the directory so ``actors.services`` can type its interface without importing the
actors the directory spawns. ``GameClosure`` (a game's answer to ``Close``) is here too:
a source's closure is made of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from domain.roles import Role


@dataclass(frozen=True, slots=True)
class CreateGame:
    """A new game of a source (ops 370 and 3701), answered with the ``Game``.

    Raises: NOT_FOUND, NOT_AUTHORIZED, INVALID_STATE (the source: unknown, not the user's,
    closed), INVALID_PARAMETER (a field of the game).
    """

    role: ClassVar[Role] = Role.SOURCE_ADMIN
    source_id: str
    user_id: int
    fields: dict[str, Any]
    opened: bool


@dataclass(frozen=True, slots=True)
class GameClosure:
    """A game's answer to ``Close`` (``actors.game``)."""

    game_id: str
    #: binary pools still open, now blocked: the game closes once their admins resolve
    #: them and close it again
    blocked: list[str] = field(default_factory=list)
    blocked_at: int | None = None

    @property
    def closed(self) -> bool:
        return not self.blocked


@dataclass(frozen=True, slots=True)
class SourceClosure:
    """Closing a source closes its games; binary pools still open keep it open (blocked,
    waiting for their admins) until they are resolved and the close is sent again."""

    source_id: str
    blocked: list[GameClosure] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return not self.blocked
