"""Frames per second of the whole capture loop (read, pose, draw, show) at 640x480 under Xvfb.

Prints one JSON line per measurement: capture_fps_nopose, capture_fps_pose (main.py's default,
PoseNet in a worker thread) and capture_fps_pose_inline (PoseNet in the loop on every frame or
every other one), each with the median / min / max FPS over chunks of frames. Starts its own Xvfb; reads frames from an image folder
made from ../shared/data/dev (written to a temporary folder, never into the repo).
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
sys.path.insert(0, str(ROOT / "tests"))  # gui.start_xvfb: the same Xvfb the GUI tests use

import click  # noqa: E402
import cv2  # noqa: E402

from humanseg.capture import load_pose, run_capture  # noqa: E402
from humanseg.sources import ImageFolderSource  # noqa: E402
from humanseg.ui.buttons import default_layout  # noqa: E402
from humanseg.ui.controller import CaptureController  # noqa: E402
from gui import start_xvfb  # noqa: E402
from humanseg.cli import CONTEXT, MAX_THREADS, Command, InFile, as_a_tool, reports_errors  # noqa: E402
from humanseg.errors import HumansegError  # noqa: E402
from pose import default_weights  # noqa: E402  (benchmarks/pose.py: the same weights)

DEV = ROOT.parent / "shared" / "data" / "dev"
FRAMES = ["set10/0.png", "set10/1.png", "set10/2.png", "set4/0.png", "set4/1.png", "set7/0.png", "set7/2.png",
          "set8/0.png"]  # with people, some with hands up


def dev_frames() -> list:
    """The eight dev frames the loop shows, at 640x480; one missing is an error (exit 2) said first."""
    frames = []
    for name in FRAMES:
        frame = cv2.imread(str(DEV / name))
        if frame is None:
            raise HumansegError(f"missing dev frame: {DEV / name} (this benchmark shows ../shared/data/dev frames)")
        frames.append(cv2.resize(frame, (640, 480)))
    return frames


def write_source(folder: Path, frames: list) -> Path:
    """The frames as PNGs 0.png, 1.png, ... in folder."""
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    return folder


def measure(source_dir: Path, pose, frames: int, chunk: int, warmup: int, pose_every: int,
            pose_async: bool = False) -> list[float]:
    """FPS of each chunk of `chunk` consecutive frames after `warmup` frames."""
    from humanseg.ui.window import CvWindow

    stamps: list[float] = []

    def on_frame(frame, ctx):
        stamps.append(time.perf_counter())
        return None

    controller = CaptureController(default_layout(640, 480), 5, 2)
    with tempfile.TemporaryDirectory() as images:
        run_capture(ImageFolderSource.from_spec(str(source_dir), loop=True), CvWindow("capture benchmark"),
                    controller, images, pose=pose, pose_every=pose_every, on_frame=on_frame,
                    max_frames=warmup + frames, pose_async=pose_async)
    stamps = stamps[warmup:]
    return [chunk / (stamps[i + chunk] - stamps[i]) for i in range(0, len(stamps) - chunk, chunk)]


class CountingPose:
    """Counts PoseNet calls, to report how often palms are refreshed in the threaded mode."""

    def __init__(self, pose):
        self.pose, self.calls = pose, 0

    def palms(self, frame):
        self.calls += 1
        return self.pose.palms(frame)


def report(name: str, fps: list[float], **extra) -> None:
    print(json.dumps({"name": name, "median": round(statistics.median(fps), 1), "min": round(min(fps), 1),
                      "max": round(max(fps), 1), "unit": "fps", "cores": os.cpu_count(), **extra}), flush=True)


@click.command(help=__doc__.split("\n\n")[0], context_settings=CONTEXT, cls=Command)
@click.option("--frames", type=click.IntRange(1), default=300, show_default=True, help="Frames measured per mode.")
@click.option("--chunk", type=click.IntRange(1), default=30, show_default=True, help="Frames per FPS sample.")
@click.option("--pose-every", type=click.IntRange(0), default=0, show_default=True,
              help="Inline mode: pose on every Nth frame (0: every frame, every other one if slow).")
@click.option("--pose-threads", type=click.IntRange(1, MAX_THREADS), default=1, show_default=True,
              help="Threads for PoseNet (main.py's default).")
@click.option("--posenet-weights", "--weights", "weights", type=InFile(), default=None,
              help="PoseNet weights (default: $HUMANSEG_POSENET_WEIGHTS if set, else ../shared's "
                   "mobilenet_v1_050.pth where it exists, else main.py's lookup: the cache, a download).")
@reports_errors
def main(**options) -> None:
    args = SimpleNamespace(**options)  # the options by name
    if args.chunk >= args.frames:
        raise click.UsageError(f"--chunk {args.chunk} must be below --frames {args.frames} (FPS is measured "
                               f"per chunk)")
    frames = dev_frames()
    # Bad weights are said before any timing (without main.py's --no-pose hint: no such option here).
    pose = load_pose(default_weights(args.weights), None, num_threads=args.pose_threads, no_pose=False)

    try:
        xvfb, display = start_xvfb("1280x800x24")
    except (RuntimeError, OSError) as exc:  # no Xvfb installed is a FileNotFoundError
        sys.exit(f"Error: cannot start Xvfb: {exc}")
    os.environ["DISPLAY"] = display
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = write_source(Path(tmp), frames)
            nopose = measure(source, None, args.frames, args.chunk, 10, 0)
            report("capture_fps_nopose", nopose, frames=args.frames, load_avg=round(os.getloadavg()[0], 2))
            # main.py's default: PoseNet in a worker thread on the newest frame.
            counted = CountingPose(pose)
            start = time.perf_counter()
            threaded = measure(source, counted, args.frames, args.chunk, 10, 0, pose_async=True)
            report("capture_fps_pose", threaded, frames=args.frames, mode="thread",
                   pose_threads=args.pose_threads, pose_hz=round(counted.calls / (time.perf_counter() - start), 1),
                   load_avg=round(os.getloadavg()[0], 2))
            # --pose-every N (or automatic every / every other frame) in the loop itself.
            synced = measure(source, pose, args.frames, args.chunk, 10, args.pose_every)
            report("capture_fps_pose_inline", synced, frames=args.frames, mode="inline",
                   pose_every=args.pose_every or "auto", pose_threads=args.pose_threads,
                   load_avg=round(os.getloadavg()[0], 2))
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


if __name__ == "__main__":
    as_a_tool()
    main()
