"""Inference on BGR uint8 frames of any size against a background whose features are cached."""

from __future__ import annotations

import copy
import math
import os
import threading

import cv2
import numpy as np
import torch

from humanseg import store
from humanseg.cli import MAX_THREADS, MAX_WORK_WIDTH, MIN_WORK_WIDTH
from humanseg.errors import HumansegError
from humanseg.model.checkpoint import load_model, resolve_weights
from humanseg.model.network import (BkgCache, MergedRefine, SiameseSegNet, exposure_sample, fuse_batchnorm,
                                    normalising_lut, numpy_exposure_fit)
from humanseg.model.postprocess import above, clean_logits
from humanseg.ort_session import session_from_module


class _CachedForward(torch.nn.Module):
    """forward_normed with the background cache spelled out as tensors (what an ONNX graph takes):
    the frame comes in padded, exposure-fitted and normalised (done in numpy, `OrtRunner.run_bgr`)."""

    def __init__(self, model: SiameseSegNet, n_feats: int):
        super().__init__()
        self.model, self.n_feats = model, n_feats
        self.refine = MergedRefine(model.refine)  # the same function in one convolution

    def forward(self, normed_frame, bkg, normed, refine_term, *rest):
        feats, bterms = list(rest[:self.n_feats]), list(rest[self.n_feats:])
        return self.model.forward_normed(normed_frame, BkgCache(bkg, normed, feats, bterms, refine_term), self.refine)


class OrtRunner:
    """The per-frame half of the network (frame + cached background tensors -> logits) in ONNX Runtime.

    On CPU it runs these small depthwise convolutions about twice as fast as eager PyTorch. Exported
    once per model with dynamic height and width; frames are given already padded to the stride.
    """

    def __init__(self, model: SiameseSegNet, cache: BkgCache, threads: int, graph_cache: bool = True):
        n_feats = len(cache.feats)
        names = ["normed_frame", "bkg", "normed", "refine_term"] + [f"feat{i}" for i in range(n_feats)] + \
                [f"bterm{i}" for i in range(len(cache.bterms))]
        axes = {n: {2: f"h{n}", 3: f"w{n}"} for n in names}
        axes["logits"] = {2: "h", 3: "w"}
        self.session = session_from_module(_CachedForward(model, n_feats).eval(),
                                           (cache.normed, *self._tensors(cache)), names, ["logits"], axes, threads,
                                           cache=graph_cache)
        self.inputs = [i.name for i in self.session.get_inputs()]  # unused ones are pruned away
        self.names = names
        self.iters = model.config.exposure_iters
        self.feed: dict[str, np.ndarray] = {}
        self.bkg_sample = np.zeros((3, 0))
        self.frame_buf = np.zeros((1, 3, 0, 0), np.float32)
        self.last_fit: tuple[np.ndarray, np.ndarray] | None = None  # the last frame's exposure gain and offset

    @staticmethod
    def _tensors(cache: BkgCache) -> list[torch.Tensor]:
        return [cache.bkg, cache.normed, cache.refine_term, *cache.feats, *cache.bterms]

    def set_background(self, cache: BkgCache) -> None:
        arrays = [t.detach().contiguous().float().numpy() for t in self._tensors(cache)]
        self.feed = {n: a for n, a in zip(self.names[1:], arrays) if n in self.inputs}
        self.bkg_sample = exposure_sample(cache.bkg)

    def run_bgr(self, img: np.ndarray, stride: int) -> np.ndarray:
        """HxWx3 uint8 BGR at working size -> logits HxW.

        Prepared with numpy and OpenCV alone: a torch op here would wake PyTorch's OpenMP threads,
        whose spinning then competes with ONNX Runtime's own threads for the same cores. The
        exposure fit runs here, not in the graph (as a few dozen tiny graph nodes it cost about a
        millisecond), and its gain and offset, the clamp and the normalisation are applied in one
        lookup per channel, straight into the graph's planar input.
        """
        h, w = img.shape[:2]
        img = padded(img, stride)
        if self.frame_buf.shape[2:] != img.shape[:2]:
            self.frame_buf = np.empty((1, 3, *img.shape[:2]), np.float32)
        gain, offset = self.last_fit = numpy_exposure_fit(img, self.bkg_sample, self.iters)
        for c, (plane, lut) in enumerate(zip(cv2.split(img), normalising_lut(gain, offset))):
            cv2.LUT(plane, lut, dst=self.frame_buf[0, c])
        feed = dict(self.feed, normed_frame=self.frame_buf)
        return self.session.run(None, feed)[0][0, 0, :h, :w]


def padded(img: np.ndarray, stride: int) -> np.ndarray:
    """img with its bottom and right edges replicated to a multiple of stride, as the network pads."""
    h, w = img.shape[:2]
    ph, pw = (-h) % stride, (-w) % stride
    return cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE) if ph or pw else img


def working_size(width: int, height: int, work_width: int) -> tuple[int, int]:
    """The (w, h) the network runs at, aspect kept: the frame scaled to fit a work_width x 3/4
    work_width box (320x240), up or down. A 4:3 or wider frame is work_width wide, a 160x120 one
    upscaled (its person is then the size the network learned); a portrait or square frame is 3/4
    work_width tall, as a 4:3 frame is: at work_width wide its person was up to 2.4 times the size
    learned (480x640 frames scored mIoU 0.974 against 0.980 fitted), and a tall, narrow strip is not
    blown up to thousands of rows."""
    scale = min(work_width / width, work_width * 3 / 4 / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


# A person shorter than ZOOM_BELOW x the work width at the working scale (144 of a 320x240 frame's 240
# rows) is segmented again from a crop around them scaled so they are ZOOM_TO x the work width tall (200
# px, the middle of the dev frames' people), at most ZOOM_MAX x the frame's own pixels, when that is at
# least ZOOM_GAIN x the working scale. The crop's area is held to ZOOM_AREA x the working frame's.
ZOOM_BELOW, ZOOM_TO, ZOOM_MAX, ZOOM_GAIN, ZOOM_AREA = 0.45, 0.625, 2.0, 1.15, 1.0
ZOOM_GRID = 16  # crop edges on this grid of frame pixels, so a person standing still keeps one crop
ZOOM_GROW = 2  # crops made again around what a crop found reaching its edges (`_zoom_in`)
TRACK_EVERY = 4  # with `track` (live mode), a far person's crop alone is segmented in up to 3 frames of 4


# A frame with no picture in it (a covered lens, the lights out: every channel's standard deviation
# under BLANK_STD grey levels at an eighth of the working size, where a camera's noise averages out; the
# dev frames and rooms: 38 and up; the dev backgrounds darkened to 3%: 1.6-2.3) shows nobody: the
# network, given a flat frame against a room (the exposure fit can only map it to the room's mean),
# called up to 79% of it person. Its logits are BLANK_LOGIT everywhere.
BLANK_STD, BLANK_LOGIT = 2.5, -20.0


def blank(img: np.ndarray) -> bool:
    """Whether img (BGR uint8, at the working size) holds no picture (BLANK_STD)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    return float(cv2.meanStdDev(small)[1].max()) < BLANK_STD


# `changed_regions`: what differs from the exposure-fitted background within SEEK_SHIFT working pixels
# around it by more than SEEK_DIFF grey levels (where no channel of the frame is within SEEK_CLIPPED of
# 255), in a blob at least SEEK_MIN_HEIGHT working pixels tall.
# Looked for in frames not scaled up for the network (SEEK_SCALE: the working width over the frame's at most).
SEEK_DIFF, SEEK_MIN_HEIGHT, SEEK_CLIPPED, SEEK_SHIFT, SEEK_KEEP, SEEK_SCALE = 32, 8, 5, 1, 0.6, 1.0
# A stream remembers the blobs a look found nobody in (SEEK_REMEMBER at most) for SEEK_FORGET of its
# `changed_regions` calls (one in four frames at most: about a second at 30 FPS); a blob whose box
# overlaps a remembered one by SEEK_SAME of their union is that one.
SEEK_REMEMBER, SEEK_FORGET, SEEK_SAME = 8, 8, 0.7


def same_box(a: tuple, b: tuple) -> bool:
    """Whether boxes a and b (x, y, w, h) overlap by SEEK_SAME of their union or more."""
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, iw) * max(0, ih)
    return inter >= SEEK_SAME * (a[2] * a[3] + b[2] * b[3] - inter)


# What the closer look finds is kept only where the network is sure of it: a mean logit of SEEK_SURE over
# it (the far people it found: 6.4 and up; what it called person on moved objects, a curtain: 4.1 at most).
SEEK_SURE = 5.0


def sure_of(z: np.ndarray, found: np.ndarray) -> bool:
    """Whether logits z are SEEK_SURE or more on average where found (uint8 mask) is set."""
    return cv2.mean(z, mask=found)[0] >= SEEK_SURE


def unclipped(img: np.ndarray) -> np.ndarray:
    """uint8 255 where no channel of img (BGR uint8) is within SEEK_CLIPPED of 255: where a difference
    from the background can count (a brighter exposure turns a window white: no gain fits it)."""
    return cv2.inRange(img, (0, 0, 0), (255 - SEEK_CLIPPED,) * 3)


def changed_regions(img: np.ndarray, bkg: np.ndarray, tallest: float,
                    most: int = 3) -> list[tuple[int, int, int, int]]:
    """The boxes (x, y, w, h) of the `most` largest blobs where the frame img differs from the background bkg
    (both BGR uint8 at the working size; the background shifted as the room is, should the camera have
    been nudged) by more than SEEK_DIFF after a per-channel gain and offset fit (auto-exposure), when
    they are SEEK_MIN_HEIGHT px tall, shorter than tallest and cut by no edge of the frame, largest first.
    Where the network's first pass finds nobody, this is where a person too small for it to see may
    stand (a 1080p camera's person 27 px tall at 320x180 was missed altogether); the crop's closer
    look (`Segmenter._zoom_in`) then decides. OpenCV throughout: about 3 ms at 320x240."""
    if min(img.shape[:2]) < 2 * SEEK_MIN_HEIGHT:  # (a strip of a frame: no room for anyone)
        return []
    diff = None
    keep = None
    near = np.ones((2 * SEEK_SHIFT + 1,) * 2, np.uint8)
    # A camera nudged since the background was taken: the room's shift found and undone first.
    grey = [cv2.cvtColor(i, cv2.COLOR_BGR2GRAY).astype(np.float32) for i in (img, bkg)]
    (dx, dy), _ = cv2.phaseCorrelate(grey[1], grey[0], cv2.createHanningWindow(grey[0].shape[::-1], cv2.CV_32F))
    if abs(dx) >= 0.5 or abs(dy) >= 0.5:
        bkg = cv2.warpAffine(bkg, np.float32([[1, 0, dx], [0, 1, dy]]), bkg.shape[1::-1],
                             borderMode=cv2.BORDER_REPLICATE)
    bkg_planes = cv2.split(bkg)
    # What a pixel may be and still count as background: anything from the darkest to the brightest of
    # the background around it (a camera nudged by a pixel or two moves every edge of the room).
    lows, highs = [cv2.erode(b, near) for b in bkg_planes], [cv2.dilate(b, near) for b in bkg_planes]
    for _ in range(2):  # fit, then again without the pixels that fitted worst (the person's)
        planes = []
        for f, b, low, high in zip(cv2.split(img), bkg_planes, lows, highs):
            fm, fs = cv2.meanStdDev(f, mask=keep)
            bm, bs = cv2.meanStdDev(b, mask=keep)
            gain = float(np.clip(bs[0, 0] / max(fs[0, 0], 1.0), 0.5, 2.0))  # the spreads matched
            fitted = cv2.convertScaleAbs(f, alpha=gain, beta=float(bm[0, 0] - gain * fm[0, 0]))
            planes.append(cv2.max(cv2.subtract(fitted, high), cv2.subtract(low, fitted)))  # (saturating)
        diff = cv2.max(cv2.max(planes[0], planes[1]), planes[2])
        keep = cv2.compare(diff, SEEK_DIFF, cv2.CMP_LE)
    changed = cv2.compare(diff, SEEK_DIFF, cv2.CMP_GT)
    changed &= unclipped(img)
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # sensor noise
    changed = cv2.dilate(changed, np.ones((5, 5), np.uint8))  # a person's pieces (clothes like the wall)
    _, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    x, y, w, h, area = stats[1:].T
    # Not what an edge of the frame cuts: at the top or bottom (as for `_small_person`) a ceiling light or
    # the floor, at any edge the strip a nudged camera brought into view.
    H, W = img.shape[:2]
    fits = (x > 0) & (y > 0) & (x + w < W) & (y + h < H) & (h >= SEEK_MIN_HEIGHT) & (h < tallest)
    order = [i for i in np.argsort(-area, kind="stable") if fits[i]][:most]
    return [(int(x[i]), int(y[i]), int(w[i]), int(h[i])) for i in order]


# A person near the camera (the upper body filling the frame) is larger than the people the network
# learned, and its first pass calls broad, plain stretches of their clothes background. Where a piece of
# the frame that differs from the background by more than NEAR_DIFF grey levels (after the exposure fit),
# at least NEAR_PIECE of the frame after an opening, was left out by the first pass and has
# NEAR_ENCLOSED of its rim on the person or the frame's edge (looked for at half the working size), the
# frame is segmented again at NEAR_SCALE of the work width, and what that pass calls person beyond the
# first, in pieces at least NEAR_ADD of the frame after an opening with a 5 px disc, is added.
NEAR_DIFF, NEAR_PIECE, NEAR_ENCLOSED, NEAR_SCALE, NEAR_ADD = 32, 0.005, 0.5, 0.5, 0.01
# In a stream (`Segmenter.track`) the coarser pass itself is the check: it runs in every NEAR_PROBE-th frame
# in which someone is found, and in every frame after one to which it added something.
NEAR_PROBE = 8


def _pieces(mask: np.ndarray, disc: int, least: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """mask (uint8 0/255) opened with a disc px wide; its components' labels and stats, and the numbers
    of those at least `least` of the mask's pixels."""
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (disc, disc)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return labels, stats, (np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= least * mask.size) + 1).tolist()


def left_out_inside(img: np.ndarray, bkg_planes: list[np.ndarray], gain: np.ndarray, offset: np.ndarray,
                    person: np.ndarray) -> bool:
    """Whether the first pass (person: uint8 mask, 255 person) left out a changed piece of the frame that
    the person encloses: img BGR uint8 and bkg_planes the background's B, G and R planes, all at one
    size (half the working size), gain and offset the exposure fit's (`numpy_exposure_fit`: frame
    0..1 -> background 0..1, per channel). A near person's sweater called background is such a piece
    (the person around it on three sides, the frame's bottom edge on the fourth); a shadow or a moved
    object beside a person is not (the wall around most of it). About 0.2 ms at 160x120."""
    v = np.arange(256, dtype=np.float32)
    diff = None
    for plane, b, g, o in zip(cv2.split(img), bkg_planes, gain, offset):
        d = cv2.absdiff(cv2.LUT(plane, np.clip(np.rint(v * g + o * 255), 0, 255).astype(np.uint8)), b)
        diff = d if diff is None else cv2.max(diff, d)
    left_out = cv2.bitwise_and(cv2.compare(diff, NEAR_DIFF, cv2.CMP_GT), cv2.bitwise_not(person))
    left_out = cv2.bitwise_and(left_out, unclipped(img))
    labels, stats, big = _pieces(left_out, 3, NEAR_PIECE)
    if not big:
        return False
    around = cv2.copyMakeBorder(person, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=255)  # the edge counts
    for i in big:
        x, y, w, h = stats[i, :4]
        piece = cv2.copyMakeBorder(cv2.compare(labels[y:y + h, x:x + w], i, cv2.CMP_EQ), 1, 1, 1, 1,
                                   cv2.BORDER_CONSTANT, value=0)
        ring = cv2.subtract(cv2.dilate(piece, np.ones((3, 3), np.uint8)), piece)  # around it, padded frame's
        on = cv2.countNonZero(cv2.bitwise_and(ring, around[y:y + h + 2, x:x + w + 2]))
        if on >= NEAR_ENCLOSED * cv2.countNonZero(ring):
            return True
    return False


def check_settings(work_width: int | None, threads: int | None, threads_name: str = "num_threads") -> None:
    """Refuse a work width or thread count out of range in one line (a work width of 7 gave empty
    masks without a word; -1 threads a traceback from deep in torch). None: the default."""
    if work_width is not None and not (type(work_width) is int and MIN_WORK_WIDTH <= work_width <= MAX_WORK_WIDTH):
        raise HumansegError(f"work_width must be a whole number from {MIN_WORK_WIDTH} to {MAX_WORK_WIDTH}, "
                            f"not {work_width!r}")
    if threads is not None and not (type(threads) is int and 1 <= threads <= MAX_THREADS):
        raise HumansegError(f"{threads_name} must be a whole number from 1 to {MAX_THREADS}, not {threads!r}")


class Segmenter:
    """set_background(bkg) once, then predict(frame) -> person probability HxW float32 in [0, 1]."""

    def __init__(self, model: SiameseSegNet, work_width: int = 320, device: str = "cpu",
                 backend: str = "auto", threads: int | None = None, clean: bool = True,
                 zoom: bool | None = None, graph_cache: bool = True):
        """backend: "torch", "onnxruntime", or "auto" (ONNX Runtime on CPU when it is installed and
        the export works; PyTorch otherwise). clean: drop specks and close pinholes in the network's
        output (`postprocess.clean_logits`); False gives the network's raw answer. zoom (default: as
        clean): segment a small, far person again from a crop at a finer scale (`_zoom_in`). graph_cache:
        keep the exported ONNX graph in the cache folder for the next start (`ort_session`)."""
        if backend not in ("auto", "torch", "onnxruntime"):
            raise HumansegError(f"unknown backend {backend!r} (auto, torch, onnxruntime)")
        check_settings(work_width, threads, "threads")
        self.device = torch.device(device)
        self.backend = backend if self.device.type == "cpu" else "torch"
        self.threads = threads or torch.get_num_threads()
        self._ort: OrtRunner | None = None
        model = copy.deepcopy(model).eval()
        if self.device.type == "cpu":
            # Folded batch norm and channels-last memory are both markedly faster on CPU.
            model = fuse_batchnorm(model).to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.work_width = 320 if work_width is None else work_width
        self.graph_cache = graph_cache
        # One call at a time: the ONNX Runtime path feeds every frame through one buffer, and the second
        # passes keep state between frames; two threads sharing a segmenter got each other's masks.
        self._lock = threading.RLock()
        self.exact = False  # True: frames are segmented at the size given (the zoom crops' segmenter)
        self.clean = bool(clean)
        self.zoom = self.clean if zoom is None else bool(zoom)
        self.cache = None
        self.bkg_shape: tuple[int, int] | None = None
        self.bkg_image: np.ndarray | None = None
        self._zoomed: Segmenter | None = None  # the crop's segmenter: shares the model and its session
        self._zoom_key: tuple | None = None  # the crop and size its background features were computed for
        self._zoom_grown = False  # whether that crop was made again around what a smaller one found (`_zoom_in`)
        self.track = False  # a stream of frames (live mode): follow a far person in their crop (`logits`)
        self.seek = True  # where the first pass finds nobody, zoom in on what differs from the background
        self.near = True  # a coarser pass where the first leaves part of a near person out (`_near_due`)
        self._near_seg: Segmenter | None = None  # that pass's segmenter (the model's, its own background)
        self._near_ready = False  # whether it holds this background's features
        self._near_on = False  # a stream whose last coarser pass added something: one in every frame
        self._near_wait = 0  # a stream's frames with someone in them left before the next coarser pass
        self._bkg_half: list[np.ndarray] = []  # the background's planes at half the working size, for the check
        self._bkg_small: np.ndarray | None = None
        self._seek_rest = 0  # frames of a stream left before the next `changed_regions` look
        self._seek_empty: list = []  # a stream's changed blobs a look found nobody in, with when (`_look_at`)
        self._seek_calls = 0  # a stream's `changed_regions` calls so far: the clock of `_seek_empty`
        self._outside: np.ndarray | None = None  # the last full pass's logits, while following one
        self._tracked = 0  # frames since that full pass
        if self.backend != "torch":
            # Export now (a second or two), not at the first background: a live view then starts at once.
            with torch.inference_mode():
                probe = torch.zeros(1, 3, 2 * model.stride, 2 * model.stride)
                self.cache = self.model.encode_background(probe.contiguous(memory_format=torch.channels_last))
            self._start_ort()
            self.cache = None

    def _resized(self, img: np.ndarray) -> np.ndarray:
        if self.exact:  # a far person's crop, already at the scale it is to be segmented at
            return img
        h, w = img.shape[:2]
        size = working_size(w, h, self.work_width)
        if (w, h) != size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
        return img

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        img = self._resized(img)  # (a no-op for one at its working size already)
        # (a read-only array, from np.frombuffer say, made torch warn the caller)
        t = torch.from_numpy(np.require(img, requirements=["C", "W"])).to(self.device)
        t = t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        return t.contiguous(memory_format=torch.channels_last)

    def set_background(self, bkg: np.ndarray) -> None:
        """Compute and keep the background's features (bkg: HxWx3 BGR uint8)."""
        with self._lock:
            self._set_background(bkg)

    def _set_background(self, bkg: np.ndarray) -> None:
        store.check_bgr(bkg, "background")
        with torch.inference_mode():
            self.cache = self.model.encode_background(self._tensor(bkg))
        self.bkg_shape = bkg.shape[:2]
        self.bkg_image = bkg.copy()  # for the far person's crops (`zoom` may be turned on later)
        self._bkg_small = self._resized(self.bkg_image)  # for `changed_regions`
        self._zoom_key, self._outside, self._tracked, self._seek_rest = None, None, 0, 0
        self._zoom_grown, self._seek_empty, self._seek_calls = False, [], 0
        self._near_ready, self._bkg_half, self._near_on, self._near_wait = False, [], False, 0
        if self.backend != "torch":
            self._start_ort()

    def _start_ort(self) -> None:
        try:
            if self._ort is None:
                self._ort = OrtRunner(self.model, self.cache, self.threads, self.graph_cache)
            self._ort.set_background(self.cache)
        except Exception as exc:  # an optional speed-up: fall back to PyTorch unless it was asked for
            if self.backend == "onnxruntime":
                raise HumansegError(f"ONNX Runtime backend unavailable: {str(exc).splitlines()[0][:200]}") from None
            self.backend, self._ort = "torch", None

    @property
    def active_backend(self) -> str:
        return "onnxruntime" if self._ort is not None else "torch"

    def logits(self, frame: np.ndarray) -> np.ndarray:
        """Person logits at the frame's full size, float32 HxW.

        With `track` (frames of one stream), a far person given a second pass is followed: in the
        next frames (up to TRACK_EVERY - 1) only their crop is segmented, the rest of the frame keeping
        the last full pass's logits, as long as what the crop calls person stays 16 px inside it and
        small; then, or when it does not, the whole frame again. A second person walking in elsewhere
        is seen at the next full pass, at most three frames later. Where the first pass leaves out a
        changed piece of the frame that the person it found encloses (someone near the camera, a
        stretch of their clothes called background), a pass at half the working width fills it in
        (`_near_pass`; in a stream that pass is its own check, `_near_due`). Threads sharing one
        segmenter take turns."""
        with self._lock:
            return self._logits(frame)

    def _logits(self, frame: np.ndarray) -> np.ndarray:
        if self.cache is None:
            raise HumansegError("no background set")
        store.check_bgr(frame, "frame")
        if frame.shape[:2] != self.bkg_shape:
            raise HumansegError(
                f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the background's "
                f"{self.bkg_shape[1]}x{self.bkg_shape[0]}")
        img = self._resized(frame)
        if self.clean and not self.exact and blank(img):  # (not in a far person's crop: a dark corner)
            self._outside, self._tracked = None, 0
            return np.full(frame.shape[:2], BLANK_LOGIT, np.float32)
        if self.track and self._outside is not None and self._tracked < TRACK_EVERY - 1:
            followed = self._follow(frame)
            if followed is not None:
                self._tracked += 1
                return followed
        self._outside, self._tracked = None, 0
        if self._ort is not None:
            small = self._ort.run_bgr(img, self.model.stride)
        else:
            with torch.inference_mode():
                out = self.model.forward_cached(self._tensor(img), self.cache)
            small = out[0, 0].float().cpu().numpy()
        if self.clean:
            small = clean_logits(small)
        box, small_shape = (self._small_person(small) if self.zoom else None), small.shape
        sought: list = []
        if box is None and self.zoom and not self.exact:  # nobody far: someone too large, or too small?
            if small.max() > 0:
                if self.near and self._near_due(img, small):  # someone near the camera, partly left out?
                    small = self._near_pass(img, small)
            # Nobody found, in a frame not scaled up (a 160x120 one is: its crops could not be finer).
            elif self.seek and small.shape[1] <= SEEK_SCALE * frame.shape[1]:
                sought = self._to_look_at(img)
        h, w = frame.shape[:2]
        if small.shape != (h, w):
            small = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if sought:
            return self._look_at(frame, small, sought, small_shape)
        if box is not None:
            zoomed = self._zoom_in(frame, small, box, small_shape)
            if self.track and zoomed is not small:
                self._outside = small
            small = zoomed
        return small

    def _to_look_at(self, img: np.ndarray) -> list:
        """The changed blobs (`changed_regions`) of img (at the working size, nobody found in it) where
        someone too small for the first pass may stand. In a stream, none for three frames after a look
        that found nobody or nothing new, and none a look found nobody in within the last SEEK_FORGET
        looks, while it stays where and as large as it was."""
        if self._seek_rest:
            self._seek_rest -= 1
            return []
        sought = changed_regions(img, self._bkg_small, ZOOM_BELOW * self.work_width)
        if self.track:
            self._seek_calls += 1
            self._seek_empty = [(e, t) for e, t in self._seek_empty if self._seek_calls - t <= SEEK_FORGET]
            sought = [b for b in sought if not any(same_box(b, e) for e, _ in self._seek_empty)]
            if not sought:  # nothing changed, or nothing new: the next look in four frames
                self._seek_rest = TRACK_EVERY - 1
        return sought

    def _fit(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exposure fit's gain and offset for img (at the working size): ONNX Runtime's, made for
        the pass just run, or the same fit made here."""
        if self._ort is not None and self._ort.last_fit is not None:
            return self._ort.last_fit
        return numpy_exposure_fit(padded(img, self.model.stride), exposure_sample(self.cache.bkg),
                                  self.model.config.exposure_iters)

    def _left_out(self, img: np.ndarray, z: np.ndarray) -> bool:
        """`left_out_inside` for img (at the working size) and its first pass's logits z, at half the size."""
        half = (max(1, img.shape[1] // 2), max(1, img.shape[0] // 2))
        if not self._bkg_half:
            self._bkg_half = cv2.split(cv2.resize(self._bkg_small, half, interpolation=cv2.INTER_AREA))
        return left_out_inside(cv2.resize(img, half, interpolation=cv2.INTER_AREA), self._bkg_half, *self._fit(img),
                               cv2.resize(above(z, 0.0), half, interpolation=cv2.INTER_NEAREST))

    def _near_due(self, img: np.ndarray, z: np.ndarray) -> bool:
        """Whether img (someone found in it: logits z) gets the coarser pass: a single frame where
        `left_out_inside` finds a piece of the person left out; in a stream (`track`), every frame while
        the last coarser pass added something, and otherwise every NEAR_PROBE-th frame with someone in
        it, as the check misses clothes or skin the colour of the wall behind (a face filling half the
        frame in front of a shelf of its colour), which the coarser pass sees."""
        if not self.track:
            return self._left_out(img, z)
        if self._near_on or self._near_wait == 0:
            return True
        self._near_wait -= 1
        return False

    def _near_pass(self, img: np.ndarray, z: np.ndarray) -> np.ndarray:
        """z (the working-size logits of img) with what a pass at NEAR_SCALE of the work width calls person
        beyond z put in, in pieces at least NEAR_ADD of the frame (after an opening): its logits there.

        A person near the camera, whose upper body fills the frame, is two or three times the size of
        the people the network learned, and its first pass can leave out a broad stretch of their
        clothes; at half the scale they are the size it knows. The coarser pass's outline is blunter,
        so it only adds thick pieces, and the first pass's outline stays where it has one."""
        sub = self._near_segmenter()
        if not self._near_ready:
            sub.set_background(self._bkg_small)
            self._near_ready = True
        zc = sub.logits(img)
        labels, _, big = _pieces(cv2.bitwise_and(above(zc, 0.0), cv2.bitwise_not(above(z, 0.0))), 5, NEAR_ADD)
        if self.track:
            self._near_on, self._near_wait = bool(big), 0 if big else NEAR_PROBE - 1
        if not big:
            return z
        return np.where(np.isin(labels, big), zc, z)  # (where zc > 0 >= z)

    def _look_at(self, frame: np.ndarray, z: np.ndarray, boxes: list, small_shape) -> np.ndarray:
        """The closer look at each changed blob (largest first) where the first pass found nobody; z
        with the crops' logits in place where someone about the blob's height was found there (a lamp
        switched on, a bag put down, beside a far person: the person's blob is looked at too). In a
        stream, one person so found is followed as any far person; where nobody was, the look waits
        three frames (each took a second network pass), and a blob where nobody was is not looked at
        again for a while (SEEK_FORGET looks) as long as it stays where and as large as it was
        (`_seek_empty`): a moved chair or curtain in an empty room cost a stream a look, three crops'
        passes, every fourth frame."""
        out, found = z, []
        for box in boxes:
            zoomed = self._zoom_in(frame, out, box, small_shape)
            if zoomed is not out and self._found_there(zoomed, box[3] * z.shape[0] / small_shape[0], out):
                out = zoomed
                found.append(self._zoom_key)
            elif self.track:  # nobody there: not looked at again while it stays as it is
                self._seek_empty = [(box, self._seek_calls), *self._seek_empty][:SEEK_REMEMBER]
        if not found:  # (a moved chair, a lighting change)
            self._seek_rest = TRACK_EVERY - 1 if self.track else 0
        elif self.track and found == [self._zoom_key]:  # one, whose crop's features are the ones kept
            self._outside = z
        return out

    @staticmethod
    def _found_there(z: np.ndarray, height: float, before: np.ndarray | None = None) -> bool:
        """Whether the closer look at a changed blob `height` frame rows tall found someone about as
        tall (SEEK_KEEP of it at least) in logits z (where `before`, the logits before that look, had
        nobody): on a moved object the network at the finer scale called a fragment of it person (a
        quarter to a half of its height; a far person's own blob is 0.87 to 1.7 of theirs), and where
        it called more of one person (a moved curtain), it was unsure: a mean logit under SEEK_SURE."""
        found = above(z, 0.0)
        if before is not None:  # (someone an earlier look found, in an overlapping crop, is not this one)
            found = cv2.bitwise_and(found, cv2.bitwise_not(above(before, 0.0)))
        rows = np.flatnonzero(cv2.reduce(found, 1, cv2.REDUCE_MAX))
        return rows.size > 0 and rows[-1] - rows[0] + 1 >= SEEK_KEEP * height and sure_of(z, found)

    def _follow(self, frame: np.ndarray) -> np.ndarray | None:
        """The last crop alone, pasted into the last full pass's logits; None when what it calls
        person has reached one of its edges (other than the frame's own), or is gone, or grew."""
        x0, y0, x1, y1 = self._zoom_key[:4]
        H, W = self._outside.shape
        zc = self._crop_logits(frame, self._zoom_key)
        bx, by, bw, bh = cv2.boundingRect((zc > 0).astype(np.uint8))
        g = ZOOM_GRID
        inside = (bw > 0 and (x0 == 0 or bx >= g) and (y0 == 0 or by >= g) and
                  (x1 == W or bx + bw <= x1 - x0 - g) and (y1 == H or by + bh <= y1 - y0 - g))
        working = working_size(W, H, self.work_width)[0] / W
        if not inside or bh * working >= ZOOM_BELOW * self.work_width:
            return None
        out = self._outside.copy()
        out[y0:y1, x0:x1] = zc
        return out

    def _small_person(self, small: np.ndarray) -> tuple[int, int, int, int] | None:
        """The box (x, y, w, h, working pixels) around what the working-scale logits call person, when
        it is short enough to be worth a second, closer look; None otherwise. A person the frame's top
        or bottom edge cuts off is not taken for a far one: their height in view says nothing of their
        size (a near person in a portrait frame, cut at the waist, was zoomed on as a whole body and
        lost half the torso: mask IoU 0.81 against 0.98)."""
        x, y, w, h = cv2.boundingRect((small > 0).astype(np.uint8))
        if w == 0 or h >= ZOOM_BELOW * self.work_width or y == 0 or y + h >= small.shape[0]:
            return None
        return x, y, w, h

    def _zoom_in(self, frame: np.ndarray, z: np.ndarray, box, small_shape) -> np.ndarray:
        """Segment a small person again from a crop around them at a finer scale; z (frame-size
        logits) with the crop's logits in place of the first pass's there.

        At the working scale a person far from the camera is 60-140 px tall and comes out blunt (the
        gaps between legs and under arms filled); the network learned people about 200 px tall. The
        crop (the person's box and a quarter of its size around it, on a 16-px grid) is scaled so the
        person is that tall. Its background features are computed once per crop; in a stream (`track`)
        the crop is kept while the person stays 16 px inside it at about the same size (a person moving
        a little costs the crop's frame half of the network; a new crop the background half as well).
        Where what the crop calls person reaches one of its edges (not the frame's), the first pass had
        found only part of them (a torso, the head and legs missed at 70 px tall): the crop is made
        again around what it found, grown by half of it past each such edge (ZOOM_GROW times at most)."""
        H, W = z.shape
        sy, sx = H / small_shape[0], W / small_shape[1]
        x, y, w, h = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy  # frame pixels
        scale_now = small_shape[1] / W
        key = self._crop_key(x, y, w, h, W, H, scale_now)
        if key is None:
            return z
        last, g = self._zoom_key, ZOOM_GRID
        if (self.track and last is not None and (abs(math.log2(key[4] / last[4])) <= 0.25 or self._zoom_grown) and
                last[0] <= x - g and last[1] <= y - g and x + w + g <= last[2] and y + h + g <= last[3]):
            # A stream, and the person still well inside the last crop: keep it (and its background's
            # features). Single frames get the crop their own person calls for, whatever came before.
            # A crop made again (below) is larger than what the first pass finds of them calls for.
            key = last
        else:
            self._zoom_grown = False
        zc = self._crop_logits(frame, key)
        for _ in range(ZOOM_GROW):
            x0, y0, x1, y1 = key[:4]
            found = above(zc, 0.0)
            bx, by, bw, bh = cv2.boundingRect(found)
            if not bw or not sure_of(zc, found):  # (nobody, or a changed thing it is unsure of)
                break
            # The edges it reaches: the person goes on past them, by half what was found, say.
            left, top = x0 > 0 and bx == 0, y0 > 0 and by == 0
            right, bottom = x1 < W and bx + bw == x1 - x0, y1 < H and by + bh == y1 - y0
            if not (left or top or right or bottom):
                break
            gx0, gy0 = x0 + bx - 0.5 * bw * left, y0 + by - 0.5 * bh * top
            gx1, gy1 = x0 + bx + bw + 0.5 * bw * right, y0 + by + bh + 0.5 * bh * bottom
            grown = self._crop_key(gx0, gy0, gx1 - gx0, gy1 - gy0, W, H, scale_now)
            if grown is None or grown == key:
                break
            key, zc = grown, self._crop_logits(frame, grown)
            self._zoom_grown = True
        x0, y0, x1, y1 = key[:4]
        out = z.copy()
        out[y0:y1, x0:x1] = zc
        return out

    def _crop_key(self, x: float, y: float, w: float, h: float, W: int, H: int,
                  scale_now: float) -> tuple | None:
        """The crop (x0, y0, x1, y1, scale) of a W x H frame around a person in the box x, y, w, h (frame
        pixels), scaled so they are ZOOM_TO x the work width tall within the limits; None where that
        gains too little on the working scale scale_now."""
        scale = min(ZOOM_TO * self.work_width / h, ZOOM_MAX)
        scale = 2.0 ** (round(4 * math.log2(scale)) / 4)  # in steps, so a still person keeps one size
        margin = 0.25 * max(w, h) + ZOOM_GRID
        g = ZOOM_GRID
        x0, y0 = max(0, int((x - margin) // g) * g), max(0, int((y - margin) // g) * g)
        x1, y1 = min(W, int(-(-(x + w + margin) // g)) * g), min(H, int(-(-(y + h + margin) // g)) * g)
        # The crop's pixels: as many as the frame has at work_width wide (no more than 4/3 of it tall),
        # not its working size's: a portrait frame, fitted by its height, would get 43% of them.
        budget = ZOOM_AREA * self.work_width * min(self.work_width * H / W, self.work_width * 4 / 3)
        if (x1 - x0) * (y1 - y0) * scale * scale > budget:
            scale = math.sqrt(budget / ((x1 - x0) * (y1 - y0)))
        if scale < ZOOM_GAIN * scale_now:
            return None
        return x0, y0, x1, y1, scale

    def _crop_logits(self, frame: np.ndarray, key: tuple) -> np.ndarray:
        """Logits of the crop key = (x0, y0, x1, y1, scale) of the frame, segmented at that scale
        against the same crop of the background, at the crop's size in the frame."""
        x0, y0, x1, y1, scale = key
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        sub = self._zoom_segmenter()
        if self._zoom_key != key:
            sub.set_background(cv2.resize(self.bkg_image[y0:y1, x0:x1], size, interpolation=interpolation))
            self._zoom_key = key
        zc = sub.logits(cv2.resize(frame[y0:y1, x0:x1], size, interpolation=interpolation))
        return cv2.resize(zc, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)

    def _sub_segmenter(self) -> Segmenter:
        """A segmenter with the same model (and ONNX Runtime session) for a background of its own, which
        makes no second passes itself."""
        sub = copy.copy(self)
        sub.zoom, sub.track, sub._zoomed, sub._near_seg, sub.bkg_image = False, False, None, None, None
        if self._ort is not None:
            sub._ort = copy.copy(self._ort)
            sub._ort.frame_buf = np.zeros((1, 3, 0, 0), np.float32)
        return sub

    def _zoom_segmenter(self) -> Segmenter:
        if self._zoomed is None:
            self._zoomed = self._sub_segmenter()
            self._zoomed.exact = True
        return self._zoomed

    def _near_segmenter(self) -> Segmenter:
        if self._near_seg is None:
            self._near_seg = self._sub_segmenter()
            self._near_seg.work_width = max(1, round(self.work_width * NEAR_SCALE))
        return self._near_seg

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Person probability HxW float32 in [0, 1]."""
        z = self.logits(frame)
        return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)

    def predict_mask(self, frame: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Person mask HxW uint8 (255 person, 0 background) where the probability is over threshold."""
        if not 0 < threshold < 1:  # (1.0 divided by zero; 1.5 and nan gave an empty mask in silence)
            raise HumansegError(f"threshold must be between 0 and 1, not those: {threshold}")
        z = self.logits(frame)
        cut = float(np.log(threshold / (1 - threshold)))
        return above(z, cut)


def load_segmenter(weights: str | os.PathLike | None = None, device: str = "cpu",
                   work_width: int | None = None, num_threads: int | None = None,
                   backend: str = "auto", clean: bool = True) -> Segmenter:
    """A Segmenter from a checkpoint (default: $HUMANSEG_WEIGHTS or the shipped model). Settings out of
    range are refused in one line, as the commands' options are (a work width of 7 gave empty masks
    without a word; -1 threads, or cuda on a machine without it, tracebacks from deep in torch)."""
    check_settings(work_width, num_threads)
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HumansegError(f"device {device}: no CUDA device here (torch {torch.__version__}); use cpu")
    if num_threads:
        torch.set_num_threads(num_threads)
    path = resolve_weights(weights)
    model, ckpt = load_model(path)
    return Segmenter(model, work_width or ckpt.get("work_width", 320), device, backend, num_threads, clean)
