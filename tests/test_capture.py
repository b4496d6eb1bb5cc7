"""main.py end to end: a real OpenCV window under Xvfb driven by xdotool, real frames, real PoseNet."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from gui import ROOT, GuiApp
from humanseg import store
from humanseg.ui.buttons import default_layout

W, H = 640, 480
BUTTONS = {b.name: b for b in default_layout(W, H)}
# A dev frame (mirrored, as shown) whose real clasped hands land on Sav after this shift; PoseNet 0.50
# finds the palm within 20 px of Sav's centre for every shift up to 12 px either way from it.
PALM_FRAME = "set4/0.png"
PALM_AT = (419, 441)


def centre(name: str) -> tuple[int, int]:
    return int(BUTTONS[name].x), int(BUTTONS[name].y)


def write_frames(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"{i}.png"), image)
    return folder


def palm_on_sav_frame(dev_root: Path) -> np.ndarray:
    """The source frame (unmirrored) that, once mirrored, shows a real palm over Sav."""
    shown = cv2.flip(cv2.imread(str(dev_root / PALM_FRAME)), 1)
    shift = np.float32([[1, 0, BUTTONS["sav"].x - PALM_AT[0]], [0, 1, BUTTONS["sav"].y - PALM_AT[1]]])
    shown = cv2.warpAffine(shown, shift, (W, H), borderMode=cv2.BORDER_REPLICATE)
    return cv2.flip(shown, 1)


def same_image(path: Path, expected: np.ndarray) -> bool:
    saved = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return saved is not None and saved.shape == expected.shape and np.array_equal(saved, expected)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def launch(xdisplay):
    apps = []

    def _launch(*args: str) -> GuiApp:
        app = GuiApp(["main.py", "--log-events", "--max-fps", "30", *args], xdisplay)
        apps.append(app)
        return app

    yield _launch
    for app in apps:
        app.close()


@pytest.mark.gui
@pytest.mark.slow
def test_mouse_captures_background_and_two_frames(launch, tmp_path, dev_root, copy_set):
    sources = [cv2.imread(str(dev_root / "set3" / f"{k}.png")) for k in range(3)]
    src = write_frames(tmp_path / "src", sources)
    images = copy_set(1)  # an existing set1: the new background must claim set2
    app = launch("--source", str(src), "--images", str(images), "--no-pose", "--no-model",
                 "-b", "1", "-s", "1")  # K_pred.png on Sav: tests/test_live_gui.py
    app.wait_event("ready")
    app.find_window("capture", size=(W, H))

    # Each click waits for its "pressed" answer (sent once more if none came: see GuiApp._answered).
    app.click_answered(*centre("bkg"), "pressed", by="mouse")
    app.wait_event("countdown_started", button="bkg", timeout=10)
    shot = cv2.imread(str(app.screenshot(tmp_path / "countdown.png")))
    bx, by = centre("bkg")
    pixel = shot[by, bx - int(0.8 * BUTTONS["bkg"].radius)].astype(int)
    assert pixel[1] > pixel[0] + 40 and pixel[1] > pixel[2] + 40, f"Bkg not green while counting: {pixel}"
    bkg = app.wait_event("saved", kind="background", timeout=15)
    new_set = images / "set2"
    assert bkg["set"] == 2 and Path(bkg["path"]) == new_set / "bkg.png"
    assert same_image(new_set / "bkg.png", cv2.flip(sources[bkg["source_index"]], 1))

    saved = []
    for k in range(2):
        app.click_answered(*centre("sav"), "pressed", by="mouse")
        saved.append(app.wait_event("saved", kind="frame", timeout=15))
        assert saved[-1]["frame"] == k and Path(saved[-1]["path"]) == new_set / f"{k}.png"
        assert same_image(new_set / f"{k}.png", cv2.flip(sources[saved[-1]["source_index"]], 1))

    app.click_answered(*centre("ext"), "pressed", by="mouse")
    app.wait_event("quit", by="mouse", timeout=10)
    assert app.wait_exit() == 0
    assert files_in(new_set) == ["0.png", "1.png", "bkg.png"]
    assert files_in(images) == ["set1", "set2"]
    assert files_in(images / "set1") == files_in(dev_root / "set1")

    flow = [(e["event"], e.get("button") or e.get("kind")) for e in app.events()
            if e["event"] not in ("ready", "capture")]
    assert flow == [
        ("pressed", "bkg"), ("countdown_started", "bkg"), ("saved", "background"),
        ("pressed", "sav"), ("countdown_started", "sav"), ("saved", "frame"),
        ("pressed", "sav"), ("countdown_started", "sav"), ("saved", "frame"),
        ("pressed", "ext"), ("quit", None),
    ]
    assert all(e["by"] == "mouse" for e in app.events() if e["event"] == "pressed")


@pytest.mark.gui
@pytest.mark.slow
def test_sav_before_bkg_and_keys(launch, tmp_path, dev_root):
    src = write_frames(tmp_path / "src", [cv2.imread(str(dev_root / "set2" / "0.png"))])
    images = tmp_path / "images"
    app = launch("--source", str(src), "--images", str(images), "--no-pose", "-b", "30", "--no-mirror")
    app.wait_event("ready")
    app.find_window("capture", size=(W, H))
    app.key("s")
    assert app.wait_event("message", timeout=10)["text"] == "capture a background first"
    app.key("b")
    app.wait_event("countdown_started", button="bkg", timeout=10)
    app.key("b")
    app.wait_event("countdown_cancelled", button="bkg", timeout=10)
    app.key("Escape")
    app.wait_event("quit", by="key", timeout=10)
    assert app.wait_exit() == 0
    assert not images.exists() or store.list_sets(images) == []


@pytest.mark.gui
def test_a_held_key_presses_its_button_once(launch, tmp_path, dev_root):
    # X repeats a held key (after 0.66 s, 25 times a second): holding b with -b 0 made a set at each
    # repeat (23 sets in 1.5 s), holding s a frame at each.
    from gui import xdo

    src = write_frames(tmp_path / "src", [cv2.imread(str(dev_root / "set2" / "0.png"))])
    images = tmp_path / "images"
    app = launch("--source", str(src), "--images", str(images), "--no-pose", "--no-model", "-b", "0", "-s", "0")
    app.wait_event("ready")
    app.find_window("capture", size=(W, H))
    for key, kind in (("b", "background"), ("s", "frame")):
        xdo(app.display, "mousemove", "--window", app.wid, "320", "240")
        xdo(app.display, "keydown", key)  # (through XTEST, as a keyboard: sent to a window, X does not repeat it)
        time.sleep(1.5)
        xdo(app.display, "keyup", key)
        app.wait_event("saved", kind=kind, timeout=10)
        time.sleep(1.0)  # (the repeats read after the release, had they counted, would have saved by now)
    app.key("q")
    app.wait_event("quit", by="key", timeout=10)
    assert app.wait_exit() == 0
    presses = [e for e in app.events() if e["event"] == "pressed"]
    assert [(e["button"], e["by"]) for e in presses] == [("bkg", "key"), ("sav", "key"), ("ext", "key")]
    assert store.list_sets(images) == [1] and files_in(images / "set1") == ["0.png", "bkg.png"]


@pytest.mark.gui
@pytest.mark.slow
def test_a_source_image_deleted_while_capturing_ends_with_the_sets_said_and_exit_1(launch, tmp_path, dev_root):
    # An image of a folder source deleted mid-session was said as bad input ("unreadable image in
    # source", exit 2), and the closing line that says which set to label was not said at all.
    src = write_frames(tmp_path / "src", [cv2.imread(str(dev_root / "set2" / f"{k}.png")) for k in range(3)])
    images = tmp_path / "images"
    app = launch("--source", str(src), "--images", str(images), "--no-pose", "--no-model", "-b", "0", "-s", "0")
    app.wait_event("ready")
    app.find_window("capture", size=(W, H))
    app.key_answered("b", "saved", kind="background")
    app.key_answered("s", "saved", kind="frame")
    (src / "1.png").unlink()
    assert app.wait_exit() == 1
    assert app.proc.stderr.read().splitlines()[-2:] == [
        f"set 1: 1 frame in {images / 'set1'}",
        f"Error: image {src / '1.png'} in source could no longer be read (moved, deleted or changed while playing?)"]
    assert files_in(images / "set1") == ["0.png", "bkg.png"]


@pytest.mark.slow
def test_composed_frame_shows_a_palm_on_sav(dev_root, posenet_weights):
    from humanseg.pose import PoseEstimator

    est = PoseEstimator.load(weights=posenet_weights)
    palms = est.palms(cv2.flip(palm_on_sav_frame(dev_root), 1))
    assert any(BUTTONS["sav"].contains(p.x, p.y) for p in palms), palms


@pytest.mark.gui
@pytest.mark.slow
def test_palm_presses_sav_without_mouse(launch, tmp_path, dev_root, copy_set, posenet_weights):
    frame = palm_on_sav_frame(dev_root)
    src = write_frames(tmp_path / "src", [frame])
    images = copy_set(4)
    before = store.list_frames(images / "set4")
    app = launch("--source", str(src), "--images", str(images), "--set", "4", "-s", "1",
                 "--posenet-weights", str(posenet_weights))
    app.wait_event("ready", timeout=60)
    app.find_window("capture", size=(W, H))
    pressed = app.wait_event("pressed", timeout=60)
    assert pressed["button"] == "sav" and pressed["by"] == "palm"
    saved = app.wait_event("saved", timeout=30)
    k = before[-1] + 1
    assert saved["set"] == 4 and saved["frame"] == k
    assert same_image(images / "set4" / f"{k}.png", cv2.flip(frame, 1))
    app.key("q")
    app.wait_event("quit", timeout=20)
    assert app.wait_exit() == 0
    # The hand rests on Sav the whole time: hysteresis means exactly one press, one save.
    assert [e["event"] for e in app.events()].count("pressed") == 2  # Sav by palm, then q
    assert store.list_frames(images / "set4") == before + [k]


def run_main(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_background_not_ours_to_read_is_one_line_naming_it(copy_set, dev_root, unprivileged):
    # --set N whose bkg.png the system refuses us (its mode) said "Error: .../bkg.png: Permission
    # denied" with exit 1, without the --set it came from; as a corrupt one, it is bad input.
    images = copy_set(3)
    for folder in (images, images / "set3"):  # (copied with ../shared's modes, which may be read-only)
        folder.chmod(0o755)
    (images / "set3" / "bkg.png").chmod(0)
    out = subprocess.run(unprivileged([sys.executable, "main.py", "--set", "3", "--images", str(images),
                                       "--source", str(dev_root / "set3"), "--no-pose"]),
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr == (f"Error: --set 3: background unreadable (Permission denied): "
                                                  f"{images / 'set3' / 'bkg.png'}\n"), out.stderr


@pytest.mark.parametrize("display", [None, ":87"])
def test_no_display_exits_2_with_one_line(display, tmp_path, dev_root):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    if display:
        env["DISPLAY"] = display
    out = run_main("--source", str(dev_root / "set1"), "--images", str(tmp_path), "--no-pose", env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "display" in lines[0] and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_display_without_the_screen_asked_for_exits_2_with_one_line(tmp_path, dev_root, xdisplay):
    # A running server asked for a screen it does not have (:N.5): Qt aborted, exit 134 and six lines.
    out = run_main("--source", str(dev_root / "set1"), "--images", str(tmp_path), "--no-pose", "--no-model",
                   env={**os.environ, "DISPLAY": f"{xdisplay}.5"})
    assert out.returncode == 2 and out.stderr.strip() == (f"Error: cannot connect to display '{xdisplay}.5'; this "
                                                          f"command needs a window"), out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_set_folder_as_images_is_refused_before_anything_opens(tmp_path, dev_root):
    # New sets would otherwise be made inside it (set3/set1/bkg.png), where no tool finds them.
    root = tmp_path / "images"
    shutil.copytree(dev_root / "set3", root / "set3")
    before = sorted(p.name for p in (root / "set3").iterdir())
    out = run_main("--source", str(dev_root / "set1"), "--images", str(root / "set3"), "--no-pose",
                   env={**os.environ, "DISPLAY": ""})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == f"Error: --images {root / 'set3'} is a set folder; give the folder that holds it: {root}"
    assert sorted(p.name for p in (root / "set3").iterdir()) == before


def test_a_new_set_folder_or_nothing_as_images_is_refused_before_anything_opens(tmp_path, dev_root):
    # `--images images/set13` (for `--set 13`) made images/set13/set1/bkg.png, and every tool reading
    # images/ then stopped at a set13 without bkg.png; `--images ""` made its sets in the current folder.
    root = tmp_path / "images"
    shutil.copytree(dev_root / "set3", root / "set3")
    env = {**os.environ, "DISPLAY": ""}
    out = run_main("--source", str(dev_root / "set1"), "--images", str(root / "set13"), "--no-pose", env=env)
    assert (out.returncode, out.stderr) == (2, f"Error: --images {root / 'set13'}: set13 would sit among the capture "
                                               f"sets of {root}, where every tool would take it for one; choose "
                                               f"another place\n")
    out = run_main("--source", str(dev_root / "set1"), "--images", "", "--no-pose", env=env)
    assert (out.returncode, out.stderr) == (2, "Error: Invalid value for '--images': empty; name a folder.\n")
    assert sorted(p.name for p in root.iterdir()) == ["set3"]


def test_an_images_folder_that_cannot_be_written_is_refused_before_anything_opens(tmp_path, dev_root,
                                                                                 make_read_only):
    # Found at the start, not when the first countdown ends in "save failed".
    root = tmp_path / "images"
    shutil.copytree(dev_root / "set3", root / "set3")
    make_read_only(root)
    for images, place in ((root, "there"), (root / "new", f"in {root}")):
        out = run_main("--source", str(dev_root / "set1"), "--images", str(images), "--no-pose",
                       env={**os.environ, "DISPLAY": ""})
        assert out.returncode == 2
        assert out.stderr == f"Error: --images {images}: cannot write {place} (read-only, or no permission)\n"


def test_continuing_a_set_folder_that_cannot_be_written_is_refused_before_anything_opens(copy_set, dev_root,
                                                                                        make_read_only):
    images = copy_set(3)
    before = files_in(images / "set3")
    make_read_only(images / "set3")
    out = run_main("--source", str(dev_root / "set1"), "--images", str(images), "--set", "3", "--no-pose",
                   env={**os.environ, "DISPLAY": ""})
    assert (out.returncode, out.stderr) == (2, f"Error: --set 3: set folder {images / 'set3'}: cannot write there "
                                               f"(read-only, or no permission)\n")
    assert files_in(images / "set3") == before


def test_options_that_would_go_unused_are_refused(tmp_path, dev_root):
    # --no-model --weights missing.pt (or --no-pose --posenet-weights ...) started without a word.
    env = {**os.environ, "DISPLAY": ""}
    for args, message in (
            (["--no-model", "--weights", str(tmp_path / "no.pt")],
             "use either --no-model or --weights (the model's overlay and K_pred.png), not both"),
            (["--no-pose", "--posenet-weights", str(tmp_path / "no.pth")],
             "use either --no-pose or --posenet-weights (a PoseNet setting), not both"),
            (["--no-pose", "--pose-every", "1"], "use either --no-pose or --pose-every (a PoseNet setting), not both"),
            (["--no-pose", "--pose-threads", "1"],
             "use either --no-pose or --pose-threads (a PoseNet setting), not both"),
            (["--no-pose", "--dwell", "9"], "use either --no-pose or --dwell (a PoseNet setting), not both")):
        out = run_main("--source", str(dev_root / "set1"), "--images", str(tmp_path), *args, env=env)
        assert (out.returncode, out.stderr) == (2, f"Error: {message}\n"), args
    assert list(tmp_path.iterdir()) == []


NO_CAMERA_7 = ("Error: --source 7: cannot open camera 7 (none there, or in use by another program? --source also "
               "takes a video file or an image folder)")


@pytest.mark.gui
def test_no_camera_exits_2_with_one_line(xdisplay, tmp_path):
    out = run_main("--source", "7", "--images", str(tmp_path), "--no-pose", env={**os.environ, "DISPLAY": xdisplay})
    assert out.returncode == 2
    assert out.stderr.strip() == NO_CAMERA_7
    junk = tmp_path / "clip.mp4"  # a broken video file: our line only, not FFmpeg's before it
    junk.write_bytes(b"not a video")
    out = run_main("--source", str(junk), "--images", str(tmp_path), "--no-pose", env={**os.environ, "DISPLAY": xdisplay})
    assert out.returncode == 2
    assert out.stderr.strip() == f"Error: --source {junk}: cannot open video file {junk}"
    # The cheap checks come before the segmentation model loads (seconds): a bad --source is said
    # first, not --weights' error after the wait.
    out = run_main("--source", "7", "--images", str(tmp_path), "--no-pose", "--weights", str(junk),
                   env={**os.environ, "DISPLAY": xdisplay})
    assert out.returncode == 2 and out.stderr.strip() == NO_CAMERA_7


@pytest.mark.gui
def test_missing_weights_say_how_to_get_them(xdisplay, tmp_path, dev_root):
    out = run_main("--source", str(dev_root / "set1"), "--images", str(tmp_path),
                   "--posenet-weights", str(tmp_path / "none.pth"), env={**os.environ, "DISPLAY": xdisplay})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "none.pth" in lines[0] and "--no-pose" in lines[0]
    assert "--posenet-weights PATH" in lines[0]


@pytest.mark.gui
def test_no_weights_anywhere_says_how_to_get_them_once(xdisplay, tmp_path, dev_root):
    # Empty cache, download from a closed local port: the weights module's own "put ... or pass ..." line.
    env = {**os.environ, "DISPLAY": xdisplay, "HUMANSEG_CACHE": str(tmp_path / "cache"),
           "HUMANSEG_POSENET_URL": "http://127.0.0.1:9/"}
    env.pop("HUMANSEG_POSENET_WEIGHTS", None)
    out = run_main("--source", str(dev_root / "set1"), "--images", str(tmp_path / "images"), env=env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no PoseNet weights for model 50")
    assert lines[0].count("--posenet-weights PATH") == 1 and lines[0].count("mobilenet_v1_050.pth") == 1
    assert lines[0].endswith("or run with --no-pose (mouse and keys)")
    assert not (tmp_path / "images").exists()


@pytest.mark.gui
@pytest.mark.slow
def test_continuing_a_set_checks_the_sources_frames_against_its_bkg(launch, xdisplay, tmp_path, dev_root, copy_set):
    images = copy_set(3)
    src = write_frames(tmp_path / "src", [cv2.imread(str(dev_root / "set3" / f"{k}.png")) for k in range(3)])
    for extra, warning in (([], "run with --no-mirror"), (["--no-mirror"], None)):
        # Mirrored (the default), the set's own frames no longer fit its bkg.png: said before any Sav.
        app = launch("--source", str(src), "--images", str(images), "--set", "3", "--no-pose", "--no-model",
                     *extra)
        app.wait_event("ready")
        app.find_window("capture", size=(W, H))
        app.key("q")
        assert app.wait_exit() == 0
        warned = [line for line in app.proc.stderr.read().splitlines() if line.startswith("warning")]
        if warning:
            assert warned == [f"warning: --set 3: bkg.png looks mirrored against the frames of --source {src} "
                              f"(they match it far better flipped), so new frames would not fit it: {warning} (or, if "
                              f"the source shows another room, continue that room's set)"]
        else:
            assert warned == []
    small = write_frames(tmp_path / "small", [np.zeros((240, 320, 3), np.uint8)])
    out = run_main("--source", str(small), "--images", str(images), "--set", "3", "--no-pose",
                   env={**os.environ, "DISPLAY": xdisplay})
    assert out.returncode == 2
    assert out.stderr == f"Error: --set 3: bkg.png is 640x480 but --source {small} gives 320x240 frames\n"
    assert store.list_frames(images / "set3") == [0, 1, 2, 3]


@pytest.mark.gui
@pytest.mark.slow
def test_a_camera_larger_than_the_screen_is_shown_scaled_and_clicks_map_back(launch, tmp_path, dev_root):
    # A 1920x1080 camera's frames 1:1 do not fit a laptop's screen: the window shows them at 2/3.
    big = cv2.resize(cv2.imread(str(dev_root / "set3" / "bkg.png")), (1920, 1080), interpolation=cv2.INTER_LINEAR)
    src = write_frames(tmp_path / "src", [big])
    images = tmp_path / "images"
    app = launch("--source", str(src), "--images", str(images), "--no-pose", "--no-model", "-b", "0")
    ready = app.wait_event("ready")
    assert (ready["width"], ready["height"]) == (1920, 1080)
    app.find_window("capture", size=(1280, 720))
    bkg = {b.name: b for b in default_layout(1920, 1080)}["bkg"]
    shown = (round((bkg.x + 0.5) * 2 / 3 - 0.5), round((bkg.y + 0.5) * 2 / 3 - 0.5))
    pressed = app.click_answered(*shown, "pressed", by="mouse")  # (button= is click_answered's own)
    assert pressed["button"] == "bkg"
    saved = app.wait_event("saved", kind="background", timeout=20)
    app.key("q")
    assert app.wait_exit() == 0
    assert same_image(Path(saved["path"]), cv2.flip(big, 1))  # saved at the camera's own size


@pytest.mark.gui
@pytest.mark.slow
def test_a_small_camera_is_shown_enlarged_and_clicks_map_back(launch, tmp_path, dev_root):
    # A 160x120 camera's window was 160x120, its text unreadable: it is shown 4 times as large.
    small = cv2.resize(cv2.imread(str(dev_root / "set3" / "bkg.png")), (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    src = write_frames(tmp_path / "src", [small])
    images = tmp_path / "images"
    app = launch("--source", str(src), "--images", str(images), "--no-pose", "--no-model", "-b", "0")
    ready = app.wait_event("ready")
    assert (ready["width"], ready["height"]) == (W // 4, H // 4)
    app.find_window("capture", size=(W, H))
    bkg = {b.name: b for b in default_layout(W // 4, H // 4)}["bkg"]
    shown = (round((bkg.x + 0.5) * 4 - 0.5), round((bkg.y + 0.5) * 4 - 0.5))
    pressed = app.click_answered(*shown, "pressed", by="mouse")
    assert pressed["button"] == "bkg"
    saved = app.wait_event("saved", kind="background", timeout=20)
    app.key("q")
    assert app.wait_exit() == 0
    assert same_image(Path(saved["path"]), cv2.flip(small, 1))  # saved at the camera's own size


@pytest.mark.gui
@pytest.mark.slow
def test_a_palm_presses_sav_on_a_camera_three_times_larger(launch, tmp_path, dev_root, posenet_weights):
    # 1920x1440 frames: PoseNet gets the input width it gets at 640x480, the window shows them at half
    # size, and the palm over Sav still presses it.
    frame = cv2.resize(palm_on_sav_frame(dev_root), (3 * W, 3 * H), interpolation=cv2.INTER_LINEAR)
    src = write_frames(tmp_path / "src", [frame])
    app = launch("--source", str(src), "--images", str(tmp_path / "images"), "--no-model",
                 "--posenet-weights", str(posenet_weights))
    ready = app.wait_event("ready", timeout=60)
    assert (ready["width"], ready["height"]) == (3 * W, 3 * H)
    app.find_window("capture", size=(960, 720))  # scaled by 1/2 to fit 1280x720
    pressed = app.wait_event("pressed", timeout=60)
    assert pressed["button"] == "sav" and pressed["by"] == "palm"
    assert app.wait_event("message", timeout=10)["text"] == "capture a background first"
    app.key("q")
    assert app.wait_exit() == 0


def test_bad_set_exits_2(tmp_path, dev_root):
    out = run_main("--source", str(dev_root / "set1"), "--images", str(tmp_path), "--set", "9", "--no-pose",
                   env=dict(os.environ))
    assert out.returncode == 2
    assert out.stderr.strip() == f"Error: --set 9: set folder not found: {tmp_path / 'set9'} (no sets here)"


@pytest.mark.gui
def test_continuing_a_set_counts_its_frames_and_pose_runs_in_a_thread_by_default(xdisplay, monkeypatch, copy_set,
                                                                                 dev_root):
    # main.py's body hands the loop a controller that knows the set's frames (the status line's
    # count, from 5 for dev set 4), and PoseNet in a worker thread unless --pose-every N asks otherwise;
    # -b and -s each set their own countdown, and --no-mirror keeps the source's frames as they come.
    # (One test: a second in-process window on another test's X server ends the process.)
    from humanseg import capture

    monkeypatch.setenv("DISPLAY", xdisplay)
    seen = []

    def loop(source, window, controller, images, **kw):
        seen.append((controller.set_number, controller.frames_saved, kw["pose_async"], controller.durations,
                     kw["mirror"]))
        window.close()
        return capture.CaptureContext(Path(images))

    monkeypatch.setattr(capture, "run_capture", loop)
    images = copy_set(4)
    for every, threaded, mirror in ((0, True, True), (2, False, False)):
        capture.open_capture(source=str(dev_root / "set4"), images=images, set_number=4, use_pose=False,
                             pose_every=every, bkg_seconds=7, sav_seconds=3, mirror=mirror)
        assert seen[-1] == (4, len(store.list_frames(images / "set4")), threaded, {"bkg": 7.0, "sav": 3.0}, mirror)
    assert seen[-1][1] == 5


@pytest.mark.gui
def test_a_source_that_gives_no_frame_exits_2_with_one_line(xdisplay, tmp_path):
    # A video file with no frames opens; its first read gives nothing (a traceback on its size, once).
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    writer.release()
    out = run_main("--source", str(empty), "--images", str(tmp_path / "images"), "--no-pose", "--no-model",
                   env={**os.environ, "DISPLAY": xdisplay})
    assert (out.returncode, out.stderr) == (2, f"Error: --source {empty}: no frames could be read\n")
    assert not (tmp_path / "images").exists()


def test_a_missing_posenet_weights_variable_is_answered_with_mending_the_variable(tmp_path, monkeypatch):
    # main.py with HUMANSEG_POSENET_WEIGHTS naming a file that is not there advised putting the
    # weights in the cache, but the variable is looked up before the cache (README "Weights":
    # --posenet-weights > $HUMANSEG_POSENET_WEIGHTS > the cache), so the same error came back. It says
    # to fix or unset the variable, as the segmentation model's message does for $HUMANSEG_WEIGHTS.
    from humanseg.capture import load_pose
    from humanseg.errors import HumansegError

    cache = tmp_path / "cache"
    (cache / "posenet").mkdir(parents=True)
    monkeypatch.setenv("HUMANSEG_CACHE", str(cache))
    monkeypatch.setenv("HUMANSEG_POSENET_WEIGHTS", str(tmp_path / "none.pth"))
    with pytest.raises(HumansegError) as err:
        load_pose(None, None)
    message = str(err.value)
    assert err.value.exit_code == 2 and "HUMANSEG_POSENET_WEIGHTS" in message
    # The advice it gives must be one that works: putting the file in the cache does not.
    assert f"put mobilenet_v1_050.pth in {cache / 'posenet'}" not in message, message
    assert message == (f"HUMANSEG_POSENET_WEIGHTS={tmp_path / 'none.pth'}: no such file; fix "
                       f"HUMANSEG_POSENET_WEIGHTS or unset it (then {cache / 'posenet'} or a download is "
                       f"used), or pass --posenet-weights PATH; or run with --no-pose (mouse and keys)"), message


def test_the_overlay_loaded_before_the_window_failed_to_open_is_closed(tmp_path, dev_root, monkeypatch):
    # Ctrl-C (or any failure) while the window opens, after the live overlay was loaded: the overlay
    # (its model thread) is closed, not left behind, and the failure goes on as it was.
    from humanseg import display
    from humanseg.capture import open_capture
    from humanseg.ui import window

    class Overlay:
        closed = 0

        def on_frame(self, frame, ctx):
            return frame

        def on_saved(self, info, frame, ctx):
            pass

        def close(self):
            self.closed += 1

    def interrupted(name):
        raise KeyboardInterrupt

    overlay = Overlay()
    monkeypatch.setattr(display, "require_display", lambda: None)
    monkeypatch.setattr(window, "CvWindow", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_capture(source=str(dev_root / "set4"), images=tmp_path, use_pose=False, load_hooks=lambda: overlay)
    assert overlay.closed == 1 and list(tmp_path.iterdir()) == []


def test_posenet_that_cannot_be_imported_is_one_line_suggesting_no_pose(monkeypatch):
    # A broken install (torch missing, say): said in a line with the way to capture without it.
    from humanseg.capture import NO_POSE_HINT, load_pose
    from humanseg.errors import HumansegError

    monkeypatch.setitem(sys.modules, "humanseg.pose", None)  # importing it raises ImportError
    with pytest.raises(HumansegError) as err:
        load_pose(None, None)
    message = str(err.value)
    assert err.value.exit_code == 2 and "\n" not in message
    assert message.startswith("PoseNet is not available (") and message.endswith(f"); {NO_POSE_HINT}"), message
    with pytest.raises(HumansegError) as err:
        load_pose(None, None, no_pose=False)  # a command without --no-pose does not suggest it
    assert str(err.value).startswith("PoseNet is not available (") and str(err.value).endswith(")")


def test_missing_weights_without_a_home_folder_still_say_how_to_get_them(tmp_path, monkeypatch):
    # No home folder (a uid without a passwd entry, HOME unset): the cache folder cannot be named,
    # and the hint for a --posenet-weights file that is not there names the cache in words instead of
    # replacing the error with a traceback.
    from humanseg.capture import NO_POSE_HINT, load_pose
    from humanseg.errors import HumansegError

    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")

    for name in ("HUMANSEG_CACHE", "XDG_CACHE_HOME", "HUMANSEG_POSENET_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Path, "home", classmethod(no_home))
    missing = tmp_path / "none.pth"
    with pytest.raises(HumansegError) as err:
        load_pose(str(missing), None)
    assert err.value.exit_code == 2
    assert str(err.value) == (f"--posenet-weights {missing}: no such file; to get weights, put mobilenet_v1_050.pth "
                              f"in the PoseNet cache or pass --posenet-weights PATH; {NO_POSE_HINT}")
    # And with no weights named at all, the cache looked up was a traceback (Path.home's RuntimeError).
    with pytest.raises(HumansegError) as err:
        load_pose(None, None)
    assert err.value.exit_code == 2
    assert str(err.value) == ("no home folder to keep the PoseNet weights cache in: set $HUMANSEG_CACHE to a folder, "
                              "or give the weights file (--posenet-weights PATH where the command has it, else "
                              f"$HUMANSEG_POSENET_WEIGHTS=PATH); {NO_POSE_HINT}")
