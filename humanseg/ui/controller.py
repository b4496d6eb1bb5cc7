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

# A held key repeats: after a delay (660 ms in X's default, 500-600 ms on most desktops, up to about
# 2 s where set so), then 25-30 times a second (10 at the slowest settings).
REPEAT_GAP = 0.12  # seconds: a press this soon after the same key is a repeat (a quick double tap: 0.15 s)
REPEAT_DELAY = 2.0  # seconds: a press this soon after the same key was read may be a repeat held back
# seconds: how long such a press waits for a repeat before it counts. X's repeats come every 33-100 ms,
# but a busy machine holds them back now and then (a held s counted twice under a loaded test run,
# its repeats late by over REPEAT_GAP); a deliberate second press only cancels this much later.
REPEAT_CONFIRM = 0.25


class HeldKeys:
    """Which key presses are presses: a held key's repeats are not. Holding s or b started and
    cancelled countdowns over and over, and with -b 0 made a set at each repeat (23 in 1.5 s).

    A press less than REPEAT_GAP after the same key is a repeat (with a slow frame rate, less than
    1.5 times the time between two readings of the keys: repeats then come in bunches). One less than
    REPEAT_DELAY after the same key was last read (its press or a repeat) is a hold's first repeat, a
    repeat a busy machine held back, or a quick second press (cancelling a countdown): it waits for the
    first reading REPEAT_CONFIRM later (or the gap, where longer), and counts if no repeat came by then,
    so that a second press still cancels. Times are seconds of one clock."""

    def __init__(self, gap: float = REPEAT_GAP, delay: float = REPEAT_DELAY, confirm: float = REPEAT_CONFIRM):
        self.gap, self.delay, self.confirm = gap, delay, confirm
        self.seen: dict[int, float] = {}  # key -> when it was last read
        self.waiting: dict[int, float] = {}  # key -> a press not yet told from a repeat, and when
        self.read_at: float | None = None  # the readings' last time

    def polled(self, now: float) -> None:
        """The keys were read now and none came (a paced loop reads them without an update): the gap
        between readings is measured from here."""
        self.read_at = now

    def presses(self, keys: Iterable[int], now: float) -> list[int]:
        """The keys of this reading (and of earlier ones that waited) that are presses, in order."""
        gap = self.gap if self.read_at is None else max(self.gap, 1.5 * (now - self.read_at))
        self.read_at = now
        out = []
        for key in keys:
            seen, self.seen[key] = self.seen.get(key), now
            if seen is not None and now - seen < gap:  # a repeat: so was a press waiting to be told
                self.waiting.pop(key, None)
            elif seen is not None and now - seen < self.delay:
                self.waiting[key] = now
            else:
                out.append(key)
        for key, since in list(self.waiting.items()):
            if now - since >= max(gap, self.confirm):  # no repeat came after it: pressed again
                del self.waiting[key]
                out.append(key)
        return out


NEED_BACKGROUND = "capture a background first"
FLASH_SECONDS = 2.0
MESSAGE_SECONDS = 2.5
WARNING_SECONDS = 6.0  # a saved frame that does not match its background: long enough to be read


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
        self.keys = HeldKeys()

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
        for key in self.keys.presses([k for k in keys if k in KEY_BUTTONS], now):
            presses.append((KEY_BUTTONS[key], "key"))
        for name, how in presses:
            if self.quit:
                break
            events.extend(self.press(name, how, now))
        if not self.quit and self.countdown is not None and self.countdown.done(now):
            target = "background" if self.active == "bkg" else "frame"
            events.append(Event("capture", {"button": self.active, "kind": target}))
            self.active, self.countdown = None, None
        return events

    def polled(self) -> None:
        """The window was asked for input and gave none (see HeldKeys.polled): without it, a paced
        loop's readings seemed as far apart as its updates, and a second press was taken for a repeat."""
        self.keys.polled(self.clock())

    def keys_waiting(self) -> bool:
        """A key press waits to be told from a held key's repeat: update() soon, with or without keys."""
        return bool(self.keys.waiting)

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

    def warn(self, text: str) -> None:
        """Show a warning about what was just saved on screen, for WARNING_SECONDS."""
        self.message = Notice(text, self.clock() + WARNING_SECONDS)

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
