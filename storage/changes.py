"""Changes as plain data: what an actor asks the storage actor to commit.

Actors describe a change; only the storage actor turns it into SQL. One request is a
list of changes committed all together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Insert:
    """A new row; a clash with an existing key fails the whole request."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert, or replace the row with the same primary key."""

    table: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    table: str
    key: dict[str, Any]
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Delete:
    table: str
    key: dict[str, Any]


Change = Insert | Upsert | Update | Delete
