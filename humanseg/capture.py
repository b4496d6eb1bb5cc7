"""The capture loop: read a frame, find palms, feed the controller, save, draw, show.

Everything at the edges is passed in (frame source, pose estimator, window, clock), so the loop
runs the same on a camera, on an image folder under Xvfb, and in the benchmark. Per-frame work of
other tools (a live segmentation overlay, a prediction saved beside each frame) plugs in through
the `on_frame` and `on_saved` hooks.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from humanseg import errors, store
from humanseg.display import on_screen, to_display
from humanseg.sources import Peeked, looks_mirrored, open_source_quietly
from humanseg.errors import HumansegError, StoreError
from humanseg.pose.keypoints import Palm
from humanseg.pose.palm import PalmSmoother
from humanseg.signals import signals_held
from humanseg.ui import draw
from humanseg.ui.buttons import Button, button_at, default_layout
from humanseg.ui.controller import CaptureController, Event

# Above this many seconds per pose call, automatic mode runs pose on every other frame.
POSE_SLOW_SECONDS = 0.02


class Window(Protocol):
    def show(self, image: np.ndarray, scale: float = 1.0) -> None: ...
    def poll(self, wait_ms: int = 1) -> tuple[list[int], list[tuple[int, int]]]: ...
    def is_open(self) -> bool: ...
    def close(self) -> None: ...


class PalmFinder(Protocol):
    def palms(self, frame_bgr: np.ndarray) -> Sequence[Palm]: ...


@dataclass
class CaptureContext:
    """What hooks may read about the session: the current set and its background (BGR uint8)."""

    images_root: Path
    frame_index: int = -1
    set_number: int | None = None
    background: np.ndarray | None = None
    frames_saved: int = 0
    sets: list[int] = field(default_factory=list)  # the sets saved into, in order (Bkg twice: two)
    bkg_file: tuple | None = None  # the set's bkg.png when this session took the set (store.file_identity)

    @property
    def set_path(self) -> Path | None:
        return None if self.set_number is None else store.set_path(self.images_root, self.set_number)


@dataclass(frozen=True)
class Saved:
    """One file written by the loop: kind "background" or "frame", its set, K (frames only), path."""

    kind: str
    set_number: int
    frame_number: int | None
    path: Path


# on_frame(clean_frame, context) -> image to draw the buttons over (None keeps the frame);
# on_saved(saved, clean_frame, context) runs after each save, e.g. to write K_pred.png beside K.png;
# a text it returns is shown on screen as a warning about that save.
FrameHook = Callable[[np.ndarray, CaptureContext], "np.ndarray | None"]
SavedHook = Callable[[Saved, np.ndarray, CaptureContext], "str | None"]


def source_position(source) -> dict:
    """Which source frame was read last: {"source_index": i} plus "source_path" for image folders."""
    paths = getattr(source, "paths", None)
    index = getattr(source, "index", None)
    if paths and isinstance(index, int) and index > 0:
        i = (index - 1) % len(paths)
        return {"source_index": i, "source_path": str(paths[i])}
    return {}


class BackgroundPose:
    """Runs a PalmFinder in a worker thread on the newest submitted frame; the loop never waits.

    torch releases the GIL while it computes, so on two cores pose runs beside reading, drawing and
    showing; palms then lag the shown frame by one pose call (tens of ms, well under the dwell).
    """

    def __init__(self, finder: PalmFinder):
        self.finder = finder
        self.calls = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._frame: np.ndarray | None = None
        self._palms: list = []
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="pose", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                frame, self._frame = self._frame, None
            if self._stop:
                return
            if frame is None:
                continue
            try:
                palms = list(self.finder.palms(frame))
            except BaseException as exc:  # handed to the loop, which raises it there
                self._error = exc
                return
            with self._lock:
                self._palms = palms
                self.calls += 1

    def submit(self, frame: np.ndarray) -> None:
        """Offer the newest frame; a frame not yet started is replaced, never queued."""
        with self._lock:
            self._frame = frame
        self._wake.set()

    def palms(self) -> list:
        """The latest palms found (may be from a few frames ago)."""
        return self.latest()[1]

    def latest(self) -> tuple[int, list]:
        """(calls, palms): how many answers there have been, and the last one, read together."""
        if self._error is not None:
            raise self._error
        with self._lock:
            return self.calls, self._palms

    def close(self) -> None:
        """Stop the thread, waiting for a pose call in flight to end: one left running in ONNX Runtime
        or torch while the interpreter exits can abort the process (exit 134)."""
        self._stop = True
        self._wake.set()
        self._thread.join()


class FpsMeter:
    """Frames per second over a sliding window of the last `size` frame times (clock seconds)."""

    def __init__(self, size: int = 30):
        self.size = size
        self.times: list[float] = []

    def tick(self, now: float) -> float:
        self.times.append(now)
        if len(self.times) > self.size:
            del self.times[0]
        if len(self.times) < 2 or self.times[-1] <= self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def save_capture(kind: str, frame: np.ndarray, context: CaptureContext) -> Saved:
    """Write the clean frame through the store: a new set's bkg.png, or the next K.png of the set."""
    if kind == "background":
        number, path = store.save_background(context.images_root, frame)
        return Saved("background", number, None, path)
    bkg = context.background
    now = store.file_identity(store.set_path(context.images_root, context.set_number) / store.BKG_NAME)
    if context.bkg_file is not None and now is not None and now != context.bkg_file:
        # The set deleted, and its number taken by another capture tool's new set: the frame went in
        # beside another room's bkg.png.
        raise StoreError(f"set {context.set_number}'s bkg.png is not the one this session took (the set was "
                         f"made anew, by another capture tool?); not saved: press Bkg for a set of your own")
    if bkg is not None and bkg.shape != frame.shape:  # a set whose frames differ from bkg.png cannot be trained on
        raise StoreError(f"frame is {frame.shape[1]}x{frame.shape[0]} but set {context.set_number}'s bkg.png "
                         f"is {bkg.shape[1]}x{bkg.shape[0]}; not saved")
    k, path = store.save_frame(context.images_root, context.set_number, frame)
    return Saved("frame", context.set_number, k, path)


def status_text(context: CaptureContext, fps: float) -> str:
    rate = f"{fps:.0f}" if fps >= 10 or fps == 0 else f"{fps:.1f}"  # (a slow --max-fps read 0 fps)
    if context.set_number is None:
        return f"no set yet: press Bkg | {rate} fps"
    saved = context.frames_saved
    return f"set {context.set_number} | {errors.plural(saved, 'frame')} | {rate} fps"


def render(frame: np.ndarray, controller: CaptureController, palms, context: CaptureContext,
           fps: float) -> tuple[np.ndarray, float]:
    """The screen for one frame and its scale: a copy of frame (a small one enlarged, see
    display.on_screen) with buttons, palms, countdown and text drawn."""
    canvas, zoom = on_screen(frame)
    centres = to_display([(b.x, b.y) for b in controller.buttons], zoom)
    buttons = [replace(b, x=x, y=y, radius=b.radius * zoom) for b, (x, y) in zip(controller.buttons, centres)]
    for button in buttons:
        draw.draw_button(canvas, button, active=controller.active == button.name,
                         progress=controller.dwell_progress(button.name))
    radius = max(4, int(buttons[0].radius / 4)) if buttons else 6
    draw.draw_palms(canvas, to_display(palms, zoom), radius)
    shown = controller.countdown_shown()
    if shown is not None:
        what = "background in" if controller.active == "bkg" else "frame in"
        draw.draw_countdown(canvas, shown, f"{what} {shown} s - press again to cancel")
    draw.draw_notices(canvas, controller.notices())
    draw.draw_status(canvas, status_text(context, fps))
    return canvas, zoom


def carried_click(click: tuple[float, float], old_buttons: Sequence[Button], new_buttons: Sequence[Button],
                  old_shape: tuple[int, ...], new_shape: tuple[int, ...]) -> tuple[float, float]:
    """A click made on a frame of old_shape (h, w), moved onto one of new_shape: on a button, to the
    same place on that button in the new layout (a button stays round, so scaling across and down
    apart moved a click near a button's edge off it when the frame turned portrait); elsewhere, in
    proportion to the frame."""
    x, y = click
    hit = button_at(old_buttons, x, y)
    now = next((b for b in new_buttons if hit is not None and b.name == hit.name), None)
    if now is not None:
        k = now.radius / hit.radius
        return now.x + (x - hit.x) * k, now.y + (y - hit.y) * k
    (old_h, old_w), (h, w) = old_shape[:2], new_shape[:2]
    return (x + 0.5) * w / old_w - 0.5, (y + 0.5) * h / old_h - 0.5


def run_capture(source, window: Window, controller: CaptureController, images_root: str | os.PathLike,
                pose: PalmFinder | None = None, pose_every: int = 0, mirror: bool = True,
                clock: Callable[[], float] = time.monotonic, log: Callable[[dict], None] | None = None,
                on_frame: FrameHook | None = None, on_saved: SavedHook | None = None,
                background: np.ndarray | None = None, max_fps: float = 0.0,
                max_frames: int | None = None, pose_async: bool = False,
                on_end: Callable[[CaptureContext], None] | None = None) -> CaptureContext:
    """Run the capture screen until Ext / q / Esc, the window closes, or the source ends.

    pose_every: run pose on every Nth frame (0 = every frame, every other one if pose is slow);
    pose_async: run pose in a worker thread on the newest frame instead (pose_every is then unused).
    max_fps > 0 paces file sources; max_frames stops after that many frames (benchmarks).
    Returns the final context (set number, frames saved). Releases source and window.
    on_end(context) is called as the loop ends, an error's too (the sets saved are said before it).
    """
    context = CaptureContext(Path(images_root), set_number=controller.set_number,
                             background=background, frames_saved=controller.frames_saved)
    if context.set_number is not None:  # (--set N: the set's bkg.png as it is now)
        context.bkg_file = store.file_identity(context.set_path / store.BKG_NAME)
    emit = log or (lambda record: None)
    fps_meter = FpsMeter()
    keys: list[int] = []
    clicks: list[tuple[int, int]] = []
    palms: list[tuple[float, float]] = []
    pose_seconds = 0.0
    fps = 0.0
    started = clock()
    worker = BackgroundPose(pose) if pose is not None and pose_async else None
    smoother, seen_calls = PalmSmoother(), 0
    answers = 0  # pose answers so far (palms is the last): the controller counts missed ones, not frames
    laid_out_for = None  # the frame size the buttons are placed for: the first frame's, as given
    counted_at = None  # when the set's frames were last counted (`_count_frames`)

    def steady(found) -> list[tuple[float, float]]:
        """A pose call's palms through the One-Euro filter (per hand, over the clock's time), so the dot
        does not jitter with PoseNet's pixel noise."""
        nonlocal answers
        answers += 1
        return [(p.x, p.y) for p in smoother.update(list(found), clock())]

    def report(event: Event) -> None:
        emit({**event.as_dict(), "time": round(clock() - started, 3)})

    def act(frame: np.ndarray, keys: list[int], clicks: list[tuple[int, int]]) -> None:
        """The controller's answer to this input (and to the clock: a countdown's end), on this frame."""
        for event in controller.update(palms, clicks, keys, answer=answers):
            if event.name == "capture":
                report(event)
                # A Ctrl-C or SIGTERM during the save is handed on once it is reported: the file was
                # written whole but --log-events never said so.
                with signals_held():
                    event = _save(event.fields["kind"], frame, controller, context, on_saved)
                    if event.name == "saved":
                        event.fields.update(source_position(source), source_frame=context.frame_index)
                    report(event)
                continue
            report(event)

    try:
        while True:
            tick = clock()
            raw = source.read()
            if raw is None:
                report(Event("quit", {"by": "end of source"}))
                break
            frame = cv2.flip(raw, 1) if mirror else raw
            context.frame_index += 1
            if laid_out_for is None:
                laid_out_for = frame.shape[:2]
            elif frame.shape[:2] != laid_out_for:  # a source that changed size: buttons where they belong
                old_buttons, old_shape, laid_out_for = controller.buttons, laid_out_for, frame.shape[:2]
                controller.relayout(default_layout(frame.shape[1], frame.shape[0]))
                # Clicks on the frame shown last are in its pixels (a click made just before the change
                # was lost): onto the new frame.
                clicks = [carried_click(c, old_buttons, controller.buttons, old_shape, laid_out_for) for c in clicks]
                smoother.reset()
                palms = []

            every = pose_every if pose_every > 0 else (2 if pose_seconds > POSE_SLOW_SECONDS else 1)
            if worker is not None:
                worker.submit(frame)
                calls, found = worker.latest()  # (raises the worker's error, if it had one)
                if calls != seen_calls:  # a new answer (each is filtered once, when it comes)
                    seen_calls = calls
                    palms = steady(found)
            elif pose is not None and context.frame_index % every == 0:
                t0 = clock()
                palms = steady(pose.palms(frame))
                # Smoothed so one slow call does not flip the automatic mode back and forth.
                took = clock() - t0
                pose_seconds = 0.8 * pose_seconds + 0.2 * took if pose_seconds else took

            act(frame, keys, clicks)
            if counted_at is None or tick - counted_at >= COUNT_EVERY:
                _count_frames(controller, context)
                counted_at = tick

            shown = frame
            if on_frame is not None:
                out = on_frame(frame, context)
                if out is not None:
                    shown = out
            fps = fps_meter.tick(clock())
            window.show(*render(shown, controller, palms, context, fps))
            if context.frame_index == 0:
                h, w = frame.shape[:2]
                emit({"event": "ready", "width": w, "height": h, "time": round(clock() - started, 3)})
            keys, clicks = window.poll(1)
            if max_fps > 0:
                # Paced by waiting in the window, not in time.sleep: at a slow pace (--max-fps 0.01,
                # 100 s a frame) keys, clicks and its close button still answer at once, on the frame
                # on screen (they went to the next frame, read at once: Bkg with -b 0 saved a frame
                # never shown, any stray key skipped a frame, and q left the window up for a whole
                # pace); a countdown's number is redrawn as it changes, and one that ends saves the
                # frame on screen then, not a whole pace later (at --max-fps 0.1, -b 1 saved after 10 s).
                # The hook and the pose worker are asked again for the frame on screen: the live
                # overlay's mask of it and its palms come after it is first drawn.
                digit = controller.countdown_shown()
                while window.is_open():
                    now = clock()
                    redraw = False
                    if (keys or clicks or controller.keys_waiting()
                            or (controller.countdown is not None and controller.countdown.done(now))):
                        act(frame, keys, clicks)
                        keys, clicks, redraw = [], [], True
                        if controller.quit:
                            break
                    spare = 1.0 / max_fps - (now - tick)
                    if on_frame is not None:
                        out = on_frame(frame, context)
                        if out is not None and out is not shown:
                            shown, redraw = out, True
                    if worker is not None:  # PoseNet's answer for the frame on screen: its palms drawn
                        calls, found = worker.latest()  # now (the frame before's were, for the whole pace)
                        if calls != seen_calls:
                            seen_calls, palms, redraw = calls, steady(found), True
                    if controller.countdown is not None:
                        spare = min(spare, controller.countdown.remaining(now))
                        if controller.countdown_shown() != digit:
                            digit, redraw = controller.countdown_shown(), True
                    if redraw:
                        window.show(*render(shown, controller, palms, context, fps))
                    if spare <= 0:
                        break
                    more_keys, more_clicks = window.poll(max(1, int(min(50.0, spare * 1000))))
                    keys, clicks = keys + more_keys, clicks + more_clicks
                    if not keys:
                        controller.polled()
            if controller.quit:
                break
            if not window.is_open():
                report(Event("quit", {"by": "window closed"}))
                break
            if max_frames is not None and context.frame_index + 1 >= max_frames:
                break
    finally:
        # The window first: a pose call in flight (seconds on a huge frame) is waited for behind it.
        window.close()
        source.release()
        if worker is not None:
            worker.close()
        if on_end is not None:
            on_end(context)
    return context


COUNT_EVERY = 1.0  # seconds between counts of the set's frames for the bottom line


def _count_frames(controller: CaptureController, context: CaptureContext) -> None:
    """The frames the set holds now, for the bottom line: another capture tool's on the same set too (it
    counted this session's saves on top of the frames there at the start)."""
    if context.set_number is None:
        return
    try:
        held = store.count_frames(context.set_path)
    except OSError:  # (the folder not ours to read any more: the count made so far stands)
        return
    controller.frames_saved = context.frames_saved = held


def _save(kind: str, frame: np.ndarray, controller: CaptureController, context: CaptureContext,
          on_saved: SavedHook | None) -> Event:
    """Save the clean frame and tell the controller; a store failure becomes an on-screen message."""
    try:
        saved = save_capture(kind, frame, context)
    except (HumansegError, OSError) as exc:
        return controller.failed(f"save failed: {errors.reason(exc)}")
    event = controller.saved(saved.kind, str(saved.path), saved.set_number, saved.frame_number)
    context.set_number, context.frames_saved = controller.set_number, controller.frames_saved
    _count_frames(controller, context)
    if saved.set_number not in context.sets:
        context.sets.append(saved.set_number)
    if kind == "background":
        context.background = frame.copy()
        context.bkg_file = store.file_identity(saved.path)
    if on_saved is not None:
        warning = on_saved(saved, frame, context)
        if isinstance(warning, str):
            controller.warn(warning)
    return event


NO_POSE_HINT = "or run with --no-pose (mouse and keys)"
# People whose palms press buttons: with two in view, one pose's wrists and elbows came from both
# (single-pose decoding takes each keypoint's strongest place), and palms landed between them.
CAPTURE_POSES = 3


def load_pose(weights: str | None, scale: float | None, num_threads: int | None = None,
              no_pose: bool = True) -> PalmFinder:
    """PoseEstimator with the given weights and torch CPU threads; missing weights raise a one-line
    HumansegError (exit 2; 1 where a download or the cache failed at run time), suggesting --no-pose
    where the command has it (no_pose)."""
    tail = f"; {NO_POSE_HINT}" if no_pose else ""
    try:
        from humanseg.pose import PoseEstimator
    except ImportError as exc:
        raise HumansegError(f"PoseNet is not available ({exc}){tail}") from None
    from humanseg.errors import WeightsError, WeightsNotFound
    from humanseg.pose.weights import weights_hint

    try:
        return PoseEstimator.load(weights=weights, scale=scale, num_threads=num_threads, max_poses=CAPTURE_POSES,
                                  single_when_alone=True)
    except WeightsError as exc:
        hint = tail if isinstance(exc, WeightsNotFound) else f"; {weights_hint(weights)}{tail}"
        raise HumansegError(f"{exc}{hint}", exit_code=exc.exit_code) from None


def open_capture(*, bkg_seconds: float = 5, sav_seconds: float = 2, source: str = "0",
                 images: str | os.PathLike = "images", set_number: int | None = None, mirror: bool = True,
                 dwell: float = 0.3, use_pose: bool = True, posenet_weights: str | None = None,
                 pose_every: int = 0, pose_scale: float | None = None, pose_threads: int | None = 1,
                 max_fps: float = 0.0,
                 log: Callable[[dict], None] | None = None,
                 on_frame: FrameHook | None = None, on_saved: SavedHook | None = None,
                 load_hooks: Callable[[], object | None] | None = None,
                 on_end: Callable[[CaptureContext], None] | None = None) -> CaptureContext:
    """Check the inputs, open source, PoseNet and window, and run the capture loop (main.py's body).

    load_hooks: loads an object with on_frame, on_saved and close (the live overlay), called once
    the cheap checks passed and the source gave a frame, so a bad --source or no display is said at
    once rather than after seconds of loading a model; closed when the loop ends. on_end: run_capture's."""
    from humanseg.display import require_display
    from humanseg.ui.window import CvWindow

    background, frames_saved, hooks = None, 0, None
    store.check_root(images)  # a set folder as --images would nest new sets inside it
    # images/set13 for --set 13: a new folder named like a set, among the sets, that every tool would
    # take for a set without bkg.png (and the capture's sets nested inside it).
    store.refuse_new_set_folder(images, "--images")
    # Found now, not when the first countdown ends in "save failed".
    store.refuse_unwritable(images, "--images", folder=True)
    if set_number is not None:
        try:
            info = store.scan_set(images, set_number)
            store.refuse_unwritable(info.path, "set folder", folder=True)
            background = store.read_background(info)
        except HumansegError as exc:
            raise HumansegError(f"--set {set_number}: {exc}") from None
        frames_saved = len(info.frames)  # (counted again, files only, before the first frame is shown)
    require_display()
    src = open_source_quietly(source, loop=True)
    try:
        first = src.read()
        if first is None:
            raise HumansegError(f"--source {source}: no frames could be read")
        h, w = first.shape[:2]
        if background is not None and background.shape[:2] != (h, w):
            raise HumansegError(f"--set {set_number}: bkg.png is {background.shape[1]}x{background.shape[0]} "
                                f"but --source {source} gives {w}x{h} frames")
        if background is not None and looks_mirrored(cv2.flip(first, 1) if mirror else first, background):
            fix = "run with --no-mirror" if mirror else "run without --no-mirror"
            print(f"warning: --set {set_number}: bkg.png looks mirrored against the frames of --source {source} "
                  f"(they match it far better flipped), so new frames would not fit it: {fix} (or, if the source shows "
                  f"another room, continue that room's set)", file=sys.stderr)
        pose = load_pose(posenet_weights, pose_scale, pose_threads) if use_pose else None
        hooks = load_hooks() if load_hooks is not None else None
        if hooks is not None:
            on_frame, on_saved = hooks.on_frame, hooks.on_saved
        window = CvWindow("capture")
    except BaseException:
        src.release()
        if hooks is not None:
            hooks.close()
        raise
    controller = CaptureController(default_layout(w, h), bkg_seconds, sav_seconds, dwell,
                                   set_number=set_number, frames_saved=frames_saved)
    # pose_every 0: PoseNet in a worker thread on the newest frame, as often as it keeps up.
    try:
        return run_capture(Peeked(src, first), window, controller, images, pose=pose, pose_every=pose_every,
                           mirror=mirror, log=log, on_frame=on_frame, on_saved=on_saved,
                           background=background, max_fps=max_fps, pose_async=pose_every == 0, on_end=on_end)
    finally:
        if hooks is not None:
            hooks.close()
