"""One source of time for the whole server.

Wall-clock epoch milliseconds are derived from trio's clock, so that a test running
under ``trio.testing.MockClock`` moves timers *and* timestamps together.
"""

from __future__ import annotations

import math
import time

import trio

from domain.params import TIME_MAX_MS


class WallClock:
    """Maps trio's monotonic clock onto epoch milliseconds, anchored once at creation."""

    def __init__(self, epoch_ms: int | None = None) -> None:
        self._anchor_trio = trio.current_time()
        self._anchor_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms

    def now_ms(self) -> int:
        return self._anchor_ms + int((trio.current_time() - self._anchor_trio) * 1000)

    def deadline_for(self, epoch_ms: int) -> float:
        """The trio deadline at which wall-clock time ``epoch_ms`` is reached.

        Never raises, whatever a stored document holds: a time beyond ``TIME_MAX_MS``
        (or not a number at all) is "never", ``math.inf``; one before 0 is long past.
        """
        if not epoch_ms <= TIME_MAX_MS:  # also catches NaN
            return math.inf
        return self._anchor_trio + (max(epoch_ms, 0) - self._anchor_ms) / 1000
