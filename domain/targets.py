"""Target trees and actions of a game (decisions §1 Ids, §2 Event resolution).

A target id is the lower-cased name; a nested target's id is its full path
(``"Argentina:1"`` -> ``"argentina:1"``). Every game and every parimutuel pool also has the
target ``none``, which wins when an event matches no pool target.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from domain.errors import DomainError

__all__ = [
    "MAX_ACTION_NAME",
    "MAX_GAME_ACTIONS",
    "MAX_GAME_TARGETS",
    "MAX_POOL_TARGETS",
    "MAX_TARGET_NAME",
    "NONE",
    "TargetTree",
    "action_id",
    "build_actions",
    "check_bound",
    "level",
    "merged_actions",
    "parse_list",
    "path",
    "pool_targets",
    "symbol",
    "target_id",
    "winning_target",
]

NONE = "none"
_NONE_DISPLAY = "None"

#: Bounds of decisions §13, so that no game's document costs the server more than its
#: sender: targets of a game (``none`` not counted, implied parents counted), actions of
#: a game, targets of a pool (``none`` not counted). Past them: ``INVALID_PARAMETER``.
MAX_GAME_TARGETS = 1_000
MAX_GAME_ACTIONS = 100
MAX_POOL_TARGETS = 200
#: Longest target name (its whole ``:``-path) and action name a game takes, in UTF-8
#: bytes: every event repeats them, so they bound what a game's documents weigh as much
#: as the counts do.
MAX_TARGET_NAME = 128
MAX_ACTION_NAME = 64


def check_bound(what: str, before: int, after: int, bound: int, *, parameter: str) -> None:
    """Refuse an addition that takes a count past its bound (``INVALID_PARAMETER``,
    ``limit``: the bound). A count already past it (stored before the bounds existed)
    is served as it is: only growth past the bound is refused."""
    if after > bound and after > before:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{what} may number at most {bound}; this would make {after}.",
            parameter=parameter,
            limit=bound,
        )


def parse_list(value: object, field: str) -> list[str]:
    """A list parameter sent as an array or a comma-separated string, as the seeds allow.

    Items are stripped and empty ones dropped; ``None`` and ``""`` give ``[]``.
    """
    if value is None:
        return []
    if isinstance(value, str):
        items: list[object] = list(value.split(","))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{field} must be an array of strings or a comma-separated string.",
            parameter=field,
        )
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise DomainError(
                "INVALID_PARAMETER", f"every item of {field} must be a string.", parameter=field
            )
        item = item.strip()
        if item:
            out.append(item)
    return out


def _check_length(what: str, name: str, bound: int, parameter: str) -> None:
    """Refuse a new name of more than ``bound`` bytes in UTF-8, or with a control
    character (JSON would spell each in six bytes): ``INVALID_PARAMETER``, ``limit``."""
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise DomainError(
            "INVALID_PARAMETER", f"{what} may not hold control characters.", parameter=parameter
        )
    size = len(name.encode())
    if size > bound:
        raise DomainError(
            "INVALID_PARAMETER",
            f"{what} may be at most {bound} bytes in UTF-8, not {size}.",
            parameter=parameter,
            limit=bound,
        )


def _segments(name: str) -> list[str]:
    """The stripped ``:``-segments of a target name, original case; refuses empty ones."""
    if not isinstance(name, str):
        raise DomainError("INVALID_TARGET", "A target must be a string.")
    parts = [part.strip() for part in name.strip().split(":")]
    if not all(parts):
        raise DomainError("INVALID_TARGET", f"Target {name!r} has an empty name or segment.")
    return parts


def target_id(name: str) -> str:
    """The id of a target name: lower-cased, each ``:``-segment stripped."""
    return ":".join(part.lower() for part in _segments(name))


def symbol(target_id: str) -> str:
    """The first three letters of the target's last segment (``argentina:1`` -> ``"1"``)."""
    return target_id.rsplit(":", 1)[-1][:3]


def level(target_id: str) -> int:
    """Nesting depth: ``"argentina"`` is 1, ``"argentina:1"`` is 2."""
    return target_id.count(":") + 1


def path(target_id: str) -> list[str]:
    """The ids from the root down to the target: ``"brazil:9"`` -> ``["brazil", "brazil:9"]``."""
    parts = target_id.split(":")
    return [":".join(parts[: i + 1]) for i in range(len(parts))]


def _parent(tid: str) -> str | None:
    return tid.rsplit(":", 1)[0] if ":" in tid else None


class TargetTree:
    """The targets of a game: full target id -> display name, parents always present.

    Treat it as immutable: :meth:`merged` returns a new tree. ``TargetTree(tree.as_dict())``
    round-trips through JSON storage.
    """

    __slots__ = ("_names", "_parents")

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        """Wrap a stored ``id -> display name`` mapping, repairing missing parents and ``none``."""
        built: dict[str, str] = {}
        for tid, display in (names or {}).items():
            norm = target_id(tid)
            if norm == NONE:
                continue
            if norm.split(":")[0] == NONE:
                raise DomainError("INVALID_TARGET", "Target 'none' cannot have sub-targets.")
            for pid, segment in zip(path(norm), norm.split(":"), strict=True):
                built.setdefault(pid, display if pid == norm else segment)
            built[norm] = display
        built[NONE] = _NONE_DISPLAY
        self._names = built
        self._parents = frozenset(p for p in map(_parent, built) if p is not None)

    @classmethod
    def build(cls, names: Iterable[str]) -> TargetTree:
        """A tree from target names as a game creator sends them (``"Argentina:1"``, ...).

        A parent that is only implied (``"Argentina:1"`` alone) gets the display name as it
        was written in the child; a name listed explicitly keeps its own spelling. ``none``
        is always added, displayed ``"None"``.
        """
        return cls().merged(names)

    def merged(self, names: Iterable[str]) -> TargetTree:
        """A new tree with ``names`` added; existing targets keep their display names.
        ``INVALID_PARAMETER`` when it would take the game past ``MAX_GAME_TARGETS``."""
        built = dict(self._names)
        del built[NONE]  # re-added last by __init__
        explicit: set[str] = set()
        for name in names:
            parts = _segments(name)
            ids = path(":".join(p.lower() for p in parts))
            if ids[-1] not in self._names:  # a name the game has is taken as it is
                _check_length("A target name", ids[-1], MAX_TARGET_NAME, "targets")
            if ids[0] == NONE:
                if len(ids) > 1:
                    raise DomainError("INVALID_TARGET", "Target 'none' cannot have sub-targets.")
                continue
            for tid, segment in zip(ids, parts, strict=True):
                if tid not in self._names and tid not in built:
                    built[tid] = segment
            own = ids[-1]
            if own not in self._names and own not in explicit:
                built[own] = parts[-1]
                explicit.add(own)
        before = len(self._names) - 1  # ``none`` is not counted
        check_bound("A game's targets", before, len(built), MAX_GAME_TARGETS, parameter="targets")
        return TargetTree(built)

    def ids(self) -> list[str]:
        """All target ids, parents before their children, ``none`` included."""
        return list(self._names)

    def as_dict(self) -> dict[str, str]:
        """``id -> display name``, for storage as JSON."""
        return dict(self._names)

    def __contains__(self, tid: object) -> bool:
        return tid in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TargetTree):
            return NotImplemented
        return self._names == other._names

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TargetTree({self._names!r})"

    def display_name(self, tid: str) -> str:
        """The name as the game creator wrote it (last segment only); ``KeyError`` if unknown."""
        return self._names[tid]

    def is_leaf(self, tid: str) -> bool:
        """True for a known target without sub-targets; events may only name leaves."""
        return tid in self._names and tid not in self._parents

    def to_wire(self) -> dict[str, Any]:
        """The nested shape of seed 001: children keyed by their last segment."""
        root: dict[str, Any] = {}
        nodes: dict[str, dict[str, Any]] = {}
        for tid in sorted(self._names, key=level):  # stable: keeps insertion order per level
            node: dict[str, Any] = {
                "symbol": symbol(tid),
                "display_name": self._names[tid],
                "targets": {},
            }
            nodes[tid] = node
            parent = _parent(tid)
            siblings = root if parent is None else nodes[parent]["targets"]
            siblings[tid.rsplit(":", 1)[-1]] = node
        return root


def pool_targets(tree: TargetTree, names: Iterable[str]) -> list[str]:
    """Validate a parimutuel pool's targets against the game tree; returns ids plus ``none``.

    All targets must exist in the game and share one level (``none`` is exempt), and at
    least one target besides ``none`` is needed: a pool on ``none`` alone cannot be lost.
    At most ``MAX_POOL_TARGETS`` besides ``none`` (``INVALID_PARAMETER``). Linear in the
    names sent: repeats are dropped through a dict, never a scan of what was kept.
    """
    ids: dict[str, None] = {}  # an ordered set
    for name in names:
        tid = target_id(name)
        if tid not in tree:
            raise DomainError(
                "INVALID_TARGET",
                f"Target {name!r} is not a target of this game.",
                parameter="targets",
            )
        ids[tid] = None
    real = [t for t in ids if t != NONE]
    check_bound("A pool's targets", 0, len(real), MAX_POOL_TARGETS, parameter="targets")
    if not real:
        raise DomainError(
            "INVALID_TARGET",
            "A pool needs at least one target besides 'none'.",
            parameter="targets",
        )
    if len({level(t) for t in real}) > 1:
        raise DomainError(
            "INVALID_TARGET",
            f"All targets of a pool must be of the same level, not {', '.join(real)}.",
            parameter="targets",
        )
    ids.setdefault(NONE, None)
    return list(ids)


def winning_target(pool_targets: Iterable[str], event_target: str) -> str:
    """The pool target on the event target's path, else ``none``.

    ``brazil:9`` wins ``brazil`` in a team pool and ``brazil:9`` in a player pool.
    """
    on_path = set(path(target_id(event_target)))
    for tid in pool_targets:
        if tid != NONE and tid in on_path:
            return tid
    return NONE


def action_id(name: str) -> str:
    """The id of an action: its name lower-cased and stripped."""
    if not isinstance(name, str) or not name.strip():
        raise DomainError("INVALID_PARAMETER", "An action needs a non-empty name.")
    return name.strip().lower()


def build_actions(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Actions in the seed's shape, ``{"goal": {"name": "Goal"}}``; first spelling wins."""
    return merged_actions({}, names)


def merged_actions(
    actions: Mapping[str, dict[str, str]], names: Iterable[str]
) -> dict[str, dict[str, str]]:
    """``actions`` with ``names`` added (an existing action keeps its spelling);
    ``INVALID_PARAMETER`` when it would take the game past ``MAX_GAME_ACTIONS``."""
    merged = dict(actions)
    for name in names:
        aid = action_id(name)
        if aid not in actions:  # a name the game has is taken as it is
            _check_length("An action name", aid, MAX_ACTION_NAME, "actions")
        merged.setdefault(aid, {"name": name.strip()})
    check_bound(
        "A game's actions", len(actions), len(merged), MAX_GAME_ACTIONS, parameter="actions"
    )
    return merged
