"""`python -m humanseg live`: segment every frame against a captured background and composite it.

Reading order: `StabilityFilter` (temporal smoothing only where the frame is still), `DriftMonitor`
(exposure drift compensation and the "camera moved" warning), `Compositor` (the views),
`BackgroundGrabber` (countdown, then ~1 s of frames averaged), `LiveSession` (one frame through all
of them), `VideoOutput` (atomic video file), `run_live` (the loop) and `live_command` (the CLI).
All decisions live in the classes; the loop only moves frames between source, model, window and file.
"""

from __future__ import annotations

import glob
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import cv2
import numpy as np

from humanseg import store
from humanseg.sources import CameraStopped, Peeked, VideoSource, looks_mirrored, open_source_quietly
from humanseg.cli import MAX_THREADS, Command, File, Folder, InFile, Number, reports_errors
from humanseg.errors import AlreadyExists, HumansegError
from humanseg.signals import signals_held

VIEWS = ("tint", "blur", "replace", "green", "side")
VIEW_NAMES = {"tint": "mask tint", "blur": "background blur", "replace": "replaced background",
              "green": "green screen", "side": "side by side"}


class StabilityFilter:
    """Smooths the person probability over time only where the frame did not change.

    Each pixel's new probability is blended with its previous one by a weight that grows with the
    local frame difference: still pixels average over ~1/still_weight frames (no flicker), moving
    pixels take the new value outright (no trailing edge). A small hysteresis around 0.5 on still
    pixels keeps borderline pixels from toggling on sensor noise.
    """

    def __init__(self, still_weight: float = 0.25, noise_levels: float = 3.0, motion_levels: float = 6.0,
                 hysteresis: float = 0.1, scale: int = 4):
        self.still_weight = still_weight
        self.noise_levels = noise_levels      # grey-level change (on the 1/scale map) still counted as noise
        self.motion_levels = motion_levels    # change above the noise at which a pixel fully follows
        self.hysteresis = hysteresis
        self.scale = scale
        self.reset()

    def reset(self) -> None:
        self.prev_gray: np.ndarray | None = None
        self.prob: np.ndarray | None = None
        self.mask: np.ndarray | None = None

    def follow_weight(self, frame: np.ndarray) -> np.ndarray:
        """Per-pixel weight (HxW float32, still_weight..1) of the new probability for this frame."""
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, w // self.scale), max(1, h // self.scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        prev, self.prev_gray = self.prev_gray, gray
        if prev is None or prev.shape != gray.shape:
            return np.ones((h, w), np.float32)
        diff = cv2.blur(cv2.absdiff(gray, prev), (3, 3))
        # Dilated so the pixels next to a moving edge follow too (the edge lands there next).
        diff = cv2.dilate(diff, np.ones((3, 3), np.uint8))
        follow = (diff - self.noise_levels) / self.motion_levels
        weight = self.still_weight + (1.0 - self.still_weight) * np.clip(follow, 0.0, 1.0)
        return cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)

    def update(self, frame: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(smoothed probability HxW float32, mask HxW uint8 0/255) for frame (BGR) and its raw prob."""
        weight = self.follow_weight(frame)
        if self.prob is None or self.prob.shape != prob.shape:
            smoothed = prob.astype(np.float32, copy=True)
            mask = prob > 0.5
        else:
            smoothed = self.prob + weight * (prob - self.prob)
            was_on = self.mask > 0
            moving = weight >= 0.99
            # Still pixels switch on above 0.5 + h and off below 0.5 - h; moving ones cut at 0.5.
            mask = (smoothed > 0.5 + self.hysteresis) | (was_on & (smoothed > 0.5 - self.hysteresis))
            mask |= moving & (smoothed > 0.5)
            mask &= ~(moving & (smoothed <= 0.5))
        self.prob = smoothed
        self.mask = np.where(mask, 255, 0).astype(np.uint8)
        return smoothed, self.mask


@dataclass
class DriftState:
    gain: np.ndarray            # per channel (B, G, R): background ~= gain * frame + offset
    offset: np.ndarray
    differing_share: float      # share of the grid cells in view (a quarter or more of each not the
    #                             person) where most of the room's pixels differ from the background
    moved: bool                 # the background no longer matches (camera moved or scene changed)
    shift: tuple[float, float] = (0.0, 0.0)  # the room's shift against the background (x, y), in the
    #                             frame's pixels, where it is sure enough to tell (else 0, 0)


class DriftMonitor:
    """Tracks the camera's exposure drift against the background and notices when it stops matching.

    The fit uses the pixels the model labelled background in the previous frames (a person filling
    half the frame must not pull it), is smoothed over time, and is applied to later frames as a
    per-channel lookup table once it is larger than the tolerance (otherwise frames pass unchanged).
    The camera is taken for moved when, for moved_frames frames in a row, most of the room's pixels
    (those the person leaves in view) differ in moved_share or more of the 8x6 grid's cells: on the dev
    sets, whole or cut to portrait, square or 16:9, a still camera reaches at most 14%, every room
    flipped left-right 42% or more. Or when, as many frames in a row, the room (the frame without the
    person) is found shifted against the background by shift_share of the width or more (10 px at
    640): phase correlation of the two at a width of 160 px, taken when its peak is sure (response
    min_response or more), every shift_every frames. A camera nudged by 12-24 px differs little pixel
    by pixel on plain walls, and went unnoticed, while the model lost up to a third of a person's IoU
    in some rooms.
    """

    def __init__(self, background: np.ndarray, tolerance: float = 0.03, diff_levels: int = 30,
                 cell_share: float = 0.5, moved_share: float = 0.3, moved_frames: int = 10,
                 seen_share: float = 0.25,
                 smoothing: float = 0.3, step: int | None = None, grid: tuple[int, int] | None = None,
                 min_correlation: float = 0.8, shift_share: float = 1 / 64, min_response: float = 0.3,
                 shift_every: int = 3):
        # Samples every step pixels: 8, or for a frame narrower than 640 px as many across it as there
        # (every 8 px, a 48x36 camera gives fewer samples than the 8x6 grid has cells: its flipped
        # background went unnoticed in all 12 dev rooms; sampled as densely across it, in none).
        step = min(8, max(1, round(background.shape[1] / 80))) if step is None else step
        grid = (8, 6) if grid is None else grid
        self.background = background
        self.min_correlation = min_correlation
        self.tolerance = tolerance          # gain deviation (and offset / 255) worth correcting
        self.diff_levels = diff_levels
        self.cell_share = cell_share
        self.moved_share = moved_share
        self.seen_share = seen_share
        self.moved_frames = moved_frames
        self.smoothing = smoothing
        self.step = step
        self.grid = grid
        self._bkg_s = background[step // 2::step, step // 2::step].astype(np.float32)
        self.gain = np.ones(3, np.float32)
        self.offset = np.zeros(3, np.float32)
        self.lut: np.ndarray | None = None
        self._moved_run = 0
        self.shift_share = shift_share
        self.min_response = min_response
        self.shift_every = shift_every  # the shift is looked for every few frames (live FPS kept)
        self._updates = 0
        self._shift = (0.0, 0.0)
        # The room's shift: grey, at a width of 160 px (or the frame's own, if narrower), mean removed,
        # under a Hann window against the frame's edges. Frames of under 32 x 16 px are not judged.
        h, w = background.shape[:2]
        self._shift_scale = min(1.0, 160 / w)
        self._small = (max(1, round(w * self._shift_scale)), max(1, round(h * self._shift_scale)))
        self._bkg_g = None
        if self._small[0] >= 32 and self._small[1] >= 16:
            g = self._grey(background)
            self._bkg_g = g - g.mean()
            self._window = cv2.createHanningWindow(self._small, cv2.CV_32F)
        self.state = DriftState(self.gain.copy(), self.offset.copy(), 0.0, False)

    def _grey(self, image: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return cv2.resize(grey, self._small, interpolation=cv2.INTER_AREA).astype(np.float32)

    def _room_shift(self, frame: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
        """The room's shift against the background in the frame's pixels, (0, 0) where it cannot be
        told surely. The person (mask, widened) is blanked in the frame only: blanked in both, the
        hole's own outline matched itself and pulled the answer to no shift."""
        if self._bkg_g is None:
            return 0.0, 0.0
        g = self._grey(frame)
        keep = np.ones(g.shape, bool)
        if mask is not None:
            person = cv2.resize(mask, self._small, interpolation=cv2.INTER_AREA) > 0
            keep = ~cv2.dilate(person.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        if keep.mean() < self.seen_share:  # the person hides most of the room: cannot tell
            return 0.0, 0.0
        g = np.where(keep, g - g[keep].mean(), 0).astype(np.float32)
        # (A copy: OpenCV 4.11 applies the window to its first input in place, so the background's
        # copy drifted a little further from the room each frame.)
        (dx, dy), response = cv2.phaseCorrelate(self._bkg_g.copy(), g, self._window)
        if not response >= self.min_response:
            return 0.0, 0.0
        return dx / self._shift_scale, dy / self._shift_scale

    def correct(self, frame: np.ndarray, lut: np.ndarray | None = None) -> np.ndarray:
        """The frame mapped into the background's exposure (unchanged while the drift is small)."""
        lut = self.lut if lut is None else lut
        return frame if lut is None else cv2.LUT(frame, lut)

    def _fit(self, f: np.ndarray, b: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-channel least squares b ~ gain * f + offset over `use`; None when the pixels do not
        follow a line (too few, or a different view: then no exposure change can be told)."""
        if use.sum() < max(16, 0.05 * use.size):  # a frame of a few pixels samples none
            return None
        gain, offset = np.ones(3, np.float32), np.zeros(3, np.float32)
        for c in range(3):
            x, y = f[..., c][use], b[..., c][use]
            vx, vy = x.var(), y.var()
            if vx < 1.0 or vy < 1.0:  # a flat wall: only an offset can be told
                offset[c] = y.mean() - x.mean()
                continue
            cov = ((x - x.mean()) * (y - y.mean())).mean()
            if cov / np.sqrt(vx * vy) < self.min_correlation:
                return None
            g = float(np.clip(cov / vx, 0.5, 2.0))
            gain[c], offset[c] = g, y.mean() - g * x.mean()
        return gain, offset

    def update(self, frame: np.ndarray, mask: np.ndarray | None) -> DriftState:
        """Refit with this frame (BGR uint8) and its person mask (0/255); returns the new state."""
        s = self.step
        f = frame[s // 2::s, s // 2::s].astype(np.float32)
        b = self._bkg_s
        use = np.ones(f.shape[:2], bool) if mask is None else mask[s // 2::s, s // 2::s] == 0
        # Robust: refit once without the pixels that still differ (shadows, moved things).
        fit = self._fit(f, b, use)
        if fit is not None:
            resid = np.abs(f * fit[0] + fit[1] - b).max(axis=2)
            fit = self._fit(f, b, use & (resid < self.diff_levels))
        if fit is not None:  # otherwise keep the last good estimate
            a = self.smoothing
            self.gain = (1 - a) * self.gain + a * fit[0]
            self.offset = (1 - a) * self.offset + a * fit[1]
        drift = max(float(np.abs(self.gain - 1).max()), float(np.abs(self.offset).max()) / 255.0)
        if drift > self.tolerance:
            levels = np.arange(256, dtype=np.float32)[:, None]
            lut = np.clip(levels * self.gain[None, :] + self.offset[None, :], 0, 255)
            self.lut = np.round(lut).astype(np.uint8).reshape(256, 1, 3)
        else:
            self.lut = None
        # Camera moved: the room around the person differs over most of the frame. The person's own
        # pixels do not count: a person filling a portrait frame made a still camera look moved.
        corrected = f * self.gain + self.offset
        differs = np.abs(corrected - b).max(axis=2) > self.diff_levels
        gx, gy = self.grid
        h, w = differs.shape
        share = 0.0
        if h >= gy and w >= gx:  # else too few samples for the grid (a frame of a few dozen pixels)

            def cells(a: np.ndarray) -> np.ndarray:
                return a[: h - h % gy, : w - w % gx].reshape(gy, h // gy, gx, w // gx).mean(axis=(1, 3))

            room = cells(use)  # the share of each cell the person leaves in view
            seen = room >= self.seen_share
            if seen.mean() >= self.seen_share:  # else the person hides most of the room: cannot tell
                differing = cells(differs & use)[seen] / room[seen]
                share = float((differing > self.cell_share).mean())
        if self._updates % self.shift_every == 0:  # in between, the last one found holds
            self._shift = self._room_shift(frame, mask)
        self._updates += 1
        shift = self._shift
        shifted = np.hypot(*shift) >= self.shift_share * frame.shape[1]
        self._moved_run = self._moved_run + 1 if share >= self.moved_share or shifted else 0
        self.state = DriftState(self.gain.copy(), self.offset.copy(), share,
                                self._moved_run >= self.moved_frames, shift)
        return self.state


def background_mismatch(frame: np.ndarray, background: np.ndarray, mask: np.ndarray | None) -> bool:
    """DriftMonitor's "camera moved" check on one frame (BGR, the background's size) and its person
    mask (0/255): True when the room around the person differs from the background over most of the
    frame, or is shifted against it (another room's background, or a camera moved after it). The
    exposure fit is taken whole (no smoothing over earlier frames), so one frame is judged as a run of
    ten is in live mode: on the dev sets, with the shipped model's masks, none of the 52 frames against
    their own background, and 568 of the 572 against the 11 other sets' (the other 4: frames of set1
    and set2 against set9's room, one of set9 against set2's); with their labels as the person, the
    frames shifted 12 px or more after the background, 42-44 of 52, as live mode after ten frames
    (benchmarks/moved_camera.py --model gives these)."""
    monitor = DriftMonitor(background, moved_frames=1, smoothing=1.0)
    return monitor.update(frame, mask).moved


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """image scaled to cover width x height without distortion (its aspect ratio kept), the overhang
    cropped evenly from both sides: a wide photo behind a 4:3 frame is not squashed."""
    h, w = image.shape[:2]
    # The middle part of the frame's shape first, cut evenly from both sides (a centred picture stays
    # centred; at least a pixel is kept), then one resize: a 2x3000 strip scaled whole first would be
    # 720000 pixels wide.
    x = min((w - 1) // 2, max(0, round((w - h * width / height) / 2)))
    y = min((h - 1) // 2, max(0, round((h - w * height / width) / 2)))
    part = image[y:h - y, x:w - x]
    ch, cw = part.shape[:2]
    shrink = cw > width or ch > height
    return cv2.resize(part, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def fast_blur(image: np.ndarray, strength: int = 4) -> np.ndarray:
    """A strong blur cheaply: shrink by `strength`, Gaussian blur, grow back."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // strength), max(1, h // strength)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 3)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def default_replacement(width: int, height: int) -> np.ndarray:
    """A soft blue-to-violet gradient used by the replace view when no --replace image is given."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    top, bottom = np.array([120, 60, 20], np.float32), np.array([90, 30, 70], np.float32)
    col = top * (1 - t[..., None]) + bottom * t[..., None]
    return np.repeat(col, width, axis=1).astype(np.uint8)


class Compositor:
    """Draws one view from a frame, its person probability (soft edges) and its mask (0/255)."""

    TINT = np.array([0, 200, 0], np.float32)

    def __init__(self, replacement: np.ndarray | None = None):
        self.replacement = replacement
        self._sized: dict[tuple[int, int], np.ndarray] = {}

    def backdrop(self, view: str, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        if view == "blur":
            return fast_blur(frame)
        if view == "green":
            return np.full_like(frame, (0, 255, 0))
        if (w, h) not in self._sized:
            src = self.replacement if self.replacement is not None else default_replacement(w, h)
            self._sized[(w, h)] = cover(src, w, h)
        return self._sized[(w, h)]

    def compose(self, view: str, frame: np.ndarray, prob: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if view == "tint":
            # Whole-frame blend then a masked copy: much cheaper than boolean indexing.
            tinted = cv2.addWeighted(frame, 0.55, np.broadcast_to(self.TINT.astype(np.uint8), frame.shape), 0.45, 0)
            out = frame.copy()
            cv2.copyTo(tinted, mask, out)
            return out
        if view == "side":
            return np.hstack([frame, cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)])
        if view not in VIEWS:
            raise HumansegError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
        alpha = np.clip(prob, 0.0, 1.0).astype(np.float32)
        return cv2.blendLinear(frame, self.backdrop(view, frame), alpha, 1.0 - alpha)


class BackgroundGrabber:
    """A countdown (to step out of view), then the mean of `seconds` worth of frames (less sensor noise)."""

    def __init__(self, countdown: float = 3.0, seconds: float = 1.0):
        self.countdown = countdown
        self.seconds = seconds
        self.started: float | None = None
        self._sum: np.ndarray | None = None
        self._count = 0
        self.took_last = False

    def start(self, now: float) -> None:
        self.started, self._sum, self._count = now, None, 0

    @property
    def running(self) -> bool:
        return self.started is not None

    def seconds_left(self, now: float) -> float:
        """Countdown seconds still to wait (0 while averaging)."""
        return 0.0 if self.started is None else max(0.0, self.started + self.countdown - now)

    def feed(self, frame: np.ndarray, now: float) -> np.ndarray | None:
        """Offer a frame; returns the averaged background (BGR uint8) when done, else None. The frames
        of the `seconds` after the countdown are averaged; the first one at or past their end is not
        (until the fifty-sixth day it was: someone stepping back in just then went into the room),
        unless none came before it. `took_last`: whether the frame just offered went in."""
        self.took_last = False
        if self.started is None or now < self.started + self.countdown:
            return None
        done = now >= self.started + self.countdown + self.seconds
        if not done or not self._count or self._sum is None or self._sum.shape != frame.shape:
            if self._sum is None or self._sum.shape != frame.shape:
                self._sum, self._count = np.zeros(frame.shape, np.float64), 0
            self._sum += frame
            self._count += 1
            self.took_last = True
        if done:
            bkg = np.clip(np.round(self._sum / self._count), 0, 255).astype(np.uint8)
            self.started, self._sum = None, None
            return bkg
        return None


@dataclass
class LiveFrame:
    """One processed frame: raw and smoothed probability, the mask (0/255), the composited view."""

    raw: np.ndarray
    prob: np.ndarray
    mask: np.ndarray
    image: np.ndarray
    drift: DriftState | None = None


class LiveSession:
    """The per-frame pipeline: exposure correction, model, stability filter, drift check, view.

    `segment` (model only) may run in a worker thread while `finish` of the previous frame runs in
    the caller's; `process` does both in turn.
    """

    def __init__(self, segmenter, view: str = "tint", replacement: np.ndarray | None = None,
                 smooth: bool = True, compensate: bool = True):
        if view not in VIEWS:
            raise HumansegError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
        self.segmenter = segmenter
        self.view = view
        self.compositor = Compositor(replacement)
        self.smooth = smooth
        self.compensate = compensate
        self.filter = StabilityFilter()
        self.drift: DriftMonitor | None = None
        self.background: np.ndarray | None = None

    def set_background(self, background: np.ndarray) -> None:
        """Cache the model's background features once; restart the filter and drift tracking."""
        self.segmenter.set_background(background)
        self.background = background
        self.filter.reset()
        self.drift = DriftMonitor(background)

    def cycle_view(self) -> str:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        return self.view

    def correction(self):
        """The exposure correction to apply to the next frame submitted (None: none)."""
        return self.drift.lut if (self.compensate and self.drift is not None) else None

    def segment(self, frame: np.ndarray, correction=None) -> np.ndarray:
        """Raw person probability (HxW float32) of frame, after the given exposure correction."""
        if self.background is None:
            raise HumansegError("no background set")
        if frame.shape != self.background.shape:
            raise HumansegError(f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the "
                                f"background's {self.background.shape[1]}x{self.background.shape[0]}")
        if correction is not None:
            frame = cv2.LUT(frame, correction)
        return self.segmenter.predict(frame)

    def finish(self, frame: np.ndarray, raw: np.ndarray) -> LiveFrame:
        if self.smooth:
            prob, mask = self.filter.update(frame, raw)
        else:
            prob, mask = raw, np.where(raw > 0.5, 255, 0).astype(np.uint8)
        # Tracked with --raw too (only its correction is then not applied): the camera-moved check.
        drift = self.drift.update(frame, mask) if self.drift is not None else None
        return LiveFrame(raw, prob, mask, self.compositor.compose(self.view, frame, prob, mask), drift)

    def process(self, frame: np.ndarray) -> LiveFrame:
        return self.finish(frame, self.segment(frame, self.correction()))


FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
# OpenCV 4.11's MJPG writer corrupts memory on some small frames (5x4, 4x4, 2x8, 9x1, ...: 45 sizes up
# to 40x40, each under 8 px wide or 1 px tall, some only with varied content): the process aborted,
# leaving its temporary file. Frames under 8 px on either side are refused, a margin over what was seen.
MJPG_MIN_SIDE = 8
MIN_VIDEO_FPS = 1.0  # what OpenCV's MJPG writer takes at least


class VideoOutput:
    """A video file written atomically: frames go to NAME.PID.RANDOM.tmp.EXT, renamed to NAME.EXT on close.

    Frames from a file or folder are written one for one. A camera's are written in real time
    (`write(image, at=seconds)`): the file's frame j shows the first frame taken within half a frame of
    j / fps seconds, or holds the one before when none was, so the video plays at the speed it was
    filmed even where the model keeps up with less than the camera's rate. A gap of more than
    `max_gap` seconds (a background capture, which records nothing, or a camera that stalled) is
    shortened to it, so the video does not freeze for the whole pause.
    """

    max_gap = 0.5

    def __init__(self, path: str | os.PathLike, fps: float, force: bool = False):
        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in FOURCC:
            raise HumansegError(f"--output {path}: unsupported video type {ext or '(none)'}; "
                                f"use one of {', '.join(sorted(FOURCC))}")
        if os.path.lexists(self.path) and not force:  # a link pointing nowhere too
            raise HumansegError(f"--output {path} already exists (pass --force to overwrite)")
        store.refuse_missing_folder(self.path, "--output")  # (a file there was said not to exist)
        store.refuse_unwritable(self.path, "--output")  # before a camera session, not at its first frame
        self.force = force
        store.refuse_non_utf8_video_name(self.path, "--output")
        self.tmp: Path | None = None  # claimed with the first frame
        self.fps = fps
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._writer = None

    @property
    def fps(self) -> float:
        return self._fps

    @fps.setter
    def fps(self, value: float) -> None:
        # OpenCV's MJPG writer refuses under 1, mp4v under about 0.002 (a header saying 0.001 fps made
        # --output "cannot write a video there"); a slower time-lapse's file plays faster.
        self._fps = max(float(value), MIN_VIDEO_FPS)
        self._last_at: float | None = None
        self._elapsed = 0.0  # seconds of video the timed frames so far stand for
        self._held: np.ndarray | None = None  # the last timed frame, shown until the next one

    def write(self, image: np.ndarray, at: float | None = None) -> None:
        """Append a frame; `at`: when it was taken (seconds, a camera's), to keep the video in real time."""
        if at is None:
            self._write(image)
            return
        if self._last_at is not None:
            self._elapsed += min(max(at - self._last_at, 0.0), self.max_gap)
        self._last_at = at
        # The nearest slot: a camera at the file's rate lands on the slots' boundaries, where a
        # millisecond of jitter in when a frame was read would skip it and repeat the one before.
        slot = int(self._elapsed * self.fps + 0.5)
        while self._held is not None and self.frames < slot:
            self._write(self._held)
        if self.frames == slot:  # otherwise a frame taken earlier already stands for this moment
            self._write(image)
        self._held = image.copy()  # the caller may reuse its buffer

    def open_for(self, image: np.ndarray) -> None:
        """Open the file for frames of image's size (its first write does it too): the encoder refusing
        them is said before the frame's mask is written."""
        h, w = image.shape[:2]
        if self._writer is None:
            fourcc = FOURCC[self.path.suffix.lower()]
            if fourcc == "MJPG" and min(w, h) < MJPG_MIN_SIDE:  # before a file is made: the process aborted
                other = "; record them as .mp4" if min(w, h) >= 2 else " (nor does mp4v take frames under 2x2)"
                raise HumansegError(f"--output {self.path}: OpenCV's MJPG encoder fails on frames under "
                                    f"{MJPG_MIN_SIDE}x{MJPG_MIN_SIDE} ({w}x{h}){other}", exit_code=1)
            self.size = (w, h)
            if self.tmp is None:
                try:  # its own new file: a NAME.tmp.EXT of the user's is never touched
                    with signals_held():  # (known to discard() once it exists)
                        self.tmp = store.claim_temporary(self.path, keep_suffix=True)
                except OSError as exc:
                    raise HumansegError(f"--output {self.path}: {exc.strerror or exc}", exit_code=1) from None
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*fourcc), self.fps, self.size)
            if not self._writer.isOpened():
                self._writer = None
                # The place was checked before the run: what remains is the encoder refusing the frames
                # (mp4v takes nothing under 2x2).
                raise HumansegError(f"--output {self.path}: the {fourcc} encoder refused {w}x{h} frames (no "
                                    f"video type here records frames under 2x2)" if min(w, h) < 2 else
                                    f"--output {self.path}: cannot write a video there", exit_code=1)

    def _write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        self.open_for(image)
        if (w, h) != self.size:  # a view of another size (side by side) is fitted to the file's size
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; None when no frame was written."""
        if self._writer is None or self.frames == 0:  # (opened for a frame whose mask then failed)
            self.discard()
            return None
        self._writer.release()
        self._writer = None
        # OpenCV's writer says nothing when a write fails (a full disk): the file is read back, and one
        # whose moov atom is missing (MP4, MOV) or whose last frame cannot be read is not kept. (The
        # frame count alone passed a cut-off AVI or MKV: their writers put it at the file's start,
        # whose room on the disk was taken before it filled; a 100 kB disk kept 3 of 6 frames.)
        check = cv2.VideoCapture(str(self.tmp))
        try:
            complete = check.isOpened() and check.get(cv2.CAP_PROP_FRAME_COUNT) >= 1
            if complete:
                check.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)  # a seek, not a decode of the whole file
                complete = check.read()[0]
        finally:
            check.release()
        if not complete:
            store.remove_temporary(self.tmp)
            raise HumansegError(f"--output {self.path}: the video could not be written completely "
                                f"(disk full?); nothing was kept", exit_code=1)
        try:  # without --force, never over a file that appeared during the run (another run's recording)
            store.write_in_place(self.tmp, self.path, overwrite=self.force)
        except AlreadyExists:
            kept, self.tmp = self.tmp, None  # (discard() must not take it)
            raise HumansegError(f"--output {self.path} appeared during the run (another program?) and is left "
                                f"as it is; this recording is kept as {kept}", exit_code=1) from None
        self.tmp = None
        return self.path

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.tmp is not None:
            store.remove_temporary(self.tmp)


def draw_overlay(image: np.ndarray, view: str, fps: float, warning: str | None = None,
                 countdown: float | None = None, grabbing: bool = False,
                 frame_shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, float]:
    """The on-screen extras (never in the recorded video): view, FPS, warnings, countdown; drawn on
    a copy of image (a small camera's enlarged, see display.on_screen; frame_shape: the camera
    frame's, when image is the side-by-side view), returned with its scale."""
    from humanseg.display import on_screen
    from humanseg.ui import draw

    canvas, zoom = on_screen(image, frame_shape)
    if grabbing:
        if countdown and countdown > 0:
            draw.draw_countdown(canvas, int(np.ceil(countdown)), "background: step out of view")
        else:
            draw.draw_notices(canvas, ["capturing background - keep still"])
    elif warning:
        draw.draw_notices(canvas, [warning])
    draw.draw_status(canvas, f"{VIEW_NAMES.get(view, view)} (v) | b: new background | q: quit | {fps:.1f} fps")
    return canvas, zoom


MOVED_WARNING = "background no longer matches (camera moved?) - press b to re-capture"


@dataclass
class LiveResult:
    frames: int = 0
    fps: float = 0.0
    output: Path | None = None
    backgrounds: int = 0
    bkg_saved: bool = False  # a background went to --save-bkg
    bkg_not_saved: str | None = None  # why the last one did not
    moved_frames: int = 0
    masks: list = field(default_factory=list)


def _not_written(exc: BaseException) -> str:
    """Why an output of the run could not be written, in a few words."""
    if isinstance(exc, AlreadyExists):
        return "it appeared during the run (another program's?): not replaced without --force"
    return getattr(exc, "strerror", None) or str(exc)


class MaskNotWritten(HumansegError):
    """A --save-masks mask could not be written: the run ends, keeping what it recorded so far (a
    camera's session cannot be made again; the recording was deleted with the mask's failure)."""

    exit_code = 1


def run_live(source, session: LiveSession, window=None, output: VideoOutput | None = None,
             grabber: BackgroundGrabber | None = None, clock: Callable[[], float] = time.monotonic,
             media_clock: bool = False, max_frames: int | None = None, masks_dir: Path | None = None,
             log: Callable[[dict], None] | None = None, save_bkg: Path | None = None,
             force: bool = False, until_background: bool = False) -> LiveResult:
    """Read, segment, composite, show and record until the source ends, q/Esc, or max_frames.

    The model runs in a worker thread one frame ahead of compositing (frames stay in order, none is
    skipped), so reading, drawing and writing overlap the network on a second core.
    media_clock: time is frames / source fps (files), so the background countdown does not depend
    on how fast frames are read, and `output` gets every frame once; without it (a camera) time is
    `clock`'s, and `output` is kept in real time (`VideoOutput.write`). Releases the source and
    window; closes (or discards) the output. save_bkg: each background captured is written there
    (replacing the one before); a write that fails is reported as an event and the session goes on.
    force: masks and save_bkg may replace files that appeared during the run (never without: this
    run's own are replaced). until_background: stop once a background is captured (all a headless
    run with only --save-bkg keeps).
    """
    from humanseg.capture import FpsMeter

    emit = log or (lambda record: None)
    fps_rate = float(getattr(source, "fps", 30.0) or 30.0)
    result = LiveResult()
    own = store.OwnFiles(overwrite=force)
    meter = FpsMeter()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment")
    pending = None  # (frame, future of its raw probability)
    read_count = submitted = 0
    started = paced_from = clock()  # paced_from: when a file shown in a window would have started playing

    def now() -> float:
        return read_count / fps_rate if media_clock else clock() - started

    def finish_pending() -> bool:
        """Composite, show and record the pending frame; False when the user asked to quit."""
        nonlocal pending
        if pending is None:
            return True
        frame, future, taken, number = pending
        pending = None
        live = session.finish(frame, future.result())
        # A frame's video frame and mask are written both or neither: a Ctrl-C between them left the
        # video a frame longer than the masks. The mask goes first: one that cannot be written (a
        # full disk) ends the run with the recording kept, as long as the masks.
        with signals_held() if output is not None and masks_dir is not None else nullcontext():
            if output is not None:
                output.open_for(live.image)  # an encoder refusing the frames: no mask written before
            if masks_dir is not None:
                k = result.frames if number is None else number  # a capture set's frame K: K_mask.png
                path = masks_dir / store.mask_name(k)
                try:
                    own.write_image(path, live.mask)
                except (OSError, HumansegError) as exc:
                    kept = f"; the recording so far is kept: {output.path}" if output is not None and output.frames else ""
                    raise MaskNotWritten(f"{path}: {_not_written(exc)}{kept}") from None
            if output is not None:  # a camera's frames in real time, a file's one for one
                output.write(live.image, at=None if media_clock else taken)
        result.frames += 1
        result.fps = meter.tick(clock())
        moved = live.drift is not None and live.drift.moved
        result.moved_frames += int(moved)
        if window is not None:
            window.show(*draw_overlay(live.image, session.view, result.fps, MOVED_WARNING if moved else None,
                                      frame_shape=frame.shape))
            return handle_keys()
        return True

    def saved_background(bkg: np.ndarray) -> dict:
        if save_bkg is None:
            return {}
        try:
            saved = str(own.write_image(save_bkg, bkg))
            result.bkg_saved, result.bkg_not_saved = True, None
            return {"saved": saved}
        except (OSError, HumansegError) as e:  # the session (and its recording) goes on without it
            result.bkg_not_saved = f"--save-bkg {save_bkg}: {_not_written(e)}"
            return {"not_saved": result.bkg_not_saved}

    def handle_keys() -> bool:
        nonlocal paced_from
        keys, _ = window.poll(1)
        if media_clock:  # a file or folder in a window plays at its frame rate, not as fast as it is read
            due, at = paced_from + read_count / fps_rate, clock()
            if due < at:  # behind (a slow model or view): go on from now, not race to catch up
                paced_from += at - due
            # Waited in slices, so a key or the window's close button answers at once.
            while not keys and due > clock() and window.is_open():
                more, _ = window.poll(max(1, int(min(0.05, due - clock()) * 1000)))
                keys = keys + more
        for key in keys:
            if key in (ord("q"), 27):
                emit({"event": "quit", "by": "key"})
                return False
            if key == ord("v"):
                emit({"event": "view", "view": session.cycle_view()})
            elif key == ord("b") and grabber is not None:
                grabber.start(now())
                emit({"event": "background", "state": "countdown"})
        if not window.is_open():
            emit({"event": "quit", "by": "window closed"})
            return False
        return True

    keep_output = True
    try:
        keep_going = True
        while keep_going:
            if max_frames is not None and submitted >= max_frames:
                break  # segmented frames: a countdown's and the background's frames do not count
            frame = source.read()
            if frame is None:
                break
            taken = clock() - started
            read_count += 1
            if grabber is not None and (grabber.running or session.background is None):
                keep_going = finish_pending()  # the model must be idle before its background changes
                if not grabber.running:
                    grabber.start(now())
                bkg = grabber.feed(frame, now())
                if bkg is not None:
                    session.set_background(bkg)
                    result.backgrounds += 1
                    with signals_held():  # a signal during --save-bkg's write: handed on once told
                        emit({"event": "background", "state": "captured", **saved_background(bkg)})
                    if until_background:
                        break
                elif window is not None and keep_going:
                    window.show(*draw_overlay(frame, session.view, result.fps,
                                             countdown=grabber.seconds_left(now()), grabbing=True))
                    keep_going = handle_keys()
                if bkg is None or grabber.took_last or not keep_going:
                    continue  # (the first frame past the room's second, not in it, is segmented)
            if frame.shape != session.background.shape:  # an image folder's odd one out: name it
                which = getattr(source, "last_path", None) or f"frame {read_count} of the source"
                said = (f"{which} is {frame.shape[1]}x{frame.shape[0]} but the background is "
                        f"{session.background.shape[1]}x{session.background.shape[0]}")
                if getattr(source, "is_camera", False):
                    # A camera that changed size mid-session (renegotiated, another program set it) ends
                    # as one that stops: exit 1, the recording so far and its last frame kept (bad
                    # input's exit 2 discarded a recording of the frames before, keeping their masks).
                    kept = "; what was recorded so far is kept" if output is not None or masks_dir is not None else ""
                    raise CameraStopped(f"{said} (the camera changed size while running?){kept}")
                raise HumansegError(said)
            future = pool.submit(session.segment, frame, session.correction())
            submitted += 1
            keep_going = finish_pending()
            pending = (frame, future, taken, getattr(source, "last_number", None))
        if keep_going:
            finish_pending()
    except CameraStopped:  # (stopped, or changed size) keeps what was recorded so far, and the frame
        finish_pending()  # that was in the model then: the session's last, recorded as the others
        raise
    except (KeyboardInterrupt, MaskNotWritten):
        raise  # Ctrl-C, or a full disk for the masks, keeps what was recorded so far
    except BaseException:
        keep_output = False  # a real failure leaves no half-written file behind
        raise
    finally:
        with signals_held():  # a second Ctrl-C here would lose the recording being closed
            pool.shutdown(wait=True)
            source.release()
            if window is not None:
                window.close()
            if output is not None:
                if keep_output:
                    result.output = output.close()
                else:
                    output.discard()
    return result


def default_threads() -> int:
    """Torch threads for the model: all cores but one, which reads, composites and shows."""
    return max(1, (os.cpu_count() or 2) - 1)


@click.command("live", cls=Command)
@click.option("--source", default="0", show_default=True,
              help="Camera index, video file, or image folder / glob pattern.")
@click.option("--bkg", "bkg_path", type=File(),
              help="Background image; without it one is captured from the source after a countdown.")
@click.option("--weights", type=InFile(dir_okay=False),
              help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--view", type=click.Choice(VIEWS), default="tint", show_default=True,
              help="tint: mask over the frame; blur: background blurred; replace: --replace image behind; "
                   "green: green screen; side: frame | mask. Key v cycles.")
@click.option("--replace", "replace_path", type=File(),
              help="Image shown behind the person in the replace view (default: a gradient).")
@click.option("--output", type=File(), help="Write the composited video (.mp4, .avi).")
@click.option("--force", is_flag=True, help="Overwrite an existing --output, --save-masks masks or --save-bkg.")
@click.option("--save-masks", "masks_dir", type=Folder(),
              help="Also write each frame's mask as DIR/N_mask.png (N: K for frames named K.png, as a "
                   "capture set's; else counting from 0).")
@click.option("--no-window", is_flag=True, help="Headless: no window (use with --output or --save-masks).")
@click.option("--save-bkg", "save_bkg", type=File(),
              help="Write each background captured (no --bkg, or key b) to this .png, for a later --bkg.")
@click.option("--countdown", type=Number(min=0), default=3, show_default=True,
              help="Seconds to step out of view before the background is captured (b or no --bkg).")
@click.option("--bkg-seconds", type=Number(min=0), default=1, show_default=True,
              help="Seconds of frames averaged into a captured background.")
@click.option("--raw", is_flag=True, help="No temporal smoothing or exposure correction: each frame's "
                                          "mask is the model's own (what evaluate scores).")
@click.option("--mirror/--no-mirror", default=None,
              help="Flip frames left-right (a selfie view). Default: a camera's are flipped, as the capture "
                   "tool shows and saves them (so its bkg.png fits); files and folders are taken as they are.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many segmented frames.")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None,
              help="CPU threads for the model (default: cores - 1).")
@reports_errors
def live_command(source, bkg_path, weights, view, replace_path, output, force, masks_dir, no_window, save_bkg,
                 countdown, bkg_seconds, raw, mirror, max_frames, threads):
    """Segment every frame against the background, live: views, FPS, stability, drift warning.

    Keys: v next view, b capture a new background, q / Esc quit.
    """
    from humanseg.display import require_display

    given = click.get_current_context().get_parameter_source
    if no_window and bkg_path:  # headless with --bkg, no background is ever captured: unused
        for name in ("countdown", "bkg_seconds"):
            if given(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--{name.replace('_', '-')} times the capture of a background; with --bkg "
                                       f"and --no-window none is captured: leave one of them out")
    if max_frames and no_window and save_bkg and not output and not masks_dir:  # ends at the background
        raise click.UsageError("--max-frames counts segmented frames; with --no-window and --save-bkg alone the "
                               "run ends once the background is captured: add --output or --save-masks, or "
                               "leave --max-frames out")
    if replace_path and no_window and view != "replace":  # headless, the view never changes: unused
        raise click.UsageError(f"--replace is the image behind the person in --view replace; with --no-window "
                               f"the view stays {view}: add --view replace, or leave --replace out")
    bkg = store.read_image(bkg_path, "--bkg background") if bkg_path else None
    replacement = store.read_image(replace_path, "--replace image") if replace_path else None
    if not no_window:
        require_display()
    if output and Path(output).exists() and Path(source).is_file() and os.path.samefile(output, source):
        # --force would replace the video being read with the few frames segmented from it
        raise HumansegError(f"--output {output} is the --source video; write the result to another file")
    video = VideoOutput(output, 30.0, force=force) if output else None
    masks = Path(masks_dir) if masks_dir else None
    if masks is not None:
        # --force or not: the masks' folder made where a file goes ended the run at its end (the
        # recording left as a temporary file), and a mask named as an image read replaced it (or, as an
        # earlier mask, removed it).
        for option, path in (("--output", output), ("--save-bkg", save_bkg)):
            if path and Path(path).resolve() == masks.resolve():
                raise HumansegError(f"--save-masks {masks} is the {option} file; give them two names")
        for option, path in (("--bkg", bkg_path), ("--replace", replace_path)):
            where = Path(path).resolve() if path else None
            if where and where.parent == masks.resolve() and store.MASK_RE.match(where.name):
                raise HumansegError(f"--save-masks {masks} would write over the {option} image {path}; "
                                    f"choose another folder")
        store.refuse_capture_folder(masks, "--save-masks")
        store.refuse_new_set_folder(masks, "--save-masks")  # one every tool would take for a set
        store.refuse_unwritable(masks, "--save-masks", folder=True)
        earlier = _masks_in(masks)
        if earlier and not force:
            raise HumansegError(f"--save-masks {masks} already holds masks ({min(earlier).name}, ...): "
                                f"--force replaces them, or choose another folder")
        # A mask's name taken by a link that leads nowhere (to nothing, or round in a loop): counted
        # as no mask, it was refused at its write as "appeared during the run".
        dead = [] if force or not masks.is_dir() else sorted(
            p for p in masks.iterdir() if store.MASK_RE.match(p.name) and p.is_symlink() and not p.exists())
        if dead:
            raise HumansegError(f"--save-masks {masks}: {dead[0].name} there is a link that leads to no file; "
                                f"move it away, or --force replaces it")

    if save_bkg:
        save_bkg = Path(save_bkg)
        if save_bkg.suffix.lower() != ".png":
            raise HumansegError(f"--save-bkg {save_bkg}: name a .png file (backgrounds are kept lossless)")
        store.refuse_capture_file(save_bkg, "--save-bkg")  # a set's bkg.png holds its labels' reference
        inputs = [p for p in (bkg_path, replace_path) if p]
        if os.path.isdir(source):
            inputs += [str(p) for p in Path(source).iterdir()]
        elif any(ch in source for ch in "*?[") and not os.path.isfile(source):
            inputs += glob.glob(source)
        else:
            inputs.append(source)
        if any(Path(p).resolve() == save_bkg.resolve() for p in inputs):  # --force or not
            raise HumansegError(f"--save-bkg {save_bkg} is one of the images read (--source, --bkg or "
                                f"--replace); save it to another file")
        if (masks is not None and save_bkg.resolve().parent == masks.resolve()
                and store.MASK_RE.match(save_bkg.name)):  # --force or not: a mask would replace it
            raise HumansegError(f"--save-bkg {save_bkg} is a name --save-masks writes its masks under; "
                                f"give it another name")
        if os.path.lexists(save_bkg) and not force:
            raise HumansegError(f"--save-bkg {save_bkg} already exists (pass --force to overwrite)")
        store.refuse_missing_folder(save_bkg, "--save-bkg")
        store.refuse_unwritable(save_bkg, "--save-bkg")
        if bkg is not None and no_window:  # headless, a background is captured only without --bkg
            raise HumansegError(f"--save-bkg {save_bkg}: nothing to save: with --bkg and --no-window no "
                                f"background is captured")

    # Files loop in a window (a demo); a headless run or a recording goes through them once.
    src = open_source_quietly(source, loop=not no_window and not output and not masks)
    is_camera = getattr(src, "is_camera", False)  # open_source's own decision, not a second guess
    stream = isinstance(src, VideoSource)  # a camera or a video file, not a folder's pictures
    if mirror is None:
        mirror = is_camera
    src = _Flipped(src) if mirror else src
    try:
        if (output or masks is not None) and hasattr(src, "check_all"):
            # A folder's bad image found at frame 300 would end the run with half its results
            # written: every image is read once first (about 8 ms each), before anything is written.
            src.check_all()  # against the first image; the first against --bkg just below
        first = src.read()
        if first is None:
            raise HumansegError(f"--source {source}: no frames could be read")
        if bkg is not None and bkg.shape != first.shape:
            raise HumansegError(f"--bkg {bkg_path} is {bkg.shape[1]}x{bkg.shape[0]} but --source {source} "
                                f"gives {first.shape[1]}x{first.shape[0]} frames")
        if bkg is not None and looks_mirrored(first, bkg):  # every mask would be wrong: say why
            fix = "pass --no-mirror to take the frames as they come" if mirror else "pass --mirror to flip the frames"
            click.echo(f"warning: --bkg {bkg_path} looks mirrored against the frames of --source {source} "
                       f"(they match it far better flipped), so the masks would be wrong: {fix} (or, if the frames show "
                       f"another room, give that room's background)", err=True)
        # The model once the source and its frames are found fine: a missing video or camera was said
        # after the model had loaded (5 s on the development machine).
        from humanseg.model import load_segmenter

        segmenter = load_segmenter(weights, num_threads=threads or default_threads())
        if video is not None:
            video.fps = src.fps
        session = LiveSession(segmenter, view, replacement, smooth=not raw, compensate=not raw)
        # A camera's or a video's frames are one stream: a far person is followed in their crop. A
        # folder's are separate pictures, and --raw promises what `evaluate` would give each frame.
        segmenter.track = stream and not raw
        if bkg is not None:
            session.set_background(bkg)
        window = None
        if not no_window:
            from humanseg.ui.window import CvWindow

            window = CvWindow("live")
        made_masks = _missing_folders(masks) if masks is not None else []  # deepest first
        if masks is not None:  # only once the source, its frame size and the window are fine
            masks.mkdir(parents=True, exist_ok=True)
    except BaseException:
        src.release()
        raise
    if no_window and not (output or masks_dir or save_bkg):  # a run to time, or a forgotten option
        click.echo("warning: --no-window without --output, --save-masks or --save-bkg: every frame is "
                   "segmented, and nothing is shown or kept", err=True)
    grabber = BackgroundGrabber(countdown, bkg_seconds) if (bkg is None or window is not None) else None
    try:
        result = run_live(Peeked(src, first), session, window, video, grabber, media_clock=not is_camera,
                          max_frames=max_frames, masks_dir=masks, save_bkg=save_bkg or None,
                          log=lambda r: click.echo(json.dumps(r)), force=force,
                          # headless with --save-bkg alone: the rest of the source is segmented for nothing
                          until_background=no_window and bool(save_bkg) and not output and masks is None)
    except BaseException:
        _remove_if_empty(made_masks)  # the run made them, and failed before a mask went in
        raise
    finally:
        if masks is not None and earlier:
            _drop_earlier_masks(masks, earlier)
    summary = {"event": "done", "frames": result.frames, "fps": round(result.fps, 1),
               "output": str(result.output) if result.output else None}
    if result.moved_frames:
        summary["moved_frames"] = result.moved_frames
    click.echo(json.dumps(summary))
    if result.frames == 0:
        _remove_if_empty(made_masks)  # the run made them, and nothing went into them
    if no_window and save_bkg and result.backgrounds and not result.bkg_saved:
        # In a window the session goes on (and says so on screen); headless, a lost background is
        # a failure the exit status must show (it was exit 0, the reason in a JSON line alone).
        raise HumansegError(f"{result.bkg_not_saved}; the background was not saved", exit_code=1)
    if result.frames == 0 and no_window and save_bkg and result.bkg_saved and not output and masks is None:
        return  # the background was all that was asked to be kept, and it was
    if result.frames == 0 and (output or no_window):  # with a window: q quits early
        why = "no frame was segmented"
        if no_window and bkg is None and result.backgrounds == 0:  # a short clip, or a folder of a few images
            # (--bkg is no way out for a run whose background is the thing to keep: --save-bkg)
            way = "a shorter --countdown or --bkg-seconds" if save_bkg else "pass --bkg, or a shorter --countdown"
            why = (f"--source {source} ended before a background was captured (the --countdown, then "
                   f"--bkg-seconds of frames); {way}")
        if output or masks is not None:
            what = f"--output {output}" if output else f"--save-masks {masks}"
            raise HumansegError(f"{what}: nothing written: {why}", exit_code=1)
        raise HumansegError(f"nothing segmented: {why}", exit_code=1)


def _masks_in(folder: Path) -> dict[Path, os.stat_result]:
    """The K_mask.png files in folder (the names --save-masks writes), with what they were."""
    if not folder.is_dir():
        return {}
    return {p: p.stat() for p in folder.iterdir() if store.MASK_RE.match(p.name) and p.is_file()}


def _drop_earlier_masks(folder: Path, earlier: dict[Path, os.stat_result]) -> None:
    """--force: once this run has written a mask, the earlier run's masks it did not replace go too
    (masks named after frames K of another numbering would stay beside the new ones). Nothing goes
    before then (a run that fails or is stopped before its first mask keeps them all), and never a
    file of another name."""
    def unchanged(path: Path) -> bool:
        was = earlier.get(path)
        try:
            now = path.stat()
        except OSError:
            return False
        return was is not None and (now.st_ino, now.st_mtime_ns, now.st_size) == (
            was.st_ino, was.st_mtime_ns, was.st_size)

    if all(unchanged(p) for p in _masks_in(folder)):
        return  # no mask of this run's
    for path in earlier:
        if unchanged(path):
            path.unlink(missing_ok=True)


def _missing_folders(folder: Path) -> list[Path]:
    """folder and those of its parents that do not exist yet (mkdir(parents=True) would make them),
    deepest first."""
    missing = []
    for place in (folder, *folder.parents):
        if os.path.lexists(place):
            break
        if place.name not in ("", ".", ".."):  # out/.. is a folder made, or there, under another name
            missing.append(place)
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a run made, deepest first, while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # a mask, or something put there meanwhile: left as it is, with the folders above it


class _Flipped:
    def __init__(self, source):
        self._source = source

    def read(self):
        frame = self._source.read()
        return None if frame is None else cv2.flip(frame, 1)

    def __getattr__(self, name):
        return getattr(self._source, name)
