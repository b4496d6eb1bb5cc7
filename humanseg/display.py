"""Checks that a window can be opened before OpenCV's Qt backend gets a chance to abort the process."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

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
