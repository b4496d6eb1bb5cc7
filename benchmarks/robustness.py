"""Scores under the conditions that break plain differencing, on the dev sets the model held out.

Each condition changes the frame (or the background) of every held-out labeled frame the way a real
camera would, then scores the model and the absdiff baseline (mIoU, boundary F at 3 px). Prints one
JSON line per condition and method.
Usage: python benchmarks/robustness.py [--weights W] [--sets 3,7] [--threads 2] [--work-width 320]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from humanseg import metrics, store  # noqa: E402
from humanseg.errors import HumansegError  # noqa: E402
from humanseg.evaluate import AbsdiffPredictor, parse_sets  # noqa: E402
from humanseg.model import load_segmenter, read_checkpoint, resolve_weights  # noqa: E402
from humanseg.cli import (  # noqa: E402
    CONTEXT, MAX_THREADS, MAX_WORK_WIDTH, MIN_WORK_WIDTH, Command, Folder, InFile, as_a_tool, reports_errors,
)

DEV = ROOT.parent / "shared" / "data" / "dev"


def _lut(gain, offset):
    return np.clip(np.arange(256) * gain + offset, 0, 255).astype(np.uint8)


def exposure(frame, bkg, mask):
    """Auto-exposure brightened the frame: x1.3 + 10 grey levels."""
    return cv2.LUT(frame, _lut(1.3, 10)), bkg, mask


def white_balance(frame, bkg, mask):
    """White balance moved: blue x0.85, red x1.15."""
    b, g, r = cv2.split(frame)
    return cv2.merge([cv2.LUT(b, _lut(0.85, 0)), g, cv2.LUT(r, _lut(1.15, 0))]), bkg, mask


def camera_nudge(frame, bkg, mask):
    """The camera was touched after the background: the background shifted 3 px and turned 0.5 degrees."""
    h, w = bkg.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.5, 1.0)
    m[:, 2] += (3, 2)
    return frame, cv2.warpAffine(bkg, m, (w, h), borderMode=cv2.BORDER_REPLICATE), mask


def cheap_camera(frame, bkg, mask, factor=2):
    """A lower-resolution camera with JPEG: both images at 1/factor size, JPEG quality 40."""
    def degrade(img):
        small = cv2.resize(img, (img.shape[1] // factor, img.shape[0] // factor), interpolation=cv2.INTER_AREA)
        return cv2.imdecode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_COLOR)

    small_mask = cv2.resize(mask, (mask.shape[1] // factor, mask.shape[0] // factor),
                            interpolation=cv2.INTER_NEAREST)
    return degrade(frame), degrade(bkg), small_mask


def far_person(frame, bkg, mask):
    """A wider view / a person further away: both images at half size in the middle of the frame,
    the room around them continued from the background (mirrored, the same in frame and
    background); the person has a quarter of the area."""
    h, w = frame.shape[:2]
    top, left, sh, sw = h // 4, w // 4, h // 2, w // 2

    def half(img, interp):
        return cv2.resize(img, (sw, sh), interpolation=interp)

    room = cv2.copyMakeBorder(half(bkg, cv2.INTER_AREA), top, h - sh - top, left, w - sw - left,
                              cv2.BORDER_REFLECT)
    far = room.copy()
    far[top:top + sh, left:left + sw] = half(frame, cv2.INTER_AREA)
    far_mask = np.zeros_like(mask)
    far_mask[top:top + sh, left:left + sw] = half(mask, cv2.INTER_NEAREST)
    return far, room, far_mask


def closer_window(mask, zoom=2.0):
    """(top, left, height, width) of `closer`'s crop for a frame whose person is mask."""
    h, w = mask.shape[:2]
    ch, cw = int(h / zoom), int(w / zoom)
    ys, xs = np.nonzero(mask)
    top, cx = ((h - ch) // 2, w // 2) if ys.size == 0 else (ys.min() - ch // 10, (xs.min() + xs.max()) // 2)
    return int(np.clip(top, 0, h - ch)), int(np.clip(cx - cw // 2, 0, w - cw)), ch, cw


def scaled_up(img, window, interpolation=cv2.INTER_CUBIC):
    """The crop window (`closer_window`) of img scaled up to img's size."""
    top, left, ch, cw = window
    return cv2.resize(img[top:top + ch, left:left + cw], img.shape[1::-1], interpolation=interpolation)


def closer(frame, bkg, mask, zoom=2.0):
    """A person nearer the camera (the upper body filling the frame, as at a desk): a crop 1/zoom of
    the frame's width and height, from just above the person's head and centred on them, scaled up
    to the frame's size, from frame and background alike (a frame without a person: its middle)."""
    window = closer_window(mask, zoom)
    return scaled_up(frame, window), scaled_up(bkg, window), scaled_up(mask, window, cv2.INTER_NEAREST)


def noise(frame, bkg, mask):
    """Sensor noise (sigma 6 grey levels) on the frame."""
    rng = np.random.default_rng(0)
    return np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8), bkg, mask


CONDITIONS = {"as captured": lambda f, b, m: (f, b, m), "exposure": exposure, "white balance": white_balance,
              "camera nudge": camera_nudge, "half size + JPEG": cheap_camera,
              "quarter size + JPEG": lambda f, b, m: cheap_camera(f, b, m, 4), "person further away": far_person,
              "person closer": closer, "sensor noise": noise}


def score(predictor, samples, condition) -> dict:
    rows = []
    for frame, bkg, mask in samples:
        f, b, m = condition(frame, bkg, mask)
        predictor.set_background(b)
        rows.append(metrics.frame_scores(predictor.predict_mask(f), m))
    return metrics.mean_scores(rows)


def held_out_samples(root: Path, sets: list[int]):
    out = []
    for n in sets:
        info = store.scan_set(root, n)
        bkg = store.read_background(info)
        for k in info.labeled:
            frame = store.read_frame(info, k, bkg.shape)
            out.append((frame, bkg, store.read_mask(info.mask_path(k), frame.shape)))
    return out


@click.command(help=__doc__.split("\n\n")[0], context_settings=CONTEXT, cls=Command)
@click.option("--weights", type=InFile(), help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--images", type=Folder(), default=str(DEV), show_default=True, help="Folder holding the sets.")
@click.option("--sets", help="Sets to score, e.g. 3,7 (default: the sets the checkpoint held out).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=2, show_default=True,
              help="Threads for the model.")
@click.option("--work-width", type=click.IntRange(MIN_WORK_WIDTH, MAX_WORK_WIDTH),
              help="Network working width (default: the checkpoint's).")
@reports_errors
def main(**options) -> None:
    args = SimpleNamespace(**options)  # the options by name
    if not Path(args.images).is_dir():
        raise HumansegError(f"images folder not found: {args.images}")
    sets = args.sets
    if sets is None:
        held_out = (read_checkpoint(resolve_weights(args.weights)).get("extra") or {}).get("val_sets")
        try:
            numbers = parse_sets(str(held_out)) if held_out else None
        except HumansegError:  # a fraction such as 0.2: which sets it held out depends on the data
            numbers = None
        if not numbers:
            raise HumansegError(f"the checkpoint names no held-out sets (its --val-sets: {held_out}): give --sets, "
                                f"e.g. --sets 3,7")
        sets = str(held_out)
    else:
        if not sets.replace(",", "").strip():  # (evaluate's words said "for every labeled set")
            raise HumansegError("--sets is empty: give set numbers like 3,7, or leave it out for the sets the "
                                "checkpoint held out")
        numbers = parse_sets(sets)
    samples = held_out_samples(Path(args.images), numbers)
    if not samples:
        raise HumansegError(f"no labeled frames in sets {sets} of {args.images}")
    model = load_segmenter(args.weights, work_width=args.work_width, num_threads=args.threads)
    predictors = {"model": model, "absdiff": AbsdiffPredictor()}
    for name, condition in CONDITIONS.items():
        for method, predictor in predictors.items():
            s = score(predictor, samples, condition)
            print(json.dumps({"name": "robustness", "condition": name, "method": method, "sets": sets,
                              "frames": len(samples), "iou": round(s["iou"], 4),
                              "boundary_f": round(s["boundary_f"], 4)}), flush=True)


if __name__ == "__main__":
    as_a_tool()
    main()
