"""The labeler's editing model and geometry, driven directly (no window)."""

from __future__ import annotations

import json
import re
import time

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon

from humanseg import store
from humanseg.errors import HumansegError, StoreError
from humanseg.labeling.app import (
    AskFirst, DecisionKeys, Opened, Summary, frames_to_label, initial_label, initial_shapes, readable_frames,
    save_label,
)
from humanseg.labeling.editor import PolygonEditor
from humanseg.labeling.geometry import (
    Shape, mask_to_shapes, rasterize, shapes_geometry, shapes_to_mask, vertex,
)
from humanseg.labeling.guess import (
    EXISTING_EPSILON, GUESS_EPSILON, GUESS_MIN_AREA, Guess, Guesser, background_difference,
)
from humanseg.labeling.labelme import LABELME_VERSION, from_labelme, read_labelme, to_labelme
from humanseg.labeling.view import MouseAdapter, render
from humanseg.metrics import iou

H, W = 480, 640
SQUARE = [(100, 100), (300, 100), (300, 300), (100, 300)]


def clicks(editor: PolygonEditor, points, hole=False):
    return [editor.press(x, y, hole=hole) or editor.release(x, y) for x, y in points]


def draw(editor, points, hole=False):
    """Click each point then close on the first vertex."""
    for x, y in points:
        editor.press(x, y, hole=hole)
        editor.release(x, y)
    x, y = points[0]
    assert editor.press(x + 3, y + 2) == "close"
    editor.release(x + 3, y + 2)


# ------------------------------------------------------------ drawing and closing

def test_clicks_close_polygon_into_mask():
    ed = PolygonEditor()
    actions = [ed.press(x, y) for x, y in SQUARE]
    assert actions == ["start", "add", "add", "add"]
    assert ed.drawing and not ed.shapes
    assert ed.mask(H, W).max() == 0  # an open polygon is not part of the mask
    assert ed.press(104, 96) == "close"  # 5.7 px from the first vertex
    assert not ed.drawing and len(ed.shapes) == 1
    mask = ed.mask(H, W)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    assert mask[200, 200] == 255 and mask[50, 50] == 0 and mask[200, 320] == 0
    assert np.count_nonzero(mask) == 200 * 200


def test_close_needs_three_vertices_and_10px():
    ed = PolygonEditor()
    ed.press(100, 100)
    ed.press(200, 100)
    # Near the first vertex but only 2 vertices so far: it is a new vertex.
    assert ed.press(103, 103) == "add"
    assert len(ed.current) == 3
    # 3 vertices now; 11 px away does not close ...
    assert ed.press(111, 100) == "add"
    assert ed.drawing
    # ... 10 px away does.
    assert ed.press(100, 110) == "close"
    assert len(ed.shapes) == 1 and len(ed.shapes[0].points) == 4


def test_a_polygon_of_no_area_does_not_close():
    # Three vertices on one line closed into a shape that drew nothing and that d could not pick.
    ed = PolygonEditor()
    clicks(ed, [(100, 100), (200, 200), (300, 300)])
    assert not ed.close() and ed.refused_close == ed.version and ed.drawing
    assert ed.press(102, 101) is None and ed.right_click(5, 5) is None and ed.drawing and not ed.shapes
    clicks(ed, [(300, 100)])  # off the line: the next close works, and the refusal is past
    assert ed.refused_close != ed.version and ed.close() and len(ed.shapes) == 1


def test_right_click_closes_and_needs_three_vertices():
    ed = PolygonEditor()
    ed.press(10, 10)
    ed.press(50, 10)
    assert ed.right_click(60, 60) is None and ed.drawing
    ed.press(50, 50)
    assert ed.right_click(400, 400) == "close"
    assert len(ed.shapes) == 1 and ed.shapes[0].points == [(10, 10), (50, 10), (50, 50)]


def test_more_polygons_are_unioned():
    ed = PolygonEditor()
    draw(ed, SQUARE)
    draw(ed, [(250, 250), (400, 250), (400, 400), (250, 400)])
    assert len(ed.shapes) == 2
    # Two 200x200 / 150x150 squares overlapping in 50x50.
    assert np.count_nonzero(ed.mask(H, W)) == 200 * 200 + 150 * 150 - 50 * 50


# ------------------------------------------------------------ undo / restart

def test_undo_removes_vertex_then_reopens_polygon():
    ed = PolygonEditor()
    draw(ed, SQUARE)
    assert ed.undo()  # reopens the polygon with all its vertices
    assert not ed.shapes and ed.current == [(float(x), float(y)) for x, y in SQUARE]
    assert ed.undo()
    assert len(ed.current) == 3
    while ed.undo():
        pass
    assert not ed.current and not ed.shapes
    assert not ed.undo()


def test_undo_without_history_leaves_the_opened_shapes_alone():
    # It reopened the opened label's last polygon and took vertices off it: z on a guess changed the
    # label saved by the next Enter, with no edit counted.
    ed = PolygonEditor([Shape(list(SQUARE))])
    assert not ed.undo()
    assert [s.points for s in ed.shapes] == [[(float(x), float(y)) for x, y in SQUARE]] and not ed.current
    assert not ed.changed and ed.vertices_edited == 0
    ed.delete_vertex(0, 0)
    assert ed.undo() and not ed.changed and not ed.undo()


def test_restart_returns_to_initial_and_clear_empties():
    start = [Shape([(float(x), float(y)) for x, y in SQUARE])]
    ed = PolygonEditor(start)
    ed.clear()
    assert not ed.shapes and ed.changed
    draw(ed, [(10, 10), (60, 10), (60, 60)])
    ed.restart()
    assert not ed.changed and len(ed.shapes) == 1
    ed.undo()
    assert len(ed.shapes) == 1 and ed.shapes[0].points == [(10, 10), (60, 10), (60, 60)]


# ------------------------------------------------------------ holes and invalid polygons

def test_hole_is_subtracted():
    ed = PolygonEditor()
    draw(ed, SQUARE)
    ed.toggle_hole()
    draw(ed, [(150, 150), (250, 150), (250, 250), (150, 250)])
    assert [s.hole for s in ed.shapes] == [False, True]
    mask = ed.mask(H, W)
    assert mask[200, 200] == 0 and mask[120, 120] == 255
    assert np.count_nonzero(mask) == 200 * 200 - 100 * 100


def test_accept_and_skip_count_only_on_a_frame_seen_and_pressed_on_purpose():
    d = DecisionKeys()  # the labeler's: half a second up, 0.2 s between presses, 0.8 s of a held key
    assert not d.counts(10.3, shown_at=10.0)  # typed ahead: the frame was up 0.3 s
    assert d.counts(10.6, shown_at=10.0)
    # Held down: the next frame is up at 10.62, the auto-repeat starts 0.66 s after the press (X's
    # default), then comes every 40 ms: the same press, however long the next frame has been up.
    assert not any(d.counts(11.26 + 0.04 * i, shown_at=10.62) for i in range(30))
    # Released after 12.42, pressed again: too soon for the frame up at 12.4, then once it was seen.
    assert not d.counts(12.8, shown_at=12.4)
    assert d.counts(13.1, shown_at=12.4)
    # Two presses on purpose 0.7 s apart, the second frame seen for 0.6 s: the second is taken for the
    # first's auto-repeat, and the status line asks for another press.
    assert not d.ready(13.8, shown_at=13.2) and d.ready(13.95, shown_at=13.2)  # (the "ready" event: then)
    assert not d.counts(13.8, shown_at=13.2) and d.counts(14.2, shown_at=13.2)


def test_quit_and_skip_ask_once_where_the_frame_has_edits_not_saved():
    q = AskFirst()  # the labeler's, for q / Esc and for n: a second press within 3 s
    assert q.acts(5.0, unsaved=False) and not q.asking(5.0)  # nothing to lose: at once
    assert not q.acts(6.0, unsaved=True) and q.asking(6.0)  # (an Enter lost with it, say): asks
    assert q.acts(8.9, unsaved=True)  # pressed again: acts
    assert not q.asking(9.0) and not q.acts(9.0, unsaved=True)  # too late: asks again
    assert not q.acts(12.5, unsaved=True) and q.acts(12.6, unsaved=True)  # a held q: its repeat quits
    # What counts as not saved: the shapes changed from those the frame opened with, or a polygon begun.
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert not ed.unsaved
    ed.press(500, 400)
    assert ed.unsaved and ed.undo() and not ed.unsaved
    ed.delete_shape(0)
    assert ed.unsaved and ed.undo() and not ed.unsaved


def test_the_closing_line_says_what_the_session_did():
    assert Summary(3, to_label=4, saved=2, unchanged=1, skipped=1, vertices_edited=17, unreadable=1, quit=True).line() \
        == ("set 3: saved 2 of 4 frame(s) (1 accepted unchanged), 1 skipped, 17 vertices edited, "
            "1 passed over (unreadable or not bkg.png's size) (quit early)")
    assert Summary(3, to_label=2, saved=2).line() == \
        "set 3: saved 2 of 2 frame(s) (0 accepted unchanged), 0 skipped, 0 vertices edited"


def test_undo_takes_back_a_hole_switch_and_restores_the_mode():
    # h while drawing was not undoable, and z then left "HOLE mode" on the status line over a polygon
    # that closed as a person.
    ed = PolygonEditor()
    clicks(ed, [(100, 100), (300, 100), (300, 300)])
    ed.toggle_hole()
    assert ed.hole_mode and ed.current_hole
    assert ed.undo()  # takes back the switch, not a vertex
    assert (ed.hole_mode, ed.current_hole, len(ed.current)) == (False, False, 3)
    ed.toggle_hole()
    clicks(ed, [(100, 300)])
    assert ed.undo()  # the vertex; the polygon is still a hole
    assert (ed.hole_mode, ed.current_hole, len(ed.current)) == (True, True, 3)
    assert ed.undo()  # the switch
    assert (ed.hole_mode, ed.current_hole) == (False, False)
    assert ed.close() and [s.hole for s in ed.shapes] == [False]
    # A hole drawn with Shift (hole mode off), a vertex undone: the mode stays off, and the next
    # polygon drawn is a person, not another hole.
    ed = PolygonEditor()
    draw(ed, SQUARE)
    clicks(ed, [(150, 150), (250, 150), (250, 250), (150, 250)], hole=True)
    assert ed.undo() and ed.current_hole and not ed.hole_mode
    assert ed.close()
    draw(ed, [(400, 350), (500, 350), (500, 420)])
    assert [s.hole for s in ed.shapes] == [False, True, False] and not ed.hole_mode


def test_shift_press_draws_hole_and_later_shapes_fill_it_again():
    ed = PolygonEditor()
    draw(ed, SQUARE)
    draw(ed, [(150, 150), (250, 150), (250, 250), (150, 250)], hole=True)
    draw(ed, [(190, 190), (210, 190), (210, 210), (190, 210)])  # an island inside the hole
    mask = ed.mask(H, W)
    assert mask[200, 200] == 255 and mask[170, 170] == 0
    assert np.count_nonzero(mask) == 200 * 200 - 100 * 100 + 20 * 20


def test_self_intersecting_bow_tie_is_repaired():
    ed = PolygonEditor()
    draw(ed, [(100, 100), (300, 300), (300, 100), (100, 300)])
    geom = ed.geometry()
    assert geom.is_valid and geom.geom_type == "MultiPolygon" and len(geom.geoms) == 2
    assert geom.area == pytest.approx(20000)
    mask = ed.mask(H, W)
    # mask[row, col]: the two triangles sit on the left and right, the wedges above/below are empty.
    assert mask[200, 150] == 255 and mask[200, 250] == 255
    assert mask[110, 200] == 0 and mask[290, 200] == 0
    assert abs(np.count_nonzero(mask) - 20000) / 20000 < 0.01


@pytest.mark.parametrize("points", [
    [(10.3, 20.7), (400.1, 50.2), (200.5, 450.9)],
    [(320, 40), (420, 200), (600, 240), (430, 300), (330, 460), (280, 300), (60, 240), (250, 200)],
    [(50, 50), (590, 60), (600, 430), (40, 440), (300, 240)],
])
def test_mask_area_matches_polygon_area(points):
    mask = shapes_to_mask([Shape(points)], H, W)
    area = Polygon(points).area
    assert abs(np.count_nonzero(mask) - area) / area < 0.01


def test_mask_is_clipped_to_the_image():
    mask = shapes_to_mask([Shape([(-50, -50), (700, -50), (700, 100), (-50, 100)])], H, W)
    assert mask.shape == (H, W)
    assert np.count_nonzero(mask) == 100 * W  # pixel centres of rows 0..99 (the edge y=100 is open)


def test_a_polygon_with_a_spike_draws_its_area():
    # A vertex clicked out and back along an edge: make_valid gives the square and a line, which draws
    # nothing (it is not passed on to the rasteriser as an area).
    spike = [(100, 100), (300, 100), (300, 300), (100, 300), (100, 400), (100, 300)]
    ed = PolygonEditor()
    clicks(ed, spike)
    assert ed.close()
    assert np.array_equal(ed.mask(H, W), shapes_to_mask([Shape(list(SQUARE))], H, W))
    assert np.count_nonzero(ed.mask(H, W)) == 200 * 200


def test_a_hole_drawn_past_the_person_adds_nothing_outside_it():
    mask = shapes_to_mask([Shape(list(SQUARE)), Shape([(250, 150), (400, 150), (400, 250), (250, 250)], hole=True)],
                          H, W)
    assert mask[200, 350] == 0 and mask[200, 200] == 255
    assert np.count_nonzero(mask) == 200 * 200 - 50 * 100


def test_shapes_are_applied_in_order_and_a_run_of_one_kind_is_one_union(monkeypatch):
    # Person shapes unioned in, holes cut from what came before, in order (a person drawn after a hole
    # fills it again). Added one at a time, the work grew with the square of their number: 2,000
    # specks outlined by --redo took 9 s at every redraw. Now one union per run of one kind.
    from shapely.geometry.base import BaseGeometry

    from humanseg.labeling.geometry import shape_geometry

    rng = np.random.default_rng(3)
    shapes = []
    for i in range(300):
        x, y = rng.uniform(-20, 600), rng.uniform(-20, 440)
        w, h = rng.uniform(3, 80, 2)
        shapes.append(Shape([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], hole=bool(i % 7 == 3 or i % 11 == 5)))
    expected = Polygon()
    for shape in shapes:  # the definition, one shape at a time
        part = shape_geometry(shape.points)
        expected = expected.difference(part) if shape.hole else expected.union(part)
    assert np.array_equal(shapes_to_mask(shapes, H, W), rasterize(expected, H, W))
    assert 0 < np.count_nonzero(shapes_to_mask(shapes, H, W)) < H * W
    calls = []
    for name in ("union", "difference"):
        real = getattr(BaseGeometry, name)
        monkeypatch.setattr(BaseGeometry, name, lambda self, other, _real=real: calls.append(1) or _real(self, other))
    specks = [Shape([(x, y), (x + 3, y), (x + 3, y + 3), (x, y + 3)]) for x, y in rng.uniform(0, 470, (2000, 2))]
    specks.insert(1000, Shape([(0, 0), (100, 0), (100, 100)], hole=True))
    shapes_geometry(specks)
    assert len(calls) <= 3  # (3 runs: specks, the hole, specks)


# ------------------------------------------------------------ vertex editing

def test_drag_vertex_moves_it_and_changes_mask():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    before = ed.mask(H, W).copy()
    assert ed.press(302, 301) == "grab"
    ed.move(340, 320)
    ed.move(400, 400)
    assert ed.release(400, 400) == "moved"
    assert ed.shapes[0].points[2] == (400.0, 400.0)
    after = ed.mask(H, W)
    assert before[350, 350] == 0 and after[350, 350] == 255
    assert ed.vertices_edited == 1 and ed.changed
    ed.undo()
    assert not ed.changed


def test_grab_without_move_changes_nothing():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert ed.press(100, 100) == "grab"
    assert ed.release(100, 100) is None
    assert not ed.changed and ed.vertices_edited == 0
    assert not ed.undo() and not ed.drawing  # nothing was pushed by the grab
    # A click beside a vertex (within the grab radius), or a press that trembles by a pixel or two,
    # moved the vertex to the pointer: a changed label from a click.
    assert ed.press(104, 104) == "grab"
    ed.move(105, 103)
    assert ed.release(105, 103) is None
    assert not ed.changed and ed.shapes[0].points[0] == (100.0, 100.0)
    assert ed.press(104, 104) == "grab"
    ed.move(110, 110)  # a drag, once past half the grab radius: the vertex follows the pointer
    assert ed.release(111, 109) == "moved" and ed.shapes[0].points[0] == (111.0, 109.0)


def test_a_double_click_adds_one_vertex():
    ed = PolygonEditor()
    assert ed.press(10, 10) == "start"
    assert ed.press(50, 10) == "add"
    assert ed.press(50, 10) is None  # the double click's second press
    assert ed.current == [(10.0, 10.0), (50.0, 10.0)]


def test_press_on_edge_inserts_vertex_and_drags_it():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert ed.press(200, 102) == "insert"
    assert ed.shapes[0].points[1] == (200.0, 100.0)
    ed.move(200, 50)
    ed.release(200, 50)
    assert len(ed.shapes[0].points) == 5 and ed.shapes[0].points[1] == (200.0, 50.0)
    mask = ed.mask(H, W)
    assert mask[80, 200] == 255 and mask[80, 110] == 0


def test_a_click_on_an_edge_inserts_a_vertex_undone_by_one_z():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    draw(ed, [(400, 400), (450, 400), (450, 450)])
    assert ed.press(200, 100) == "insert"
    ed.release(200, 100)  # a click right on the edge, no drag
    assert len(ed.shapes[0].points) == 5
    assert ed.undo() and len(ed.shapes[0].points) == 4 and len(ed.shapes) == 2  # the insert, not the triangle
    # The closing edge (last vertex back to the first) is an edge as the others are.
    assert ed.press(100, 200) == "insert" and ed.shapes[0].points[-1] == (100.0, 200.0)


def test_z_during_a_drag_lets_the_vertex_go():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert ed.press(300, 300) == "grab"
    ed.move(320, 320)
    assert ed.undo() and ed.shapes[0].points[2] == (300.0, 300.0)  # the drag so far, taken back
    assert not ed.move(350, 350) and ed.shapes[0].points[2] == (300.0, 300.0)  # and nothing held


def test_an_edit_during_a_drag_lets_the_vertex_go():
    # Keys and right clicks reach the editor while the left button holds a vertex.
    two = [Shape([(float(x), float(y)) for x, y in SQUARE]), Shape([(400.0, 400.0), (450.0, 400.0), (450.0, 450.0)])]
    ed = PolygonEditor([s.copy() for s in two])
    assert ed.press(300, 300) == "grab"
    ed.move(310, 310)
    assert ed.delete_shape_at(310, 310)  # "d" over the square: the vertex held goes with it
    assert not ed.move(320, 320) and ed.release(320, 320) is None  # no IndexError, nothing held
    draw(ed, [(10, 10), (60, 10), (60, 60)])
    assert not ed.move(500, 400)  # a later mouse move, button up, moves nothing
    assert ed.shapes[-1].points[0] == (10.0, 10.0)
    ed.undo(), ed.undo(), ed.undo(), ed.undo(), ed.undo()  # the triangle, then the delete
    assert [s.points for s in ed.shapes] == [[(100.0, 100.0), (300.0, 100.0), (310.0, 310.0), (100.0, 300.0)],
                                             two[1].points]  # the drag's move is kept as its own step
    ed = PolygonEditor([s.copy() for s in two])
    assert ed.press(300, 300) == "grab"  # vertex 2 of the square
    ed.move(305, 305)
    assert ed.right_click(300, 100) == "delete_vertex"  # vertex 1 goes: vertex 2 is now vertex 1
    ed.move(200, 250)
    ed.release(200, 250)
    assert ed.shapes[0].points == [(100.0, 100.0), (305.0, 305.0), (100.0, 300.0)]
    for edit in ("clear", "restart"):
        ed = PolygonEditor([s.copy() for s in two])
        assert ed.press(300, 300) == "grab"
        getattr(ed, edit)()
        assert not ed.dragging and not ed.move(1, 1)


def test_right_click_deletes_vertex_and_tiny_shape():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert ed.right_click(300, 300) == "delete_vertex"
    assert len(ed.shapes[0].points) == 3
    assert np.count_nonzero(ed.mask(H, W)) == pytest.approx(20000, rel=0.01)
    ed.right_click(100, 100)
    assert not ed.shapes  # fewer than 3 vertices left: the shape goes


def test_delete_shape_under_pointer():
    ed = PolygonEditor([Shape(list(SQUARE)), Shape([(400, 400), (450, 400), (450, 450)])])
    assert not ed.delete_shape_at(20, 20)
    assert ed.delete_shape_at(200, 200)
    assert len(ed.shapes) == 1 and ed.shapes[0].points[0] == (400, 400)


def test_an_outline_reaches_a_few_pixels_for_an_insert_and_one_for_a_delete():
    # A press within 5 px of an outline inserts a vertex there; 6 px off it, a new polygon starts (a
    # second person beside the first is drawn, not the first one's outline bent to it). `d` deletes
    # the shape under the pointer, or within a pixel of its outline, not one 2 px away.
    def square():
        return PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])

    assert square().edge_radius == 5.0
    assert square().press(200, 105) == "insert" and square().press(195, 100) == "insert"
    assert square().press(200, 94) == "start" and square().press(306, 200) == "start"
    ed = square()
    assert not ed.delete_shape_at(302, 200) and not ed.delete_shape_at(200, 98) and len(ed.shapes) == 1
    assert ed.delete_shape_at(300.9, 200) and not ed.shapes


def test_a_corner_or_edge_shared_by_two_shapes_is_the_one_drawn_on_top():
    # A hole drawn with a corner on the person's outline: the corner grabbed, or the edge pressed, is
    # the hole's, as `d` there deletes the hole (the topmost shape); it was the outline under it.
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE]),
                        Shape([(100.0, 100.0), (200.0, 100.0), (150.0, 200.0)], hole=True)])
    assert ed.vertex_at(100, 100) == (1, 0) and ed.edge_at(150, 102)[:2] == (1, 0)
    assert ed.press(101, 101) == "grab"
    ed.move(120, 130)
    assert ed.release(120, 130) == "moved"
    assert ed.shapes[1].points[0] == (120.0, 130.0) and ed.shapes[0].points[0] == (100.0, 100.0)
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE]),
                        Shape([(100.0, 100.0), (200.0, 100.0), (150.0, 200.0)], hole=True)])
    assert ed.press(150, 101) == "insert"
    ed.release(150, 101)
    assert len(ed.shapes[1].points) == 4 and len(ed.shapes[0].points) == 4
    assert ed.vertex_at(200, 200) is None and ed.vertex_at(300, 107) == (0, 1)  # else the nearest, in reach


def test_vertices_edited_counts_effort():
    ed = PolygonEditor()
    draw(ed, SQUARE)
    assert ed.vertices_edited == 4
    ed.press(300, 300)
    ed.move(310, 310)
    ed.release(310, 310)
    ed.right_click(100, 100)
    assert ed.vertices_edited == 6
    assert ed.press(205, 306) == "insert"  # on an edge: inserted and dragged is one vertex edited
    ed.move(205, 320)
    assert ed.release(205, 330) == "moved" and ed.vertices_edited == 7


def test_an_edit_taken_back_is_not_counted_as_effort():
    # z and r left the count as it was: a guess cleared with c then z back, saved unchanged, was
    # "70 vertices edited".
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert ed.clear() and ed.vertices_edited == 4
    assert ed.undo() and ed.vertices_edited == 0 and not ed.changed
    clicks(ed, [(400, 400), (450, 400)])
    assert ed.vertices_edited == 2 and ed.undo() and ed.vertices_edited == 1
    ed.restart()
    assert ed.vertices_edited == 0 and not ed.changed


def test_undoing_a_close_leaves_hole_mode_as_the_user_last_set_it():
    # Each undo step restored the hole mode of its time: h pressed off after drawing a hole, two z's
    # (the hole's close, then its last vertex) switched it back on, and the next polygon was a hole.
    ed = PolygonEditor()
    draw(ed, SQUARE)
    ed.toggle_hole()
    draw(ed, [(150, 150), (250, 150), (250, 250)])
    assert not ed.toggle_hole()
    assert ed.undo() and ed.current_hole and not ed.hole_mode  # the hole reopened, still a hole
    assert ed.undo() and len(ed.current) == 2 and not ed.hole_mode
    clicks(ed, [(250, 250)])
    assert ed.close()
    draw(ed, [(400, 350), (500, 350), (500, 420)])
    assert [s.hole for s in ed.shapes] == [False, True, False]


def test_a_click_on_the_first_vertex_of_a_polygon_of_two_adds_a_vertex_there():
    # The README's rule: only from 3 vertices does the first vertex close; before, a click there adds one.
    ed = PolygonEditor()
    clicks(ed, [(100, 100), (200, 100)])
    assert ed.press(100, 100) == "add" and ed.current == [(100.0, 100.0), (200.0, 100.0), (100.0, 100.0)]


def test_a_drag_follows_the_pointer_past_half_the_grab_distance_and_back():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    # 4 px is past half the grab distance (3.5 px): a drag, not a tremor.
    assert ed.press(100, 100) == "grab" and ed.move(104, 100)
    assert ed.release(104, 100) == "moved" and ed.shapes[0].points[0] == (104.0, 100.0)
    # Dragged out, then brought back near where the press was: the vertex follows it back.
    assert ed.press(104, 100) == "grab"
    ed.move(140, 100)
    assert ed.move(105, 101) and ed.release(105, 101) == "moved" and ed.shapes[0].points[0] == (105.0, 101.0)
    # A press beside a vertex released right on it leaves it where it was: no edit, no undo step.
    edited = ed.vertices_edited
    assert ed.press(110, 105) == "grab" and ed.release(105, 101) is None
    assert ed.shapes[0].points[0] == (105.0, 101.0) and ed.vertices_edited == edited
    assert ed.undo() and ed.shapes[0].points[0] == (104.0, 100.0)  # the second drag, not a third


def test_dragged_vertices_are_kept_to_2_decimals():
    # As clicks are (vertex()), so K.json's points draw exactly the mask saved beside them.
    ed = PolygonEditor([Shape([(100.0, 100.0), (300.0, 170.0), (120.0, 330.0)])])
    assert ed.press(120, 330) == "grab"
    ed.move(150.123456, 360.98765)
    assert ed.release(150.123456, 360.98765) == "moved" and ed.shapes[0].points[2] == (150.12, 360.99)


def test_the_mask_follows_every_edit_while_it_is_shown():
    # The view renders the mask between edits (it is cached on editor.version): an edit that did not
    # bump the version left the tint, and the mask saved on Enter, as they were before it.
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE]),
                        Shape([(400.0, 300.0), (500.0, 300.0), (450.0, 400.0)])])

    def shown_is_drawn():
        assert np.array_equal(ed.mask(H, W), shapes_to_mask(ed.shapes, H, W))

    edits = [lambda: clicks(ed, [(200, 100)]),  # insert on an edge, released in place
             lambda: ed.right_click(100, 100),  # delete a vertex
             lambda: ed.right_click(400, 300),  # delete a triangle's vertex: the triangle goes
             ed.undo, lambda: ed.delete_shape_at(450, 340), ed.restart, ed.clear, ed.undo]
    shown_is_drawn()
    for edit in edits:
        before = ed.version
        edit()
        assert ed.version != before  # redrawn (an inserted vertex changes no pixel, but is shown)
        shown_is_drawn()
    # A drag that flattens the triangle, shown as it goes, then taken back on release.
    assert ed.press(450, 400) == "grab"
    ed.move(450, 340)
    shown_is_drawn()
    ed.move(450, 300)
    shown_is_drawn()
    assert ed.release(450, 300) is None and ed.shapes[1].points[2] == (450.0, 400.0)
    shown_is_drawn()


def test_deleting_a_polygon_counts_its_vertices_as_edited():
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE]),
                        Shape([(400.0, 300.0), (500.0, 300.0), (450.0, 400.0)])])
    assert ed.delete_shape_at(200, 200) and ed.vertices_edited == 4  # d on the square
    assert ed.right_click(400, 300) == "delete_vertex" and not ed.shapes
    assert ed.vertices_edited == 4 + 3  # the vertex, and the two left with it


def test_d_and_c_take_away_the_polygon_being_drawn():
    ed = PolygonEditor()
    clicks(ed, [(100, 100), (200, 100)])
    assert ed.delete_shape_at(500, 400) and not ed.drawing  # d, the pointer anywhere
    assert ed.undo() and ed.current == [(100.0, 100.0), (200.0, 100.0)]
    assert ed.clear() and not ed.drawing and not ed.shapes  # c, with no closed polygon
    assert ed.undo() and len(ed.current) == 2


def test_restart_after_restart_and_an_edit_goes_back_to_the_opened_label():
    opened = [(float(x), float(y)) for x, y in SQUARE]
    ed = PolygonEditor([Shape(list(opened))])
    ed.restart()
    assert ed.press(300, 300) == "grab"
    ed.move(350, 350)
    assert ed.release(350, 350) == "moved" and ed.changed  # an edit after r is a change, to be saved
    ed.restart()
    assert ed.shapes[0].points == opened and not ed.changed


def test_a_press_takes_the_nearest_of_vertices_and_edges_close_together():
    # A guess's outline has vertices a few pixels apart, and a thin arm edges as close.
    ed = PolygonEditor([Shape([(100.0, 100.0), (106.0, 100.0), (106.0, 200.0), (100.0, 200.0)])])
    assert ed.press(101, 100) == "grab"
    ed.move(80, 90)
    ed.release(80, 90)
    assert ed.shapes[0].points[:2] == [(80.0, 90.0), (106.0, 100.0)]
    ed = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (300.0, 105.0), (100.0, 105.0)])])
    assert ed.press(200, 100) == "insert"  # on the top edge, the bottom one 5 px away
    ed.release(200, 100)
    assert ed.shapes[0].points == [(100.0, 100.0), (200.0, 100.0), (300.0, 100.0), (300.0, 105.0), (100.0, 105.0)]


def test_d_in_a_hole_deletes_the_hole_not_the_person_around_it():
    square = Shape([(float(x), float(y)) for x, y in SQUARE])
    ed = PolygonEditor([square, Shape([(150.0, 150.0), (250.0, 150.0), (250.0, 250.0), (150.0, 250.0)], hole=True)])
    assert ed.delete_shape_at(200, 200)
    assert [(s.points, s.hole) for s in ed.shapes] == [(square.points, False)]
    assert np.count_nonzero(ed.mask(H, W)) == 200 * 200


def test_a_vertex_dragged_onto_its_neighbour_leaves_the_polygon_editable():
    # A corner taken out by dragging it onto the next one: two vertices at one place, an edge of no
    # length, which every later press away from the vertices measures its distance to.
    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    assert ed.press(300, 300) == "grab"
    ed.move(300, 200)
    assert ed.release(300, 100) == "moved" and ed.shapes[0].points[1:3] == [(300.0, 100.0), (300.0, 100.0)]
    assert ed.press(200, 102) == "insert" and ed.release(200, 102) == "moved"
    assert ed.press(500, 400) == "start"


def test_k_json_draws_exactly_the_mask_saved_with_it(tmp_path):
    # The json held points rounded to 2 decimals while the mask came from the unrounded ones: clicks at
    # zoom 3 (33.666... px) or a guess's outline drew other pixels when the json was opened again.
    info, _ = one_grey_frame(tmp_path)
    rng = np.random.default_rng(5)
    editor = PolygonEditor()
    mouse = MouseAdapter(editor, size=(W, H), zoom=3.0)
    for _ in range(3):
        points = rng.integers(0, 3 * min(W, H), size=(7, 2))
        for x, y in points:
            mouse(cv2.EVENT_LBUTTONDOWN, int(x), int(y), cv2.EVENT_FLAG_LBUTTON)
            mouse(cv2.EVENT_LBUTTONUP, int(x), int(y), 0)
        mouse(cv2.EVENT_RBUTTONDOWN, 0, 0, 0)
    guess = np.zeros((H, W), np.uint8)
    cv2.ellipse(guess, (500, 300), (90, 140), 30, 0, 360, 255, -1)
    editor.shapes += mask_to_shapes(guess, GUESS_EPSILON)
    assert len(editor.shapes) >= 4
    mask_path, json_path = save_label(info, 0, editor, (H, W), Opened(mask=False, json=False))
    saved = store.read_mask(mask_path)
    assert np.array_equal(shapes_to_mask(read_labelme(json_path, (H, W)), H, W), saved)
    assert np.array_equal(saved, editor.mask(H, W))  # and the tint shown


def test_a_click_on_the_outermost_pixels_puts_the_vertex_on_the_frames_edge():
    # A click lands on a pixel's centre, and a pixel is in the mask when its centre is inside: corners
    # clicked on the last row and column left both out (a person cut off by the bottom of the frame got
    # a background stripe under them); at zoom 4 the same clicks reached past the edge.
    # (Zooms that are not binary fractions, and frames shown at a size rounded down, as a 1640x1232
    # frame fitted to 958x720: decided in frame coordinates, float rounding left the edge out.)
    from humanseg.display import display_size, fit_zoom

    for w, h, zoom in ((W, H, 1.0), (W, H, 4.0), (W, H, 0.5), (W, H, 1.5), (W, H, 0.75), (1640, 1232, None),
                       (1366, 768, None), (3264, 2448, None), (161, 121, 3.0)):
        zoom = fit_zoom(w, h) if zoom is None else zoom
        editor = PolygonEditor()
        mouse = MouseAdapter(editor, size=(w, h), zoom=zoom)
        sw, sh = display_size(w, h, zoom)
        for x, y in ((0, 0), (sw - 1, 0), (sw - 1, sh - 1), (0, sh - 1)):
            mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON)
            mouse(cv2.EVENT_LBUTTONUP, x, y, 0)
        mouse(cv2.EVENT_RBUTTONDOWN, 0, 0, 0)
        assert editor.shapes[0].points == [(-0.5, -0.5), (w - 0.5, -0.5), (w - 0.5, h - 0.5), (-0.5, h - 0.5)], (w, zoom)
        assert editor.mask(h, w).min() == 255, (w, zoom)
    editor = PolygonEditor()  # one pixel in: a vertex there, as clicked
    MouseAdapter(editor, size=(W, H))(cv2.EVENT_LBUTTONDOWN, 1, H - 2, cv2.EVENT_FLAG_LBUTTON)
    assert editor.current == [(1.0, H - 2.0)]
    # A window made smaller than the picture (a tiling window manager ignores its size): 640x480 drawn
    # 400x300, the window's last pixel (399, 299) comes as (638, 478), which left the last row and
    # column out; the one before it, (636, 476), is a vertex there.
    for drawn, last, before in ((400, (638, 478), (636, 476)), (640, (639, 479), (638, 478))):
        editor = PolygonEditor()
        mouse = MouseAdapter(editor, size=(W, H))
        mouse.fitted(drawn)
        for x, y in ((0, 0), (last[0], 0), last, (0, last[1])):
            mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON)
            mouse(cv2.EVENT_LBUTTONUP, x, y, 0)
        mouse(cv2.EVENT_RBUTTONDOWN, 0, 0, 0)
        assert editor.mask(H, W).min() == 255, drawn
        editor = PolygonEditor()
        mouse = MouseAdapter(editor, size=(W, H))
        mouse.fitted(drawn)
        mouse(cv2.EVENT_LBUTTONDOWN, *before, cv2.EVENT_FLAG_LBUTTON)
        assert editor.current == [tuple(map(float, before))], drawn


# ------------------------------------------------------------ mouse adapter and rendering

def test_mouse_adapter_ignores_double_click_event_and_reports_changes():
    import cv2

    ed = PolygonEditor()
    seen = []
    mouse = MouseAdapter(ed, seen.append)
    for x, y in SQUARE:
        mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON)
        mouse(cv2.EVENT_LBUTTONUP, x, y, 0)
    mouse(cv2.EVENT_LBUTTONDBLCLK, 100, 300, cv2.EVENT_FLAG_LBUTTON)
    assert len(ed.current) == 4
    mouse(cv2.EVENT_RBUTTONDOWN, 5, 5, 0)
    assert seen == ["start", "add", "add", "add", "close"]
    mouse(cv2.EVENT_LBUTTONDOWN, 300, 300, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_MOUSEMOVE, 320, 330, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONUP, 320, 330, 0)
    assert seen[-2:] == ["drag", "moved"] and ed.shapes[0].points[2] == (320.0, 330.0)


def test_mouse_adapter_shift_click_starts_a_hole():
    ed = PolygonEditor([Shape(list(SQUARE))])
    mouse = MouseAdapter(ed)
    for x, y in [(150, 150), (250, 150), (250, 250), (150, 250), (150, 150)]:
        mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON | cv2.EVENT_FLAG_SHIFTKEY)
        mouse(cv2.EVENT_LBUTTONUP, x, y, cv2.EVENT_FLAG_SHIFTKEY)
    assert [s.hole for s in ed.shapes] == [False, True]
    assert np.count_nonzero(ed.mask(H, W)) == 200 * 200 - 100 * 100


def test_mouse_adapter_keeps_a_dragged_vertex_on_the_frame():
    import cv2

    ed = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    mouse = MouseAdapter(ed, size=(W, H))
    mouse(cv2.EVENT_LBUTTONDOWN, 300, 300, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_MOUSEMOVE, W + 200, -40, cv2.EVENT_FLAG_LBUTTON)  # past the window's corner
    mouse(cv2.EVENT_LBUTTONUP, W + 260, -90, 0)
    assert ed.shapes[0].points[2] == (W - 0.5, -0.5)
    ed = mouse.editor = PolygonEditor([Shape([(float(x), float(y)) for x, y in SQUARE])])
    for (x, y), (to_x, to_y) in zip(SQUARE, [(-30, -20), (W + 9, -1), (W + 50, H + 70), (-1, H)]):
        mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON)
        mouse(cv2.EVENT_LBUTTONUP, to_x, to_y, 0)
    assert ed.mask(H, W).min() == 255  # dragged past every corner: every pixel, none lost by the clamp
    zoomed = MouseAdapter(PolygonEditor(), size=(W, H), zoom=0.5)
    zoomed(cv2.EVENT_LBUTTONDOWN, -5, W, 0)
    assert zoomed.editor.current == [(-0.5, H - 0.5)]


def test_render_tint_is_exactly_the_mask():
    frame = np.full((H, W, 3), 100, np.uint8)
    ed = PolygonEditor()
    draw(ed, [(50, 60), (400, 80), (380, 400), (200, 300)])
    shown = render(frame, ed, show_help=False)
    mask = ed.mask(H, W)
    # Away from the outline (lines and vertex dots), tinted pixels are exactly the mask's pixels.
    import cv2

    outline = cv2.dilate(np.uint8(cv2.Canny(mask, 1, 1) > 0) * 255, np.ones((9, 9), np.uint8)) > 0
    tinted = np.any(shown != frame, axis=2)
    assert np.array_equal(tinted[~outline], mask[~outline] > 0)


def test_render_draws_outlines_vertices_and_the_polygon_being_drawn_at_any_zoom():
    # What the labeler sees of its polygons, at 1:1 and enlarged (--zoom 3, or a small frame fitted):
    # each closed outline whole, a hole in its own colour, a dot on each vertex to grab, the
    # polygon being drawn with its line to the pointer, and the ring a click must land in to close
    # it, as large on screen as CLOSE_RADIUS whatever the zoom.
    from humanseg.display import to_display
    from humanseg.labeling.editor import CLOSE_RADIUS
    from humanseg.labeling.view import DRAW_LINE, HOLE_DRAW_LINE, HOLE_LINE, PERSON_LINE

    h, w = 120, 160
    frame = np.full((h, w, 3), 100, np.uint8)
    for zoom in (1.0, 3.0):
        editor = PolygonEditor([Shape([(20.0, 20.0), (80.0, 20.0), (80.0, 80.0), (20.0, 80.0)]),
                                Shape([(40.0, 40.0), (60.0, 40.0), (60.0, 60.0), (40.0, 60.0)], hole=True)],
                               close_radius=CLOSE_RADIUS / zoom)  # as the labeler makes it
        mouse = MouseAdapter(editor, zoom=zoom, size=(w, h))
        on_screen = [tuple(int(round(c)) for c in p) for p in to_display([(100, 20), (140, 20), (140, 60)], zoom)]
        for x, y in on_screen:  # a hole, drawn with Shift
            mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON | cv2.EVENT_FLAG_SHIFTKEY)
            mouse(cv2.EVENT_LBUTTONUP, x, y, cv2.EVENT_FLAG_SHIFTKEY)
        x, y = (int(round(c)) for c in to_display([(100, 60)], zoom)[0])
        mouse(cv2.EVENT_MOUSEMOVE, x, y, 0)  # the pointer, not dragging: where the line to it ends
        assert mouse.hover == pytest.approx((100, 60)) and len(editor.current) == 3
        shown = render(frame, editor, mouse.hover, show_help=False, zoom=zoom)
        assert shown.shape == (round(h * zoom), round(w * zoom), 3)

        def colour_at(x, y, color, dx=0, dy=0):
            """Whether the pixel at frame point (x, y) (moved by dx, dy screen pixels), or one beside
            it, is drawn in color."""
            sx, sy = (int(round(c)) for c in to_display([(x, y)], zoom)[0])
            near = shown[sy + dy - 1:sy + dy + 2, sx + dx - 1:sx + dx + 2].reshape(-1, 3).astype(int)
            return np.abs(near - color).max(axis=1).min() <= 40

        assert colour_at(20, 50, PERSON_LINE) and colour_at(50, 20, PERSON_LINE), zoom  # closing edge too
        assert colour_at(40, 50, HOLE_LINE) and colour_at(50, 60, HOLE_LINE), zoom
        assert not colour_at(30, 50, PERSON_LINE) and not colour_at(50, 50, HOLE_LINE), zoom  # (inside)
        corner = to_display([(20, 20)], zoom)[0].round().astype(int) - 1  # beside the corner, off both lines
        assert np.abs(shown[corner[1], corner[0]].astype(int) - PERSON_LINE).max() <= 40, zoom  # its dot
        assert colour_at(120, 20, HOLE_DRAW_LINE) and colour_at(140, 40, HOLE_DRAW_LINE), zoom  # drawn so far
        assert colour_at(120, 60, HOLE_DRAW_LINE), zoom  # to the pointer
        assert not colour_at(100, 40, HOLE_DRAW_LINE) and not colour_at(100, 40, DRAW_LINE), zoom  # still open
        ring = int(round(CLOSE_RADIUS))
        assert colour_at(100, 20, HOLE_DRAW_LINE, dy=ring) and not colour_at(100, 20, HOLE_DRAW_LINE, dy=ring // 2)


# ------------------------------------------------------------ labelme files

def test_labelme_round_trip(tmp_path):
    shapes = [Shape(list(SQUARE)), Shape([(150, 150), (250, 150), (200, 250)], hole=True)]
    doc = to_labelme(shapes, "4.png", H, W)
    assert doc["imagePath"] == "4.png" and doc["imageData"] is None
    assert (doc["imageHeight"], doc["imageWidth"]) == (H, W)
    assert [s["label"] for s in doc["shapes"]] == ["person", "hole"]
    assert all(s["shape_type"] == "polygon" for s in doc["shapes"])
    path = tmp_path / "4.json"
    path.write_text(json.dumps(doc))
    back = read_labelme(path)
    assert [(s.points, s.hole) for s in back] == [(s.points, s.hole) for s in shapes]


def test_labelme_rewrite_keeps_what_the_labeler_does_not_edit():
    kept_poly = {"label": "torso", "points": [[10, 10], [90.004, 10], [50, 80]], "group_id": 2,
                 "description": "d", "shape_type": "polygon", "flags": {"x": True}}
    edited = {"label": "person", "points": [[200, 200], [300, 200], [250, 300]], "group_id": 7,
              "description": "", "shape_type": "polygon", "flags": {}}
    point = {"label": "nose", "points": [[5, 5]], "shape_type": "point"}
    base = {"version": "4.5.6", "flags": {"ok": True}, "shapes": [kept_poly, point, edited], "imagePath": "old.png",
            "imageData": "aGk=", "imageHeight": H, "imageWidth": W, "extra": 1}
    shapes = [Shape([(10, 10), (90.0, 10), (50, 80)]),  # unchanged (to 2 decimals)
              Shape([(200, 200), (320, 200), (250, 300)]),  # a vertex moved: the labeler's own
              Shape([(150, 150), (180, 150), (170, 190)], hole=True)]  # new
    doc = to_labelme(shapes, "4.png", H, W, base=base)
    assert doc["shapes"][0] is kept_poly and doc["shapes"][3:] == [point]
    assert doc["shapes"][1]["points"] == [[200, 200], [320, 200], [250, 300]] and doc["shapes"][1]["group_id"] is None
    assert doc["shapes"][2]["label"] == "hole"
    assert {k: doc[k] for k in ("version", "flags", "imageData", "extra", "imagePath")} == {
        "version": "4.5.6", "flags": {"ok": True}, "imageData": "aGk=", "extra": 1, "imagePath": "4.png"}
    assert [(s.points, s.hole) for s in from_labelme(doc)] == [
        ([(10.0, 10.0), (90.004, 10.0), (50.0, 80.0)], False), *[(s.points, s.hole) for s in shapes[1:]]]
    assert base["shapes"] == [kept_poly, point, edited]  # the document read is not changed in place
    # Two polygons of the same points keep their own fields each; one of 2 points (drawing nothing, not
    # read) and one whose points carry a third value (read as x, y) are kept as they were.
    twins = [{**kept_poly, "group_id": 1}, {**kept_poly, "group_id": 2}]
    short = {"label": "person", "points": [[1, 1], [5, 5]], "shape_type": "polygon"}
    xyz = {"label": "person", "points": [[200, 200, 0], [300, 200, 0], [250, 300, 0]], "group_id": 9,
           "shape_type": "polygon"}
    base = {"shapes": [*twins, short, xyz]}
    doc = to_labelme(from_labelme(base), "4.png", H, W, base=base)
    assert doc["shapes"] == [*twins, xyz, short]
    # A vertex moved by a fraction of a pixel (a click at zoom 4 is a quarter pixel) is an edit too: the
    # base's polygon, holding the old point, would draw other pixels than the mask saved beside it. And
    # a file holding little more than its shapes is written with every key labelme needs to open it.
    nudged = [Shape([(10, 10), (90.0, 10), (50, 80.25)])]
    doc = to_labelme(nudged, "4.png", H, W, base={"shapes": [kept_poly]})
    assert doc["shapes"] == to_labelme(nudged, "4.png", H, W)["shapes"]  # the labeler's own, as drawn
    assert {k: doc[k] for k in ("version", "flags", "imageData", "imagePath", "imageHeight", "imageWidth")} == {
        "version": LABELME_VERSION, "flags": {}, "imageData": None, "imagePath": "4.png", "imageHeight": H,
        "imageWidth": W}


def test_labelme_shapes_that_are_not_polygons_draw_nothing_and_are_kept():
    # A linestrip (labelme's open outline) of 4 points is no area to fill into the mask, and an entry
    # that is no shape at all (a hand edit) is passed over, not a traceback that ends the session.
    linestrip = {"label": "person", "points": [[10, 10], [100, 10], [100, 100], [10, 100]],
                 "shape_type": "linestrip"}
    polygon = {"label": "person", "points": [[200, 100], [440, 100], [440, 400]], "shape_type": "polygon"}
    doc = {"shapes": ["a note", linestrip, polygon, None]}
    shapes = from_labelme(doc)
    assert [s.points for s in shapes] == [[(200.0, 100.0), (440.0, 100.0), (440.0, 400.0)]]
    assert to_labelme(shapes, "0.png", H, W, base=doc)["shapes"] == [polygon, "a note", linestrip, None]


def test_labelme_bad_file_names_it(tmp_path):
    from humanseg.errors import StoreError

    path = tmp_path / "2.json"
    path.write_text("{not json")
    with pytest.raises(StoreError, match="2.json"):
        read_labelme(path)
    with pytest.raises(StoreError, match="shapes"):
        from_labelme({"version": "5"}, "x.json")
    # Hand edits gone wrong: an integer of 400 digits (OverflowError), a point at 1e308 (shapely's
    # error later), an infinite image size (a traceback that ended the session).
    square = [[200, 100], [440, 100], [440, 400]]
    for points, said in (([[10 ** 400, 1], *square[1:]], "shape 0 has malformed points: x.json"),
                         ([[-1e308, 100], *square[1:]], "shape 0 has a point over 1e+06 px away: x.json")):
        with pytest.raises(StoreError, match=re.escape(said)):
            from_labelme({"shapes": [{"label": "person", "points": points}]}, "x.json")
    for shape in ({"label": "person"}, {"label": "person", "points": None},  # no points, null
                  {"label": "person", "points": [["a", 1], *square[1:]]},  # not a number
                  {"label": "person", "points": [[1], *square[1:]]}):  # no y
        with pytest.raises(StoreError, match=re.escape("shape 0 has malformed points: x.json")):
            from_labelme({"shapes": [shape]}, "x.json")
    with pytest.raises(StoreError, match=re.escape(f"label file unreadable (IsADirectoryError): {tmp_path}")):
        read_labelme(tmp_path)
    # Text the JSON reader refuses otherwise: an integer of 5000 digits (over Python's 4300-digit limit:
    # ValueError) and lists nested 100,000 deep (RecursionError) ended the labeler in a traceback.
    for text, error in (('{"shapes": [{"label": "person", "points": [[' + "9" * 5000 + ', 1], [2, 3], [4, 5]]}]}',
                         "ValueError"), ("[" * 100_000 + "]" * 100_000, "RecursionError")):
        path.write_text(text)
        with pytest.raises(StoreError, match=re.escape(f"label file unreadable ({error}): {path}")):
            read_labelme(path, (480, 640))
    path.write_text('{"shapes": [], "imageHeight": Infinity, "imageWidth": 640}')
    assert read_labelme(path, (480, 640)) == []  # no size it could be drawn on: taken as this frame's
    path.write_text('{"shapes": [], "imageHeight": null, "imageWidth": 640}')
    assert read_labelme(path, (480, 640)) == []
    # labelme reads a shape_type of null as a polygon: it was dropped, and accepting saved an empty mask.
    assert [s.points for s in from_labelme({"shapes": [{"label": "person", "points": square, "shape_type": None}]})] \
        == [[(200.0, 100.0), (440.0, 100.0), (440.0, 400.0)]]


def one_grey_frame(tmp_path):
    """images/set1 with a black bkg.png and one grey frame 0.png: (its SetInfo, the frame)."""
    root = tmp_path / "images"
    (root / "set1").mkdir(parents=True)
    store.write_image(root / "set1" / "bkg.png", np.zeros((H, W, 3), np.uint8))
    frame = np.full((H, W, 3), 90, np.uint8)
    store.write_image(root / "set1" / "0.png", frame)
    return store.scan_set(root, 1), frame


def test_unreadable_json_is_named_and_the_frame_opens_without_it(tmp_path, capsys):
    info, frame = one_grey_frame(tmp_path)
    info.json_path(0).write_text("{not json")
    # Not asked to redo the frame's label: the file is the user's, and saving would replace it.
    assert initial_shapes(info, 0, frame, None) == (None, "kept")
    assert (f"label file unreadable (JSONDecodeError): {info.json_path(0)}; frame 0 is passed over, as saving "
            f"would replace that file: mend it or move it away to label this frame") in capsys.readouterr().err
    info.json_path(0).write_bytes(b'{"shapes": [], "imagePath": "\xff0.png"}')  # not UTF-8 (Latin-1)
    assert initial_shapes(info, 0, frame, None) == (None, "kept")
    assert f"label file unreadable (UnicodeDecodeError): {info.json_path(0)}; frame 0" in capsys.readouterr().err
    info.json_path(0).write_text("{not json")
    mask = np.zeros((H, W), np.uint8)
    mask[100:300, 100:300] = 255
    store.write_image(info.mask_path(0), mask)
    shapes, source = initial_shapes(info, 0, frame, None)
    assert source == "mask" and iou(shapes_to_mask(shapes, H, W), mask) > 0.95
    assert "0.json; editing the mask's outline instead" in capsys.readouterr().err


def test_the_frames_a_walk_opens(copy_set):
    root = copy_set(3)
    (root / "set3" / "1_mask.png").unlink()
    (root / "set3" / "3_mask.png").unlink()
    info = store.scan_set(root, 3)
    assert frames_to_label(info, None, False) == [1, 3]  # the unlabeled ones
    assert frames_to_label(info, None, True) == [0, 1, 2, 3]  # --all
    assert frames_to_label(info, 2, False) == [2]  # --redo 2
    with pytest.raises(HumansegError, match=re.escape(f"--redo 7: no frame {root / 'set3' / '7.png'}")):
        frames_to_label(info, 7, False)


def test_a_saved_mask_reopens_as_outlines_that_draw_it_back_within_a_few_pixels(copy_set):
    # --redo of a frame labeled by another tool (a mask, no K.json): its outline is simplified by
    # half a pixel at most, so accepting it unchanged gives back the mask within 0.15% of its pixels
    # (50-70 px of a person's 60-90 thousand; at 1 px tolerance about 200).
    info = store.scan_set(copy_set(3), 3)
    for k in info.labeled[:3]:
        frame = store.read_frame(info, k)
        mask = store.read_mask(info.mask_path(k), frame.shape)
        shapes, source = initial_shapes(info, k, frame, None)
        assert source == "mask"
        assert np.count_nonzero(shapes_to_mask(shapes, *mask.shape) != mask) <= 0.0015 * np.count_nonzero(mask), k
    assert vertex(33.666666, 10.004) == (33.67, 10.0)  # points kept to 2 decimals, as K.json holds them


def test_a_json_drawn_on_another_image_size_is_not_opened_on_this_frame(tmp_path, capsys):
    # labelme on a half-size copy: its polygons would land in the wrong place on the frame.
    info, frame = one_grey_frame(tmp_path)
    square = [Shape([(10.0, 10.0), (100.0, 10.0), (100.0, 100.0), (10.0, 100.0)])]
    for h, w in ((H // 2, W // 2), (H, W // 2), (H // 2, W)):  # either side differing
        store.write_json(info.json_path(0), to_labelme(square, "0.png", h, w), overwrite=True)
        assert initial_shapes(info, 0, frame, None) == (None, "kept")
        with pytest.raises(HumansegError, match=re.escape(f"drawn on a {w}x{h} image, the frame is {W}x{H}")):
            read_labelme(info.json_path(0), (H, W))
        assert (f"label file drawn on a {w}x{h} image, the frame is {W}x{H}: {info.json_path(0)}; "
                f"frame 0 is passed over") in capsys.readouterr().err
    store.write_json(info.json_path(0), to_labelme(square, "0.png", H, W), overwrite=True)
    shapes, source = initial_shapes(info, 0, frame, None)
    assert source == "json" and [s.points for s in shapes] == [square[0].points]
    doc = json.loads(info.json_path(0).read_text())
    del doc["imageHeight"], doc["imageWidth"]  # a file without the size is taken as it is
    info.json_path(0).write_text(json.dumps(doc))
    assert [s.points for s in read_labelme(info.json_path(0), (H, W))] == [square[0].points]


def test_redo_of_a_broken_mask_starts_from_the_guess_and_saving_mends_it(tmp_path, capsys):
    root = tmp_path / "images"
    (root / "set1").mkdir(parents=True)
    bkg = np.zeros((H, W, 3), np.uint8)
    store.write_image(root / "set1" / "bkg.png", bkg)
    frame = bkg.copy()
    frame[100:300, 200:400] = 200
    store.write_image(root / "set1" / "0.png", frame)
    info = store.scan_set(root, 1)
    for broken in (b"cut short", store.encode_png(np.zeros((H // 2, W // 2), np.uint8))):
        info.mask_path(0).write_bytes(broken)
        shapes, source = initial_shapes(info, 0, frame, Guesser(bkg, use_model=False))
        guess = shapes_to_mask(shapes, H, W)
        assert source == "diff" and iou(guess, frame[..., 0]) > 0.95
        assert np.count_nonzero(guess) == pytest.approx(200 * 200, rel=0.05)
        err = capsys.readouterr().err
        assert str(info.mask_path(0)) in err and "starting from the guess instead" in err
    editor = PolygonEditor(shapes)
    save_label(info, 0, editor, (H, W), Opened(mask=True, json=False))
    saved = store.read_mask(info.mask_path(0), (H, W))
    assert iou(saved, frame[..., 0]) > 0.95 and np.count_nonzero(saved) == pytest.approx(200 * 200, rel=0.05)
    # Beside a K.json that cannot open either: it said the mask's outline would open, then that the
    # mask could not be read and the guess opened.
    info.json_path(0).write_text("{not json")
    info.mask_path(0).write_bytes(b"cut short")
    shapes, source = initial_shapes(info, 0, frame, Guesser(bkg, use_model=False))
    assert source == "diff"
    assert capsys.readouterr().err == (
        f"warning: label file unreadable (JSONDecodeError): {info.json_path(0)}; passed over\n"
        f"warning: mask unreadable or corrupt: {info.mask_path(0)}; starting from the guess instead (saving "
        f"replaces it and 0.json)\n")


def test_a_json_with_nan_or_infinity_is_named_and_the_frame_passed_over(tmp_path, capsys):
    info, frame = one_grey_frame(tmp_path)
    for bad in ("NaN", "Infinity", "-Infinity"):
        info.json_path(0).write_text('{"shapes": [{"label": "person", "points": [[%s, 10], [100, 10], '
                                     '[100, 100]]}]}' % bad)
        with pytest.raises(HumansegError, match="not a finite number"):
            read_labelme(info.json_path(0))
        assert initial_shapes(info, 0, frame, None) == (None, "kept")  # GEOS raised on these before
        assert "0.json; frame 0 is passed over" in capsys.readouterr().err


def square_label():
    mask = np.zeros((H, W), np.uint8)
    mask[10:50, 10:50] = 255
    return mask


def test_a_label_is_saved_whole_or_not_at_all(tmp_path, monkeypatch):
    info, frame = one_grey_frame(tmp_path)
    editor = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (300.0, 300.0)])])
    folder_before = sorted(p.name for p in info.path.iterdir())

    # K.json cannot be put in place (a folder holds its name): the new mask is taken back.
    info.json_path(0).mkdir()
    with pytest.raises(HumansegError, match="refusing to overwrite"):
        save_label(info, 0, editor, (H, W), Opened(mask=False, json=False))
    assert not info.mask_path(0).exists() and store.scan_set(info.path.parent, 1).unlabeled == [0]
    info.json_path(0).rmdir()
    assert sorted(p.name for p in info.path.iterdir()) == folder_before  # no temporaries left

    # Replacing a label (--redo): the old mask is put back, byte for byte.
    old = store.encode_png(square_label())
    info.mask_path(0).write_bytes(old)
    info.json_path(0).mkdir()
    with pytest.raises(IsADirectoryError):
        save_label(info, 0, editor, (H, W), Opened(mask=True, json=True))
    assert info.mask_path(0).read_bytes() == old
    info.json_path(0).rmdir()

    # A full disk while the json is written: nothing is replaced.
    real = store.write_temporary

    def full_on_json(tmp, data, path):
        if path.suffix == ".json":
            raise OSError(28, "No space left on device", str(path))
        return real(tmp, data, path)

    monkeypatch.setattr(store, "write_temporary", full_on_json)
    with pytest.raises(OSError, match="No space"):
        save_label(info, 0, editor, (H, W), Opened(mask=True, json=False))
    assert info.mask_path(0).read_bytes() == old and not info.json_path(0).exists()
    monkeypatch.undo()
    assert sorted(p.name for p in info.path.iterdir()) == sorted(folder_before + [info.mask_path(0).name])

    mask_path, json_path = save_label(info, 0, editor, (H, W), Opened(mask=True, json=False))
    assert np.array_equal(store.read_mask(mask_path), editor.mask(H, W))
    assert [s.points for s in read_labelme(json_path, (H, W))] == [s.points for s in editor.shapes]


def test_a_label_saved_meanwhile_by_another_labeler_is_not_overwritten(tmp_path):
    # Two people labeling one set both start at its first unlabeled frame.
    info, frame = one_grey_frame(tmp_path)
    opened = Opened.of(info, 0)
    assert opened == Opened(mask=False, json=False)
    editor = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (300.0, 300.0)])])
    theirs = store.encode_png(square_label())
    info.mask_path(0).write_bytes(theirs)
    info.json_path(0).write_text("{}")
    with pytest.raises(HumansegError, match="refusing to overwrite"):
        save_label(info, 0, editor, (H, W), opened)
    assert info.mask_path(0).read_bytes() == theirs and info.json_path(0).read_text() == "{}"
    info.mask_path(0).unlink()  # only their json there: our mask, already in place, is taken back
    with pytest.raises(HumansegError, match="refusing to overwrite"):
        save_label(info, 0, editor, (H, W), opened)
    assert not info.mask_path(0).exists() and info.json_path(0).read_text() == "{}"
    # A K.json there when the frame opened (left over without its mask) is replaced by the save.
    save_label(info, 0, editor, (H, W), Opened.of(info, 0))
    assert len(read_labelme(info.json_path(0))) == 1


def test_a_mask_another_tool_wrote_meanwhile_is_not_overwritten(tmp_path):
    # A K_mask.png with no K.json beside it (painted in another tool) while the frame was open.
    info, frame = one_grey_frame(tmp_path)
    opened = Opened.of(info, 0)
    editor = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (300.0, 300.0)])])
    theirs = store.encode_png(square_label())
    info.mask_path(0).write_bytes(theirs)
    with pytest.raises(HumansegError, match="refusing to overwrite"):
        save_label(info, 0, editor, (H, W), opened)
    assert info.mask_path(0).read_bytes() == theirs and not info.json_path(0).exists()


# ------------------------------------------------------------ mask → polygons → mask on real labels

def dev_masks(dev_root):
    out = []
    for n in store.list_sets(dev_root):
        info = store.scan_set(dev_root, n)
        out.extend(store.read_mask(info.mask_path(k)) for k in info.labeled)
    return out


def test_every_dev_mask_round_trips(dev_root):
    masks = dev_masks(dev_root)
    assert len(masks) >= 40
    for mask in masks:
        back = shapes_to_mask(mask_to_shapes(mask), *mask.shape)
        assert iou(mask, back) >= 0.99


def test_dev_masks_as_guesses_keep_shape_with_few_vertices(dev_root):
    for mask in dev_masks(dev_root):
        shapes = mask_to_shapes(mask, GUESS_EPSILON, GUESS_MIN_AREA)
        assert sum(len(s.points) for s in shapes) <= 400
        assert iou(mask, shapes_to_mask(shapes, *mask.shape)) >= 0.98


def test_guesses_keep_as_many_vertices_and_their_shape_at_any_frame_size(dev_root):
    # In pixels fixed for 640x480: a 1920x1440 guess kept 6 times the vertices (median 426), and at
    # 160x120 the gaps between arm and body were dropped as noise (IoU down to 0.95); at 320x240 a
    # tolerance under 3/4 px kept the pixel staircase (123 vertices).
    from humanseg.labeling.guess import Guess

    for size in ((1920, 1440), (320, 240), (160, 120)):
        counts = []
        for mask in list(dev_masks(dev_root))[::4]:
            if not mask.any():
                continue
            grown = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR if size[0] > W else cv2.INTER_NEAREST)
            grown = np.where(grown > 127, 255, 0).astype(np.uint8)
            shapes = Guess(grown, "pred").shapes()
            counts.append(sum(len(s.points) for s in shapes))
            assert iou(grown, shapes_to_mask(shapes, size[1], size[0])) >= 0.975, size
        assert counts and np.median(counts) <= 100, (size, counts)


def test_mask_with_hole_and_thin_parts_round_trips():
    mask = np.zeros((H, W), np.uint8)
    mask[100:300, 100:300] = 255
    mask[150:250, 150:250] = 0  # hole
    mask[190:210, 190:210] = 255  # island in the hole
    mask[400, 10:200] = 255  # 1 px line
    mask[20, 20] = 255  # single pixel
    shapes = mask_to_shapes(mask)
    assert any(s.hole for s in shapes)
    assert iou(mask, shapes_to_mask(shapes, H, W)) >= 0.99


def test_every_hole_of_an_outline_round_trips():
    # Both arms on the hips: two gaps in one outline, each a hole of its own.
    mask = np.zeros((H, W), np.uint8)
    mask[100:400, 200:440] = 255
    mask[200:260, 230:270] = 0
    mask[200:260, 370:410] = 0
    shapes = mask_to_shapes(mask)
    assert sum(s.hole for s in shapes) == 2
    assert np.array_equal(shapes_to_mask(shapes, H, W), mask)


def test_a_masks_outlines_run_along_its_pixels_edges():
    # Pixel (x, y) is centred at (x, y): an outline lies half a pixel outside the border pixels' centres
    # and a hole's half a pixel inside its own, so the polygons' area is the mask's pixel count (the
    # vertices the labeler shows and K.json holds sit on the pixels' edges).
    mask = np.zeros((H, W), np.uint8)
    mask[100:300, 100:300] = 255
    mask[150:160, 150:160] = 0  # a 10x10 hole
    mask[400, 500] = 255  # a single pixel
    shapes = mask_to_shapes(mask)
    outline, hole, pixel = shapes
    assert not outline.hole and hole.hole and not pixel.hole
    assert Polygon(outline.points).bounds == (99.5, 99.5, 299.5, 299.5)
    assert Polygon(hole.points).bounds == (149.5, 149.5, 159.5, 159.5)
    assert Polygon(pixel.points).bounds == (499.5, 399.5, 500.5, 400.5)
    # (within a pixel: a hole's traced outline cuts its corners, by a quarter pixel each)
    assert abs(shapes_geometry(shapes).area - np.count_nonzero(mask)) <= 1.5
    assert np.array_equal(shapes_to_mask(shapes, H, W), mask)


def test_region_inside_a_thin_rings_hole_larger_than_the_ring_round_trips():
    # A thin ring around a filled disc that does not touch it: the disc has the larger area, and
    # when it came first the ring's hole (drawn after it) erased it: 76,932 labeled px opened as 6,399.
    mask = np.zeros((H, W), np.uint8)
    cv2.circle(mask, (W // 2, H // 2), 200, 255, 6)
    cv2.circle(mask, (W // 2, H // 2), 150, 255, -1)
    for eps in (0.0, GUESS_EPSILON):
        assert iou(mask, shapes_to_mask(mask_to_shapes(mask, eps), H, W)) >= 0.98


def test_one_pixel_walls_and_rings_round_trip():
    # A hole's outline was subtracted before the half-pixel growing: a 1 px wall between a hole and the
    # outside went with it (the hole opened out), and a 1 px ring vanished.
    wall = np.zeros((80, 80), np.uint8)
    wall[10:51, 10:51] = 255
    wall[11:30, 15:30] = 0
    square_ring = cv2.rectangle(np.zeros((80, 80), np.uint8), (10, 10), (49, 49), 255, 1)
    round_ring = cv2.circle(np.zeros((80, 80), np.uint8), (40, 40), 20, 255, 1)
    for mask in (wall, square_ring, round_ring):
        assert np.array_equal(shapes_to_mask(mask_to_shapes(mask), 80, 80), mask)


def test_a_square_mask_opens_as_its_four_corners():
    # Each corner once, at the pixels' outer edges: no closing point repeated (a vertex over the first
    # that a drag would pull out of the outline).
    assert [(s.points, s.hole) for s in mask_to_shapes(square_label())] == \
        [([(9.5, 9.5), (49.5, 9.5), (49.5, 49.5), (9.5, 49.5)], False)]


def test_straight_one_pixel_lines_round_trip():
    # A straight 1 px line's contour is its two end points: kept as a line grown to its pixels.
    mask = np.zeros((80, 80), np.uint8)
    mask[20, 10:60] = 255
    mask[30:70, 70] = 255
    assert np.array_equal(shapes_to_mask(mask_to_shapes(mask), 80, 80), mask)


def test_guess_drops_tiny_blobs_and_holes():
    mask = np.zeros((H, W), np.uint8)
    mask[100:300, 100:300] = 255
    mask[200:204, 200:204] = 0  # 16 px hole: noise
    mask[10:14, 10:14] = 255  # 16 px blob: noise
    shapes = mask_to_shapes(mask, GUESS_EPSILON, GUESS_MIN_AREA)
    assert len(shapes) == 1 and not shapes[0].hole
    # A guess drops blobs under 150 px² at 640x480, and under as much of the frame at other sizes
    # (600 px² at 1280x960).
    for (h, w), small, large in (((480, 640), 12, 13), ((960, 1280), 24, 26), ((240, 320), 6, 7)):
        guess = np.zeros((h, w), np.uint8)
        guess[h // 4:h // 2, w // 4:w // 2] = 255  # the person
        guess[5:5 + small, 5:5 + small] = 255
        guess[h - 5 - large:h - 5, w - 5 - large:w - 5] = 255
        kept = shapes_to_mask(Guess(guess, "diff").shapes(), h, w)
        assert not kept[5:5 + small, 5:5 + small].any() and kept[h - 5 - large:h - 5, w - 5 - large:w - 5].all(), h


# ------------------------------------------------------------ guesses

def test_background_difference_finds_person_on_dev_frame(dev_root):
    info = store.scan_set(dev_root, 3)
    bkg = store.read_background(info)
    k = info.labeled[0]
    frame = store.read_frame(info, k, bkg.shape)
    guess = background_difference(frame, bkg)
    assert guess.shape == frame.shape[:2] and set(np.unique(guess)) <= {0, 255}
    assert iou(guess, store.read_mask(info.mask_path(k))) > 0.5


def test_background_difference_finds_the_people_of_every_dev_set(dev_root):
    # The guess of last resort, on every labeled dev frame: a mean IoU of 0.86 (the worst set 0.73).
    # A channel differing alone (a shirt of the wall's brightness, another hue) counts (the channels'
    # mean difference instead of their largest gave 0.82), and so does a faint one (a threshold of 64
    # gave 0.77).
    ious = []
    for n in store.list_sets(dev_root):
        info = store.scan_set(dev_root, n)
        bkg = store.read_background(info)
        ious += [iou(background_difference(store.read_frame(info, k, bkg.shape), bkg),
                     store.read_mask(info.mask_path(k))) for k in info.labeled]
    assert len(ious) >= 40 and np.mean(ious) >= 0.84


def test_background_difference_compensates_exposure():
    rng = np.random.default_rng(0)
    bkg = rng.integers(40, 200, (H, W, 3)).astype(np.uint8)
    frame = np.clip(bkg.astype(np.float32) * 1.2, 0, 255).astype(np.uint8)  # exposure shift only
    frame[200:300, 250:350] = (20, 240, 20)
    mask = background_difference(frame, bkg)
    assert mask[250, 300] == 255
    assert np.count_nonzero(mask) < 1.3 * 100 * 100


def test_guesser_prefers_pred_file(tmp_path):
    bkg = np.zeros((H, W, 3), np.uint8)
    frame = bkg.copy()
    frame[50:100, 50:100] = 255  # differencing would find this square
    pred = np.zeros((H, W), np.uint8)
    pred[200:400, 300:500] = 255
    store.write_image(tmp_path / "0_pred.png", pred)
    g = Guesser(bkg, use_model=False)
    guess = g.guess(frame, tmp_path / "0_pred.png")
    assert guess.source == "pred" and iou(guess.mask, pred) == 1.0
    fallback = g.guess(frame, tmp_path / "missing_pred.png")
    assert fallback.source == "diff" and fallback.mask[75, 75] == 255


def test_guesser_passes_over_a_bad_pred_file(tmp_path, capsys):
    # K_pred.png is only a guess: a corrupt one or one of another size must not end the labeling.
    bkg = np.zeros((H, W, 3), np.uint8)
    frame = bkg.copy()
    frame[50:100, 50:100] = 255
    corrupt, small = tmp_path / "0_pred.png", tmp_path / "1_pred.png"
    corrupt.write_bytes(b"not a png")
    store.write_image(small, np.zeros((H // 2, W // 2), np.uint8))
    g = Guesser(bkg, use_model=False)
    for path, why in ((corrupt, "unreadable or corrupt"), (small, "differs from its frame")):
        guess = g.guess(frame, path)
        assert guess.source == "diff" and guess.mask[75, 75] == 255
        err = capsys.readouterr().err
        assert why in err and str(path) in err and len(err.strip().splitlines()) == 1


def test_weights_named_for_a_set_with_nothing_to_label_are_checked_without_a_background(copy_set, capsys):
    # With every frame labeled there is no background to give the model, only its weights to check:
    # good weights are no error (given the empty background, the real model refused it, and the run
    # ended on `--weights ...: ...` instead of saying there is nothing to label).
    from humanseg.labeling.app import label_set
    from humanseg.model.checkpoint import DEFAULT_WEIGHTS

    root = copy_set(3)
    summary = label_set(root, 3, weights=str(DEFAULT_WEIGHTS))
    assert summary.to_label == 0 and "already have a mask" in capsys.readouterr().out
    (root / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(HumansegError, match="bad.pt"):  # bad ones still are
        label_set(root, 3, weights=str(root / "bad.pt"))


def test_unreadable_frames_are_passed_over_in_a_walk(copy_set, capsys):
    # One broken K.png must not stop the frames after it from being labeled, now or on a later run.
    root = copy_set(3, labels=False)
    info = store.scan_set(root, 3)
    corrupt, small, *good = info.frames
    info.frame_path(corrupt).write_bytes(b"not a png")
    store.write_image(info.frame_path(small), np.zeros((240, 320, 3), np.uint8), overwrite=True)
    background = store.read_background(info)
    summary, events = Summary(3, to_label=len(info.frames)), []
    walked = list(readable_frames(info, info.frames, background.shape, summary,
                                  lambda event, **f: events.append((event, f["frame"]))))
    assert [k for _, k, _ in walked] == good and all(f.shape == background.shape for _, _, f in walked)
    assert summary.unreadable == 2 and events == [("unreadable", corrupt), ("unreadable", small)]
    assert "2 passed over (unreadable or not bkg.png's size)" in summary.line()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and str(info.frame_path(corrupt)) in err[0] and "corrupt" in err[0]
    assert str(info.frame_path(small)) in err[1] and "differs from bkg.png" in err[1]
    # Alone (--redo K), the broken frame is the error itself.
    with pytest.raises(HumansegError, match="corrupt"):
        list(readable_frames(info, [corrupt], background.shape, Summary(3), lambda *a, **f: None))


def test_guesser_falls_back_when_model_unavailable():
    bkg = np.zeros((64, 64, 3), np.uint8)
    g = Guesser(bkg, use_model=True, weights="/nonexistent/weights.pt")
    guess = g.guess(bkg.copy())
    assert guess.source == "diff" and g.model_problem


def test_rasterize_empty_geometry():
    assert rasterize(shapes_geometry([]), 10, 20).shape == (10, 20)
    assert rasterize(shapes_geometry([]), 10, 20).max() == 0


class FakeSegmenter:
    """Stands in for humanseg.model's Segmenter: a fixed square, and it records the background."""

    def __init__(self):
        self.background = None

    def set_background(self, bkg):
        self.background = bkg

    def predict_mask(self, frame):
        mask = np.zeros(frame.shape[:2], np.uint8)
        mask[100:200, 300:400] = 255
        return mask


def test_guesser_uses_model_when_no_pred_and_loads_it_once():
    bkg = np.zeros((H, W, 3), np.uint8)
    loads = []

    def load(weights=None):
        loads.append(weights)
        return FakeSegmenter()

    g = Guesser(bkg, weights="w.pt", load=load)
    for _ in range(2):
        guess = g.guess(bkg.copy())
        assert guess.source == "model" and guess.mask[150, 350] == 255 and guess.mask[50, 50] == 0
    assert loads == ["w.pt"] and g._segmenter.background is bkg
    assert g.guess(bkg.copy(), pred_path=None).source == "model"


def test_a_model_that_cannot_be_loaded_is_tried_once_and_said_in_one_line():
    # Not loaded again for every frame (each would pay the load's time); the note on stderr and the
    # error of an explicit --weights are one line, and name the failure even when it says nothing.
    bkg = np.zeros((H, W, 3), np.uint8)
    for raised, said in ((RuntimeError("CUDA out of memory\n  while loading"), "CUDA out of memory"),
                         (MemoryError(), "MemoryError")):
        loads = []

        def load(weights=None, raised=raised):
            loads.append(weights)
            raise raised

        g = Guesser(bkg, weights="w.pt", load=load)
        assert [g.guess(bkg.copy()).source for _ in range(3)] == ["diff"] * 3
        assert loads == ["w.pt"] and g.model_problem == said
        with pytest.raises(HumansegError, match=f"^--weights w.pt: {said}$"):
            g.require_model()


def test_named_weights_guess_frames_that_have_a_k_pred(tmp_path):
    # label_images.py --weights W (a model trained since the capture) left W unused for every frame
    # the capture tool had saved a K_pred.png for.
    bkg = np.zeros((H, W, 3), np.uint8)
    store.write_image(tmp_path / "0_pred.png", np.zeros((H, W), np.uint8))
    named = Guesser(bkg, weights="w.pt", load=lambda weights=None: FakeSegmenter())
    assert named.guess(bkg.copy(), tmp_path / "0_pred.png").source == "model"
    default = Guesser(bkg, load=lambda weights=None: FakeSegmenter())
    assert default.guess(bkg.copy(), tmp_path / "0_pred.png").source == "pred"

    class Failing(FakeSegmenter):
        calls = 0

        def predict_mask(self, frame):
            Failing.calls += 1
            raise RuntimeError("out of memory")

    # The named model failing on a frame: K_pred.png before differencing; it is not asked again, and
    # the note on stderr says why the guesses are differencing.
    failing = Guesser(bkg, weights="w.pt", load=lambda weights=None: Failing())
    assert failing.guess(bkg.copy(), tmp_path / "0_pred.png").source == "pred"
    assert failing.guess(bkg.copy(), tmp_path / "1_pred.png").source == "diff"
    assert Failing.calls == 1 and failing.model_problem == "out of memory"


def test_guesser_falls_back_when_model_fails():
    from humanseg.errors import WeightsError

    def load(weights=None):
        raise WeightsError("no weights found: weights/humanseg.pt")

    bkg = np.zeros((H, W, 3), np.uint8)
    frame = bkg.copy()
    frame[50:150, 50:150] = 255
    g = Guesser(bkg, load=load)
    guess = g.guess(frame)
    assert guess.source == "diff" and guess.mask[100, 100] == 255
    assert "no weights found" in g.model_problem


def test_redo_opens_the_mask_when_it_was_changed_after_its_json(copy_set, capsys):
    # K_mask.png is the label and K.json its editable form. A mask repainted in another tool after the
    # json was written re-opened as the old polygons, and saving them undid the repaint.
    import cv2

    info = store.scan_set(copy_set(3), 3)
    frame = store.read_frame(info, 0)
    mask = store.read_mask(info.mask_path(0), frame.shape)
    outline = mask_to_shapes(mask, EXISTING_EPSILON)
    store.write_json(info.json_path(0), to_labelme(outline, "0.png", *mask.shape))

    def opened():
        shapes, source = initial_shapes(info, 0, frame, None)
        return shapes, source, capsys.readouterr().err

    shapes, source, err = opened()  # the json as this labeler wrote it, beside its mask
    assert source == "json" and err == "" and len(shapes) == len(outline)
    # The same polygons rasterised by another program (labelme fills differently at the outline).
    redrawn = np.zeros_like(mask)
    for s in outline:
        cv2.fillPoly(redrawn, [np.round(np.array(s.points)).astype(np.int32)], 255)
    assert 0 < np.count_nonzero(redrawn != mask)
    store.write_image(info.mask_path(0), redrawn, overwrite=True)
    assert opened()[1:] == ("json", "")
    # An arm painted onto the mask: the mask's outline opens, and the warning says why.
    ys, xs = np.nonzero(mask)
    painted = mask.copy()
    painted[ys.min():ys.min() + 60, max(0, xs.min() - 40):xs.min()] = 255
    store.write_image(info.mask_path(0), painted, overwrite=True)
    shapes, source, err = opened()
    assert source == "mask" and iou(shapes_to_mask(shapes, *mask.shape), painted) > 0.99
    assert err.startswith(f"warning: {info.json_path(0)} does not match 0_mask.png (") and \
        "pixels apart: the mask was changed since, by another tool?); editing the mask's outline instead" in err
    # Saved so, the json's polygons become the mask's outline, and what else it held stays.
    doc = json.loads(info.json_path(0).read_text())
    doc["shapes"].append({"label": "bag", "points": [[1, 1], [9, 9]], "shape_type": "rectangle"})
    doc["flags"] = {"seen": True}
    store.write_json(info.json_path(0), doc, overwrite=True)
    shapes, source, base = initial_label(info, 0, frame, None)
    capsys.readouterr()
    assert source == "mask" and base == doc
    save_label(info, 0, PolygonEditor(shapes), mask.shape, Opened.of(info, 0), base)
    saved = json.loads(info.json_path(0).read_text())
    assert saved["flags"] == {"seen": True} and saved["shapes"][-1] == doc["shapes"][-1]
    written = read_labelme(info.json_path(0))
    assert len(written) == len(shapes) and all(np.allclose(a.points, b.points, atol=0.006)  # json: 2 decimals
                                               for a, b in zip(written, shapes))
    # A json with no polygons beside a person's mask, likewise; beside an empty mask it is right.
    store.write_json(info.json_path(0), to_labelme([], "0.png", *mask.shape), overwrite=True)
    assert opened()[1] == "mask"
    store.write_image(info.mask_path(0), np.zeros_like(mask), overwrite=True)
    assert opened()[:2] == ([], "json")
    # An unreadable mask leaves the json (the better of the two) to open, and says so (accepting
    # writes the mask anew: test_labeling_gui's test of --redo).
    store.write_json(info.json_path(0), to_labelme(outline, "0.png", *mask.shape), overwrite=True)
    info.mask_path(0).write_bytes(b"cut short")
    assert opened()[1:] == ("json", f"warning: mask unreadable or corrupt: {info.mask_path(0)}; editing 0.json's "
                                    f"polygons, and accepting the frame writes the mask anew from them\n")
    # So does a mask of another size (not one to compare with polygons drawn on this frame).
    half = cv2.resize(mask, (mask.shape[1] // 2, mask.shape[0] // 2), interpolation=cv2.INTER_NEAREST)
    store.write_image(info.mask_path(0), half, overwrite=True)
    shapes, source, err = opened()
    assert source == "json" and len(shapes) == len(outline)
    assert err.startswith("warning: ") and f"{info.mask_path(0)}; editing 0.json's polygons" in err


def test_a_json_opens_beside_its_mask_unless_over_20_px_and_0_2_percent_of_the_person_lie_apart(tmp_path, capsys):
    # The README's rule for a mask changed in another tool after its K.json: more than 20 pixels, and
    # more than 0.2% of the person, over 1 px away from the polygons (the pixels next to an outline are
    # another rasteriser's); painted on, or erased.
    info, frame = one_grey_frame(tmp_path)
    for side, rows, erased, source in ((300, 50, False, "json"),  # 100 px apart: under 0.2% of 90,000
                                       (300, 100, False, "mask"),  # 200 px
                                       (300, 101, True, "mask"),  # 200 px of the polygons off the mask
                                       (40, 8, False, "json"),  # 16 px: over 0.2% of 1,600, not over 20
                                       (40, 10, False, "json"),  # 20 px: not over 20
                                       (40, 12, False, "mask")):  # 24 px
        mask = np.zeros((H, W), np.uint8)
        top, right = 90, 170 + side
        mask[top:top + side, 170:right] = 255
        store.write_json(info.json_path(0), to_labelme(mask_to_shapes(mask), "0.png", H, W), overwrite=True)
        # Three columns along the right edge, painted outside it or erased inside it: two of them lie
        # over 1 px away from the polygons.
        if erased:
            mask[top:top + rows, right - 3:right] = 0
        else:
            mask[top:top + rows, right:right + 3] = 255
        store.write_image(info.mask_path(0), mask, overwrite=True)
        assert initial_shapes(info, 0, frame, None)[1] == source, (side, rows, erased)
        assert ("does not match 0_mask.png" in capsys.readouterr().err) == (source == "mask")


def test_large_frames_are_shown_scaled_and_edited_in_frame_pixels():
    from humanseg.display import fit_zoom, to_display, to_image

    assert fit_zoom(640, 480) == 1.0 and fit_zoom(1280, 720) == 1.0
    assert fit_zoom(1920, 1080) == pytest.approx(2 / 3) and fit_zoom(1280, 960) == 0.75
    # The labeler's: a small frame enlarged by a whole factor, up to 640x480 (at 160x120 its outline
    # could hardly be drawn, nor its help bar read); others as above.
    assert fit_zoom(160, 120, enlarge=True) == 4.0 and fit_zoom(320, 240, enlarge=True) == 2.0
    assert fit_zoom(97, 73, enlarge=True) == 4.0 and fit_zoom(400, 300, enlarge=True) == 1.0  # (--zoom's most)
    assert fit_zoom(640, 480, enlarge=True) == 1.0 and fit_zoom(1920, 1080, enlarge=True) == pytest.approx(2 / 3)
    # A portrait frame within 480x640 (a 240x320 one was shown as it is, its labels unreadable).
    assert fit_zoom(240, 320, enlarge=True) == 2.0 and fit_zoom(120, 160, enlarge=True) == 4.0
    assert fit_zoom(480, 640, enlarge=True) == 1.0 and fit_zoom(120, 120, enlarge=True) == 4.0
    assert fit_zoom(160, 120) == 1.0  # unless asked to enlarge: 1
    for zoom in (1.0, 0.75, 0.5, 2.0):
        back = to_display([to_image(100, 37, zoom)], zoom)[0]
        assert back == pytest.approx((100, 37))
    editor = PolygonEditor()
    mouse = MouseAdapter(editor, zoom=0.5)
    for x, y in ((10, 10), (110, 10), (110, 60)):
        mouse(cv2.EVENT_LBUTTONDOWN, x, y, 0)
        mouse(cv2.EVENT_LBUTTONUP, x, y, 0)
    assert editor.current == [(20.5, 20.5), (220.5, 20.5), (220.5, 120.5)]  # frame pixels
    frame = np.full((200, 300, 3), 90, np.uint8)
    shown = render(frame, editor, hover=(100.0, 150.0), zoom=0.5)
    assert shown.shape == (100, 150, 3)
    assert render(frame, editor).shape == (200, 300, 3)


def test_a_drag_that_flattens_a_polygon_is_taken_back():
    # A triangle's vertex dragged onto the line of the other two: a polygon of no area went to K.json
    # (and an empty mask), where close() refuses one.
    tri = [(100.0, 200.0), (300.0, 200.0), (200.0, 350.0)]
    ed = PolygonEditor([Shape(list(tri))])
    assert ed.press(200, 350) == "grab"
    ed.move(200, 260)
    assert ed.release(200, 200) is None
    assert ed.shapes[0].points == tri and not ed.changed and ed.refused_move == ed.version
    assert ed.vertices_edited == 0 and not ed.undo()  # nothing to undo: the move never happened
    assert ed.press(200, 350) == "grab"
    ed.move(200, 300)
    assert ed.release(200, 300) == "moved" and ed.shapes[0].points[2] == (200.0, 300.0)


def test_an_inserted_vertex_dragged_to_no_area_is_taken_back_uncounted_and_a_right_click_on_it_is_safe():
    # Inserted on an edge and dragged onto a vertex: taken back, but still counted as edited (a frame
    # accepted unchanged added 1 to the summary). A right click there while the button still held it
    # found the vertex one past the triangle's end, once the drag was taken back: an IndexError.
    tri = [(100.0, 100.0), (300.0, 100.0), (200.0, 300.0)]
    for finish in ("release", "right click", "let go"):
        ed = PolygonEditor([Shape(list(tri))])
        assert ed.press(150, 200) == "insert" and len(ed.shapes[0].points) == 4  # on edge C-A
        ed.move(300, 100)  # onto B: A, B, C, B has no area
        if finish == "release":
            assert ed.release(300, 100) is None
        elif finish == "right click":
            assert ed.right_click(300, 100) == "delete_vertex"  # B itself, the triangle then gone
            assert ed.shapes == [] and ed.undo()  # one step back: the triangle as it opened
        else:
            assert ed.let_go() is None  # (Enter while the button holds it: app.py lets go first)
        assert ed.shapes[0].points == tri and not ed.changed and ed.vertices_edited == 0
        assert not ed.undo() and ed.release(300, 100) is None  # nothing more to undo, nothing held
    ed = PolygonEditor([Shape(list(tri))])  # a drag with area, let go by Enter: kept and counted
    assert ed.press(200, 300) == "grab"
    ed.move(200, 250)
    assert ed.let_go() == "moved" and ed.shapes[0].points[2] == (200.0, 250.0) and ed.vertices_edited == 1


def test_the_help_bar_wraps_rather_than_shrinking_to_an_unreadable_line():
    # At --zoom 0.5 (a 320x240 window) the help was shrunk to one line about 4 px tall.
    import cv2

    from humanseg.labeling.view import draw_help

    text = "click: add/drag  right: close/del pt  h: hole  z: undo  r: restart  c: clear  d: del poly  b: bkg"
    canvas = np.full((240, 320, 3), 128, np.uint8)
    draw_help(canvas, text)
    dark = np.flatnonzero((canvas == 128).all(axis=2).sum(axis=1) < 320 * 0.5)  # the darkened rows
    assert dark.min() < 240 - 2 * 14 and dark.max() == 239  # two lines or more, at the bottom
    white = np.flatnonzero((canvas.max(axis=2) > 200).any(axis=1))
    (_, th), _ = cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    assert white.size and th >= 8 and white.min() >= dark.min()
    # A window too small for the wrapped lines (a 160x120 frame at --zoom 1) gets one shrunk line,
    # not a bar darkening the whole picture.
    tiny = np.full((120, 160, 3), 128, np.uint8)
    draw_help(tiny, text)
    dark = np.flatnonzero((tiny == 128).all(axis=2).sum(axis=1) < 160 * 0.5)
    assert dark.max() == 119 and dark.min() > 120 * 2 / 3


def test_a_double_click_that_moved_a_pixel_adds_one_vertex():
    # Qt reports a double click's second press as LBUTTONDBLCLK then LBUTTONDOWN at its place (seen
    # under Xvfb): with the hand moved 2 px between the clicks, two vertices were added side by side.
    import cv2

    ed = PolygonEditor()
    seen = []
    mouse = MouseAdapter(ed, seen.append)
    mouse(cv2.EVENT_LBUTTONDOWN, 100, 100, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONUP, 100, 100, 0)
    mouse(cv2.EVENT_LBUTTONDOWN, 150, 250, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONUP, 150, 250, 0)
    mouse(cv2.EVENT_LBUTTONDBLCLK, 152, 251, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONDOWN, 152, 251, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONUP, 152, 251, 0)
    assert seen == ["start", "add"] and ed.current == [(100.0, 100.0), (150.0, 250.0)]
    # A click elsewhere after it counts (a backend that sends the double click after the press).
    mouse(cv2.EVENT_LBUTTONDBLCLK, 150, 250, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONDOWN, 300, 120, cv2.EVENT_FLAG_LBUTTON)
    assert seen == ["start", "add", "add"] and ed.current[-1] == (300.0, 120.0)


def test_deleting_a_vertex_that_leaves_the_rest_on_one_line_deletes_the_polygon():
    # A click on an edge inserts a vertex on it; deleting the apex then left three vertices on one line:
    # a polygon of no area, drawing nothing, that d could not pick, saved to K.json as it was (close()
    # refuses one, a drag making one is taken back). It goes, as one of fewer than 3 vertices does, and
    # undo brings it back as it was.
    ed = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (200.0, 300.0)])])
    assert ed.press(200, 100) == "insert" and ed.release(200, 100) == "moved"
    before = [list(s.points) for s in ed.shapes]
    assert ed.right_click(200, 300) == "delete_vertex"
    assert ed.shapes == [] and not ed.mask(400, 400).any()
    assert ed.undo() and [list(s.points) for s in ed.shapes] == before


def test_undo_while_holding_a_vertex_not_yet_moved_undoes_the_change_before():
    # z pressed with a vertex held (grabbed, not moved) undid the grab's own step, which changed
    # nothing, and said "undo"; it undoes the drag before it, and with nothing before it, nothing.
    ed = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (200.0, 300.0)])])
    opened = [list(s.points) for s in ed.shapes]
    assert ed.press(300, 100) == "grab" and ed.move(350, 150) and ed.release(350, 150) == "moved"
    assert ed.press(100, 100) == "grab"
    assert ed.undo() and [list(s.points) for s in ed.shapes] == opened
    assert ed.release(100, 100) is None and ed.move(10, 10) is False
    assert ed.press(100, 100) == "grab" and not ed.undo()
    assert [list(s.points) for s in ed.shapes] == opened


# README (Files written): "a point that is not a number, or over 10^6 px away, makes the file
# unreadable". A point written as a string is read with float() on its characters: "12" is taken for
# the point (1, 2), and ["200", "100"] for (200, 100): neither is refused.
@pytest.mark.parametrize("points", [
    ["12", "56", "99"],  # each point a string of two digits: read as (1, 2), (5, 6), (9, 9)
    [["200", "100"], ["440", "100"], ["440", "400"]],  # coordinates as strings
])
def test_a_point_that_is_not_a_number_makes_the_file_unreadable(points):
    with pytest.raises(StoreError, match="shape 0 has malformed points: x.json"):
        from_labelme({"shapes": [{"label": "person", "points": points, "shape_type": "polygon"}]}, "x.json")


def test_a_json_with_string_points_beside_an_unlabeled_dev_frame_is_passed_over(copy_set):
    # A hand-made K.json beside an unlabeled frame of dev set3: the frame should be passed over (as for
    # any unreadable K.json without a mask: saving would replace the user's file). It opens instead
    # with a triangle of 1-9 px read from the digits of the strings, and Enter saves that as the label.
    root = copy_set(3, labels=False)
    info = store.scan_set(root, 3)
    k = info.frames[0]
    frame = store.read_frame(info, k)
    h, w = frame.shape[:2]
    info.json_path(k).write_text(json.dumps({
        "version": "5.4.1", "flags": {}, "imagePath": f"{k}.png", "imageData": None,
        "imageHeight": h, "imageWidth": w,
        "shapes": [{"label": "person", "points": ["12", "56", "99"], "shape_type": "polygon"}],
    }))
    assert initial_shapes(info, k, frame, None) == (None, "kept")


def test_undo_during_a_drag_to_no_area_takes_back_that_drag_alone():
    # z while a vertex held has been dragged onto the line of the others: that drag is taken back,
    # and the change before it (an earlier drag of another polygon) stays.
    ed = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (200.0, 300.0)]),
                        Shape([(400.0, 400.0), (450.0, 400.0), (450.0, 450.0)])])
    assert ed.press(450, 450) == "grab" and ed.move(470, 480) and ed.release(470, 480) == "moved"
    before = [list(s.points) for s in ed.shapes]
    assert ed.press(200, 300) == "grab" and ed.move(200, 100)
    assert ed.undo() and [list(s.points) for s in ed.shapes] == before


UNREADABLE_WALK = r"""
import json, sys
from humanseg import store
from humanseg.labeling.app import Summary, initial_label, readable_frames
from humanseg.labeling.guess import Guesser

info = store.scan_set(sys.argv[1], 3)
background = store.read_background(info)
events = []
walked = [k for _, k, _ in readable_frames(info, info.frames, background.shape, Summary(3),
                                           lambda event, **f: events.append([event, f["frame"]]))]
k0, _, k2 = info.frames[:3]
frame0, frame2 = store.read_frame(info, k0, background.shape), store.read_frame(info, k2, background.shape)
guess = Guesser(background, use_model=False).guess(frame0, info.pred_path(k0)).source
opened = initial_label(info, k2, frame2, Guesser(background, use_model=False))[1]
print(json.dumps({"walked": walked, "events": events, "guess": guess, "opened": opened}))
"""


def test_files_not_ours_to_read_are_passed_over_as_unreadable_ones_are(copy_set, unprivileged):
    # A K.png, K_pred.png or K_mask.png whose mode the system refuses us (PermissionError) ended the
    # labeler with exit 1 ("Error: .../1.png: Permission denied"), where a corrupt one is passed over
    # with a warning naming it: the frames after it unlabeled, a guess or a --redo refused.
    import subprocess
    import sys

    from conftest import ROOT

    root = copy_set(3)
    info = store.scan_set(root, 3)
    k0, k1, k2 = info.frames[:3]
    store.write_image(info.pred_path(k0), store.read_mask(info.mask_path(k0)))
    refused = [info.frame_path(k1), info.pred_path(k0), info.mask_path(k2)]
    for path in refused:
        path.chmod(0)
    r = subprocess.run(unprivileged([sys.executable, "-c", UNREADABLE_WALK, str(root)]), cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["walked"] == [k for k in info.frames if k != k1] and out["events"] == [["unreadable", k1]]
    assert out["guess"] == "diff" and out["opened"] == "diff"  # guessed without K_pred.png / the mask
    err = r.stderr.strip().splitlines()
    assert err == [
        f"warning: frame unreadable (Permission denied): {refused[0]}; passed over (not labeled)",
        f"warning: mask unreadable (Permission denied): {refused[1]}; guessing without it",
        f"warning: mask unreadable (Permission denied): {refused[2]}; starting from the guess instead "
        f"(saving replaces it)"], r.stderr


_TRIANGLE = [(100.0, 100.0), (300.0, 100.0), (300.0, 300.0)]


def _grey_set(tmp_path, frames=(0,)):
    root = tmp_path / "images"
    (root / "set1").mkdir(parents=True)
    store.write_image(root / "set1" / "bkg.png", np.zeros((H, W, 3), np.uint8))
    for k in frames:
        store.write_image(root / "set1" / f"{k}.png", np.full((H, W, 3), 90, np.uint8))
    return root


def _square_mask():
    mask = np.zeros((H, W), np.uint8)
    mask[10:50, 10:50] = 255
    return mask


def test_redo_of_frame_0_opens_frame_0_not_the_unlabeled_walk(tmp_path):
    # Frames are numbered from 0: `--redo 0` is a frame, not "no --redo" (a falsy check opened frame 1).
    root = _grey_set(tmp_path, frames=(0, 1))
    (root / "set1" / "0_mask.png").write_bytes(store.encode_png(_square_mask()))
    info = store.scan_set(root, 1)
    assert frames_to_label(info, None, False) == [1]
    assert frames_to_label(info, 0, False) == [0]
    assert frames_to_label(info, 0, True) == [0]


def test_a_json_accepted_as_it_is_does_not_overwrite_a_mask_saved_meanwhile(tmp_path):
    # K.json without its mask (labelme's), accepted unchanged: only the mask is written (keep_json).
    # Another labeler saved a mask meanwhile: it is kept, the save refused.
    info = store.scan_set(_grey_set(tmp_path), 1)
    info.json_path(0).write_text(store.encode_json(to_labelme([Shape(_TRIANGLE)], "0.png", H, W)).decode())
    opened = Opened.of(info, 0)
    assert opened == Opened(mask=False, json=True)
    theirs = store.encode_png(_square_mask())
    info.mask_path(0).write_bytes(theirs)
    with pytest.raises(HumansegError):
        save_label(info, 0, PolygonEditor([Shape(_TRIANGLE)]), (H, W), opened, keep_json=True)
    assert info.mask_path(0).read_bytes() == theirs


def _click(mouse, x, y):
    mouse(cv2.EVENT_LBUTTONDOWN, x, y, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONUP, x, y, 0)


def test_clicks_before_the_frame_has_settled_are_not_taken():
    ed = PolygonEditor()
    mouse = MouseAdapter(ed, size=(W, H))
    # Clicks made while the next frame loads, just after Enter, are not that frame's first vertices.
    mouse.settle(30.0)  # the frame just shown
    _click(mouse, 100, 100)
    assert ed.current == [] and not ed.shapes
    mouse.quiet_until = time.monotonic() - 1  # settled
    _click(mouse, 100, 100)
    assert ed.current == [(100.0, 100.0)]


def test_clicks_handed_over_with_an_enter_that_they_leave_refused_came_after_it():
    # OpenCV runs the mouse callback for every event waiting before waitKey returns the key: an Enter
    # and clicks made just after it (for the next frame) reach the editor clicks first.
    square = [(float(x), float(y)) for x, y in SQUARE]
    ed = PolygonEditor()
    mouse = MouseAdapter(ed, size=(W, H))
    for x, y in SQUARE + SQUARE[:1]:  # drawn and closed, in earlier waits
        _click(mouse, x, y)
    steps = ed.steps  # (the loop's, before waitKey)
    mouse(cv2.EVENT_LBUTTONDOWN, 300, 300, cv2.EVENT_FLAG_LBUTTON)  # a drag before the Enter
    mouse(cv2.EVENT_MOUSEMOVE, 320, 330, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_LBUTTONUP, 320, 330, 0)
    _click(mouse, 50, 50)  # clicks after it, read with it
    _click(mouse, 60, 420)
    assert not ed.can_accept  # as they were: Enter refused, the frame not saved
    assert ed.take_back_to_savable(steps)
    assert ed.current == [] and [s.points for s in ed.shapes] == [square[:2] + [(320.0, 330.0)] + square[3:]]
    assert ed.vertices_edited == 5  # the square's 4 and the vertex moved
    assert ed.undo() and ed.shapes[0].points == square  # the history as it was: the drag, then the close
    assert ed.undo() and ed.current == square
    # Clicks that leave it savable were made before the Enter: the last vertex, or the closing click.
    ed = PolygonEditor()
    mouse = MouseAdapter(ed, size=(W, H))
    for x, y in SQUARE[:3]:
        _click(mouse, x, y)
    steps = ed.steps
    _click(mouse, *SQUARE[3])
    assert not ed.take_back_to_savable(steps) and ed.current == square
    _click(mouse, *SQUARE[0])
    assert not ed.take_back_to_savable(steps) and len(ed.shapes) == 1 and not ed.drawing
    # The close with the Enter, then a click after it: only the click is taken back.
    ed = PolygonEditor()
    mouse = MouseAdapter(ed, size=(W, H))
    for x, y in SQUARE:
        _click(mouse, x, y)
    steps = ed.steps
    _click(mouse, *SQUARE[0])
    _click(mouse, 50, 50)
    assert ed.take_back_to_savable(steps) and [s.points for s in ed.shapes] == [square] and not ed.drawing
    # Nor where the Enter was refused before them as well (a polygon of 1 vertex, then 2): nothing undone.
    ed = PolygonEditor()
    mouse = MouseAdapter(ed, size=(W, H))
    _click(mouse, 100, 100)
    steps = ed.steps
    _click(mouse, 200, 100)
    assert not ed.take_back_to_savable(steps) and len(ed.current) == 2
    assert not ed.take_back_to_savable(ed.steps + 1)  # (steps undone meanwhile: none of this call's)


@pytest.mark.parametrize("w, h, drawn", [(640, 480, 160), (1280, 720, 320)])
def test_in_a_window_much_narrower_than_the_picture_its_last_pixel_reaches_the_frames_edge(w, h, drawn):
    # The window's last pixel (drawn - 1) comes as that pixel scaled to the picture (as Qt sends it).
    ed = PolygonEditor()
    mouse = MouseAdapter(ed, size=(w, h))
    mouse.fitted(drawn)
    scale = w / drawn
    last_x, last_y = int((drawn - 1) * scale), int((round(h / scale) - 1) * scale)
    mouse(cv2.EVENT_LBUTTONDOWN, last_x, last_y, cv2.EVENT_FLAG_LBUTTON)
    assert ed.current == [(w - 0.5, h - 0.5)]


def test_a_dragged_vertex_follows_the_pointer_while_the_button_is_held():
    ed = PolygonEditor([Shape([(100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)])])
    mouse = MouseAdapter(ed, size=(W, H))
    mouse(cv2.EVENT_LBUTTONDOWN, 300, 300, cv2.EVENT_FLAG_LBUTTON)
    mouse(cv2.EVENT_MOUSEMOVE, 320, 350, cv2.EVENT_FLAG_LBUTTON)
    assert ed.shapes[0].points[2] == (320.0, 350.0)  # what the window shows during the drag


def test_a_base_hole_is_not_kept_for_a_person_polygon_of_the_same_points():
    # A K.json's shape is kept (its group_id, flags) for the polygon of the same points and label only.
    points = [[100.0, 100.0], [300.0, 100.0], [300.0, 300.0]]
    base = {"shapes": [{"label": "hole", "points": points, "group_id": 7, "shape_type": "polygon", "flags": {}}]}
    doc = to_labelme([Shape([tuple(p) for p in points])], "0.png", H, W, base=base)
    assert [s["label"] for s in doc["shapes"]] == ["person"]
