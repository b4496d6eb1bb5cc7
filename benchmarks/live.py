"""End-to-end live FPS at 640x480 on an image-folder source: read (PNG decode), segment, filter, composite.

No window (showing is not measured). Prints one JSON line per view: name "live_fps", median/min/max over
runs of --frames frames, unit fps, cores, threads. The target is >= 30 fps on 2 cores.
With --far the frames and the background are those of a person further away (`robustness.py`'s
"person further away": half size in the middle of the room), which the segmenter gives a second pass
on a closer crop: name "live_fps_far". With --near the frames and the background are those of a person
nearer the camera (`robustness.py`'s "person closer": the part around the first labeled person's upper
body scaled up 2x, the same crop of every frame), which the segmenter gives a coarser pass where the
first leaves part of them out: name "live_fps_near" (`--set 10`: its three frames with a person take it).
Usage: python benchmarks/live.py [--weights W] [--threads N] [--runs 5] [--frames 60] [--views tint,blur]
                                 [--set 2] [--far | --near]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import cv2  # noqa: E402

from humanseg import store  # noqa: E402
from humanseg.errors import HumansegError  # noqa: E402
from humanseg.live import VIEWS, LiveSession, default_threads, run_live  # noqa: E402
from humanseg.model import load_segmenter  # noqa: E402
from humanseg.sources import open_source  # noqa: E402
from robustness import closer_window, far_person, scaled_up  # noqa: E402  (benchmarks/, the script's own folder)
from humanseg.cli import CONTEXT, MAX_THREADS, Command, InFile, as_a_tool, reports_errors  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "dev"


@click.command(help=__doc__.split("\n\n")[0], context_settings=CONTEXT, cls=Command)
@click.option("--weights", type=InFile(), help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), help="Model threads (default: cores - 1).")
@click.option("--runs", type=click.IntRange(1), default=5, show_default=True, help="Timed runs per view.")
@click.option("--frames", type=click.IntRange(1), default=60, show_default=True, help="Frames per run.")
@click.option("--views", default="tint,blur", show_default=True, help=f"Views to time ({', '.join(VIEWS)}).")
@click.option("--set", "set_number", type=int, default=2, show_default=True,
              help="Dev set whose frames and background are used.")
@click.option("--far", is_flag=True, help="The person at half size, further away.")
@click.option("--near", is_flag=True, help="The person at twice the size, nearer the camera.")
@reports_errors
def main(**options):
    args = SimpleNamespace(**options)  # the options by name
    views = args.views.split(",")
    unknown = [v for v in views if v not in VIEWS]
    if unknown:  # said before the first view is timed
        raise click.UsageError(f"--views: unknown view {unknown[0]!r} (views: {', '.join(VIEWS)})")
    if args.far and args.near:
        raise click.UsageError("--far and --near: give one of them")
    model_threads = args.threads or default_threads()
    info = store.scan_set(DEV, args.set_number)
    bkg = store.read_background(info)
    if not info.frames:
        raise HumansegError(f"--set {args.set_number}: no frames in {info.path}")
    window = None
    if args.near:
        # Each frame against the background first: a frame of another size was named as its mask's.
        people = [m for m in (store.read_mask(info.mask_path(k), store.read_frame(info, k, bkg.shape).shape)
                              for k in info.labeled) if m.any()]
        if not people:
            raise HumansegError(f"--near: set {args.set_number} has no labeled frame with a person to come nearer to")
        window = closer_window(people[0])

    def as_shot(frame):
        if args.far:
            return far_person(frame, bkg, frame[..., 0])[0]
        return scaled_up(frame, window) if args.near else frame

    seg = load_segmenter(args.weights, num_threads=model_threads)
    seg.track = True  # the frames stand for a camera's, as live mode treats a camera or a video file
    with tempfile.TemporaryDirectory() as tmp:
        # A folder of real PNG frames, so reading costs what it costs from disk.
        for i in range(args.frames):
            k = info.frames[i % len(info.frames)]
            cv2.imwrite(str(Path(tmp) / f"{i}.png"), as_shot(store.read_frame(info, k, bkg.shape)))
        if args.far:
            bkg = far_person(bkg, bkg, bkg[..., 0])[1]
        elif args.near:
            bkg = scaled_up(bkg, window)
        for view in views:
            session = LiveSession(seg, view=view)
            session.set_background(bkg)
            run_live(open_source(tmp), session)  # warm-up run
            rates = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                result = run_live(open_source(tmp), session)
                rates.append(result.frames / (time.perf_counter() - t0))
            name = "live_fps_far" if args.far else "live_fps_near" if args.near else "live_fps"
            print(json.dumps({"name": name, "view": view, "median": round(statistics.median(rates), 2),
                              "min": round(min(rates), 2), "max": round(max(rates), 2), "unit": "fps",
                              "cores": os.cpu_count(), "threads": model_threads,
                              "frame": f"{bkg.shape[1]}x{bkg.shape[0]}", "work_width": seg.work_width,
                              "frames": args.frames}), flush=True)


if __name__ == "__main__":
    as_a_tool()
    main()
