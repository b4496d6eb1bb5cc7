"""The benchmark scripts: their JSON lines, and bad options or input said in one line before any timing.

(What they measure is never asserted: speed belongs to the scripts, not to tests.)
"""

import json
import os
import shutil
import subprocess
import sys

import cv2
import pytest

from tests.conftest import ROOT


def bench(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


def test_segmentation_prints_one_json_line_per_measurement(dev_root, default_weights):
    r = bench("segmentation.py", "--repeats", 3, "--threads", 1)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["name"] for x in lines] == ["segment_cached_bkg", "segment", "segment_cached_bkg_torch",
                                          "segment_torch", "absdiff"]
    for x in lines:
        assert x["unit"] == "ms" and 0 < x["min"] <= x["median"] <= x["max"] and x["frame"] == "640x480"
    assert lines[0]["backend"] == "onnxruntime" and lines[2]["backend"] == "torch" and lines[0]["threads"] == 1


@pytest.mark.parametrize("flags, name", [([], "live_fps"), (["--near", "--set", 10], "live_fps_near")])
def test_live_prints_one_json_line_per_view(dev_root, default_weights, flags, name):
    r = bench("live.py", "--runs", 1, "--frames", 4, "--views", "tint", "--threads", 1, *flags)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["name"], x["view"], x["frame"], x["frames"]) for x in lines] == [(name, "tint", "640x480", 4)]
    assert 0 < lines[0]["min"] <= lines[0]["median"] <= lines[0]["max"] and lines[0]["unit"] == "fps"


@pytest.mark.parametrize("script,args,message", [
    ("segmentation.py", ["--repeats", "0"], "Error: Invalid value for '--repeats': 0 is not in the range x>=1."),
    ("segmentation.py", ["--threads", "0"],
     "Error: Invalid value for '--threads': 0 is not in the range 1<=x<=256."),
    ("segmentation.py", ["--work-width", "5"],
     "Error: Invalid value for '--work-width': 5 is not in the range 32<=x<=4096."),
    ("pose.py", ["--iterations", "-5"], "Error: Invalid value for '--iterations': -5 is not in the range x>=1."),
    ("live.py", ["--runs", "x"], "Error: Invalid value for '--runs': 'x' is not a valid integer range."),
    ("live.py", ["--views", "tint,bogus"],
     "Error: --views: unknown view 'bogus' (views: tint, blur, replace, green, side)"),
    ("live.py", ["--far", "--near"], "Error: --far and --near: give one of them"),
    ("robustness.py", ["--images", ""], "Error: Invalid value for '--images': empty; name a folder."),
    # (left out, the checkpoint's held-out sets are scored: evaluate's words said "every labeled set")
    ("robustness.py", ["--sets", ""],
     "Error: --sets is empty: give set numbers like 3,7, or leave it out for the sets the checkpoint held out"),
    ("capture_loop.py", ["--frames", "40", "--chunk", "50"],
     "Error: --chunk 50 must be below --frames 40 (FPS is measured per chunk)"),
    ("moved_camera.py", ["--shifts", "16"],
     "Error: --shifts '16': give x,y pixel offsets separated by ';', e.g. '0,0;16,0'"),
])
def test_bad_options_are_usage_errors(script, args, message):
    r = bench(script, *args)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.splitlines() == [message]  # one line, no usage


@pytest.mark.parametrize("script", ["segmentation.py", "pose.py", "capture_loop.py", "live.py", "robustness.py",
                                    "moved_camera.py"])
def test_help_describes_every_option(script):
    r = bench(script, "--help")
    assert r.returncode == 0 and bench(script, "-h").stdout == r.stdout
    options = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  -")]
    assert len(options) > 1 and "-h," in options
    # Every option line has words after its name and type (its help), not the name alone.
    described = [line for line in r.stdout.splitlines() if line.startswith("  -") and len(line.split()) > 2]
    assert len(described) == len(options), r.stdout


def test_bad_input_is_one_line_before_any_timing(tmp_path, dev_root, default_weights):
    missing = tmp_path / "nope.pt"
    for script in ("segmentation.py", "live.py", "robustness.py"):
        r = bench(script, "--weights", missing)
        assert (r.returncode, r.stdout, r.stderr) == (2, "", f"Error: weights file not found: {missing}\n"), script
    junk = tmp_path / "junk.pth"
    junk.write_text("no")
    r = bench("pose.py", "--posenet-weights", junk)
    assert (r.returncode, r.stdout) == (2, "") and r.stderr == (
        f"Error: {junk}: cannot load PoseNet weights (not a PyTorch weights file)\n")
    r = bench("segmentation.py", "--set", 99)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith(
        f"Error: set folder not found: {dev_root / 'set99'} (sets here: 1, 2, ")
    from humanseg.model import SiameseSegNet, save_checkpoint

    fraction = save_checkpoint(tmp_path / "frac.pt", SiameseSegNet().eval(), extra={"val_sets": "0.2"})
    r = bench("robustness.py", "--weights", fraction)  # which sets 0.2 held out depends on the data
    assert (r.returncode, r.stderr) == (2, "Error: the checkpoint names no held-out sets (its --val-sets: 0.2): "
                                           "give --sets, e.g. --sets 3,7\n")
    r = bench("robustness.py", "--sets", "3,x")
    assert (r.returncode, r.stderr) == (2, "Error: --sets must be set numbers like 3,7: 3,x\n")
    # A set whose frames have no masks: no scores of nothing (NaN, which is not JSON), but one line.
    (tmp_path / "images" / "set1").mkdir(parents=True)
    for name in ("bkg.png", "0.png"):
        shutil.copy(dev_root / "set2" / name, tmp_path / "images" / "set1" / name)
    r = bench("robustness.py", "--images", tmp_path / "images", "--sets", 1)
    assert (r.returncode, r.stdout) == (2, "") and r.stderr == (
        f"Error: no labeled frames in sets 1 of {tmp_path / 'images'}\n")
    r = bench("robustness.py", "--images", tmp_path / "none", "--sets", 1)
    assert (r.returncode, r.stderr) == (2, f"Error: images folder not found: {tmp_path / 'none'}\n")


def test_the_capture_benchmark_says_a_missing_frame_first_and_finds_weights_as_main_py_does(
        tmp_path, monkeypatch):
    # A missing dev frame was "missing dev frame: ..." with exit 1, after PoseNet loaded and Xvfb
    # started; and its fixed ../shared default ignored $HUMANSEG_POSENET_WEIGHTS (and the cache its
    # own hint then suggested).
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    import capture_loop
    import pose as pose_benchmark

    from humanseg.errors import HumansegError

    monkeypatch.setattr(capture_loop, "DEV", tmp_path)
    with pytest.raises(HumansegError, match=rf"^missing dev frame: {tmp_path}/set10/0\.png \(this benchmark") as err:
        capture_loop.dev_frames()
    assert err.value.exit_code == 2
    monkeypatch.setenv("HUMANSEG_POSENET_WEIGHTS", str(tmp_path / "mine.pth"))
    assert pose_benchmark.default_weights(None) is None  # the lookup reads the variable
    assert pose_benchmark.default_weights("given.pth") == "given.pth"
    monkeypatch.delenv("HUMANSEG_POSENET_WEIGHTS")
    monkeypatch.setattr(pose_benchmark, "WEIGHTS", tmp_path / "absent.pth")
    assert pose_benchmark.default_weights(None) is None  # the cache, a download


def test_moved_camera_prints_a_line_per_shift_and_per_still_cut_and_one_for_other_rooms(copy_set):
    copy_set(6)
    root = copy_set(3)
    r = bench("moved_camera.py", "--images", root, "--shifts", "16,0;0,-8")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["name"], x.get("shift"), x.get("cut")) for x in lines] == [
        ("moved_camera", [16, 0], None), ("moved_camera", [0, -8], None),
        *[("moved_camera_still", None, cut) for cut in ("whole", "3:4", "9:16", "square", "16:9", "quarter size")],
        ("moved_camera_other_rooms", None, None)]
    for x in lines[:-1]:
        assert x["frames"] == 8 and 0 <= x["told_by_grid"] <= x["told"] <= 8 and x["largest_shift_px"] >= 0
        assert x["told_by_one_frame"] == x["told"]  # one frame, its exposure fitted whole: as ten in live mode
    assert [x["told"] for x in lines[:-1]] == [8, 0] + [0] * 6  # (sets 3 and 6: 16 px across told, 8 down not)
    # Each set's 4 frames against the other's room: all told.
    assert lines[-1] == {"name": "moved_camera_other_rooms", "frames": 8, "told_by_one_frame": 8}


@pytest.mark.slow
def test_moved_camera_with_the_model_judges_other_rooms_by_its_masks_too(copy_set, default_weights):
    copy_set(6)
    root = copy_set(3)
    r = bench("moved_camera.py", "--images", root, "--shifts", "0,0", "--model")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.splitlines()[-1])
    assert last == {"name": "moved_camera_other_rooms", "frames": 8, "told_by_one_frame": 8,
                    "told_with_model_masks": 8, "own_frames": 8, "own_told_with_model_masks": 0}


def test_moved_camera_checks_every_shift_against_every_set_before_any_line(copy_set):
    # A shift over half the frame was refused only when its turn came (after the lines of the shifts
    # before it), and checked against the first set's frame size alone: a smaller set's frame was cut
    # to nothing, a ZeroDivisionError's traceback.
    root = copy_set(2, 1)
    small = copy_set(3, 2) / "set2"
    for p in small.glob("*.png"):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(p), cv2.resize(img, (160, 120), interpolation=cv2.INTER_NEAREST))
    for shifts, message in (("0,0;400,0", "Error: --shifts 400,0: over half the frame (640x480)"),
                            ("0,0;100,0", "Error: --shifts 100,0: over half the frame (160x120)")):
        r = bench("moved_camera.py", "--images", root, "--shifts", shifts, "--model")
        assert r.returncode == 2 and r.stdout == "" and r.stderr.splitlines() == [message]


def test_moved_camera_given_a_set_folder_says_so(dev_root):
    # It said "no labeled frames in .../set3", which has four.
    r = bench("moved_camera.py", "--images", dev_root / "set3")
    assert r.returncode == 2 and r.stderr == (f"Error: --images {dev_root / 'set3'} is a set folder; give the folder "
                                              f"that holds it: {dev_root}\n")


def test_live_near_names_a_frame_of_another_size_than_its_background(tmp_path, dev_root):
    # "mask size 300x200 differs from its frame 640x480": the frame is 300x200, the background 640x480.
    # (The script reads ../shared beside the project: a copy of both, the set made so.)
    main, shared = tmp_path / "main", tmp_path / "shared" / "data" / "dev" / "set3"
    for name in ("humanseg", "benchmarks"):
        shutil.copytree(ROOT / name, main / name, ignore=shutil.ignore_patterns("__pycache__"))
    shared.mkdir(parents=True)
    shutil.copy(dev_root / "set10" / "bkg.png", shared / "bkg.png")
    cv2.imwrite(str(shared / "0.png"), cv2.imread(str(dev_root / "set10" / "0.png"))[:200, :300])
    cv2.imwrite(str(shared / "0_mask.png"), cv2.imread(str(dev_root / "set10" / "0_mask.png"), 0)[:200, :300])
    r = subprocess.run([sys.executable, "benchmarks/live.py", "--near", "--set", "3", "--runs", "1", "--frames", "2"],
                       cwd=main, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 2 and r.stderr == (f"Error: frame size 300x200 differs from bkg.png 640x480: "
                                              f"{shared / '0.png'}\n"), r.stderr
