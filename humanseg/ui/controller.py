"""The capture tool's decisions: presses from palms, clicks and keys; countdowns; when to save."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from humanseg.ui.buttons import Button, DwellTracker, button_at
from humanseg.ui.countdown import Countdown

# Key codes (display.read_key's, which gives letters in lower case) of the keyboard shortcuts; Esc
# quits like q.
KEY_BUTTONS = {ord("b"): "bkg", ord("s"): "sav", ord("q"): "ext", 27: "ext"}

NEED_BACKGROUND = "capture a background first"
FLASH_SECONDS = 2.0
MESSAGE_SECONDS = 2.5


@dataclass
class Event:
    """Something that happened: name ("pressed", "countdown_started", "countdown_cancelled",
    "capture", "saved", "message", "quit") and its JSON-friendly fields."""

    name: str
    fields: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"event": self.name, **self.fields}


@dataclass
class Notice:
    """Text shown on screen until `until` (clock seconds)."""

    text: str
    until: float


class CaptureController:
    """State machine of the capture screen; update() takes palms, clicks and keys, returns Events.

    A "capture" event asks the caller to save the current clean frame ("background" or "frame");
    the caller then reports the result with saved() or failed(). The clock returns seconds.
    """

    def __init__(self, buttons: Sequence[Button], bkg_seconds: float = 5, sav_seconds: float = 2,
                 dwell: float = 0.3, clock: Callable[[], float] = time.monotonic,
                 set_number: int | None = None, frames_saved: int = 0):
        for option, value in (("-b", bkg_seconds), ("-s", sav_seconds), ("--dwell", dwell)):
            if value < 0:
                raise ValueError(f"{option} must be >= 0 seconds, got {value}")
        self.buttons = list(buttons)
        self.clock = clock
        self.durations = {"bkg": float(bkg_seconds), "sav": float(sav_seconds)}
        self.tracker = DwellTracker(self.buttons, dwell)
        self.set_number = set_number
        self.frames_saved = frames_saved
        self.active: str | None = None
        self.countdown: Countdown | None = None
        self.flash: Notice | None = None
        self.message: Notice | None = None
        self.quit = False

    def relayout(self, buttons: Sequence[Button]) -> None:
        """Put the buttons where they belong on a frame of another size (a source that changed size):
        the old places may lie outside it. Dwells start afresh; a button a palm has pressed stays pressed
        until the palm leaves its new place (it pressed it again, cancelling its own countdown); a
        countdown goes on."""
        self.buttons = list(buttons)
        old, self.tracker = self.tracker, DwellTracker(self.buttons, self.tracker.dwell)
        self.tracker.carry_latches(old)

    # ------------------------------------------------------------------ input

    def update(self, palms: Iterable[tuple[float, float]] = (), clicks: Iterable[tuple[float, float]] = (),
               keys: Iterable[int] = (), answer: int | None = None) -> list[Event]:
        """Feed one frame's palm positions and clicks (frame pixels) and key codes; returns Events.
        answer: which pose answer the palms are (DwellTracker.update); None: a new one every call."""
        now = self.clock()
        events: list[Event] = []
        presses = [(name, "palm") for name in self.tracker.update(palms, now, answer)]
        for x, y in clicks:
            hit = button_at(self.buttons, x, y)
            if hit is not None:
                presses.append((hit.name, "mouse"))
        for key in keys:
            name = KEY_BUTTONS.get(key) if key is not None else None
            if name is not None:
                presses.append((name, "key"))
        for name, how in presses:
            if self.quit:
                break
            events.extend(self.press(name, how, now))
        if not self.quit and self.countdown is not None and self.countdown.done(now):
            target = "background" if self.active == "bkg" else "frame"
            events.append(Event("capture", {"button": self.active, "kind": target}))
            self.active, self.countdown = None, None
        return events

    def press(self, name: str, how: str, now: float | None = None) -> list[Event]:
        """Press a button now ("palm" / "mouse" / "key"); a second press of a running one cancels."""
        now = self.clock() if now is None else now
        events = [Event("pressed", {"button": name, "by": how})]
        if name == "ext":
            self.quit = True
            events.append(Event("quit", {"by": how}))
            return events
        if self.active == name:
            events.append(Event("countdown_cancelled", {"button": name}))
            self.active, self.countdown = None, None
            return events
        if name == "sav" and self.set_number is None:
            self.message = Notice(NEED_BACKGROUND, now + MESSAGE_SECONDS)
            events.append(Event("message", {"text": NEED_BACKGROUND}))
            return events
        if self.active is not None:
            # One countdown at a time: the newer press wins.
            events.append(Event("countdown_cancelled", {"button": self.active}))
        self.active, self.countdown = name, Countdown(self.durations[name], now)
        events.append(Event("countdown_started", {"button": name, "seconds": self.durations[name]}))
        return events

    # ------------------------------------------------------------------ results from the caller

    def saved(self, kind: str, path: str, set_number: int, frame: int | None = None) -> Event:
        """Record a finished save (kind "background" or "frame"); returns the "saved" Event."""
        now = self.clock()
        if kind == "background":
            self.set_number, self.frames_saved = set_number, 0
        else:
            self.frames_saved += 1
        self.flash = Notice(f"saved {path}", now + FLASH_SECONDS)
        fields = {"kind": kind, "set": set_number, "path": str(path)}
        if frame is not None:
            fields["frame"] = frame
        return Event("saved", fields)

    def failed(self, text: str) -> Event:
        """Show a save failure on screen; returns a "message" Event."""
        self.message = Notice(text, self.clock() + MESSAGE_SECONDS)
        return Event("message", {"text": text})

    # ------------------------------------------------------------------ what to draw

    def countdown_shown(self) -> int | None:
        """Seconds number to draw large, or None when no countdown runs."""
        return None if self.countdown is None else self.countdown.shown(self.clock())

    def notices(self) -> list[str]:
        """Texts still on screen (message first, then the save flash)."""
        now = self.clock()
        return [n.text for n in (self.message, self.flash) if n is not None and now < n.until]

    def dwell_progress(self, name: str) -> float:
        return self.tracker.progress(name, self.clock())
