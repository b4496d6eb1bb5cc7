"""A countdown in seconds against an injected clock."""

from __future__ import annotations

import math


class Countdown:
    """Counts `seconds` down from `start` (both seconds of the same monotonic clock)."""

    def __init__(self, seconds: float, start: float):
        if seconds < 0:
            raise ValueError(f"countdown must be >= 0 seconds, got {seconds}")
        self.seconds = float(seconds)
        self.start = float(start)

    def remaining(self, now: float) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.seconds - (now - self.start))

    def shown(self, now: float) -> int:
        """The whole number shown on screen: 3, 2, 1 while running (ceil of the time left)."""
        return int(math.ceil(self.remaining(now)))

    def done(self, now: float) -> bool:
        return now - self.start >= self.seconds
