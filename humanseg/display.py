"""Checks that a window can be opened before OpenCV's Qt backend gets a chance to abort the process;
and the scale at which a frame is shown so that its window fits a laptop's screen, with the mapping
between window and image coordinates at that scale."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import numpy as np

from humanseg.errors import HumansegError


def display_problem() -> str | None:
    """None if an X display is reachable, else a one-line reason."""
    display = os.environ.get("DISPLAY", "")
    if not display:
        return "no display available (DISPLAY is not set); this command needs a window"
    lib = ctypes.util.find_library("xcb")
    if lib is None:
        return None  # cannot probe; let OpenCV try
    try:
        xcb = ctypes.CDLL(lib)
        xcb.xcb_connect.restype = ctypes.c_void_p
        xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
        conn = xcb.xcb_connect(None, None)
        err = xcb.xcb_connection_has_error(conn)
        xcb.xcb_disconnect(conn)
    except OSError:
        return None
    if err:
        return f"cannot connect to display {display!r}; this command needs a window"
    return None


def require_display() -> None:
    """Raise HumansegError (exit 2) when no window can be opened."""
    problem = display_problem()
    if problem:
        raise HumansegError(problem, exit_code=2)


# Frames larger than this are shown scaled down to fit it (a 1920x1080 camera frame 1:1 would not fit a
# laptop's screen); clicks are mapped back, so everything else works in the frame's own pixels.
FIT_WIDTH, FIT_HEIGHT = 1280, 720


def fit_zoom(width: int, height: int) -> float:
    """The display scale of a width x height image: 1, or less for one larger than FIT_WIDTH x FIT_HEIGHT."""
    return min(1.0, FIT_WIDTH / width, FIT_HEIGHT / height)


def display_size(width: int, height: int, zoom: float) -> tuple[int, int]:
    return max(1, round(width * zoom)), max(1, round(height * zoom))


def to_display(points, zoom: float = 1.0):
    """Image coordinates (pixel centres at integers) in a window showing the image at zoom: float (N, 2)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    return pts if zoom == 1.0 else (pts + 0.5) * zoom - 0.5


def to_image(x: float, y: float, zoom: float = 1.0) -> tuple[float, float]:
    """A window position (a mouse event's) in the coordinates of the image shown there at zoom."""
    if zoom == 1.0:
        return x, y
    return (x + 0.5) / zoom - 0.5, (y + 0.5) / zoom - 0.5
