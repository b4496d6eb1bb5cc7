"""The live segmentation inside the capture tool: an overlay once a background exists, K_pred.png on Sav.

Plugs into `humanseg.capture.run_capture` through its `on_frame` / `on_saved` hooks. The model runs
in a worker thread on the newest frame only (like the pose worker), so capture never waits for it;
the overlay then lags the shown frame by one model call.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from humanseg import store
from humanseg.errors import HumansegError
from humanseg.live import Compositor, StabilityFilter, background_mismatch


class LiveOverlay:
    """on_frame: the frame tinted with the newest mask (after Bkg); on_saved: K_pred.png beside K.png.

    Any failure of the model switches the overlay off with one message (`notify`); capture goes on.
    """

    def __init__(self, segmenter, notify: Callable[[str], None] = print,
                 log: Callable[[dict], None] | None = None, threaded: bool = True):
        self.segmenter = segmenter
        self.notify = notify
        self.log = log or (lambda record: None)
        self.compositor = Compositor()
        self.filter = StabilityFilter()
        self.failed: str | None = None
        self.calls = 0
        self._model_lock = threading.Lock()     # the segmenter is used by the worker and by on_saved
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._job: tuple[np.ndarray, np.ndarray] | None = None
        self._mask: np.ndarray | None = None
        self._mask_bkg: np.ndarray | None = None
        self._model_bkg: np.ndarray | None = None
        self._stop = False
        self._thread = None
        self._given: np.ndarray | None = None  # the frame last handed to on_frame
        self._drawn: tuple | None = None       # (frame, mask, tinted image) last returned
        if threaded:
            self._thread = threading.Thread(target=self._work, name="live-overlay", daemon=True)
            self._thread.start()

    # -- the model, behind one lock ------------------------------------------------------------
    def _use_background(self, background: np.ndarray) -> None:
        if background is not self._model_bkg:
            self.segmenter.set_background(background)
            self._model_bkg = background
            self.filter.reset()

    def _segment(self, frame: np.ndarray, background: np.ndarray) -> np.ndarray:
        with self._model_lock:
            self._use_background(background)
            prob = self.segmenter.predict(frame)
            _, mask = self.filter.update(frame, prob)
        self.calls += 1
        return mask

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = str(exc) or type(exc).__name__
            self.notify(f"live segmentation off: {self.failed}")

    # -- worker ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            with self._lock:
                job, self._job = self._job, None
            if job is None:
                continue
            frame, background = job
            try:
                mask = self._segment(frame, background)
            except Exception as exc:  # the overlay is optional: say why once and stop using it
                self._fail(exc)
                return
            with self._lock:
                self._mask, self._mask_bkg = mask, background

    def step(self, frame: np.ndarray, background: np.ndarray) -> None:
        """Segment now, in the caller's thread (tests, and threaded=False)."""
        try:
            mask = self._segment(frame, background)
        except Exception as exc:
            self._fail(exc)
            return
        self._mask, self._mask_bkg = mask, background

    # -- capture hooks ---------------------------------------------------------------------------
    def on_frame(self, frame: np.ndarray, ctx) -> np.ndarray | None:
        background = ctx.background
        if self.failed is not None or background is None or background.shape != frame.shape:
            return None
        if frame is not self._given:  # asked again for the frame on screen (a slow pace): its mask
            self._given = frame         # may have come since; it is not segmented twice
            if self._thread is not None:
                with self._lock:
                    self._job = (frame, background)
                self._wake.set()
            else:
                self.step(frame, background)
        with self._lock:
            mask, mask_bkg = self._mask, self._mask_bkg
        if mask is None or mask_bkg is not background or mask.shape != frame.shape[:2]:
            return None  # nothing yet for this background
        if self._drawn is None or self._drawn[0] is not frame or self._drawn[1] is not mask:
            self._drawn = (frame, mask, self.compositor.compose("tint", frame, mask, mask))
        return self._drawn[2]  # the same image while nothing changed

    def on_saved(self, saved, frame: np.ndarray, ctx) -> str | None:
        """After Sav: write the model's own mask (not smoothed) as K_pred.png beside K.png. Where the
        frame does not match the background (live.background_mismatch, by that mask: the camera moved
        after Bkg, say), says so (notify, a `background_mismatch` event) and returns the text to show."""
        if saved.kind != "frame" or self.failed is not None or ctx.background is None:
            return None
        try:
            with self._model_lock:
                self._use_background(ctx.background)
                mask = self.segmenter.predict_mask(frame)
        except Exception as exc:
            self._fail(exc)
            return None
        path = saved.path.parent / store.pred_name(saved.frame_number)
        try:
            store.write_image(path, mask, overwrite=True)
        except (HumansegError, OSError) as exc:  # a full disk, say: not the model's fault, so it stays on
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.notify(f"{path} not saved ({reason}); the labeler will guess that frame afresh")
            self.log({"event": "pred_failed", "set": saved.set_number, "frame": saved.frame_number,
                      "path": str(path), "reason": reason})
        else:
            self.log({"event": "pred_saved", "set": saved.set_number, "frame": saved.frame_number,
                      "path": str(path), "person_fraction": round(float((mask > 0).mean()), 4)})
        if not background_mismatch(frame, ctx.background, mask):
            return None
        self.notify(f"warning: {saved.path} does not match its bkg.png: most of its room differs from it, or is "
                    f"shifted against it (the camera moved after Bkg?), so training would learn from it wrong: "
                    f"press Bkg for a new set's background")
        self.log({"event": "background_mismatch", "set": saved.set_number, "frame": saved.frame_number,
                  "path": str(saved.path)})
        return f"{saved.path.name} does not match bkg.png (camera moved?): press Bkg again"

    def close(self) -> None:
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join(timeout=5)


def load_overlay(weights: str | None, notify: Callable[[str], None],
                 log: Callable[[dict], None] | None = None) -> LiveOverlay | None:
    """A LiveOverlay with the model, or None (after one notice) when the default model cannot load.

    An explicit `weights` that cannot be loaded is bad input and raises (HumansegError, exit 2).
    """
    try:
        from humanseg.model import load_segmenter

        # One torch thread: the other core reads, draws and shows (PoseNet also keeps to one).
        segmenter = load_segmenter(weights, num_threads=1)
    except HumansegError as exc:
        if weights == "":  # an unset shell variable: refused, not taken for "no --weights"
            raise
        if weights is not None:
            raise HumansegError(f"--weights {weights}: {exc}") from None
        notify(f"live segmentation off: {exc}")
        return None
    except ImportError as exc:
        notify(f"live segmentation off: the model cannot be imported ({exc})")
        return None
    return LiveOverlay(segmenter, notify=notify, log=log)
