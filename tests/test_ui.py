"""The capture screen's state machines driven with a fake clock: no window, no camera."""

from __future__ import annotations

import numpy as np
import pytest

from humanseg.ui import draw
from humanseg.ui.buttons import RELEASE_FACTOR, RELEASE_SECONDS, Button, DwellTracker, button_at, default_layout
from humanseg.ui.controller import NEED_BACKGROUND, CaptureController
from humanseg.ui.countdown import Countdown


class FakeClock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def centre(controller, name):
    b = next(b for b in controller.buttons if b.name == name)
    return (b.x, b.y)


def names(events):
    return [(e.name, e.fields.get("button")) for e in events]


def make(clock, **kw):
    return CaptureController(default_layout(640, 480), clock=clock, **{"bkg_seconds": 3, "sav_seconds": 2, **kw})


def run_palm(controller, clock, palm, seconds, step=1 / 30):
    """Hold a palm for `seconds` at 30 fps; returns all events."""
    events = []
    for _ in range(int(round(seconds / step))):
        clock.advance(step)
        events += controller.update([palm] if palm else [])
    return events


# ---------------------------------------------------------------- layout

def test_layout_follows_the_original_positions_and_scales_with_the_frame():
    for w, h in ((640, 480), (1280, 720)):
        buttons = {b.name: b for b in default_layout(w, h)}
        assert (buttons["ext"].x, buttons["ext"].y) == pytest.approx((0.85 * w, 0.15 * h))
        assert (buttons["sav"].x, buttons["sav"].y) == pytest.approx((0.85 * w, 0.45 * h))
        assert (buttons["bkg"].x, buttons["bkg"].y) == pytest.approx((0.15 * w, 0.45 * h))
        assert all(b.radius == pytest.approx(0.06 * w) for b in buttons.values())
        assert button_at(buttons.values(), 0.85 * w + 0.05 * w, 0.45 * h).name == "sav"
        assert button_at(buttons.values(), w / 2, h / 2) is None


def test_where_circles_overlap_the_nearest_button_is_hit():
    # On a frame wider than 2.5:1 the Ext and Sav circles overlap (0.3 h apart, 0.12 w across):
    # a click in both is the button it is nearer, whichever comes first in the layout.
    w, h = 1000, 300
    buttons = {b.name: b for b in default_layout(w, h)}
    x, y_between = 0.85 * w, 0.30 * h  # halfway between the two centres
    for dy, name in ((-10, "ext"), (10, "sav")):
        assert buttons["ext"].contains(x, y_between + dy) and buttons["sav"].contains(x, y_between + dy)
        for order in (list(buttons.values()), list(reversed(buttons.values()))):
            assert button_at(order, x, y_between + dy).name == name

# ---------------------------------------------------------------- dwell and hysteresis

def test_palm_presses_only_after_the_dwell():
    clock = FakeClock()
    c = make(clock, set_number=1)
    events = run_palm(c, clock, centre(c, "sav"), 0.25)
    assert not [e for e in events if e.name == "pressed"]
    assert 0.5 < c.dwell_progress("sav") < 1.0
    events = run_palm(c, clock, centre(c, "sav"), 0.1)
    assert names(events)[:2] == [("pressed", "sav"), ("countdown_started", "sav")]
    assert events[0].fields["by"] == "palm"


def test_a_resting_palm_presses_once_and_rearms_only_after_leaving():
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    events = run_palm(c, clock, centre(c, "sav"), 5.0)
    assert [e.name for e in events].count("pressed") == 1
    assert c.dwell_progress("sav") == 0.0  # no dwell ring while the hand that pressed it rests there
    events = run_palm(c, clock, (320, 240), 0.2)  # leaves the button
    events += run_palm(c, clock, centre(c, "sav"), 0.5)  # comes back: second press cancels
    assert names(events) == [("pressed", "sav"), ("countdown_cancelled", "sav")]


def test_a_palm_missed_for_a_few_frames_has_not_left_the_button():
    # A latched button re-armed the frame PoseNet missed the resting palm, so when it was found again
    # it pressed a second time and cancelled its own countdown.
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    sav, far = centre(c, "sav"), (100, 400)
    events = run_palm(c, clock, sav, 1.0)
    events += run_palm(c, clock, None, 0.1)  # no palm for 3 frames
    events += run_palm(c, clock, sav, 1.0)
    events += run_palm(c, clock, far, 0.1)  # only the other hand, far away, for 3 frames
    events += run_palm(c, clock, sav, 1.0)
    assert names(events) == [("pressed", "sav"), ("countdown_started", "sav")]
    # Away longer than RELEASE_SECONDS, it has left: coming back presses again (and cancels).
    assert RELEASE_SECONDS <= 0.2
    events = run_palm(c, clock, None, 0.2) + run_palm(c, clock, sav, 0.5)
    assert names(events) == [("pressed", "sav"), ("countdown_cancelled", "sav")]


def test_a_resting_palm_missed_by_slow_pose_answers_presses_once():
    # The release was measured in seconds only: at 12 pose answers a second two missed answers
    # (0.17 s) re-armed Sav, and one slow call that found nothing (0.7 s, its empty answer fed with
    # every frame meanwhile) did too: the resting hand cancelled its own countdown.
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    sav = centre(c, "sav")
    events, answer = [], 0
    for second in range(3):
        for k in range(12):  # 12 answers a second; answers 5 and 6 of each second miss the palm
            answer += 1
            clock.advance(1 / 12)
            events += c.update([] if k in (5, 6) else [sav], answer=answer)
    answer += 1
    for _ in range(14):  # one slow answer with no palm, shown for 0.7 s of 20 fps frames
        clock.advance(1 / 20)
        events += c.update([], answer=answer)
    for _ in range(12):
        answer += 1
        clock.advance(1 / 12)
        events += c.update([sav], answer=answer)
    assert names(events) == [("pressed", "sav"), ("countdown_started", "sav")]
    # A hand that left for four slow answers (5 a second) has left: coming back presses again.
    for _ in range(4):
        answer += 1
        clock.advance(1 / 5)
        events = c.update([], answer=answer)
        assert events == []
    events = []
    for _ in range(3):
        answer += 1
        clock.advance(1 / 5)
        events += c.update([sav], answer=answer)
    assert names(events) == [("pressed", "sav"), ("countdown_cancelled", "sav")]


def test_a_resting_palm_does_not_press_again_when_the_frame_changes_size():
    # relayout made a fresh tracker: the palm on Sav when the source changed size pressed it again
    # and cancelled the countdown it had started.
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    events = run_palm(c, clock, centre(c, "sav"), 1.0)
    c.relayout(default_layout(320, 240))
    events += run_palm(c, clock, centre(c, "sav"), 1.0)
    assert names(events) == [("pressed", "sav"), ("countdown_started", "sav")]
    assert c.active == "sav"
    events = run_palm(c, clock, None, 0.3) + run_palm(c, clock, centre(c, "sav"), 0.5)
    assert names(events) == [("pressed", "sav"), ("countdown_cancelled", "sav")]


def test_palm_jitter_at_the_button_edge_does_not_fire_twice():
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    sx, sy = centre(c, "sav")
    r = c.buttons[1].radius
    # Alternates just inside and just outside the circle (well within the release radius).
    inside, outside = (sx - 0.95 * r, sy), (sx - 1.1 * r, sy)
    assert 1.1 < RELEASE_FACTOR
    events = []
    for i in range(300):
        clock.advance(1 / 30)
        events += c.update([inside if i % 2 == 0 else outside])
    assert [e.name for e in events].count("pressed") == 1
    assert c.active == "sav"


def test_passing_through_a_button_faster_than_the_dwell_does_not_press():
    clock = FakeClock()
    c = make(clock, set_number=1)
    bx, by = centre(c, "bkg")
    events = []
    # 480 px/s: the release circle (2 * 1.3 * 38 px wide) is crossed in about 0.2 s < 0.3 s dwell.
    for i in range(20):
        clock.advance(1 / 30)
        events += c.update([(bx - 150 + 16 * i, by)])
    assert not events


def test_dwell_tracker_rejects_negative_dwell_and_two_palms_count_as_one():
    with pytest.raises(ValueError):
        DwellTracker([Button("sav", 0, 0, 10)], dwell=-1)
    t = DwellTracker([Button("sav", 0, 0, 10)], dwell=0.3)
    assert t.update([(0, 0), (1, 1)], 0.0) == []
    assert t.update([(0, 0), (1, 1)], 0.31) == ["sav"]
    assert t.update([(0, 0)], 0.5) == []


def test_a_palm_back_on_a_button_once_it_re_armed_dwells_again():
    t = DwellTracker([Button("sav", 0, 0, 10)], dwell=0.3)
    assert t.update([(0, 0)], 0.0) == [] and t.update([(0, 0)], 0.3) == ["sav"]
    for k in range(1, 5):  # gone for 4 answers over 0.2 s: armed again
        assert t.update([], 0.3 + 0.05 * k, answer=k) == []
    assert not t.latched["sav"] and t.progress("sav", 0.5) == 0.0
    # Back at 0.55: a dwell from then (the one that pressed it before does not carry over).
    assert t.update([(0, 0)], 0.55, answer=5) == [] and t.progress("sav", 0.7) == pytest.approx(0.5)
    assert t.update([(0, 0)], 0.8, answer=6) == []
    assert t.update([(0, 0)], 0.86, answer=7) == ["sav"]


def test_a_new_layout_keeps_latches_and_the_pose_answer_they_count_from():
    old = DwellTracker([Button("sav", 0, 0, 10)], dwell=0.3)
    assert old.update([(0, 0)], 0.0, answer=1) == [] and old.update([(0, 0)], 0.3, answer=2) == ["sav"]
    new = DwellTracker([Button("sav", 50, 50, 20)], dwell=0.3)  # the frame changed size
    new.carry_latches(old)
    assert new.latched["sav"]
    new.update([], 0.4, answer=2)  # the same answer fed again (pose still computing): not a miss
    assert new.missed["sav"] == 0
    for k in range(3, 7):
        new.update([], 0.4 + 0.05 * k, answer=k)
    assert not new.latched["sav"]  # four missed answers, over 0.15 s: armed again


# ---------------------------------------------------------------- countdowns and saving

def test_countdown_shows_whole_seconds_and_ends_on_time():
    cd = Countdown(3, start=10.0)
    assert [cd.shown(t) for t in (10.0, 10.5, 11.0, 12.2, 12.99, 13.0)] == [3, 3, 2, 1, 1, 0]
    assert not cd.done(12.99) and cd.done(13.0)
    assert cd.remaining(20.0) == 0.0 and cd.shown(20.0) == 0  # never below 0 once it has ended
    with pytest.raises(ValueError):
        Countdown(-1, 0)


def test_background_countdown_end_asks_for_exactly_one_capture():
    clock = FakeClock()
    c = make(clock)
    events = c.update(keys=[ord("b")])
    assert names(events) == [("pressed", "bkg"), ("countdown_started", "bkg")]
    assert events[1].fields["seconds"] == 3
    captures = []
    for _ in range(200):  # 200 frames over 6.6 s
        clock.advance(1 / 30)
        captures += [e for e in c.update() if e.name == "capture"]
        if c.countdown is not None:
            assert c.countdown_shown() in (1, 2, 3)
    assert len(captures) == 1 and captures[0].fields == {"button": "bkg", "kind": "background"}
    assert c.active is None and c.countdown_shown() is None
    saved = c.saved("background", "images/set4/bkg.png", 4)
    assert saved.as_dict() == {"event": "saved", "kind": "background", "set": 4, "path": "images/set4/bkg.png"}
    assert c.set_number == 4 and c.frames_saved == 0
    assert c.notices() == ["saved images/set4/bkg.png"]
    clock.advance(5)
    assert c.notices() == []


def test_capture_waits_the_full_countdown():
    clock = FakeClock()
    c = make(clock, set_number=2, frames_saved=3)
    c.update(keys=[ord("s")])
    clock.advance(1.99)
    assert [e.name for e in c.update()] == []
    clock.advance(0.02)
    assert names(c.update()) == [("capture", "sav")]
    c.saved("frame", "images/set2/3.png", 2, 3)
    assert c.frames_saved == 4


def test_pressing_a_running_button_again_cancels_it():
    clock = FakeClock()
    c = make(clock)
    bkg = centre(c, "bkg")
    c.update(clicks=[bkg])
    clock.advance(1.0)
    events = c.update(clicks=[bkg])
    assert names(events) == [("pressed", "bkg"), ("countdown_cancelled", "bkg")]
    clock.advance(10)
    assert c.update() == []
    assert c.set_number is None


def test_set_0_continued_saves_its_frames():
    # main.py --set 0 is a set like any other (set0/ is the layout's too): its first s saves, where a
    # set number taken for false would say "capture a background first" for ever.
    clock = FakeClock()
    c = make(clock, set_number=0)
    assert names(c.update(keys=[ord("s")])) == [("pressed", "sav"), ("countdown_started", "sav")]
    clock.advance(2.1)
    assert [(e.name, e.fields) for e in c.update()] == [("capture", {"button": "sav", "kind": "frame"})]


def test_save_before_background_says_capture_a_background_first():
    clock = FakeClock()
    c = make(clock)
    events = c.update(clicks=[centre(c, "sav")])
    assert names(events) == [("pressed", "sav"), ("message", None)]
    assert events[1].fields["text"] == NEED_BACKGROUND
    assert c.notices() == [NEED_BACKGROUND]
    clock.advance(10)
    assert c.update() == [] and c.active is None
    # ... also while the first background's countdown runs: that goes on, and saves the background.
    assert names(c.update(keys=[ord("b")])) == [("pressed", "bkg"), ("countdown_started", "bkg")]
    clock.advance(1)
    events = c.update(keys=[ord("s")])
    assert names(events) == [("pressed", "sav"), ("message", None)] and c.active == "bkg"
    clock.advance(2.1)
    assert [(e.name, e.fields) for e in c.update()] == [("capture", {"button": "bkg", "kind": "background"})]


def test_continuing_a_set_allows_save_at_once():
    clock = FakeClock()
    c = make(clock, set_number=7, frames_saved=2)
    assert names(c.update(keys=[ord("s")])) == [("pressed", "sav"), ("countdown_started", "sav")]


def test_a_new_press_replaces_the_running_countdown():
    clock = FakeClock()
    c = make(clock, set_number=1)
    c.update(keys=[ord("s")])
    events = c.update(keys=[ord("b")])
    assert names(events) == [("pressed", "bkg"), ("countdown_cancelled", "sav"), ("countdown_started", "bkg")]
    clock.advance(3)
    assert names(c.update()) == [("capture", "bkg")]


@pytest.mark.parametrize("key", [ord("q"), 27])
def test_quit_keys_and_ext_button(key):
    clock = FakeClock()
    c = make(clock)
    c.update(keys=[ord("b")])
    events = c.update(keys=[key])
    assert names(events) == [("pressed", "ext"), ("quit", None)]
    assert c.quit
    clock.advance(10)
    assert not [e for e in c.update() if e.name == "capture"]  # nothing is saved after quitting
    c2 = make(FakeClock())
    assert names(c2.update(clicks=[centre(c2, "ext")]))[-1] == ("quit", None)


def test_clicks_outside_buttons_and_unknown_keys_do_nothing():
    c = make(FakeClock())
    assert c.update(clicks=[(320, 240), (0, 0)], keys=[ord("x"), 255, -1]) == []


@pytest.mark.parametrize("code, key", [
    (-1, -1), (ord("b"), ord("b")), (ord("B"), ord("b")), (27, 27), (13, 13),
    (ord("A"), ord("a")), (ord("Z"), ord("z")), (ord("@"), ord("@")), (ord("["), ord("[")),  # (Z: undo)
    (0xFF62, -1),  # X's Execute key: its low byte is "b", which cv2.waitKey reported
    (0xFF63, -1),  # Insert ("c")
    (0xFF71, -1), (0x1008FF1B, -1), (0x10073, -1),  # "q", Esc, "s" in their low bytes
    (0xFF0D, 13), (0xFF8D, 13), (0xFF1B, 27), (0xFF08, 8),  # GTK's Return, keypad Enter, Esc, Backspace
])
def test_keys_are_read_by_their_whole_code(monkeypatch, code, key):
    import cv2

    from humanseg.display import read_key
    from humanseg.ui import controller

    monkeypatch.setattr(cv2, "waitKeyEx", lambda wait_ms: code)
    assert read_key(1) == key
    c = make(FakeClock())
    pressed = names(c.update(keys=[read_key(1)]))
    assert pressed[:1] == ([("pressed", controller.KEY_BUTTONS[key])] if key in controller.KEY_BUTTONS else [])


def _hold(controller, clock, key, seconds, frame=1 / 30, delay=0.66, rate=30, then=0.5):
    """Hold a key for `seconds` as X repeats it (the press, then after `delay` `rate` times a second),
    the window read once a `frame`, then `then` seconds more of frames without keys; returns the events."""
    start, events, repeats = clock.now, [], [0.0]
    t = delay
    while t < seconds:
        repeats.append(t)
        t += 1 / rate
    elapsed = 0.0
    while elapsed < seconds + then:
        elapsed += frame
        due = [r for r in repeats if r < elapsed]
        repeats = repeats[len(due):]
        clock.now = start + elapsed
        events += controller.update(keys=[ord(key)] * len(due))
    return events


def test_a_held_key_presses_its_button_once():
    # Holding s or b: each of X's repeats (25-30 a second after 0.66 s) was a press, starting and
    # cancelling countdowns over and over; with -b 0 each repeat made a new set (23 in 1.5 s).
    for frame in (1 / 30, 1 / 15, 1 / 8, 1 / 3):  # a slow frame rate reads the repeats in bunches
        for delay, rate in ((0.66, 30), (0.25, 50), (1.5, 20), (0.5, 10)):
            clock = FakeClock()
            c = make(clock, bkg_seconds=30)
            events = _hold(c, clock, "b", 2.0, frame=frame, delay=delay, rate=rate)
            assert names(events) == [("pressed", "bkg"), ("countdown_started", "bkg")], (frame, delay, rate)
    # A second press, not held, still cancels: soon after the first (it waits a moment to be told from
    # a repeat) and later.
    for apart in (0.15, 0.3, 1.0, 2.5):
        clock = FakeClock()
        c = make(clock, bkg_seconds=30)
        events = _hold(c, clock, "b", 0.01, then=apart - 0.01) + _hold(c, clock, "b", 0.01)
        assert names(events) == [("pressed", "bkg"), ("countdown_started", "bkg"),
                                 ("pressed", "bkg"), ("countdown_cancelled", "bkg")], apart
    # A second press that cancels, then held: its repeats are its own, not a third press (a repeat
    # was measured from the first press, over 2 s before, and started the countdown again).
    clock = FakeClock()
    c = make(clock, bkg_seconds=30)
    events = _hold(c, clock, "b", 0.01, then=1.49) + _hold(c, clock, "b", 1.5)
    assert names(events) == [("pressed", "bkg"), ("countdown_started", "bkg"),
                             ("pressed", "bkg"), ("countdown_cancelled", "bkg")]
    # Repeats a busy machine held back (none for 0.2 s, over REPEAT_GAP): right after the first repeat,
    # and in a hold past REPEAT_DELAY after the press. Each late repeat counted as a second press, and
    # cancelled the countdown (a loaded test run's held s saved twice).
    for stall_at in (0.66, 2.5):
        clock = FakeClock()
        c = make(clock, bkg_seconds=30)
        repeats = [0.0] + [t for t in np.arange(0.66, 3.0, 1 / 30) if not stall_at < t < stall_at + 0.2]
        start, events, elapsed = clock.now, [], 0.0
        while elapsed < 3.5:
            elapsed += 1 / 30
            due = [r for r in repeats if r < elapsed]
            repeats = repeats[len(due):]
            clock.now = start + elapsed
            events += c.update(keys=[ord("b")] * len(due))
        assert names(events) == [("pressed", "bkg"), ("countdown_started", "bkg")], stall_at
    # Other keys are not held up by a held one: b held, s pressed meanwhile.
    clock = FakeClock()
    c = make(clock, bkg_seconds=30, set_number=1)
    c.update(keys=[ord("b")])
    for step in range(1, 40):
        clock.advance(1 / 30)
        c.update(keys=[ord("b")] + ([ord("s")] if step == 20 else []))
    assert c.active == "sav"  # (the newer press wins, as ever)


# ---------------------------------------------------------------- drawing

@pytest.mark.parametrize("size", [(640, 480), (1280, 720)])
def test_button_labels_fit_inside_their_circle(size):
    w, h = size
    for b in default_layout(w, h):
        image = np.zeros((h, w, 3), np.uint8)
        draw.draw_button(image, b)
        # White pixels are the ring and the label; nothing white lies outside the ring (a label too
        # wide or off-centre would), and the label (inside the ring) is centred and readable.
        ys, xs = np.nonzero((image > 240).all(axis=2))
        d = np.hypot(xs - b.x, ys - b.y)
        ring = max(1, round(b.radius) // 20)
        assert (d <= b.radius + ring + 1).all()
        inside = d < b.radius - ring - 1
        assert inside.sum() > 0.002 * w * h * 0.06 ** 2 * 3.14 * 10
        text_w = xs[inside].max() - xs[inside].min()
        assert 0.9 * b.radius < text_w < 1.7 * b.radius
        assert text_w > 30  # at 640x480 the label is at least 30 px wide
        assert abs((xs[inside].max() + xs[inside].min()) / 2 - b.x) < 0.1 * b.radius
        assert abs((ys[inside].max() + ys[inside].min()) / 2 - b.y) < 0.15 * b.radius


def test_buttons_are_semi_transparent_and_turn_green_when_active():
    image = np.full((480, 640, 3), 100, np.uint8)
    b = default_layout(640, 480)[1]
    edge = (int(b.y), int(b.x - 0.8 * b.radius))  # inside the disc, left of the label
    draw.draw_button(image, b)
    idle = image[edge].astype(int)
    assert 100 < idle[0] < 230 and idle[2] < 100  # blue, with the grey still showing through
    image[:] = 100
    draw.draw_button(image, b, active=True)
    active = image[edge].astype(int)
    assert active[1] > 130 and active[0] < 100 and active[2] < 100
    assert (image[0:10, 0:10] == 100).all()  # nothing drawn outside the button


def test_a_long_notice_is_shortened_in_the_middle_not_shrunk_out_of_sight():
    # "saved PATH" of a deeply nested --images was drawn about 6 px tall across the frame.
    import cv2

    path = "/home/me/captures/of/an/afternoon/with/a/rather/deeply/nested/folder/images/set1/bkg.png"
    text = draw.shortened(f"saved {path}", 0.9 * 320, 1)
    assert text.startswith("saved ...") and text.endswith("/set1/bkg.png")
    assert cv2.getTextSize(text, draw.FONT, draw.MIN_TEXT_SCALE, 1)[0][0] <= 0.9 * 320
    assert draw.shortened("saved set1/bkg.png", 0.9 * 640, 1) == "saved set1/bkg.png"
    # A failure keeps what it says: only the path loses its start ("save ...ome/me/..." read as a save).
    failed = draw.shortened(f"save failed: {path}: No space left on device", 0.9 * 640, 1)
    assert failed.startswith("save failed: ...") and failed.endswith("bkg.png: No space left on device")
    assert draw.shortened("x" * 400, 100, 1).endswith("...")
    image = np.zeros((240, 320, 3), np.uint8)
    draw.draw_notices(image, [f"saved {path}"])
    rows = np.flatnonzero((image.max(axis=2) > 200).any(axis=1))
    assert rows.size and rows.max() - rows.min() + 1 >= 8  # drawn at a readable height


def test_a_second_background_starts_a_new_set_counted_from_zero():
    # The frames saved count went on from the earlier set's (the status line, main.py's last line).
    clock = FakeClock()
    c = make(clock)
    c.saved("background", "images/set1/bkg.png", 1)
    for k in range(3):
        c.saved("frame", f"images/set1/{k}.png", 1, k)
    assert (c.set_number, c.frames_saved) == (1, 3)
    c.saved("background", "images/set2/bkg.png", 2)
    assert (c.set_number, c.frames_saved) == (2, 0)


def test_the_capture_window_counts_each_click_once_and_in_frame_pixels():
    # A click is its button-up: Qt reports a quick second click as a double click (and a button-down),
    # so counting downs lost it; one click must not count twice either.
    import cv2

    from humanseg.ui.window import CvWindow

    window = CvWindow.__new__(CvWindow)  # (its mouse handling alone: no window opened)
    window._clicks, window.zoom, window._size = [], 1.0, (640, 480)
    for event, x in ((cv2.EVENT_LBUTTONDOWN, 100), (cv2.EVENT_LBUTTONUP, 100), (cv2.EVENT_LBUTTONDBLCLK, 110),
                     (cv2.EVENT_LBUTTONUP, 110), (cv2.EVENT_MOUSEMOVE, 120), (cv2.EVENT_RBUTTONUP, 130)):
        window._on_mouse(event, x, 50, 0, None)
    assert window._clicks == [(100, 50), (110, 50)]
    # Shown twice as large: the frame's pixel under the pointer, kept on the frame at its edges.
    window._clicks, window.zoom, window._size = [], 2.0, (320, 240)
    for x, y in ((201, 101), (0, 0), (900, 700)):
        window._on_mouse(cv2.EVENT_LBUTTONUP, x, y, 0, None)
    assert window._clicks == [(100, 50), (0, 0), (319, 239)]


# ---------------------------------------------------------------- more: presses, latches, saves, drawing

def test_a_palm_only_in_the_release_ring_never_starts_a_dwell():
    # The release radius (1.3 radii) keeps a dwell going; it must not start one: a palm resting just
    # outside Sav's circle pressed it.
    clock = FakeClock()
    c = make(clock, set_number=1)
    sx, sy = centre(c, "sav")
    r = c.buttons[1].radius
    events = run_palm(c, clock, (sx - 1.2 * r, sy), 2.0)
    assert events == [] and c.dwell_progress("sav") == 0.0
    events = run_palm(c, clock, (sx - 0.9 * r, sy), 0.4)
    assert names(events)[:2] == [("pressed", "sav"), ("countdown_started", "sav")]


def test_four_fast_missed_answers_within_the_release_seconds_do_not_re_arm():
    # At 30 answers a second four misses take 0.13 s, under RELEASE_SECONDS: the button stays pressed,
    # both just after it fired and after the palm rested on it a while; a fifth (0.17 s) re-arms it.
    assert RELEASE_SECONDS == 0.15
    for rest in (0, 30):
        t = DwellTracker([Button("sav", 0, 0, 10)], dwell=0.3)
        answer, fired = 0, []
        for k in range(10 + rest):  # the dwell (fires at 0.3 s), then `rest` answers more on it
            answer += 1
            fired += t.update([(0, 0)], answer / 30, answer=answer)
        assert fired == ["sav"]
        for _ in range(4):
            answer += 1
            assert t.update([], answer / 30, answer=answer) == []
        assert t.latched["sav"], rest
        for _ in range(30):  # the palm found again: not another press
            answer += 1
            assert t.update([(0, 0)], answer / 30, answer=answer) == [], rest
        for _ in range(5):
            answer += 1
            t.update([], answer / 30, answer=answer)
        assert not t.latched["sav"], rest


def test_a_dwell_of_zero_presses_at_the_first_palm():
    t = DwellTracker([Button("sav", 0, 0, 10)], dwell=0)
    assert t.update([(1, 1)], 5.0) == ["sav"]
    clock = FakeClock()
    c = make(clock, set_number=1, dwell=0)
    clock.advance(1 / 30)
    assert names(c.update([centre(c, "sav")]))[:2] == [("pressed", "sav"), ("countdown_started", "sav")]


def test_a_new_layout_keeps_the_dwell_asked_for():
    # --dwell 1: after the source changed size the buttons pressed after the default 0.3 s.
    clock = FakeClock()
    c = make(clock, set_number=1, dwell=1.0)
    c.relayout(default_layout(320, 240))
    assert run_palm(c, clock, centre(c, "sav"), 0.6) == []
    events = run_palm(c, clock, centre(c, "sav"), 0.5)
    assert names(events)[:2] == [("pressed", "sav"), ("countdown_started", "sav")]


def test_a_palm_on_ext_quits():
    clock = FakeClock()
    c = make(clock)
    events = run_palm(c, clock, centre(c, "ext"), 0.5)
    assert [e.as_dict() for e in events] == [{"event": "pressed", "button": "ext", "by": "palm"},
                                             {"event": "quit", "by": "palm"}]
    assert c.quit


def test_keys_after_quit_in_the_same_frame_start_nothing():
    clock = FakeClock()
    c = make(clock, set_number=1)
    events = c.update(keys=[ord("q"), ord("b"), ord("s")])
    assert names(events) == [("pressed", "ext"), ("quit", None)]
    assert c.active is None and c.countdown_shown() is None


def test_the_first_frame_of_a_set_is_saved_as_frame_0():
    clock = FakeClock()
    c = make(clock, set_number=1)
    saved = c.saved("frame", "images/set1/0.png", 1, 0)
    assert saved.as_dict() == {"event": "saved", "kind": "frame", "set": 1, "path": "images/set1/0.png",
                               "frame": 0}


def test_a_failed_save_is_shown_above_the_last_save():
    clock = FakeClock()
    c = make(clock, set_number=1)
    c.saved("frame", "images/set1/0.png", 1, 0)
    clock.advance(0.5)
    event = c.failed("save failed: images/set1/1.png: No space left on device")
    assert event.as_dict() == {"event": "message", "text": "save failed: images/set1/1.png: No space left on device"}
    assert c.notices() == ["save failed: images/set1/1.png: No space left on device", "saved images/set1/0.png"]
    clock.advance(2.0)
    assert c.notices() == ["save failed: images/set1/1.png: No space left on device"]
    clock.advance(1.0)
    assert c.notices() == []


def _yellow(image):
    return (image[..., 0] < 80) & (image[..., 1] > 200) & (image[..., 2] > 200)


def test_the_dwell_arc_fills_clockwise_from_the_top():
    b = default_layout(640, 480)[1]
    image = np.full((480, 640, 3), 100, np.uint8)
    draw.draw_button(image, b, progress=0.0)
    assert not _yellow(image).any()
    draw.draw_button(image, b, progress=0.25)
    ys, xs = np.nonzero(_yellow(image))
    assert len(xs) > 20
    # A quarter: from 12 o'clock to 3 o'clock (the top-right quarter of the ring), not a full ring.
    assert (xs >= b.x - 3).all() and (ys <= b.y + 3).all()
    assert xs.max() > b.x + 0.8 * b.radius and ys.min() < b.y - 0.8 * b.radius


def test_the_countdown_is_a_large_yellow_number_above_what_it_will_save():
    h, w = 480, 640
    image = np.full((h, w, 3), 100, np.uint8)
    draw.draw_countdown(image, 3, "frame in 3 s - press again to cancel")
    ys, xs = np.nonzero(_yellow(image))
    assert ys.size and ys.max() - ys.min() > 0.1 * h  # drawn large
    assert 0.58 * h < ys.min() and ys.max() < 0.86 * h
    assert abs((xs.max() + xs.min()) / 2 - w / 2) < 0.05 * w  # centred
    white = (image > 200).all(axis=2)
    rows = np.flatnonzero(white[int(0.86 * h):].any(axis=1))
    assert rows.size >= 6  # the line saying what it will save, under the number
    assert white[int(0.86 * h):].sum(axis=0).astype(bool).sum() > 0.3 * w


def test_two_notices_are_drawn_one_under_the_other():
    h, w = 480, 640
    both = np.zeros((h, w, 3), np.uint8)
    draw.draw_notices(both, ["capture a background first", "saved images/set1/bkg.png"])
    first = np.zeros((h, w, 3), np.uint8)
    draw.draw_notices(first, ["capture a background first"])
    rows_both = np.flatnonzero((both > 200).all(axis=2).any(axis=1))
    rows_first = np.flatnonzero((first > 200).all(axis=2).any(axis=1))
    assert rows_both.min() == rows_first.min()
    assert rows_both.max() > rows_first.max() + 10  # the second band lies below the first
    assert np.array_equal(both[:rows_first.max() + 1], first[:rows_first.max() + 1])


def test_ext_is_red_and_the_others_blue():
    for b in default_layout(640, 480):
        image = np.full((480, 640, 3), 100, np.uint8)
        draw.draw_button(image, b)
        bgr = image[int(b.y), int(b.x - 0.8 * b.radius)].astype(int)
        if b.name == "ext":
            assert bgr[2] > 150 and bgr[0] < 100, bgr
        else:
            assert bgr[0] > 150 and bgr[2] < 100, bgr


def test_text_cut_at_its_end_still_fits():
    import cv2

    for width in (60, 100, 157):
        text = draw.shortened("x" * 400, width, 1)
        assert text.endswith("...") and cv2.getTextSize(text, draw.FONT, draw.MIN_TEXT_SCALE, 1)[0][0] <= width


def test_text_with_accents_or_other_scripts_is_drawn_one_sign_per_character():
    # OpenCV's fonts are ASCII: "saved cap ü/images/set1/2.png" showed "cap ??" (a "?" per UTF-8 byte).
    from humanseg.labeling.view import draw_help

    assert draw.drawable("saved cap ü/images/set1/2.png") == "saved cap u/images/set1/2.png"
    assert draw.drawable("Ærø 日本 ﬁle bad\udcff.png") == "?r? ?? file bad?.png"
    for paint in (lambda img, text: draw.draw_band_text(img, text, 240, 30),
                  lambda img, text: draw.draw_status(img, text), lambda img, text: draw_help(img, text)):
        accented, plain, doubled = (np.full((480, 640, 3), 90, np.uint8) for _ in range(3))
        paint(accented, "saved images ü/set1/2.png")
        paint(plain, "saved images u/set1/2.png")
        paint(doubled, "saved images ??/set1/2.png")  # what OpenCV drew for it
        assert np.array_equal(accented, plain) and not np.array_equal(accented, doubled)


def test_the_capture_window_hands_each_click_and_key_over_once(monkeypatch):
    import cv2

    from humanseg.ui.window import CvWindow

    window = CvWindow.__new__(CvWindow)
    window._clicks, window.zoom, window._size = [], 1.0, (640, 480)
    monkeypatch.setattr(cv2, "waitKeyEx", lambda wait_ms: -1)
    window._on_mouse(cv2.EVENT_LBUTTONUP, 100, 50, 0, None)
    assert window.poll() == ([], [(100, 50)])
    assert window.poll() == ([], [])  # a click presses once, not on every later frame
    queued = [ord("s")]
    monkeypatch.setattr(cv2, "waitKeyEx", lambda wait_ms: queued.pop(0) if queued else -1)
    assert window.poll() == ([ord("s")], [])
    # Every key waiting is read at once (one a call, a held key's repeats came in behind the frames).
    queued[:] = [ord("s"), ord("s"), ord("q")]
    assert window.poll() == ([ord("s"), ord("s"), ord("q")], []) and window.poll() == ([], [])


def test_the_capture_window_maps_clicks_through_what_it_showed(monkeypatch):
    import cv2

    from humanseg.ui.window import CvWindow

    shown = []
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.shape[:2]))
    window = CvWindow.__new__(CvWindow)
    window.name, window._clicks, window.zoom, window._size = "capture", [], 1.0, (0, 0)
    # A 1920x1080 camera is shown at 1280x720; a click maps back to the camera's pixels.
    window.show(np.zeros((1080, 1920, 3), np.uint8))
    assert shown[-1] == (720, 1280)
    window._on_mouse(cv2.EVENT_LBUTTONUP, 640, 360, 0, None)
    window._on_mouse(cv2.EVENT_LBUTTONUP, 1279, 719, 0, None)
    assert window._clicks == [(960, 540), (1919, 1079)]
    # A 320x240 frame drawn twice as large: clicks in its own pixels, kept on it at its edges.
    window._clicks = []
    window.show(np.zeros((480, 640, 3), np.uint8), scale=2.0)
    assert shown[-1] == (480, 640)
    window._on_mouse(cv2.EVENT_LBUTTONUP, 201, 101, 0, None)
    window._on_mouse(cv2.EVENT_LBUTTONUP, 900, 700, 0, None)
    assert window._clicks == [(100, 50), (319, 239)]
    # A strip one pixel wide and too tall for the screen is shown one pixel wide, not zero (a cv2.resize error).
    window.show(np.zeros((2000, 1, 3), np.uint8))
    assert shown[-1] == (720, 1)


def test_the_capture_window_is_open_while_visible(monkeypatch):
    import cv2

    from humanseg.ui.window import CvWindow

    window = CvWindow.__new__(CvWindow)
    window.name = "capture"
    for visible, expected in ((1.0, True), (0.0, False), (-1.0, False)):
        monkeypatch.setattr(cv2, "getWindowProperty", lambda name, prop: visible)
        assert window.is_open() is expected

    def gone(name, prop):
        raise cv2.error("window destroyed")
    monkeypatch.setattr(cv2, "getWindowProperty", gone)
    assert window.is_open() is False


# ---------------------------------------------------------------- the rim, labels, two hands, broken dwells

def test_a_point_on_a_buttons_rim_is_on_it():
    # Within the radius includes the radius itself: (6, 8) from the centre is exactly 10 px away.
    b = Button("sav", 100, 100, 10)
    assert b.contains(106, 108) and button_at([b], 106, 108) is b
    assert not b.contains(106, 108.2) and button_at([b], 106, 108.2) is None
    c = CaptureController([b], clock=FakeClock(), set_number=1)
    assert names(c.update(clicks=[(106, 108)]))[:2] == [("pressed", "sav"), ("countdown_started", "sav")]


def test_buttons_are_labelled_for_what_they_do():
    assert {b.name: b.label for b in default_layout(640, 480)} == {"ext": "Ext", "sav": "Sav", "bkg": "Bkg"}


def test_a_palm_on_a_button_presses_it_while_the_other_hand_is_elsewhere():
    clock = FakeClock()
    c = make(clock, set_number=1)
    events = []
    for _ in range(12):
        clock.advance(1 / 30)
        events += c.update([(320, 400), centre(c, "sav")])
    assert names(events)[:2] == [("pressed", "sav"), ("countdown_started", "sav")]


def test_a_dwell_broken_off_starts_afresh_when_the_palm_comes_back():
    clock = FakeClock()
    c = make(clock, set_number=1)
    assert run_palm(c, clock, centre(c, "bkg"), 0.2) == []
    assert run_palm(c, clock, (320, 400), 0.5) == []  # left before the dwell was done
    assert run_palm(c, clock, centre(c, "bkg"), 0.2) == []  # back: 0.2 s of a new dwell, no press yet
    assert names(run_palm(c, clock, centre(c, "bkg"), 0.2))[:2] == [("pressed", "bkg"), ("countdown_started", "bkg")]


def test_a_palm_resting_in_the_release_ring_after_a_press_has_not_left():
    # The hand that pressed Sav slides just outside its circle (within RELEASE_FACTOR radii) and back:
    # it never left, so it does not press again and cancel its own countdown.
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    sx, sy = centre(c, "sav")
    r = c.buttons[1].radius
    assert 1.2 < RELEASE_FACTOR
    events = run_palm(c, clock, (sx, sy), 0.5)
    events += run_palm(c, clock, (sx - 1.2 * r, sy), 1.0)
    events += run_palm(c, clock, (sx, sy), 1.0)
    assert names(events) == [("pressed", "sav"), ("countdown_started", "sav")]


def test_a_palm_past_the_release_ring_has_left_and_presses_again():
    # Past RELEASE_FACTOR radii (1.3) the hand has left: back on Sav, it presses again and cancels.
    clock = FakeClock()
    c = make(clock, set_number=1, sav_seconds=100)
    sx, sy = centre(c, "sav")
    r = c.buttons[1].radius
    events = run_palm(c, clock, (sx, sy), 0.5)
    events += run_palm(c, clock, (sx - 1.4 * r, sy), 0.3)
    events += run_palm(c, clock, (sx, sy), 0.5)
    assert names(events) == [("pressed", "sav"), ("countdown_started", "sav"), ("pressed", "sav"),
                             ("countdown_cancelled", "sav")]


def test_answers_missed_before_a_new_layout_count_after_it():
    # A hand that left Sav just as the frame changed size: the misses before the change count on.
    old = DwellTracker([Button("sav", 0, 0, 10)], dwell=0.3)
    assert old.update([(0, 0)], 0.0, answer=1) == [] and old.update([(0, 0)], 0.3, answer=2) == ["sav"]
    for k in range(3, 6):  # three missed answers
        old.update([], 0.3 + 0.05 * (k - 2), answer=k)
    assert old.latched["sav"]
    new = DwellTracker([Button("sav", 50, 50, 20)], dwell=0.3)
    new.carry_latches(old)
    new.update([], 0.5, answer=6)  # the fourth, 0.2 s after the palm was last there: it has left
    assert not new.latched["sav"]


def test_each_click_of_a_frame_presses():
    # Two clicks on Bkg read in one frame (a quick double click): started, then cancelled.
    c = make(FakeClock())
    bkg = centre(c, "bkg")
    assert names(c.update(clicks=[bkg, bkg])) == [("pressed", "bkg"), ("countdown_started", "bkg"),
                                                  ("pressed", "bkg"), ("countdown_cancelled", "bkg")]


def test_ext_is_drawn_whole_on_a_frame_wider_than_its_circle_is_low():
    # On a frame wider than 2.5:1 Ext's circle reaches above the frame's top edge.
    w, h = 1000, 300
    ext = default_layout(w, h)[0]
    assert ext.name == "ext" and ext.y - ext.radius < 0
    image = np.full((h, w, 3), 100, np.uint8)
    draw.draw_button(image, ext)
    bgr = image[int(ext.y), int(ext.x - 0.8 * ext.radius)].astype(int)
    assert bgr[2] > 150 and bgr[0] < 100, bgr


def test_buttons_have_a_white_rim():
    b = default_layout(640, 480)[1]
    image = np.full((480, 640, 3), 100, np.uint8)
    draw.draw_button(image, b)
    for dx, dy in ((0, -1), (1, 0), (0, 1), (-1, 0)):  # top, right, bottom, left of the circle
        x, y = int(round(b.x + dx * b.radius)), int(round(b.y + dy * b.radius))
        assert (image[y, x] > 200).all(), (dx, dy)


def test_text_stays_readable_on_a_white_frame():
    # Notices lie on a darkened band, the status line has a dark outline: white on white otherwise.
    h, w = 480, 640
    image = np.full((h, w, 3), 255, np.uint8)
    draw.draw_notices(image, ["saved images/set1/bkg.png"])
    band = max(18, int(h * 0.06))
    rows = image[int(h * 0.28) - band // 2 + 1:int(h * 0.28) + band // 2 - 1]
    assert (rows[:, :20] < 160).all()  # the band's left end, beside the text, darkened
    assert (image[:int(h * 0.2)] == 255).all() and (image[int(h * 0.4):] == 255).all()  # only the band
    image[:] = 255
    draw.draw_status(image, "set 1, 0 frames")
    corner = image[int(0.9 * h):, :int(0.5 * w)]
    assert (corner.max(axis=2) < 60).sum() > 50  # the outline's dark pixels


def test_a_failure_too_long_for_even_its_paths_end_keeps_its_first_words_not_the_path():
    path = "/home/me/captures/of/an/afternoon/with/a/rather/deeply/nested/folder/images/set1/7.png"
    text = draw.shortened(f"save failed: {path}: No space left on device", 120, 1)
    assert text.startswith("save failed: ...") and "/home" not in text


def test_the_dwell_arc_fills_over_the_dwell_asked_for():
    # --dwell 1: the arc is half full after half a second, not full after the default 0.3 s.
    t = DwellTracker([Button("sav", 0, 0, 10)], dwell=1.0)
    assert t.update([(0, 0)], 0.0) == []
    assert t.progress("sav", 0.5) == pytest.approx(0.5)
