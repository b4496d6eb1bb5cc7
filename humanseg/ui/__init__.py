"""Virtual buttons, countdowns and overlays of the capture tool: state machines apart from drawing."""

from humanseg.ui.buttons import Button, DwellTracker, button_at, default_layout
from humanseg.ui.controller import CaptureController, Event
from humanseg.ui.countdown import Countdown

__all__ = ["Button", "CaptureController", "Countdown", "DwellTracker", "Event", "button_at", "default_layout"]
