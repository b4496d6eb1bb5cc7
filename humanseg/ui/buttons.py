"""Round virtual buttons and the dwell/hysteresis rule that turns palm positions into presses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

# The original tool's layout, as fractions of the frame: centre (x, y) and radius relative to width.
RADIUS_FRACTION = 0.06
LAYOUT = {
    "ext": (0.85, 0.15),
    "sav": (0.85, 0.45),
    "bkg": (0.15, 0.45),
}
LABELS = {"ext": "Ext", "sav": "Sav", "bkg": "Bkg"}

# A palm must leave to this multiple of the radius before the button re-arms: jitter at the edge
# of the circle then never fires it twice.
RELEASE_FACTOR = 1.3
# ... and stay away this long (seconds): a palm PoseNet misses for a frame or a few (no palm at all,
# or only the other hand) has not left, and must not press the button again when it is found.
RELEASE_SECONDS = 0.15


@dataclass(frozen=True)
class Button:
    """A round button: name ("ext" / "sav" / "bkg"), centre and radius in frame pixels."""

    name: str
    x: float
    y: float
    radius: float

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name.title())

    def distance(self, x: float, y: float) -> float:
        return math.hypot(x - self.x, y - self.y)

    def contains(self, x: float, y: float, factor: float = 1.0) -> bool:
        """True if (x, y) lies within factor * radius of the centre."""
        return self.distance(x, y) <= self.radius * factor


def default_layout(width: int, height: int) -> list[Button]:
    """Ext top-right, Sav right-middle, Bkg left-middle for a frame of width x height pixels."""
    radius = RADIUS_FRACTION * width
    return [Button(name, fx * width, fy * height, radius) for name, (fx, fy) in LAYOUT.items()]


def button_at(buttons: Iterable[Button], x: float, y: float) -> Button | None:
    """The button whose circle holds (x, y), the nearest one if several do; None outside all."""
    hits = [b for b in buttons if b.contains(x, y)]
    return min(hits, key=lambda b: b.distance(x, y)) if hits else None


class DwellTracker:
    """Per-button dwell timer with hysteresis: update() returns the names of buttons pressed now.

    States per button: armed -> dwelling (a palm inside the radius) -> fired once the palm stayed
    `dwell` seconds within the release radius -> armed again only after no palm has been within the
    release radius for `release_seconds`. Times are seconds from any monotonic clock.
    """

    def __init__(self, buttons: Sequence[Button], dwell: float = 0.3, release_factor: float = RELEASE_FACTOR,
                 release_seconds: float = RELEASE_SECONDS):
        if dwell < 0:
            raise ValueError(f"dwell must be >= 0 seconds, got {dwell}")
        self.buttons = list(buttons)
        self.dwell = dwell
        self.release_factor = release_factor
        self.release_seconds = release_seconds
        self.dwell_since: dict[str, float | None] = {b.name: None for b in self.buttons}
        self.latched: dict[str, bool] = {b.name: False for b in self.buttons}
        self.near_at: dict[str, float] = {}  # a latched button: when a palm was last within release

    def progress(self, name: str, now: float) -> float:
        """Fraction 0..1 of the dwell done on a button (0 when no palm is dwelling)."""
        since = self.dwell_since[name]
        if since is None or self.latched[name]:
            return 0.0
        return 1.0 if self.dwell <= 0 else min(1.0, (now - since) / self.dwell)

    def update(self, palms: Iterable[tuple[float, float]], now: float) -> list[str]:
        """Feed the palm positions (frame pixels) seen at time `now`; returns buttons that fire."""
        palms = list(palms)
        fired = []
        for b in self.buttons:
            inside = any(b.contains(x, y) for x, y in palms)
            near = inside or any(b.contains(x, y, self.release_factor) for x, y in palms)
            if self.latched[b.name]:
                if near:
                    self.near_at[b.name] = now
                elif now - self.near_at[b.name] >= self.release_seconds:
                    self.latched[b.name] = False
                    self.dwell_since[b.name] = None
                continue
            since = self.dwell_since[b.name]
            if since is None:
                if inside:
                    self.dwell_since[b.name] = since = now
                else:
                    continue
            elif not near:
                self.dwell_since[b.name] = None
                continue
            if now - since >= self.dwell:
                self.latched[b.name] = True
                self.near_at[b.name] = now
                fired.append(b.name)
        return fired
