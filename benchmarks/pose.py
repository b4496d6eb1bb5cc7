"""Milliseconds per 640x480 frame for PoseNet resize + forward + decode (PoseEstimator.estimate).

Prints one JSON line per measurement: default scale (0.5, a 321x241 input) and full size (641x481),
each with 1 and 2 torch threads; the default-scale 2-thread line is `pose_default`. `pose_capture` is
the capture tool's estimator (every person's palms: up to three poses decoded) on 1 thread, as the
capture tool runs it by default. The `_eager`
lines run the plain PyTorch module instead of the optimized runner (ONNX Runtime when installed, else
a frozen TorchScript/oneDNN copy), for comparison; "runner" names which one ran.
Weights: --posenet-weights, $HUMANSEG_POSENET_WEIGHTS, ../shared/models/posenet/mobilenet_v1_050.pth, or the
cache (a download), in that order.

On a machine whose cores are busy with other work, OpenMP's spinning threads make the 2-thread lines
very slow; run with OMP_WAIT_POLICY=PASSIVE there (the policy is printed on each line).
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
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from humanseg.capture import CAPTURE_POSES  # noqa: E402
from humanseg.pose.estimator import PoseEstimator  # noqa: E402
from humanseg.cli import CONTEXT, Command, InFile, as_a_tool, reports_errors  # noqa: E402

DEV_FRAME = ROOT.parent / "shared" / "data" / "dev" / "set10" / "0.png"
WEIGHTS = ROOT.parent / "shared" / "models" / "posenet" / "mobilenet_v1_050.pth"


def default_weights(given: str | None) -> str | None:
    """--posenet-weights, else $HUMANSEG_POSENET_WEIGHTS (None: the lookup reads it), else ../shared's
    file where it exists, else None (the cache, a download: main.py's lookup)."""
    if given is not None or os.environ.get("HUMANSEG_POSENET_WEIGHTS"):
        return given
    return str(WEIGHTS) if WEIGHTS.is_file() else None


def measure(estimator: PoseEstimator, frame: np.ndarray, threads: int, iterations: int, warmup: int) -> list[float]:
    """Per-call times in ms of estimator.estimate(frame) with `threads` torch threads."""
    torch.set_num_threads(threads)
    for _ in range(warmup):
        estimator.estimate(frame)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        estimator.estimate(frame)
        times.append((time.perf_counter() - start) * 1000)
    return times


@click.command(help=__doc__.split("\n\n")[0], context_settings=CONTEXT, cls=Command)
@click.option("--posenet-weights", "--weights", "weights", type=InFile(), default=None,
              help="PoseNet weights (default: $HUMANSEG_POSENET_WEIGHTS if set, else ../shared's "
                   "mobilenet_v1_050.pth where it exists, else main.py's lookup: the cache, a download).")
@click.option("--iterations", type=click.IntRange(1), default=50, show_default=True, help="Timed calls per line.")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help="Untimed calls first.")
@click.option("--no-eager", is_flag=True, help="Skip the eager-module comparison lines.")
@reports_errors
def main(**options) -> None:
    args = SimpleNamespace(**options)  # the options by name

    frame, timed = cv2.imread(str(DEV_FRAME)), "set10/0.png"
    if frame is None:  # ../shared absent: a synthetic frame still times the same work (and says so)
        frame, timed = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8), "random noise"
    frame = cv2.resize(frame, (640, 480))
    runs = [("pose_default", 0.5, 2, True), ("pose_default_1thread", 0.5, 1, True), ("pose_capture", 0.5, 1, True),
            ("pose_full_2threads", 1.0, 2, True), ("pose_full_1thread", 1.0, 1, True)]
    if not args.no_eager:
        runs += [("pose_default_eager", 0.5, 2, False), ("pose_default_1thread_eager", 0.5, 1, False)]
    estimators = {}
    for name, scale, threads, optimize in runs:
        capture = name == "pose_capture"
        key = (optimize, threads, capture)  # ONNX Runtime fixes its thread count when the session is made
        if key not in estimators:
            torch.set_num_threads(threads)
            decoding = {"max_poses": CAPTURE_POSES, "single_when_alone": True} if capture else {}
            estimators[key] = PoseEstimator.load(default_weights(args.weights), optimize=optimize, show_progress=False,
                                                 **decoding)
        estimator = estimators[key]
        estimator.scale = scale
        times = measure(estimator, frame, threads, args.iterations, args.warmup)
        print(json.dumps({"name": name, "median": round(statistics.median(times), 2), "min": round(min(times), 2),
                          "max": round(max(times), 2), "unit": "ms", "cores": os.cpu_count(),
                          "threads": threads, "input": list(estimator.input_size(640, 480)),
                          "runner": type(estimator._runner).__name__, "frame": timed,
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}), flush=True)


if __name__ == "__main__":
    as_a_tool()
    main()
