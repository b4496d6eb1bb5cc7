"""Live segmentation: the CLI on dev sets (video, masks vs evaluate), stability filter, drift, views,
background capture, the loop's keys, and the capture tool's overlay / K_pred.png hooks."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from gui import ROOT, ScriptWindow
from shapes import person_centre, portrait
from humanseg import sources, store
from humanseg.capture import Saved, run_capture
from humanseg.cli import main as cli
from humanseg.errors import HumansegError
from humanseg.sources import CameraStopped
from humanseg.evaluate import evaluate_sets
from humanseg.live import (VIEWS, BackgroundGrabber, Compositor, DriftMonitor, LiveSession, StabilityFilter,
                           VideoOutput, background_mismatch, run_live)
from humanseg.live_capture import LiveOverlay, load_overlay
from humanseg.metrics import frame_scores
from humanseg.ui.buttons import default_layout
from humanseg.ui.controller import CaptureController
from tests.conftest import as_from_a_terminal

W, H = 640, 480
LIVE_SET = 2  # six labeled frames


@pytest.fixture(scope="module")
def segmenter(default_weights):
    from humanseg.model import load_segmenter

    return load_segmenter(default_weights, num_threads=1)


def read(dev_root, set_number, name):
    return cv2.imread(str(dev_root / f"set{set_number}" / name))


def quarter_size(dev_root):
    """Set 3's bkg.png and 0.png as a 160x120 camera gives them."""
    return [cv2.resize(read(dev_root, 3, name), (W // 4, H // 4), interpolation=cv2.INTER_AREA)
            for name in ("bkg.png", "0.png")]


class PacedWindow(ScriptWindow):
    """A ScriptWindow whose poll waits as cv2.waitKey does when no key comes."""

    def poll(self, wait_ms=1):
        time.sleep(wait_ms / 1000)
        return super().poll(wait_ms)


def iou(a, b):
    a, b = a > 0, b > 0
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def video_frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    return frames, count


def run_cli(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


# -- the command on a dev set ----------------------------------------------------------------------

@pytest.mark.slow
def test_mirror_flips_the_frames_a_cameras_by_default_and_a_mirrored_bkg_is_named(tmp_path, dev_root,
                                                                                  default_weights, monkeypatch):
    # The capture tool saves bkg.png mirrored (as it shows the camera); live mode took a camera's frames
    # as they come, so `live --bkg images/set3/bkg.png` compared them with a mirrored room.
    folder = dev_root / "set3"
    flipped = tmp_path / "flipped.png"
    cv2.imwrite(str(flipped), cv2.flip(read(dev_root, 3, "bkg.png"), 1))

    def masks(name, source, *extra):
        res = run_cli("live", "--source", source, "--no-window", "--raw", "--weights", str(default_weights),
                      "--save-masks", str(tmp_path / name), *extra)
        assert res.exit_code == 0, res.output
        return res.stderr, [cv2.imread(str(tmp_path / name / f"{k}_mask.png"), cv2.IMREAD_GRAYSCALE)
                            for k in range(4)]

    warned, plain = masks("plain", str(folder), "--bkg", str(folder / "bkg.png"))
    assert warned == "" and all(m.mean() > 10 for m in plain[:3])  # the last frame repeats bkg.png
    warned, turned = masks("turned", str(folder), "--bkg", str(flipped), "--mirror")
    assert warned == "" and all(iou(cv2.flip(a, 1), b) > 0.97 for a, b in zip(plain, turned))
    warned, _ = masks("wrong", str(folder), "--bkg", str(flipped))
    assert warned == (f"warning: --bkg {flipped} looks mirrored against the frames of --source {folder} (they "
                      f"match it far better flipped), so the masks would be wrong: pass --mirror to flip the "
                      f"frames (or, if the frames show another room, give that room's background)\n")
    warned, _ = masks("wrong2", str(folder), "--bkg", str(folder / "bkg.png"), "--mirror")
    assert warned.endswith("so the masks would be wrong: pass --no-mirror to take the frames as they come (or, if "
                           "the frames show another room, give that room's background)\n")

    class Camera(ListSource):
        is_camera = True

    frames = [read(dev_root, 3, f"{k}.png") for k in range(4)]
    monkeypatch.setattr("humanseg.live.open_source_quietly", lambda spec, loop=False: Camera(frames))
    warned, camera = masks("camera", "0", "--bkg", str(flipped))  # flipped, as the capture tool saves it
    assert warned == "" and all(iou(a, b) > 0.99 for a, b in zip(camera, turned))
    warned, _ = masks("camera-as-is", "0", "--bkg", str(flipped), "--no-mirror")
    assert "pass --mirror to flip the frames" in warned


@pytest.mark.slow
def test_live_writes_a_video_of_the_right_size_and_count_and_evaluates_masks(tmp_path, dev_root, copy_set,
                                                                              segmenter, default_weights):
    folder = dev_root / f"set{LIVE_SET}"
    out = tmp_path / "out.mp4"
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--output", str(out),
                  "--no-window", "--view", "side", "--weights", str(default_weights),
                  "--save-masks", str(tmp_path / "masks"))
    assert res.exit_code == 0, res.output
    n = len(store.list_frames(folder))
    frames, count = video_frames(out)
    assert count == n and len(frames) == n
    assert all(f.shape == (H, 2 * W, 3) for f in frames)  # side view: frame | mask
    assert not list(tmp_path.glob("*.tmp*"))
    done = json.loads(res.output.strip().splitlines()[-1])
    assert done["event"] == "done" and done["frames"] == n and done["output"] == str(out)

    evaluated = evaluate_sets(copy_set(LIVE_SET), [LIVE_SET], segmenter, keep_masks=True)
    assert [r.index for r in evaluated] == list(range(n))
    for r, video in zip(evaluated, frames):
        saved = cv2.imread(str(tmp_path / "masks" / f"{r.index}_mask.png"), cv2.IMREAD_GRAYSCALE)
        # Smoothing and exposure correction may move a few edge pixels; the masks are the model's.
        assert iou(saved, r.pred) >= 0.97, r.index
        from_video = (video[:, W:].mean(axis=2) > 127).astype(np.uint8)  # through the lossy codec
        assert iou(from_video, r.pred) >= 0.95, r.index
        source = cv2.imread(str(folder / f"{r.index}.png"))  # the left half is the frame itself
        assert np.abs(video[:, :W].astype(int) - source).mean() < 8, r.index


@pytest.mark.slow
def test_raw_masks_equal_evaluate_masks(tmp_path, dev_root, segmenter, default_weights):
    # A set with gaps in its numbers (frames deleted): each mask is named after its frame. They were
    # counted from 0, so 1_mask.png held the mask of 2.png.
    folder = tmp_path / "images" / "set3"
    folder.mkdir(parents=True)
    shutil.copy(dev_root / "set3" / "bkg.png", folder)
    for k, new in enumerate((0, 2, 10, 11)):
        shutil.copy(dev_root / "set3" / f"{k}.png", folder / f"{new}.png")
        shutil.copy(dev_root / "set3" / f"{k}_mask.png", folder / f"{new}_mask.png")
    (tmp_path / "m").mkdir()
    for k in range(4):  # an earlier run's, counted 0..3: --force replaces them all, not only 0_mask.png
        cv2.imwrite(str(tmp_path / "m" / f"{k}_mask.png"), np.full((H, W), 255, np.uint8))
    (tmp_path / "m" / "portrait_mask.png").write_bytes(b"not a name live writes: kept")
    # A run that stops before its first mask (no --bkg, and a folder too short to capture one) keeps them.
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(folder / "0.png", short)
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    res = run_cli("live", "--source", str(short), "--no-window", "--weights", str(default_weights),
                  "--save-masks", str(tmp_path / "m"), "--force")
    assert res.exit_code == 1 and "nothing written" in res.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window", "--raw",
                  "--weights", str(default_weights), "--save-masks", str(tmp_path / "m"), "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["0_mask.png", "10_mask.png", "11_mask.png",
                                                                 "2_mask.png", "portrait_mask.png"]
    evaluated = evaluate_sets(tmp_path / "images", [3], segmenter, keep_masks=True)
    assert [r.index for r in evaluated] == [0, 2, 10, 11]
    for r in evaluated:
        saved = cv2.imread(str(tmp_path / "m" / f"{r.index}_mask.png"), cv2.IMREAD_GRAYSCALE)
        assert saved is not None and saved.shape == r.pred.shape
        assert np.count_nonzero(saved != r.pred) <= 0.0005 * saved.size  # float rounding at 0.5 only
        assert frame_scores(saved, r.pred)["iou"] >= 0.999


@pytest.mark.slow
def test_live_captures_its_own_background_when_none_is_given(tmp_path, dev_root, default_weights):
    # 5 copies of the empty background then the set's frames: countdown 0, 4 frames averaged at 30 fps.
    src = tmp_path / "src"
    src.mkdir()
    bkg = read(dev_root, 3, "bkg.png")
    frames = [bkg] * 5 + [read(dev_root, 3, f"{k}.png") for k in range(4)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(src / f"{i}.png"), f)
    res = run_cli("live", "--source", str(src), "--no-window", "--countdown", "0", "--bkg-seconds", "0.1",
                  "--weights", str(default_weights), "--save-masks", str(tmp_path / "m"))
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.output.splitlines()]
    assert {"event": "background", "state": "captured"} in events
    # 0.1 s at 30 fps: frames 0..2 (time 0 .. 2/30) averaged, the rest segmented (3, at 0.1 s, is the
    # first past the second: until the fifty-sixth day it went into the average too).
    assert events[-1]["frames"] == 6
    # Each mask is named after its frame: 3.png and 4.png are copies of the background, 5-8.png the set's.
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [f"{i}_mask.png" for i in range(3, 9)]
    masks = [cv2.imread(str(tmp_path / "m" / f"{i}_mask.png"), 0) for i in range(3, 9)]
    assert (masks[0] > 0).mean() < 0.01 and (masks[1] > 0).mean() < 0.01  # empty frames: nothing found
    for k, mask in enumerate(masks[2:]):  # then the set's frames, as labeled (3.png is empty)
        truth = cv2.imread(str(dev_root / "set3" / f"{k}_mask.png"), 0)
        assert frame_scores(mask, truth)["iou"] >= 0.85, k
    # --max-frames counts segmented frames, not the 4 averaged into the background (it stopped there).
    res = run_cli("live", "--source", str(src), "--no-window", "--countdown", "0", "--bkg-seconds", "0.1",
                  "--weights", str(default_weights), "--max-frames", "2")
    assert res.exit_code == 0 and json.loads(res.output.splitlines()[-1])["frames"] == 2, res.output
    # A source too short for the 1 s of frames averaged: it says so, and leaves no empty folder; with
    # nothing to write as well (a run that ended in silence, exit 0). The folders made for the masks go
    # again, every one (the ones above the last stayed), by whatever path they were named. (A '..'
    # after a folder that is not there is refused before anything: the evaluate tests.)
    masks = tmp_path / "src" / ".." / "m2" / "a" / "b"
    for out in (["--save-masks", str(masks)], ["--output", str(tmp_path / "m2.mp4")], [],
                ["--save-bkg", str(tmp_path / "room.png")]):
        res = run_cli("live", "--source", str(src), "--no-window", "--countdown", "0", *out,
                      "--weights", str(default_weights))
        what = f"{out[0]} {out[1]}: nothing written" if out[:1] in (["--save-masks"], ["--output"]) else \
            "nothing segmented"
        # With --save-bkg, --bkg is no way out (then nothing is captured to save: refused).
        way = "a shorter --countdown or --bkg-seconds" if "--save-bkg" in out else \
            "pass --bkg, or a shorter --countdown"
        assert res.exit_code == 1 and res.output.splitlines()[-1] == (
            f"Error: {what}: --source {src} ended before a background was captured (the --countdown, then "
            f"--bkg-seconds of frames); {way}")
        # Headless with nothing to keep is said at the start (it ran and kept nothing without a word).
        warned = ("warning: --no-window without --output, --save-masks or --save-bkg: every frame is segmented, "
                  "and nothing is shown or kept")
        assert (res.output.splitlines()[0] == warned) == (not out), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "src"]
    # A shorter --bkg-seconds, as it says, does it.
    res = run_cli("live", "--source", str(src), "--no-window", "--countdown", "0", "--bkg-seconds", "0.1",
                  "--save-bkg", str(tmp_path / "room.png"), "--weights", str(default_weights))
    assert res.exit_code == 0 and (tmp_path / "room.png").is_file(), res.output


def test_cli_errors_are_one_line(tmp_path, dev_root, copy_set, default_weights, monkeypatch):
    folder = dev_root / "set3"
    labeled = copy_set(3) / "set3"
    labels = {p.name: p.read_bytes() for p in labeled.glob("*_mask.png")}
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((100, 120, 3), np.uint8))
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"x")
    earlier = tmp_path / "earlier"  # an earlier run's --save-masks
    earlier.mkdir()
    (earlier / "0_mask.png").write_bytes(b"kept")
    looped = tmp_path / "looped"  # a mask's name taken by links leading round in a loop
    looped.mkdir()
    (looped / "0_mask.png").symlink_to("1_mask.png")
    (looped / "1_mask.png").symlink_to("0_mask.png")
    cases = [
        (["--bkg", str(tmp_path / "missing.png")], f"--bkg background missing: {tmp_path / 'missing.png'}"),
        (["--bkg", str(bad)], "corrupt"),
        (["--bkg", str(small), "--save-masks", str(tmp_path / "m")], "is 120x100 but --source"),
        (["--bkg", str(folder / "bkg.png"), "--save-masks", str(labeled)], "is a capture set folder"),
        (["--bkg", str(folder / "bkg.png"), "--output", str(existing)], "already exists"),
        (["--bkg", str(folder / "bkg.png"), "--save-masks", str(earlier)], "already holds masks (0_mask.png"),
        (["--bkg", str(folder / "bkg.png"), "--save-masks", str(looped)],  # ("it appeared during the run")
         f"--save-masks {looped}: 0_mask.png there is a link that leads to no file; move it away, or --force "
         f"replaces it"),
        (["--bkg", str(folder / "bkg.png"), "--output", str(tmp_path / "x.gif")], "unsupported video type"),
        (["--bkg", str(folder / "bkg.png"), "--weights", str(tmp_path / "nope.pt")],
         f"weights file not found: {tmp_path / 'nope.pt'}"),
        (["--bkg", str(folder / "bkg.png"), "--view", "replace", "--replace", str(bad)], "--replace image"),
    ]
    for extra, text in cases:
        res = run_cli("live", "--source", str(folder), "--no-window", *extra)
        assert res.exit_code == 2, (extra, res.output)
        assert text in res.output and "Traceback" not in res.output
    assert existing.read_bytes() == b"x" and (earlier / "0_mask.png").read_bytes() == b"kept"
    assert os.readlink(looped / "0_mask.png") == "1_mask.png"
    assert not (tmp_path / "m").exists()  # a run that fails before its first frame leaves no folder
    assert {p.name: p.read_bytes() for p in labeled.glob("*_mask.png")} == labels and labels
    res = run_cli("live", "--source", str(tmp_path / "nothing"), "--bkg", str(folder / "bkg.png"), "--no-window")
    assert res.exit_code == 2 and "--source" in res.output
    monkeypatch.delenv("DISPLAY", raising=False)
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"))
    assert res.exit_code == 2 and "no display" in res.output


def test_outputs_in_a_read_only_folder_are_one_line_errors(dev_root, default_weights, read_only_folder):
    folder = dev_root / "set3"
    for extra, text in (
            (["--save-masks", str(read_only_folder / "m")],
             f"--save-masks {read_only_folder / 'm'}: cannot write in {read_only_folder} (read-only, or no permission)"),
            (["--output", str(read_only_folder / "o.mp4")],
             f"--output {read_only_folder / 'o.mp4'}: cannot write in {read_only_folder} (read-only, or no permission)")):
        res = run_cli("live", "--source", str(folder), "--no-window", "--bkg", str(folder / "bkg.png"), *extra)
        assert res.exit_code == 2 and res.output == f"Error: {text}\n", res.output
    assert list(read_only_folder.iterdir()) == []


def write_clip(path, dev_root, frames: int):
    """An MJPG video of set3's frames (0, 1, 2, 3, 0, ...), 640x480 at 10 fps."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for k in range(frames):
        writer.write(read(dev_root, 3, f"{k % 4}.png"))
    writer.release()
    return path


def test_frames_the_encoder_refuses_are_named_and_leave_no_folder(tmp_path):
    # 1x1 frames: "cannot write a video there" blamed the place, and the masks folder made was left.
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for k in range(2):
        cv2.imwrite(str(tiny / f"{k}.png"), np.full((1, 1, 3), 40 * k, np.uint8))
    res = run_cli("live", "--source", str(tiny), "--bkg", str(tiny / "0.png"), "--no-window",
                  "--output", str(tmp_path / "t.mp4"), "--save-masks", str(tmp_path / "m"))
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == f"Error: --output {tmp_path / 't.mp4'}: the mp4v encoder " \
                                                  f"refused 1x1 frames (no video type here records frames under 2x2)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    # OpenCV's MJPG writer aborted the process on 5x4 frames ("free(): invalid next size") and on 9x1
    # frames of varied content, leaving its temporary file; 8x8 ones it takes.
    rng = np.random.default_rng(0)
    for size, said in (((5, 4), "(5x4); record them as .mp4"), ((9, 1), "(9x1) (nor does mp4v take frames "
                                                                          "under 2x2)")):
        for k in range(2):
            cv2.imwrite(str(tiny / f"{k}.png"), rng.integers(0, 256, (size[1], size[0], 3), np.uint8))
        res = run_cli("live", "--source", str(tiny), "--bkg", str(tiny / "0.png"), "--no-window",
                      "--output", str(tmp_path / "t.avi"))
        assert res.exit_code == 1 and res.output.strip().splitlines()[-1] == (
            f"Error: --output {tmp_path / 't.avi'}: OpenCV's MJPG encoder fails on frames under 8x8 {said}")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    for k in range(2):
        cv2.imwrite(str(tiny / f"{k}.png"), rng.integers(0, 256, (8, 8, 3), np.uint8))
    res = run_cli("live", "--source", str(tiny), "--bkg", str(tiny / "0.png"), "--no-window",
                  "--output", str(tmp_path / "t.avi"))
    assert res.exit_code == 0 and len(video_frames(tmp_path / "t.avi")[0]) == 2


def test_the_source_video_as_output_is_refused_even_with_force(tmp_path, dev_root, default_weights):
    clip = write_clip(tmp_path / "clip.avi", dev_root, 5)
    before = clip.read_bytes()
    for spelling in (clip, tmp_path / "." / "clip.avi"):
        res = run_cli("live", "--source", str(clip), "--bkg", str(dev_root / "set3" / "bkg.png"), "--no-window",
                      "--output", str(spelling), "--force", "--max-frames", "2")
        assert res.exit_code == 2, res.output
        assert f"--output {spelling} is the --source video" in res.output and "Traceback" not in res.output
    assert clip.read_bytes() == before  # not replaced by the two frames segmented from it


def test_save_bkg_named_as_one_of_the_masks_is_refused(tmp_path, dev_root):
    # --save-masks m --save-bkg m/0_mask.png: the background was saved, then replaced by frame 0's mask.
    res = run_cli("live", "--source", str(dev_root / "set3"), "--no-window", "--save-masks", str(tmp_path / "m"),
                  "--save-bkg", str(tmp_path / "m" / "0_mask.png"), "--force")
    assert res.exit_code == 2 and res.output == (f"Error: --save-bkg {tmp_path / 'm' / '0_mask.png'} is a name "
                                                 f"--save-masks writes its masks under; give it another name\n")
    assert list(tmp_path.iterdir()) == []


def test_outputs_never_replace_inputs_nor_make_a_set_folder(tmp_path, dev_root, copy_set):
    # --save-bkg pics/a.png --force replaced a source frame with the averaged background; masks saved
    # into images/set2 made a set every other tool stopped at ("background missing").
    pics = tmp_path / "pics"
    pics.mkdir()
    for name, k in (("a.png", 0), ("b.png", 1)):
        (pics / name).write_bytes((dev_root / "set3" / f"{k}.png").read_bytes())
    before = {p.name: p.read_bytes() for p in pics.iterdir()}
    bkg = str(dev_root / "set3" / "bkg.png")
    for source, save in ((pics, pics / "a.png"), (pics / "b.png", pics / "b.png"),
                         (str(pics / "*.png"), pics / "." / "a.png")):
        res = run_cli("live", "--source", str(source), "--no-window", "--save-bkg", str(save), "--force",
                      "--countdown", "0", "--save-masks", str(tmp_path / "m"))
        assert res.exit_code == 2 and f"--save-bkg {save} is one of the images read" in res.output, res.output
    res = run_cli("live", "--source", str(dev_root / "set3" / "0.png"), "--no-window", "--view", "replace",
                  "--replace", str(pics / "b.png"), "--save-bkg", str(pics / "b.png"), "--force", "--countdown", "0")
    assert res.exit_code == 2 and "is one of the images read" in res.output, res.output
    assert {p.name: p.read_bytes() for p in pics.iterdir()} == before
    root = copy_set(3)
    for path in (root / "set2", root / "set5" / "masks"):  # (--output and --save-bkg need their folder)
        res = run_cli("live", "--source", str(pics), "--bkg", bkg, "--no-window", "--save-masks", str(path))
        assert res.exit_code == 2 and "would sit among the capture sets" in res.output, res.output
    assert store.list_sets(root) == [3]
    res = run_cli("live", "--source", str(pics), "--bkg", bkg, "--no-window", "--threads", "100000")
    assert res.exit_code == 2 and "100000 is not in the range 1<=x<=256" in res.output  # a segfault


@pytest.mark.slow
@pytest.mark.parametrize("ext, frames, room", [(".avi", 40, 200_000), (".mp4", 40, 200_000), (".avi", 6, 100_000),
                                               (".mkv", 6, 100_000)])
def test_a_recording_cut_short_by_a_full_disk_is_an_error_not_a_broken_file(tmp_path, dev_root, ext, frames, room):
    # OpenCV's VideoWriter fails silently when the disk fills up; a file size limit (RLIMIT_FSIZE) makes
    # every write past `room` bytes fail the same way, without needing a small disk. A short AVI or MKV
    # (6 frames, 100 kB of room) was kept with half its frames, exit 0: its frame count, at the file's
    # start, was written whole.
    clip = write_clip(tmp_path / "clip.avi", dev_root, frames)
    out = tmp_path / f"rec{ext}"

    def small_disk():
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))

    r = subprocess.run([sys.executable, "-m", "humanseg", "live", "--source", str(clip), "--no-window",
                        "--bkg", str(dev_root / "set3" / "bkg.png"), "--output", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip() == (f"Error: --output {out}: the video could not be written completely "
                                f"(disk full?); nothing was kept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]  # no rec.tmp, no truncated rec


def test_a_video_name_that_is_not_utf8_is_refused_not_a_crash(tmp_path, dev_root):
    # OpenCV's VideoCapture and VideoWriter take such a name (bytes Python decodes as surrogates) down
    # with the process: a segmentation fault, exit 139, and --output's temporary file left behind.
    folder = os.fsencode(tmp_path)
    clip = os.fsdecode(folder + b"/clip\xff.avi")
    os.rename(write_clip(tmp_path / "ok.avi", dev_root, 2), clip)  # (OpenCV cannot write it under that name)
    bkg = str(dev_root / "set3" / "bkg.png")
    r = subprocess.run([sys.executable, "-m", "humanseg", "live", "--source", clip, "--bkg", bkg, "--no-window"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    shown = f"{tmp_path}/clip\\xff.avi"
    assert r.returncode == 2 and r.stderr == (f"Error: --source {shown}: video file {shown}: OpenCV cannot open a "
                                              f"video whose path is not valid UTF-8; rename it (or its folder)\n")
    out = os.fsdecode(folder + b"/out\xff.mp4")
    r = subprocess.run([sys.executable, "-m", "humanseg", "live", "--source", str(dev_root / "set3"), "--bkg", bkg,
                        "--no-window", "--output", out], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == (f"Error: --output {tmp_path}/out\\xff.mp4: OpenCV cannot open a "
                                              f"video whose path is not valid UTF-8; rename it (or its folder)\n")
    assert sorted(os.listdir(folder)) == [b"clip\xff.avi"]  # no temporary file left
    # A plain relative name inside such a folder is what OpenCV is given: it opens it (it was refused).
    inside = folder + b"/caf\xe9"
    os.mkdir(inside)
    os.rename(write_clip(tmp_path / "ok.avi", dev_root, 2), os.fsdecode(inside + b"/clip.avi"))
    r = subprocess.run([sys.executable, "-m", "humanseg", "live", "--source", "clip.avi", "--bkg", bkg, "--no-window",
                        "--max-frames", "2", "--output", "out.avi"], cwd=inside, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    os.rename(inside + b"/out.avi", tmp_path / "out.avi")  # (read back from a name OpenCV takes)
    assert len(video_frames(tmp_path / "out.avi")[0]) == 2


def test_an_image_of_another_size_in_a_folder_source_is_named(tmp_path, dev_root, default_weights,
                                                               segmenter):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in (0, 1, 3):
        (folder / f"{k}.png").write_bytes((dev_root / "set3" / f"{k}.png").read_bytes())
    cv2.imwrite(str(folder / "2.png"), cv2.resize(read(dev_root, 3, "2.png"), (320, 240)))
    # Writing results, every image is read first: a bad one stops the run before anything is written
    # (it stopped at that frame, leaving the masks before it and no video).
    args = ["live", "--source", str(folder), "--bkg", str(dev_root / "set3" / "bkg.png"), "--no-window",
            "--save-masks", str(tmp_path / "masks"), "--output", str(tmp_path / "o.avi")]
    res = run_cli(*args)
    assert res.exit_code == 2
    assert res.output == f"Error: {folder / '2.png'} is 320x240 but {folder / '0.png'} is 640x480\n"
    (folder / "2.png").write_bytes(b"cut short")
    res = run_cli(*args)
    assert res.exit_code == 2 and res.output == f"Error: unreadable image in source: {folder / '2.png'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    # In a window (a demo, nothing written) the odd one is named when reached.
    cv2.imwrite(str(folder / "2.png"), cv2.resize(read(dev_root, 3, "2.png"), (320, 240)))
    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    odd = re.escape(str(folder / "2.png"))
    with pytest.raises(HumansegError, match=rf"^{odd} is 320x240 but the background is 640x480$"):
        run_live(sources.open_source(str(folder)), session, ScriptWindow({}), None)


def test_broken_video_source_is_our_one_line_only(tmp_path, dev_root):
    # In a fresh process: FFmpeg's own "moov atom not found" must not come before our line.
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(b"not a video")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OPENCV_LOG_LEVEL")}

    def live(**more):
        return subprocess.run([sys.executable, "-m", "humanseg", "live", "--source", str(junk), "--no-window",
                               "--bkg", str(dev_root / "set3" / "bkg.png")], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env={**env, **more})

    r = live()
    assert r.returncode == 2
    assert r.stderr.strip() == f"Error: --source {junk}: cannot open video file {junk}"
    # Asked for (as the README says), FFmpeg's own line is shown before ours.
    r = live(OPENCV_LOG_LEVEL="WARNING")
    assert r.returncode == 2 and "moov atom not found" in r.stderr
    assert r.stderr.splitlines()[-1] == f"Error: --source {junk}: cannot open video file {junk}"


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_keeps_the_recording_as_ctrl_c_does(tmp_path, dev_root, sig):
    # SIGHUP (the terminal closed, an ssh connection dropped) ended the process at once: exit 129, no
    # line, and only the temporary file of the recording, unplayable.
    # A `kill` mid-recording: the frames so far are kept as rec.mp4, no rec.tmp.mp4 is left behind.
    bkg = cv2.resize(read(dev_root, 2, "bkg.png"), (320, 240), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "bkg.png"), bkg)
    frames = [cv2.resize(read(dev_root, 2, f"{k}.png"), (320, 240), interpolation=cv2.INTER_AREA) for k in range(4)]
    clip = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    for i in range(3000):  # far longer than the test waits
        clip.write(frames[i % 4])
    clip.release()
    rec = tmp_path / "rec.mp4"
    mine = tmp_path / "rec.tmp.mp4"  # the user's own file of the old temporary name: never touched
    mine.write_bytes(b"mine")

    def temporary():
        return next(tmp_path.glob("rec.*.tmp.mp4"), None)

    proc = subprocess.Popen([sys.executable, "-m", "humanseg", "live", "--source", str(tmp_path / "clip.avi"),
                             "--bkg", str(tmp_path / "bkg.png"), "--no-window", "--output", str(rec)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_from_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while not ((tmp := temporary()) and tmp.stat().st_size > 20000) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(getattr(signal, sig))
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + getattr(signal, sig) and stderr.strip() == f"Error: terminated ({sig})"
    assert temporary() is None and mine.read_bytes() == b"mine"
    recorded, _ = video_frames(rec)
    assert 1 <= len(recorded) < 3000 and recorded[0].shape == (240, 320, 3)


# -- stability filter ------------------------------------------------------------------------------

def flip_share(a, b):
    return float(np.count_nonzero((a > 0) != (b > 0)) / a.size)


@pytest.mark.slow
def test_still_sequence_does_not_flicker(dev_root, segmenter):
    bkg, frame = read(dev_root, 3, "bkg.png"), read(dev_root, 3, "1.png")
    segmenter.set_background(bkg)
    rng = np.random.default_rng(0)
    filt = StabilityFilter()
    raw_masks, masks = [], []
    for _ in range(16):
        noisy = np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8)
        prob = segmenter.predict(noisy)
        raw_masks.append(prob > 0.5)
        masks.append(filt.update(noisy, prob)[1])
    flips = [flip_share(a, b) for a, b in zip(masks[3:], masks[4:])]
    raw_flips = [flip_share(a, b) for a, b in zip(raw_masks[3:], raw_masks[4:])]
    assert max(flips) <= 0.001, flips
    assert np.mean(flips) < np.mean(raw_flips)  # the filter is what keeps it still
    assert iou(masks[-1], raw_masks[-1]) > 0.98  # and it keeps the model's answer


def shifted(image, dx):
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_NEAREST)


@pytest.mark.slow
def test_moving_edge_follows_within_one_frame(dev_root, segmenter):
    # The labeled person pasted on the background, moving 8 px to the right per frame.
    bkg = read(dev_root, 3, "bkg.png")
    frame, truth = read(dev_root, 3, "1.png"), cv2.imread(str(dev_root / "set3" / "1_mask.png"), 0)
    segmenter.set_background(bkg)
    filt = StabilityFilter()
    prev_raw = None
    for t in range(10):
        person = shifted(truth, 8 * t - 40) > 127
        composite = np.where(person[..., None], shifted(frame, 8 * t - 40), bkg)
        raw = segmenter.predict(composite)
        _, mask = filt.update(composite, raw)
        if t >= 3:
            lag = flip_share(raw > 0.5, prev_raw > 0.5)  # what trailing by one frame would cost
            assert lag > 0.005
            assert flip_share(mask, raw > 0.5) < 0.1 * lag, t
        prev_raw = raw


def test_filter_blends_only_where_still():
    frame = np.full((64, 64, 3), 100, np.uint8)
    filt = StabilityFilter()  # (its defaults: a quarter of the way where still)
    filt.update(frame, np.zeros((64, 64), np.float32))
    # The left half still but for a camera's sensor noise (sigma 3), which is not movement.
    moved = np.clip(frame + np.random.default_rng(1).normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
    moved[:, 32:] = 200  # the right half changes
    prob, mask = filt.update(moved, np.ones((64, 64), np.float32))
    assert np.allclose(prob[:, 44:], 1.0)   # moving: takes the new value outright
    assert np.allclose(prob[:, :20], 0.25)  # still: a quarter of the way
    assert (mask[:, 44:] == 255).all() and (mask[:, :20] == 0).all()


# -- exposure drift and camera motion --------------------------------------------------------------

def test_a_mask_reaching_a_little_past_the_changed_pixels_follows_them_in_one_frame():
    # A bright bar moves 8 px a frame; the model's mask reaches 6 px past it on either side (a person's
    # edge is found wider than where the frame changed). The pixels next to the change follow the new
    # probability outright: the mask is the model's, not trailing by a frame ahead of the bar.
    def bar_at(x):
        frame = np.full((64, 96, 3), 100, np.uint8)
        frame[:, x:x + 8] = 200
        prob = np.zeros((64, 96), np.float32)
        prob[:, x - 6:x + 14] = 1.0
        return frame, prob

    filt = StabilityFilter()
    for x in (16, 16, 24, 32):
        frame, prob = bar_at(x)
        _, mask = filt.update(frame, prob)
        assert np.array_equal(mask > 0, prob > 0.5), x


def test_the_filter_starts_from_the_models_own_mask():
    # Nothing to smooth with yet: the first frame's mask is the model's (above 0.5), hysteresis
    # applies from the second still frame on.
    frame = np.full((48, 64, 3), 100, np.uint8)
    filt = StabilityFilter()
    masks = [filt.update(frame, np.full((48, 64), p, np.float32))[1] for p in (0.55, 0.45)]
    assert all((m == 255).all() for m in masks)  # (the second: 0.525 smoothed, on as it was)


def test_drift_monitor_compensates_exposure_and_ignores_the_person(dev_root):
    bkg = read(dev_root, 3, "bkg.png")
    frame, truth = read(dev_root, 3, "1.png"), cv2.imread(str(dev_root / "set3" / "1_mask.png"), 0)
    darker = np.clip(frame.astype(np.float32) * 0.85 - 6, 0, 255).astype(np.uint8)
    own = DriftMonitor(bkg)
    for _ in range(15):
        own_state = own.update(frame, truth)  # the dev frame's own drift (its camera's auto-exposure)
    monitor = DriftMonitor(bkg)
    for _ in range(15):
        state = monitor.update(darker, truth)
    assert not state.moved
    assert np.allclose(state.gain, own_state.gain / 0.85, atol=0.02)
    corrected = monitor.correct(darker)
    away = truth == 0
    before = np.abs(darker.astype(int) - bkg)[away].mean()
    after = np.abs(corrected.astype(int) - bkg)[away].mean()
    assert after < 0.4 * before

    rng = np.random.default_rng(3)
    same = DriftMonitor(bkg)
    for _ in range(5):
        noisy = np.clip(bkg + rng.normal(0, 3, bkg.shape), 0, 255).astype(np.uint8)
        same.update(noisy, None)
    assert same.lut is None and same.correct(noisy) is noisy  # no drift: frames pass unchanged


def test_one_frame_is_told_from_another_rooms_background_and_from_a_moved_camera(dev_root):
    # predict's check: live mode's "camera moved?" judged on a single frame, its label as the person.
    rooms = {n: read(dev_root, n, "bkg.png") for n in (3, 4, 7)}
    for n, bkg in rooms.items():
        for k in (0, 1):
            frame = read(dev_root, n, f"{k}.png")
            truth = cv2.imread(str(dev_root / f"set{n}" / f"{k}_mask.png"), cv2.IMREAD_GRAYSCALE)
            assert not background_mismatch(frame, bkg, truth)
            # The camera's exposure moved far since the background: fitted whole on this one frame, as
            # over a run of frames in live mode (smoothed, 30% of the way, it was taken for a mismatch).
            darker = np.clip(frame.astype(np.float32) * 0.7 - 10, 0, 255).astype(np.uint8)
            assert not background_mismatch(darker, bkg, truth)
            # Nor a cheaper camera's: JPEG at quality 30, a white balance moved, 160x120 with noise.
            jpeg = [cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
                    for x in (frame, bkg)]
            assert not background_mismatch(*jpeg, truth)
            tinted = np.clip(frame * np.array([0.8, 1.0, 1.2]), 0, 255).astype(np.uint8)
            assert not background_mismatch(tinted, bkg, truth)
            rng = np.random.default_rng(k)
            small = [np.clip(cv2.resize(x, (160, 120), interpolation=cv2.INTER_AREA) + rng.normal(0, 8, (120, 160, 3)),
                             0, 255).astype(np.uint8) for x in (frame, bkg)]
            assert not background_mismatch(*small, cv2.resize(truth, (160, 120), interpolation=cv2.INTER_NEAREST))
            for other, other_bkg in rooms.items():
                assert background_mismatch(frame, other_bkg, truth) == (other != n)
            # The camera nudged 16 px to the left after the background: each cut to what both see.
            assert background_mismatch(np.ascontiguousarray(frame[:, 16:]), np.ascontiguousarray(bkg[:, :-16]),
                                       np.ascontiguousarray(truth[:, 16:]))


def test_drift_monitor_smooths_over_frames_and_keeps_its_estimate_through_a_frame_that_fits_nothing(dev_root):
    bkg = read(dev_root, 3, "bkg.png")
    darker = np.clip(bkg.astype(np.float32) * 0.85 - 6, 0, 255).astype(np.uint8)
    monitor = DriftMonitor(bkg, smoothing=0.3)
    gains = [monitor.update(darker, None).gain.copy() for _ in range(30)]
    settled = gains[-1]
    assert np.allclose(settled, 1 / 0.85, atol=0.02)
    # Each frame moves the estimate 30% of the way: one dark frame is not taken whole.
    assert np.allclose(gains[0] - 1, 0.3 * (settled - 1), atol=0.005)
    assert np.allclose(gains[1] - 1, 0.51 * (settled - 1), atol=0.005)
    assert all((np.diff(np.array(gains), axis=0) >= -1e-6).all(axis=1))
    lut = monitor.lut
    levels = np.arange(256, dtype=np.float32)[:, None]
    expected = np.round(np.clip(levels * monitor.gain + monitor.offset, 0, 255)).astype(np.uint8)
    assert lut is not None and (lut.reshape(256, 3) == expected).all()
    # A frame of another view (no line fits it) leaves gain, offset and the correction as they were.
    noise = np.random.default_rng(5).integers(0, 256, bkg.shape, dtype=np.uint8)
    state = monitor.update(noise, None)
    assert (state.gain == settled).all() and (monitor.lut == lut).all()


def test_once_the_exposure_is_back_the_frames_pass_unchanged_again(dev_root):
    # A cloud passes: the frames darken, are corrected, then light up again as the background was. The
    # correction goes with the drift (the last one kept would map every later frame a few % off).
    bkg = read(dev_root, 3, "bkg.png")
    darker = np.clip(bkg.astype(np.float32) * 0.85, 0, 255).astype(np.uint8)
    monitor = DriftMonitor(bkg)
    for _ in range(10):
        monitor.update(darker, None)
    assert monitor.lut is not None
    for _ in range(30):
        monitor.update(bkg, None)
    assert monitor.lut is None and monitor.correct(bkg) is bkg


def test_drift_monitor_fits_exposure_past_a_shadow_it_was_not_told_about(dev_root):
    # A shadow on the wall over the left 15% (no mask: nothing says it is not room): the refit
    # without the pixels that still differ finds the camera's exposure change; one least-squares fit
    # over every pixel found gain 1.08 instead of 1.18.
    bkg = read(dev_root, 3, "bkg.png")
    darker = np.clip(bkg.astype(np.float32) * 0.85 - 6, 0, 255)
    clean, shaded = DriftMonitor(bkg), DriftMonitor(bkg)
    shadow = darker.copy()
    shadow[:, : 96] *= 0.6
    for _ in range(30):
        want = clean.update(darker.astype(np.uint8), None)
        got = shaded.update(shadow.astype(np.uint8), None)
    assert np.allclose(got.gain, want.gain, atol=0.02)
    assert np.allclose(got.offset, want.offset, atol=3)
    assert not got.moved


def test_drift_monitor_on_a_flat_wall_a_very_dark_frame_and_a_frame_of_a_few_pixels():
    # A flat wall tells an offset only; a gain is held to 0.5..2 (a frame gone nearly black is not
    # blown up fourfold); a frame of a few pixels tells nothing.
    wall = DriftMonitor(np.full((48, 64, 3), 120, np.uint8))
    state = [wall.update(np.full((48, 64, 3), 100, np.uint8), None) for _ in range(40)][-1]
    assert np.allclose(state.gain, 1.0) and np.allclose(state.offset, 20.0, atol=0.1)
    assert (wall.correct(np.full((48, 64, 3), 100, np.uint8)) == 120).all()  # an offset alone is corrected
    rng = np.random.default_rng(4)
    room = rng.integers(60, 250, (48, 64, 3), dtype=np.uint8)
    dark = DriftMonitor(room)
    state = [dark.update((room * 0.25).astype(np.uint8), None) for _ in range(40)][-1]
    assert np.allclose(state.gain, 2.0, atol=0.01)
    tiny = DriftMonitor(room[:3, :3])
    assert (tiny.update((room[:3, :3] * 0.5).astype(np.uint8), None).gain == 1.0).all()


def test_drift_monitor_says_when_the_camera_moved(dev_root):
    bkg = read(dev_root, 3, "bkg.png")
    monitor = DriftMonitor(bkg, moved_frames=5)
    turned = cv2.flip(bkg, 1)  # the camera now looks elsewhere
    states = [monitor.update(turned, None) for _ in range(6)]
    assert [s.moved for s in states] == [False] * 4 + [True] * 2
    # A person in front of the unmoved camera is not a moved camera.
    frame, truth = read(dev_root, 3, "1.png"), cv2.imread(str(dev_root / "set3" / "1_mask.png"), 0)
    fresh = DriftMonitor(bkg, moved_frames=5)
    assert not any(fresh.update(frame, truth).moved for _ in range(8))


def test_drift_monitor_says_when_the_camera_was_nudged_in_a_room_of_plain_walls(dev_root):
    # The camera nudged 16 px to the side after bkg.png: in set6 too few of the room's pixels differ
    # by much for the grid (under 0.3 of its cells), while the model lost up to 0.3 of a person's IoU.
    # The room found shifted against the background tells it, by as much as it moved; 4 px (which the
    # model takes in its stride) is no moved camera.
    bkg = read(dev_root, 6, "bkg.png")
    for k in range(4):
        frame, truth = read(dev_root, 6, f"{k}.png"), cv2.imread(str(dev_root / "set6" / f"{k}_mask.png"), 0)
        for nudge, moved in ((16, True), (4, False)):
            monitor = DriftMonitor(np.ascontiguousarray(bkg[:, :-nudge]), moved_frames=5)
            states = [monitor.update(np.ascontiguousarray(frame[:, nudge:]), np.ascontiguousarray(truth[:, nudge:]))
                      for _ in range(6)]
            assert [s.moved for s in states] == [False] * 4 + [moved] * 2, (k, nudge)
            assert states[-1].differing_share < 0.3, (k, nudge)
            if moved:  # the room shows 16 px further left in the frame than in the background
                assert abs(states[-1].shift[0] + 16) < 1.5 and abs(states[-1].shift[1]) < 3, states[-1].shift


def test_a_still_camera_is_never_taken_for_moved_in_any_dev_room(dev_root):
    # Every labeled frame against its own set's background, as a person standing still would be seen:
    # no room shifted, no camera moved, however many frames (OpenCV's phase correlation windowed its
    # first input in place, so the background's copy drifted frame by frame until a still room
    # looked shifted by 20-160 px after 5-10 frames).
    for n in store.list_sets(dev_root):
        info = store.scan_set(dev_root, n)
        bkg = store.read_background(info)
        for k in info.labeled:
            frame, truth = store.read_frame(info, k), store.read_mask(info.mask_path(k))
            monitor = DriftMonitor(bkg, moved_frames=5, shift_every=1)  # the shift looked for each frame
            states = [monitor.update(frame, truth) for _ in range(12)]
            assert not any(s.moved for s in states), (n, k)
            assert max(np.hypot(*s.shift) for s in states) < 3, (n, k, [s.shift for s in states])


def test_a_person_hiding_most_of_the_room_leaves_the_moved_check_undecided(dev_root):
    # Only one column of the 8x6 grid shows the room (the person covers the rest), and the room there
    # differs (a shadow, a door opened): too little of the room to tell a moved camera by.
    bkg = read(dev_root, 3, "bkg.png")
    frame, mask = bkg.copy(), np.full(bkg.shape[:2], 255, np.uint8)
    mask[:, 560:] = 0
    frame[:, 560:] = 255 - frame[:, 560:]
    monitor = DriftMonitor(bkg, moved_frames=5)
    states = [monitor.update(frame, mask) for _ in range(8)]
    assert not any(s.moved for s in states) and states[-1].differing_share == 0.0
    # The same room change with the whole room in view is told.
    moved = DriftMonitor(bkg, moved_frames=5)
    turned = bkg.copy()
    turned[:, 200:] = 255 - turned[:, 200:]
    assert [moved.update(turned, None) for _ in range(8)][-1].moved


def test_a_sliver_of_room_around_a_close_person_leaves_the_moved_check_undecided(dev_root):
    # A person close to the camera fills all but its outer 2 px; their mask misses their outline (it
    # stops 12 px from the frame's edges). Each cell at the edge shows a tenth of room, and that tenth
    # is the person's outline: under a quarter of a cell is too little to call it a moved camera.
    bkg = read(dev_root, 3, "bkg.png")
    frame = bkg.copy()
    frame[2:-2, 2:-2] = np.random.default_rng(4).integers(0, 256, (476, 636, 3), dtype=np.uint8)
    mask = np.zeros(bkg.shape[:2], np.uint8)
    mask[12:-12, 12:-12] = 255
    monitor = DriftMonitor(bkg, moved_frames=5)
    states = [monitor.update(frame, mask) for _ in range(8)]
    assert not any(s.moved for s in states) and states[-1].differing_share == 0.0


def test_a_person_filling_a_portrait_frame_is_not_a_moved_camera(dev_root):
    # The dev frames cut around the person to 9:16 and scaled to 720x1280, as a portrait camera sees
    # them: counting the person's own pixels, 5 of the 52 still frames said "camera moved?". Each
    # room flipped (the camera turned away) is still told, the person in view.
    still = turned = frames = 0
    for info in store.scan_root(dev_root):
        bkg = store.read_background(info)
        truths = {k: store.read_mask(info.mask_path(k), bkg.shape) for k in info.labeled}
        x = int(np.clip(person_centre(truths.values()) - 135, 0, 640 - 270))
        room = portrait(bkg, x, 270, (720, 1280))
        for k, truth in truths.items():
            frame = portrait(store.read_frame(info, k), x, 270, (720, 1280))
            mask = portrait(truth, x, 270, (720, 1280), cv2.INTER_NEAREST)
            monitor, flipped = DriftMonitor(room), DriftMonitor(cv2.flip(room, 1))
            still += any(monitor.update(frame, mask).moved for _ in range(15))
            turned += [flipped.update(frame, mask) for _ in range(12)][-1].moved
            frames += 1
    assert frames == 52 and still == 0 and turned == 52


def test_a_low_resolution_cameras_move_is_noticed_too(dev_root):
    # Sampled every 8 px as at 640x480, a 48x36 camera turned away (each dev room flipped) went
    # unnoticed in all 12 rooms (fewer samples than the grid's cells); sampled as densely across the
    # frame, in none. 160x120 is noticed too.
    for size in ((48, 36), (160, 120)):
        noticed = 0
        for k in range(1, 13):
            small = cv2.resize(read(dev_root, k, "bkg.png"), size, interpolation=cv2.INTER_AREA)
            monitor = DriftMonitor(small)
            noticed += [monitor.update(cv2.flip(small, 1), None) for _ in range(12)][-1].moved
        assert noticed == 12, size


class FixedSegmenter:
    """A segmenter answering one probability map; records the frames it is given."""

    def __init__(self, prob):
        self.prob, self.seen, self.backgrounds = prob, [], 0

    def set_background(self, background):
        self.backgrounds += 1

    def predict(self, frame):
        self.seen.append(frame.copy())
        return self.prob


def nobody_session(bkg):
    """A LiveSession against `bkg` whose model sees nobody (probability 0 everywhere)."""
    session = LiveSession(FixedSegmenter(np.zeros(bkg.shape[:2], np.float32)))
    session.set_background(bkg)
    return session


def test_a_new_background_clears_the_moved_camera_and_starts_the_drift_afresh(dev_root):
    # "Camera moved? press b": the warning has to go once b has taken the new view.
    bkg = read(dev_root, 3, "bkg.png")
    turned = cv2.flip(bkg, 1)
    session = nobody_session(bkg)
    assert [session.process(turned).drift.moved for _ in range(10)][-1]
    session.set_background(turned)
    assert not any(session.process(turned).drift.moved for _ in range(12))


def test_a_run_of_moved_frames_must_be_unbroken_and_a_new_background_starts_smoothing_afresh(dev_root):
    bkg = read(dev_root, 3, "bkg.png")
    turned = cv2.flip(bkg, 1)
    monitor = DriftMonitor(bkg, moved_frames=3)
    states = [monitor.update(frame, None) for frame in [turned, turned, bkg] * 4]  # a passing truck
    assert not any(s.moved for s in states)
    # After a new background the stability filter starts from the new frames, not the old mask.
    model = FixedSegmenter(np.ones(bkg.shape[:2], np.float32))
    session = LiveSession(model)
    session.set_background(bkg)
    for _ in range(5):
        session.process(bkg)
    model.prob = np.zeros(bkg.shape[:2], np.float32)
    session.set_background(bkg)
    assert not session.process(bkg).prob.any()


def test_the_person_is_left_out_of_the_drift_and_moved_checks_in_the_live_loop(dev_root):
    # LiveSession hands the frame's person mask to the drift monitor: with the person's own pixels
    # counted, someone close to the camera (here two thirds of the frame) read as a moved camera.
    bkg = read(dev_root, 3, "bkg.png")
    frame = bkg.copy()
    frame[:, :430] = np.random.default_rng(2).integers(0, 256, (480, 430, 3), dtype=np.uint8)
    prob = np.zeros(bkg.shape[:2], np.float32)
    prob[:, :430] = 1.0
    session = LiveSession(FixedSegmenter(prob))
    session.set_background(bkg)
    assert not any(session.process(frame).drift.moved for _ in range(15))
    blind = DriftMonitor(bkg)  # (what the same frames say counted whole)
    assert [blind.update(frame, None) for _ in range(15)][-1].moved


def test_frames_reach_the_model_exposure_corrected_unless_raw(dev_root):
    # The drift's correction is what the live loop feeds the model (--raw: the frames as they are,
    # as evaluate sees them).
    bkg = read(dev_root, 3, "bkg.png")
    darker = np.clip(bkg.astype(np.float32) * 0.8, 0, 255).astype(np.uint8)
    for compensate in (True, False):
        model = FixedSegmenter(np.zeros(bkg.shape[:2], np.float32))
        session = LiveSession(model, compensate=compensate)
        session.set_background(bkg)
        result = run_live(ListSource([darker], limit=20), session, None, None, None, media_clock=True)
        assert result.frames == 20
        first, last = model.seen[0], model.seen[-1]
        assert np.array_equal(first, darker)  # nothing known yet about the drift
        if compensate:
            assert np.abs(last.astype(int) - bkg).mean() < 0.3 * np.abs(darker.astype(int) - bkg).mean()
            lut = session.correction()
            session.process(darker)  # (the capture tool's live overlay: the same correction)
            assert np.array_equal(model.seen[-1], cv2.LUT(darker, lut))
        else:
            assert all(np.array_equal(f, darker) for f in model.seen)


def test_the_background_is_averaged_from_frames_after_the_countdown_only():
    # The countdown is the time to step out of view: its frames (the person still there) stay out.
    grabber = BackgroundGrabber(countdown=3.0, seconds=1.0)
    person, room = np.full((4, 6, 3), 200, np.uint8), np.full((4, 6, 3), 50, np.uint8)
    grabber.start(10.0)
    assert all(grabber.feed(person, t) is None for t in (10.0, 11.0, 12.9))
    assert grabber.feed(room, 13.0) is None and grabber.feed(room, 13.5) is None
    # Nor the first frame past the room's second (someone stepping back in then went into the room):
    # it is left to be segmented.
    assert np.array_equal(grabber.feed(person, 14.0), room) and not grabber.took_last
    grabber.start(20.0)  # a source so slow that no frame came within the second: that one frame
    assert np.array_equal(grabber.feed(room, 25.0), room) and grabber.took_last


def test_a_background_averaged_across_a_change_of_frame_size_keeps_the_last_size_only():
    # A folder of pictures of two sizes while the background is averaged: the frames of the earlier
    # size are dropped from the mean (no mean of two sizes, no numpy error), the background has the
    # size of the frames that follow.
    grabber = BackgroundGrabber(countdown=0.0, seconds=1.0)
    small, large = np.full((4, 6, 3), 200, np.uint8), np.full((8, 12, 3), 50, np.uint8)
    grabber.start(0.0)
    assert grabber.feed(small, 0.0) is None and grabber.feed(small, 0.5) is None
    assert grabber.feed(large, 0.6) is None and grabber.feed(large + 10, 0.9) is None
    assert np.array_equal(grabber.feed(large + 100, 1.0), np.full((8, 12, 3), 55, np.uint8))


def test_a_window_with_save_masks_or_output_goes_through_a_file_once(tmp_path, dev_root, monkeypatch):
    # Files loop in a window (a demo), but a run writing masks or a recording must end: looped, it
    # wrote masks for ever.
    from humanseg import live as live_module

    asked = []

    def open_and_stop(source, loop=False):
        asked.append(loop)
        raise HumansegError("stop here")

    monkeypatch.setattr(live_module, "open_source_quietly", open_and_stop)
    monkeypatch.setattr("humanseg.display.require_display", lambda: None)  # (no window is opened)
    bkg = str(dev_root / "set3" / "bkg.png")
    for extra in ([], ["--save-masks", str(tmp_path / "m")], ["--output", str(tmp_path / "o.avi")], ["--no-window"]):
        res = CliRunner().invoke(cli, ["live", "--source", str(dev_root / "set3"), "--bkg", bkg, *extra])
        assert res.exit_code == 2 and "stop here" in res.output, res.output
    assert asked == [True, False, False, False]


# -- views -----------------------------------------------------------------------------------------

def test_views_composite_person_over_each_backdrop():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    prob = np.zeros((48, 64), np.float32)
    prob[:, 32:] = 1.0
    mask = np.where(prob > 0.5, 255, 0).astype(np.uint8)
    replacement = np.full((10, 10, 3), (10, 20, 30), np.uint8)
    comp = Compositor(replacement)
    green = comp.compose("green", frame, prob, mask)
    assert (green[:, :32] == (0, 255, 0)).all() and np.array_equal(green[:, 32:], frame[:, 32:])
    replaced = comp.compose("replace", frame, prob, mask)
    assert (replaced[:, :32] == (10, 20, 30)).all() and np.array_equal(replaced[:, 32:], frame[:, 32:])
    blurred = comp.compose("blur", frame, prob, mask)
    assert np.array_equal(blurred[:, 32:], frame[:, 32:])
    assert blurred[:, :28].astype(float).std() < 0.5 * frame[:, :28].astype(float).std()
    tinted = comp.compose("tint", frame, prob, mask)
    assert np.array_equal(tinted[:, :32], frame[:, :32])
    # The person: a little under half way from the frame to green (0, 200, 0), to within rounding.
    toward = np.array([0, 200, 0]) - frame[:, 32:].astype(int)
    moved = tinted[:, 32:].astype(int) - frame[:, 32:].astype(int)
    assert np.abs(moved - 0.45 * toward).max() <= 1
    side = comp.compose("side", frame, prob, mask)
    assert side.shape == (48, 128, 3) and np.array_equal(side[:, 64:, 0], mask)
    default = Compositor().compose("replace", frame, prob, mask)
    assert default.shape == frame.shape
    with pytest.raises(HumansegError):
        comp.compose("sepia", frame, prob, mask)


def test_a_replacement_of_another_shape_is_scaled_to_cover_not_squashed():
    # A 4:1 picture was stretched to the frame's 4:3: a round thing in it came out three times as tall
    # as wide.
    wide = np.zeros((100, 400, 3), np.uint8)
    cv2.circle(wide, (200, 50), 40, (255, 255, 255), -1)
    frame = np.zeros((480, 640, 3), np.uint8)
    prob = np.zeros((480, 640), np.float32)
    out = Compositor(wide).compose("replace", frame, prob, np.zeros((480, 640), np.uint8))
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    height, width = np.ptp(ys) + 1, np.ptp(xs) + 1
    # 81 px across, scaled by 480 / 100 both ways.
    assert out.shape == (480, 640, 3) and abs(height - width) <= 4 and height == pytest.approx(81 * 4.8, abs=3)
    # Centred (the circle sits half a pixel off the picture's centre: 2.4 px here).
    assert abs((ys.min() + ys.max()) / 2 - 239.5) <= 4 and abs((xs.min() + xs.max()) / 2 - 319.5) <= 4
    # A portrait one: scaled by 640 / 100 both ways, so the circle (518 px) overhangs top and bottom.
    tall = np.ascontiguousarray(np.transpose(wide, (1, 0, 2)))
    out = Compositor(tall).compose("replace", frame, prob, np.zeros((480, 640), np.uint8))
    ys, xs = np.nonzero(out[:, :, 0] > 127)
    assert np.ptp(xs) + 1 == pytest.approx(81 * 6.4, abs=3) and (ys.min(), ys.max()) == (0, 479)


def test_a_replacement_a_little_narrower_than_the_frame_is_scaled_whole_not_cut_to_a_strip():
    # A square picture behind a 4:3 frame overhangs top and bottom only: both its halves stay in
    # view (its left and right edges were never to be cut), and a picture a pixel wide still covers.
    square = np.zeros((300, 300, 3), np.uint8)
    square[:, 150:] = 255
    frame = np.zeros((480, 640, 3), np.uint8)
    prob, mask = np.zeros((480, 640), np.float32), np.zeros((480, 640), np.uint8)
    out = Compositor(square).compose("replace", frame, prob, mask)
    assert (out[:, :315, 0] == 0).all() and (out[:, 325:, 0] == 255).all()
    column = np.full((3000, 1, 3), 90, np.uint8)
    assert (Compositor(column).compose("replace", frame, prob, mask) == 90).all()


def test_the_replaced_backdrop_fits_each_frame_size_it_is_drawn_behind():
    # The backdrop is scaled once per frame size: a frame of another size (a background re-captured
    # at the camera's new size) gets its own, not the first size's.
    comp = Compositor(np.full((30, 40, 3), 70, np.uint8))
    for h, w in ((48, 64), (24, 32), (48, 64)):
        out = comp.compose("replace", np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.float32),
                           np.zeros((h, w), np.uint8))
        assert out.shape == (h, w, 3) and (out == 70).all()


# -- background capture ---------------------------------------------------------------------------

def test_background_grabber_waits_the_countdown_then_averages_noise_away():
    rng = np.random.default_rng(2)
    clean = np.full((20, 30, 3), 120, np.uint8)
    grab = BackgroundGrabber(countdown=2.0, seconds=1.0)
    grab.start(0.0)
    result = None
    for i in range(1, 200):
        now = i / 30
        noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
        result = grab.feed(noisy, now)
        if now < 3.0:
            assert result is None and grab.running
            assert grab.seconds_left(now) == pytest.approx(max(0.0, 2.0 - now))
        if result is not None:
            break
    assert now == pytest.approx(3.0, abs=1 / 30) and not grab.running
    assert np.abs(result.astype(float) - clean).std() < 6 / 3  # ~30 frames averaged


# -- the loop: keys, re-capture, warning ----------------------------------------------------------

class ListSource:
    def __init__(self, frames, limit=None):
        self.frames, self.limit, self.reads, self.released = frames, limit or len(frames), 0, False
        self.fps = 30.0

    def read(self):
        if self.reads >= self.limit:
            return None
        frame = self.frames[self.reads % len(self.frames)]
        self.reads += 1
        return frame

    def release(self):
        self.released = True


@pytest.mark.slow
def test_loop_keys_cycle_views_recapture_and_quit(dev_root, segmenter, tmp_path):
    bkg = read(dev_root, 3, "bkg.png")
    frames = [read(dev_root, 3, f"{k}.png") for k in range(4)]
    session = LiveSession(segmenter, view="tint")
    session.set_background(bkg)
    window = ScriptWindow({1: [ord("v")], 2: [ord("v")], 4: [ord("b")], 30: [ord("q")]})
    events = []
    out = VideoOutput(tmp_path / "o.avi", 30.0)
    result = run_live(ListSource(frames, limit=100), session, window, out,
                      BackgroundGrabber(countdown=0.2, seconds=0.1), media_clock=True, log=events.append)
    assert [e["view"] for e in events if e["event"] == "view"] == ["blur", "replace"]
    assert {"event": "background", "state": "captured"} in events and result.backgrounds == 1
    assert events[-1] == {"event": "quit", "by": "key"}
    assert window.closed and result.output == tmp_path / "o.avi"
    # countdown 0.2 s + 0.1 s = 9 frames not segmented; all but the last (the capture) were shown.
    frames_out, _ = video_frames(result.output)
    assert len(frames_out) == result.frames and len(window.shown) == result.frames + 8


def test_the_model_is_idle_when_a_new_background_replaces_the_old():
    # Key b, no countdown: the frame still in the model (its worker thread) is finished before the new
    # background's features are set; set meanwhile, that frame was segmented half against each.
    class Slow(FixedSegmenter):
        busy = False

        def set_background(self, background):
            self.backgrounds += 1
            self.seen.append(("background", self.busy))

        def predict(self, frame):
            self.busy = True
            time.sleep(0.2)
            self.busy = False
            return self.prob

    bkg = np.full((48, 64, 3), 100, np.uint8)
    model = Slow(np.zeros((48, 64), np.float32))
    session = LiveSession(model)
    session.set_background(bkg)
    result = run_live(ListSource([bkg], limit=4), session, ScriptWindow({0: [ord("b")]}),
                      grabber=BackgroundGrabber(countdown=0, seconds=0))
    assert result.backgrounds == 1 and model.seen == [("background", False)] * 2


def test_q_on_the_last_frame_segmented_before_a_countdown_quits():
    # b, then q on the frame still in the model when the countdown began: the countdown's own window
    # must not swallow the quit.
    bkg = np.full((48, 64, 3), 100, np.uint8)
    events = []
    source = ListSource([bkg], limit=50)
    run_live(source, nobody_session(bkg), ScriptWindow({0: [ord("b")], 1: [ord("q")]}),
             grabber=BackgroundGrabber(countdown=3, seconds=1), media_clock=True, log=events.append)
    assert events == [{"event": "background", "state": "countdown"}, {"event": "quit", "by": "key"}]
    assert source.reads == 3


def test_keys_that_mean_nothing_here_change_nothing():
    # x means nothing in the live window; b means nothing without a background grabber (run_live
    # given none): the session goes on in its view until q.
    bkg = np.full((48, 64, 3), 100, np.uint8)
    session = nobody_session(bkg)
    view = session.view
    events = []
    result = run_live(ListSource([bkg], limit=50), session, ScriptWindow({1: [ord("x")], 2: [ord("b")], 4: [ord("q")]}),
                      log=events.append)
    assert events == [{"event": "quit", "by": "key"}] and result.frames == 5 and result.backgrounds == 0
    assert session.view == view


def test_esc_quits_as_q_does(dev_root):
    bkg = read(dev_root, 3, "bkg.png")
    session = nobody_session(bkg)
    events = []
    result = run_live(ListSource([bkg], limit=50), session, ScriptWindow({3: [27]}), log=events.append)
    assert events[-1] == {"event": "quit", "by": "key"} and result.frames == 4


def test_a_small_camera_is_shown_enlarged_and_recorded_at_its_size(dev_root, segmenter, tmp_path):
    # A 160x120 camera's window had its status line drawn 3 pixels high: it is drawn on the frame
    # enlarged 4 times, while the recording keeps the camera's own size.
    small = quarter_size(dev_root)
    session = LiveSession(segmenter, view="tint")
    session.set_background(small[0])
    window = ScriptWindow({})
    result = run_live(ListSource(small[1:], limit=3), session, window, VideoOutput(tmp_path / "o.avi", 30.0),
                      media_clock=True)
    assert result.frames == 3 and window.scales == [4.0] * 3
    assert all(shown.shape == (H, W, 3) for shown in window.shown)
    frames_out, _ = video_frames(result.output)
    assert [f.shape for f in frames_out] == [(H // 4, W // 4, 3)] * 3
    # What is shown is the recorded (tinted) frame enlarged, text aside.
    enlarged = cv2.resize(frames_out[-1], (W, H), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(window.shown[-1][40:400].astype(int) - enlarged[40:400]).mean() < 4


def test_a_small_cameras_side_by_side_view_is_enlarged_as_much(dev_root, segmenter):
    # The side view is twice as wide: enlarged by its own size, a 160x120 camera's got 2x, not 4x,
    # and its window shrank when v reached it.
    small = quarter_size(dev_root)
    session = LiveSession(segmenter, view="side")
    session.set_background(small[0])
    window = ScriptWindow({})
    run_live(ListSource(small[1:], limit=2), session, window)
    assert window.scales == [4.0] * 2 and window.shown[-1].shape == (H, 2 * W, 3)


def test_a_file_in_a_window_plays_at_its_frame_rate(dev_root, segmenter):
    # A 30 fps clip in a window ran at 55-100 fps, its 3 s countdown over in under a second.
    small = quarter_size(dev_root)
    session = LiveSession(segmenter, view="tint")
    session.set_background(small[0])
    started = time.monotonic()
    result = run_live(ListSource(small[1:], limit=30), session, PacedWindow({}), media_clock=True)
    assert result.frames == 30 and time.monotonic() - started >= 0.9 * 29 / 30
    # A clip of under one frame a second: each frame waited at most a second.
    slow_clip = ListSource(small[1:], limit=1)
    slow_clip.fps = 0.5
    started = time.monotonic()
    run_live(slow_clip, session, PacedWindow({}), media_clock=True)
    assert time.monotonic() - started >= 1.8


def test_a_file_in_a_window_that_fell_behind_does_not_race_to_catch_up(dev_root, segmenter):
    # Shown frame n was due at start + n / fps: after a slow stretch (a model slower than the clip)
    # frames were shown without a wait until the lag was made up, and a background countdown pressed
    # then (its frames skip the model) was over in a fraction of its time.
    small = quarter_size(dev_root)
    session = LiveSession(segmenter, view="tint")
    session.set_background(small[0])
    fast = session.segment

    def slow(frame, correction):
        time.sleep(0.07)  # half the clip's pace
        return fast(frame, correction)

    session.segment = slow
    events = []
    stamp = time.monotonic
    run_live(ListSource(small[1:], limit=20 + 18 + 6 + 3), session, PacedWindow({19: [ord("b")]}),
             grabber=BackgroundGrabber(countdown=0.6, seconds=0.2), media_clock=True,
             log=lambda e: events.append((stamp(), e)))
    start = next(t for t, e in events if e.get("state") == "countdown")
    end = next(t for t, e in events if e.get("state") == "captured")
    assert end - start >= 0.7  # 0.8 s of the clip


@pytest.mark.slow
def test_camera_moved_warning_is_drawn(dev_root, segmenter):
    bkg = read(dev_root, 3, "bkg.png")
    turned = cv2.flip(bkg, 1)
    session = LiveSession(segmenter, view="tint")
    session.set_background(bkg)
    window = ScriptWindow({})
    result = run_live(ListSource([turned], limit=14), session, window)
    assert result.moved_frames == 14 - 9  # after 10 frames in a row
    # The warning is a darkened band a quarter down the frame, there from then on.
    band = slice(124, 144)
    assert window.shown[-1][band].mean() < window.shown[0][band].mean() - 20
    assert abs(window.shown[-6][band].mean() - window.shown[0][band].mean()) < 5
    # --raw (no filter, no exposure correction) turned the check off too, without a word.
    raw = LiveSession(segmenter, view="tint", smooth=False, compensate=False)
    raw.set_background(bkg)
    assert run_live(ListSource([turned], limit=14), raw, ScriptWindow({})).moved_frames == 14 - 9


class DyingCamera(ListSource):
    """A camera unplugged after `limit` frames: its next read raises, as VideoSource's does."""

    def read(self):
        if self.reads >= self.limit:
            raise CameraStopped("camera 0 gave no frame for 2 s (unplugged, or in use by another program?)")
        return super().read()


class CameraClock:
    """A camera's frames at `rate` per second: each read moves this clock one frame on."""

    def __init__(self, source, rate):
        self.now, self.source, self.rate = 0.0, source, rate
        read = source.read

        def timed_read():
            self.now += 1 / rate
            return read()
        source.read = timed_read

    def __call__(self):
        return self.now


def test_an_unplugged_camera_keeps_the_recording_so_far(dev_root, segmenter, tmp_path):
    # A failure discards a half-written file; a camera that stops ends the recording, which is kept.
    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    out = VideoOutput(tmp_path / "o.avi", 30.0)
    source = DyingCamera([read(dev_root, 3, f"{k}.png") for k in range(2)], limit=5)
    with pytest.raises(CameraStopped, match="camera 0 gave no frame"):
        run_live(source, session, None, out, clock=CameraClock(source, 30.0))
    assert source.released and [p.name for p in tmp_path.iterdir()] == ["o.avi"]
    frames_out, _ = video_frames(tmp_path / "o.avi")
    assert len(frames_out) == 5  # the fifth too: read, and still in the model when the camera stopped (lost)
    # A camera that changes size mid-session (a USB camera renegotiating) ends the same way: exit 1,
    # the recording and the masks of every frame before kept. It was bad input (exit 2), its recording
    # discarded while its masks stayed, and the frame before the change lost.

    class ResizedCamera(ListSource):
        is_camera = True

    frames = [read(dev_root, 3, f"{k}.png") for k in range(3)]
    source = ResizedCamera([*frames, cv2.resize(frames[0], (320, 240))])
    out, masks = VideoOutput(tmp_path / "r.avi", 30.0), tmp_path / "masks"
    masks.mkdir()
    with pytest.raises(CameraStopped) as stopped:
        run_live(source, session, None, out, masks_dir=masks, clock=CameraClock(source, 30.0))
    assert str(stopped.value) == ("frame 4 of the source is 320x240 but the background is 640x480 (the camera "
                                  "changed size while running?); what was recorded so far is kept")
    assert stopped.value.exit_code == 1 and source.released
    assert len(video_frames(tmp_path / "r.avi")[0]) == 3 and sorted(p.name for p in masks.iterdir()) == [
        "0_mask.png", "1_mask.png", "2_mask.png"]
    source = ResizedCamera([*frames, cv2.resize(frames[0], (320, 240))])  # nothing recorded: nothing said kept
    with pytest.raises(CameraStopped, match=r"\(the camera changed size while running\?\)$"):
        run_live(source, session, None, clock=CameraClock(source, 30.0))


def test_a_folder_image_deleted_while_playing_keeps_the_recording_so_far(dev_root, segmenter, tmp_path):
    # An image of a folder source gone mid-session ended the run with exit 1 as it should, but its
    # recording of the frames before was discarded while their masks stayed: now kept, as a camera's.
    from humanseg.sources import ImageFolderSource, SourceGone

    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(6):
        shutil.copy(dev_root / "set3" / f"{i % 4}.png", folder / f"{i}.png")

    class Deleting(ImageFolderSource):
        def read(self):
            if self.index == 3:  # three frames delivered, then 4.png goes
                (folder / "4.png").unlink()
            return super().read()

    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    source = Deleting(sorted(str(p) for p in folder.iterdir()))
    out, masks = VideoOutput(tmp_path / "o.avi", 30.0), tmp_path / "masks"
    masks.mkdir()
    with pytest.raises(SourceGone) as gone:
        run_live(source, session, None, out, masks_dir=masks, media_clock=True)
    assert str(gone.value) == (f"image {folder / '4.png'} in source could no longer be read (moved, deleted or "
                               f"changed while playing?)") and gone.value.exit_code == 1
    assert len(video_frames(tmp_path / "o.avi")[0]) == 4 and len(list(masks.iterdir())) == 4


def test_save_masks_never_takes_another_outputs_name_nor_writes_over_an_input(dev_root, tmp_path):
    # --save-masks named as --output (or --save-bkg) made a folder there and failed at the end (with
    # --force, "Is a directory" and the recording left as NAME.PID.RANDOM.tmp.mp4); a --bkg or --replace
    # image named as a mask in the masks' folder was written over (or removed as an earlier mask).
    src, bkg = dev_root / "set2", str(dev_root / "set2" / "bkg.png")
    for option, name in (("--output", "v.mp4"), ("--save-bkg", "room.png")):
        for force in ([], ["--force"]):
            res = run_cli("live", "--source", str(src), "--no-window", "--countdown", "0", option,
                          str(tmp_path / name), "--save-masks", str(tmp_path / name), *force)
            assert res.exit_code == 2 and res.output == (f"Error: --save-masks {tmp_path / name} is the {option} "
                                                         f"file; give them two names\n"), res.output
    looks = tmp_path / "looks"
    looks.mkdir()
    shutil.copy(bkg, looks / "0_mask.png")
    shutil.copy(dev_root / "set2" / "1.png", looks / "9_mask.png")
    kept = {p.name: p.read_bytes() for p in looks.iterdir()}
    for args, option, image in ((["--bkg", str(looks / "0_mask.png")], "--bkg", looks / "0_mask.png"),
                                (["--bkg", bkg, "--view", "replace", "--replace", str(looks / "9_mask.png")],
                                 "--replace", looks / "9_mask.png")):
        res = run_cli("live", "--source", str(src), "--no-window", *args, "--save-masks", str(looks), "--force")
        assert res.exit_code == 2 and res.output == (f"Error: --save-masks {looks} would write over the {option} "
                                                     f"image {image}; choose another folder\n"), res.output
    assert {p.name: p.read_bytes() for p in looks.iterdir()} == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["looks"]
    # Headless, the view never changes: a --replace for another view was taken and never shown.
    res = run_cli("live", "--source", str(src), "--no-window", "--bkg", bkg, "--replace", bkg, "--output",
                  str(tmp_path / "r.mp4"))
    assert res.exit_code == 2 and res.output.endswith(
        "--replace is the image behind the person in --view replace; with --no-window the view stays tint: add "
        "--view replace, or leave --replace out\n") and not (tmp_path / "r.mp4").exists()
    # Headless with --bkg no background is captured, and with --save-bkg alone the run ends at the one
    # captured: --countdown / --bkg-seconds, and --max-frames, were taken and never used.
    for args, line in ((["--bkg", bkg, "--countdown", "9", "--save-masks", str(tmp_path / "m")],
                        "--countdown times the capture of a background; with --bkg and --no-window none is "
                        "captured: leave one of them out"),
                       (["--bkg", bkg, "--bkg-seconds", "0", "--save-masks", str(tmp_path / "m")],
                        "--bkg-seconds times the capture of a background; with --bkg and --no-window none is "
                        "captured: leave one of them out"),
                       (["--save-bkg", str(tmp_path / "room.png"), "--max-frames", "5"],
                        "--max-frames counts segmented frames; with --no-window and --save-bkg alone the run ends "
                        "once the background is captured: add --output or --save-masks, or leave --max-frames out")):
        res = run_cli("live", "--source", str(src), "--no-window", *args)
        assert res.exit_code == 2 and res.output.endswith(f"Error: {line}\n"), res.output
    # An output's folder that is a file is said to be one (it was "does not exist").
    (tmp_path / "afile").write_text("x")
    for option, name in (("--output", "x.mp4"), ("--save-bkg", "x.png")):
        res = run_cli("live", "--source", str(src), "--no-window", option, str(tmp_path / "afile" / name))
        assert res.exit_code == 2 and res.output == (f"Error: {option} {tmp_path / 'afile' / name}: folder "
                                                     f"{tmp_path / 'afile'} is a file, not a folder\n"), res.output


def test_a_second_ctrl_c_while_the_recording_is_closed_keeps_it(dev_root, segmenter, tmp_path):
    # Ctrl-C twice: the second, arriving while the video was being finished, aborted the process and
    # left only NAME.tmp.avi. It is now held until the recording is closed, then stops the run.
    import signal

    class InterruptedAgain(VideoOutput):
        def close(self):
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, in the middle of closing
            return super().close()

    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    source = ListSource([read(dev_root, 3, f"{k}.png") for k in range(2)], limit=3)
    with pytest.raises(KeyboardInterrupt):
        run_live(source, session, None, InterruptedAgain(tmp_path / "o.avi", 30.0), media_clock=True)
    assert [p.name for p in tmp_path.iterdir()] == ["o.avi"]
    assert len(video_frames(tmp_path / "o.avi")[0]) == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_ctrl_c_while_a_frame_is_written_keeps_its_mask_with_it(dev_root, segmenter, tmp_path, monkeypatch):
    # A Ctrl-C between a frame's mask write and its video write (the mask goes first) kept one mask
    # more than the video's frames.
    import signal

    from humanseg import live as live_module

    real = store.write_image

    def interrupted_after_the_third_mask(path, image, overwrite=False):
        written = real(path, image, overwrite)
        if Path(path).name == "2_mask.png":
            os.kill(os.getpid(), signal.SIGINT)  # before the frame goes into the video
        return written

    monkeypatch.setattr(live_module.store, "write_image", interrupted_after_the_third_mask)
    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    source = ListSource([read(dev_root, 3, f"{k}.png") for k in range(2)], limit=10)
    (tmp_path / "m").mkdir()  # (live_command makes it)
    with pytest.raises(KeyboardInterrupt):
        run_live(source, session, None, VideoOutput(tmp_path / "o.avi", 30.0), media_clock=True,
                 masks_dir=tmp_path / "m")
    assert len(video_frames(tmp_path / "o.avi")[0]) == 3
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["0_mask.png", "1_mask.png", "2_mask.png"]


def disk_full_at(monkeypatch, name: str) -> None:
    """store.write_image, as live mode calls it, fails with a full disk's OSError when it writes `name`."""
    import errno

    from humanseg import live as live_module

    real = store.write_image

    def full_there(path, image, overwrite=False):
        if Path(path).name == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, image, overwrite)

    monkeypatch.setattr(live_module.store, "write_image", full_there)


def test_a_mask_that_cannot_be_written_keeps_the_recording_as_long_as_the_masks(dev_root, segmenter, tmp_path,
                                                                                monkeypatch):
    # --save-masks on a full disk: the run ended and the recording (a camera's, made once) was deleted.
    from humanseg.live import MaskNotWritten

    disk_full_at(monkeypatch, "3_mask.png")
    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    source = ListSource([read(dev_root, 3, f"{k}.png") for k in range(2)], limit=10)
    (tmp_path / "m").mkdir()
    with pytest.raises(MaskNotWritten) as failed:
        run_live(source, session, None, VideoOutput(tmp_path / "o.avi", 30.0), media_clock=True,
                 masks_dir=tmp_path / "m")
    assert str(failed.value) == (f"{tmp_path / 'm' / '3_mask.png'}: No space left on device; the recording so "
                                 f"far is kept: {tmp_path / 'o.avi'}") and failed.value.exit_code == 1
    assert len(video_frames(tmp_path / "o.avi")[0]) == 3
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["0_mask.png", "1_mask.png", "2_mask.png"]


@pytest.mark.slow
def test_save_bkg_keeps_the_background_live_captured(tmp_path, dev_root, copy_set, default_weights):
    # A background live mode captured (no --bkg, or key b) was lost at exit; --save-bkg keeps it for --bkg.
    folder = dev_root / "set3"
    room = tmp_path / "room.png"
    args = ["live", "--source", str(folder), "--no-window", "--countdown", "0", "--bkg-seconds", "0",
            "--weights", str(default_weights), "--save-bkg", str(room)]  # (it ends once the room is saved)
    res = run_cli(*args)
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.output.splitlines()]
    assert {"event": "background", "state": "captured", "saved": str(room)} in events
    assert np.array_equal(cv2.imread(str(room)), read(dev_root, 3, "0.png"))  # 0 s of frames: the first
    again = run_cli(*args)
    assert again.exit_code == 2 and again.output == (f"Error: --save-bkg {room} already exists (pass --force "
                                                     f"to overwrite)\n")
    assert run_cli(*args, "--force").exit_code == 0
    reused = run_cli("live", "--source", str(folder), "--no-window", "--bkg", str(room), "--max-frames", "1",
                     "--weights", str(default_weights))
    assert reused.exit_code == 0, reused.output
    # A clip of the empty room, only to keep its background: no frame is left to segment, and that
    # is no failure (it said "nothing segmented" and exited 1 with the room saved).
    only = tmp_path / "only"
    only.mkdir()
    for k in range(4):  # at 30 frames per second: the fourth, at 0.1 s, ends the 0.1 s of background
        shutil.copy(folder / "bkg.png", only / f"{k}.png")
    res = run_cli("live", "--source", str(only), "--no-window", "--countdown", "0", "--bkg-seconds", "0.1",
                  "--weights", str(default_weights), "--save-bkg", str(tmp_path / "only.png"))
    assert res.exit_code == 0 and '"frames": 0' in res.output, res.output
    assert np.array_equal(cv2.imread(str(tmp_path / "only.png")), read(dev_root, 3, "bkg.png"))
    res = run_cli("live", "--source", str(only), "--no-window", "--countdown", "0", "--bkg-seconds", "0.1",
                  "--weights", str(default_weights), "--save-bkg", str(tmp_path / "o2.png"), "--output",
                  str(tmp_path / "o2.avi"))
    # With something to record, that fourth frame (past the room's second, not averaged into it since
    # the fifty-sixth day) is segmented and recorded: the run had said "nothing written", exit 1.
    assert res.exit_code == 0 and '"frames": 1' in res.output, res.output
    assert len(video_frames(tmp_path / "o2.avi")[0]) == 1

    def refused(*more):
        res = run_cli("live", "--source", str(folder), "--no-window", "--weights", str(default_weights), *more)
        assert res.exit_code == 2
        return res.output

    assert refused("--save-bkg", str(tmp_path / "room.jpg")) == (
        f"Error: --save-bkg {tmp_path / 'room.jpg'}: name a .png file (backgrounds are kept lossless)\n")
    captured = copy_set(3) / "set3" / "bkg.png"
    assert refused("--save-bkg", str(captured), "--force") == (
        f"Error: --save-bkg {captured} is a file of the capture set {captured.parent}; write it somewhere else\n")
    assert refused("--save-bkg", str(tmp_path / "no" / "room.png")) == (
        f"Error: --save-bkg {tmp_path / 'no' / 'room.png'}: folder {tmp_path / 'no'} does not exist\n")
    assert refused("--bkg", str(folder / "bkg.png"), "--save-bkg", str(tmp_path / "r.png")) == (
        f"Error: --save-bkg {tmp_path / 'r.png'}: nothing to save: with --bkg and --no-window no background "
        f"is captured\n")
    assert not (tmp_path / "r.png").exists() and np.array_equal(cv2.imread(str(captured)),
                                                                 read(dev_root, 3, "bkg.png"))


@pytest.mark.slow
def test_live_follows_a_far_person_in_a_video_not_in_a_folder_or_raw(tmp_path, dev_root, default_weights,
                                                                    monkeypatch):
    # Following a far person in their crop assumes one stream: a folder's frames are separate pictures,
    # and --raw promises each frame's mask as evaluate gives it.
    import humanseg.model

    made = []
    real = humanseg.model.load_segmenter
    monkeypatch.setattr(humanseg.model, "load_segmenter", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    folder = dev_root / "set3"
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for k in range(2):
        writer.write(read(dev_root, 3, f"{k}.png"))
    writer.release()
    for source, raw, tracked in ((clip, [], True), (clip, ["--raw"], False), (folder, [], False)):
        res = run_cli("live", "--source", str(source), "--bkg", str(folder / "bkg.png"), "--no-window",
                      "--weights", str(default_weights), *raw)
        assert res.exit_code == 0, res.output
        assert made[-1].track is tracked, (source, raw)


def test_save_bkg_in_a_place_that_cannot_be_written_is_refused_at_the_start(dev_root, read_only_folder):
    room = read_only_folder / "room.png"
    res = run_cli("live", "--source", str(dev_root / "set3"), "--no-window", "--save-bkg", str(room))
    assert res.exit_code == 2 and res.output == (f"Error: --save-bkg {room}: cannot write in {read_only_folder} "
                                                 f"(read-only, or no permission)\n")


def test_a_background_that_cannot_be_saved_does_not_end_the_session(dev_root, segmenter, read_only_folder):
    session = LiveSession(segmenter, view="tint")
    events = []
    result = run_live(ListSource([read(dev_root, 3, "bkg.png")], limit=4), session, None, None,
                      BackgroundGrabber(countdown=0, seconds=0), media_clock=True, log=events.append,
                      save_bkg=read_only_folder / "room.png")
    assert result.frames == 3 and result.backgrounds == 1
    [event] = [e for e in events if e["event"] == "background"]
    assert event["state"] == "captured" and event["not_saved"].startswith(
        f"--save-bkg {read_only_folder / 'room.png'}: ")


def test_a_signal_during_the_backgrounds_save_is_handed_on_after_it_is_told(dev_root, segmenter, tmp_path,
                                                                            sigterm_after_fsync):
    # A SIGTERM while --save-bkg was written: the file was whole, but the event saying so was lost.
    events = []
    with pytest.raises(sigterm_after_fsync):
        run_live(ListSource([read(dev_root, 3, "bkg.png")], limit=4), LiveSession(segmenter, view="tint"),
                 None, None, BackgroundGrabber(countdown=0, seconds=0), media_clock=True, log=events.append,
                 save_bkg=tmp_path / "room.png")
    assert events[-1] == {"event": "background", "state": "captured", "saved": str(tmp_path / "room.png")}
    assert cv2.imread(str(tmp_path / "room.png")) is not None


def test_masks_and_a_background_that_appear_during_the_run_are_not_replaced_without_force(dev_root, segmenter,
                                                                                          tmp_path):
    # --save-bkg and --save-masks were checked at the start only, then written with overwrite: another
    # program's file that appeared under one of their names meanwhile was replaced without --force.
    from humanseg import live as live_module

    theirs = b"another program's"

    class Appearing(ListSource):
        def read(self):
            if self.reads == 2:  # after the first background was saved
                (tmp_path / "room.png").write_bytes(theirs)
            if self.reads == 6:  # every mask name not written yet
                for k in range(10):
                    if not (tmp_path / "m" / f"{k}_mask.png").exists():
                        (tmp_path / "m" / f"{k}_mask.png").write_bytes(theirs)
            return super().read()

    (tmp_path / "m").mkdir()
    session = LiveSession(segmenter, view="tint")
    events = []
    window = ScriptWindow({0: [ord("b")]})  # a second background, written where theirs now is
    with pytest.raises(live_module.MaskNotWritten) as failed:
        run_live(Appearing([read(dev_root, 3, "bkg.png")], limit=12), session, window, None,
                 BackgroundGrabber(countdown=0, seconds=0), media_clock=True, log=events.append,
                 save_bkg=tmp_path / "room.png", masks_dir=tmp_path / "m")
    refused = Path(str(failed.value).split(": ")[0])
    assert str(failed.value) == (f"{refused}: it appeared during the run (another program's?): not replaced "
                                 f"without --force") and refused.parent == tmp_path / "m"
    assert refused.read_bytes() == theirs
    assert (tmp_path / "room.png").read_bytes() == theirs
    saves = [e for e in events if e.get("state") == "captured"]
    assert saves[0] == {"event": "background", "state": "captured", "saved": str(tmp_path / "room.png")}
    assert saves[-1]["not_saved"] == (f"--save-bkg {tmp_path / 'room.png'}: it appeared during the run (another "
                                      f"program's?): not replaced without --force")
    # The run's own files it writes again (a background re-captured with b); --force replaces theirs.
    session = LiveSession(segmenter, view="tint")
    events = []
    run_live(ListSource([read(dev_root, 3, "bkg.png")], limit=8), session, ScriptWindow({1: [ord("b")]}), None,
             BackgroundGrabber(countdown=0, seconds=0), media_clock=True, log=events.append,
             save_bkg=tmp_path / "own.png")
    assert [e.get("saved") for e in events if e.get("state") == "captured"] == [str(tmp_path / "own.png")] * 2
    run_live(ListSource([read(dev_root, 3, "bkg.png")], limit=3), LiveSession(segmenter, view="tint"), None, None,
             BackgroundGrabber(countdown=0, seconds=0), media_clock=True, save_bkg=tmp_path / "room.png", force=True)
    assert (tmp_path / "room.png").read_bytes() != theirs


def test_headless_with_only_save_bkg_stops_at_the_background_and_fails_when_it_is_not_saved(
        tmp_path, dev_root, default_weights, monkeypatch):
    # The background's write failing (its folder removed meanwhile) was a JSON line alone, exit 0, and
    # the rest of the source was segmented for nothing.
    import errno

    from humanseg import live as live_module

    args = ["live", "--source", str(dev_root / "set3"), "--no-window", "--countdown", "0", "--bkg-seconds", "0",
            "--weights", str(default_weights), "--save-bkg"]
    res = run_cli(*args, str(tmp_path / "room.png"))
    assert res.exit_code == 0 and json.loads(res.output.splitlines()[-1])["frames"] == 0, res.output
    real = store.write_image

    def gone(path, image, overwrite=False):
        if Path(path).name == "lost.png":
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        return real(path, image, overwrite)

    monkeypatch.setattr(live_module.store, "write_image", gone)
    res = run_cli(*args, str(tmp_path / "lost.png"))
    assert res.exit_code == 1 and json.loads(res.output.splitlines()[-2])["frames"] == 0, res.output
    assert res.output.splitlines()[-1] == (f"Error: --save-bkg {tmp_path / 'lost.png'}: No such file or directory; "
                                           f"the background was not saved")


def grey_levels(path):
    return [int(round(f.mean())) for f in video_frames(path)[0]]


def test_an_output_that_appears_during_the_run_is_not_replaced_without_force(tmp_path):
    # The --output check is made before the run; a second run that finished meanwhile under the same
    # name had its recording replaced when this one closed (exit 0 both).
    frames = [np.full((48, 64, 3), 60 * k, np.uint8) for k in range(3)]
    out = VideoOutput(tmp_path / "o.avi", 30.0)
    for frame in frames:
        out.write(frame)
    (tmp_path / "o.avi").write_bytes(b"another run's")
    with pytest.raises(HumansegError, match=r"--output .*o\.avi appeared during the run \(another program\?\) and "
                                            r"is left as it is; this recording is kept as .*o\.\d+\.\w+\.tmp\.avi$"):
        out.close()
    out.discard()  # (as the run's clean-up does): the recording stays
    assert (tmp_path / "o.avi").read_bytes() == b"another run's"
    kept = [p for p in tmp_path.iterdir() if p.name != "o.avi"]
    assert len(kept) == 1 and len(video_frames(kept[0])[0]) == 3
    forced = VideoOutput(tmp_path / "o.avi", 30.0, force=True)
    for frame in frames:
        forced.write(frame)
    assert forced.close() == tmp_path / "o.avi" and len(video_frames(tmp_path / "o.avi")[0]) == 3
    plain = VideoOutput(tmp_path / "p.avi", 30.0)
    plain.write(frames[0])
    assert plain.close() == tmp_path / "p.avi"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["o.avi", "p.avi", kept[0].name])


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_a_source_saying_a_thousandth_of_a_frame_per_second_is_still_recorded(tmp_path, ext):
    # A header's 0.001 fps went to OpenCV's writer, which refused it: "--output ...: cannot write a
    # video there", blaming the folder. The file's rate is 1 at least.
    out = VideoOutput(tmp_path / f"o{ext}", 0.001)
    frames = [np.full((48, 64, 3), 60 * k, np.uint8) for k in range(3)]
    for frame in frames:
        out.write(frame)
    assert out.close() == tmp_path / f"o{ext}"
    got, _ = video_frames(tmp_path / f"o{ext}")
    cap = cv2.VideoCapture(str(tmp_path / f"o{ext}"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert len(got) == 3 and fps == pytest.approx(1.0)
    assert np.allclose([f.mean() for f in got], [0, 60, 120], atol=5)  # (mp4v is lossy)


def test_a_camera_recording_plays_in_real_time(tmp_path):
    # A camera's frames were written one for one at its nominal rate: where the model kept up with half
    # of it, the video played twice as fast as it was filmed. Timed frames are now repeated or skipped.
    frames = [np.full((48, 64, 3), 20 * k, np.uint8) for k in range(8)]
    slow = VideoOutput(tmp_path / "slow.avi", 30.0)
    for k, frame in enumerate(frames[:4]):  # 15 frames a second
        slow.write(frame, at=k / 15)
    slow.close()
    assert grey_levels(tmp_path / "slow.avi") == [0, 0, 20, 20, 40, 40, 60]  # each held until the next
    fast = VideoOutput(tmp_path / "fast.avi", 30.0)
    for k, frame in enumerate(frames):  # 45 frames a second: 2 of 3 (at 0, 0.67, 1.33, 2, 2.67, ... slots)
        fast.write(frame, at=k / 45)
    fast.close()
    assert grey_levels(tmp_path / "fast.avi") == [0, 20, 60, 80, 120, 140]
    # A camera at the file's rate is written one for one, whatever the jitter in when frames were read
    # (within a third of a frame): each once, none repeated (timed from the first, frames land on the
    # slots' boundaries, where rounding down skipped about one in twelve and repeated the one before).
    rng = np.random.default_rng(0)
    steady = VideoOutput(tmp_path / "steady.avi", 30.0)
    writes = []

    def write(image):  # what reaches the file (the writer counts its frames)
        writes.append(image)
        steady.frames += 1

    steady._write = write
    for k in range(300):
        steady.write(np.array([k]), at=k / 30 + rng.uniform(-0.01, 0.01))
    assert [int(w[0]) for w in writes] == list(range(300))
    paused = VideoOutput(tmp_path / "paused.avi", 10.0)
    paused.write(frames[1], at=0.0)
    paused.write(frames[2], at=4.0)  # a background capture between them: 0.5 s, not 4
    paused.write(frames[3], at=4.1)
    paused.close()
    assert grey_levels(tmp_path / "paused.avi") == [20] * 5 + [40, 60]
    plain = VideoOutput(tmp_path / "plain.avi", 30.0)  # a file's frames: one for one
    for frame in frames[:3]:
        plain.write(frame)
    plain.close()
    assert grey_levels(tmp_path / "plain.avi") == [0, 20, 40]


@pytest.mark.slow
def test_live_records_a_slow_camera_in_real_time(dev_root, segmenter, tmp_path):
    session = LiveSession(segmenter, view="tint")
    session.set_background(read(dev_root, 3, "bkg.png"))
    frames = [read(dev_root, 3, f"{k}.png") for k in range(3)]
    out = VideoOutput(tmp_path / "o.avi", 30.0)
    camera = ListSource(frames, limit=6)
    result = run_live(camera, session, None, out, clock=CameraClock(camera, 10.0))  # 10 of its 30 fps
    assert result.frames == 6 and len(video_frames(tmp_path / "o.avi")[0]) == 16  # 0.5 s, and the last
    folder = VideoOutput(tmp_path / "f.avi", 30.0)
    source = ListSource(frames, limit=6)
    run_live(source, session, None, folder, clock=CameraClock(source, 10.0), media_clock=True)
    assert len(video_frames(tmp_path / "f.avi")[0]) == 6


def test_the_frame_rate_is_measured_on_the_clock_and_shown_in_the_status_line(monkeypatch):
    # A camera giving 10 frames a second, the model keeping up: the run's fps (the done line's) and the
    # window's status line say 10, on the clock of the frames finished (none measured yet for the first).
    from humanseg.ui import draw

    status = []
    monkeypatch.setattr(draw, "draw_status", lambda canvas, text: status.append(text))
    bkg = np.full((48, 64, 3), 100, np.uint8)
    camera = ListSource([bkg], limit=6)
    result = run_live(camera, nobody_session(bkg), ScriptWindow({}), clock=CameraClock(camera, 10.0))
    assert result.frames == 6 and result.fps == pytest.approx(10.0)
    assert len(status) == 6 and status[0].endswith("| 0.0 fps")
    assert status[-1] == "mask tint (v) | b: new background | q: quit | 10.0 fps"


@pytest.mark.slow
def test_the_done_line_counts_the_frames_segmented_after_the_camera_moved(tmp_path, dev_root, default_weights):
    # Set 3's frames with the camera turned 64 px (a tenth of the frame) since its bkg.png: from the
    # tenth such frame in a row on, each counts in the done line's moved_frames; the same frames as
    # taken have no such count.
    moved, still = tmp_path / "moved", tmp_path / "still"
    for folder in (moved, still):
        folder.mkdir()
    for i in range(12):
        frame = read(dev_root, 3, f"{i % 4}.png")
        cv2.imwrite(str(still / f"{i}.png"), frame)
        cv2.imwrite(str(moved / f"{i}.png"), shifted(frame, 64))
    for folder, count in ((moved, {"moved_frames": 12 - 9}), (still, {})):
        res = run_cli("live", "--source", str(folder), "--bkg", str(dev_root / "set3" / "bkg.png"), "--no-window",
                      "--save-masks", str(tmp_path / f"masks_{folder.name}"), "--weights", str(default_weights))
        assert res.exit_code == 0, res.output
        done = json.loads(res.stdout.splitlines()[-1])
        assert done["event"] == "done" and done["frames"] == 12
        assert {key: done[key] for key in done if key == "moved_frames"} == count, folder.name


def test_video_output_is_atomic(tmp_path):
    out = VideoOutput(tmp_path / "v.mp4", 30.0)
    assert list(tmp_path.iterdir()) == []  # nothing made before the first frame
    out.write(np.zeros((48, 64, 3), np.uint8))
    out.write(np.zeros((48, 128, 3), np.uint8))  # another size is fitted to the file's
    (tmp,) = tmp_path.iterdir()
    assert re.fullmatch(r"v\.\d+\.[0-9a-f]{6}\.tmp\.mp4", tmp.name) and tmp.stat().st_size > 0
    assert out.close() == tmp_path / "v.mp4"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    nothing = VideoOutput(tmp_path / "n.mp4", 30.0)
    assert nothing.close() is None and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    frames, _ = video_frames(tmp_path / "v.mp4")
    assert len(frames) == 2 and frames[0].shape == (48, 64, 3)
    failed = VideoOutput(tmp_path / "w.mp4", 30.0)
    failed.write(np.zeros((48, 64, 3), np.uint8))
    failed.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    with pytest.raises(HumansegError, match="already exists"):
        VideoOutput(tmp_path / "v.mp4", 30.0)
    # 1x1 frames: the encoder's refusal was blamed on the place ("cannot write a video there").
    tiny = VideoOutput(tmp_path / "t.mp4", 30.0)
    with pytest.raises(HumansegError, match=r"t.mp4: the mp4v encoder refused 1x1 frames \(no video type here "
                                            r"records frames under 2x2\)$"):
        tiny.write(np.zeros((1, 1, 3), np.uint8))
    tiny.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_video_output_takes_an_upper_case_extension(tmp_path):
    # Cameras and phones name their clips CLIP.MP4: the type is told by the extension in any case.
    out = VideoOutput(tmp_path / "CLIP.MP4", 30.0)
    out.write(np.full((48, 64, 3), 90, np.uint8))
    assert out.close() == tmp_path / "CLIP.MP4" and len(video_frames(tmp_path / "CLIP.MP4")[0]) == 1


def test_video_output_takes_a_long_name(tmp_path):
    # NAME.tmp.mp4 of a 255-byte NAME.mp4 was too long to make.
    path = tmp_path / ("v" * 251 + ".mp4")
    out = VideoOutput(path, 30.0)
    for _ in range(3):
        out.write(np.full((48, 64, 3), 90, np.uint8))
    assert out.close() == path and [p.name for p in tmp_path.iterdir() if p.is_file()] == [path.name]
    assert len(video_frames(path)[0]) == 3


def test_video_output_refuses_a_read_only_folder(read_only_folder):
    # A read-only folder was found at the first frame, where removing the temporary file that was never
    # made failed as well and named it instead of the --output asked for; it is now refused before
    # anything runs.
    target = read_only_folder / "v.mp4"
    with pytest.raises(HumansegError, match=rf"^--output {re.escape(str(target))}: cannot write in "
                                            rf"{re.escape(str(read_only_folder))} \(read-only, or no permission\)$"):
        VideoOutput(target, 30.0)
    assert list(read_only_folder.iterdir()) == []


def test_video_output_in_a_folder_that_does_not_exist_is_refused_and_makes_none(tmp_path):
    target = tmp_path / "no" / "v.mp4"
    with pytest.raises(HumansegError) as err:
        VideoOutput(target, 30.0)
    assert err.value.exit_code == 2
    assert str(err.value) == f"--output {target}: folder {tmp_path / 'no'} does not exist"
    assert list(tmp_path.iterdir()) == []


def test_a_recording_whose_temporary_file_cannot_be_made_is_a_runtime_error_naming_the_output(tmp_path,
                                                                                              monkeypatch):
    # The folder was checked writable at the start; making the file can still fail (no inodes left).
    import errno

    def full(path, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store, "claim_temporary", full)
    out = VideoOutput(tmp_path / "v.mp4", 30.0)
    with pytest.raises(HumansegError) as err:
        out.write(np.zeros((48, 64, 3), np.uint8))
    assert err.value.exit_code == 1
    assert str(err.value) == f"--output {tmp_path / 'v.mp4'}: {os.strerror(errno.ENOSPC)}"
    assert out.close() is None and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("w, h", [(1, 1), (5, 1), (1, 3), (20, 15), (33, 17)])
def test_frames_of_a_few_pixels_go_through_live_mode_without_a_warning(segmenter, w, h):
    # The drift monitor samples every 8th pixel: such frames gave it no samples, and numpy warned
    # ("Degrees of freedom <= 0", "Mean of empty slice") in the middle of the JSON lines.
    import warnings

    session = LiveSession(segmenter, view="tint")
    session.set_background(np.full((h, w, 3), 60, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            live = session.process(np.full((h, w, 3), 120, np.uint8))
    assert live.mask.shape == (h, w) and live.image.shape == (h, w, 3) and not live.drift.moved


def test_session_rejects_unknown_view_and_wrong_size(dev_root, segmenter):
    with pytest.raises(HumansegError, match="unknown view"):
        LiveSession(segmenter, view="sepia")
    session = LiveSession(segmenter)
    session.set_background(read(dev_root, 3, "bkg.png"))
    with pytest.raises(HumansegError, match="differs from the background"):
        session.process(np.zeros((240, 320, 3), np.uint8))
    assert [session.cycle_view() for _ in VIEWS] == list(VIEWS[1:]) + [VIEWS[0]]


# -- the capture tool: overlay after Bkg, K_pred.png on Sav ---------------------------------------

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class TickSource(ListSource):
    def __init__(self, frames, clock, limit=1000):
        super().__init__(frames, limit)
        self.clock = clock

    def read(self):
        frame = super().read()
        self.clock.now += 1 / 30
        return frame


@pytest.mark.slow
def test_capture_overlay_and_k_pred_on_sav(tmp_path, dev_root, segmenter):
    clock = Clock()
    frames = [read(dev_root, 3, f"{k}.png") for k in range(3)] + [read(dev_root, 3, "bkg.png")]
    source = TickSource(frames, clock, limit=90)
    # A key acts on the next frame, a 1 s countdown takes 30: b after frame 0 saves frame 31 (bkg.png),
    # s after frame 41 saves frame 72 (0.png); q after 80.
    window = ScriptWindow({0: [ord("b")], 41: [ord("s")], 80: [ord("q")]})
    controller = CaptureController(default_layout(W, H), bkg_seconds=1, sav_seconds=1, clock=clock)
    notes, events = [], []
    overlay = LiveOverlay(segmenter, notify=notes.append, log=events.append, threaded=False)
    ctx = run_capture(source, window, controller, tmp_path, clock=clock, mirror=False,
                      on_frame=overlay.on_frame, on_saved=overlay.on_saved)
    overlay.close()
    assert ctx.frames_saved == 1 and notes == []
    set_dir = tmp_path / "set1"
    assert sorted(p.name for p in set_dir.iterdir()) == ["0.png", "0_pred.png", "bkg.png"]
    saved = cv2.imread(str(set_dir / "0.png"))
    bkg = cv2.imread(str(set_dir / "bkg.png"))
    pred = cv2.imread(str(set_dir / "0_pred.png"), cv2.IMREAD_UNCHANGED)
    segmenter.set_background(bkg)
    assert pred.ndim == 2 and np.array_equal(pred, segmenter.predict_mask(saved))
    assert 0.05 < (pred > 0).mean() < 0.6
    assert events == [{"event": "pred_saved", "set": 1, "frame": 0, "path": str(set_dir / "0_pred.png"),
                       "person_fraction": round(float((pred > 0).mean()), 4)}]
    # Before the background: the frame as read; after: the person tinted (green up, frame elsewhere).
    assert np.array_equal(window.shown[0][100:300, 150:490], frames[0][100:300, 150:490])
    shown, frame = window.shown[45].astype(int), frames[45 % 4].astype(int)
    segmenter.set_background(bkg)
    person = segmenter.predict_mask(frames[45 % 4]) > 0
    person[400:] = False  # the status line and buttons are drawn at the bottom
    assert (shown[..., 1] - frame[..., 1])[person].mean() > 20


def test_a_slow_paced_capture_tints_each_frame_with_its_own_mask(tmp_path):
    # At --max-fps 1 the overlay showed the frame before's mask for the whole second: the model's mask
    # of the frame on screen came after it was drawn, and nothing drew it.
    dark, bright = np.full((H, W, 3), 60, np.uint8), np.full((H, W, 3), 190, np.uint8)

    class Halves:  # the left half is the person in the dark frame, the right half in the bright one
        calls = 0

        def set_background(self, bkg):
            pass

        def predict(self, frame):
            time.sleep(0.1)
            self.calls += 1
            prob = np.zeros(frame.shape[:2], np.float32)
            if frame.mean() < 128:
                prob[:, : W // 2] = 1
            else:
                prob[:, W // 2:] = 1
            return prob

    class RealTimeWindow(ScriptWindow):
        def poll(self, wait_ms=1):
            time.sleep(wait_ms / 1000)
            return [], []

    model, window = Halves(), RealTimeWindow({})
    overlay = LiveOverlay(model)  # threaded, like main.py
    controller = CaptureController(default_layout(W, H), clock=time.monotonic, set_number=1, frames_saved=0)
    run_capture(ListSource([dark, bright], limit=2), window, controller, tmp_path, mirror=False,
                background=np.zeros((H, W, 3), np.uint8), max_fps=1.0, on_frame=overlay.on_frame)
    overlay.close()
    assert model.calls == 2  # each frame segmented once, however often the hook was asked
    last = window.shown[-1].astype(int)  # the bright frame, as last drawn
    rows = slice(280, 400)  # below the buttons, above the status line
    tinted = 190 - last[rows, :, 2]  # the tint takes red and blue down
    assert tinted[:, W // 2 + 20:].mean() > 40 and abs(tinted[:, : W // 2 - 20]).mean() < 2


def test_overlay_failure_is_said_once_and_capture_goes_on(tmp_path, dev_root):
    class Broken:
        def set_background(self, bkg):
            pass

        def predict(self, frame):
            raise RuntimeError("model broke")

        predict_mask = predict

    clock = Clock()
    frames = [read(dev_root, 3, "bkg.png"), read(dev_root, 3, "0.png")]
    window = ScriptWindow({0: [ord("b")], 40: [ord("s")], 80: [ord("q")]})
    controller = CaptureController(default_layout(W, H), bkg_seconds=1, sav_seconds=1, clock=clock)
    notes = []
    overlay = LiveOverlay(Broken(), notify=notes.append)  # threaded, like main.py
    ctx = run_capture(TickSource(frames, clock, limit=90), window, controller, tmp_path, clock=clock,
                      on_frame=overlay.on_frame, on_saved=overlay.on_saved)
    overlay.close()
    assert ctx.frames_saved == 1 and notes == ["live segmentation off: model broke"]
    assert sorted(p.name for p in (tmp_path / "set1").iterdir()) == ["0.png", "bkg.png"]


def test_a_k_pred_that_cannot_be_written_is_said_and_the_overlay_stays_on(tmp_path, dev_root, segmenter):
    # It turned the whole overlay off as if the model had failed ("live segmentation off").
    clock = Clock()
    bkg = read(dev_root, 3, "bkg.png")
    frames = [read(dev_root, 3, "0.png"), read(dev_root, 3, "1.png")]
    (tmp_path / "set1" / "0_pred.png").mkdir(parents=True)  # a folder where the file would go
    store.write_image(tmp_path / "set1" / "bkg.png", bkg)  # continuing set 1 (--set 1)
    window = ScriptWindow({10: [ord("s")], 80: [ord("q")]})
    controller = CaptureController(default_layout(W, H), bkg_seconds=1, sav_seconds=1, clock=clock,
                                   set_number=1, frames_saved=0)
    notes, events = [], []
    overlay = LiveOverlay(segmenter, notify=notes.append, log=events.append, threaded=False)
    ctx = run_capture(TickSource(frames, clock, limit=90), window, controller, tmp_path, clock=clock,
                      mirror=False, background=bkg, on_frame=overlay.on_frame, on_saved=overlay.on_saved)
    overlay.close()
    pred = tmp_path / "set1" / "0_pred.png"
    assert ctx.frames_saved == 1 and overlay.failed is None
    assert notes == [f"{pred} not saved (Is a directory); the labeler will guess that frame afresh"]
    assert events == [{"event": "pred_failed", "set": 1, "frame": 0, "path": str(pred),
                       "reason": "Is a directory"}]
    assert sorted(p.name for p in (tmp_path / "set1").iterdir()) == ["0.png", "0_pred.png", "bkg.png"]
    # The overlay went on tinting the frames after the failed write.
    last = len(window.shown) - 1
    assert last > 60 and overlay.calls > last - 5  # segmenting every frame to the end
    shown, frame = window.shown[last].astype(int), frames[last % 2].astype(int)
    segmenter.set_background(bkg)
    person = segmenter.predict_mask(frames[last % 2]) > 0
    person[400:] = False  # the status line and buttons are drawn at the bottom
    assert person.any() and (shown[..., 1] - frame[..., 1])[person].mean() > 20  # tinted green


def test_load_overlay_missing_default_notes_once_explicit_fails(tmp_path, monkeypatch):
    notes = []
    monkeypatch.setenv("HUMANSEG_WEIGHTS", str(tmp_path / "gone.pt"))
    assert load_overlay(None, notify=notes.append) is None
    assert len(notes) == 1 and notes[0].startswith(f"live segmentation off: HUMANSEG_WEIGHTS={tmp_path / 'gone.pt'}:")
    with pytest.raises(HumansegError, match="--weights"):
        load_overlay(str(tmp_path / "nope.pt"), notify=notes.append)
    # An empty --weights (an unset shell variable) is refused too; it was taken for "no model".
    with pytest.raises(HumansegError, match=r"^--weights is empty: name a checkpoint file"):
        load_overlay("", notify=notes.append)
    assert len(notes) == 1


class Flat:
    """A stand-in model: probability 1 everywhere against a bright background, 0 against a dark one;
    refuses frames of another size than its background, as the real one does; `gate` (an Event),
    when given, holds each call until set."""

    def __init__(self, gate=None):
        self.bkg, self.gate, self.calls = None, gate, 0

    def set_background(self, bkg):
        self.bkg = bkg

    def predict(self, frame):
        if self.gate is not None:
            self.gate.wait(10)
        if frame.shape != self.bkg.shape:
            raise HumansegError("frame size differs from the background's")
        self.calls += 1
        return np.full(frame.shape[:2], float(self.bkg.mean() > 128), np.float32)


def test_the_capture_overlay_keeps_to_its_background_and_frame_size():
    frame = np.full((48, 64, 3), 100, np.uint8)
    bright, dark = np.full_like(frame, 200), np.full_like(frame, 20)
    ctx = type("Ctx", (), {})()
    overlay = LiveOverlay(Flat(), notify=print, threaded=False)

    def tinted(image, background):
        ctx.background = background
        shown = overlay.on_frame(image, ctx)
        return None if shown is None else bool((shown[..., 1].astype(int) - image[..., 1] > 20).all())

    assert tinted(frame.copy(), bright) is True
    # A frame of another size (a folder of mixed images): no tint for it, and the overlay stays on.
    assert tinted(np.full((24, 32, 3), 100, np.uint8), bright) is None and overlay.failed is None
    assert tinted(frame.copy(), bright) is True
    # A new background (Bkg again): the smoothing starts afresh, no trace of the last one's person.
    assert tinted(frame.copy(), dark) is False


def test_the_threaded_capture_overlay_never_tints_with_the_last_backgrounds_mask():
    gate = threading.Event()
    gate.set()
    frame = np.full((48, 64, 3), 100, np.uint8)
    ctx = type("Ctx", (), {"background": np.full_like(frame, 200)})()
    overlay = LiveOverlay(Flat(gate))
    try:
        deadline = time.monotonic() + 10
        while overlay.on_frame(frame, ctx) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert overlay.on_frame(frame, ctx) is not None
        gate.clear()  # the model now takes its time with the new background's first frame
        ctx.background = np.full_like(frame, 20)
        later = frame.copy()
        assert overlay.on_frame(later, ctx) is None  # not the old background's mask meanwhile
        gate.set()
        while overlay.on_frame(later, ctx) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert overlay.on_frame(later, ctx) is not None
    finally:
        gate.set()
        overlay.close()


def test_a_saved_frame_that_does_not_match_the_background_is_said_and_logged(tmp_path, dev_root, segmenter):
    # Sav after the camera was turned or nudged since Bkg (or with --set N, days later): said at once,
    # on screen (the text returned), on stderr and in the event log; K_pred.png written all the same.
    notes, events = [], []
    overlay = LiveOverlay(segmenter, notify=notes.append, log=events.append, threaded=False)
    frame, bkg = read(dev_root, 3, "0.png"), read(dev_root, 3, "bkg.png")
    own = type("Ctx", (), {"background": bkg})()
    assert overlay.on_saved(Saved("frame", 1, 0, tmp_path / "0.png"), frame, own) is None
    assert notes == [] and [e["event"] for e in events] == ["pred_saved"]
    turned = type("Ctx", (), {"background": read(dev_root, 7, "bkg.png")})()
    nudged = np.ascontiguousarray(np.pad(frame[:, 16:], ((0, 0), (0, 16), (0, 0)), "edge"))
    for k, (image, ctx) in enumerate([(frame, turned), (nudged, own)], start=1):
        path = tmp_path / f"{k}.png"
        assert overlay.on_saved(Saved("frame", 1, k, path), image, ctx) == \
            f"{k}.png does not match bkg.png (camera moved?): press Bkg again"
        assert notes[-1] == (f"warning: {path} does not match its bkg.png: most of its room differs from it, or is "
                             f"shifted against it (the camera moved after Bkg?), so training would learn from it "
                             f"wrong: press Bkg for a new set's background")
        assert events[-2:] == [{"event": "pred_saved", "set": 1, "frame": k, "path": str(tmp_path / f"{k}_pred.png"),
                                "person_fraction": events[-2]["person_fraction"]},
                               {"event": "background_mismatch", "set": 1, "frame": k, "path": str(path)}]
        assert (tmp_path / f"{k}_pred.png").is_file()
    assert len(notes) == 2


def test_k_pred_is_never_written_for_backgrounds(tmp_path, dev_root, segmenter):
    overlay = LiveOverlay(segmenter, threaded=False)
    bkg = read(dev_root, 3, "bkg.png")
    ctx = type("Ctx", (), {"background": bkg})()
    overlay.on_saved(Saved("background", 1, None, tmp_path / "bkg.png"), bkg, ctx)
    assert list(tmp_path.iterdir()) == []


def test_stability_filter_hysteresis_on_still_pixels_and_a_plain_cut_on_moving_ones():
    # Untested: the mask could be a plain "> 0.5" of the smoothed probability (every still pixel near
    # 0.5 flickering) and every test passed.
    frame = np.full((8, 8, 3), 100, np.uint8)
    filt = StabilityFilter(still_weight=0.98)  # (smoothed about as the raw probability; hysteresis 0.1)

    def mask_for(p, image=frame):
        return filt.update(image, np.full((8, 8), p, np.float32))[1][4, 4]

    assert mask_for(0.9) == 255
    assert mask_for(0.45) == 255  # on, and above 0.5 - 0.1: stays on
    assert mask_for(0.35) == 0  # below 0.4: off
    assert mask_for(0.55) == 0  # off, and not above 0.5 + 0.1: stays off
    assert mask_for(0.65) == 255
    # A moving pixel (the picture changed a lot) takes the plain cut at 0.5 both ways.
    moved = np.full((8, 8, 3), 200, np.uint8)
    assert mask_for(0.45, moved) == 0
    assert mask_for(0.55, frame) == 255


def test_k_pred_is_made_against_the_sets_background_even_before_the_overlay_used_it(tmp_path):
    # Sav right after a new Bkg: the overlay's model last ran against the old background; K_pred.png
    # must still be the prediction against the set's own bkg.png.
    class FlatMasks(Flat):
        def predict_mask(self, frame):
            return np.where(self.predict(frame) > 0.5, 255, 0).astype(np.uint8)

    frame = np.full((48, 64, 3), 100, np.uint8)
    bright, dark = np.full_like(frame, 200), np.full_like(frame, 20)
    overlay = LiveOverlay(FlatMasks(), notify=print, threaded=False)
    overlay.step(frame, bright)  # the old background: all person
    ctx = type("Ctx", (), {"background": dark})()
    overlay.on_saved(Saved("frame", 1, 0, tmp_path / "0.png"), frame, ctx)
    pred = cv2.imread(str(tmp_path / "0_pred.png"), cv2.IMREAD_UNCHANGED)
    assert pred.shape == (48, 64) and (pred == 0).all()


class Scripted:
    """A stand-in model: the probabilities of a script, one per frame, the same all over it."""

    track = False

    def __init__(self, probs):
        self.probs = list(probs)

    def set_background(self, bkg):
        pass

    def predict(self, frame):
        return np.full(frame.shape[:2], self.probs.pop(0), np.float32)


def test_saved_masks_are_the_smoothed_ones_shown_unless_raw(tmp_path):
    # --save-masks keeps the mask the view shows (smoothed over still frames); --raw the model's own.
    still = np.full((48, 64, 3), 100, np.uint8)
    for smooth, second in ((True, 255), (False, 0)):
        session = LiveSession(Scripted([0.9, 0.2]), view="tint", smooth=smooth, compensate=smooth)
        session.set_background(still)
        masks = tmp_path / f"smooth{smooth}"
        masks.mkdir()
        result = run_live(ListSource([still, still]), session, media_clock=True, masks_dir=masks)
        assert result.frames == 2
        got = [cv2.imread(str(masks / f"{k}_mask.png"), cv2.IMREAD_GRAYSCALE) for k in range(2)]
        assert (got[0] == 255).all() and (got[1] == second).all(), smooth


def test_closing_the_window_ends_the_session_and_says_so():
    class Closed(ScriptWindow):  # the window's close button, clicked once three frames were shown
        def is_open(self):
            return len(self.shown) < 3

    bkg = np.full((48, 64, 3), 100, np.uint8)
    session = nobody_session(bkg)
    events = []
    source = ListSource([bkg], limit=50)
    result = run_live(source, session, Closed({}), log=events.append)
    assert events == [{"event": "quit", "by": "window closed"}] and result.frames == 3 and source.reads < 50


def test_a_run_that_fails_part_way_leaves_no_recording(tmp_path):
    # A frame of another size at the third frame ends the run with an error: the recording of the
    # first two is not kept (nor its temporary file), as a failed run leaves no partial file.
    bkg = np.full((48, 64, 3), 100, np.uint8)
    session = nobody_session(bkg)
    out = tmp_path / "out"
    out.mkdir()
    source = ListSource([bkg, bkg, np.full((24, 32, 3), 100, np.uint8)])
    with pytest.raises(HumansegError, match=r"^frame 3 of the source is 32x24 but the background is 64x48$"):
        run_live(source, session, None, VideoOutput(out / "o.avi", 30.0), media_clock=True)
    assert list(out.iterdir()) == [] and source.released


@pytest.mark.slow
def test_a_video_files_recording_keeps_its_frame_rate(tmp_path, dev_root, default_weights):
    # A video file's frames are recorded one for one at the file's own rate (not 30).
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for k in range(3):
        writer.write(read(dev_root, 3, f"{k}.png"))
    writer.release()
    out = tmp_path / "out.avi"
    res = run_cli("live", "--source", str(clip), "--bkg", str(dev_root / "set3" / "bkg.png"), "--output", str(out),
                  "--no-window", "--raw", "--weights", str(default_weights))
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(out))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert fps == pytest.approx(10.0) and len(video_frames(out)[0]) == 3


class Blank:
    """A stand-in model for the command: no person anywhere, in frames of any size."""

    track = False

    def set_background(self, bkg):
        pass

    def predict(self, frame):
        return np.zeros(frame.shape[:2], np.float32)


def with_blank_model(monkeypatch):
    monkeypatch.setattr("humanseg.model.load_segmenter", lambda weights=None, num_threads=None: Blank())


def test_a_source_that_gives_nothing_is_said_before_the_model_loads(tmp_path, dev_root, monkeypatch):
    # A missing video or camera, and a --bkg of another size, were said after the model had loaded
    # (5 s on the development machine); a checkpoint that cannot be loaded is still said after them.
    loaded = []
    monkeypatch.setattr("humanseg.model.load_segmenter", lambda weights=None, num_threads=None: loaded.append(1))
    missing = tmp_path / "none.mp4"
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), cv2.resize(read(dev_root, 3, "0.png"), (320, 240)))
    for args, said in ((["--source", str(missing)], f"--source {missing}: source not found: {missing}"),
                       (["--source", str(folder), "--bkg", str(dev_root / "set3" / "bkg.png")],
                        f"--bkg {dev_root / 'set3' / 'bkg.png'} is 640x480 but --source {folder} gives 320x240 "
                        f"frames")):
        res = run_cli("live", *args, "--no-window", "--output", str(tmp_path / "o.mp4"))
        assert (res.exit_code, res.output) == (2, f"Error: {said}\n"), args
    assert loaded == [] and sorted(os.listdir(tmp_path)) == ["frames"]
    monkeypatch.undo()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    res = run_cli("live", "--source", str(dev_root / "set3"), "--bkg", str(dev_root / "set3" / "bkg.png"),
                  "--weights", str(junk), "--no-window", "--save-masks", str(tmp_path / "masks"))
    assert (res.exit_code, res.output) == (2, f"Error: weights file unreadable or corrupt: {junk} (not a PyTorch "
                                              f"weights file)\n")
    assert sorted(os.listdir(tmp_path)) == ["frames", "junk.pt"]


def test_save_masks_alone_reads_every_image_of_a_folder_before_writing_one(tmp_path, dev_root, monkeypatch):
    # With --save-masks (no --output), an image of another size stops the run before any mask is written.
    with_blank_model(monkeypatch)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in (0, 1):
        (folder / f"{k}.png").write_bytes((dev_root / "set3" / f"{k}.png").read_bytes())
    cv2.imwrite(str(folder / "2.png"), cv2.resize(read(dev_root, 3, "2.png"), (320, 240)))
    res = run_cli("live", "--source", str(folder), "--bkg", str(dev_root / "set3" / "bkg.png"), "--no-window",
                  "--save-masks", str(tmp_path / "masks"))
    assert res.exit_code == 2
    assert res.output == f"Error: {folder / '2.png'} is 320x240 but {folder / '0.png'} is 640x480\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_a_run_that_fails_after_its_first_masks_keeps_them_in_the_folders_it_made(tmp_path, dev_root, monkeypatch):
    # --save-masks into folders the run makes, the disk full at the third mask: the run fails (exit 1),
    # and the masks written before it are kept with the folders holding them (only empty ones go).
    import errno

    with_blank_model(monkeypatch)
    disk_full_at(monkeypatch, "2_mask.png")
    masks = tmp_path / "new" / "masks"
    res = run_cli("live", "--source", str(dev_root / "set3"), "--bkg", str(dev_root / "set3" / "bkg.png"),
                  "--no-window", "--save-masks", str(masks))
    assert res.exit_code == 1 and res.output == f"Error: {masks / '2_mask.png'}: {os.strerror(errno.ENOSPC)}\n", res.output
    assert sorted(p.name for p in masks.iterdir()) == ["0_mask.png", "1_mask.png"]
    assert store.read_mask(masks / "0_mask.png").shape == (H, W)


def test_output_alone_reads_every_image_of_a_folder_before_segmenting_one(tmp_path, dev_root, monkeypatch):
    # With --output (no --save-masks) too, an image of another size is found before the model runs: a
    # long folder's odd last image ended the run after every frame before it had been segmented.
    model = FixedSegmenter(np.zeros((H, W), np.float32))
    monkeypatch.setattr("humanseg.model.load_segmenter", lambda weights=None, num_threads=None: model)
    folder = capture_set_frames(tmp_path, dev_root, (0, 1))
    cv2.imwrite(str(folder / "2.png"), cv2.resize(read(dev_root, 3, "2.png"), (320, 240)))
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window",
                  "--output", str(tmp_path / "o.avi"))
    assert res.exit_code == 2
    assert res.output == f"Error: {folder / '2.png'} is 320x240 but {folder / '0.png'} is 640x480\n"
    assert model.seen == [] and sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_headless_save_bkg_with_output_records_the_frames_after_the_background(tmp_path, dev_root, monkeypatch):
    # Headless, --save-bkg stops the run at the background only when nothing else is to be kept: with
    # --output the frames after it are recorded. The done line has no moved_frames when none moved.
    with_blank_model(monkeypatch)
    out = tmp_path / "o.avi"
    res = run_cli("live", "--source", str(dev_root / "set3"), "--no-window", "--countdown", "0", "--bkg-seconds",
                  "0", "--save-bkg", str(tmp_path / "room.png"), "--output", str(out))
    assert res.exit_code == 0, res.output
    captured, done = map(json.loads, res.output.splitlines())
    assert captured == {"event": "background", "state": "captured", "saved": str(tmp_path / "room.png")}
    assert sorted(done) == ["event", "fps", "frames", "output"]
    assert done["frames"] == 3 and done["output"] == str(out) and len(video_frames(out)[0]) == 3
    assert np.array_equal(cv2.imread(str(tmp_path / "room.png")), read(dev_root, 3, "0.png"))


def test_force_replaces_an_existing_output(tmp_path, dev_root, monkeypatch):
    with_blank_model(monkeypatch)
    out = tmp_path / "o.avi"
    out.write_bytes(b"an earlier recording")
    args = ["live", "--source", str(dev_root / "set3"), "--bkg", str(dev_root / "set3" / "bkg.png"), "--no-window",
            "--output", str(out)]
    assert run_cli(*args).exit_code == 2 and out.read_bytes() == b"an earlier recording"
    res = run_cli(*args, "--force")
    assert res.exit_code == 0, res.output
    assert len(video_frames(out)[0]) == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["o.avi"]


def test_key_b_captures_a_new_background_in_a_window_given_bkg(tmp_path, dev_root, monkeypatch):
    # With --bkg, a window's b still captures a new background (the README's keys).
    with_blank_model(monkeypatch)
    monkeypatch.setattr("humanseg.display.require_display", lambda: None)
    windows = []

    class Window(ScriptWindow):
        def __init__(self, name):
            super().__init__({1: [ord("b")], 6: [ord("q")]})
            windows.append(self)

    monkeypatch.setattr("humanseg.ui.window.CvWindow", Window)
    res = run_cli("live", "--source", str(dev_root / "set3"), "--bkg", str(dev_root / "set3" / "bkg.png"),
                  "--countdown", "0", "--bkg-seconds", "0")
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.output.splitlines()]
    assert events[:3] == [{"event": "background", "state": "countdown"},
                          {"event": "background", "state": "captured"}, {"event": "quit", "by": "key"}]
    assert events[3]["event"] == "done" and windows[0].closed


def test_save_bkg_takes_an_upper_case_png_extension(tmp_path, dev_root, monkeypatch):
    # ROOM.PNG is a .png file: only other types are refused.
    with_blank_model(monkeypatch)
    room = tmp_path / "ROOM.PNG"
    res = run_cli("live", "--source", str(dev_root / "set3"), "--no-window", "--countdown", "0", "--bkg-seconds",
                  "0", "--save-bkg", str(room))
    assert res.exit_code == 0, res.output
    assert np.array_equal(cv2.imread(str(room)), read(dev_root, 3, "0.png"))


def test_a_video_that_gives_no_frame_is_a_one_line_error_with_bkg_too(tmp_path, dev_root, monkeypatch):
    # A clip whose recording never got a frame (the writer opened, then closed): with --bkg its first
    # frame is compared with the background before anything else.
    with_blank_model(monkeypatch)
    clip = write_clip(tmp_path / "empty.avi", dev_root, 0)
    res = run_cli("live", "--source", str(clip), "--bkg", str(dev_root / "set3" / "bkg.png"), "--no-window",
                  "--save-masks", str(tmp_path / "m"))
    assert res.exit_code == 2 and res.output == f"Error: --source {clip}: no frames could be read\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.avi"]


def test_video_output_refuses_a_link_pointing_nowhere_without_force(tmp_path):
    # A link at --output whose file is gone is something there: kept unless --force.
    (tmp_path / "o.avi").symlink_to(tmp_path / "gone.avi")
    with pytest.raises(HumansegError, match=r"^--output .*o\.avi already exists \(pass --force to overwrite\)$"):
        VideoOutput(tmp_path / "o.avi", 30.0)
    out = VideoOutput(tmp_path / "o.avi", 30.0, force=True)
    out.write(np.full((48, 64, 3), 90, np.uint8))
    assert out.close() == tmp_path / "o.avi" and not (tmp_path / "o.avi").is_symlink()


def test_a_camera_recording_holds_the_frame_as_it_was_when_the_caller_reuses_its_buffer(tmp_path):
    # A camera's frame is held until the next one comes; the caller may have drawn the next into the
    # same buffer meanwhile.
    out = VideoOutput(tmp_path / "o.avi", 30.0)
    buffer = np.full((48, 64, 3), 40, np.uint8)
    out.write(buffer, at=0.0)
    buffer[:] = 200  # the next frame, read into the same array, 0.1 s later
    out.write(buffer, at=0.1)
    out.close()
    assert grey_levels(tmp_path / "o.avi") == [40, 40, 40, 200]


def test_a_first_mask_that_cannot_be_written_is_the_error_and_leaves_no_recording(dev_root, tmp_path,
                                                                                   monkeypatch):
    # The video is opened for the first frame, then its mask fails: the mask's error is told (not a
    # video "not written completely"), and no empty recording or temporary file is left.
    import errno

    from humanseg import live as live_module

    def full(path, image, overwrite=False):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(live_module.store, "write_image", full)
    bkg = np.full((48, 64, 3), 100, np.uint8)
    session = nobody_session(bkg)
    (tmp_path / "m").mkdir()
    with pytest.raises(live_module.MaskNotWritten) as failed:
        run_live(ListSource([bkg, bkg]), session, None, VideoOutput(tmp_path / "o.avi", 30.0), media_clock=True,
                 masks_dir=tmp_path / "m")
    assert str(failed.value) == f"{tmp_path / 'm' / '0_mask.png'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"] and list((tmp_path / "m").iterdir()) == []


def test_save_bkg_over_a_link_pointing_nowhere_needs_force(tmp_path, dev_root):
    (tmp_path / "room.png").symlink_to(tmp_path / "gone.png")
    res = run_cli("live", "--source", str(dev_root / "set3"), "--no-window", "--save-bkg", str(tmp_path / "room.png"))
    assert res.exit_code == 2
    assert res.output == f"Error: --save-bkg {tmp_path / 'room.png'} already exists (pass --force to overwrite)\n"


def test_a_source_ending_before_its_background_names_the_output_and_leaves_no_masks_folder(tmp_path, dev_root,
                                                                                           monkeypatch):
    # Headless with --output and --save-masks, a folder of 4 images ends within the 3 s countdown.
    with_blank_model(monkeypatch)
    source = dev_root / "set3"
    res = run_cli("live", "--source", str(source), "--no-window", "--output", str(tmp_path / "o.avi"),
                  "--save-masks", str(tmp_path / "m"))
    assert res.exit_code == 1
    assert res.output.splitlines()[-1] == (
        f"Error: --output {tmp_path / 'o.avi'}: nothing written: --source {source} ended before a background was "
        f"captured (the --countdown, then --bkg-seconds of frames); pass --bkg, or a shorter --countdown")
    assert list(tmp_path.iterdir()) == []


def test_once_the_model_fails_the_capture_overlay_stays_off(tmp_path):
    # The overlay's model failing later (after masks were drawn) turns the overlay off: the frames
    # after are shown as they are, not tinted with the last mask, and the model is not asked again.
    class BreaksAfterOne(Flat):
        def predict(self, frame):
            if self.calls:
                raise RuntimeError("model broke")
            return super().predict(frame)

    model, notes = BreaksAfterOne(), []
    overlay = LiveOverlay(model, notify=notes.append, threaded=False)
    ctx = type("Ctx", (), {"background": np.full((48, 64, 3), 200, np.uint8)})()
    frames = [np.full((48, 64, 3), 100 + k, np.uint8) for k in range(4)]
    assert overlay.on_frame(frames[0], ctx) is not None
    overlay.on_frame(frames[1], ctx)  # the model fails here
    assert [overlay.on_frame(frame, ctx) is None for frame in frames[2:]] == [True, True]
    assert notes == ["live segmentation off: model broke"] and model.calls == 1 and overlay.calls == 1


# -- what each view draws, what is drawn while the background is captured, what is kept -------------

def test_the_blended_views_follow_the_smoothed_probability_not_the_mask_or_the_raw_one():
    # A still frame the model calls 0.9 then 0.2: smoothed, the second is 0.9 + 0.25 * (0.2 - 0.9) =
    # 0.725, still on. The green screen shows 72.5% frame, 27.5% green (soft edges), not the whole
    # frame (what the mask alone would give) nor 20% of it (the model's own answer, unsmoothed).
    still = np.full((48, 64, 3), 100, np.uint8)
    session = LiveSession(Scripted([0.9, 0.2]), view="green")
    session.set_background(still)
    session.process(still)
    live = session.process(still)
    assert (live.mask == 255).all()
    expected = 0.725 * 100 + 0.275 * np.array([0, 255, 0])
    assert np.abs(live.image.astype(float) - expected).max() <= 1


def test_the_default_replacement_is_blue_at_the_top_and_violet_at_the_bottom():
    frame = np.zeros((48, 64, 3), np.uint8)
    out = Compositor().compose("replace", frame, np.zeros((48, 64), np.float32), np.zeros((48, 64), np.uint8))
    assert (out[0] == (120, 60, 20)).all() and (out[-1] == (90, 30, 70)).all()


def test_a_background_capture_started_again_forgets_the_frames_before_and_rounds_the_mean():
    # b pressed again while averaging: the frames already taken (the person still in view) are dropped.
    grab = BackgroundGrabber(countdown=0.0, seconds=1.0)
    grab.start(0.0)
    for now in (0.0, 0.5):
        assert grab.feed(np.zeros((4, 6, 3), np.uint8), now) is None
    grab.start(0.6)
    grab.feed(np.full((4, 6, 3), 200, np.uint8), 0.6)
    assert (grab.feed(np.full((4, 6, 3), 200, np.uint8), 1.6) == 200).all()
    # The mean is rounded, not cut: 100, 101, 101 give 101.
    grab.start(0.0)
    for now, level in ((0.0, 100), (0.5, 101), (0.9, 101)):
        grab.feed(np.full((4, 6, 3), level, np.uint8), now)
    assert (grab.feed(np.full((4, 6, 3), 0, np.uint8), 1.0) == 101).all()  # (the frame past the second: not in it)


def test_the_window_counts_down_then_says_to_keep_still_while_the_background_is_captured(monkeypatch):
    from humanseg.ui import draw

    drawn = []
    countdown, notices = draw.draw_countdown, draw.draw_notices
    monkeypatch.setattr(draw, "draw_countdown", lambda canvas, n, *a: drawn.append(n) or countdown(canvas, n, *a))
    monkeypatch.setattr(draw, "draw_notices", lambda canvas, lines: drawn.append(lines) or notices(canvas, lines))
    bkg = np.full((48, 64, 3), 100, np.uint8)
    session = LiveSession(FixedSegmenter(np.zeros((48, 64), np.float32)))  # no background yet
    source = ListSource([bkg], limit=30)
    source.fps = 5.0  # (fewer frames to draw)
    result = run_live(source, session, ScriptWindow({}), grabber=BackgroundGrabber(3.0, 0.5), media_clock=True)
    # 3 s at 5 frames a second: 3, 2, 1, then the frames averaged (half a second), then segmented.
    assert result.backgrounds == 1 and result.frames > 0
    numbers = [d for d in drawn if isinstance(d, int)]
    assert numbers == sorted(numbers, reverse=True) and set(numbers) == {3, 2, 1}
    keep_still = [d for d in drawn if d == ["capturing background - keep still"]]
    assert drawn.index(keep_still[0]) == len(numbers) and len(keep_still) >= 2


def test_max_frames_segments_exactly_that_many():
    bkg = np.full((48, 64, 3), 100, np.uint8)
    source = ListSource([bkg], limit=50)
    assert run_live(source, nobody_session(bkg), max_frames=3).frames == 3


def capture_set_frames(tmp_path, dev_root, numbers):
    """A capture set's folder in tmp_path: set 3's bkg.png and its first frames saved as numbers K.png."""
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(dev_root / "set3" / "bkg.png", folder / "bkg.png")
    for k, number in enumerate(numbers):
        shutil.copy(dev_root / "set3" / f"{k}.png", folder / f"{number}.png")
    return folder


def test_save_masks_names_a_capture_sets_masks_after_its_frames_and_force_drops_the_earlier_runs(
        tmp_path, dev_root, monkeypatch):
    with_blank_model(monkeypatch)
    folder = capture_set_frames(tmp_path, dev_root, (1, 2))
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "7_mask.png").write_bytes((dev_root / "set3" / "bkg.png").read_bytes())  # an earlier run's
    (masks / "notes.txt").write_text("mine")
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window",
                  "--save-masks", str(masks), "--force")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in masks.iterdir()) == ["1_mask.png", "2_mask.png", "notes.txt"]


def test_force_keeps_the_earlier_masks_when_the_run_writes_none_and_keeps_each_one_it_rewrites(
        tmp_path, dev_root, monkeypatch):
    # --force drops an earlier run's masks only once this run has written one: a source ending before
    # its background was captured replaced nothing, so it takes nothing. And a mask this run wrote
    # stays, even where it came out byte for byte as long as the one it replaced.
    with_blank_model(monkeypatch)
    folder = capture_set_frames(tmp_path, dev_root, (1, 2))
    masks = tmp_path / "masks"
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window",
                  "--save-masks", str(masks))
    assert res.exit_code == 0, res.output
    blank = (masks / "2_mask.png").read_bytes()
    (masks / "1_mask.png").write_bytes((dev_root / "set3" / "0_mask.png").read_bytes())  # another model's
    (masks / "7_mask.png").write_bytes(blank)  # of a longer source
    earlier = {p.name: p.read_bytes() for p in masks.iterdir()}
    res = run_cli("live", "--source", str(folder), "--no-window", "--save-masks", str(masks), "--force")
    assert res.exit_code == 1 and "nothing written" in res.output, res.output  # (no --bkg: in the countdown)
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == earlier
    res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window",
                  "--save-masks", str(masks), "--force")
    assert res.exit_code == 0, res.output
    assert {p.name: p.read_bytes() for p in masks.iterdir()} == {"1_mask.png": blank, "2_mask.png": blank}


def test_raw_on_the_command_line_saves_the_models_own_masks(tmp_path, dev_root, monkeypatch):
    # Two identical frames called 0.9 then 0.2: smoothed, the second mask is still on; --raw, off.
    folder = capture_set_frames(tmp_path, dev_root, (0,))
    shutil.copy(folder / "0.png", folder / "1.png")
    for raw in (False, True):
        monkeypatch.setattr("humanseg.model.load_segmenter", lambda weights=None, num_threads=None: Scripted([0.9, 0.2]))
        masks = tmp_path / f"masks{raw}"
        res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window",
                      "--save-masks", str(masks), *(["--raw"] if raw else []))
        assert res.exit_code == 0, res.output
        second = cv2.imread(str(masks / "1_mask.png"), cv2.IMREAD_GRAYSCALE)
        assert (second == (0 if raw else 255)).all(), raw


def test_raw_on_the_command_line_gives_the_model_the_frames_as_read(tmp_path, dev_root, monkeypatch):
    # Frames a fifth darker than the background: smoothed, the later ones reach the model exposure
    # corrected; --raw (what evaluate scores) gives them as they are.
    folder = capture_set_frames(tmp_path, dev_root, ())
    dark = (read(dev_root, 3, "bkg.png") * 0.8).astype(np.uint8)
    for k in range(4):
        cv2.imwrite(str(folder / f"{k}.png"), dark)
    for raw in (False, True):
        model = FixedSegmenter(np.zeros(dark.shape[:2], np.float32))
        monkeypatch.setattr("humanseg.model.load_segmenter", lambda weights=None, num_threads=None: model)
        res = run_cli("live", "--source", str(folder), "--bkg", str(folder / "bkg.png"), "--no-window",
                      "--save-masks", str(tmp_path / f"masks{raw}"), *(["--raw"] if raw else []))
        assert res.exit_code == 0, res.output
        assert len(model.seen) == 4 and all(np.array_equal(seen, dark) for seen in model.seen) == raw, raw


def test_the_capture_overlay_smooths_a_still_person_over_frames_of_one_background():
    # A still frame the model misses once (0.9, then 0.1): the smoothing keeps the person tinted; it
    # starts afresh only with a new background.
    frame = np.full((48, 64, 3), 100, np.uint8)
    ctx = type("Ctx", (), {"background": np.full_like(frame, 30)})()
    overlay = LiveOverlay(Scripted([0.9, 0.1]), notify=print, threaded=False)
    first, second = frame.copy(), frame.copy()
    for image in (first, second):
        shown = overlay.on_frame(image, ctx)
        assert shown is not None and (shown[..., 1].astype(int) - image[..., 1] > 20).all()


def test_the_threaded_capture_overlay_shows_each_new_frame_while_the_model_works():
    # The model is slower than the camera: each new frame is shown (tinted with the last mask), not
    # the last frame the model finished.
    gate = threading.Event()
    gate.set()
    ctx = type("Ctx", (), {"background": np.full((48, 64, 3), 200, np.uint8)})()
    overlay = LiveOverlay(Flat(gate))
    try:
        old = np.full((48, 64, 3), 100, np.uint8)
        deadline = time.monotonic() + 10
        while overlay.on_frame(old, ctx) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        gate.clear()  # the next frame's mask takes its time
        new = np.full((48, 64, 3), 40, np.uint8)
        shown = overlay.on_frame(new, ctx)
        person = np.full((48, 64), 255, np.uint8)  # Flat's mask against a bright background
        assert shown is not None and np.array_equal(shown, Compositor().compose("tint", new, person, person))
    finally:
        gate.set()
        overlay.close()


def test_a_model_failing_with_any_error_on_sav_turns_the_overlay_off_and_capture_goes_on(tmp_path):
    class Broken(Flat):
        def predict_mask(self, frame):
            raise ValueError("expected 3 channels")

    frame = np.full((48, 64, 3), 100, np.uint8)
    notes = []
    overlay = LiveOverlay(Broken(), notify=notes.append, threaded=False)
    ctx = type("Ctx", (), {"background": np.full_like(frame, 200)})()
    overlay.on_saved(Saved("frame", 1, 0, tmp_path / "0.png"), frame, ctx)
    assert notes == ["live segmentation off: expected 3 channels"] and list(tmp_path.iterdir()) == []


def test_closing_the_capture_overlay_ends_its_worker():
    overlay = LiveOverlay(Flat())
    overlay.close()
    assert not overlay._thread.is_alive()


def test_a_model_failing_without_a_message_is_named_by_its_kind():
    # The capture tool's live overlay, its model failing with MemoryError() (or any exception with no
    # text): the notice names the kind ("live segmentation off: " and nothing, else).
    from humanseg.live_capture import LiveOverlay

    class OutOfMemory:
        def set_background(self, bkg):
            pass

        def predict(self, frame):
            raise MemoryError()

    notes = []
    overlay = LiveOverlay(OutOfMemory(), notify=notes.append, threaded=False)
    ctx = type("Ctx", (), {"background": np.full((48, 64, 3), 200, np.uint8)})()
    assert overlay.on_frame(np.full((48, 64, 3), 100, np.uint8), ctx) is None
    assert notes == ["live segmentation off: MemoryError"] and overlay.failed == "MemoryError"
