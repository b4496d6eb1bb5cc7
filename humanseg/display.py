"""Checks that a window can be opened before OpenCV's Qt backend gets a chance to abort the process;
and the scale at which a frame is shown so that its window fits a laptop's screen, with the mapping
between window and image coordinates at that scale."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import warnings

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
        xcb.xcb_get_setup.restype = ctypes.c_void_p
        xcb.xcb_get_setup.argtypes = [ctypes.c_void_p]
        xcb.xcb_setup_roots_length.argtypes = [ctypes.c_void_p]
        screen = ctypes.c_int(0)
        conn = xcb.xcb_connect(None, ctypes.byref(screen))
        err = xcb.xcb_connection_has_error(conn)
        # A server that is there but has no such screen (:0.5 of a one-screen server): Qt aborted.
        # libxcb 1.12 and later fail the connection when given screenp; older ones are checked here.
        screens = None if err else xcb.xcb_setup_roots_length(xcb.xcb_get_setup(conn))
        xcb.xcb_disconnect(conn)
    except (OSError, AttributeError):
        return None
    if err:
        return f"cannot connect to display {display!r}; this command needs a window"
    if screens is not None and not 0 <= screen.value < screens:
        return (f"display {display!r} has no screen {screen.value} (its server has {screens}); this command "
                f"needs a window")
    return None


def require_display() -> None:
    """Raise HumansegError (exit 2) when no window can be opened."""
    problem = display_problem()
    if problem:
        raise HumansegError(problem, exit_code=2)
    _qt_platform_it_has()


def qt_platforms() -> set[str] | None:
    """The platform plugins of OpenCV's own Qt (xcb alone in the opencv-python wheels); None when it
    has none of its own (another build of OpenCV, whose windows may not be Qt's)."""
    import cv2

    folder = os.path.join(os.path.dirname(cv2.__file__), "qt", "plugins", "platforms")
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    return {m.group(1) for m in map(re.compile(r"libq(.+)\.so").fullmatch, names) if m} or None


def _qt_platform_it_has() -> None:
    """A QT_QPA_PLATFORM that OpenCV's Qt has no plugin for (wayland, set for the whole desktop by many
    Wayland setups; offscreen) aborted the process at its first window, exit 134, after lines of Qt's
    output; with an X display reachable (checked before: XWayland on a Wayland desktop) the window
    opens with xcb instead, said once."""
    wanted = os.environ.get("QT_QPA_PLATFORM", "").strip()
    have = qt_platforms() if wanted else None
    if not have or "xcb" not in have:
        return
    entries = [entry for entry in wanted.split(";") if entry.split(":")[0].strip().lower() in have]
    if entries:  # "wayland;xcb": Qt tries each in turn, and said so in two lines of its own for wayland
        os.environ["QT_QPA_PLATFORM"] = ";".join(entries)
        return
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    warnings.warn(f"QT_QPA_PLATFORM={wanted}: OpenCV's Qt has no such platform (it has "
                  f"{', '.join(sorted(have))}); the window opens on the X display {os.environ.get('DISPLAY')} "
                  f"with xcb", stacklevel=2)


# Frames larger than this are shown scaled down to fit it (a 1920x1080 camera frame 1:1 would not fit a
# laptop's screen); clicks are mapped back, so everything else works in the frame's own pixels.
FIT_WIDTH, FIT_HEIGHT = 1280, 720


# The windows enlarge a frame smaller than this (turned for a portrait frame: 480x640) by a whole factor
# up to ENLARGE_MAX (a 160x120 one 4 times), so that its text can be read and its outline drawn.
ENLARGE_BELOW, ENLARGE_MAX = (640, 480), 4


def fit_zoom(width: int, height: int, enlarge: bool = False) -> float:
    """The display scale of a width x height image: 1, or less for one larger than FIT_WIDTH x
    FIT_HEIGHT; with enlarge, the largest whole factor (if any) keeping a smaller one within
    ENLARGE_BELOW, or within it turned for a portrait image (a 240x320 one twice)."""
    if enlarge:
        box_w, box_h = ENLARGE_BELOW if width >= height else ENLARGE_BELOW[::-1]
        factor = min(ENLARGE_MAX, box_w // max(1, width), box_h // max(1, height))
        if factor > 1:
            return float(factor)
    return min(1.0, FIT_WIDTH / width, FIT_HEIGHT / height)


def on_screen(image: np.ndarray, frame_shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, float]:
    """A copy of image to draw a window's overlay on, with its scale: a small frame enlarged by
    fit_zoom's whole factor (a 160x120 camera's 4 times), so the text drawn on it can be read and its
    buttons hit; any other at its own size (a window shrinks one too large for the screen itself).
    frame_shape: the camera frame's, when image is made of more than one (live mode's side-by-side
    view), so it is enlarged as much as the frame alone."""
    h, w = image.shape[:2]
    fh, fw = (h, w) if frame_shape is None else frame_shape[:2]
    zoom = fit_zoom(fw, fh, enlarge=True)
    if zoom <= 1.0:
        return image.copy(), 1.0
    import cv2

    return cv2.resize(image, display_size(w, h, zoom), interpolation=cv2.INTER_LINEAR), zoom


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


# X keysyms of keys that mean a character to these tools (OpenCV's GTK backend reports them so).
_KEYSYM_CHARS = {0xFF08: 8, 0xFF0D: 13, 0xFF8D: 13, 0xFF1B: 27}


def read_key(wait_ms: int) -> int:
    """The key pressed within wait_ms as a character code, or -1 (none, or a key that is no character).

    cv2.waitKey keeps only a code's low byte, so Insert (X keysym 0xFF63) read as "c" and the Compose
    key (0xFF20) as a space: the full code is read instead, and keys such as Insert, the arrows, Shift
    or a keyboard's media keys read as -1. Letters read in lower case."""
    import cv2

    code = cv2.waitKeyEx(wait_ms)
    code = _KEYSYM_CHARS.get(code, code)
    if code < 0 or code > 0xFF:
        return -1
    return code + 32 if ord("A") <= code <= ord("Z") else code
