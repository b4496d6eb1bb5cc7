"""The capture loop with its edges faked (source, window, clock, pose): hooks, saving, pose cadence."""

from __future__ import annotations

import os
import shutil
import threading
import time

import cv2
import numpy as np
import pytest

from gui import ScriptWindow
from humanseg import store
from humanseg.capture import BackgroundPose, FpsMeter, Saved, carried_click, run_capture, status_text
from humanseg.pose import Palm
from humanseg.sources import ImageFolderSource
from humanseg.ui.buttons import button_at, default_layout
from humanseg.ui.controller import CaptureController

W, H = 640, 480


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class ListSource:
    """Frames from a list, looped; each read moves the fake clock one 30 fps frame on."""

    def __init__(self, frames, clock, limit=1000):
        self.frames, self.clock, self.limit, self.reads, self.released = frames, clock, limit, 0, False

    def read(self):
        if self.reads >= self.limit:
            return None
        frame = self.frames[self.reads % len(self.frames)]
        self.reads += 1
        self.clock.now += 1 / 30
        return frame

    def release(self):
        self.released = True


class TickingFolderSource(ImageFolderSource):
    """A real image-folder source, looped; each read moves the fake clock one 30 fps frame on."""

    def __init__(self, paths, clock):
        super().__init__([str(p) for p in paths], loop=True)
        self.clock = clock

    def read(self):
        self.clock.now += 1 / 30
        return super().read()


class FakePose:
    """Returns fixed palms and counts calls; takes `cost` seconds per call to look slow: on the fake
    clock when given one (the loop times pose with its clock), else really sleeping."""

    def __init__(self, palms=(), cost=0.0, clock=None):
        self.palms_xy, self.cost, self.calls, self.clock = list(palms), cost, 0, clock

    def palms(self, frame):
        self.calls += 1
        if self.cost and self.clock is not None:
            self.clock.now += self.cost
        elif self.cost:
            time.sleep(self.cost)
        return [Palm(x, y, side, 1.0) for (x, y), side in zip(self.palms_xy, ("left", "right"))]


def frames(dev_root, n=3):
    return [cv2.imread(str(dev_root / "set5" / f"{k}.png")) for k in range(n)]


def controller(clock, **kw):
    return CaptureController(default_layout(W, H), bkg_seconds=1, sav_seconds=1, clock=clock, **kw)


def palms_used(controller) -> list[list[tuple[float, float]]]:
    """Records the palms the loop hands controller on each update (one list per frame)."""
    used, update = [], controller.update
    controller.update = lambda palms, clicks, keys, answer=None: used.append(list(palms)) or update(palms, clicks, keys,
                                                                                                    answer)
    return used


def test_a_text_the_save_hook_returns_is_shown_on_screen_for_six_seconds(tmp_path, dev_root):
    # The live overlay's word on a frame that does not match the background: read where the user looks.
    clock = Clock()
    source = ListSource(frames(dev_root), clock, limit=300)
    # b after frame 0 -> background at frame 31; s after frame 40 -> 0.png at frame 71; q after 280.
    window = ScriptWindow({0: [ord("b")], 40: [ord("s")], 280: [ord("q")]})
    control = controller(clock)
    shown_at = {}

    def on_saved(info, frame, ctx):
        return f"about {info.path.name}" if info.kind == "frame" else None

    real_notices = control.notices
    control.notices = lambda: shown_at.setdefault(len(window.shown), real_notices())
    run_capture(source, window, control, tmp_path, clock=clock, on_saved=on_saved)
    with_text = sorted(n for n, texts in shown_at.items() if "about 0.png" in texts)
    # From the frame saved (71) for 6 s of frames (180): 2.5 s, as a save failure's message, is too short.
    assert with_text[0] == 71 and 71 + 178 <= with_text[-1] <= 71 + 181, (with_text[0], with_text[-1])
    assert not any("about" in " ".join(texts) for n, texts in shown_at.items() if n < 71)


def test_hooks_see_clean_frames_and_every_save(tmp_path, dev_root):
    clock = Clock()
    source = ListSource(frames(dev_root), clock)
    # b after frame 0 -> background at frame 31; s after frame 40 -> 0.png at frame 71; q after 80.
    window = ScriptWindow({0: [ord("b")], 40: [ord("s")], 80: [ord("q")]})
    seen, saved, events = [], [], []

    def on_frame(frame, ctx):
        seen.append((frame.copy(), ctx.set_number, ctx.background is not None))
        return np.zeros_like(frame)  # the overlay a live segmenter would return

    def on_saved(info, frame, ctx):
        saved.append((info, frame.copy(), ctx.frames_saved))

    ctx = run_capture(source, window, controller(clock), tmp_path, clock=clock, log=events.append,
                      on_frame=on_frame, on_saved=on_saved)

    assert source.released and window.closed
    # "ready" comes with the first frame shown, before anything the keys polled after it do.
    assert (events[0]["event"], events[0]["width"], events[0]["height"]) == ("ready", W, H)
    assert ctx.set_number == 1 and ctx.frames_saved == 1
    assert [s[0] for s in saved] == [Saved("background", 1, None, tmp_path / "set1" / "bkg.png"),
                                     Saved("frame", 1, 0, tmp_path / "set1" / "0.png")]
    for info, frame, _ in saved:
        assert np.array_equal(cv2.imread(str(info.path)), frame)  # the clean frame, no buttons on it
    src = frames(dev_root)
    for (frame, _, _), k in zip(seen, range(len(src))):
        assert np.array_equal(frame, cv2.flip(src[k], 1))  # mirrored by default
    # The hook's image is what the buttons are drawn over: away from the overlay the screen is black.
    assert (window.shown[5][5:60, 250:390] == 0).all()
    # The hook sees the set and its background from the frame after the background was saved.
    first_with_set = next(i for i, s in enumerate(seen) if s[1] == 1)
    assert seen[first_with_set][2] and not seen[first_with_set - 1][2]
    saves = [e for e in events if e["event"] == "saved"]
    # A key polled after frame i acts on frame i + 1; the 1 s countdown then takes 30 frames.
    assert [e["source_frame"] for e in saves] == [31, 71]


def test_saved_frame_is_the_frame_read_when_the_countdown_ends(tmp_path, dev_root):
    clock = Clock()
    src = frames(dev_root)
    source = ListSource(src, clock)
    events = []
    run_capture(source, ScriptWindow({0: [ord("b")], 50: [ord("q")]}), controller(clock), tmp_path,
                clock=clock, log=events.append, mirror=False)
    (saved,) = [e for e in events if e["event"] == "saved"]
    assert np.array_equal(cv2.imread(saved["path"]), src[saved["source_frame"] % 3])


def test_saved_events_name_the_image_of_a_folder_source_each_save_took(tmp_path, dev_root):
    # --log-events' source_index / source_path: the image the saved frame was read from (looped).
    paths = [dev_root / "set5" / f"{k}.png" for k in range(3)]
    clock = Clock()
    events = []
    run_capture(TickingFolderSource(paths, clock), ScriptWindow({0: [ord("b")], 40: [ord("s")], 80: [ord("q")]}),
                controller(clock), tmp_path, clock=clock, log=events.append)
    saves = [e for e in events if e["event"] == "saved"]
    assert [e["kind"] for e in saves] == ["background", "frame"]
    for e in saves:
        i = e["source_frame"] % len(paths)
        assert (e["source_index"], e["source_path"]) == (i, str(paths[i]))
        assert np.array_equal(cv2.imread(e["path"]), cv2.flip(cv2.imread(str(paths[i])), 1))


def test_a_slow_pace_still_answers_keys_at_once(tmp_path, dev_root, monkeypatch):
    # --max-fps 0.01 slept 100 s between frames with the window unanswered: q, clicks and its close
    # button did nothing (1e-300 overflowed time.sleep).
    import humanseg.capture

    monkeypatch.setattr(humanseg.capture.time, "sleep", lambda s: pytest.fail(f"slept {s} s"))
    clock = Clock()

    class Window(ScriptWindow):
        polls = 0

        def poll(self, wait_ms=1):
            self.polls += 1
            clock.now += wait_ms / 1000
            return ([ord("q")] if clock.now > 3 else []), []

    for fps in (0.01, 1e-300, 1e-307):  # 1e-307: a wait of 1e310 ms, past float's range
        clock.now, source, events = 0.0, ListSource(frames(dev_root), clock), []
        run_capture(source, Window({}), controller(clock), tmp_path, clock=clock, log=events.append, max_fps=fps)
        # q pressed 3 s into the first 100 s (or 1e300 s) wait: handled then, on the frame on screen
        # (no frame more is read: it was, and shown for a whole pace before the window closed).
        assert source.reads == 1 and 3 < clock.now < 3.2
        assert [e["event"] for e in events][-2:] == ["pressed", "quit"]

    class Closed(Window):  # closed with its button 3 s into the wait; a later imshow would reopen it
        def is_open(self):
            return clock.now < 3

        def poll(self, wait_ms=1):
            clock.now += wait_ms / 1000
            return [], []

    clock.now, source, events = 0.0, ListSource(frames(dev_root), clock), []
    run_capture(source, Closed({}), controller(clock), tmp_path, clock=clock, log=events.append, max_fps=0.01)
    assert source.reads == 1 and events[-1]["event"] == "quit" and events[-1]["by"] == "window closed"
    source = ListSource(frames(dev_root), clock, limit=4)
    run_capture(source, ScriptWindow({}), controller(clock), tmp_path, clock=clock, max_fps=60.0)
    assert source.reads == 4  # frames come at 30 fps, slower than the pace: no wait


def test_a_countdown_ends_on_time_at_a_slow_pace(tmp_path, dev_root):
    # At --max-fps 0.1 with -b 1 the background was saved 10 s after b, the next paced frame, with the
    # countdown's 1 frozen on screen meanwhile.
    clock = Clock()

    ctrl = CaptureController(default_layout(W, H), bkg_seconds=2.5, sav_seconds=1, clock=clock)

    class Window(ScriptWindow):
        digits = []

        def show(self, image, scale=1.0):
            super().show(image, scale)
            self.digits.append(ctrl.countdown_shown())

        def poll(self, wait_ms=1):
            clock.now += wait_ms / 1000
            return ([ord("b")] if len(self.shown) == 1 and clock.now < 0.1 else []), []

    source, events, window = ListSource(frames(dev_root), clock, limit=3), [], Window({})
    run_capture(source, window, ctrl, tmp_path, clock=clock, log=events.append, max_fps=0.1)
    started = next(e["time"] for e in events if e["event"] == "countdown_started")
    saved = next(e for e in events if e["event"] == "saved")
    assert saved["kind"] == "background" and 2.5 <= saved["time"] - started < 2.6
    # ... and of the frame on screen then (the first: the next comes 10 s after it), not the next one.
    assert saved["source_frame"] == 0
    assert np.array_equal(cv2.imread(saved["path"]), cv2.flip(frames(dev_root, 1)[0], 1))
    # The number shown went 3, 2, 1 while waiting for the next frame, each drawn once.
    assert window.digits[:4] == [None, 3, 2, 1]


def test_a_second_press_cancels_at_a_slow_pace(tmp_path, dev_root):
    # At a --max-fps pace the keys are read every 50 ms but the controller was told of them only when
    # one came: the readings seemed as far apart as the presses, and a second s, meant to cancel, was
    # taken for a held key's repeat (a review's finding).
    clock = Clock()
    controller = CaptureController(default_layout(W, H), bkg_seconds=1, sav_seconds=5, clock=clock)
    presses, done = {0.5: ord("b"), 3.0: ord("s"), 4.5: ord("s")}, set()

    class Window(ScriptWindow):
        def poll(self, wait_ms=1):
            clock.now += wait_ms / 1000
            keys = [k for t, k in presses.items() if t not in done and clock.now >= t]
            done.update(t for t in presses if clock.now >= t)
            return keys, []

    events = []
    source = ListSource(frames(dev_root), clock, limit=2)
    run_capture(source, Window({}), controller, tmp_path, clock=clock, log=events.append, max_fps=0.05)
    said = [(e["event"], e.get("button")) for e in events
            if e["event"] in ("pressed", "countdown_started", "countdown_cancelled")]
    assert said == [("pressed", "bkg"), ("countdown_started", "bkg"), ("pressed", "sav"),
                    ("countdown_started", "sav"), ("pressed", "sav"), ("countdown_cancelled", "sav")]
    assert [e["kind"] for e in events if e["event"] == "saved"] == ["background"]  # no frame: cancelled
    # ... at once (the second s waits a quarter of a second to be told from a repeat), not when the
    # countdown it cancels was to end, 3.5 s later, its number counting down on screen meanwhile.
    assert 4.5 < next(e["time"] for e in events if e["event"] == "countdown_cancelled") < 4.9


def test_failed_save_is_shown_and_the_next_press_saves(tmp_path, dev_root, monkeypatch):
    # The disk is full for the first Bkg: the screen says so, no half-made set is left, capture goes on.
    real_fsync, failures = os.fsync, []

    def fsync_full_once(fd):
        if not failures:
            failures.append(fd)
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_full_once)
    clock = Clock()
    window = ScriptWindow({0: [ord("b")], 40: [ord("b")], 80: [ord("q")]})
    events = []
    ctx = run_capture(ListSource(frames(dev_root), clock), window, controller(clock), tmp_path,
                      clock=clock, log=events.append)
    messages = [e["text"] for e in events if e["event"] == "message"]
    # In the tool's words, "PATH: reason" (was Python's "[Errno 28] No space left on device: 'PATH'").
    assert messages == [f"save failed: {tmp_path / 'set1' / 'bkg.png'}: No space left on device"]
    saves = [e for e in events if e["event"] == "saved"]
    assert [(e["kind"], e["path"]) for e in saves] == [("background", str(tmp_path / "set1" / "bkg.png"))]
    assert ctx.set_number == 1 and store.list_sets(tmp_path) == [1]
    assert sorted(p.name for p in (tmp_path / "set1").iterdir()) == ["bkg.png"]


def test_a_signal_during_a_save_is_handed_on_after_the_save_is_reported(tmp_path, dev_root, sigterm_after_fsync):
    # A SIGTERM (or Ctrl-C) while bkg.png was written: the file was saved whole, but the signal, held
    # back for the save, was raised before the "saved" event, and --log-events never told of it.
    clock = Clock()
    events = []
    with pytest.raises(sigterm_after_fsync):
        run_capture(ListSource(frames(dev_root), clock), ScriptWindow({0: [ord("b")], 80: [ord("q")]}),
                    controller(clock), tmp_path, clock=clock, log=events.append)
    assert [e["event"] for e in events][-2:] == ["capture", "saved"]
    assert events[-1]["path"] == str(tmp_path / "set1" / "bkg.png") and (tmp_path / "set1" / "bkg.png").is_file()


def test_a_frame_of_another_size_than_the_background_is_not_saved(tmp_path, dev_root):
    # A source that changes size (a folder of mixed images) must not put a frame into a set whose
    # bkg.png has another size: such a set cannot be trained on.
    big = frames(dev_root, 1)[0]
    small = cv2.resize(big, (W // 2, H // 2))
    clock = Clock()
    source = ListSource([big] * 50 + [small] * 50, clock)
    events = []
    ctx = run_capture(source, ScriptWindow({0: [ord("b")], 40: [ord("s")], 80: [ord("q")]}),
                      controller(clock), tmp_path, clock=clock, log=events.append)
    messages = [e["text"] for e in events if e["event"] == "message"]
    assert messages == [f"save failed: frame is {W // 2}x{H // 2} but set 1's bkg.png is {W}x{H}; not saved"]
    assert ctx.frames_saved == 0 and sorted(p.name for p in (tmp_path / "set1").iterdir()) == ["bkg.png"]


class ClickWindow(ScriptWindow):
    """ScriptWindow that also clicks: clicks_at {frame shown: [(x, y), ...]} in frame pixels."""

    def __init__(self, keys_at, clicks_at):
        super().__init__(keys_at)
        self.clicks_at = clicks_at

    def poll(self, wait_ms=1):
        return self.keys_at.get(len(self.shown) - 1, []), self.clicks_at.get(len(self.shown) - 1, [])


def test_a_source_that_changes_size_gets_its_buttons_laid_out_again(tmp_path, dev_root):
    # The buttons stayed where the first frame's size put them: on a smaller frame Ext and Sav lay
    # outside it and Bkg elsewhere, so no click (or palm) could reach them.
    big = frames(dev_root, 1)[0]
    small = cv2.resize(big, (W // 2, H // 2))
    clock = Clock()
    source = ListSource([big] * 20 + [small] * 80, clock)
    layout = {b.name: (b.x, b.y) for b in default_layout(W // 2, H // 2)}
    window = ClickWindow({}, {30: [layout["bkg"]], 70: [layout["sav"]], 90: [layout["ext"]]})
    events = []
    c = controller(clock)
    ctx = run_capture(source, window, c, tmp_path, clock=clock, log=events.append)
    assert [(e["button"], e["by"]) for e in events if e["event"] == "pressed"] == [
        ("bkg", "mouse"), ("sav", "mouse"), ("ext", "mouse")]
    assert [b.radius for b in c.buttons] == pytest.approx([0.06 * (W // 2)] * 3)
    assert ctx.set_number == 1 and ctx.frames_saved == 0  # Sav's countdown was running when Ext came
    assert cv2.imread(str(tmp_path / "set1" / "bkg.png")).shape == (H // 2, W // 2, 3)
    # The half-size frames are shown twice as large (their text readable); clicks came in frame pixels.
    assert window.shown[0].shape == (H, W, 3) and window.scales[0] == 1.0
    assert window.shown[-1].shape == (H, W, 3) and window.scales[-1] == 2.0


def test_a_click_on_the_last_frame_before_a_size_change_presses_its_button(tmp_path, dev_root):
    # The click, in the pixels of the frame shown, was applied on the next frame, whose buttons were
    # already laid out for the new size: it hit nothing.
    big = frames(dev_root, 1)[0]
    small = cv2.resize(big, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    clock = Clock()
    bkg = {b.name: b for b in default_layout(W, H)}["bkg"]
    window = ClickWindow({}, {9: [(round(bkg.x + 0.6 * bkg.radius), round(bkg.y))]})
    events = []
    run_capture(ListSource([big] * 10 + [small] * 5, clock, limit=15), window, controller(clock), tmp_path,
                clock=clock, log=events.append)
    assert [(e["button"], e["by"]) for e in events if e["event"] == "pressed"] == [("bkg", "mouse")]


def test_a_click_near_a_buttons_edge_before_the_frame_turns_portrait_presses_it(tmp_path, dev_root):
    # Scaled across and down apart, a click inside Bkg's circle near its edge landed outside the new
    # (round) circle when the frame turned from 640x480 to 480x640.
    big = frames(dev_root, 1)[0]
    portrait = cv2.resize(big[:, 140:500], (H, W), interpolation=cv2.INTER_LINEAR)
    bkg = {b.name: b for b in default_layout(W, H)}["bkg"]
    for dx, dy in ((0.8, -0.5), (0.0, -0.8), (-0.6, 0.6)):
        clock = Clock()
        window = ClickWindow({}, {9: [(bkg.x + dx * bkg.radius, bkg.y + dy * bkg.radius)]})
        events = []
        run_capture(ListSource([big] * 10 + [portrait] * 5, clock, limit=15), window, controller(clock),
                    tmp_path / f"{dx}{dy}", clock=clock, log=events.append)
        assert [(e["button"], e["by"]) for e in events if e["event"] == "pressed"] == [("bkg", "mouse")], (dx, dy)


def test_a_click_off_the_buttons_is_carried_in_proportion_to_the_frame():
    # A click in the middle of a 1280x960 frame, kept at its pixel on the 640x480 frames that followed,
    # landed on Sav; in proportion it stays in the middle, off every button.
    old, new = default_layout(1280, 960), default_layout(640, 480)
    assert button_at(old, 550, 216) is None and button_at(new, 550, 216).name == "sav"
    x, y = carried_click((550, 216), old, new, (960, 1280), (480, 640))
    assert (x, y) == pytest.approx((274.75, 107.75))  # pixel centres: (x + 0.5) / 2 - 0.5
    assert button_at(new, x, y) is None


def test_a_click_off_the_buttons_is_carried_across_a_turn_to_portrait_by_each_axis_own_ratio():
    # 640x480 to 480x640 (the camera turned portrait): x goes by 480/640, y by 640/480. By one ratio
    # for both, this click below Sav, off every button, landed on the new Sav.
    old, new = default_layout(640, 480), default_layout(480, 640)
    assert button_at(old, 544, 383.5) is None
    x, y = carried_click((544, 383.5), old, new, (480, 640), (640, 480))
    assert (x, y) == pytest.approx((544.5 * 480 / 640 - 0.5, 384 * 640 / 480 - 0.5))
    assert button_at(new, x, y) is None


def test_a_portrait_camera_is_shown_enlarged(tmp_path, dev_root):
    portrait = cv2.resize(frames(dev_root, 1)[0][:, 140:500], (240, 320), interpolation=cv2.INTER_AREA)
    clock = Clock()
    window = ScriptWindow({})
    run_capture(ListSource([portrait], clock, limit=2), window,
                CaptureController(default_layout(240, 320), clock=clock), tmp_path, clock=clock)
    assert window.shown[-1].shape == (640, 480, 3) and window.scales[-1] == 2.0


def test_a_small_camera_is_shown_enlarged_with_readable_text(tmp_path, dev_root):
    # A 160x120 camera's frames were drawn on at their own size: the status line 3 pixels high, the
    # buttons' labels a smudge. They are drawn on the frame enlarged 4 times instead.
    small = cv2.resize(frames(dev_root, 1)[0], (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    clock = Clock()
    window = ScriptWindow({})
    buttons = default_layout(W // 4, H // 4)  # as capture lays them out for the first frame
    run_capture(ListSource([small], clock, limit=3), window, CaptureController(buttons, clock=clock), tmp_path,
                clock=clock)
    shown = window.shown[-1]
    assert shown.shape == (H, W, 3) and window.scales[-1] == 4.0
    # The picture is the mirrored frame enlarged (away from buttons and text) ...
    enlarged = cv2.resize(cv2.flip(small, 1), (W, H), interpolation=cv2.INTER_LINEAR)
    assert np.abs(shown[60:200, 200:440].astype(int) - enlarged[60:200, 200:440]).max() <= 1
    # ... and the status line is drawn at the window's size: its white strokes span many rows.
    text = (shown[H - 40:, : W // 2] >= 200).all(axis=2) & (enlarged[H - 40:, : W // 2] < 150).any(axis=2)
    rows = np.flatnonzero(text.sum(axis=1) >= 3)
    assert rows.size and rows.max() - rows.min() >= 8
    # The Bkg button is drawn where a click on it lands: at 4 times its frame position.
    bkg = buttons[2]
    x, y = round((bkg.x + 0.5) * 4 - 0.5), round((bkg.y + 0.5) * 4 - 0.5)
    b, g, r = shown[y - 30, x].astype(int)  # inside the disc, above its label: blue blended in
    b0, g0, r0 = enlarged[y - 30, x].astype(int)
    assert b - b0 > 40 and r0 - r > 20


def test_palms_press_buttons_and_are_drawn(tmp_path, dev_root):
    clock = Clock()
    sav = default_layout(W, H)[1]
    pose = FakePose([(sav.x, sav.y)])
    events = []
    run_capture(ListSource(frames(dev_root), clock, limit=60), ScriptWindow({}),
                controller(clock, set_number=3), tmp_path, pose=pose, clock=clock, log=events.append)
    pressed = [e for e in events if e["event"] == "pressed"]
    assert pressed == [{"event": "pressed", "button": "sav", "by": "palm", "time": pytest.approx(0.3, abs=0.05)}]
    assert events[-1]["event"] == "quit" and events[-1]["by"] == "end of source"


def test_a_palm_that_leaves_a_button_and_comes_back_presses_it_again(tmp_path, dev_root):
    # The button re-arms only once PoseNet has answered, several times, with no palm on it: the loop
    # must count its answers, or a palm presses each button once a session.
    clock = Clock()
    sav = default_layout(W, H)[1]

    class Comes:  # on Sav for 1 s, away for 2 s, and so on
        def palms(self, frame):
            at = (sav.x, sav.y) if clock.now % 3.0 < 1.0 else (50, 400)
            return [Palm(*at, "left", 1.0)]

    for every in (1, 2):
        events = []
        clock.now = 0.0
        run_capture(ListSource(frames(dev_root), clock, limit=270), ScriptWindow({}),
                    CaptureController(default_layout(W, H), sav_seconds=100, clock=clock, set_number=3), tmp_path,
                    pose=Comes(), pose_every=every, clock=clock, log=events.append)
        # Pressed at each return (0.3 s of dwell in): started, cancelled by the second, started again.
        assert [(e["event"], round(e["time"])) for e in events if e["event"].startswith("countdown")] == [
            ("countdown_started", 0), ("countdown_cancelled", 3), ("countdown_started", 6)], every


def test_palms_are_steadied_over_time_and_still_press(tmp_path, dev_root):
    # PoseNet's answer moves by several pixels from frame to frame on a still hand; the capture loop
    # used it raw (the One-Euro filter was written but not used).
    clock = Clock()
    sav = default_layout(W, H)[1]

    class JitteryPose:  # a still palm on Sav, found 12 px to its left and right in turn
        calls = 0

        def palms(self, frame):
            self.calls += 1
            return [Palm(sav.x + (12 if self.calls % 2 else -12), sav.y, "left", 1.0)]

    c = controller(clock, set_number=3)
    used = palms_used(c)
    events = []
    run_capture(ListSource(frames(dev_root), clock, limit=40), ScriptWindow({}), c, tmp_path,
                pose=JitteryPose(), clock=clock, log=events.append)
    xs = np.array([palms[0][0] for palms in used[10:]])
    assert len(xs) == 30 and np.ptp(xs) < 8 and abs(xs.mean() - sav.x) < 2  # raw: 24 px apart
    assert [(e["button"], e["by"]) for e in events if e["event"] == "pressed"] == [("sav", "palm")]


def test_palms_after_a_size_change_are_not_steadied_toward_the_old_frames_pixels(tmp_path, dev_root):
    # The One-Euro filter kept its state across the change: on the first frames of the new size the palm
    # (its dot and its dwell) slid in from where it had been in the old frames' pixels.
    big = frames(dev_root, 1)[0]
    small = cv2.resize(big, (W // 2, H // 2), interpolation=cv2.INTER_AREA)

    class Centre:  # a palm at the middle of whichever frame it is given
        def palms(self, frame):
            return [Palm(frame.shape[1] / 2, frame.shape[0] / 2, "left", 1.0)]

    clock = Clock()
    c = controller(clock)
    used = palms_used(c)
    run_capture(ListSource([big] * 10 + [small] * 5, clock, limit=15), ScriptWindow({}), c, tmp_path, pose=Centre(),
                clock=clock)
    assert used[9] == [pytest.approx((W / 2, H / 2))] and used[10] == [pytest.approx((W / 4, H / 4))]


def test_the_screen_says_what_a_countdown_will_save_shows_notices_and_fills_a_dwelt_on_button(monkeypatch, dev_root):
    # The countdown's caption, the notices (a save refused or failed, "saved ...") and the arc filling
    # as a palm rests on a button are the screen's answers to the user: render hands each to its drawing.
    from humanseg.capture import CaptureContext, render
    from humanseg.ui import draw

    drawn = []
    monkeypatch.setattr(draw, "draw_countdown", lambda image, seconds, what: drawn.append(("countdown", what)))
    monkeypatch.setattr(draw, "draw_notices", lambda image, texts: drawn.append(("notices", tuple(texts))))
    monkeypatch.setattr(draw, "draw_button", lambda image, button, active=False, progress=0.0: drawn.append(
        (button.name, active, progress)))
    clock, frame = Clock(), frames(dev_root, 1)[0]
    c = controller(clock)

    def screen():
        drawn.clear()
        render(frame, c, [], CaptureContext(images_root="."), 30.0)
        return list(drawn)

    c.update(keys=[ord("s")])
    assert ("notices", ("capture a background first",)) in screen()
    c.update(keys=[ord("b")])
    assert {("countdown", "background in 1 s - press again to cancel"), ("bkg", True, 0.0)} <= set(screen())
    clock.now += 5.0  # the countdown over, and the message gone
    assert [e.name for e in c.update()] == ["capture"]
    c.saved("background", "images/set1/bkg.png", 1)
    c.update(keys=[ord("s")])
    shown = screen()
    assert {("countdown", "frame in 1 s - press again to cancel"), ("sav", True, 0.0), ("bkg", False, 0.0),
            ("notices", ("saved images/set1/bkg.png",))} <= set(shown)
    ext = c.buttons[0]
    c.update(palms=[(ext.x, ext.y)])
    clock.now += 0.15
    c.update(palms=[(ext.x, ext.y)])
    (progress,) = [d[2] for d in screen() if d[0] == "ext"]
    assert 0 < progress < 1


@pytest.mark.parametrize("zoom", [1, 4])  # 4: a 160x120 camera, shown 4 times as large
def test_palm_dot_is_red_on_screen(tmp_path, dev_root, zoom):
    w, h = W // zoom, H // zoom
    small = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames(dev_root)]
    palm = (320 / zoom, 120 / zoom)  # found in the frame's pixels, drawn where the frame is shown
    clock = Clock()
    window = ScriptWindow({})
    run_capture(ListSource(small, clock, limit=2), window, CaptureController(default_layout(w, h), clock=clock),
                tmp_path, pose=FakePose([palm]), clock=clock)
    x, y = (round((v + 0.5) * zoom - 0.5) for v in palm)
    b, g, r = window.shown[-1][y, x].astype(int)
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("every,cost,expected", [(2, 0.0, 10), (1, 0.0, 20), (0, 0.0, 20), (0, 0.019, 20),
                                                 (0, 0.03, 10), (1, 0.03, 20)])
def test_pose_cadence(tmp_path, dev_root, every, cost, expected):
    clock = Clock()
    pose = FakePose(cost=cost, clock=clock)
    run_capture(ListSource(frames(dev_root), clock, limit=20), ScriptWindow({}), controller(clock), tmp_path,
                pose=pose, pose_every=every, clock=clock)
    # Automatic mode with a slow pose (30 ms > 20 ms) falls back to every other frame; 19 ms keeps up.
    assert pose.calls == expected


def test_a_resting_palm_missed_by_two_pose_calls_presses_once(tmp_path, dev_root):
    # Pose on every third frame (10 answers a second) misses the palm resting on Sav twice in a row:
    # 0.2 s without it was taken for a hand that left, and it pressed Sav again, cancelling.
    clock = Clock()
    sav = default_layout(W, H)[1]

    class Missing(FakePose):
        def palms(self, frame):
            found = super().palms(frame)
            return [] if self.calls % 10 in (4, 5) else found

    events = []
    run_capture(ListSource(frames(dev_root), clock, limit=150), ScriptWindow({}),
                CaptureController(default_layout(W, H), sav_seconds=100, clock=clock, set_number=3), tmp_path,
                pose=Missing([(sav.x, sav.y)]),
                pose_every=3, clock=clock, log=events.append)
    assert [(e["event"], e.get("button")) for e in events if e["event"] not in ("quit", "ready")] == [
        ("pressed", "sav"), ("countdown_started", "sav")]


def test_quitting_closes_the_window_before_waiting_for_a_pose_call(tmp_path, dev_root):
    # The worker was joined (up to 5 s) before the window closed: after q the window stayed up while
    # a slow pose call (seconds on a huge frame) ran on.
    clock = Clock()
    window = ScriptWindow({5: [ord("q")]})
    seen = []

    class Slow:
        def palms(self, frame):
            if not seen:
                deadline = time.monotonic() + 3
                while not window.closed and time.monotonic() < deadline:
                    time.sleep(0.01)
                seen.append(window.closed)
            return []

    run_capture(SlowListSource(frames(dev_root), clock, limit=100), window, controller(clock), tmp_path,
                pose=Slow(), clock=clock, pose_async=True)
    assert seen == [True] and window.closed


def test_continuing_a_set_saves_its_next_frame(tmp_path, dev_root, copy_set):
    images = copy_set(6)
    before = store.list_frames(images / "set6")
    clock = Clock()
    events, status = [], []
    run_capture(ListSource(frames(dev_root), clock), ScriptWindow({0: [ord("s")], 40: [ord("q")]}),
                controller(clock, set_number=6, frames_saved=len(before)), images, clock=clock,
                log=events.append, on_frame=lambda frame, ctx: status.append(status_text(ctx, 0.0)))
    (saved,) = [e for e in events if e["event"] == "saved"]
    assert saved["frame"] == before[-1] + 1 and saved["set"] == 6
    # The status line counts the set's frames from the first frame on ("0 frames" until the first Sav).
    n = len(before)
    assert (status[0], status[-1]) == (f"set 6 | {n} frames | 0 fps", f"set 6 | {n + 1} frames | 0 fps")
    assert store.list_frames(images / "set6") == before + [before[-1] + 1]
    assert store.list_sets(images) == [6]


def test_the_status_line_counts_no_link_to_nothing_nor_folder_as_a_frame(tmp_path, dev_root, copy_set):
    # A K.png that is a link to nothing (a frame moved away) or a folder was counted as a frame; a link
    # that loops is none either (and stops nothing).
    images = copy_set(6)
    n = len(store.list_frames(images / "set6"))
    os.symlink(tmp_path / "gone.png", images / "set6" / f"{n + 5}.png")
    (images / "set6" / f"{n + 6}.png").mkdir()
    os.symlink(f"{n + 7}.png", images / "set6" / f"{n + 7}.png")  # a loop: following it fails
    clock = Clock()
    events, status = [], []
    run_capture(ListSource(frames(dev_root), clock), ScriptWindow({0: [ord("s")], 40: [ord("q")]}),
                controller(clock, set_number=6, frames_saved=n), images, clock=clock, log=events.append,
                on_frame=lambda frame, ctx: status.append(status_text(ctx, 0.0)))
    (saved,) = [e for e in events if e["event"] == "saved"]
    assert saved["frame"] == n + 8  # past the numbers the links and the folder hold
    assert (status[0], status[-1]) == (f"set 6 | {n} frames | 0 fps", f"set 6 | {n + 1} frames | 0 fps")
    assert store.count_frames(images / "set6") == n + 1 and store.count_frames(images / "set99") == 0


def test_after_continuing_a_set_a_new_bkg_makes_a_set_that_sav_saves_into(tmp_path, dev_root, copy_set):
    # main.py --set 6, then Bkg (a new set 7), then Sav: the frame goes into set 7 (the session's
    # record of its own bkg.png must follow the new set: left at set 6's, every Sav was refused as
    # "not the one this session took").
    images = copy_set(6)
    clock = Clock()
    events = []
    run_capture(ListSource(frames(dev_root), clock), ScriptWindow({5: [ord("b")], 60: [ord("s")], 140: [ord("q")]}),
                controller(clock, set_number=6), images, clock=clock, log=events.append)
    assert [(e["event"], e.get("set"), e.get("kind")) for e in events if e["event"] in ("saved", "message")] == [
        ("saved", 7, "background"), ("saved", 7, "frame")]
    assert store.list_frames(images / "set7") == [0] and store.list_sets(images) == [6, 7]


def test_a_set_made_anew_under_its_number_meanwhile_gets_no_frame(tmp_path, dev_root, copy_set):
    # main.py --set 6 open; set6 deleted, and another capture tool's Bkg made a new set6 (the number
    # was free again): Sav put this session's frame beside that other room's bkg.png.
    images = copy_set(6)
    clock = Clock()
    events = []

    def on_frame(frame, ctx):
        if ctx.frame_index == 10:
            shutil.rmtree(images / "set6")
            store.save_background(images, np.zeros_like(frame))  # set1 now; named set6 below
            (images / "set1").rename(images / "set6")

    run_capture(ListSource(frames(dev_root), clock), ScriptWindow({20: [ord("s")], 100: [ord("q")]}),
                controller(clock, set_number=6), images, clock=clock, log=events.append, on_frame=on_frame)
    assert [e["event"] for e in events if e["event"] in ("saved", "message")] == ["message"]
    assert [e["text"] for e in events if e["event"] == "message"] == [
        "save failed: set 6's bkg.png is not the one this session took (the set was made anew, by another "
        "capture tool?); not saved: press Bkg for a set of your own"]
    assert sorted(p.name for p in (images / "set6").iterdir()) == ["bkg.png"]


def test_the_status_line_counts_frames_another_capture_tool_saves_into_the_set(tmp_path, dev_root, copy_set):
    # The line counted the frames there at the start plus this session's saves: two capture tools on
    # one set each showed their own count, never what the set holds.
    images = copy_set(6)
    n = len(store.list_frames(images / "set6"))
    clock = Clock()
    status = []

    def on_frame(frame, ctx):
        status.append(status_text(ctx, 0.0))
        if ctx.frame_index == 10:  # the other tool's two saves
            for _ in range(2):
                store.save_frame(images, 6, frame)

    run_capture(ListSource(frames(dev_root), clock), ScriptWindow({60: [ord("s")], 140: [ord("q")]}),
                controller(clock, set_number=6, frames_saved=n), images, clock=clock, on_frame=on_frame)
    # Counted again within a second (30 frames here), and at this tool's own save (after its 2 s
    # countdown): every frame in the set.
    assert status[10] == f"set 6 | {n} frames | 0 fps"
    assert status[45] == f"set 6 | {n + 2} frames | 0 fps"
    assert status[-1] == f"set 6 | {n + 3} frames | 0 fps"
    assert len(store.list_frames(images / "set6")) == n + 3


def test_each_bkg_claims_the_set_after_the_highest_past_gaps_and_folders_only_named_like_sets(tmp_path, dev_root,
                                                                                          copy_set):
    # Set numbers are never reused nor filled in: beside set3 alone the first Bkg makes set4, not set1 or
    # set2; set07 or Set12 are not sets. Each set's frames number from 0; the session lists each set once.
    images = copy_set(3)
    for name in ("set07", "Set12", "set9x"):
        shutil.copytree(images / "set3", images / name)
    clock = Clock()
    events = []
    keys = {0: [ord("b")], 40: [ord("s")], 80: [ord("s")], 120: [ord("b")], 160: [ord("s")], 200: [ord("q")]}
    ctx = run_capture(ListSource(frames(dev_root), clock), ScriptWindow(keys), controller(clock), images,
                      clock=clock, log=events.append)
    assert [(e["kind"], e["set"], e.get("frame")) for e in events if e["event"] == "saved"] == [
        ("background", 4, None), ("frame", 4, 0), ("frame", 4, 1), ("background", 5, None), ("frame", 5, 0)]
    assert (ctx.sets, ctx.set_number, ctx.frames_saved) == ([4, 5], 5, 1)
    assert sorted(p.name for p in (images / "set4").iterdir()) == ["0.png", "1.png", "bkg.png"]
    assert sorted(p.name for p in images.iterdir()) == ["Set12", "set07", "set3", "set4", "set5", "set9x"]
    for name in ("set07", "Set12", "set9x"):
        assert sorted(p.name for p in (images / name).iterdir()) == sorted(p.name for p in (images / "set3").iterdir())


class SlowListSource(ListSource):
    """Also takes 5 ms of real time per frame, so a pose worker thread gets to run."""

    def read(self):
        time.sleep(0.005)
        return super().read()


def test_threaded_pose_presses_with_the_newest_palms(tmp_path, dev_root):
    clock = Clock()
    sav = default_layout(W, H)[1]
    pose = FakePose([(sav.x, sav.y)], cost=0.01)
    events = []
    window = ScriptWindow({})
    run_capture(SlowListSource(frames(dev_root), clock, limit=60), window, controller(clock, set_number=3),
                tmp_path, pose=pose, clock=clock, log=events.append, pose_async=True)
    assert 1 <= pose.calls <= 60
    assert [(e["button"], e["by"]) for e in events if e["event"] == "pressed"] == [("sav", "palm")]


def test_background_pose_skips_to_the_newest_frame_and_reports_its_palms():
    """Frames offered while pose is busy replace each other: the next call gets the newest one,
    and palms() then gives that frame's palms."""
    started, release = threading.Event(), threading.Event()
    seen = []

    class MarkerPose:  # one palm at x = the frame's marker value; the first call waits to be let go
        def palms(self, frame):
            seen.append(int(frame[0, 0, 0]))
            started.set()
            if len(seen) == 1:
                release.wait(5)
            return [Palm(float(frame[0, 0, 0]), 1.0, "left", 1.0)]

    def frame(marker):
        return np.full((4, 4, 3), marker, np.uint8)

    pose = BackgroundPose(MarkerPose())
    try:
        assert pose.palms() == []
        pose.submit(frame(1))
        assert started.wait(5)
        for marker in (2, 3, 4):  # offered while the first call runs
            pose.submit(frame(marker))
        release.set()
        deadline = time.monotonic() + 5
        while pose.calls < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert seen == [1, 4] and pose.calls == 2
        assert [p.x for p in pose.palms()] == [4.0]
    finally:
        pose.close()


def test_threaded_pose_failure_is_raised_and_edges_released(tmp_path, dev_root):
    class Broken:
        def palms(self, frame):
            raise RuntimeError("pose broke")

    clock = Clock()
    source = SlowListSource(frames(dev_root), clock, limit=200)
    window = ScriptWindow({})
    with pytest.raises(RuntimeError, match="pose broke"):
        run_capture(source, window, controller(clock), tmp_path, pose=Broken(), clock=clock, pose_async=True)
    assert source.released and window.closed


def test_an_unplugged_camera_ends_capture_with_its_error_and_keeps_the_set(tmp_path, dev_root):
    from humanseg.sources import CameraStopped

    class DyingCamera(ListSource):
        def read(self):
            if self.reads >= self.limit:
                raise CameraStopped("camera 0 gave no frame for 2 s (unplugged, or in use by another program?)")
            return super().read()

    clock = Clock()
    source = DyingCamera(frames(dev_root), clock, limit=50)
    window = ScriptWindow({0: [ord("b")]})  # the background is saved at frame 31, then the camera stops
    with pytest.raises(CameraStopped, match="camera 0 gave no frame"):
        run_capture(source, window, controller(clock), tmp_path, clock=clock)
    assert source.released and window.closed
    assert store.scan_set(tmp_path, 1).bkg_path.is_file()


def test_pose_weights_errors_suggest_no_pose_only_where_there_is_one(tmp_path):
    # benchmarks/capture_loop.py said "or run with --no-pose", an option it does not have.
    from humanseg.capture import load_pose
    from humanseg.errors import HumansegError

    missing = tmp_path / "none.pth"
    for no_pose in (True, False):
        with pytest.raises(HumansegError) as err:
            load_pose(str(missing), None, no_pose=no_pose)
        assert err.value.exit_code == 2 and str(err.value).startswith(f"--posenet-weights {missing}: no such file; "
                                                                       f"to get weights, put mobilenet_v1_050.pth in ")
        assert str(err.value).endswith("or run with --no-pose (mouse and keys)") is no_pose


def test_a_failed_posenet_download_keeps_its_runtime_exit_code(tmp_path, monkeypatch):
    # A download that brought no TF.js checkpoint is a runtime failure (exit 1), not bad input (2).
    from humanseg.capture import load_pose
    from humanseg.errors import HumansegError

    www = tmp_path / "www"
    (www / "mobilenet_v1_050").mkdir(parents=True)
    (www / "mobilenet_v1_050" / "manifest.json").write_text("[]")
    monkeypatch.setenv("HUMANSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HUMANSEG_POSENET_WEIGHTS", raising=False)
    monkeypatch.setenv("HUMANSEG_POSENET_URL", www.as_uri() + "/")
    with pytest.raises(HumansegError) as err:
        load_pose(None, None)
    assert err.value.exit_code == 1
    manifest = f"{www.as_uri()}/mobilenet_v1_050/manifest.json"
    assert str(err.value).startswith(f"{manifest}: not a TF.js checkpoint manifest; to get weights, ")
    assert not (tmp_path / "cache" / "posenet" / "mobilenet_v1_050.pth").exists()


def test_a_slow_pace_draws_the_palms_of_the_frame_on_screen(tmp_path, monkeypatch):
    # With --max-fps and PoseNet in its worker, the palms of a frame came after it was drawn and were
    # shown only with the next frame: for the whole pace, the dots of the frame before.
    from humanseg import capture

    class PoseOfTheFrame:
        """A palm at x = the frame's grey level: whose palm is drawn says which frame it came from."""

        def palms(self, frame):
            time.sleep(0.05)
            return [Palm(float(frame[0, 0, 0]), 100.0, "left", 1.0)]

    drawn = []  # (frame shown, palms drawn with it)

    def render(frame, controller, palms, context, fps):
        drawn.append((int(frame[0, 0, 0]), [round(x) for x, _ in palms]))
        return frame, 1.0

    monkeypatch.setattr(capture, "render", render)
    clock = Clock()

    class Window(ScriptWindow):
        def poll(self, wait_ms=1):
            time.sleep(wait_ms / 1000)  # real time, for the worker to answer
            clock.now += wait_ms / 1000
            return [], []

    shots = [np.full((H, W, 3), level, np.uint8) for level in (40, 120, 200)]
    run_capture(ListSource(shots, clock, limit=3), Window({}), controller(clock), tmp_path, clock=clock,
                pose=PoseOfTheFrame(), pose_async=True, max_fps=2.0)
    # The last drawing of each frame (before the next is read) shows its own palm (One-Euro smoothing
    # moves a dot at most a little toward the frame before's).
    last = {}
    for level, xs in drawn:
        last[level] = xs
    assert set(last) == {40, 120, 200}
    for level, xs in last.items():
        assert len(xs) == 1 and abs(xs[0] - level) < 20, (level, xs)


def test_the_status_line_counts_frames_and_a_slow_rate():
    from humanseg.capture import CaptureContext, status_text

    ctx = CaptureContext(images_root=".", set_number=3, frames_saved=1)
    assert status_text(ctx, 29.6) == "set 3 | 1 frame | 30 fps"  # "1 frames"
    ctx.frames_saved = 2
    assert status_text(ctx, 0.5) == "set 3 | 2 frames | 0.5 fps"  # "0 fps" at --max-fps 0.5
    assert status_text(CaptureContext(images_root="."), 0.0) == "no set yet: press Bkg | 0 fps"
    # Just after Bkg: the new set, no frame yet ("no set yet" while frames were 0); 10 fps is whole.
    assert status_text(CaptureContext(images_root=".", set_number=2), 10.0) == "set 2 | 0 frames | 10 fps"


def test_the_fps_is_the_rate_over_the_last_frames_only():
    meter = FpsMeter(size=3)
    assert meter.tick(0.0) == 0.0  # one frame: no rate yet
    assert meter.tick(1.0) == pytest.approx(1.0)
    assert meter.tick(1.2) == pytest.approx(2 / 1.2)
    assert meter.tick(2.0) == pytest.approx(2.0)  # the frame at 0 s has left the window: 2 frames in 1 s


def test_at_a_slow_pace_bkg_saves_the_frame_on_screen(tmp_path, dev_root):
    # Bkg with -b 0 at --max-fps 0.2: the key ended the wait, the next frame was read and saved (a
    # frame never shown: the person, where the empty room was on screen); a stray key skipped a frame.
    clock = Clock()
    room, person = cv2.imread(str(dev_root / "set5" / "bkg.png")), cv2.imread(str(dev_root / "set5" / "0.png"))

    class Window(ScriptWindow):
        def poll(self, wait_ms=1):
            clock.now += wait_ms / 1000
            at = clock.now
            if 2.0 <= at < 2.0 + wait_ms / 1000:
                return [ord("x")], []  # a key that does nothing
            if 3.0 <= at < 3.0 + wait_ms / 1000:
                return [ord("b")], []
            return ([ord("q")] if at > 12 else []), []

    ctrl = CaptureController(default_layout(W, H), bkg_seconds=0, sav_seconds=1, clock=clock)
    source, events = ListSource([room, person], clock, limit=10), []
    # With the live overlay's hook (asked again while the frame stays on screen), still the clean frame.
    run_capture(source, Window({}), ctrl, tmp_path, clock=clock, log=events.append, max_fps=0.2,
                on_frame=lambda frame, ctx: frame // 2)
    saved = next(e for e in events if e["event"] == "saved")
    assert saved["kind"] == "background" and saved["source_frame"] == 0 and saved["time"] < 3.1
    assert np.array_equal(cv2.imread(str(tmp_path / "set1" / "bkg.png")), cv2.flip(room, 1))
    assert source.reads == 3  # frames at 0, 5 and 10 s: the keys skipped none


def test_max_frames_stops_after_that_many_frames_and_releases_the_edges(tmp_path, dev_root):
    # The benchmarks' bound: no key, no end of the source; nothing saved, so the session has no set.
    clock = Clock()
    source, window = ListSource(frames(dev_root), clock), ScriptWindow({})
    ctx = run_capture(source, window, controller(clock), tmp_path, clock=clock, max_frames=7)
    assert source.reads == 7 and len(window.shown) == 7 and source.released and window.closed
    assert ctx.frame_index == 6 and ctx.set_number is None and ctx.set_path is None
    assert list(tmp_path.iterdir()) == []
