"""Counting attempts per key in a fixed window, in bounded memory (login throttling).

Pure: the caller passes the time, so this is tested without trio and without waiting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

#: Keys remembered at most; past it the least recently tried key is forgotten, so a
#: flood of new names or addresses cannot grow memory (it can only reset old counts).
MAX_KEYS = 10_000


class AttemptWindow:
    """At most ``limit`` attempts per key in each ``window`` seconds after its first."""

    def __init__(self, limit: int, window: float, *, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._windows: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def attempt(self, key: Hashable, now: float) -> float | None:
        """Count an attempt and return None, or refuse it (not counted) and return the
        seconds until the key may try again."""
        started, count = self._windows.get(key, (now, 0))
        if now - started >= self.window:
            started, count = now, 0
        if count >= self.limit:
            return started + self.window - now
        self._windows[key] = (started, count + 1)
        self._windows.move_to_end(key)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)
        return None

    def forget(self, key: Hashable) -> None:
        """Start the key afresh (a successful login clears its name's count)."""
        self._windows.pop(key, None)
