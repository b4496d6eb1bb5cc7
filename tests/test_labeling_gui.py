"""label_images.py in a real OpenCV window under Xvfb, driven with xdotool; and its bad-input exits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from gui import ROOT, GuiApp, press_close_button, xdo
from humanseg import store
from humanseg.labeling.editor import PolygonEditor
from humanseg.labeling.geometry import Shape, shapes_to_mask
from humanseg.labeling.labelme import read_labelme, to_labelme
from humanseg.labeling.view import render
from humanseg.metrics import iou

SQUARE = [(200, 150), (400, 150), (400, 350), (200, 350)]


def title_pattern(title: str) -> str:
    """The window title as an xdotool (POSIX extended) regex."""
    return "".join("\\" + c if c in "()[]{}.*+?|^$\\" else c for c in title)


def start(root, xdisplay, *extra, set_number=3):
    app = GuiApp(["label_images.py", "-s", str(set_number), "--images", str(root), "--log-events", *extra],
                 xdisplay)
    ready = app.wait_event("ready")
    app.find_window(title_pattern(ready["title"]), size=(ready["window_width"], ready["window_height"]))
    return app, ready


def next_ready(app):
    ready = app.wait_event("ready")
    # Same window, new title: wait until xdotool sees the new title before sending input.
    app.find_window(title_pattern(ready["title"]), size=(ready["window_width"], ready["window_height"]))
    return ready


def draw_open(app, points=SQUARE):
    """Click each of points, each answered as an edit: an open polygon of them."""
    for n, (x, y) in enumerate(points, 1):
        app.click_answered(x, y, "edit", action="start" if n == 1 else "add", open=n)


def draw_square(app):
    """SQUARE drawn and closed on its first vertex."""
    draw_open(app)
    app.click_answered(*SQUARE[0], "edit", action="close")


def hold_key(app, xdisplay, key):
    """Hold a key for 2 s as a hand holds it: the X server repeats it after its delay (660 ms), 25
    times a second (sent through XTEST to the focused window: a key sent to a named window does not
    repeat)."""
    xdo(xdisplay, "windowfocus", "--sync", app.wid)
    xdo(xdisplay, "keydown", key)
    time.sleep(2.0)
    xdo(xdisplay, "keyup", key)


def quit_after_held_keys(app):
    """q once the presses a held key left queued have been read; the summary event."""
    time.sleep(0.5)
    app.key("q")
    summary = app.wait_event("summary")
    assert app.wait_exit() == 0
    return summary


def quit_and_read(app):
    """q (on a frame with nothing to ask about), its summary and a clean exit: (summary, stderr)."""
    app.key("q")
    summary = app.wait_event("summary")
    assert app.wait_exit() == 0
    return summary, app.proc.stderr.read()


def accept_then_quit(app, k):
    """Enter on frame k, wait until it is saved and the next frame is up, then q: (saved, summary, stderr)."""
    app.key("Return")
    saved = app.wait_event("saved", frame=k)
    next_ready(app)
    return saved, *quit_and_read(app)


def redo_and_accept(root, xdisplay, k, source, edit=None, **saved):
    """--redo K, check it opened from `source`, edit(app) if given, accept with Enter and wait for its
    "saved" (with the given fields): (the ready event, stderr)."""
    app, ready = start(root, xdisplay, "--redo", str(k))
    try:
        assert ready["source"] == source
        if edit is not None:
            edit(app)
        app.key("Return")
        app.wait_event("saved", frame=k, **saved)
        assert app.wait_exit() == 0
        return ready, app.proc.stderr.read()
    finally:
        app.close()


def ready_shapes(ready) -> list[Shape]:
    return [Shape([tuple(p) for p in pts], hole) for pts, hole in zip(ready["polygons"], ready["holes"])]


@pytest.fixture
def unlabeled(copy_set):
    """images root with a copy of dev set3 whose masks are removed (every frame unlabeled)."""
    return copy_set(3, labels=False)


@pytest.mark.gui
@pytest.mark.slow
def test_click_polygon_accept_saves_mask_and_json(unlabeled, xdisplay, tmp_path):
    info = store.scan_set(unlabeled, 3)
    first = info.frames[0]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        frame = store.read_frame(info, first)
        assert ready["frame"] == first and ready["source"] == "none"
        assert ready["title"] == f"set 3 \u2014 frame {first} (1 of {len(info.frames)})"
        # The window is the image, 1:1 (no toolbar or status bar).
        assert app.geometry() == (frame.shape[1], frame.shape[0]) == (ready["width"], ready["height"])
        # Enter on a polygon that cannot close yet (two vertices) was ignored in silence: now the
        # status line at the top says so, until the next edit.
        draw_open(app, SQUARE[:2])
        before = cv2.imread(str(app.screenshot(tmp_path / "before.png")))[:20]
        app.key_answered("Return", "not_closed", frame=first, open=2)
        time.sleep(0.3)
        said = cv2.imread(str(app.screenshot(tmp_path / "said.png")))[:20]
        assert np.count_nonzero(np.any(said != before, axis=2)) > 200  # the hint's text
        app.key_answered("z", "edit", action="undo", open=1)
        app.key_answered("z", "edit", action="undo", open=0)
        draw_open(app)
        # Within 10 px of the first vertex: closes.
        app.click_answered(SQUARE[0][0] + 4, SQUARE[0][1] + 3, "edit", action="close", open=0)
        shot = cv2.imread(str(app.screenshot(tmp_path / "shot.png")))
        # Inside the polygon the picture is tinted, outside it is the frame itself.
        assert np.abs(shot[250, 300].astype(int) - frame[250, 300]).sum() > 30
        assert np.array_equal(shot[250, 100], frame[250, 100])
        app.key("Return")
        saved = app.wait_event("saved", frame=first)
        app.key("q")
        assert app.wait_exit() == 0
    finally:
        app.close()
    mask = cv2.imread(saved["mask"], cv2.IMREAD_UNCHANGED)
    assert saved["mask"] == str(info.mask_path(first)) and mask.ndim == 2
    assert set(np.unique(mask)) == {0, 255}
    assert np.count_nonzero(mask) == 200 * 200
    assert mask[250, 300] == 255 and mask[100, 300] == 0
    doc = json.loads(info.json_path(first).read_text())
    assert doc["imagePath"] == f"{first}.png" and doc["imageData"] is None
    assert (doc["imageHeight"], doc["imageWidth"]) == frame.shape[:2]
    assert "version" in doc and doc["flags"] == {}
    assert len(doc["shapes"]) == 1
    assert doc["shapes"][0]["label"] == "person" and doc["shapes"][0]["shape_type"] == "polygon"
    assert doc["shapes"][0]["points"] == [list(map(float, p)) for p in SQUARE]
    # Only the accepted frame has a label; the rest stay unlabeled.
    assert store.scan_set(unlabeled, 3).labeled == [first]


@pytest.mark.gui
@pytest.mark.slow
def test_a_held_enter_accepts_one_frame_not_the_set(unlabeled, xdisplay):
    # Enter held down (its auto-repeat, 25 presses a second) accepted every frame of the set within a
    # second, each on screen for a few milliseconds; the frames with no guess as empty masks.
    info = store.scan_set(unlabeled, 3)
    k0, k1 = info.frames[:2]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        assert ready["frame"] == k0
        hold_key(app, xdisplay, "Return")
        app.wait_event("saved", frame=k0)
        assert next_ready(app)["frame"] == k1
        summary = quit_after_held_keys(app)
    finally:
        app.close()
    assert summary["saved"] == 1 and store.scan_set(unlabeled, 3).labeled == [k0]
    ignored = [e for e in app.events() if e["event"] == "ignored"]
    assert len(ignored) >= 20 and {e["frame"] for e in ignored} <= {k0, k1}


@pytest.mark.gui
def test_a_window_made_smaller_than_the_frame_still_reaches_its_edges(unlabeled, xdisplay):
    # A tiling window manager sizes the window as it likes: 640x480 drawn 400x300, the window's last
    # pixel came as the frame's 638th, and a polygon on the four corners left the last row and column out.
    k = store.scan_set(unlabeled, 3).frames[0]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        assert (ready["window_width"], ready["window_height"]) == (640, 480)
        xdo(xdisplay, "windowsize", "--sync", app.wid, "400", "300")
        time.sleep(0.5)
        for n, (x, y) in enumerate(((0, 0), (399, 0), (399, 299), (0, 299)), 1):
            app.click_answered(x, y, "edit", action="start" if n == 1 else "add", open=n)
        app.click_answered(0, 0, "edit", action="close")
        app.key("Return")
        app.wait_event("saved", frame=k)
    finally:
        app.close()
    mask = cv2.imread(str(unlabeled / "set3" / store.mask_name(k)), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (480, 640) and mask.min() == 255


@pytest.mark.gui
@pytest.mark.parametrize("read", ["as they come", "by one waitKey"])
def test_clicks_made_while_the_next_frame_loads_are_not_its_vertices(unlabeled, xdisplay, read):
    # Enter, then clicks at once (before the next frame was up): they reached the window once it showed
    # that frame, as its first vertices, drawn on a frame not yet seen. Or, on a loaded machine, they
    # reached the frame still shown, with the Enter, in one waitKey call (the app stopped meanwhile
    # here): its mouse callback ran before the Enter was returned, the clicks started a polygon, and the
    # Enter was refused (it cannot close).
    info = store.scan_set(unlabeled, 3)
    k0, k1 = info.frames[:2]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_square(app)
        if read == "by one waitKey":
            app.proc.send_signal(signal.SIGSTOP)
        try:
            xdo(xdisplay, "key", "--window", app.wid, "Return", "mousemove", "--window", app.wid, "50", "50",
                "click", "1", "mousemove", "--window", app.wid, "60", "420", "click", "1")
        finally:
            app.proc.send_signal(signal.SIGCONT)
        saved = app.wait_event("saved", frame=k0)
        assert (saved["shapes"], saved["vertices_edited"]) == (1, 4)  # the square, without the clicks
        assert next_ready(app)["frame"] == k1
        quit_after_held_keys(app)  # (q once what was queued has been read)
    finally:
        app.close()
    events = app.events()
    saved_at = next(i for i, e in enumerate(events) if e["event"] == "saved")
    assert [e for e in events[saved_at:] if e["event"] == "edit"] == []
    if read == "by one waitKey":  # (as the events say it)
        assert [e["action"] for e in events[:saved_at] if e["event"] == "edit"][-1] == "after_enter"
    ready = [e for e in events if e["event"] == "ready" and e["frame"] == k1]
    assert ready[0]["vertices"] == 0 and ready[0]["shapes"] == 0


@pytest.mark.gui
@pytest.mark.slow
@pytest.mark.parametrize("then, asked", [("q", "quit_asked"), ("n", "skip_asked")])
def test_an_enter_and_a_q_or_n_read_by_one_waitkey_do_not_leave_the_frame_unsaved(unlabeled, xdisplay, then, asked):
    # Enter, then q (or n) at once, reaching the window together (the app stopped meanwhile here, as a
    # busy machine stalls it): OpenCV returns the last key only, and the q quit (the n skipped the
    # frame) without the frame's square.
    info = store.scan_set(unlabeled, 3)
    k0, k1 = info.frames[:2]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_square(app)
        time.sleep(0.6)  # (the Enter would count)
        app.proc.send_signal(signal.SIGSTOP)
        try:
            xdo(xdisplay, "key", "--window", app.wid, "Return", then)
        finally:
            app.proc.send_signal(signal.SIGCONT)
        app.wait_event(asked, frame=k0)  # the key asks: the frame has a polygon not saved
        app.key("Return")  # at once (an n that asked is no decision: this Enter is not taken for it held)
        saved = app.wait_event("saved", frame=k0)
        assert next_ready(app)["frame"] == k1
        app.key(then)  # nothing on this frame: at once
        if then == "n":
            app.wait_event("skipped", frame=k1)
            quit_after_held_keys(app)
        else:
            app.wait_event("summary")
            assert app.wait_exit() == 0
    finally:
        app.close()
    events = app.events()
    assert not [e for e in events if e["event"] == "skipped" and e["frame"] == k0]
    assert (events[-1]["saved"], events[-1]["skipped"]) == (1, int(then == "n"))
    square = [Shape([(float(x), float(y)) for x, y in SQUARE])]
    assert np.array_equal(store.read_mask(saved["mask"]), shapes_to_mask(square, 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_enter_saves_the_polygon_being_drawn_and_a_held_n_skips_one_frame(unlabeled, xdisplay):
    # Enter on an open polygon of 3 vertices or more closes it and saves it (not the frame without it);
    # n, like Enter, counts once while held (its auto-repeat skipped the rest of the set unseen).
    info = store.scan_set(unlabeled, 3)
    k0, k1, k2 = info.frames[:3]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        assert ready["frame"] == k0
        draw_open(app, SQUARE[:3])
        app.key("Return")
        saved = app.wait_event("saved", frame=k0)
        assert next_ready(app)["frame"] == k1
        hold_key(app, xdisplay, "n")
        app.wait_event("skipped", frame=k1)
        assert next_ready(app)["frame"] == k2
        summary = quit_after_held_keys(app)
    finally:
        app.close()
    triangle = [Shape([(float(x), float(y)) for x, y in SQUARE[:3]])]
    assert np.array_equal(store.read_mask(saved["mask"]), shapes_to_mask(triangle, 480, 640))
    assert (summary["saved"], summary["skipped"]) == (1, 1) and store.scan_set(unlabeled, 3).labeled == [k0]


@pytest.mark.gui
@pytest.mark.slow
@pytest.mark.parametrize("quit_by", ["key q", "close button"])
def test_quit_mid_frame_keeps_earlier_frames_and_saves_nothing_else(unlabeled, xdisplay, quit_by):
    info = store.scan_set(unlabeled, 3)
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_open(app, SQUARE[:3])
        app.click_answered(450, 450, "edit", button=3, action="close")  # right click closes
        app.key("Return")
        app.wait_event("saved", frame=info.frames[0])
        second = next_ready(app)
        assert second["frame"] == info.frames[1]
        for n, (x, y) in enumerate([(100, 100), (200, 100), (200, 200)], 1):
            app.click_answered(x, y, "edit", action="start" if n == 1 else "add", open=n)
        if quit_by == "key q":  # asked first (a polygon begun, not saved), then quits
            app.key("q")
            app.wait_event("quit_asked", frame=info.frames[1], by="key")
            app.key("q")
        else:  # the window manager's close button: the window goes, and opens again to ask, as q does
            closed = app.wid
            press_close_button(xdisplay, closed)
            app.wait_event("quit_asked", frame=info.frames[1], by="close")
            assert app.find_window(title_pattern(second["title"])) != closed
            press_close_button(xdisplay, app.wid)
        summary = app.wait_event("summary")
        assert app.wait_exit() == 0
    finally:
        app.close()
    assert summary["saved"] == 1 and summary["quit"] is True
    after = store.scan_set(unlabeled, 3)
    assert after.labeled == [info.frames[0]]
    assert not info.json_path(info.frames[1]).exists()
    assert not list(info.path.glob("*.tmp"))
    mask = store.read_mask(info.mask_path(info.frames[0]))
    assert np.count_nonzero(mask) == pytest.approx(200 * 200 / 2, rel=0.01)  # the right triangle


@pytest.mark.gui
@pytest.mark.slow
def test_the_close_button_on_polygons_not_saved_opens_the_window_again_and_enter_still_saves(unlabeled, xdisplay):
    info = store.scan_set(unlabeled, 3)
    k0, k1 = info.frames[:2]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_open(app, SQUARE[:3])
        closed = app.wid
        press_close_button(xdisplay, closed)  # a polygon begun: the window opens again, the polygon kept
        app.wait_event("quit_asked", frame=k0, by="close")
        assert app.find_window(title_pattern(ready["title"]), size=(ready["window_width"],
                                                                    ready["window_height"])) != closed
        app.key("Return")  # closes the polygon and saves it
        saved = app.wait_event("saved", frame=k0)
        second = next_ready(app)
        assert second["frame"] == k1 and second["shapes"] == 0
        press_close_button(xdisplay, app.wid)  # nothing drawn: quits at once
        summary = app.wait_event("summary")
        assert app.wait_exit() == 0
        asked = [e for e in app.events() if e["event"] == "quit_asked"]
    finally:
        app.close()
    assert asked == [{"event": "quit_asked", "frame": k0, "by": "close"}]
    assert (summary["saved"], summary["quit"]) == (1, True)
    triangle = [Shape([(float(x), float(y)) for x, y in SQUARE[:3]])]
    assert np.array_equal(store.read_mask(saved["mask"]), shapes_to_mask(triangle, 480, 640))
    assert store.scan_set(unlabeled, 3).labeled == [k0]


@pytest.mark.gui
@pytest.mark.slow
def test_a_vertex_held_as_the_window_closes_is_let_go_where_it_was_dragged(unlabeled, xdisplay):
    # The window opened again never sees the button's release: the vertex followed the pointer there.
    info = store.scan_set(unlabeled, 3)
    k0 = info.frames[0]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_square(app)
        app._answered(lambda: xdo(xdisplay, "mousemove", "--window", app.wid, "400", "350", "mousedown", "1"),
                      "press on (400, 350)", "edit", 10, {"action": "grab"},
                      undo=lambda: xdo(xdisplay, "mouseup", "1"))
        for x in (410, 420, 430):
            xdo(xdisplay, "mousemove", "--window", app.wid, str(x), "380")
            time.sleep(0.05)
        app.wait_event("edit", action="drag")
        press_close_button(xdisplay, app.wid)  # the button still down
        app.wait_event("quit_asked", frame=k0, by="close")
        app.wait_event("edit", action="moved")  # let go where it was
        xdo(xdisplay, "mouseup", "1")
        app.find_window(title_pattern(ready["title"]), size=(ready["window_width"], ready["window_height"]))
        for x, y in ((300, 300), (250, 200)):  # the pointer moves over the new window: nothing follows it
            xdo(xdisplay, "mousemove", "--window", app.wid, str(x), str(y))
            time.sleep(0.1)
        app.key("Return")
        saved = app.wait_event("saved", frame=k0)
        edits = [e["action"] for e in app.events() if e["event"] == "edit"]
        app.key("q")
        app.wait_event("summary")
    finally:
        app.close()
    assert edits[-1] == "moved" and edits.count("moved") == 1 and saved["vertices_edited"] == 5
    moved = [Shape([(float(x), float(y)) for x, y in SQUARE[:2] + [(430, 380)] + SQUARE[3:]])]
    assert np.array_equal(store.read_mask(saved["mask"]), shapes_to_mask(moved, 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_prediction_opens_as_polygons_and_vertex_drag_changes_saved_mask(copy_set, dev_root, xdisplay):
    root = copy_set(3, labels=False)
    info = store.scan_set(root, 3)
    dev = store.scan_set(dev_root, 3)
    k0, k1 = info.frames[:2]
    # Real labels stand in for a model's predictions.
    preds = {k: store.read_mask(dev.mask_path(k)) for k in (k0, k1)}
    for k, pred in preds.items():
        store.write_image(info.pred_path(k), pred)
    app, ready = start(root, xdisplay)
    try:
        assert ready["source"] == "pred" and ready["frame"] == k0
        assert ready["notice"] == ""  # its own room: nothing said (the frame of another room's test below)
        shapes = ready_shapes(ready)
        assert iou(shapes_to_mask(shapes, 480, 640), preds[k0]) >= 0.98
        # Drag the rightmost vertex 40 px further right, then do the same in the model.
        si, vi = max(((si, vi) for si, s in enumerate(shapes) if not s.hole for vi in range(len(s.points))),
                     key=lambda t: shapes[t[0]].points[t[1]][0])
        x0, y0 = (round(c) for c in shapes[si].points[vi])
        x1, y1 = min(x0 + 40, 639), y0
        app.drag(x0, y0, x1, y1, "edit", action="grab")
        app.wait_event("edit", action="moved")
        app.key("Return")
        saved = app.wait_event("saved", frame=k0)
        assert saved["unchanged"] is False and saved["vertices_edited"] == 1
        # Second frame: accepted as predicted.
        second = next_ready(app)
        assert second["source"] == "pred"
        app.key("Return")
        saved1 = app.wait_event("saved", frame=k1)
        assert saved1["unchanged"] is True
        app.key("q")
        summary = app.wait_event("summary")
        assert app.wait_exit() == 0
    finally:
        app.close()
    expected_editor = PolygonEditor(shapes)
    assert expected_editor.press(x0, y0) == "grab"
    expected_editor.release(x1, y1)
    expected = expected_editor.mask(480, 640)
    mask0 = store.read_mask(info.mask_path(k0))
    assert np.array_equal(mask0, expected)
    # The mask grew right of the old vertex, and nowhere else.
    grown = (mask0 > 0) & ~(shapes_to_mask(shapes, 480, 640) > 0)
    assert grown.sum() > 0 and np.all(np.nonzero(grown)[1] > min(x0, x1) - 41)
    assert iou(store.read_mask(info.mask_path(k1)), preds[k1]) >= 0.98
    assert (summary["saved"], summary["unchanged"], summary["vertices_edited"]) == (2, 1, 1)
    # A prediction is never written as a label by itself: frames not accepted have no mask.
    assert store.scan_set(root, 3).labeled == [k0, k1]


@pytest.mark.gui
@pytest.mark.slow
def test_a_frame_of_another_room_than_its_bkg_is_said_and_can_still_be_labeled(copy_set, dev_root, xdisplay,
                                                                                default_weights, tmp_path):
    root = copy_set(3, labels=False)
    info = store.scan_set(root, 3)
    k0, k1 = info.frames[:2]
    # bkg.png taken in another room (set5's), as after a camera moved between Bkg and the frames.
    shutil.copyfile(dev_root / "set5" / "bkg.png", info.path / "bkg.png")
    app, ready = start(root, xdisplay)
    try:
        assert ready["source"] == "model" and ready["frame"] == k0
        assert ready["notice"] == f"{k0}.png does not match bkg.png (camera moved?)"
        assert [e["frame"] for e in app.events() if e["event"] == "background_mismatch"] == [k0]
        # The status line at the top says it: the window is the frame as render draws it with the notice.
        frame = store.read_frame(info, k0)
        editor = PolygonEditor(ready_shapes(ready))
        status = f"start: model  shapes: {len(editor.shapes)}"
        shot = cv2.imread(str(app.screenshot(tmp_path / "notice.png")))[:20]
        said = render(frame, editor, None, f"{status}  -- {ready['notice']}")[:20]
        unsaid = render(frame, editor, None, status)[:20]
        off_said = np.count_nonzero(np.any(shot != said, axis=2))
        assert np.count_nonzero(np.any(shot != unsaid, axis=2)) > 200 + 10 * off_said
        saved, summary, stderr = accept_then_quit(app, k0)
    finally:
        app.close()
    assert saved["source"] == "model" and summary["saved"] == 1  # labeled all the same
    assert store.scan_set(root, 3).labeled == [k0]
    assert f"warning: frame {k0}: {info.frame_path(k0)} does not match its bkg.png" in stderr
    assert f"warning: frame {k1}:" in stderr  # (opened before q: said too)
    assert [e["frame"] for e in app.events() if e["event"] == "background_mismatch"] == [k0, k1]
    # Opened empty (--no-guess) there is no person to leave out, so nothing is judged (nor said).
    app, ready = start(root, xdisplay, "--no-guess")
    try:
        assert ready["source"] == "none" and ready["frame"] == k1 and ready["notice"] == ""
        _, stderr = quit_and_read(app)
    finally:
        app.close()
    assert not [e for e in app.events() if e["event"] == "background_mismatch"]
    assert "does not match" not in stderr


@pytest.mark.gui
@pytest.mark.slow
def test_a_label_saved_meanwhile_is_kept_and_said(unlabeled, xdisplay):
    # Two people on one set both start at its first unlabeled frame: the second to accept wrote over
    # the first one's label.
    info = store.scan_set(unlabeled, 3)
    k, k1, k2 = info.frames[:3]
    theirs = np.zeros((480, 640), np.uint8)
    theirs[100:200, 100:200] = 255
    app, ready = start(unlabeled, xdisplay)
    try:
        assert ready["frame"] == k and ready_shapes(ready)  # opens with the model's guess
        store.write_image(info.mask_path(k), theirs)
        app.key("Return")
        failed = app.wait_event("save_failed", frame=k)
        assert "refusing to overwrite" in failed["reason"]
        # The next frame is labeled by the other person too, before this walk reaches it: it opened
        # from their K.json like a guess, and accepting it replaced their label.
        store.write_image(info.mask_path(k1), theirs)
        assert next_ready(app)["frame"] == k  # the same frame stays open
        app.key("n")
        assert app.wait_event("skipped", frame=k1)["reason"] == "labeled meanwhile"
        assert next_ready(app)["frame"] == k2
        app.key("q")
        assert app.wait_exit() == 0
        err = app.proc.stderr.read()
    finally:
        app.close()
    assert "it was labeled meanwhile (by another labeler?), and that label is kept" in err
    assert f"warning: frame {k1} was labeled meanwhile (by another labeler?); passed over, and its label kept " \
           f"(--redo {k1} to edit it)\n" in err
    for j in (k, k1):
        assert np.array_equal(store.read_mask(info.mask_path(j)), theirs) and not info.json_path(j).exists()


@pytest.mark.gui
@pytest.mark.slow
def test_a_redone_label_saved_again_meanwhile_is_kept_and_said(copy_set, xdisplay):
    # Two labelers on --redo K of a frame with its mask and K.json: the second to accept replaced the
    # first one's label without a word (both files were there when it opened, so both could be
    # replaced); with a mask alone the K.json that appeared already stopped it.
    shapes = [Shape([(100.0, 100.0), (300.0, 120.0), (250.0, 400.0)])]
    root, info, k = set3_labeled_with(copy_set, shapes)
    theirs = [Shape([(50.0, 50.0), (500.0, 50.0), (500.0, 400.0)])]
    app, ready = start(root, xdisplay, "--redo", str(k))
    try:
        assert ready["source"] == "json"
        app.key_answered("c", "edit", action="clear", shapes=0)
        draw_square(app)
        # The other labeler's save, as the labeler writes it: K.json and the mask together.
        store.write_together([(info.mask_path(k), store.encode_png(shapes_to_mask(theirs, 480, 640)), True),
                              (info.json_path(k), store.encode_json(to_labelme(theirs, f"{k}.png", 480, 640)), True)])
        kept = [info.mask_path(k).read_bytes(), info.json_path(k).read_bytes()]
        app.key("Return")
        failed = app.wait_event("save_failed", frame=k)
        assert failed["reason"].startswith("refusing to overwrite existing file: ")
        app.key("q")  # (the square is not saved: asked first)
        app.wait_event("quit_asked", frame=k)
        app.key("q")
        assert app.wait_exit() == 0
        err = app.proc.stderr.read()
    finally:
        app.close()
    assert "it was labeled meanwhile (by another labeler?), and that label is kept" in err
    assert [info.mask_path(k).read_bytes(), info.json_path(k).read_bytes()] == kept


@pytest.mark.gui
@pytest.mark.slow
def test_a_redone_label_rewritten_with_the_same_bytes_is_saved_over(copy_set, xdisplay):
    # A save that fails (a full disk) puts back the mask it replaced: as a new file with the same bytes
    # where the file system has no hard links (FAT32, exFAT). Accepting again must save, not take that
    # for another labeler's label.
    shapes = [Shape([(100.0, 100.0), (300.0, 120.0), (250.0, 400.0)])]
    root, info, k = set3_labeled_with(copy_set, shapes)
    app, ready = start(root, xdisplay, "--redo", str(k))
    try:
        app.key_answered("c", "edit", action="clear", shapes=0)
        draw_square(app)
        for path in (info.mask_path(k), info.json_path(k)):  # the same bytes, another file
            store.write_bytes_atomic(path, path.read_bytes(), overwrite=True)
        app.key("Return")
        app.wait_event("saved", frame=k, written=True)
        assert app.wait_exit() == 0
    finally:
        app.close()
    assert np.array_equal(store.read_mask(info.mask_path(k)), shapes_to_mask([Shape(SQUARE)], 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_enter_while_a_vertex_is_held_saves_it_as_a_release_there_would(unlabeled, xdisplay):
    # Enter before the button's release saved the drag as it was: a triangle's vertex held on the line
    # of the other two went to K.json as a polygon of no area (and an empty mask), which a release
    # there takes back.
    from gui import xdo

    info = store.scan_set(unlabeled, 3)
    first = info.frames[0]
    tri = [(200, 150), (400, 150), (300, 350)]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_open(app, tri)
        app.click_answered(*tri[0], "edit", action="close")
        press = ("mousemove", "--window", app.wid, "300", "350", "mousedown", "1")
        app._answered(lambda: xdo(app.display, *press), "press at (300, 350)", "edit", 10, {"action": "grab"},
                      undo=lambda: xdo(app.display, "mouseup", "1"))
        for y in (300, 250, 200, 150):  # onto the line of the other two, the button still down
            xdo(app.display, "mousemove", "--window", app.wid, "300", str(y))
            time.sleep(0.05)
        time.sleep(0.3)
        app.key("Return")
        saved = app.wait_event("saved", frame=first)
        xdo(app.display, "mouseup", "1")
        assert saved["area"] > 0 and saved["vertices_edited"] == 3, saved
    finally:
        app.close()
    assert np.array_equal(store.read_mask(info.mask_path(first)),
                          shapes_to_mask([Shape([(float(x), float(y)) for x, y in tri])], 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_a_frame_replaced_while_labeled_is_not_labeled_with_the_old_picture(unlabeled, xdisplay, dev_root):
    # The frame was checked once, when it opened: deleted and captured again under its freed number (a
    # new set1, or the set's highest frame), the label drawn on the old picture was saved beside the
    # new one, without a word. And frames captured meanwhile were left unlabeled without a word.
    info = store.scan_set(unlabeled, 3)
    k, k1 = info.frames[:2]
    app, ready = start(unlabeled, xdisplay)
    try:
        assert ready["frame"] == k and ready_shapes(ready)
        info.frame_path(k).unlink()
        store.write_image(info.frame_path(k), store.read_image(dev_root / "set3" / "bkg.png"))  # an empty room
        store.write_image(info.frame_path(info.frames[-1] + 1), store.read_image(dev_root / "set3" / "bkg.png"))
        app.key("Return")
        failed = app.wait_event("save_failed", frame=k)
        assert failed["reason"] == f"{info.frame_path(k)} is not the frame this label was drawn on (it was " \
                                   f"replaced since it opened)"
        assert next_ready(app)["frame"] == k  # still open, nothing written
        app.key("n")
        ready = next_ready(app)
        assert ready["frame"] == k1 and ready_shapes(ready)
        info.frame_path(k1).unlink()  # deleted while open: said as such, with no frame to label there
        app.key("Return")
        assert app.wait_event("save_failed", frame=k1)["reason"] == \
            f"{info.frame_path(k1)} was deleted (or moved away) since it opened"
        assert next_ready(app)["frame"] == k1
        app.key("q")
        assert app.wait_exit() == 0
        err = app.proc.stderr.read()
    finally:
        app.close()
    assert not info.mask_path(k).exists() and not info.json_path(k).exists()
    assert not info.mask_path(k1).exists() and not info.json_path(k1).exists()
    assert "frame 0 stays open: n to skip, q to quit (and run again to label the frame there now)" in err.replace(
        f"frame {k} stays", "frame 0 stays")
    assert f"frame {k1} stays open: n to skip, q to quit\n" in err
    new = info.frames[-1] + 1
    assert f"set 3: 1 frame(s) captured meanwhile ({new}) have no label yet: run again to label them\n" in err


@pytest.mark.gui
@pytest.mark.slow
def test_a_set_moved_away_while_labeled_ends_with_its_summary_not_an_error(unlabeled, xdisplay):
    # The set folder moved (or deleted) while a frame was open: q still ends as a quit does, with the
    # summary; the look for frames captured meanwhile finds no set, which is no failure of the run.
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        (unlabeled / "set3").rename(unlabeled / "moved")
        app.key("q")
        summary = app.wait_event("summary")
        assert app.wait_exit() == 0
        err = app.proc.stderr.read()
    finally:
        app.close()
    assert summary["saved"] == 0 and summary["quit"] is True
    assert "set 3: saved 0 of 4 frame(s) (0 accepted unchanged), 0 skipped, 0 vertices edited (quit early)\n" in err
    assert "Error" not in err and "meanwhile" not in err, err
    assert sorted(p.name for p in unlabeled.iterdir()) == ["moved"]


@pytest.mark.gui
@pytest.mark.parametrize("where", ["mask", "json", "mask-link"])
def test_a_frame_whose_label_path_is_a_folder_is_passed_over_and_said(unlabeled, xdisplay, where):
    # A folder where K_mask.png or K.json goes: the frame opened, and its save failed saying the frame
    # "was labeled meanwhile (by another labeler?)", whether walked to or asked for with --redo. A
    # mask that is a link to nothing is passed over as one (it was said to be "not a file").
    info = store.scan_set(unlabeled, 3)
    k0, k1 = info.frames[:2]
    blocker = info.json_path(k0) if where == "json" else info.mask_path(k0)
    if where == "mask-link":
        blocker.symlink_to(unlabeled / "nowhere.png")
    else:
        blocker.mkdir()
    kind = "a link to nothing" if where == "mask-link" else "a folder"
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        assert ready["frame"] == k1
        app.key("q")
        assert app.wait_exit() == 0
        err = app.proc.stderr.read()
    finally:
        app.close()
    assert (f"warning: frame {k0}: {blocker} is {kind}, so no label can be saved there; passed over "
            f"(move it away to label frame {k0})\n") in err
    assert "saved 0 of 4 frame(s) (0 accepted unchanged), 1 skipped" in err
    r = subprocess.run([sys.executable, "label_images.py", "-s", "3", "--images", str(unlabeled), "--redo", str(k0),
                        "--log-events"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "DISPLAY": xdisplay})
    assert r.returncode == 0 and '"reason": "label path taken"' in r.stdout and '"ready"' not in r.stdout, r.stderr
    assert blocker.is_symlink() if where == "mask-link" else blocker.is_dir()


def set3_labeled_with(copy_set, shapes):
    """A copy of dev set 3 whose first frame is labeled with `shapes` as the labeler saves them: its
    K.json and the mask they draw beside it (one that no longer matches them opens as its own outline
    instead: test_labeling's test of a mask changed after its json). (root, set info, K)."""
    root = copy_set(3)
    info = store.scan_set(root, 3)
    k = info.frames[0]
    store.write_json(info.json_path(k), to_labelme(shapes, f"{k}.png", 480, 640))
    store.write_image(info.mask_path(k), shapes_to_mask(shapes, 480, 640), overwrite=True)
    return root, info, k


@pytest.mark.gui
@pytest.mark.slow
def test_redo_reopens_saved_polygons(copy_set, xdisplay):
    shapes = [Shape([(100.0, 100.0), (300.0, 120.0), (250.0, 400.0)]),
              Shape([(150.0, 150.0), (200.0, 150.0), (180.0, 200.0)], hole=True)]
    root, info, k = set3_labeled_with(copy_set, shapes)
    before = os.stat(info.mask_path(k)).st_ino
    app, ready = start(root, xdisplay, "--redo", str(k))
    try:
        assert ready["source"] == "json"
        assert [(s.points, s.hole) for s in ready_shapes(ready)] == [(s.points, s.hole) for s in shapes]
        app.key("d")  # pointer is outside every shape: nothing is deleted
        app.key("Return")
        app.wait_event("saved", frame=k, unchanged=True, written=False)
        assert app.wait_exit() == 0
    finally:
        app.close()
    assert os.stat(info.mask_path(k)).st_ino == before  # accepted as it opened: left as it was
    assert np.array_equal(store.read_mask(info.mask_path(k)), shapes_to_mask(shapes, 480, 640))
    # A mask with no json (another tool's) opens as its simplified outline, which draws some pixels
    # differently: accepted unchanged, the mask is kept byte for byte, and no json is made.
    info.json_path(k).unlink()
    disc = cv2.circle(np.zeros((480, 640), np.uint8), (320, 240), 97, 255, -1)
    store.write_image(info.mask_path(k), disc, overwrite=True)
    kept = info.mask_path(k).read_bytes()
    app, ready = start(root, xdisplay, "--redo", str(k))
    try:
        assert ready["source"] == "mask"
        assert not np.array_equal(shapes_to_mask(ready_shapes(ready), 480, 640), disc)
        app.key("Return")  # (its area is the mask's as kept, not its outline's redrawn)
        app.wait_event("saved", frame=k, unchanged=True, written=False, json=None, area=int(np.count_nonzero(disc)))
        assert app.wait_exit() == 0
    finally:
        app.close()
    assert info.mask_path(k).read_bytes() == kept and not info.json_path(k).exists()
    # Beside an unreadable K.json (passed over, the mask's outline opened), accepting writes the
    # label anew, so the broken json does not stay to be warned about at every --redo.
    # The mask itself stays byte for byte (redrawn from its outline, a repaint lost some pixels).
    info.json_path(k).write_text("{not json")
    ready, _ = redo_and_accept(root, xdisplay, k, "mask", unchanged=True, written=True,
                               area=int(np.count_nonzero(disc)))
    redrawn, opened = read_labelme(info.json_path(k), (480, 640)), ready_shapes(ready)
    assert [s.hole for s in redrawn] == [s.hole for s in opened] and len(opened) >= 1
    assert all(np.allclose(a.points, b.points, atol=0.006) for a, b in zip(redrawn, opened))  # json: 2 decimals
    assert info.mask_path(k).read_bytes() == kept
    # A mask cut short beside a good K.json: said, and accepting writes it anew from the json's
    # polygons (it was left broken, and accepted "unchanged" without a word).
    info.mask_path(k).write_bytes(info.mask_path(k).read_bytes()[:500])
    ready, err = redo_and_accept(root, xdisplay, k, "json", unchanged=True, written=True)
    assert f"warning: mask unreadable or corrupt: {info.mask_path(k)}; editing {k}.json's polygons, and accepting " \
           f"the frame writes the mask anew from them\n" in err
    assert np.array_equal(store.read_mask(info.mask_path(k)), shapes_to_mask(ready_shapes(ready), 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_an_edit_of_a_label_reopened_with_redo_is_saved(copy_set, xdisplay):
    # A label opened from its K.json and accepted as it opened is left alone; edited, it is written,
    # or the edit is lost without a word.
    root, info, k = set3_labeled_with(copy_set, [Shape(SQUARE)])
    redo_and_accept(root, xdisplay, k, "json", unchanged=False, written=True,
                    edit=lambda app: app.click_answered(*SQUARE[2], "edit", button=3, action="delete_vertex"))
    triangle = [(float(x), float(y)) for x, y in (SQUARE[0], SQUARE[1], SQUARE[3])]
    assert [s.points for s in read_labelme(info.json_path(k), (480, 640))] == [triangle]
    assert np.array_equal(store.read_mask(info.mask_path(k)), shapes_to_mask([Shape(triangle)], 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_an_edit_of_a_mask_opened_beside_a_broken_json_is_saved_in_the_mask(copy_set, xdisplay):
    # Accepted unchanged, such a mask keeps its bytes and only its K.json is written anew; edited, the
    # mask must be written too, or the edit lands in the json alone and the label stays as it was.
    root = copy_set(3)
    info = store.scan_set(root, 3)
    k = info.frames[0]
    info.json_path(k).write_text("{not json")
    redo_and_accept(root, xdisplay, k, "mask", unchanged=False, written=True,
                    edit=lambda app: app.key_answered("c", "edit", action="clear", shapes=0))
    assert store.read_mask(info.mask_path(k)).max() == 0 and read_labelme(info.json_path(k), (480, 640)) == []


@pytest.mark.gui
@pytest.mark.slow
def test_all_opens_the_labeled_frames_too(copy_set, xdisplay):
    root = copy_set(3)  # every frame labeled (masks, no K.json)
    info = store.scan_set(root, 3)
    app, ready = start(root, xdisplay, "--all")
    try:
        assert (ready["frame"], ready["source"]) == (info.frames[0], "mask") and ready["shapes"] >= 1
        assert ready["title"].endswith(f"(1 of {len(info.frames)})")
        app.key("q")
        summary = app.wait_event("summary")
        assert app.wait_exit() == 0
    finally:
        app.close()
    assert (summary["to_label"], summary["skipped"], summary["quit"]) == (len(info.frames), 0, True)


@pytest.mark.gui
@pytest.mark.slow
def test_broken_frames_are_passed_over_and_the_rest_labeled(unlabeled, xdisplay):
    info = store.scan_set(unlabeled, 3)
    corrupt, small, third = info.frames[:3]
    info.frame_path(corrupt).write_bytes(b"not a png")
    store.write_image(info.frame_path(small), np.zeros((240, 320, 3), np.uint8), overwrite=True)
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        assert ready["frame"] == third and [e["frame"] for e in app.events() if e["event"] == "unreadable"] \
            == [corrupt, small]
        draw_square(app)
        _, summary, err = accept_then_quit(app, third)
    finally:
        app.close()
    assert summary["unreadable"] == 2 and summary["saved"] == 1
    assert str(info.frame_path(corrupt)) in err and str(info.frame_path(small)) in err
    assert "Traceback" not in err
    assert store.scan_set(unlabeled, 3).labeled == [third]
    # --redo of a broken frame is an error, one line.
    result = run_cli("-s", "3", "--images", str(unlabeled), "--redo", str(corrupt), env={"DISPLAY": xdisplay})
    assert_one_line_error(result, str(info.frame_path(corrupt)), "corrupt")
    # A background of another size than every frame left to label: nothing can be, which is an error
    # (it said so frame by frame, then exited 0).
    store.write_image(info.bkg_path, np.zeros((100, 120, 3), np.uint8), overwrite=True)
    result = run_cli("-s", "3", "--images", str(unlabeled), env={"DISPLAY": xdisplay})
    left = len(store.scan_set(unlabeled, 3).unlabeled)
    assert result.returncode == 2 and result.stderr.splitlines()[-1] == (
        f"Error: set 3: none of the {left} frame(s) to label could be opened (each is named above)")
    assert result.stderr.count("passed over (not labeled)") == left and "Traceback" not in result.stderr


@pytest.mark.gui
@pytest.mark.slow
def test_a_failed_save_keeps_the_frame_open_and_accept_retries(unlabeled, xdisplay):
    info = store.scan_set(unlabeled, 3)
    first = info.frames[0]
    blocker = info.mask_path(first)
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        assert ready["frame"] == first
        # A folder made where K_mask.png goes once the frame is open (one there before passes the frame
        # over): the save fails, as on a full disk.
        blocker.mkdir()
        draw_square(app)
        app.key("Return")
        failed = app.wait_event("save_failed", frame=first)
        again = next_ready(app)  # the same frame, with the polygon drawn, not the next one
        assert again["frame"] == first and ready_shapes(again) == [Shape(SQUARE)]
        blocker.rmdir()  # space freed
        saved, summary, err = accept_then_quit(app, first)
    finally:
        app.close()
    assert str(blocker) in failed["reason"] and f"save failed: {failed['reason']}" in err
    assert saved["mask"] == str(blocker) and summary["saved"] == 1
    assert np.array_equal(store.read_mask(blocker), shapes_to_mask([Shape(SQUARE)], 480, 640))


@pytest.mark.gui
@pytest.mark.slow
def test_a_save_the_file_system_refuses_keeps_the_frame_open(unlabeled, xdisplay, make_read_only):
    # The set turned read-only while a frame was drawn (a disk remounted, a permission taken away): an
    # OSError, not the store's own refusal, is said as well, and the frame stays open with its polygons.
    info = store.scan_set(unlabeled, 3)
    first = info.frames[0]
    app, ready = start(unlabeled, xdisplay, "--no-guess")
    try:
        draw_square(app)
        make_read_only(info.path)
        app.key("Return")
        failed = app.wait_event("save_failed", frame=first)
        again = next_ready(app)
        assert again["frame"] == first and ready_shapes(again) == [Shape(SQUARE)]
        app.key("q")  # (the square is not saved: asked first)
        app.wait_event("quit_asked", frame=first)
        app.key("q")
        assert app.wait_exit() == 0
        err = app.proc.stderr.read()
    finally:
        app.close()
    assert f"save failed: {failed['reason']}" in err and "Traceback" not in err
    assert not info.mask_path(first).exists() and not info.json_path(first).exists()


# ------------------------------------------------------------ bad input: one line, exit 2

def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "label_images.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    for w in words:
        assert w in lines[0]


def test_unknown_set(copy_set):
    root = copy_set(3)
    assert_one_line_error(run_cli("-s", "42", "--images", str(root)), "set42", "not found")


def test_set_without_frames(copy_set):
    root = copy_set(3)
    for p in (root / "set3").glob("*.png"):
        if p.name != "bkg.png":
            p.unlink()
    assert_one_line_error(run_cli("-s", "3", "--images", str(root)), "no frames", "set3")


def test_redo_unknown_frame(copy_set):
    root = copy_set(3)
    assert_one_line_error(run_cli("-s", "3", "--images", str(root), "--redo", "77"), "--redo 77", "77.png")


def test_no_display(unlabeled):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    result = subprocess.run([sys.executable, "label_images.py", "-s", "3", "--images", str(unlabeled)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert_one_line_error(result, "no display")


def test_dead_display(unlabeled):
    assert_one_line_error(run_cli("-s", "3", "--images", str(unlabeled), env={"DISPLAY": ":87"}),
                          "cannot connect", ":87")


def test_explicit_weights_that_cannot_be_used(unlabeled, tmp_path):
    # No fallback to differencing for a --weights typo: checked before any window opens.
    missing = tmp_path / "nope.pt"
    assert_one_line_error(run_cli("-s", "3", "--images", str(unlabeled), "--weights", str(missing),
                                  env={"DISPLAY": ""}), "weights file not found", str(missing))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert_one_line_error(run_cli("-s", "3", "--images", str(unlabeled), "--weights", str(junk),
                                  env={"DISPLAY": ""}), str(junk))
    # --weights with --no-guess would never be used: said, not ignored.
    assert_one_line_error(run_cli("-s", "3", "--images", str(unlabeled), "--no-guess", "--weights", str(junk),
                                  env={"DISPLAY": ""}), "--no-guess", "--weights")
    assert not list((unlabeled / "set3").glob("*_mask.png"))


def test_a_set_that_cannot_be_written_is_refused_before_drawing(copy_set, make_read_only):
    # Found at the start, not when the first polygon drawn cannot be saved.
    root = copy_set(3, labels=False)
    make_read_only(root / "set3")
    result = run_cli("-s", "3", "--images", str(root), env={"DISPLAY": ""})
    assert result.returncode == 2
    assert result.stderr == f"Error: set 3: {root / 'set3'}: cannot write there (read-only, or no permission)\n"
    # With every frame labeled there is nothing to write: said as before, read-only or not.
    make_read_only(copy_set(3, 4) / "set4")
    result = run_cli("-s", "4", "--images", str(root), env={"DISPLAY": ""})
    assert result.returncode == 0 and "already have a mask" in result.stdout


def test_nothing_to_label_is_not_an_error(copy_set, default_weights):
    root = copy_set(3)  # every frame has a mask
    result = run_cli("-s", "3", "--images", str(root), env={"DISPLAY": ""})
    assert result.returncode == 0 and "already have a mask" in result.stdout
    # With the event log, stdout holds its JSON lines alone (a line of prose among them broke a reader).
    result = run_cli("-s", "3", "--images", str(root), "--log-events", env={"DISPLAY": ""})
    assert result.returncode == 0 and "already have a mask" in result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["summary"]
    # ... but a --weights that names no usable file is still refused, as with frames to label.
    result = run_cli("-s", "3", "--images", str(root), "--weights", str(root / "nope.pt"), env={"DISPLAY": ""})
    assert result.returncode == 2 and result.stderr == f"Error: weights file not found: {root / 'nope.pt'}\n"
    # ... and one that does is loaded (checked) without a background to segment against.
    result = run_cli("-s", "3", "--images", str(root), "--weights", str(default_weights), env={"DISPLAY": ""})
    assert result.returncode == 0 and "already have a mask" in result.stdout, result.stderr


def test_redo_and_all_together_is_usage_error(copy_set):
    root = copy_set(3)
    result = run_cli("-s", "3", "--images", str(root), "--redo", "0", "--all")
    assert result.returncode == 2 and "--redo" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.gui
@pytest.mark.slow
def test_every_editing_key_works_in_the_window(unlabeled, xdisplay, tmp_path):
    # The keys' logic is PolygonEditor's (tested directly); this is their binding in the real window.
    info = store.scan_set(unlabeled, 3)
    k0, k1, k2 = info.frames[:3]
    frame, bkg = store.read_frame(info, k0), store.read_background(info)
    person = np.abs(frame.astype(int) - bkg).sum(axis=2) > 60  # where the two views differ
    person[:40], person[-40:] = False, False  # clear of the status line

    def shown_as(image, name) -> float:
        shot = cv2.imread(str(app.screenshot(tmp_path / f"{name}.png")))
        return float(np.mean(np.all(shot[person] == image[person], axis=1)))

    app, ready = start(unlabeled, xdisplay)
    try:
        opened = ready_shapes(ready)
        assert ready["frame"] == k0 and ready["source"] == "model" and opened and person.sum() > 5000
        # Keys whose X code only ends in a shortcut's byte do nothing (Insert is 0xFF63, "c" 0x63;
        # Compose 0xFF20, space; XF86Phone 0x1008FF6E, "n"; XF86Search 0x1008FF1B, Esc): the first
        # event after them is the answer to the "b" pressed next. Nor do characters bound to nothing (x, 1).
        for key in ("Insert", "Multi_key", "XF86Phone", "XF86Search", "x", "1"):
            app.key(key)
        app.key("b")
        first = json.loads(app.wait_line(lambda line: line.startswith("{")))
        assert (first["event"], first.get("action")) == ("edit", "show_background")
        app.key_answered("b", "edit", action="show_frame")
        app.key_answered("c", "edit", action="clear", shapes=0)
        app.key_answered("b", "edit", action="show_background")
        assert shown_as(bkg, "bkg") > 0.99  # nothing drawn over it once cleared
        app.key_answered("b", "edit", action="show_frame")
        assert shown_as(frame, "frame") > 0.99
        app.key_answered("r", "edit", action="restart", shapes=len(opened))
        app.key_answered("z", "edit", action="undo", shapes=0)  # the restart undone: cleared again
        app.key_answered("BackSpace", "edit", action="undo", shapes=len(opened))  # the clear undone
        app.key_answered("h", "edit", action="hole_on")
        app.key_answered("h", "edit", action="hole_off")
        app.key("space")
        saved = app.wait_event("saved", frame=k0)
        assert next_ready(app)["frame"] == k1
        app.key("n")
        app.wait_event("skipped", frame=k1)
        assert next_ready(app)["frame"] == k2
        app.key("Escape")
        summary = app.wait_event("summary")
        assert app.wait_exit() == 0
    finally:
        app.close()
    assert (summary["saved"], summary["skipped"], summary["quit"]) == (1, 1, True)
    assert np.array_equal(store.read_mask(saved["mask"]), shapes_to_mask(opened, *frame.shape[:2]))
    assert store.scan_set(unlabeled, 3).labeled == [k0]  # the skipped and the quit frame have no mask


def resized_set(copy_set, size):
    """An images root with a copy of dev set3, unlabeled, its frames and background resized to size."""
    root = copy_set(3, labels=False)
    info = store.scan_set(root, 3)
    for path in [info.bkg_path] + [info.frame_path(k) for k in info.frames]:
        image = cv2.imread(str(path))
        shrink = size[0] < image.shape[1]
        store.write_image(path, cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR),
                          overwrite=True)
    return root


def label_square_at(root, xdisplay, size, cases):
    """For each (extra options, zoom expected): the window at that zoom, SQUARE clicked in window
    pixels, and the mask saved at the frame's size with the square's corners mapped back."""
    width, height = size
    for extra, zoom in cases:
        app, ready = start(root, xdisplay, "--no-guess", *extra)
        try:
            assert (ready["width"], ready["height"], ready["zoom"]) == (width, height, zoom)
            assert app.geometry() == (round(width * zoom), round(height * zoom))
            draw_open(app)
            # Within 10 screen px of the first vertex (13 or 20 frame px): closes.
            app.click_answered(SQUARE[0][0] + 6, SQUARE[0][1] + 6, "edit", action="close", open=0)
            app.key("Return")
            saved = app.wait_event("saved")
            app.key("q")
            assert app.wait_exit() == 0
        finally:
            app.close()
        mask = store.read_mask(saved["mask"])
        assert mask.shape == (height, width)
        ys, xs = np.nonzero(mask)
        # The square's corners in frame pixels (a display pixel's centre, scaled back).
        (x0, y0), (x1, y1) = [[(c + 0.5) / zoom - 0.5 for c in corner] for corner in (SQUARE[0], SQUARE[2])]
        assert max(abs(xs.min() - x0), abs(xs.max() - x1), abs(ys.min() - y0), abs(ys.max() - y1)) <= 1
        Path(saved["mask"]).unlink()
        Path(saved["json"]).unlink()


@pytest.mark.gui
@pytest.mark.slow
def test_frames_larger_than_the_screen_are_shown_scaled_and_saved_at_full_size(copy_set, xdisplay):
    # A 1280x960 frame 1:1 does not fit a laptop's screen: it is shown at 0.75 (960x720), clicks are
    # mapped back to the frame's pixels, and the mask is saved at 1280x960.
    root = resized_set(copy_set, (1280, 960))
    label_square_at(root, xdisplay, (1280, 960), [([], 0.75), (["--zoom", "0.5"], 0.5)])


@pytest.mark.gui
@pytest.mark.slow
def test_small_frames_are_shown_enlarged_and_saved_at_their_size(copy_set, xdisplay):
    # A 160x120 camera's frame was a 160x120 window: an outline hard to draw, a help bar unreadable.
    root = resized_set(copy_set, (160, 120))
    label_square_at(root, xdisplay, (160, 120), [([], 4.0)])


@pytest.mark.gui
@pytest.mark.slow
def test_an_enlarged_frame_is_labeled_to_its_edges_with_the_screens_grab_distances(copy_set, xdisplay):
    # A 160x120 frame shown 4 times: clicks on the window's outermost pixels put the vertices on the
    # frame's edges (not a quarter pixel inside), and a press 8 screen px diagonally from a vertex
    # (3 frame px) neither grabs it (within 7 screen px) nor inserts on an edge (within 5): it starts
    # a polygon, as it would at 1:1.
    root = resized_set(copy_set, (160, 120))
    app, ready = start(root, xdisplay, "--no-guess")
    try:
        assert (ready["zoom"], ready["window_width"], ready["window_height"]) == (4.0, 640, 480)
        for n, (x, y) in enumerate([(0, 0), (639, 0), (639, 479), (0, 479)], 1):
            app.click_answered(x, y, "edit", action="start" if n == 1 else "add", open=n)
        app.click_answered(320, 240, "edit", button=3, action="close", open=0)
        app.click_answered(8, 8, "edit", action="start", open=1)
        app.key_answered("z", "edit", action="undo", open=0)
        saved, _, _ = accept_then_quit(app, ready["frame"])
    finally:
        app.close()
    assert [s.points for s in read_labelme(saved["json"], (120, 160))] == [
        [(-0.5, -0.5), (159.5, -0.5), (159.5, 119.5), (-0.5, 119.5)]]
    assert store.read_mask(saved["mask"]).min() == 255


@pytest.mark.gui
@pytest.mark.slow
def test_a_labelme_json_keeps_what_the_labeler_does_not_edit(unlabeled, xdisplay):
    # K.json files from labelme, without masks: one with a polygon, a rectangle (a bag), flags and a
    # group id; one drawn on a 1280x960 copy of its frame, which cannot be opened on this frame.
    info = store.scan_set(unlabeled, 3)
    first, other, third = info.frames[:3]
    person = {"label": "person", "points": [[100.0, 100.0], [300.0, 120.0], [250.0, 400.0]], "group_id": 4,
              "description": "left arm up", "shape_type": "polygon", "flags": {"occluded": True}}
    bag = {"label": "bag", "points": [[400.0, 300.0], [450.0, 380.0]], "group_id": None, "description": "",
           "shape_type": "rectangle", "flags": {}}
    doc = {"version": "5.2.1", "flags": {"reviewed": True}, "shapes": [person, bag],
           "imagePath": f"../originals/{first}.png", "imageData": None, "imageHeight": 480, "imageWidth": 640,
           "lineColor": [0, 255, 0, 128]}
    info.json_path(first).write_text(json.dumps(doc))  # (labelme's own layout of the file)
    theirs = info.json_path(first).read_bytes()
    big = {**doc, "imageHeight": 960, "imageWidth": 1280, "imagePath": f"{other}.png"}
    store.write_json(info.json_path(other), big)
    kept = info.json_path(other).read_bytes()
    app, ready = start(unlabeled, xdisplay)
    try:
        assert ready["frame"] == first and ready["source"] == "json"
        app.key("Return")  # accepted as it opened
        drawn = shapes_to_mask([Shape([tuple(p) for p in person["points"]])], 480, 640)
        app.wait_event("saved", frame=first, unchanged=True, written=True, area=int(np.count_nonzero(drawn)))
        skipped = app.wait_event("skipped", frame=other)
        assert skipped["reason"] == "kept json"
        assert next_ready(app)["frame"] == third
        _, err = quit_and_read(app)
    finally:
        app.close()
    # Accepted as it opened, the user's file is left byte for byte (it was rewritten in the labeler's
    # form: its imagePath replaced, the rectangle moved after the polygon); the mask is drawn from it.
    assert info.json_path(first).read_bytes() == theirs
    assert np.array_equal(store.read_mask(info.mask_path(first)), drawn)
    assert info.json_path(other).read_bytes() == kept and not info.mask_path(other).exists()
    assert (f"label file drawn on a 1280x960 image, the frame is 640x480: {info.json_path(other)}; frame {other} "
            f"is passed over, as saving would replace that file: mend it or move it away to label this frame") in err


@pytest.mark.gui
def test_without_a_usable_model_the_guess_is_differencing_and_a_note_says_why(unlabeled, xdisplay, tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    app = GuiApp(["label_images.py", "-s", "3", "--images", str(unlabeled), "--log-events"], xdisplay,
                 env={"HUMANSEG_WEIGHTS": str(broken)})
    try:
        ready = app.wait_event("ready")
        assert ready["source"] == "diff" and ready["shapes"] >= 1
        app.find_window(title_pattern(ready["title"]), size=(ready["window_width"], ready["window_height"]))
        app.key("q")
        assert app.wait_exit() == 0
        notes = [line for line in app.proc.stderr.read().splitlines() if line.startswith("note:")]
    finally:
        app.close()
    assert notes == [f"note: no model (weights file unreadable or corrupt: {broken} (not a PyTorch weights file)); "
                     f"guessing by background differencing"]
