"""`python -m humanseg evaluate` (metrics per set and overall) and `predict` (masks for single images)."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
import cv2
import numpy as np
from tqdm import tqdm

from humanseg import metrics, store
from humanseg.cli import (
    MAX_THREADS, MAX_WORK_WIDTH, MIN_WORK_WIDTH, Command, File, Folder, InFile, images_option, reports_errors,
)
from humanseg.errors import HumansegError
from humanseg.live import background_mismatch
from humanseg.signals import signals_held
from humanseg.ui.draw import put_text
from humanseg.sources import looks_mirrored

METHODS = ("model", "model-raw", "absdiff")


def absdiff_mask(frame: np.ndarray, bkg: np.ndarray, threshold: int = 30) -> np.ndarray:
    """The plain baseline: largest per-channel |frame - bkg| above a threshold (uint8 0/255)."""
    b, g, r = cv2.split(cv2.absdiff(frame, bkg))
    diff = cv2.max(cv2.max(b, g), r)  # numpy's max over a 3-long last axis is ~100x slower
    return cv2.threshold(diff, threshold, 255, cv2.THRESH_BINARY)[1]


class AbsdiffPredictor:
    """The baseline behind the same set_background/predict_mask interface as Segmenter."""

    def __init__(self, threshold: int = 30):
        self.threshold = threshold
        self.bkg = None

    def set_background(self, bkg):
        self.bkg = bkg

    def predict_mask(self, frame):
        if frame.shape != self.bkg.shape:
            raise HumansegError("frame size differs from the background's")
        return absdiff_mask(frame, self.bkg, self.threshold)


@dataclass
class FrameResult:
    set_number: int
    index: int
    scores: dict
    ms: float
    # The predicted mask as PNG, kept for --save-masks and --montage: as arrays, 2 MB a 1080p frame
    # until the end of the run (an audit measured 686 MB for 260 frames), as PNG a few KB.
    pred_png: bytes | None = None
    # The frame does not match its set's bkg.png (live.background_mismatch, its label as the person);
    # None: not checked.
    mismatch: bool | None = None

    @property
    def pred(self) -> np.ndarray | None:
        return None if self.pred_png is None else cv2.imdecode(np.frombuffer(self.pred_png, np.uint8),
                                                               cv2.IMREAD_UNCHANGED)


def make_predictor(method: str, weights=None, work_width=None, num_threads=None):
    if method == "absdiff":
        return AbsdiffPredictor()
    from humanseg.model import load_segmenter

    return load_segmenter(weights, work_width=work_width, num_threads=num_threads, clean=method == "model")


def evaluate_sets(root, sets: list[int] | None, predictor, keep_masks: bool = False,
                  progress: Callable[[], object] | None = None, check: bool = False) -> list[FrameResult]:
    """Score every labeled frame of the chosen sets; one background per set, set once. progress: called
    after each frame. check: tell each frame's FrameResult.mismatch."""
    numbers = sets if sets else store.list_sets(root)
    results = []
    for n in numbers:
        info = store.scan_set(root, n)
        if not info.labeled:
            continue
        bkg = store.read_background(info)
        predictor.set_background(bkg)
        for k in info.labeled:
            frame = store.read_frame(info, k, bkg.shape)
            truth = store.read_mask(info.mask_path(k), frame.shape)
            t0 = time.perf_counter()
            pred = predictor.predict_mask(frame)
            ms = (time.perf_counter() - t0) * 1000
            results.append(FrameResult(n, k, metrics.frame_scores(pred, truth), ms,
                                       store.encode_png(pred) if keep_masks else None,
                                       background_mismatch(frame, bkg, truth) if check else None))
            if progress is not None:
                progress()
    return results


def _warn_of_mismatched_sets(root, results: list[FrameResult]) -> None:
    by_set: dict[int, list[FrameResult]] = {}
    for r in results:
        by_set.setdefault(r.set_number, []).append(r)
    for n, rows in by_set.items():
        store.warn_of_mismatched(store.set_path(root, n), [f"{r.index}.png" for r in rows if r.mismatch],
                           len(rows), "their scores measure that, not only the method")


def summarize(results: list[FrameResult]) -> dict:
    """Per-set and overall means of mIoU, Dice and boundary F, and the median ms per frame."""
    by_set: dict[int, list[FrameResult]] = {}
    for r in results:
        by_set.setdefault(r.set_number, []).append(r)

    def block(rows):
        out = metrics.mean_scores([r.scores for r in rows])
        out["frames"] = len(rows)
        out["ms_per_frame"] = float(np.median([r.ms for r in rows])) if rows else float("nan")
        return out

    return {"sets": {f"set{n}": block(rows) for n, rows in sorted(by_set.items())},
            "overall": block(results)}


def format_table(summary: dict, title: str) -> str:
    lines = [title, f"{'set':>8} {'frames':>6} {'mIoU':>7} {'Dice':>7} {'bndF3':>7} {'ms':>7}"]
    rows = list(summary["sets"].items()) + [("overall", summary["overall"])]
    for name, s in rows:
        lines.append(f"{name:>8} {s['frames']:>6} {s['iou']:>7.4f} {s['dice']:>7.4f} "
                     f"{s['boundary_f']:>7.4f} {s['ms_per_frame']:>7.1f}")
    return "\n".join(lines)


def worst_montage(root, results: list[FrameResult], count: int = 6, width: int = 320) -> np.ndarray:
    """Rows of frame | truth | prediction for the lowest-IoU frames, with their scores written on."""
    worst = sorted((r for r in results if r.pred_png is not None), key=lambda r: r.scores["iou"])[:count]
    rows = []
    for r in worst:
        info = store.scan_set(root, r.set_number)
        frame = store.read_frame(info, r.index)
        truth = store.read_mask(info.mask_path(r.index), frame.shape)
        # Fit into width x 2*width (a 1x480 frame scaled to 320 wide was 153,600 rows: a 768000x960
        # montage, 2 GB, for scores that took milliseconds), on a tile `width` wide.
        scale = min(width / frame.shape[1], 2 * width / frame.shape[0])
        w, h = (max(1, round(n * scale)) for n in frame.shape[1::-1])  # 0 rows for a frame 700x1
        tiles = []
        for x in (frame, truth, r.pred):
            tile = np.zeros((h, width, 3), np.uint8)
            # Masks scaled as the blocks they are (a 2x2 frame's were smooth grey ramps), frames smoothly.
            tile[:, :w] = cv2.resize(x if x.ndim == 3 else cv2.cvtColor(x, cv2.COLOR_GRAY2BGR), (w, h),
                                     interpolation=cv2.INTER_LINEAR if x.ndim == 3 else cv2.INTER_NEAREST)
            tiles.append(tile)
        # Outlined (thin yellow text alone all but vanished on a pale wall).
        put_text(tiles[0], f"set{r.set_number}/{r.index}.png  IoU {r.scores['iou']:.3f}  "
                 f"bF {r.scores['boundary_f']:.3f}", (6, 18), 0.45, (0, 255, 255), thickness=1)
        rows.append(np.hstack(tiles))
    if not rows:
        return np.zeros((10, 3 * width, 3), np.uint8)
    return np.vstack(rows)


def parse_sets(value: str | None) -> list[int] | None:
    """'3,7' (or 'set3,set7') -> [3, 7]; a set named twice counts once."""
    if value is None:
        return None
    items = store.set_number_items(value, "--sets")
    if not items:  # (the message ended in a colon and nothing)
        raise HumansegError("--sets is empty: give set numbers like 3,7, or leave it out for every labeled set")
    if not all(x.isascii() and x.isdigit() for x in items):  # not -1, +3 or 3.0, which int() takes
        raise HumansegError(f"--sets must be set numbers like 3,7: {value}")
    return list(dict.fromkeys(int(x) for x in items))


def _labeled_sets(root: Path) -> list[int]:
    """The sets under root with a mask, which evaluate scores (and --save-masks gets folders for)."""
    return [n for n in store.list_sets(root)
            if any(store.MASK_RE.match(name) for name in os.listdir(store.set_path(root, n)))]


@click.command("evaluate", cls=Command)
@images_option
@click.option("--weights", type=InFile(), help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--sets", help="Only these sets, e.g. 3,7 (default: every set with labels).")
@click.option("--method", "methods", multiple=True, type=click.Choice(METHODS), default=["model"],
              show_default=True, help="What to score; repeat to compare (e.g. --method model --method absdiff); "
              "model-raw: the network without the speck/pinhole clean-up, the far person's second "
              "pass and the near person's coarser pass.")
@click.option("--save-masks", type=Folder(),
              help="Write predictions as OUT/setN/K_mask.png (the first --method's).")
@click.option("--montage", type=File(),
              help="Write the worst frames (frame | truth | prediction; the first --method's) to this .png.")
@click.option("--json", "json_path", type=File(), help="Write the summary as JSON.")
@click.option("--work-width", type=click.IntRange(MIN_WORK_WIDTH, MAX_WORK_WIDTH),
              help="Network working width (default: the checkpoint's).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), help="CPU threads for torch.")
@click.option("--force", is_flag=True, help="Replace existing --save-masks masks, --montage and --json files.")
@reports_errors
def evaluate_command(images, weights, sets, methods, save_masks, montage, json_path, work_width, threads, force):
    """Score predictions against the labeled masks: mIoU, Dice, boundary F (3 px), ms per frame."""
    if set(methods) == {"absdiff"}:  # left unused without a word (a missing --weights file too)
        for option, value in (("--weights", weights), ("--work-width", work_width), ("--threads", threads)):
            if value is not None:
                raise click.UsageError(f"{option} is for --method model / model-raw; --method absdiff alone "
                                       f"uses no model")
    root = Path(images)
    if not root.is_dir():
        raise HumansegError(f"images folder not found: {root}")
    wanted = parse_sets(sets)
    for n in wanted or []:  # a set asked for by number is scored, or named: never left out silently
        if not store.scan_set(root, n).labeled:
            raise HumansegError(f"--sets {sets}: set {n} has no labeled frames ({store.set_path(root, n)}); "
                                f"label it first, or leave it out")
    folders: dict[Path, Path] = {}
    for n in wanted or store.list_sets(root):  # (a link to another set was scored twice; training refuses it)
        store.refuse_set_reached_again(folders, store.set_path(root, n), "its frames would count twice")
    if save_masks:  # OUT/setN/K_mask.png: OUT must not be a folder of captures (e.g. --images itself)
        store.refuse_capture_folder(save_masks, "--save-masks")  # nor one set (OUT/setN inside it)
        for n in store.list_sets(save_masks):
            store.refuse_capture_folder(store.set_path(save_masks, n), "--save-masks")
        for n in wanted or store.list_sets(root):  # found now, not after the whole evaluation
            there = store.set_path(save_masks, n)
            if os.path.lexists(there) and not there.is_dir():
                raise HumansegError(f"--save-masks {save_masks}: {there.name} there is not a folder; move it away")
            for k in store.scan_set(root, n).labeled if there.is_dir() else []:
                name = there / store.mask_name(k)
                if name.is_dir():  # with --force, found at its write after the masks before it
                    raise HumansegError(f"--save-masks {save_masks}: {name} is a folder, where a mask is "
                                        f"written; move it away")
    for option, path in (("--montage", montage), ("--json", json_path)):
        if path:  # never a set's bkg.png, K.png or K_mask.png, --force or not
            store.refuse_capture_file(path, option)
    for option, path in (("--save-masks", save_masks), ("--montage", montage), ("--json", json_path)):
        if path:  # nor a new images/setN folder, which every tool would then take for a set
            store.refuse_new_set_folder(path, option)
    if save_masks:  # nor one of the masks written in this run (OUT/setN/K_mask.png)
        for option, path in (("--montage", montage), ("--json", json_path)):
            where = Path(path).resolve() if path else None
            if where and where.parent.parent == Path(save_masks).resolve() and store.SET_RE.match(
                    where.parent.name) and store.MASK_RE.match(where.name):
                raise HumansegError(f"{option} {path} is one of the masks --save-masks writes; "
                                    f"give it another name")
            named = store.SET_RE.match(where.name) if where else None
            if named and where.parent == Path(save_masks).resolve() and int(named[1]) in (
                    wanted or _labeled_sets(root)):  # (a set not evaluated gets no folder there)
                # found after the whole run, as "refusing to overwrite" the folder it had just made
                raise HumansegError(f"{option} {path} is a folder --save-masks writes masks into; "
                                    f"give it another name")
    for option, path, folder in (("--save-masks", save_masks, True), ("--montage", montage, False),
                                 ("--json", json_path, False)):
        if path:  # written after the run: a place that cannot take them fails now, not then
            store.refuse_unwritable(path, option, folder=folder)
    if montage and json_path and Path(montage).resolve() == Path(json_path).resolve():
        raise HumansegError(f"--montage and --json both name {montage}; give them two files")
    for option, path in (("--montage", montage), ("--json", json_path)):
        if save_masks and path and Path(path).resolve() == Path(save_masks).resolve():  # found after the run
            raise HumansegError(f"{option} {path} is the --save-masks folder; give them two places")
    if (montage or json_path) and set(methods) != {"absdiff"}:
        from humanseg.model import resolve_weights

        checkpoint = resolve_weights(weights).resolve()  # --weights, $HUMANSEG_WEIGHTS or the shipped model
        for option, path in (("--montage", montage), ("--json", json_path)):
            if path and Path(path).resolve() == checkpoint:  # --force or not
                raise HumansegError(f"{option} {path} is the checkpoint being evaluated ({checkpoint}); "
                                    f"give it another name")
    if montage and Path(montage).suffix.lower() != ".png":  # a worst.jpg was PNG data under that name
        raise HumansegError(f"--montage {montage}: name a .png file (the montage is written as PNG)")
    if not force:  # before the run: an earlier run's results are not replaced without a word
        for n in wanted or store.list_sets(root):
            earlier = sorted(store.set_path(save_masks, n).glob("*_mask.png")) if save_masks else []
            if earlier:
                raise HumansegError(f"--save-masks {save_masks} already holds masks of set {n} "
                                    f"({earlier[0]}, ...): --force replaces them, or choose another folder")
        for option, path in (("--montage", montage), ("--json", json_path)):
            if path and os.path.lexists(path):  # a link pointing nowhere too: it would be written through
                raise HumansegError(f"{option} {path} already exists (--force replaces it)")
    report = {}
    # With several methods, the masks and montage are the first one's: said so.
    whose = f" ({methods[0]}'s, the first --method)" if len(dict.fromkeys(methods)) > 1 else ""
    frames = sum(len(store.scan_set(root, n).labeled) for n in wanted or store.list_sets(root))
    if not frames:  # said before any model loads (it took 5 s to say there was nothing to score)
        store.check_root(root)
        raise HumansegError(f"no labeled frames found in {root}"
                            + (f" sets {sets}" if sets else store.why_no_labels(root)))
    # Every method's model before the first runs: weights that cannot be loaded for a later one were
    # found after the first one's masks and montage were written (and then stood in the rerun's way).
    predictors = {method: make_predictor(method, weights, work_width, threads) for method in dict.fromkeys(methods)}
    for method, predictor in predictors.items():
        keep = bool(save_masks or montage) and method == methods[0]
        # Progress on a terminal only (disable=None): a few hundred frames took minutes without a word.
        with tqdm(total=frames, desc=method, unit="frame", leave=False,
                  disable=None if sys.stderr is not None else True) as bar:  # (closed: 2>&-)
            results = evaluate_sets(root, wanted, predictor, keep_masks=keep, progress=bar.update,
                                    check=method == methods[0])
        if not results:  # the frames counted above went away meanwhile
            raise HumansegError(f"no labeled frames left in {root}: they were moved or removed during the run",
                                exit_code=1)
        if method == methods[0]:  # (once the bar is gone, before the first table)
            _warn_of_mismatched_sets(root, results)
        summary = summarize(results)
        report[method] = summary
        click.echo(format_table(summary, f"{method}:"))
        if keep and save_masks:
            for r in results:
                out_dir = Path(save_masks) / f"set{r.set_number}"
                out_dir.mkdir(parents=True, exist_ok=True)
                # Without --force, never over a file that appeared since the check before the run.
                with store.appeared_meanwhile():
                    store.write_bytes_atomic(out_dir / store.mask_name(r.index), r.pred_png, overwrite=force)
            click.echo(f"masks written under {save_masks}{whose}")
        if keep and montage:
            Path(montage).parent.mkdir(parents=True, exist_ok=True)
            with store.appeared_meanwhile():
                store.write_image(montage, worst_montage(root, results), overwrite=force)
            click.echo(f"worst frames: {montage}{whose}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        with store.appeared_meanwhile():
            store.write_json(json_path, report, overwrite=force)
        click.echo(f"scores written: {json_path}")  # (as the masks and the montage are said)


def _check_predict_targets(frames, bkg_path, out: Path, overlay: bool, force: bool) -> None:
    """Before anything is written: two FRAMES with one name would write one OUT/NAME_mask.png (the
    second replacing the first under --force), an output may not be one of the inputs (--force or not:
    a.png's a_mask.png would replace the input a_mask.png before it was read), and without --force
    an existing output is refused now rather than after the frames before it were written."""
    inputs = {Path(p).resolve() for p in (*frames, bkg_path)}
    for path in frames:
        for suffix in ("_mask.png", "_overlay.png") if overlay else ("_mask.png",):
            target = out / f"{Path(path).stem}{suffix}"
            if len(os.fsencode(target.name)) > store.NAME_MAX:  # found at its write, after the model loaded
                raise HumansegError(f"{path}: its output name {target.name[:40]}... is longer than a file name "
                                    f"may be ({store.NAME_MAX} bytes); rename the frame")
            if target.is_dir():  # --force or not: found at its write, after the masks before it
                raise HumansegError(f"{path} would write {target}, which is a folder; move it away "
                                    f"or choose another --out")
            if target.resolve() in inputs:
                raise HumansegError(f"{path} would write {target}, which is one of the images given; "
                                    f"choose another --out")
    first, given = {}, {}
    for path in frames:
        stem = Path(path).stem
        resolved = Path(path).resolve()
        if resolved in given:  # (separate --out folders would predict it twice)
            raise HumansegError(f"{given[resolved]} and {path} are the same frame; give it once")
        given[resolved] = path
        if stem in first:
            raise HumansegError(f"{first[stem]} and {path} would both write {out / (stem + '_mask.png')}; "
                                f"predict them into separate --out folders")
        first[stem] = path
        if not force:
            for suffix in ("_mask.png", "_overlay.png") if overlay else ("_mask.png",):
                if os.path.lexists(out / f"{stem}{suffix}"):
                    raise HumansegError(f"refusing to overwrite existing file: {out / (stem + suffix)} "
                                        f"(--force replaces it)")


def _read_predict_frame(path, bkg: np.ndarray) -> np.ndarray:
    frame = store.read_image(path, "frame")
    if frame.shape != bkg.shape:
        raise HumansegError(f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the "
                            f"background's {bkg.shape[1]}x{bkg.shape[0]}: {path}")
    return frame


@click.command("predict", cls=Command)
@click.option("--bkg", "bkg_path", required=True, type=File(), help="Background image.")
@click.argument("frames", nargs=-1, required=True, type=InFile(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=Folder(), help="Output folder.")
@click.option("--weights", type=InFile(), help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--overlay", is_flag=True, help="Also write NAME_overlay.png (mask tinted over the frame).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@reports_errors
def predict_command(bkg_path, frames, out_dir, weights, overlay, force):
    """Write OUT/NAME_mask.png (255 person) for each FRAME against the background --bkg."""
    from humanseg.model import load_segmenter

    bkg = store.read_image(bkg_path, "background")
    out = Path(out_dir)
    store.refuse_capture_folder(out, "--out")
    store.refuse_new_set_folder(out, "--out")
    store.refuse_unwritable(out, "--out", folder=True)
    _check_predict_targets(frames, bkg_path, out, overlay, force)  # before the model loads: a refusal comes at once
    mirrored = set()
    for path in frames:  # a bad frame in a batch stops it before any output is written (no --force to rerun)
        if looks_mirrored(_read_predict_frame(path, bkg), bkg):  # its mask would be wrong: say why
            mirrored.add(path)
            click.echo(f"warning: {path} looks mirrored against --bkg {bkg_path} (they match far better "
                       f"with one flipped), so its mask would be wrong: flip one of them (or, if they show two rooms, give "
                       f"the frame's own background)", err=True)
    seg = load_segmenter(weights)
    seg.set_background(bkg)
    for path in frames:
        frame = _read_predict_frame(path, bkg)
        mask = seg.predict_mask(frame)
        if path not in mirrored and background_mismatch(frame, bkg, mask):  # as live mode's "camera moved?"
            click.echo(f"warning: {path} does not match --bkg {bkg_path}: most of its room differs from it, or is "
                       f"shifted against it (another room, or a camera moved after the background was taken), "
                       f"so its mask is likely wrong: give the frame's own background", err=True)
        out.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        stem = Path(path).stem
        # A Ctrl-C during the writes is handed on once the frame's line is out; an output that appeared
        # since the check before the model loaded is said as evaluate says it.
        with signals_held(), store.appeared_meanwhile():
            target = store.write_image(out / f"{stem}_mask.png", mask, overwrite=force)
            if overlay:
                tint = frame.copy()
                tint[mask > 0] = (0.5 * tint[mask > 0] + (0, 127, 0)).astype(np.uint8)
                store.write_image(out / f"{stem}_overlay.png", tint, overwrite=force)
            click.echo(json.dumps({"frame": str(path), "mask": str(target),
                                   "person_fraction": round(float((mask > 0).mean()), 4)}))
