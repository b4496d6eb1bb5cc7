"""Drawing an editor's state over a frame, and turning OpenCV mouse/key codes into editor calls."""

from __future__ import annotations

import time

import cv2
import numpy as np

from humanseg.display import display_size, to_display, to_image
from humanseg.labeling.editor import PolygonEditor
from humanseg.ui.draw import drawable

FILL = np.array([60, 200, 60], np.float32)  # BGR tint of the labeled area
FILL_ALPHA = 0.4
PERSON_LINE = (60, 230, 60)
HOLE_LINE = (40, 40, 240)
DRAW_LINE = (0, 220, 255)
HOLE_DRAW_LINE = (220, 60, 220)
SHIFT = 2  # fractional bits for sub-pixel vertex positions in cv2 drawing calls
HELP = ("click: add/drag  right: close/del pt  h: hole on/off  z: undo  r: restart  c: clear  "
        "d: del poly  b: bkg  Enter: save  n: skip  q: quit")


def _pts(points, zoom: float = 1.0) -> np.ndarray:
    return np.round(to_display(points, zoom) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)


def draw_help(canvas: np.ndarray, text: str, bottom: bool = True) -> None:
    """A dark bar with text, drawn in place at the bottom (or top) of canvas: one line where it fits,
    else wrapped at its spaces into as many as it needs (shrunk to one line, it was 4 px tall and
    unreadable in a 320x240 window)."""
    h, w = canvas.shape[:2]
    text = drawable(text)  # (a set folder's name with accents: "?" for each of its bytes)
    scale = 0.4
    lines: list[str] = []
    gap = "  " if "  " in text else " "  # items ("z: undo") are kept whole
    for word in text.split(gap):
        joined = f"{lines[-1]}{gap}{word}" if lines else word
        if lines and cv2.getTextSize(joined, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= w - 8:
            lines[-1] = joined
        else:
            lines.append(word)
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    if (th + base + 3) * len(lines) > h / 3:  # a tiny window: one line, shrunk, rather than a bar over it all
        lines = [text]
    widest = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for line in lines)
    if widest > w - 8:  # wider than the frame: that much smaller
        scale *= (w - 8) / widest
    (_, th), base = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    step = th + base + 3
    bar = min(h, step * len(lines) + 3)
    y0 = h - bar if bottom else 0
    canvas[y0:y0 + bar] = (canvas[y0:y0 + bar] * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(canvas, line, (4, y0 + (i + 1) * step - base), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)


def render(image: np.ndarray, editor: PolygonEditor, hover: tuple[float, float] | None = None,
           status: str = "", show_help: bool = True, zoom: float = 1.0) -> np.ndarray:
    """BGR picture of the shapes over image, scaled by zoom (hover in image coordinates); the tint is
    exactly editor.mask() (at zoom 1; scaled with the picture otherwise)."""
    h, w = image.shape[:2]
    inside = editor.mask(h, w)
    if zoom == 1.0:
        canvas = image.copy()
    else:
        size = display_size(w, h, zoom)
        canvas = cv2.resize(image, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
        inside = cv2.resize(inside, size, interpolation=cv2.INTER_NEAREST)
    inside = inside > 0
    canvas[inside] = (canvas[inside] * (1 - FILL_ALPHA) + FILL * FILL_ALPHA).astype(np.uint8)
    for shape in editor.shapes:
        color = HOLE_LINE if shape.hole else PERSON_LINE
        cv2.polylines(canvas, [_pts(shape.points, zoom)], True, color, 1, cv2.LINE_AA, SHIFT)
        for p in _pts(shape.points, zoom):
            cv2.circle(canvas, tuple(p[0]), 2 << SHIFT, color, -1, cv2.LINE_AA, SHIFT)
    if editor.current:
        color = HOLE_DRAW_LINE if editor.current_hole else DRAW_LINE
        points = list(editor.current) + ([hover] if hover is not None else [])
        cv2.polylines(canvas, [_pts(points, zoom)], False, color, 1, cv2.LINE_AA, SHIFT)
        for p in _pts(editor.current, zoom):
            cv2.circle(canvas, tuple(p[0]), 2 << SHIFT, color, -1, cv2.LINE_AA, SHIFT)
        if len(editor.current) >= 3:
            # The ring a click must land in to close the polygon (the editor's radius is in image px).
            first = _pts(editor.current[:1], zoom)[0][0]
            cv2.circle(canvas, tuple(first), int(round(editor.close_radius * zoom)) << SHIFT, color, 1,
                       cv2.LINE_AA, SHIFT)
    if status:
        draw_help(canvas, status, bottom=False)
    if show_help:
        draw_help(canvas, HELP)
    return canvas


def _to_edge(screen: int, v: float, size: int, shown: int, window_pixel: float = 1.0) -> float:
    """Frame coordinate v of window position `screen` (along an axis the frame spans `size` pixels of,
    shown as `shown`) on the frame's edge where the position is on the outermost pixel shown or beyond
    it (decided on the screen's whole pixels: in frame coordinates it was an equality that float
    rounding, or a shown size rounded down, decided against the edge), else kept on the frame.
    window_pixel: how many of the shown picture's pixels one pixel of the window covers, above 1 where
    the window was made smaller than the picture (a tiling window manager's, which ignores its size):
    the window's last pixel then reaches only to within that many of the picture's last one."""
    if screen <= 0:
        return -0.5
    if screen > shown - 1 - max(1.0, window_pixel):
        return size - 0.5
    return min(max(v, -0.5), size - 0.5)


# Seconds after a frame is first shown in which clicks are not taken (made before it was seen: nobody
# clicks on what they saw a quarter of a second ago).
CLICK_SETTLE = 0.25


class MouseAdapter:
    """Translates cv2 mouse callbacks into editor gestures; `on_change(action)` hears every change."""

    def __init__(self, editor: PolygonEditor, on_change=None, zoom: float = 1.0,
                 size: tuple[int, int] | None = None):
        self.editor = editor
        self.zoom = zoom  # the window shows the frame at this scale; the editor works in frame pixels
        self.size = size  # (width, height) of the frame: positions are kept on it (see __call__)
        self.hover: tuple[float, float] | None = None
        self.on_change = on_change or (lambda action: None)
        self._double_click: tuple[int, int, float] | None = None  # where and when Qt said "double click"
        self.quiet_until = 0.0  # time.monotonic() before which clicks are not on this frame (settle())
        self.window_pixel = 1.0  # the shown picture's pixels a window pixel covers (_to_edge), see fitted()

    def settle(self, seconds: float = CLICK_SETTLE) -> None:
        """Take no clicks for `seconds` from now: clicks made while this frame loaded (after Enter on
        the one before) reach the window once it shows this one, and became its vertices unseen."""
        self.quiet_until = time.monotonic() + seconds

    def fitted(self, drawn_width: int) -> None:
        """The window draws the picture `drawn_width` pixels wide (cv2.getWindowImageRect): smaller than
        shown where it was made smaller than the picture, and clicks then come in the picture's pixels,
        scaled, so that its last row and column could not be clicked on."""
        if self.size is not None and drawn_width > 0:
            self.window_pixel = display_size(*self.size, self.zoom)[0] / drawn_width

    def __call__(self, event: int, x: int, y: int, flags: int, param=None) -> None:
        if event != cv2.EVENT_MOUSEMOVE and time.monotonic() < self.quiet_until:
            return
        if event == cv2.EVENT_LBUTTONDBLCLK:
            self._double_click = (x, y, time.monotonic())
            return
        if event == cv2.EVENT_LBUTTONDOWN and self._double_click is not None:
            # Qt sends a double click's second press as LBUTTONDBLCLK, then LBUTTONDOWN at its place: that
            # press added a second vertex beside the first (the hand moves a pixel or two between the two
            # clicks), or grabbed the vertex the first click had just closed on.
            dx, dy, at = self._double_click
            self._double_click = None
            if (dx, dy) == (x, y) and time.monotonic() - at < 0.5:
                return
        sx, sy = x, y
        x, y = to_image(x, y, self.zoom)
        if self.size is not None:
            # While a button is held the window reports the pointer beyond its edges too: a vertex
            # dragged there would be saved off the frame, where it can be neither seen nor grabbed.
            # Pixel centres are at integers, so the frame's outer edge is at -0.5 and size - 0.5; a
            # click on the outermost pixels shown goes to that edge, or the last row or column was left
            # out of the mask (a pixel is in when its centre is inside: 639 is not inside x < 639).
            w, h = self.size
            shown_w, shown_h = display_size(w, h, self.zoom)
            x, y = (_to_edge(sx, x, w, shown_w, self.window_pixel),
                    _to_edge(sy, y, h, shown_h, self.window_pixel))
        self.hover = (x, y)
        ed = self.editor
        action = None
        if event == cv2.EVENT_LBUTTONDOWN:
            action = ed.press(x, y, hole=bool(flags & cv2.EVENT_FLAG_SHIFTKEY))
        elif event == cv2.EVENT_MOUSEMOVE:
            if ed.dragging and ed.move(x, y):
                action = "drag"
        elif event == cv2.EVENT_LBUTTONUP:
            action = ed.release(x, y)
        elif event == cv2.EVENT_RBUTTONDOWN:
            action = ed.right_click(x, y)
        if action:
            self.on_change(action)
