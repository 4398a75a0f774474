"""One source of time for the whole server.

Wall-clock epoch milliseconds are derived from trio's clock, so that a test running
under ``trio.testing.MockClock`` moves timers *and* timestamps together.
"""

from __future__ import annotations

import time

import trio


class WallClock:
    """Maps trio's monotonic clock onto epoch milliseconds, anchored once at creation."""

    def __init__(self, epoch_ms: int | None = None) -> None:
        self._anchor_trio = trio.current_time()
        self._anchor_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms

    def now_ms(self) -> int:
        return self._anchor_ms + int((trio.current_time() - self._anchor_trio) * 1000)

    def deadline_for(self, epoch_ms: int) -> float:
        """The trio deadline at which wall-clock time ``epoch_ms`` is reached."""
        return self._anchor_trio + (epoch_ms - self._anchor_ms) / 1000
