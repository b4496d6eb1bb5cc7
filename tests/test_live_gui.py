"""Real windows under Xvfb: main.py's live overlay and K_pred.png on Sav; the live command's keys."""

from __future__ import annotations

import shutil
import time

import cv2
import numpy as np
import pytest

from gui import GuiApp
from humanseg import store

W, H = 640, 480


@pytest.fixture
def launch(xdisplay):
    apps = []

    def _launch(args, env=None) -> GuiApp:
        app = GuiApp(args, xdisplay, env=env)
        apps.append(app)
        return app

    yield _launch
    for app in apps:
        app.close()


def one_frame_source(tmp_path, dev_root, name="1.png"):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(dev_root / "set3" / name, src / "0.png")
    return src


@pytest.mark.gui
@pytest.mark.slow
def test_main_shows_the_overlay_and_saves_k_pred(launch, tmp_path, dev_root, copy_set, default_weights):
    images = copy_set(3)  # continuing set3: its bkg.png is the background from the start
    src = one_frame_source(tmp_path, dev_root)
    app = launch(["main.py", "--log-events", "--max-fps", "30", "--no-pose", "--no-mirror", "--set", "3",
                  "--source", str(src), "--images", str(images), "-s", "0", "--weights", str(default_weights)])
    app.wait_event("ready")
    app.find_window("capture", size=(W, H))
    app.key("s")
    saved = app.wait_event("saved", kind="frame", timeout=20)
    # K_pred.png is written by the save hook, so it is on disk before "saved" is reported.
    (pred_event,) = [e for e in app.events() if e["event"] == "pred_saved"]
    k = saved["frame"]
    assert k == 4 and pred_event["frame"] == k
    pred_path = images / "set3" / store.pred_name(k)
    assert pred_event["path"] == str(pred_path)
    assert not (images / "set3" / store.mask_name(k)).exists()  # a prediction is never a label

    # The overlay follows the shown frame by one model call (a worker thread): give it a moment.
    deadline = time.monotonic() + 5
    while True:
        shot = cv2.imread(str(app.screenshot(tmp_path / "overlay.png")))
        if time.monotonic() > deadline or (shot[..., 1].astype(int) - shot[..., 2].astype(int)).max() > 60:
            break
        time.sleep(0.2)
    app.key("q")
    app.wait_event("quit", timeout=10)
    assert app.wait_exit() == 0

    from humanseg.model import load_segmenter

    seg = load_segmenter(default_weights)
    seg.set_background(cv2.imread(str(images / "set3" / "bkg.png")))
    frame = cv2.imread(str(images / "set3" / f"{k}.png"))
    expected = seg.predict_mask(frame)
    pred = cv2.imread(str(pred_path), cv2.IMREAD_UNCHANGED)
    assert pred.ndim == 2 and set(np.unique(pred)) <= {0, 255}
    assert np.count_nonzero(pred != expected) <= 0.001 * pred.size
    # On screen the person is tinted green, the rest is the frame (buttons and status line aside).
    person = expected > 0
    person[380:] = False
    person[:, :150] = person[:, 490:] = False
    rest = ~(cv2.dilate(expected, np.ones((9, 9), np.uint8)) > 0)
    rest[380:] = False
    rest[110:160] = False  # the "saved ..." notice band
    rest[:, :150] = rest[:, 490:] = False
    diff = shot.astype(int) - frame.astype(int)
    assert diff[..., 1][person].mean() > 20
    assert np.abs(diff)[rest].mean() < 3


@pytest.mark.gui
@pytest.mark.slow
def test_main_without_a_model_says_so_once_and_still_captures(launch, tmp_path, dev_root, copy_set):
    images = copy_set(3)
    src = one_frame_source(tmp_path, dev_root)
    app = launch(["main.py", "--log-events", "--max-fps", "30", "--no-pose", "--no-mirror", "--set", "3",
                  "--source", str(src), "--images", str(images), "-s", "0"],
                 env={"HUMANSEG_WEIGHTS": str(tmp_path / "gone.pt")})
    app.wait_event("ready")
    app.find_window("capture", size=(W, H))
    app.key("s")
    saved = app.wait_event("saved", kind="frame", timeout=20)
    app.key("q")
    app.wait_event("quit", timeout=10)
    assert app.wait_exit() == 0
    assert (images / "set3" / f"{saved['frame']}.png").exists()
    assert not list((images / "set3").glob("*_pred.png"))
    err = app.proc.stderr.read()
    notes = [line for line in err.splitlines() if "live segmentation off" in line]
    assert len(notes) == 1 and "gone.pt" in notes[0] and "Traceback" not in err


@pytest.mark.gui
@pytest.mark.slow
def test_live_window_keys_cycle_views_and_quit(launch, tmp_path, dev_root, default_weights):
    folder = dev_root / "set3"
    app = launch(["-m", "humanseg", "live", "--source", str(folder), "--bkg", str(folder / "bkg.png"),
                  "--weights", str(default_weights), "--view", "green"])
    app.find_window("live", size=(W, H))
    app.key("v")
    assert app.wait_event("view", timeout=20)["view"] == "side"
    app.find_window("live", size=(2 * W, H))  # side by side: frame | mask
    app.key("q")
    app.wait_event("quit", by="key", timeout=20)
    assert app.wait_exit() == 0


@pytest.mark.gui
def test_a_qt_platform_opencv_lacks_opens_the_window_with_xcb(xdisplay, dev_root, monkeypatch):
    # QT_QPA_PLATFORM=wayland (set for the whole desktop by many Wayland setups) or offscreen: Qt found
    # no such plugin among OpenCV's (xcb alone) and aborted the process at its first window, exit 134.
    import os
    import subprocess
    import sys
    import warnings

    from humanseg import display
    from tests.conftest import ROOT

    if display.qt_platforms() is None:
        pytest.skip("this OpenCV has no Qt of its own")
    set2 = dev_root / "set2"
    for wanted in ("wayland", "offscreen"):
        r = subprocess.run([sys.executable, "-m", "humanseg", "live", "--source", str(set2), "--bkg",
                            str(set2 / "bkg.png"), "--max-frames", "2"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "DISPLAY": xdisplay, "QT_QPA_PLATFORM": wanted})
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stderr == (f"warning: QT_QPA_PLATFORM={wanted}: OpenCV's Qt has no such platform (it has "
                            f"xcb); the window opens on the X display {xdisplay} with xcb\n")
        assert '"frames": 2' in r.stdout
    # A list with a platform it has: that one, without Qt's two lines about the other (nor ours).
    monkeypatch.setattr(display, "display_problem", lambda: None)
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland;xcb:nomitshm")
    display.require_display()
    assert os.environ["QT_QPA_PLATFORM"] == "xcb:nomitshm"
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    display.require_display()
    assert os.environ["QT_QPA_PLATFORM"] == "xcb"
    monkeypatch.setenv("QT_QPA_PLATFORM", "XCB")  # Qt takes plugin names in any case: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        display.require_display()
    assert os.environ["QT_QPA_PLATFORM"] == "XCB"
