"""Live mode's "camera moved?" check on the dev frames: a camera nudged after bkg.png, and still ones.

Each labeled frame of every set (its label as the person) is fed 10 times to `live.DriftMonitor`
against its set's background, the camera shifted by each --shifts offset (frame and background cut
to the part both see) or, for the still lines, cut around the middle to 3:4, 9:16, square, 16:9 or
scaled to a quarter. Prints one JSON line per case: the frames told moved, those the grid of
differing pixels alone tells (the check before the room's shift was looked for), those told by
`live.background_mismatch` on the one frame (predict's, training's, evaluate's and the capture
tool's check), and the largest shift found; with --model, the shipped model's mean IoU on the
shifted person frames too. A last line judges every labeled frame against every other set's
background of its size with background_mismatch (another room: each should be told); with --model
also with the model's masks as the person, and the frames against their own background so.
Usage: python benchmarks/moved_camera.py [--images DIR] [--shifts 0,0;8,0;16,0] [--model]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from humanseg import metrics, store  # noqa: E402
from humanseg.errors import HumansegError  # noqa: E402
from humanseg.live import DriftMonitor, background_mismatch  # noqa: E402
from humanseg.cli import CONTEXT, Command, Folder, as_a_tool, reports_errors  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "dev"
UPDATES = 10  # the monitor's moved_frames: a run of 10 frames tells it
STILL = {"whole": None, "3:4": 3 / 4, "9:16": 9 / 16, "square": 1.0, "16:9": 16 / 9, "quarter size": "quarter"}


def shifted(frame, bkg, mask, dx: int, dy: int):
    """The camera moved by (dx, dy) after the background: each image cut to the part both see."""
    h, w = frame.shape[:2]

    def cut(img, x, y):
        return np.ascontiguousarray(img[y:y + h - abs(dy), x:x + w - abs(dx)])

    return cut(frame, max(dx, 0), max(dy, 0)), cut(bkg, max(-dx, 0), max(-dy, 0)), cut(mask, max(dx, 0), max(dy, 0))


def still(frame, bkg, mask, cut):
    """The still camera's images cut around the middle to an aspect ratio, or at a quarter size."""
    if cut is None:
        return frame, bkg, mask
    h, w = frame.shape[:2]
    if cut == "quarter":
        size = (w // 4, h // 4)
        return (cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.resize(bkg, size, interpolation=cv2.INTER_AREA),
                cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))
    cw, ch = (round(h * cut), h) if w / h > cut else (w, round(w / cut))
    x, y = (w - cw) // 2, (h - ch) // 2
    return tuple(np.ascontiguousarray(img[y:y + ch, x:x + cw]) for img in (frame, bkg, mask))


def judged(frame, bkg, mask) -> tuple[bool, bool, float]:
    """(told moved, told by the grid alone, the shift found) after a run of frames."""
    both, grid = DriftMonitor(bkg), DriftMonitor(bkg, min_response=np.inf)
    for _ in range(UPDATES):
        state, grid_state = both.update(frame, mask), grid.update(frame, mask)
    return state.moved, grid_state.moved, float(np.hypot(*state.shift))


def parse_shifts(text: str) -> list[tuple[int, int]]:
    try:
        shifts = [tuple(int(v) for v in part.split(",")) for part in text.split(";") if part.strip()]
    except ValueError:
        shifts = []
    if not shifts or any(len(s) != 2 for s in shifts):
        raise HumansegError(f"--shifts {text!r}: give x,y pixel offsets separated by ';', e.g. '0,0;16,0'")
    return shifts


@click.command(help=__doc__.split("\n\n")[0], context_settings=CONTEXT, cls=Command)
@click.option("--images", type=Folder(), default=str(DEV), show_default=True, help="Folder holding the sets.")
@click.option("--shifts", default="0,0;4,0;8,0;12,0;16,0;24,0;0,16;-16,0", show_default=True,
              help="Camera offsets x,y in pixels, separated by ';'.")
@click.option("--model", is_flag=True, help="Also score the shipped model on the shifted person frames (slower).")
@reports_errors
def main(images, shifts, model) -> None:
    offsets = parse_shifts(shifts)
    if not Path(images).is_dir():
        raise HumansegError(f"images folder not found: {images}")
    store.check_root(images)  # a set folder given: said as such (it was "no labeled frames")
    labeled = list(_labeled(Path(images)))
    samples, owners = [s[1:] for s in labeled], [s[0] for s in labeled]
    if not samples:
        raise HumansegError(f"no labeled frames in {images}")
    # Every offset against every set's frame size before anything runs (a later offset refused only
    # when reached, or a smaller set's frame cut to nothing, ended in a traceback).
    for dx, dy in offsets:
        for frame, _, _ in samples:
            h, w = frame.shape[:2]
            if abs(dx) >= w // 2 or abs(dy) >= h // 2:
                raise HumansegError(f"--shifts {dx},{dy}: over half the frame ({w}x{h})")
    segmenter = None
    if model:
        from humanseg.model import load_segmenter

        segmenter = load_segmenter(num_threads=2)
    for dx, dy in offsets:
        cases = [shifted(*s, dx, dy) for s in samples]
        line = _counts(cases, {"name": "moved_camera", "shift": [dx, dy]})
        if segmenter is not None:
            scores = []
            for frame, bkg, mask in cases:
                if mask.any():
                    segmenter.set_background(bkg)
                    scores.append(metrics.iou(segmenter.predict_mask(frame) > 0, mask > 0))
            line["model_miou"], line["model_min_iou"] = round(float(np.mean(scores)), 3), round(float(min(scores)), 3)
        print(json.dumps(line), flush=True)
    for name, cut in STILL.items():
        print(json.dumps(_counts([still(*s, cut) for s in samples], {"name": "moved_camera_still", "cut": name})),
              flush=True)
    print(json.dumps(_other_rooms(samples, owners, segmenter)), flush=True)


def _labeled(root: Path):
    for n in store.list_sets(root):
        info = store.scan_set(root, n)
        bkg = store.read_background(info)
        for k in info.labeled:
            frame = store.read_frame(info, k, bkg.shape)
            yield n, frame, bkg, store.read_mask(info.mask_path(k), frame.shape)


def _counts(cases, line: dict) -> dict:
    results = [judged(*case) for case in cases]
    return dict(line, frames=len(results), told=sum(r[0] for r in results), told_by_grid=sum(r[1] for r in results),
                told_by_one_frame=sum(background_mismatch(*case) for case in cases),
                largest_shift_px=round(max(r[2] for r in results), 1))


def _other_rooms(samples, owners, segmenter) -> dict:
    """Every frame against every other set's background of its size (labels as the person; with a
    segmenter, its masks too, and against the frame's own background)."""
    rooms: dict = {}
    for (_, bkg, _), n in zip(samples, owners, strict=True):
        rooms.setdefault(n, bkg)
    pairs = [(frame, rooms[other], mask) for (frame, _, mask), n in zip(samples, owners, strict=True)
             for other in rooms if other != n and rooms[other].shape == frame.shape]
    line = {"name": "moved_camera_other_rooms", "frames": len(pairs),
            "told_by_one_frame": sum(background_mismatch(*pair) for pair in pairs)}
    if segmenter is not None:

        def told(frame, bkg) -> bool:
            segmenter.set_background(bkg)
            return background_mismatch(frame, bkg, segmenter.predict_mask(frame))

        line["told_with_model_masks"] = sum(told(frame, bkg) for frame, bkg, _ in pairs)
        line["own_frames"] = len(samples)
        line["own_told_with_model_masks"] = sum(told(frame, bkg) for frame, bkg, _ in samples)
    return line


if __name__ == "__main__":
    as_a_tool()
    main()
