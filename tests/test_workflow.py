"""The README's afternoon, end to end with the real programs: capture a set, label it, train on it,
evaluate the result and run live mode with the trained weights. Each step's own tests go into the
details; this one checks that what each step writes is what the next one reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from gui import ROOT, GuiApp
from humanseg import store

W, H = 640, 480


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def capture(xdisplay, source, images, keys, *extra) -> tuple[list[dict], list[str]]:
    """main.py on an image folder: each key pressed once its countdown (0 s) has saved; the saved events
    and the summary it ends with (a line per set)."""
    app = GuiApp(["main.py", "--source", str(source), "--images", str(images), "--no-pose", "--no-model",
                  "-b", "0", "-s", "0", "--max-fps", "30", "--log-events", *extra], xdisplay)
    try:
        app.wait_event("ready")
        app.find_window("capture", size=(W, H))
        saved = []
        for key in keys:
            app.key_answered(key, "pressed", by="key")
            saved.append(app.wait_event("saved"))
        app.key("q")
        assert app.wait_exit() == 0
        summary = [line for line in app.proc.stderr.read().splitlines() if re.match(r"set \d+: ", line)]
    finally:
        app.close()
    return saved, summary


@pytest.mark.gui
@pytest.mark.slow
def test_capture_label_train_evaluate_and_live(xdisplay, tmp_path, dev_root):
    images = tmp_path / "images"
    room = tmp_path / "room"
    person = tmp_path / "person"
    for folder, name in ((room, "bkg.png"), (person, "1.png")):
        folder.mkdir()
        (folder / "0.png").write_bytes((dev_root / "set5" / name).read_bytes())

    # 1. Capture: Bkg in front of the empty room, then two frames of the person (a camera would move).
    (bkg_saved,), summary = capture(xdisplay, room, images, ["b"])
    assert summary == [f"set 1: 0 frames in {images / 'set1'}"]
    assert bkg_saved["kind"] == "background" and bkg_saved["path"] == str(images / "set1" / "bkg.png")
    frames, summary = capture(xdisplay, person, images, ["s", "s"], "--set", "1")
    assert summary == [f"set 1: 2 frames in {images / 'set1'}"]
    assert [(e["set"], e["frame"]) for e in frames] == [(1, 0), (1, 1)]
    # Bkg pressed twice in a session: frames in two sets, and the summary names both to label.
    other = tmp_path / "other"
    saved, summary = capture(xdisplay, person, other, ["b", "s", "b", "s", "s"])
    assert [(e["set"], e.get("frame")) for e in saved] == [(1, None), (1, 0), (2, None), (2, 0), (2, 1)]
    assert summary == [f"set 1: 1 frame in {other / 'set1'}", f"set 2: 2 frames in {other / 'set2'}"]
    info = store.scan_set(images, 1)
    assert info.frames == [0, 1] and info.labeled == []
    # Saved mirrored, as shown: the room and the person flipped together.
    assert np.array_equal(store.read_background(info), cv2.flip(cv2.imread(str(room / "0.png")), 1))

    # 2. Label: each frame opens with the model's guess, accepted as it is.
    app = GuiApp(["label_images.py", "-s", "1", "--images", str(images), "--log-events"], xdisplay)
    try:
        for k in (0, 1):
            ready = app.wait_event("ready", frame=k)
            assert ready["source"] == "model" and ready["shapes"] >= 1
            app.find_window(ready["title"].replace("(", "\\(").replace(")", "\\)"), size=(W, H))
            app.key("Return")
            app.wait_event("saved", frame=k)
        assert app.wait_event("summary")["saved"] == 2
        assert app.wait_exit() == 0
    finally:
        app.close()
    info = store.scan_set(images, 1)
    assert info.labeled == [0, 1]
    label = store.read_mask(info.mask_path(0))
    truth = cv2.flip(store.read_mask(dev_root / "set5" / "1_mask.png"), 1)
    assert (label & truth).sum() / (label | truth).sum() > 0.9  # the guess was a good label

    # 3. Train a few steps on it, starting from the shipped model (as a user's first run does).
    out = tmp_path / "weights"
    r = run("training.py", "-i", "4", "-b", "1", "--images", str(images), "--out", str(out),
            "--size", "256x192", "--threads", "1", "--workers", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "start: shipped model" in r.stdout and (out / "best.pt").is_file()

    # 4. Evaluate the trained weights on the labels.
    r = run("-m", "humanseg", "evaluate", "--images", str(images), "--weights", str(out / "best.pt"),
            "--json", str(tmp_path / "scores.json"))
    assert r.returncode == 0, r.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())["model"]["overall"]
    assert scores["iou"] > 0.9 and scores["frames"] == 2

    # 5. Live mode with them, on the captured frames against the captured background.
    r = run("-m", "humanseg", "live", "--source", str(images / "set1"), "--bkg", str(info.bkg_path),
            "--weights", str(out / "best.pt"), "--no-window", "--raw", "--save-masks", str(tmp_path / "live"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["frames"] == 2
    for k in (0, 1):
        live = cv2.imread(str(tmp_path / "live" / f"{k}_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
        labeled = store.read_mask(info.mask_path(k)) > 0
        assert (live & labeled).sum() / (live | labeled).sum() > 0.9
