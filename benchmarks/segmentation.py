"""Milliseconds per 640x480 frame: the model with cached background features, without, and absdiff.

The default backend (ONNX Runtime when installed) is `segment_cached_bkg` / `segment`; the same with
eager PyTorch is `segment_cached_bkg_torch` / `segment_torch`.

Prints one JSON line per measurement: name, median, min, max, unit, cores (and threads, work width).
Usage: python benchmarks/segmentation.py [--weights W] [--threads 2] [--repeats 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from humanseg import store  # noqa: E402
from humanseg.errors import HumansegError  # noqa: E402
from humanseg.evaluate import absdiff_mask  # noqa: E402
from humanseg.model import load_segmenter  # noqa: E402
from _common import count, run, threads, work_width  # noqa: E402  (benchmarks/, the script's own folder)

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=threads, default=2)
    ap.add_argument("--repeats", type=count, default=100)
    ap.add_argument("--work-width", type=work_width, default=None)
    ap.add_argument("--set", type=int, default=2, help="dev set whose frame and background are used")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = store.scan_set(DEV, args.set)
    bkg = store.read_background(info)
    if not info.labeled:
        raise HumansegError(f"--set {args.set}: no labeled frame in {info.path}")
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
    run(main)
