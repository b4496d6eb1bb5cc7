"""`python -m humanseg pose`: JSON lines, drawn images, and one-line errors."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT


def _run(*args, env=None):
    # One OpenMP thread keeps the subprocess quick when other work shares the CPU.
    env = dict(env if env is not None else os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "humanseg", "pose", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_json_lines(dev_root, posenet_weights):
    person, nobody = dev_root / "set10" / "0.png", dev_root / "set10" / "3.png"
    proc = _run(person, nobody, "--json", "--posenet-weights", posenet_weights)
    assert proc.returncode == 0, proc.stderr
    first, second = [json.loads(line) for line in proc.stdout.splitlines()]
    assert first["image"] == str(person)
    assert len(first["keypoints"]) == 17
    x, y, score = first["keypoints"]["nose"]
    assert 0 <= x < 640 and 0.5 < score <= 1
    assert len(first["palms"]) == 2 and all(len(p) == 2 for p in first["palms"])
    # Points are (x, y) in the image's pixels: each lies near the reference model's for this frame
    # (sides as an unordered pair, as the reference reads them off the mirrored image).
    ref = json.loads((dev_root / "keypoints_reference.json").read_text())["frames"]["set10/0.png"]
    for part in ("nose", "shoulder", "elbow", "wrist"):
        names = [part] if part == "nose" else [f"left_{part}", f"right_{part}"]
        for name in names:
            r = ref["pose"][name]
            assert min(math.dist((r["x"], r["y"]), first["keypoints"][n][:2]) for n in names) < 40, name
    for r in ref["palms"]:
        assert min(math.dist((r["x"], r["y"]), p) for p in first["palms"]) < 40
    assert second == {"image": str(nobody), "keypoints": {}, "palms": []}


@pytest.mark.slow
def test_out_draws_images_and_keeps_existing_ones(dev_root, posenet_weights, tmp_path):
    a, b = dev_root / "set3" / "0.png", dev_root / "set4" / "0.png"  # same stem: names get the folder
    proc = _run(a, b, "--out", tmp_path, "--posenet-weights", posenet_weights)
    assert proc.returncode == 0, proc.stderr
    drawn = cv2.imread(str(tmp_path / "set3_0_pose.png"))
    assert drawn.shape == (480, 640, 3)
    assert (drawn != cv2.imread(str(a))).any(axis=2).sum() > 500  # skeleton pixels were drawn
    assert (tmp_path / "set4_0_pose.png").is_file()
    again = _run(a, b, "--out", tmp_path, "--posenet-weights", posenet_weights)
    assert again.returncode == 2 and "--force" in again.stderr
    assert _run(a, b, "--out", tmp_path, "--force", "--posenet-weights", posenet_weights).returncode == 0
    assert _run(a, b, "--out", tmp_path, "--overwrite", "--posenet-weights", posenet_weights).returncode == 0


def test_two_images_with_one_output_name_are_refused(tmp_path, dev_root):
    a, b = tmp_path / "a" / "set3" / "0.png", tmp_path / "b" / "set3" / "0.png"
    for path in (a, b):
        path.parent.mkdir(parents=True)
        path.write_bytes((dev_root / "set3" / "0.png").read_bytes())
    out = tmp_path / "out"
    proc = _run(a, b, "--out", out, "--overwrite", "--posenet-weights", tmp_path / "never-read.pth")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert f"{a} and {b} would both write {out / 'set3_0_pose.png'}" in proc.stderr
    assert not out.exists()
    proc = _run(a, a.parent / ".." / "set3" / "0.png", "--out", out, "--posenet-weights", tmp_path / "never-read.pth")
    assert (proc.returncode, proc.stderr) == (2, f"Error: {a} and {a.parent / '..' / 'set3' / '0.png'} are the same "
                                                 f"image; give it once\n")


def test_an_input_image_is_never_drawn_over(tmp_path, dev_root):
    # p.png's drawing is p_pose.png: given as a second input, it was drawn over and then read.
    for name in ("p.png", "p_pose.png"):
        (tmp_path / name).write_bytes((dev_root / "set3" / "0.png").read_bytes())
    proc = _run(tmp_path / "p.png", tmp_path / "p_pose.png", "--out", tmp_path, "--overwrite",
                "--posenet-weights", tmp_path / "never-read.pth")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"would be drawn to {tmp_path / 'p_pose.png'}, which is one of the images given" in proc.stderr
    assert (tmp_path / "p_pose.png").read_bytes() == (dev_root / "set3" / "0.png").read_bytes()
    # Nor is a new setN folder made among capture sets (every tool would take it for a set).
    (tmp_path / "images").mkdir()
    shutil.copytree(dev_root / "set3", tmp_path / "images" / "set3")
    proc = _run(tmp_path / "p.png", "--out", tmp_path / "images" / "set9", "--posenet-weights", tmp_path / "never.pth")
    assert proc.returncode == 2 and "set9 would sit among the capture sets" in proc.stderr, proc.stderr
    assert not (tmp_path / "images" / "set9").exists()
    # Nor are drawings put among a set's frames, where a folder source would take them for frames.
    before = sorted(p.name for p in (tmp_path / "images" / "set3").iterdir())
    proc = _run(tmp_path / "p.png", "--out", tmp_path / "images" / "set3", "--posenet-weights", tmp_path / "never.pth")
    assert proc.returncode == 2 and proc.stderr == (
        f"Error: --out {tmp_path / 'images' / 'set3'} is a capture set folder (it holds bkg.png or K.png frames): "
        f"choose another folder for the drawings\n")
    assert sorted(p.name for p in (tmp_path / "images" / "set3").iterdir()) == before


def test_an_out_folder_that_cannot_be_written_is_found_first(tmp_path, dev_root, read_only_folder):
    proc = _run(dev_root / "set3" / "0.png", "--out", read_only_folder / "drawn",
                "--posenet-weights", tmp_path / "never-read.pth")
    assert proc.returncode == 2 and proc.stderr == (
        f"Error: --out {read_only_folder / 'drawn'}: cannot write in {read_only_folder} (read-only, or no "
        f"permission)\n")


def test_posenet_weights_holding_nan_are_refused(tmp_path, dev_root, posenet_weights):
    # They found nobody in any image, in silence.
    import torch

    state = torch.load(posenet_weights, weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] * float("nan")
    torch.save(state, tmp_path / "nan.pth")
    proc = _run(dev_root / "set10" / "0.png", "--json", "--posenet-weights", tmp_path / "nan.pth")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"nan.pth: PoseNet weights hold NaN or infinite values (1 tensor(s), e.g. {name})" in proc.stderr


def test_bad_weights_file_is_one_line_exit_2(tmp_path, dev_root):
    junk = tmp_path / "junk.pth"
    junk.write_text("no")
    proc = _run(dev_root / "set10" / "0.png", "--posenet-weights", junk)
    assert proc.returncode == 2
    assert proc.stderr == f"Error: {junk}: cannot load PoseNet weights (not a PyTorch weights file)\n"
    # Named by $HUMANSEG_POSENET_WEIGHTS, not there or not weights: the line says the variable is what to
    # mend, as main.py's does (it named a path never typed here, or no way out).
    env = dict(os.environ, HUMANSEG_CACHE=str(tmp_path / "cache"), HUMANSEG_POSENET_URL="http://127.0.0.1:9/")
    fix = (f"fix HUMANSEG_POSENET_WEIGHTS or unset it (then {tmp_path / 'cache' / 'posenet'} or a download is "
           f"used), or pass --posenet-weights PATH")
    for named, said in ((junk, f"{junk}: cannot load PoseNet weights (not a PyTorch weights file)"),
                        (tmp_path / "none.pth", f"HUMANSEG_POSENET_WEIGHTS={tmp_path / 'none.pth'}: no such file")):
        proc = _run(dev_root / "set10" / "0.png", env=dict(env, HUMANSEG_POSENET_WEIGHTS=str(named)))
        assert (proc.returncode, proc.stderr) == (2, f"Error: {said}; {fix}\n")


def test_offline_without_weights_is_one_line_exit_2(tmp_path, dev_root):
    env = dict(os.environ, HUMANSEG_CACHE=str(tmp_path), HUMANSEG_POSENET_URL="http://127.0.0.1:9/")
    env.pop("HUMANSEG_POSENET_WEIGHTS", None)
    proc = _run(dev_root / "set10" / "0.png", env=env)
    assert proc.returncode == 2  # a missing input, as in main.py and training.py (was 1 here)
    assert proc.stderr.strip().count("\n") == 0 and str(tmp_path / "posenet") in proc.stderr


@pytest.mark.slow
def test_a_bad_image_in_a_batch_stops_it_before_anything_is_drawn(dev_root, posenet_weights, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes((dev_root / "set3" / "0.png").read_bytes()[:2000])  # a cut-off PNG
    good = dev_root / "set3" / "1.png"
    out = tmp_path / "out"
    proc = _run(good, bad, "--out", out, "--posenet-weights", posenet_weights)
    assert proc.returncode == 2 and f"{bad}: not a readable image" in proc.stderr
    assert not out.exists()  # nothing drawn, so the rerun after fixing bad.png needs no --force
    bad.write_bytes((dev_root / "set3" / "0.png").read_bytes())
    proc = _run(good, bad, "--out", out, "--posenet-weights", posenet_weights)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()  # one line per image says what was found and where it was drawn
    assert len(lines) == 2 and lines[0].startswith(f"{good}: pose score ")
    assert lines[1].endswith(f", drawn to {out / 'bad_pose.png'}")
    assert (out / "1_pose.png").is_file() and (out / "bad_pose.png").is_file()


def test_unreadable_image_is_exit_2(tmp_path, posenet_weights):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    proc = _run(bad, "--posenet-weights", posenet_weights)
    assert proc.returncode == 2 and "bad.png: not a readable image" in proc.stderr


@pytest.mark.slow
def test_an_image_named_in_bytes_that_are_not_utf8_is_drawn(tmp_path, dev_root, posenet_weights):
    # "bad\xff.png" (a name from another system's encoding) was a 27-line UnicodeEncodeError.
    image = os.fsdecode(bytes(tmp_path) + b"/bad\xff.png")
    shutil.copy(dev_root / "set3" / "0.png", image)
    # Python's stdout keeps such names' bytes in the C locale, but is strict in a UTF-8 desktop locale
    # (PYTHONIOENCODING=utf-8:strict stands for one): there printing the name was that traceback.
    for strict in ({}, {"PYTHONIOENCODING": "utf-8:strict"}):
        proc = subprocess.run([sys.executable, "-m", "humanseg", "pose", image, "--out", str(tmp_path / "drawn"),
                               "--posenet-weights", str(posenet_weights), "--force"], cwd=ROOT, capture_output=True,
                              env=dict(os.environ, OMP_NUM_THREADS="1", **strict), timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert os.listdir(bytes(tmp_path / "drawn")) == [b"bad\xff_pose.png"]
        assert b"bad\xff_pose.png" in proc.stdout + proc.stderr  # named as it is


def test_an_empty_out_is_refused(tmp_path, dev_root):
    # `--out ""` (an unset shell variable) drew into the current folder.
    proc = _run(dev_root / "set3" / "0.png", "--out", "", "--posenet-weights", tmp_path / "never-read.pth")
    assert (proc.returncode, proc.stderr) == (2, "Error: Invalid value for '--out': empty; name a folder.\n")


def test_a_drawing_name_too_long_for_the_file_system_is_found_first(tmp_path, dev_root):
    image = tmp_path / ("p" * 248 + ".png")  # fits; its p..._pose.png (257 bytes) does not
    image.write_bytes((dev_root / "set3" / "0.png").read_bytes())
    proc = _run(image, "--out", tmp_path / "drawn", "--posenet-weights", tmp_path / "never-read.pth")
    assert proc.returncode == 2 and proc.stderr == (f"Error: {image}: its drawing's name {'p' * 40}... is longer "
                                                    f"than a file name may be (255 bytes); rename the image\n")
    assert not (tmp_path / "drawn").exists()
    # One of 255 bytes, as long as a name may be, is drawn: the run goes on to the weights.
    image = image.rename(tmp_path / ("p" * 246 + ".png"))
    proc = _run(image, "--out", tmp_path / "drawn", "--posenet-weights", tmp_path / "never-read.pth")
    assert proc.returncode == 2 and "longer than a file name" not in proc.stderr
    assert "never-read.pth" in proc.stderr


def test_drawings_of_two_images_of_one_name_are_told_apart_by_folder(tmp_path, monkeypatch):
    # An image in the current folder had no folder name to go by: "_0_pose.png".
    from humanseg.pose.cli import _output_names

    (tmp_path / "shots" / "day").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "shots" / "day")
    assert _output_names([Path("0.png"), Path("pt/0.png"), Path("../0.png"), Path("1.png")]) == [
        "day_0_pose.png", "pt_0_pose.png", "shots_0_pose.png", "1_pose.png"]



def test_a_pose_scale_or_max_poses_out_of_range_is_refused(tmp_path, dev_root):
    image = dev_root / "set3" / "0.png"
    for args, said in ((("--pose-scale", "3"), "'--pose-scale': 3.0 is not in the range 0.05<=x<=2.0."),
                       (("--max-poses", "0"), "'--max-poses': 0 is not in the range 1<=x<=20.")):
        proc = _run(image, *args, "--posenet-weights", tmp_path / "never-read.pth")
        assert (proc.returncode, proc.stderr) == (2, f"Error: Invalid value for {said}\n")


def test_weights_of_another_model_id_are_one_line(dev_root, posenet_weights):
    proc = _run(dev_root / "set3" / "0.png", "--model-id", "75", "--posenet-weights", posenet_weights)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"{posenet_weights}: holds model 50 weights, not model 75" in proc.stderr


def test_a_dangling_link_where_a_drawing_would_go_is_found_first(tmp_path, dev_root):
    # It counts as an existing file: without --force the run stops before the weights load, and the
    # drawing is not written through the link to where it points.
    out = tmp_path / "out"
    out.mkdir()
    (out / "0_pose.png").symlink_to(tmp_path / "elsewhere.png")
    proc = _run(dev_root / "set3" / "0.png", "--out", out, "--posenet-weights", tmp_path / "never-read.pth")
    assert (proc.returncode, proc.stderr) == (
        2, f"Error: --out {out}: 0_pose.png exists (pass --force to replace it)\n")
    assert not (tmp_path / "elsewhere.png").exists()


def test_the_network_options_reach_the_estimator(monkeypatch, dev_root, posenet_weights):
    from click.testing import CliRunner

    from humanseg.pose.cli import pose_command
    from humanseg.pose.estimator import PoseEstimator

    made = []
    load = PoseEstimator.load.__func__

    def spy(cls, *args, **kwargs):
        made.append(load(cls, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(PoseEstimator, "load", classmethod(spy))
    image = dev_root / "set10" / "0.png"
    result = CliRunner().invoke(pose_command, [str(image), "--json", "--posenet-weights", str(posenet_weights),
                                               "--pose-scale", "0.3", "--output-stride", "8", "--max-poses", "3"])
    assert result.exit_code == 0, result.output
    (est,) = made
    assert (est.scale, est.output_stride, est.network.output_stride, est.max_poses) == (0.3, 8, 8, 3)
    assert est.input_size(640, 480) == (193, 145)
    assert json.loads(result.output)["image"] == str(image)


@pytest.mark.slow
def test_the_printed_lines_name_the_palms_and_agree_with_the_json(dev_root, posenet_weights):
    person, nobody = dev_root / "set10" / "0.png", dev_root / "set10" / "3.png"
    text = _run(person, nobody, "--posenet-weights", posenet_weights)
    as_json = _run(person, "--json", "--posenet-weights", posenet_weights)
    assert text.returncode == 0 and as_json.returncode == 0, text.stderr + as_json.stderr
    found, empty = text.stdout.splitlines()
    assert empty == f"{nobody}: no pose, no palm"
    data = json.loads(as_json.stdout)
    assert found.startswith(f"{person}: pose score 0.")
    palms = re.findall(r", (left|right) palm at \((\d+), (\d+)\)", found)
    assert len(palms) == len(data["palms"]) == 2 and sorted(side for side, _, _ in palms) == ["left", "right"]
    for (side, px, py), (x, y) in zip(palms, data["palms"], strict=True):
        assert abs(int(px) - x) <= 1 and abs(int(py) - y) <= 1
    scores = [s for _, _, s in data["keypoints"].values()]
    assert all(0 <= s <= 1 and s == round(s, 3) for s in scores)
    assert sum(0.01 < s < 0.99 for s in scores) >= 10  # the network's own scores, not rounded to 0 or 1


@pytest.mark.slow
def test_with_several_people_the_strongest_pose_is_reported_and_every_palm_drawn(tmp_path, dev_root, posenet_weights):
    # Two dev frames side by side: two people, each with both palms in view.
    from humanseg.pose import PoseEstimator

    two = tmp_path / "two.png"
    frame = np.hstack([cv2.imread(str(dev_root / name)) for name in ("set10/0.png", "set7/0.png")])
    cv2.imwrite(str(two), frame)
    poses = PoseEstimator.load(posenet_weights, max_poses=2).estimate(frame)
    assert len(poses) == 2 and poses[0].score > poses[1].score
    proc = _run(two, "--json", "--max-poses", "2", "--out", tmp_path / "drawn", "--posenet-weights", posenet_weights)
    text = _run(two, "--max-poses", "2", "--posenet-weights", posenet_weights)
    assert proc.returncode == 0 and text.returncode == 0, proc.stderr + text.stderr
    found = json.loads(proc.stdout)
    for name, (x, y, _) in found["keypoints"].items():  # the strongest pose's
        assert math.dist((x, y), (poses[0].keypoints[name].x, poses[0].keypoints[name].y)) < 1, name
    assert text.stdout.startswith(f"{two}: pose score {poses[0].score:.2f}, ")
    assert len(found["palms"]) == 4 and text.stdout.count(" palm at ") == 4  # every pose's
    assert {x < 640 for x, _ in found["palms"]} == {True, False}
    drawn = cv2.imread(str(tmp_path / "drawn" / "two_pose.png"))
    for x, y in found["palms"]:  # each a dot in the palm colour
        assert tuple(drawn[round(y), round(x)]) == (0, 0, 255)  # red, as in the capture tool


def test_the_drawing_shows_sure_keypoints_their_lines_and_the_palms_where_they_are():
    from humanseg.pose import Palm
    from humanseg.pose.draw import draw_poses
    from tests.test_pose_palm import _pose

    frame = np.full((240, 320, 3), 40, np.uint8)
    arms = _pose(left_elbow=(60, 100, 0.9), left_wrist=(60, 180, 0.9),
                 right_elbow=(250, 100, 0.9), right_wrist=(250, 60, 0.1))
    other = _pose(nose=(160, 30, 0.9))  # a second person: a nose alone
    drawn = draw_poses(frame, [arms, other], [Palm(200, 50, "left", 0.9)])
    assert (frame == 40).all()  # the frame itself is left as it was
    changed = (drawn != 40).any(axis=2)
    assert changed[140, 60]  # the left forearm
    assert changed[30, 160] and not changed[160, 30]  # the nose, at (x, y) = (160, 30)
    assert not changed[60, 250] and not changed[80, 250]  # an unsure wrist: no dot, no line to it
    from humanseg.ui.draw import PALM_COLOUR

    assert tuple(drawn[50, 200]) == PALM_COLOUR == (0, 0, 255) and not changed[200, 50]  # the palm, red as in the
    # capture tool (it was magenta here)
    assert changed.sum() < 2000  # nothing else: keypoints of score 0 (at the origin) are not drawn


def test_a_drawing_that_appears_during_the_run_is_kept_and_said_as_evaluate_says_it(monkeypatch, dev_root,
                                                                                     posenet_weights, tmp_path):
    # Another program's 1_pose.png made while 0.png was drawn: "refusing to overwrite existing file",
    # exit 2, as if the command had been given a bad input.
    from click.testing import CliRunner

    from humanseg.pose.cli import pose_command
    from humanseg.pose.estimator import PoseEstimator

    out = tmp_path / "out"
    estimate = PoseEstimator.estimate

    def meanwhile(self, frame):
        if (out / "0_pose.png").exists():
            (out / "1_pose.png").write_bytes(b"theirs")
        return estimate(self, frame)

    monkeypatch.setattr(PoseEstimator, "estimate", meanwhile)
    r = CliRunner().invoke(pose_command, [str(dev_root / "set10" / "0.png"), str(dev_root / "set10" / "1.png"),
                                          "--out", str(out), "--posenet-weights", str(posenet_weights)])
    assert r.exit_code == 1 and r.output.endswith(f"Error: {out / '1_pose.png'}: it appeared during the run (another "
                                                  f"program's?): not replaced without --force\n"), r.output
    assert (out / "1_pose.png").read_bytes() == b"theirs"


def test_links_to_nothing_and_symlink_loops_are_named_as_such(tmp_path, dev_root):
    # Each was "File '...' does not exist." or "no such file" (the name is there), or "a link to nothing".
    loop_a, loop_b, dangling = tmp_path / "A", tmp_path / "B", tmp_path / "dangle.png"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling.symlink_to(tmp_path / "gone.png")
    frame = dev_root / "set10" / "0.png"
    for args, line in (([loop_a], f"image is a symlink loop: {loop_a}"),
                       ([dangling], f"image is a link to nothing: {dangling}"),
                       ([tmp_path / "nothere.png"], f"image missing: {tmp_path / 'nothere.png'}"),
                       ([frame, "--posenet-weights", loop_a], f"--posenet-weights {loop_a}: a symlink loop"),
                       ([frame, "--posenet-weights", dangling], f"--posenet-weights {dangling}: a link to nothing"),
                       ([frame, "--out", loop_a], f"--out {loop_a}: {loop_a} is a symlink loop, not a folder")):
        proc = _run(*args)
        assert (proc.returncode, proc.stderr) == (2, f"Error: {line}\n")


def test_a_folder_where_a_drawing_goes_is_found_before_anything_is_drawn(tmp_path, dev_root):
    # With --force, 0_pose.png was drawn, then "1_pose.png: Is a directory", exit 1.
    out = tmp_path / "out"
    (out / "1_pose.png").mkdir(parents=True)
    frames = [dev_root / "set10" / "0.png", dev_root / "set10" / "1.png"]
    proc = _run(*frames, "--out", out, "--force", "--posenet-weights", tmp_path / "never-read.pth")
    assert (proc.returncode, proc.stderr) == (2, f"Error: {frames[1]} would be drawn to {out / '1_pose.png'}, which "
                                                 f"is a folder; move it away or choose another --out\n")
    assert sorted(p.name for p in out.iterdir()) == ["1_pose.png"]


def test_the_json_keypoint_scores_are_the_estimators_to_three_places(dev_root, posenet_weights):
    # --json's keypoints are [x, y, score], the score the estimator's to 3 places (to one, 0.9 for
    # 0.934, passed the test that asked only for s == round(s, 3)).
    from click.testing import CliRunner

    from humanseg.pose.cli import pose_command
    from humanseg.pose.estimator import PoseEstimator

    image = dev_root / "set10" / "0.png"
    r = CliRunner().invoke(pose_command, [str(image), "--json", "--posenet-weights", str(posenet_weights)])
    assert r.exit_code == 0, r.output
    (pose,) = PoseEstimator.load(weights=str(posenet_weights)).estimate(cv2.imread(str(image)))
    got = json.loads(r.output)["keypoints"]
    assert {k: v[2] for k, v in got.items()} == {k: round(kp.score, 3) for k, kp in pose.keypoints.items()}


def test_no_out_folder_is_made_when_the_weights_do_not_load(tmp_path, dev_root):
    # --out is made only once the weights loaded: no empty folder is left by an error.
    from click.testing import CliRunner

    from humanseg.pose.cli import pose_command

    junk, out = tmp_path / "junk.pth", tmp_path / "drawn"
    junk.write_text("no")
    r = CliRunner().invoke(pose_command, [str(dev_root / "set3" / "0.png"), "--out", str(out),
                                          "--posenet-weights", str(junk)])
    assert r.exit_code == 2 and "cannot load PoseNet weights" in r.output
    assert not out.exists()
