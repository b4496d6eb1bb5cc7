"""Milliseconds per 640x480 frame: the model with cached background features, without, and absdiff.

The default backend (ONNX Runtime when installed) is `segment_cached_bkg` / `segment`; the same with
eager PyTorch is `segment_cached_bkg_torch` / `segment_torch`.

Prints one JSON line per measurement: name, median, min, max, unit, cores (and threads, work width).
Usage: python benchmarks/segmentation.py [--weights W] [--threads 2] [--repeats 100]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import torch  # noqa: E402

from humanseg import store  # noqa: E402
from humanseg.errors import HumansegError  # noqa: E402
from humanseg.evaluate import absdiff_mask  # noqa: E402
from humanseg.model import load_segmenter  # noqa: E402
from humanseg.cli import (  # noqa: E402
    CONTEXT, MAX_THREADS, MAX_WORK_WIDTH, MIN_WORK_WIDTH, Command, InFile, as_a_tool, reports_errors,
)

DEV = ROOT.parent / "shared" / "data" / "dev"


def measure(fn, repeats: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def report(name: str, times: list[float], **extra) -> None:
    print(json.dumps({"name": name, "median": round(statistics.median(times), 3), "min": round(min(times), 3),
                      "max": round(max(times), 3), "unit": "ms", "cores": os.cpu_count(), **extra}), flush=True)


@click.command(help=__doc__.split("\n\n")[0], context_settings=CONTEXT, cls=Command)
@click.option("--weights", type=InFile(), help="Checkpoint (default: $HUMANSEG_WEIGHTS, else the shipped model).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=2, show_default=True,
              help="Threads for the model.")
@click.option("--repeats", type=click.IntRange(1), default=100, show_default=True,
              help="Timed calls per measurement (after 5 untimed ones; `segment` a fifth as many, at least 10).")
@click.option("--work-width", type=click.IntRange(MIN_WORK_WIDTH, MAX_WORK_WIDTH),
              help="Network working width (default: the checkpoint's).")
@click.option("--set", "set_number", type=int, default=2, show_default=True,
              help="Dev set whose first labeled frame and background are used.")
@reports_errors
def main(**options):
    args = SimpleNamespace(**options)  # the options by name
    torch.set_num_threads(args.threads)
    info = store.scan_set(DEV, args.set_number)
    bkg = store.read_background(info)
    if not info.labeled:
        raise HumansegError(f"--set {args.set_number}: no labeled frame in {info.path}")
    frame = store.read_frame(info, info.labeled[0], bkg.shape)
    size = f"{frame.shape[1]}x{frame.shape[0]}"
    seg_auto_backend = None
    for backend in ("auto", "torch"):
        seg = load_segmenter(args.weights, work_width=args.work_width, num_threads=args.threads, backend=backend)
        seg.set_background(bkg)
        suffix = "" if backend == "auto" else "_torch"
        extra = {"threads": args.threads, "work_width": seg.work_width, "frame": size,
                 "backend": seg.active_backend}
        if backend == "torch" and seg_auto_backend == "torch":
            break  # auto already was PyTorch (no onnxruntime)
        seg_auto_backend = seg.active_backend
        report("segment_cached_bkg" + suffix, measure(lambda: seg.predict_mask(frame), args.repeats), **extra)

        def uncached():
            seg.set_background(bkg)
            return seg.predict_mask(frame)

        report("segment" + suffix, measure(uncached, max(10, args.repeats // 5)), **extra)
    report("absdiff", measure(lambda: absdiff_mask(frame, bkg), args.repeats), frame=size)


if __name__ == "__main__":
    as_a_tool()
    main()
