import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from humanseg import metrics, store
from humanseg.errors import HumansegError
from humanseg.evaluate import AbsdiffPredictor, absdiff_mask, evaluate_sets, parse_sets, summarize
from humanseg.model import SiameseSegNet, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "humanseg", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})


@pytest.fixture
def random_weights(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "rand.pt", SiameseSegNet().eval())


def test_evaluate_matches_metrics_computed_by_hand(copy_set):
    root = copy_set(8)
    results = evaluate_sets(root, [8], AbsdiffPredictor(), keep_masks=True)
    info = store.scan_set(root, 8)
    bkg = store.read_background(info)
    expected = {"iou": [], "dice": [], "boundary_f": []}
    for r in results:
        frame = store.read_frame(info, r.index)
        truth = store.read_mask(info.mask_path(r.index))
        # The baseline by hand: the largest channel difference above 30.
        pred = np.where(np.abs(frame.astype(int) - bkg.astype(int)).max(axis=2) > 30, 255, 0).astype(np.uint8)
        assert np.array_equal(pred, r.pred) and np.array_equal(absdiff_mask(frame, bkg), pred)
        # Kept as PNG until the run's end, not as the array (2 MB a 1080p frame, for every frame).
        assert isinstance(r.pred_png, bytes) and len(r.pred_png) < pred.size // 20
        assert np.count_nonzero(pred) < pred.size and (np.count_nonzero(pred) > 0) == (np.count_nonzero(truth) > 0)
        inter = np.logical_and(pred > 0, truth > 0).sum()
        union = np.logical_or(pred > 0, truth > 0).sum()
        expected["iou"].append(1.0 if union == 0 else inter / union)
        total = np.count_nonzero(pred) + np.count_nonzero(truth)
        expected["dice"].append(1.0 if total == 0 else 2 * inter / total)
        expected["boundary_f"].append(metrics.boundary_f(pred, truth))  # by hand in test_metrics
        for name, values in expected.items():
            assert r.scores[name] == pytest.approx(values[-1]), name
    summary = summarize(results)
    for name, values in expected.items():
        assert summary["overall"][name] == pytest.approx(np.mean(values)), name
        assert summary["sets"]["set8"][name] == pytest.approx(np.mean(values)), name
    assert summary["sets"]["set8"]["frames"] == len(info.labeled) == 3


def test_the_overall_row_averages_frames_not_sets():
    # CONVENTIONS: scores are averaged per frame. One set of three frames and one of one: the mean of
    # the two sets' means would weigh the single frame three times.
    from humanseg.evaluate import FrameResult

    rows = [FrameResult(3, k, {"iou": v, "dice": v, "boundary_f": v}, 1.0) for k, v in enumerate((0.9, 0.8, 0.7))]
    rows.append(FrameResult(7, 0, {"iou": 0.2, "dice": 0.2, "boundary_f": 0.2}, 1.0))
    summary = summarize(rows)
    assert summary["overall"]["iou"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.2) / 4)
    assert summary["sets"]["set3"]["iou"] == pytest.approx(0.8) and summary["sets"]["set7"]["iou"] == pytest.approx(0.2)
    assert summary["overall"]["frames"] == 4


@pytest.mark.slow
def test_evaluate_cli_table_json_masks_and_montage(copy_set, tmp_path, random_weights):
    root = copy_set(8)
    out_json, masks, montage = tmp_path / "r.json", tmp_path / "masks", tmp_path / "worst.png"
    r = cli("evaluate", "--images", str(root), "--weights", str(random_weights), "--method", "model",
            "--method", "absdiff", "--method", "model-raw", "--json", str(out_json), "--save-masks", str(masks),
            "--montage", str(montage), "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "model:" in r.stdout and "absdiff:" in r.stdout and "model-raw:" in r.stdout and "overall" in r.stdout
    report = json.loads(out_json.read_text())
    assert set(report) == {"model", "absdiff", "model-raw"}
    assert report["model"]["overall"]["frames"] == 3
    assert r.stdout.endswith(f"scores written: {out_json}\n")  # said, as the masks and montage are
    saved = sorted(p.name for p in (masks / "set8").iterdir())
    assert saved == ["0_mask.png", "1_mask.png", "2_mask.png"]
    # The saved mask scores exactly what the table says for that frame's set.
    ious = [metrics.iou(store.read_mask(masks / "set8" / n), store.read_mask(root / "set8" / n)) for n in saved]
    assert np.mean(ious) == pytest.approx(report["model"]["sets"]["set8"]["iou"], abs=1e-4)
    # The montage: one row per frame, worst IoU first, each frame | truth | prediction at 320 px wide.
    img = cv2.imread(str(montage))
    assert img is not None and img.shape == (3 * 240, 3 * 320, 3)
    worst_first = [n for _, n in sorted(zip(ious, saved, strict=True))]
    for row, name in enumerate(worst_first):
        tiles = [img[row * 240:(row + 1) * 240, c * 320:(c + 1) * 320] for c in range(3)]
        frame = cv2.resize(cv2.imread(str(root / "set8" / name.replace("_mask", ""))), (320, 240))
        truth, pred = (cv2.resize(store.read_mask(folder / "set8" / name), (320, 240), interpolation=cv2.INTER_NEAREST)
                       for folder in (root, masks))
        assert np.array_equal(tiles[0][30:], frame[30:])  # the scores are written across the top
        assert np.array_equal(tiles[1], cv2.merge([truth] * 3)) and np.array_equal(tiles[2], cv2.merge([pred] * 3))
    # model-raw is the network's own answer: the same model's masks before the clean-up drops specks.
    raw = tmp_path / "raw"
    r = cli("evaluate", "--images", str(root), "--weights", str(random_weights), "--method", "model-raw",
            "--save-masks", str(raw), "--threads", "1")
    assert r.returncode == 0, r.stderr
    for name in saved:
        cleaned, plain = (store.read_mask(folder / "set8" / name) for folder in (masks, raw))
        assert (cleaned != plain).sum() > 1000
        assert cv2.connectedComponents(cleaned)[0] < cv2.connectedComponents(plain)[0]
    # A second run keeps the first one's results unless --force, and says so before evaluating.
    before = {p: p.read_bytes() for p in (out_json, montage, *(masks / "set8").iterdir())}
    for given, text in (({}, f"already holds masks of set 8 ({masks / 'set8' / '0_mask.png'}"),
                        ({"--save-masks": tmp_path / "m2"}, f"--montage {montage} already exists"),
                        ({"--save-masks": tmp_path / "m2", "--montage": tmp_path / "w2.png"},
                         f"--json {out_json} already exists")):
        options = {"--save-masks": masks, "--montage": montage, "--json": out_json, **given}
        args = [str(x) for pair in options.items() for x in pair]
        r = cli("evaluate", "--images", str(root), "--method", "absdiff", *args)
        assert r.returncode == 2 and text in r.stderr and "--force" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not r.stdout
    assert {p: p.read_bytes() for p in before} == before and not (tmp_path / "m2").exists()
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(masks),
            "--montage", str(montage), "--json", str(out_json), "--force")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(out_json.read_text())) == {"absdiff"}


def test_model_options_with_absdiff_alone_are_refused(dev_root, tmp_path):
    # --method absdiff --weights missing.pt scored the baseline without a word about the weights.
    for args in (["--weights", str(tmp_path / "no.pt")], ["--work-width", "320"], ["--threads", "1"]):
        r = cli("evaluate", "--images", str(dev_root), "--sets", "3", "--method", "absdiff", *args)
        assert r.returncode == 2 and r.stderr == (f"Error: {args[0]} is for --method model / model-raw; --method "
                                                  f"absdiff alone uses no model\n"), r.stderr


def test_a_set_named_twice_is_scored_once(dev_root):
    r = cli("evaluate", "--images", str(dev_root), "--sets", "3,set3,3", "--method", "absdiff")
    assert r.returncode == 0, r.stderr
    rows = [(line.split()[0], int(line.split()[1])) for line in r.stdout.splitlines()
            if line.split()[:1] in (["set3"], ["overall"])]
    n = len(store.scan_set(dev_root, 3).labeled)
    assert rows == [("set3", n), ("overall", n)]


def test_a_set_folder_reached_again_through_a_link_is_refused_as_training_refuses_it(copy_set):
    # images/set4 -> set3 was scored as a second set, weighing set 3 twice in the overall row.
    root = copy_set(3)
    (root / "set4").symlink_to("set3")
    for sets in ([], ["--sets", "3,4"]):
        r = cli("evaluate", "--images", str(root), *sets, "--method", "absdiff")
        assert (r.returncode, r.stdout) == (2, ""), r.stdout
        assert r.stderr == (f"Error: --images: {root / 'set4'} is the set folder {root / 'set3'} again (through a "
                            f"link); its frames would count twice\n")
    r = cli("evaluate", "--images", str(root), "--sets", "4", "--method", "absdiff")  # one name of it is fine
    assert r.returncode == 0 and "set4" in r.stdout, r.stderr


def test_set_folders_named_off_the_layout_are_named(tmp_path, dev_root):
    shutil.copytree(dev_root / "set3", tmp_path / "images" / "set03")
    r = cli("evaluate", "--images", str(tmp_path / "images"), "--method", "absdiff")
    assert r.returncode == 2 and r.stderr == (f"Error: no labeled frames found in {tmp_path / 'images'} (set03 passed "
                                              f"over: the layout's names are set1, set2, ...)\n")
    # Frames and masks with leading zeros in a set of the layout's name: named as well.
    (tmp_path / "images" / "set03").rename(tmp_path / "images" / "set3")
    for p in sorted((tmp_path / "images" / "set3").glob("[0-9]*.png")):
        p.rename(p.with_name("0" + p.name))
    r = cli("evaluate", "--images", str(tmp_path / "images"), "--method", "absdiff")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        f"Error: no labeled frames found in {tmp_path / 'images'} (set3/00.png, set3/01.png, set3/02.png, ... "
        f"passed over: the layout's names are 0.png, 1.png, ...)")
    assert r.stderr.startswith("warning: ") and "00_mask.png is not named as the layout's masks are" in r.stderr


def test_nothing_to_score_is_said_before_a_model_loads(tmp_path, copy_set, monkeypatch):
    # A root without labels was said after the model had loaded (5 s on the development machine),
    # and a checkpoint that could not be loaded was named instead of the empty root.
    from click.testing import CliRunner

    from humanseg import evaluate

    root = copy_set(3, labels=False)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    loaded = []
    real = evaluate.make_predictor
    monkeypatch.setattr(evaluate, "make_predictor", lambda *a: loaded.append(a) or real(*a))
    for args in ([], ["--weights", str(junk)], ["--method", "model-raw", "--method", "absdiff"]):
        res = CliRunner().invoke(evaluate.evaluate_command, ["--images", str(root), *args])
        assert (res.exit_code, res.output) == (2, f"Error: no labeled frames found in {root}\n"), args
    assert loaded == []
    # Masks that go away while the model loads: one line, a runtime failure.
    copy_set(3, 5)

    def masks_go_away(*a):
        for p in (root / "set5").glob("*_mask.png"):
            p.unlink()
        return real(*a)

    monkeypatch.setattr(evaluate, "make_predictor", masks_go_away)
    res = CliRunner().invoke(evaluate.evaluate_command, ["--images", str(root), "--method", "absdiff"])
    assert (res.exit_code, res.output) == (1, f"Error: no labeled frames left in {root}: they were moved or "
                                              f"removed during the run\n")


def test_sets_are_set_numbers():
    assert parse_sets("3, set7,3,") == [3, 7] and parse_sets(None) is None
    # int() would take -1, +3 and look for set-1, set3; "" and "," named no set and scored every one.
    for spec in ("-1", "+3", "3-7", "3,x", "3.0"):
        with pytest.raises(HumansegError, match=f"--sets must be set numbers like 3,7: {re.escape(spec)}$"):
            parse_sets(spec)
    for spec in ("", ","):  # (said as "--sets must be set numbers like 3,7: " and nothing)
        with pytest.raises(HumansegError, match="^--sets is empty: give set numbers like 3,7, or leave it out "
                                                "for every labeled set$"):
            parse_sets(spec)


def test_evaluate_errors(tmp_path, random_weights, dev_root):
    # A width the network cannot run at: 100000 asked for 90 GB (a traceback), 20000 was killed for memory.
    r = cli("evaluate", "--images", str(dev_root), "--sets", "3", "--work-width", "100000")
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--work-width': 100000 is not in the range 32<=x<=4096.")
    r = cli("evaluate", "--images", str(tmp_path / "none"))
    assert r.returncode == 2 and "images folder not found" in r.stderr
    (tmp_path / "empty").mkdir()
    r = cli("evaluate", "--images", str(tmp_path / "empty"), "--method", "absdiff")
    assert r.returncode == 2 and "no labeled frames" in r.stderr
    r = cli("evaluate", "--images", str(dev_root / "set3"), "--method", "absdiff")  # a set folder, not the root
    assert r.returncode == 2 and (f"--images {dev_root / 'set3'} is a set folder; give the folder that holds it: "
                                  f"{dev_root}") in r.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    r = cli("evaluate", "--images", str(dev_root), "--sets", "3", "--weights", "")  # was the shipped model
    assert r.returncode == 2 and r.stderr == ("Error: --weights is empty: name a checkpoint file, or leave the "
                                              "option out for the shipped model\n")
    r = cli("evaluate", "--images", str(dev_root), "--sets", "3", "--weights", str(bad))
    assert r.returncode == 2
    assert r.stderr == f"Error: weights file unreadable or corrupt: {bad} (not a PyTorch weights file)\n"


def test_a_report_never_replaces_the_checkpoint_it_evaluates(copy_set, tmp_path, random_weights, monkeypatch):
    root = copy_set(8)
    kept = random_weights.read_bytes()
    for option in ("--json", "--montage"):
        r = cli("evaluate", "--images", str(root), "--weights", str(random_weights), option, str(random_weights),
                "--force")
        assert r.returncode == 2 and r.stderr == (f"Error: {option} {random_weights} is the checkpoint being "
                                                  f"evaluated ({random_weights}); give it another name\n")
    assert random_weights.read_bytes() == kept
    monkeypatch.setenv("HUMANSEG_WEIGHTS", str(random_weights))  # the one used without --weights
    r = cli("evaluate", "--images", str(root), "--json", str(random_weights), "--force")
    assert r.returncode == 2 and "is the checkpoint being evaluated" in r.stderr
    assert random_weights.read_bytes() == kept
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr  # absdiff reads no checkpoint


def test_a_set_asked_for_without_labels_is_named_not_left_out(copy_set):
    copy_set(2)
    root = copy_set(3, labels=False)
    r = cli("evaluate", "--images", str(root), "--sets", "2,3", "--method", "absdiff")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"Error: --sets 2,3: set 3 has no labeled frames ({root / 'set3'}); "
                                f"label it first, or leave it out")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff")  # every set with labels: set 2
    assert r.returncode == 0 and [line.split()[0] for line in r.stdout.splitlines()[2:]] == ["set2", "overall"]


def test_outputs_go_into_new_folders_and_unwritable_ones_are_one_line(copy_set, tmp_path):
    images = copy_set(2)
    out = tmp_path / "new" / "deeper"
    r = cli("evaluate", "--images", str(images), "--method", "absdiff",
            "--montage", str(out / "worst.png"), "--json", str(out / "scores.json"))
    assert r.returncode == 0, r.stderr
    assert (out / "worst.png").is_file() and "absdiff" in json.loads((out / "scores.json").read_text())
    blocked = tmp_path / "file"
    blocked.write_text("a file, not a folder")
    r = cli("evaluate", "--images", str(images), "--method", "absdiff", "--json", str(blocked / "s.json"))
    # Refused before the run (no table printed), not after it, when the results would be written.
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"Error: --json {blocked / 's.json'}: {blocked} is a file, not a folder\n"


def test_outputs_in_a_read_only_folder_are_one_line(copy_set, read_only_folder):
    images = copy_set(2)
    # predict found it only at its first write, after loading the model and segmenting.
    r = cli("predict", "--bkg", str(images / "set2" / "bkg.png"), str(images / "set2" / "0.png"),
            "--out", str(read_only_folder / "out"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"Error: --out {read_only_folder / 'out'}: cannot write in {read_only_folder} " \
                       f"(read-only, or no permission)\n"
    for option, target in (("--save-masks", read_only_folder / "masks"), ("--json", read_only_folder / "s.json"),
                           ("--montage", read_only_folder / "deeper" / "worst.png")):
        r = cli("evaluate", "--images", str(images), "--method", "absdiff", option, str(target))
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == f"Error: {option} {target}: cannot write in {read_only_folder} " \
                           f"(read-only, or no permission)\n"


def test_predict_names_a_frame_that_looks_mirrored_against_the_background(dev_root, tmp_path, random_weights):
    # A camera frame as it comes against the capture tool's (mirrored) bkg.png: every mask would be wrong.
    flipped = tmp_path / "bkg.png"
    cv2.imwrite(str(flipped), cv2.flip(cv2.imread(str(dev_root / "set2" / "bkg.png")), 1))
    frames = [str(dev_root / "set2" / "0.png"), str(dev_root / "set2" / "1.png")]
    r = cli("predict", "--bkg", str(flipped), *frames, "--out", str(tmp_path / "a"), "--weights", str(random_weights))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2  # said, and done as asked
    assert r.stderr.splitlines() == [f"warning: {f} looks mirrored against --bkg {flipped} (they match far better "
                                     f"with one flipped), so its mask would be wrong: flip one of them (or, if they show "
                                     f"two rooms, give the frame's own background)" for f in frames]
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), *frames, "--out", str(tmp_path / "b"),
            "--weights", str(random_weights))
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.slow
def test_predict_writes_masks_and_refuses_to_overwrite(dev_root, tmp_path, default_weights):
    # No --weights: the shipped model, on frames of a set it held out from training.
    out = tmp_path / "pred"
    frames = [str(dev_root / "set3" / "0.png"), str(dev_root / "set3" / "1.png")]
    args = ["predict", "--bkg", str(dev_root / "set3" / "bkg.png"), *frames, "--out", str(out), "--overlay"]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [Path(x["mask"]).name for x in lines] == ["0_mask.png", "1_mask.png"]
    for line, frame_path in zip(lines, frames, strict=True):
        mask = store.read_mask(Path(line["mask"]), (480, 640))
        truth = store.read_mask(Path(frame_path.replace(".png", "_mask.png")), (480, 640)) > 0
        person = mask > 0
        assert (person & truth).sum() / (person | truth).sum() > 0.9
        assert line["person_fraction"] == round(float(person.mean()), 4)
        # The overlay is the frame, half-darkened and pushed to green where the mask says person.
        frame = cv2.imread(frame_path).astype(int)
        overlay = cv2.imread(str(out / Path(frame_path).name.replace(".png", "_overlay.png"))).astype(int)
        assert np.array_equal(overlay[~person], frame[~person])
        assert np.array_equal(overlay[person], (frame[person] // 2 + (0, 127, 0)).clip(0, 255))
    r = cli(*args)
    assert r.returncode == 2 and "refusing to overwrite" in r.stderr
    r = cli("predict", "--bkg", str(tmp_path / "nope.png"), frames[0], "--out", str(out))
    assert r.returncode == 2 and "background missing" in r.stderr


@pytest.mark.slow
def test_predict_warns_of_a_frame_that_does_not_match_its_background(dev_root, tmp_path, default_weights):
    # Another room's background, or the camera nudged after it: said as live mode says "camera moved?";
    # the masks are written all the same, as asked. The frames' own background: nothing said.
    frames = [str(dev_root / "set3" / "0.png"), str(dev_root / "set3" / "1.png")]
    r = cli("predict", "--bkg", str(dev_root / "set3" / "bkg.png"), *frames, "--out", str(tmp_path / "own"))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2 and r.stderr == ""
    other = dev_root / "set7" / "bkg.png"
    r = cli("predict", "--bkg", str(other), *frames, "--out", str(tmp_path / "other"))
    assert r.returncode == 0 and [json.loads(x)["frame"] for x in r.stdout.splitlines()] == frames
    assert all((tmp_path / "other" / f"{k}_mask.png").is_file() for k in (0, 1))
    assert r.stderr.splitlines() == [f"warning: {f} does not match --bkg {other}: most of its room differs from it, "
                                     f"or is shifted against it (another room, or a camera moved after the background "
                                     f"was taken), so its mask is likely wrong: give the frame's own background"
                                     for f in frames]
    nudged = tmp_path / "nudged"
    nudged.mkdir()
    cv2.imwrite(str(nudged / "bkg.png"), cv2.imread(str(dev_root / "set3" / "bkg.png"))[:, :-16])
    cv2.imwrite(str(nudged / "0.png"), cv2.imread(frames[0])[:, 16:])
    r = cli("predict", "--bkg", str(nudged / "bkg.png"), str(nudged / "0.png"), "--out", str(tmp_path / "n"))
    assert r.returncode == 0 and r.stderr.startswith(f"warning: {nudged / '0.png'} does not match --bkg ")
    # A background saved mirrored matches the frames no better: said once, as mirrored (which tells the fix).
    cv2.imwrite(str(nudged / "flipped.png"), cv2.flip(cv2.imread(str(dev_root / "set3" / "bkg.png")), 1))
    r = cli("predict", "--bkg", str(nudged / "flipped.png"), *frames, "--out", str(tmp_path / "f"))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert [line.split(" against ")[0] for line in r.stderr.splitlines()] == [f"warning: {f} looks mirrored" for f in frames]


def test_evaluate_names_a_set_whose_frames_do_not_match_its_background_once(dev_root, tmp_path, random_weights):
    # set1: set3's frames under set7's bkg.png (another room, as after a camera moved); set2: set4 as it is.
    root = tmp_path / "images"
    shutil.copytree(dev_root / "set3", root / "set1")
    shutil.copy(dev_root / "set7" / "bkg.png", root / "set1" / "bkg.png")
    shutil.copytree(dev_root / "set4", root / "set2")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--method", "model", "--weights", str(random_weights))
    assert r.returncode == 0
    assert r.stderr.splitlines() == [
        f"warning: {root / 'set1'}: 4 of its 4 labeled frames (0.png, 1.png, 2.png, 3.png) do not match its "
        f"bkg.png: most of their room differs from it, or is shifted against it (the camera moved after it was "
        f"taken, or it shows another room?); their scores measure that, not only the method"]
    assert [line for line in r.stdout.splitlines() if line.endswith(":")] == ["absdiff:", "model:"]  # scored as asked
    r = cli("evaluate", "--images", str(root), "--sets", "2", "--method", "absdiff")
    assert r.returncode == 0 and r.stderr == ""


def test_predict_checks_every_output_name_before_writing(dev_root, tmp_path, random_weights):
    bkg = str(dev_root / "set2" / "bkg.png")
    same_name = [str(dev_root / "set2" / "0.png"), str(tmp_path / "0.png")]
    (tmp_path / "0.png").write_bytes((dev_root / "set2" / "1.png").read_bytes())
    out = tmp_path / "pred"
    for force in ([], ["--force"]):  # with --force the second would silently replace the first
        r = cli("predict", "--bkg", bkg, *same_name, "--out", str(out), "--weights", str(random_weights), *force)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert f"would both write {out / '0_mask.png'}" in r.stderr and same_name[1] in r.stderr
        assert not out.exists()
    # One frame given twice (a.png and ./a.png): not two frames to predict into separate folders.
    twice = [same_name[1], os.path.join(os.path.dirname(same_name[1]), ".", "0.png")]
    r = cli("predict", "--bkg", bkg, *twice, "--out", str(out), "--weights", str(random_weights))
    assert r.returncode == 2 and r.stderr == f"Error: {twice[0]} and {twice[1]} are the same frame; give it once\n"
    assert not out.exists()
    # An existing output is refused before the frames ahead of it are written, naming --force.
    out.mkdir()
    (out / "1_overlay.png").write_bytes(b"kept")
    frames = [str(dev_root / "set2" / "0.png"), str(dev_root / "set2" / "1.png")]
    r = cli("predict", "--bkg", bkg, *frames, "--out", str(out), "--weights", str(random_weights), "--overlay")
    assert r.returncode == 2 and f"refusing to overwrite existing file: {out / '1_overlay.png'}" in r.stderr
    assert "--force" in r.stderr and [p.name for p in out.iterdir()] == ["1_overlay.png"]
    assert (out / "1_overlay.png").read_bytes() == b"kept"


def test_mask_outputs_refuse_a_capture_folder_and_leave_its_labels(copy_set, random_weights):
    # evaluate --save-masks OUT writes OUT/setN/K_mask.png: OUT = --images would replace every label.
    root = copy_set(2)
    labels = {p.name: p.read_bytes() for p in (root / "set2").glob("*_mask.png")}
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(root))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"--save-masks {root / 'set2'} is a capture set folder" in r.stderr
    # One set folder as OUT would get OUT/set2/K_mask.png, a stray set folder inside the capture.
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(root / "set2"),
            "--force")
    assert r.returncode == 2 and f"--save-masks {root / 'set2'} is a capture set folder" in r.stderr
    assert not (root / "set2" / "set2").exists()
    # --json / --montage never replace (or add) a capture's own file, --force or not.
    frame = (root / "set2" / "0.png").read_bytes()
    for option, name in (("--json", "0.png"), ("--montage", "0.png"), ("--json", "9.png")):
        r = cli("evaluate", "--images", str(root), "--method", "absdiff", option, str(root / "set2" / name),
                "--force")
        assert r.returncode == 2 and f"{option} {root / 'set2' / name} is a file of the capture set" in r.stderr
    assert (root / "set2" / "0.png").read_bytes() == frame and not (root / "set2" / "9.png").exists()
    same = str(root.parent / "report.png")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--json", same, "--montage", same)
    assert r.returncode == 2 and f"--montage and --json both name {same}" in r.stderr
    r = cli("predict", "--bkg", str(root / "set2" / "bkg.png"), str(root / "set2" / "0.png"),
            "--out", str(root / "set2"), "--weights", str(random_weights), "--force")
    assert r.returncode == 2 and f"--out {root / 'set2'} is a capture set folder" in r.stderr
    assert {p.name: p.read_bytes() for p in (root / "set2").glob("*_mask.png")} == labels and labels
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(root.parent / "out"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (root.parent / "out" / "set2").iterdir()) == sorted(labels)


def test_outputs_make_no_new_set_folder_among_the_captures(copy_set, random_weights):
    # A new images/set9 holding only masks or a report: every tool reading images/ then stopped at
    # "background missing: images/set9/bkg.png".
    root = copy_set(2)
    base = ("--images", str(root), "--method", "absdiff")
    for option, path in (("--save-masks", root / "set9"), ("--json", root / "set12" / "x.json"),
                         ("--montage", root / "set5" / "sub" / "m.png")):
        r = cli("evaluate", *base, option, str(path))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"{option} {path}: {path.relative_to(root).parts[0]} would sit among the capture sets" in r.stderr
    r = cli("predict", "--bkg", str(root / "set2" / "bkg.png"), str(root / "set2" / "0.png"),
            "--out", str(root / "set10"), "--weights", str(random_weights))
    assert r.returncode == 2 and f"--out {root / 'set10'}: set10 would sit among" in r.stderr
    assert store.list_sets(root) == [2]
    # Beside the images folder (not among its sets), or a set-like name elsewhere, is fine.
    r = cli("evaluate", *base, "--json", str(root.parent / "set3" / "x.json"))
    assert r.returncode == 0, r.stderr


def test_an_output_is_never_one_of_the_inputs_or_of_the_masks_written(dev_root, copy_set, tmp_path,
                                                                      random_weights):
    # predict a.png a_mask.png --out there --force: a.png's mask replaced the second input before it
    # was read, which was then "predicted" from that mask.
    shots = tmp_path / "shots"
    shots.mkdir()
    for name, source in (("room.png", "bkg.png"), ("a.png", "0.png"), ("a_mask.png", "1.png")):
        shutil.copy(dev_root / "set2" / source, shots / name)
    before = {p.name: p.read_bytes() for p in shots.iterdir()}
    r = cli("predict", "--bkg", str(shots / "room.png"), str(shots / "a.png"), str(shots / "a_mask.png"),
            "--out", str(shots), "--weights", str(random_weights), "--force")
    assert r.returncode == 2 and f"would write {shots / 'a_mask.png'}, which is one of the images given" in r.stderr
    assert {p.name: p.read_bytes() for p in shots.iterdir()} == before
    # evaluate --montage / --json naming a mask --save-masks writes in the same run.
    root = copy_set(2)
    for option in ("--montage", "--json"):
        target = tmp_path / "sm" / "set2" / "0_mask.png"
        r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(tmp_path / "sm"),
                option, str(target), "--force")
        assert r.returncode == 2 and f"{option} {target} is one of the masks --save-masks writes" in r.stderr
        # ... or the set folder the masks go into (found after the whole run, said as "refusing to
        # overwrite existing file" of the folder it had just made, or "Is a directory" with --force)
        for force in ((), ("--force",)):
            r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(tmp_path / "sm"),
                    option, str(tmp_path / "sm" / "set2"), *force)
            assert r.returncode == 2 and r.stderr == (f"Error: {option} {tmp_path / 'sm' / 'set2'} is a folder "
                                                      f"--save-masks writes masks into; give it another name\n")
        # A set that is not evaluated (not asked for, or with no labels) gets no folder there: that name is free.
        (root / "set9").mkdir(exist_ok=True)
        shutil.copy(root / "set2" / "bkg.png", root / "set9" / "bkg.png")
        shutil.copy(root / "set2" / "0.png", root / "set9" / "0.png")
        free = tmp_path / f"free{option}"
        r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(free),
                option, str(free / "set9"))
        if option == "--montage":  # (a montage's name ends in .png: refused as such, whatever else it is)
            assert r.returncode == 2 and f"--montage {free / 'set9'}: name a .png file" in r.stderr
        else:
            assert r.returncode == 0 and (free / "set9").is_file(), r.stderr
    assert not (tmp_path / "sm").exists()


def test_predict_names_an_unreadable_frame_and_writes_nothing(dev_root, tmp_path, random_weights):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    out = tmp_path / "pred"
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), str(junk), "--out", str(out),
            "--weights", str(random_weights))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(junk) in r.stderr
    assert not out.exists()
    # Behind a good frame, a bad one (unreadable, or of another size) still stops the batch before
    # anything is written, so the rerun after mending it needs no --force.
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((240, 320, 3), np.uint8))
    for bad, why in ((junk, str(junk)), (small, f"frame size 320x240 differs from the background's 640x480: {small}")):
        r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), str(dev_root / "set2" / "0.png"), str(bad),
                "--out", str(out), "--weights", str(random_weights))
        assert r.returncode == 2 and why in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_an_output_name_too_long_for_the_file_system_is_found_before_the_model_loads(dev_root, tmp_path):
    frame = tmp_path / ("f" * 248 + ".png")  # fits; its f..._mask.png (257 bytes) does not
    frame.write_bytes((dev_root / "set2" / "0.png").read_bytes())
    out = tmp_path / "pred"
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), str(frame), "--out", str(out),
            "--weights", str(tmp_path / "never-read.pt"))
    assert r.returncode == 2 and r.stderr == (f"Error: {frame}: its output name {'f' * 40}... is longer than a "
                                              f"file name may be (255 bytes); rename the frame\n")
    assert not out.exists()


def test_a_save_masks_set_folder_that_is_a_file_is_found_before_evaluating(copy_set, tmp_path):
    root = copy_set(8)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "set8").write_text("not a folder")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(tmp_path / "m"),
            "--json", str(tmp_path / "r.json"))
    assert r.returncode == 2 and r.stdout == "" and r.stderr == (
        f"Error: --save-masks {tmp_path / 'm'}: set8 there is not a folder; move it away\n")


def test_a_link_pointing_nowhere_counts_as_an_existing_output(copy_set, tmp_path):
    # The existence check followed the link: the link was then replaced without --force.
    root = copy_set(8)
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "nowhere" / "t.json")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--json", str(link))
    assert r.returncode == 2 and r.stderr == f"Error: --json {link} already exists (--force replaces it)\n"
    assert link.is_symlink()
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--json", str(link), "--force")
    assert r.returncode == 0 and not link.is_symlink() and json.loads(link.read_text())["absdiff"]


def one_strip_set(tmp_path, h, w):
    """images/set1 with one h x w frame (one row or one column) whose pixels 100 to 300 along it are a
    person, labeled so."""
    root = tmp_path / "images"
    bkg = np.random.default_rng(0).integers(0, 100, (h, w, 3), dtype=np.uint8)
    store.save_background(root, bkg)
    frame, truth = bkg.copy(), np.zeros((h, w), np.uint8)
    along = (slice(None), slice(100, 300)) if h == 1 else (slice(100, 300), slice(None))
    frame[along], truth[along] = 250, 255
    store.save_frame(root, 1, frame)
    store.write_image(root / "set1" / "0_mask.png", truth)
    return root


def test_montage_of_frames_far_wider_than_tall(tmp_path):
    # A 700x1 frame scaled to the montage's 320 px width had 0 rows: cv2.resize raised, a traceback.
    from humanseg.evaluate import worst_montage

    root = one_strip_set(tmp_path, 1, 700)
    results = evaluate_sets(root, [1], AbsdiffPredictor(), keep_masks=True)
    montage = worst_montage(root, results)
    assert montage.shape == (1, 960, 3)


def test_montage_of_frames_far_taller_than_wide_fits_its_tiles(tmp_path):
    # A 1x480 frame scaled to the montage's 320 px width was 153,600 rows tall: a 768000x960 montage,
    # 2 GB and half a minute for scores that took milliseconds. Tiles now fit 320 x 640.
    from humanseg.evaluate import worst_montage

    root = one_strip_set(tmp_path, 480, 1)
    results = evaluate_sets(root, [1], AbsdiffPredictor(), keep_masks=True)
    montage = worst_montage(root, results)
    assert montage.shape == (640, 960, 3)
    truth_tile = montage[:, 320:640, 0]
    # the truth's column scaled by 640/480 (rows 133-400 white), the rest of its tile black
    assert truth_tile[140:390, :1].min() == 255 and truth_tile[:120].max() == 0 and truth_tile[:, 2:].max() == 0


def test_the_montage_shows_a_tiny_frames_masks_as_blocks(tmp_path):
    # A 2x2 frame's truth and prediction, enlarged to 320 px, were smooth grey ramps, not two masks.
    from humanseg.evaluate import FrameResult, worst_montage

    root = tmp_path / "images"
    store.save_background(root, np.full((2, 2, 3), 40, np.uint8))
    store.save_frame(root, 1, np.full((2, 2, 3), 200, np.uint8))
    truth = np.array([[255, 0], [0, 255]], np.uint8)
    store.write_image(root / "set1" / "0_mask.png", truth)
    result = FrameResult(1, 0, {"iou": 0.5, "dice": 0.6, "boundary_f": 0.4}, 1.0, store.encode_png(255 - truth))
    montage = worst_montage(root, [result])
    assert montage.shape == (320, 960, 3)
    for tile, mask in ((montage[:, 320:640], truth), (montage[:, 640:], 255 - truth)):
        assert set(np.unique(tile)) == {0, 255}
        assert np.array_equal(tile[::160, ::160, 0], mask)  # each pixel a 160x160 block


def test_an_output_name_taken_by_a_folder_is_found_before_anything_is_written(copy_set, dev_root, tmp_path,
                                                                              random_weights):
    # With --force, predict wrote 0_mask.png, then failed at 1_mask.png ("Is a directory"); evaluate
    # --save-masks --force likewise after the whole evaluation.
    bkg = str(dev_root / "set2" / "bkg.png")
    frames = [str(dev_root / "set2" / "0.png"), str(dev_root / "set2" / "1.png")]
    out = tmp_path / "pred"
    (out / "1_mask.png").mkdir(parents=True)
    for force in ([], ["--force"]):
        r = cli("predict", "--bkg", bkg, *frames, "--out", str(out), "--weights", str(random_weights), *force)
        assert r.returncode == 2 and r.stderr == (f"Error: {frames[1]} would write {out / '1_mask.png'}, which is "
                                                  f"a folder; move it away or choose another --out\n")
        assert [p.name for p in out.iterdir()] == ["1_mask.png"]
    root = copy_set(8)
    masks = tmp_path / "m"
    (masks / "set8" / "1_mask.png").mkdir(parents=True)
    (masks / "set8" / "notes_mask.png").mkdir()  # never written: no reason to refuse
    (masks / "set8" / "99_mask.png").mkdir()
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(masks), "--force")
    assert r.returncode == 2 and r.stdout == "" and r.stderr == (
        f"Error: --save-masks {masks}: {masks / 'set8' / '1_mask.png'} is a folder, where a mask is written; "
        f"move it away\n")
    (masks / "set8" / "1_mask.png").rmdir()
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(masks), "--force")
    assert r.returncode == 0, r.stderr


def test_a_report_that_appears_during_the_run_is_not_replaced_without_force(dev_root, tmp_path, monkeypatch):
    # --json was checked before the run and written with overwrite: a report another run wrote
    # meanwhile under that name was replaced without a word.
    from click.testing import CliRunner

    from humanseg import evaluate

    report = tmp_path / "r.json"
    real = evaluate.summarize

    def evaluate_while(another_run_writes, *outputs):
        def summarize(results):  # (the run is over; its outputs are written next)
            another_run_writes()
            return real(results)

        monkeypatch.setattr(evaluate, "summarize", summarize)
        return CliRunner().invoke(evaluate.evaluate_command, ["--images", str(dev_root), "--sets", "3",
                                                              "--method", "absdiff", *outputs])

    res = evaluate_while(lambda: report.write_text('{"theirs": 1}'), "--json", str(report))
    # A runtime failure (another run writing there too), exit 1, said as live mode says it (it was
    # "refusing to overwrite", exit 2, as for bad input); a mask of --save-masks likewise.
    assert res.exit_code == 1 and res.output.endswith(f"Error: {report}: it appeared during the run (another "
                                                      f"program's?): not replaced without --force\n")
    assert report.read_text() == '{"theirs": 1}' and sorted(os.listdir(tmp_path)) == ["r.json"]
    masks = tmp_path / "m"

    def another_run_writes_a_mask():
        (masks / "set3").mkdir(parents=True, exist_ok=True)
        (masks / "set3" / "0_mask.png").write_bytes(b"theirs")

    res = evaluate_while(another_run_writes_a_mask, "--save-masks", str(masks))
    assert res.exit_code == 1 and res.output.endswith(f"Error: {masks / 'set3' / '0_mask.png'}: it appeared during "
                                                      f"the run (another program's?): not replaced without --force\n")
    assert (masks / "set3" / "0_mask.png").read_bytes() == b"theirs"
    monkeypatch.setattr(evaluate, "summarize", real)
    os.remove(masks / "set3" / "0_mask.png")
    res = CliRunner().invoke(evaluate.evaluate_command, ["--images", str(dev_root), "--sets", "3", "--method",
                                                         "absdiff", "--json", str(report), "--force"])
    assert res.exit_code == 0 and '"absdiff"' in report.read_text()


def _predict_set3(dev_root, out, weights):
    from click.testing import CliRunner

    from humanseg import evaluate

    frames = [str(dev_root / "set3" / f"{k}.png") for k in (0, 1)]
    return CliRunner().invoke(evaluate.predict_command, ["--bkg", str(dev_root / "set3" / "bkg.png"), *frames,
                                                         "--out", str(out), "--overlay", "--weights", str(weights)])


@pytest.fixture
def random_weights_exported(dev_root, tmp_path, random_weights):
    """random_weights with predict's ONNX graphs in the suite's cache: writing them there syncs a file
    too, which would otherwise be the first one synced (as where this test ran first in a fresh cache)."""
    res = _predict_set3(dev_root, tmp_path / "warm", random_weights)
    assert res.exit_code == 0, res.output
    return random_weights


def test_a_signal_during_predicts_writes_is_handed_on_after_the_frames_line(dev_root, tmp_path,
                                                                            random_weights_exported,
                                                                            sigterm_after_fsync):
    # A SIGTERM while a mask was written: the mask was whole, its JSON line never printed. (The
    # command's own handler takes the signal: one line, exit 143.)
    res = _predict_set3(dev_root, tmp_path / "p", random_weights_exported)
    lines = res.output.splitlines()
    assert res.exit_code == 143 and lines[-1] == "Error: terminated (SIGTERM)"
    assert json.loads(lines[-2])["mask"] == str(tmp_path / "p" / "0_mask.png")
    assert sorted(os.listdir(tmp_path / "p")) == ["0_mask.png", "0_overlay.png"]  # the frame's both files


def test_with_two_methods_the_masks_written_are_the_first_ones_and_said_so(copy_set, tmp_path, random_weights):
    # --method absdiff --method model --save-masks wrote absdiff's masks without a word.
    root = copy_set(8)
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--method", "model", "--weights",
            str(random_weights), "--save-masks", str(tmp_path / "m"), "--montage", str(tmp_path / "w.png"))
    assert r.returncode == 0, r.stderr
    assert f"masks written under {tmp_path / 'm'} (absdiff's, the first --method)\n" in r.stdout
    assert f"worst frames: {tmp_path / 'w.png'} (absdiff's, the first --method)\n" in r.stdout
    info = store.scan_set(root, 8)
    bkg = store.read_background(info)
    for k in info.labeled:
        written = cv2.imread(str(tmp_path / "m" / "set8" / f"{k}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(written, absdiff_mask(store.read_frame(info, k), bkg))
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(tmp_path / "n"))
    assert f"masks written under {tmp_path / 'n'}\n" in r.stdout  # one method: nothing to tell apart


def test_evaluate_shows_progress_on_a_terminal_only(copy_set):
    # A few hundred frames took minutes without a word (CONVENTIONS: long work shows progress).
    import fcntl
    import pty
    import struct
    import termios

    root = copy_set(8)
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # (0 columns: an empty bar)
    try:
        proc = subprocess.run([sys.executable, "-m", "humanseg", "evaluate", "--images", str(root), "--method",
                               "absdiff"], cwd=ROOT, stdout=subprocess.PIPE, stderr=side, timeout=300)
        os.close(side)
        said = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # (the terminal's other side closed)
                break
            if not chunk:
                break
            said += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0
    assert re.search(rb"absdiff: +0%\|.*\| 0/3 ", said), said  # the frames of the sets evaluated
    assert said.endswith(b"\r"), said  # and gone when done (leave=False): the table alone stays
    assert cli("evaluate", "--images", str(root), "--method", "absdiff").stderr == ""  # piped: no bar
    closed = subprocess.run(f"{sys.executable} -m humanseg evaluate --images {root} --method absdiff 2>&-",
                            shell=True, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert closed.returncode == 0 and "overall" in closed.stdout  # stderr closed: no bar, no failure


def test_the_montage_caption_is_outlined_to_read_on_a_pale_wall(copy_set):
    # Thin yellow text alone all but vanished on the dev rooms' light walls.
    from humanseg.evaluate import FrameResult, worst_montage

    root = copy_set(8)
    frame = cv2.imread(str(root / "set8" / "0.png"))
    cv2.imwrite(str(root / "set8" / "0.png"), np.full_like(frame, 255))  # a white wall behind the caption
    pred = np.zeros(frame.shape[:2], np.uint8)
    result = FrameResult(8, 0, {"iou": 0.5, "dice": 0.6, "boundary_f": 0.4}, 1.0, store.encode_png(pred))
    caption = worst_montage(root, [result])[4:24, 4:250]
    dark = (caption.max(axis=2) < 80).sum()
    yellow = ((caption[..., 0] < 100) & (caption[..., 1] > 200) & (caption[..., 2] > 200)).sum()
    assert dark > 100 and yellow > 50


def test_the_table_gives_each_score_its_column_and_the_sets_in_order():
    # Sets in number order whatever order --sets named them in (7,3 here); per set and overall:
    # frames, mIoU, Dice, boundary F, and the median ms per frame (one slow frame, the first after
    # the model loaded, say, does not move it).
    from humanseg.evaluate import FrameResult, format_table

    rows = [FrameResult(7, 0, {"iou": 0.1, "dice": 0.2, "boundary_f": 0.3}, 10.0),
            FrameResult(3, 0, {"iou": 0.5, "dice": 0.6, "boundary_f": 0.7}, 1.0),
            FrameResult(3, 1, {"iou": 0.5, "dice": 0.6, "boundary_f": 0.7}, 2.0)]
    summary = summarize(rows)
    assert list(summary["sets"]) == ["set3", "set7"]
    assert summary["overall"]["ms_per_frame"] == 2.0
    table = [line.split() for line in format_table(summary, "model:").splitlines()]
    assert table == [["model:"], ["set", "frames", "mIoU", "Dice", "bndF3", "ms"],
                     ["set3", "2", "0.5000", "0.6000", "0.7000", "1.5"],
                     ["set7", "1", "0.1000", "0.2000", "0.3000", "10.0"],
                     ["overall", "3", "0.3667", "0.4667", "0.5667", "2.0"]]


def one_frame_set(tmp_path):
    """An images root in tmp_path with set1: a flat grey 40x30 background, frame 0 the same, an empty mask."""
    root = tmp_path / "images"
    bkg = np.full((30, 40, 3), 60, np.uint8)
    store.save_background(root, bkg)
    store.save_frame(root, 1, bkg)
    store.write_image(root / "set1" / "0_mask.png", np.zeros((30, 40), np.uint8))
    return root


def test_the_montage_shows_the_six_lowest_iou_frames_worst_first(tmp_path):
    from humanseg.evaluate import FrameResult, worst_montage

    root = one_frame_set(tmp_path)
    ious = [0.9, 0.2, 0.7, 0.5, 0.95, 0.1, 0.3, 0.8]  # eight results, each with its own prediction
    results = [FrameResult(1, 0, {"iou": v, "dice": v, "boundary_f": v}, 1.0,
                           store.encode_png(np.full((30, 40), 10 * (i + 1), np.uint8))) for i, v in enumerate(ious)]
    montage = worst_montage(root, results)
    assert montage.shape == (6 * 240, 3 * 320, 3)
    shown = [int(montage[row * 240 + 120, 2 * 320 + 160, 0]) for row in range(6)]
    assert shown == [10 * (ious.index(v) + 1) for v in sorted(ious)[:6]]


def test_a_montage_that_appears_during_the_run_is_not_replaced_without_force(dev_root, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from humanseg import evaluate

    montage = tmp_path / "worst.png"
    real = evaluate.summarize

    def summarize(results):  # (the run is over; its outputs are written next)
        montage.write_bytes(b"theirs")
        return real(results)

    monkeypatch.setattr(evaluate, "summarize", summarize)
    res = CliRunner().invoke(evaluate.evaluate_command, ["--images", str(dev_root), "--sets", "3", "--method",
                                                         "absdiff", "--montage", str(montage)])
    assert res.exit_code == 1 and res.output.endswith(f"Error: {montage}: it appeared during the run (another "
                                                      f"program's?): not replaced without --force\n")
    assert montage.read_bytes() == b"theirs" and sorted(os.listdir(tmp_path)) == ["worst.png"]


def test_the_work_width_asked_for_is_the_one_the_model_runs_at(random_weights):
    from humanseg.evaluate import make_predictor

    for method in ("model", "model-raw"):
        assert make_predictor(method, random_weights, work_width=192, num_threads=1).work_width == 192
        assert make_predictor(method, random_weights, num_threads=1).work_width == 320  # the checkpoint's


def test_a_frame_of_another_size_than_its_background_is_named(copy_set):
    root = copy_set(8)
    frame = root / "set8" / "1.png"
    small = cv2.resize(cv2.imread(str(frame)), (320, 240), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(frame), small)
    cv2.imwrite(str(root / "set8" / "1_mask.png"), np.zeros((240, 320), np.uint8))
    r = cli("evaluate", "--images", str(root), "--method", "absdiff")
    assert r.returncode == 2 and r.stderr == f"Error: frame size 320x240 differs from bkg.png 640x480: {frame}\n"


def test_masks_saved_earlier_for_a_set_not_evaluated_now_are_no_obstacle(dev_root, tmp_path):
    # --sets 3 writes OUT/set3 alone: an earlier run's OUT/set7 masks stay, and are no reason to refuse.
    out = tmp_path / "masks"
    (out / "set7").mkdir(parents=True)
    (out / "set7" / "0_mask.png").write_bytes(b"earlier")
    r = cli("evaluate", "--images", str(dev_root), "--sets", "3", "--method", "absdiff", "--save-masks", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "set7" / "0_mask.png").read_bytes() == b"earlier"
    assert {p.name for p in (out / "set3").iterdir()} == {store.mask_name(k) for k in
                                                           store.scan_set(dev_root, 3).labeled}


def test_predict_never_replaces_an_output_that_appeared_after_its_check(dev_root, tmp_path, random_weights,
                                                                          monkeypatch):
    # The outputs are checked before the model loads; one another program wrote meanwhile is kept.
    from click.testing import CliRunner

    import humanseg.model
    from humanseg.evaluate import predict_command

    out = tmp_path / "pred"
    real = humanseg.model.load_segmenter
    for name in ("0_mask.png", "0_overlay.png"):
        def load_segmenter(weights, name=name):  # (what another program writes while the model loads)
            out.mkdir(exist_ok=True)
            (out / name).write_bytes(b"theirs")
            return real(weights, num_threads=1)

        monkeypatch.setattr(humanseg.model, "load_segmenter", load_segmenter)
        res = CliRunner().invoke(predict_command, ["--bkg", str(dev_root / "set3" / "bkg.png"),
                                                   str(dev_root / "set3" / "0.png"), "--out", str(out),
                                                   "--weights", str(random_weights), "--overlay"])
        assert res.exit_code == 1 and res.output.endswith(
            f"Error: {out / name}: it appeared during the run (another program's?): not replaced without --force\n"), \
            res.output
        assert (out / name).read_bytes() == b"theirs"
        shutil.rmtree(out)


def test_predict_refuses_a_frame_narrower_than_the_background_before_writing(dev_root, tmp_path, random_weights):
    # Only the width differs (a 600x480 crop of a 640x480 capture): still found before the first output.
    narrow = tmp_path / "narrow.png"
    cv2.imwrite(str(narrow), cv2.imread(str(dev_root / "set2" / "1.png"))[:, :600])
    out = tmp_path / "pred"
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), str(dev_root / "set2" / "0.png"), str(narrow),
            "--out", str(out), "--weights", str(random_weights))
    assert r.returncode == 2 and r.stderr == (f"Error: frame size 600x480 differs from the background's 640x480: "
                                              f"{narrow}\n"), r.stderr
    assert not out.exists()


def test_a_method_named_twice_is_scored_once(dev_root, tmp_path):
    r = cli("evaluate", "--images", str(dev_root), "--sets", "3", "--method", "absdiff", "--method", "absdiff",
            "--save-masks", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("absdiff:") == 1 and r.stdout.count("overall") == 1
    # One method, named twice: no "(absdiff's, the first --method)" to tell apart.
    assert r.stdout.endswith(f"masks written under {tmp_path / 'm'}\n"), r.stdout


def test_progress_counts_each_frame_of_the_sets_asked_for(dev_root, monkeypatch):
    # The bar's total is the frames of --sets (not of every set), and it reaches it.
    from click.testing import CliRunner

    from humanseg import evaluate

    bars = []

    class CountingBar(evaluate.tqdm):
        def __init__(self, *args, **kwargs):
            self.counted = 0
            bars.append(self)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            self.counted += n
            return super().update(n)

    monkeypatch.setattr(evaluate, "tqdm", CountingBar)
    res = CliRunner().invoke(evaluate.evaluate_command, ["--images", str(dev_root), "--sets", "3", "--method",
                                                         "absdiff"])
    assert res.exit_code == 0, res.output
    frames = len(store.scan_set(dev_root, 3).labeled)
    assert [(bar.total, bar.counted) for bar in bars] == [(frames, frames)]


def test_the_montage_caption_shows_the_frames_iou_and_boundary_f(tmp_path):
    # The caption reads "set1/0.png  IoU 0.500  bF 0.400": a result differing only in Dice looks the
    # same; one differing in IoU or in boundary F does not.
    from humanseg.evaluate import FrameResult, worst_montage

    root = one_frame_set(tmp_path)
    pred = np.zeros((30, 40), np.uint8)

    def montage(iou, dice, boundary_f):
        return worst_montage(root, [FrameResult(1, 0, {"iou": iou, "dice": dice, "boundary_f": boundary_f}, 1.0,
                                                store.encode_png(pred))])

    shown = montage(0.5, 0.6, 0.4)
    assert np.array_equal(shown, montage(0.5, 0.9, 0.4))
    assert not np.array_equal(shown, montage(0.7, 0.6, 0.4))
    assert not np.array_equal(shown, montage(0.5, 0.6, 0.8))


def test_sets_are_ascii_digits():
    # str.isdigit takes "²" (int() then raised: a traceback) and "٣" (int() read it as set 3).
    for spec in ("²", "٣", "3,٧"):
        with pytest.raises(HumansegError, match="--sets must be set numbers like 3,7"):
            parse_sets(spec)


def test_absdiff_names_a_frame_of_another_size_than_the_background():
    predictor = AbsdiffPredictor()
    predictor.set_background(np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(HumansegError, match="frame size differs from the background's"):
        predictor.predict_mask(np.zeros((30, 41, 3), np.uint8))


def test_frames_and_sets_without_labels_are_not_read(copy_set):
    # Only labeled frames are scored: a frame not labeled yet is left out, and an unlabeled set's
    # damaged bkg.png (a capture still in progress, say) is no reason to stop.
    copy_set(2)
    root = copy_set(4, labels=False)
    (root / "set4" / "bkg.png").write_bytes(b"not a png")
    (root / "set2" / "0_mask.png").unlink()
    info = store.scan_set(root, 2)
    results = evaluate_sets(root, None, AbsdiffPredictor())
    assert [(r.set_number, r.index) for r in results] == [(2, k) for k in info.labeled]
    assert 0 in info.frames and 0 not in info.labeled


def test_a_save_masks_set_folder_that_is_a_link_to_nothing_is_found_before_evaluating(copy_set, tmp_path):
    root = copy_set(8)
    masks = tmp_path / "m"
    masks.mkdir()
    (masks / "set8").symlink_to(tmp_path / "gone")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(masks))
    assert r.returncode == 2 and r.stdout == "" and r.stderr.splitlines()[-1] == (
        f"Error: --save-masks {masks}: set8 there is not a folder; move it away"), r.stderr
    assert (masks / "set8").is_symlink() and not (tmp_path / "gone").exists()


def test_outputs_beside_the_masks_written_are_not_taken_for_them(copy_set, tmp_path):
    # Only OUT/setN/K_mask.png and OUT/setN (N evaluated) are --save-masks' own: a report inside
    # OUT/set8, a mask-like name in another folder of OUT, a file named set8 elsewhere, or an OUT/set3
    # entry while only set 8 is evaluated, are free.
    from click.testing import CliRunner

    from humanseg import evaluate

    copy_set(3)
    root = copy_set(8)
    masks = tmp_path / "m"
    masks.mkdir()
    (masks / "set3").write_text("the user's")
    runs = [("--json", masks / "set8" / "scores.json", "--montage", masks / "notes" / "0_mask.png"),
            ("--json", tmp_path / "reports" / "set8", "--montage", tmp_path / "worst.png")]
    for json_option, json_path, montage_option, montage_path in runs:
        res = CliRunner().invoke(evaluate.evaluate_command, [
            "--images", str(root), "--sets", "8", "--method", "absdiff", "--save-masks", str(masks), "--force",
            json_option, str(json_path), montage_option, str(montage_path)])
        assert res.exit_code == 0, res.output
        assert "absdiff" in json.loads(json_path.read_text()) and cv2.imread(str(montage_path)) is not None
    assert sorted(p.name for p in (masks / "set8").iterdir()) == ["0_mask.png", "1_mask.png", "2_mask.png",
                                                                   "scores.json"]
    assert (masks / "set3").read_text() == "the user's"


def test_a_report_never_replaces_the_checkpoint_however_named_or_whatever_else_is_scored(copy_set, tmp_path,
                                                                                          random_weights):
    root = copy_set(8)
    kept = random_weights.read_bytes()
    (tmp_path / "sub").mkdir()
    for path, methods in ((random_weights, ("--method", "model", "--method", "absdiff")),
                          (tmp_path / "sub" / ".." / random_weights.name, ("--method", "model"))):
        r = cli("evaluate", "--images", str(root), "--weights", str(random_weights), *methods, "--json", str(path),
                "--force")
        assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith(
            f"Error: --json {path} is the checkpoint being evaluated"), r.stderr
    assert random_weights.read_bytes() == kept


def test_predict_without_overlay_checks_and_writes_masks_alone(dev_root, tmp_path, random_weights):
    # A frame whose NAME_mask.png is 255 bytes, the most a name may be (its NAME_overlay.png would be
    # longer), and a NAME_overlay.png of the user's beside it: neither is in the way without --overlay.
    long = tmp_path / ("f" * 246 + ".png")
    long.write_bytes((dev_root / "set2" / "1.png").read_bytes())
    out = tmp_path / "pred"
    out.mkdir()
    (out / "0_overlay.png").write_bytes(b"the user's")
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), str(dev_root / "set2" / "0.png"), str(long),
            "--out", str(out), "--weights", str(random_weights))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(["0_mask.png", "0_overlay.png", long.stem + "_mask.png"])
    assert len(os.fsencode(long.stem + "_mask.png")) == 255
    assert (out / "0_overlay.png").read_bytes() == b"the user's"
    # One JSON line per frame: the frame as given, its mask, the person fraction.
    frames = [str(dev_root / "set2" / "0.png"), str(long)]
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["frame"], x["mask"]) for x in lines] == [(f, str(out / (Path(f).stem + "_mask.png"))) for f in frames]
    assert lines[0]["person_fraction"] == round(float((store.read_mask(out / "0_mask.png") > 0).mean()), 4)
    # Run again, the masks are there: --force replaces them (the user's overlay still untouched).
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), *frames, "--out", str(out), "--weights",
            str(random_weights), "--force")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    assert (out / "0_overlay.png").read_bytes() == b"the user's"


def test_a_mask_of_another_size_than_its_frame_is_named(copy_set):
    root = copy_set(8)
    mask = root / "set8" / "1_mask.png"
    cv2.imwrite(str(mask), cv2.resize(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE), (320, 240),
                                      interpolation=cv2.INTER_NEAREST))
    r = cli("evaluate", "--images", str(root), "--method", "absdiff")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"Error: mask size 320x240 differs from its frame 640x480: {mask}\n"


def test_predict_refuses_before_loading_the_model(dev_root, tmp_path):
    # (--weights is never read: each refusal comes first.)
    shots = tmp_path / "shots"
    shots.mkdir()
    shutil.copy(dev_root / "set2" / "0.png", shots / "a.png")
    shutil.copy(dev_root / "set2" / "bkg.png", shots / "a_mask.png")  # a background so named
    never = str(tmp_path / "never-read.pt")
    r = cli("predict", "--bkg", str(shots / "a_mask.png"), str(shots / "a.png"), "--out", str(shots), "--force",
            "--weights", never)
    assert r.returncode == 2 and r.stderr == (f"Error: {shots / 'a.png'} would write {shots / 'a_mask.png'}, which is "
                                              f"one of the images given; choose another --out\n"), r.stderr
    assert (shots / "a_mask.png").read_bytes() == (dev_root / "set2" / "bkg.png").read_bytes()
    # An output that is a link pointing nowhere exists: it would be written through.
    out = tmp_path / "out"
    out.mkdir()
    (out / "0_mask.png").symlink_to(tmp_path / "gone.png")
    r = cli("predict", "--bkg", str(dev_root / "set2" / "bkg.png"), str(dev_root / "set2" / "0.png"),
            "--out", str(out), "--weights", never)
    assert r.returncode == 2 and r.stderr == (f"Error: refusing to overwrite existing file: {out / '0_mask.png'} "
                                              f"(--force replaces it)\n"), r.stderr
    assert (out / "0_mask.png").is_symlink() and not (tmp_path / "gone.png").exists()


def test_a_read_only_save_masks_folder_itself_is_found_before_evaluating(copy_set, read_only_folder):
    # An existing --save-masks folder that cannot be written (its parent can): found now, not after the run.
    images = copy_set(2)
    r = cli("evaluate", "--images", str(images), "--method", "absdiff", "--save-masks", str(read_only_folder))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"Error: --save-masks {read_only_folder}: cannot write there (read-only, or no permission)\n"
    assert list(read_only_folder.iterdir()) == []


def test_a_montage_is_named_as_the_png_it_is(copy_set, tmp_path):
    # --montage worst.jpg wrote PNG data under a .jpg name; it is refused before the run, and an
    # upper-case WORST.PNG is a PNG name.
    root = copy_set(8)
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--montage", str(tmp_path / "worst.jpg"))
    assert r.returncode == 2 and r.stderr == (f"Error: --montage {tmp_path / 'worst.jpg'}: name a .png file "
                                              f"(the montage is written as PNG)\n")
    assert not (tmp_path / "worst.jpg").exists()
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--montage", str(tmp_path / "WORST.PNG"))
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "WORST.PNG")) is not None


def test_an_output_named_through_a_missing_folder_and_dotdot_is_refused_before_any_check_is_fooled(copy_set):
    # images/tmp/..: every check looked at a place that was not there (no capture set to refuse), then
    # the write made tmp and landed in images: with --force the labels of set8 were replaced by
    # absdiff's masks (and --json set8/y/../0.png replaced a frame), a later evaluate scoring 1.0.
    root = copy_set(8)
    before = {p.name: p.read_bytes() for p in (root / "set8").iterdir()}
    for args, option, missing in (
            (["--save-masks", str(root / "tmp" / "..")], "--save-masks", root / "tmp"),
            (["--json", str(root / "set8" / "y" / ".." / "0.png")], "--json", root / "set8" / "y"),
            (["--montage", str(root / "set8" / "x" / ".." / "1_mask.png")], "--montage", root / "set8" / "x")):
        r = cli("evaluate", "--images", str(root), "--method", "absdiff", *args, "--force")
        assert r.returncode == 2 and r.stderr.startswith(f"Error: Invalid value for '{option}': {missing} is not "
                                                         f"a folder, so "), r.stderr
        assert "cannot be followed through its '..'" in r.stderr and r.stderr.count("\n") == 1
    r = cli("predict", "--bkg", str(root / "set8" / "bkg.png"), str(root / "set8" / "0.png"), "--out",
            str(root / "set8" / "q" / ".."), "--force")
    assert r.returncode == 2 and "set8/q is not a folder" in r.stderr
    assert {p.name: p.read_bytes() for p in (root / "set8").iterdir()} == before
    # a '..' after folders that are there is followed as the system follows it
    (root.parent / "out").mkdir()
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--json", str(root / ".." / "out" / "s.json"))
    assert r.returncode == 0 and json.loads((root.parent / "out" / "s.json").read_text())["absdiff"]


def test_json_or_montage_naming_the_save_masks_folder_is_refused_before_the_run(copy_set, tmp_path):
    # Found after the whole run, as a file "that appeared during the run (another program's?)".
    root = copy_set(8)
    out = tmp_path / "o"
    for option in ("--json", "--montage"):
        r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--save-masks", str(out), option, str(out))
        assert r.returncode == 2 and r.stderr == f"Error: {option} {out} is the --save-masks folder; give them two places\n"
        assert "set8" not in r.stdout and not out.exists()


def test_weights_that_cannot_be_loaded_for_a_later_method_stop_evaluate_before_anything_is_written(copy_set, tmp_path):
    # absdiff's table, masks and montage were written, then the model's weights failed: the rerun was
    # refused over those masks.
    root = copy_set(8)
    notes = tmp_path / "notes.txt"
    notes.write_text("hi\n")
    out, montage = tmp_path / "o", tmp_path / "m.png"
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--method", "model", "--weights", str(notes),
            "--save-masks", str(out), "--montage", str(montage))
    assert r.returncode == 2 and r.stderr.startswith("Error: weights file unreadable or corrupt: "), r.stderr
    assert r.stdout == "" and not out.exists() and not montage.exists()


@pytest.mark.parametrize("given", ["set01", "3,set08"])
def test_a_set_named_with_a_leading_zero_is_refused_not_read_as_another(copy_set, dev_root, given):
    # --sets set01 scored set1, even beside a set01 folder (which is not the layout's, and left alone).
    root = copy_set(8, 1)
    shutil.copytree(dev_root / "set2", root / "set01")
    r = cli("evaluate", "--images", str(root), "--method", "absdiff", "--sets", given)
    bad = given.split(",")[-1]
    assert r.returncode == 2 and r.stderr == (f"Error: --sets {given}: {bad} is not a set of the layout, whose "
                                              f"names have no leading zeros (set1, set2, ...)\n")
    with pytest.raises(HumansegError, match=f"--val-sets {given}: {bad} is not a set of the layout"):
        from humanseg.data.dataset import split_sets, load_pairs
        split_sets(load_pairs([root]), given)


def test_each_sets_row_holds_that_sets_frames_alone(dev_root, tmp_path):
    # Two sets of different sizes scored together: each row as when the set is scored alone (each
    # result filed under the first set made one row of all frames, and --save-masks wrote there).
    r = cli("evaluate", "--images", str(dev_root), "--sets", "2,3", "--method", "absdiff",
            "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    both = json.loads((tmp_path / "r.json").read_text())["absdiff"]
    assert list(both["sets"]) == ["set2", "set3"]
    for n in (2, 3):
        alone = summarize(evaluate_sets(dev_root, [n], AbsdiffPredictor()))["overall"]
        row = both["sets"][f"set{n}"]
        assert row["frames"] == len(store.scan_set(dev_root, n).labeled) == alone["frames"]
        for name in ("iou", "dice", "boundary_f"):
            assert row[name] == pytest.approx(alone[name]), (n, name)


def test_ms_per_frame_is_in_milliseconds(dev_root):
    # A predictor taking ~20 ms a frame is reported as ~20 ms (in seconds, the table showed 0.0).
    import time

    class Slow(AbsdiffPredictor):
        def predict_mask(self, frame):
            time.sleep(0.02)
            return super().predict_mask(frame)

    summary = summarize(evaluate_sets(dev_root, [3], Slow()))
    assert 15 <= summary["overall"]["ms_per_frame"] < 500


def test_the_montage_caption_names_the_set_and_frame(tmp_path):
    # The worst frames' image names each as "set2/5.png", not the two numbers the other way round.
    from humanseg.evaluate import FrameResult, worst_montage
    from humanseg.ui.draw import put_text

    root = tmp_path / "images"
    bkg = np.full((30, 40, 3), 60, np.uint8)
    (root / "set2").mkdir(parents=True)
    cv2.imwrite(str(root / "set2" / "bkg.png"), bkg)
    cv2.imwrite(str(root / "set2" / "5.png"), bkg)
    cv2.imwrite(str(root / "set2" / "5_mask.png"), np.zeros((30, 40), np.uint8))
    pred = np.zeros((30, 40), np.uint8)
    r = FrameResult(2, 5, {"iou": 0.5, "dice": 0.6, "boundary_f": 0.4}, 1.0, store.encode_png(pred))
    montage = worst_montage(root, [r])
    expected = np.zeros((240, 320, 3), np.uint8)
    expected[:] = cv2.resize(bkg, (320, 240))
    put_text(expected, "set2/5.png  IoU 0.500  bF 0.400", (6, 18), 0.45, (0, 255, 255), thickness=1)
    assert np.array_equal(montage[:, :320], expected)
