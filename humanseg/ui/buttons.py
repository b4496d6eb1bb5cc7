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
# ... and stay away this long (seconds) and over this many of PoseNet's answers: a palm PoseNet misses
# for a frame or a few (no palm at all, or only the other hand) has not left, and must not press the
# button again when it is found. Both, since answers come 5-30 times a second by the machine's load
# (at 12 a second two missed answers outlasted the seconds alone, and one slow call that found
# nothing re-armed the button: a resting hand cancelled its own countdown or saved twice).
RELEASE_SECONDS = 0.15
RELEASE_ANSWERS = 4


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
    release radius for `release_seconds` and `release_answers` pose answers. Times are seconds from
    any monotonic clock.
    """

    def __init__(self, buttons: Sequence[Button], dwell: float = 0.3, release_factor: float = RELEASE_FACTOR,
                 release_seconds: float = RELEASE_SECONDS, release_answers: int = RELEASE_ANSWERS):
        if dwell < 0:
            raise ValueError(f"dwell must be >= 0 seconds, got {dwell}")
        self.buttons = list(buttons)
        self.dwell = dwell
        self.release_factor = release_factor
        self.release_seconds = release_seconds
        self.release_answers = release_answers
        self.dwell_since: dict[str, float | None] = {b.name: None for b in self.buttons}
        self.latched: dict[str, bool] = {b.name: False for b in self.buttons}
        self.near_at: dict[str, float] = {}  # a latched button: when a palm was last within release
        self.missed: dict[str, int] = {}  # ... and how many answers since have had none there
        self.answer: int | None = None  # the last answer seen (update's `answer`)

    def carry_latches(self, old: "DwellTracker") -> None:
        """Keep another tracker's latches for the buttons of the same name (a new layout): a hand
        resting on a button when the frame changed size must leave before it presses it again."""
        for name in self.latched:
            if old.latched.get(name):
                self.latched[name] = True
                self.near_at[name], self.missed[name] = old.near_at[name], old.missed[name]
        self.answer = old.answer

    def progress(self, name: str, now: float) -> float:
        """Fraction 0..1 of the dwell done on a button (0 when no palm is dwelling)."""
        since = self.dwell_since[name]
        if since is None or self.latched[name]:
            return 0.0
        return 1.0 if self.dwell <= 0 else min(1.0, (now - since) / self.dwell)

    def update(self, palms: Iterable[tuple[float, float]], now: float, answer: int | None = None) -> list[str]:
        """Feed the palm positions (frame pixels) seen at time `now`; returns buttons that fire.

        answer: which pose answer the palms are (a count); the same one fed again (pose skipped this
        frame, or still computing) does not count as another miss. None: every update is a new one."""
        palms = list(palms)
        fresh = answer is None or answer != self.answer
        self.answer = answer
        fired = []
        for b in self.buttons:
            inside = any(b.contains(x, y) for x, y in palms)
            near = inside or any(b.contains(x, y, self.release_factor) for x, y in palms)
            if self.latched[b.name]:
                if near:
                    self.near_at[b.name], self.missed[b.name] = now, 0
                    continue
                self.missed[b.name] += fresh
                if (now - self.near_at[b.name] >= self.release_seconds
                        and self.missed[b.name] >= self.release_answers):
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
                self.near_at[b.name], self.missed[b.name] = now, 0
                fired.append(b.name)
        return fired
