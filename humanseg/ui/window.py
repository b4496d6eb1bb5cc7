"""The OpenCV window of the capture tool: shows frames, collects clicks and keys."""

from __future__ import annotations

import cv2

from humanseg.display import display_size, fit_zoom, read_key, require_display, to_image


class CvWindow:
    """A HighGUI window sized to the image (no Qt toolbar), clicks in frame pixels. An image larger
    than display.FIT_WIDTH x FIT_HEIGHT is shown scaled down to fit (a 1920x1080 camera's frames would
    not fit a laptop's screen 1:1), and clicks are mapped back to the frame's pixels (through the
    enlargement of a small frame too, given to show())."""

    def __init__(self, name: str = "capture"):
        require_display()  # Qt aborts the whole process on a missing display; fail with a line instead
        self.name = name
        # GUI_NORMAL: no toolbar or context menu, so window pixels are (scaled) image pixels.
        cv2.namedWindow(name, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        cv2.setMouseCallback(name, self._on_mouse)
        self._clicks: list[tuple[int, int]] = []
        self.closed = False
        self.zoom = 1.0  # of the image last shown
        self._size = (0, 0)

    def _on_mouse(self, event, x, y, flags, param):
        # One button-up per physical click; Qt reports a quick second click as DBLCLK (and DOWN).
        if event == cv2.EVENT_LBUTTONUP:
            if self.zoom != 1.0:  # the image pixel under the window pixel
                (fx, fy), (w, h) = to_image(x, y, self.zoom), self._size
                x, y = min(w - 1, max(0, round(fx))), min(h - 1, max(0, round(fy)))
            self._clicks.append((x, y))

    def show(self, image, scale: float = 1.0) -> None:
        """Show image: a frame drawn at `scale` times its size (display.on_screen's enlargement), so
        clicks are reported in the frame's own pixels."""
        h, w = image.shape[:2]
        fit = fit_zoom(w, h)
        self._size, self.zoom = (max(1, round(w / scale)), max(1, round(h / scale))), scale * fit
        if fit < 1.0:
            image = cv2.resize(image, display_size(w, h, fit), interpolation=cv2.INTER_AREA)
        cv2.imshow(self.name, image)

    def poll(self, wait_ms: int = 1) -> tuple[list[int], list[tuple[int, int]]]:
        """Pump window events for wait_ms; returns (key codes, left clicks in image pixels)."""
        keys = []
        key = read_key(wait_ms)
        while key != -1 and len(keys) < 64:  # every key waiting, not one a call: a held key's repeats
            keys.append(key)  # came in behind the frames, and q waited behind them
            key = read_key(1)
        clicks, self._clicks = self._clicks, []
        return keys, clicks

    def is_open(self) -> bool:
        """False once the user closed the window with the window manager."""
        try:
            return cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                cv2.destroyWindow(self.name)
                cv2.waitKey(1)  # lets Qt actually process the destroy
            except cv2.error:
                pass
