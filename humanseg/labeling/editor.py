"""The polygon editing model: what clicks, drags and keys do to a frame's shapes, with no window.

The OpenCV view (humanseg.labeling.view) only translates mouse/key events into calls here and draws
the result, so every editing rule is tested by calling these methods directly.
"""

from __future__ import annotations

import math

import numpy as np

from humanseg.labeling.geometry import Shape, rasterize, shape_geometry, shapes_geometry, vertex

CLOSE_RADIUS = 10.0  # px: a click this close to the first vertex closes the polygon
GRAB_RADIUS = 7.0  # px: a press this close to a vertex grabs it
EDGE_RADIUS = 5.0  # px: a press this close to an edge inserts a vertex there


def _closes(points) -> bool:
    """A polygon being drawn of these vertices would close (3 or more, not all on one line), or there is
    none."""
    return not points or (len(points) >= 3 and shape_geometry(points).area > 0)


def _dist(a, b) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _project(p, a, b) -> tuple[float, tuple[float, float]]:
    """Distance from p to segment ab and the nearest point on it."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    q = (ax + t * dx, ay + t * dy)
    return _dist(p, q), q


class PolygonEditor:
    """Shapes of one frame being edited: closed shapes, the polygon being drawn, undo history."""

    def __init__(self, shapes: list[Shape] | None = None, close_radius: float = CLOSE_RADIUS,
                 grab_radius: float = GRAB_RADIUS, edge_radius: float = EDGE_RADIUS):
        self.initial = [s.copy() for s in shapes or []]
        self.shapes: list[Shape] = [s.copy() for s in self.initial]
        self.current: list[tuple[float, float]] = []
        self.current_hole = False
        self.hole_mode = False
        self.close_radius = close_radius
        self.grab_radius = grab_radius
        self.edge_radius = edge_radius
        self.vertices_edited = 0
        self.version = 0  # bumped on every change; views cache their rendering on it
        # (shapes, polygon being drawn, whether it is a hole, hole mode, vertices edited) before each
        # change; the mode only where the change was `h` (else undo turned hole mode back on after the
        # user had switched it off, and the next polygon came out a hole)
        self._history: list[tuple[list[Shape], list[tuple[float, float]], bool, bool | None, int]] = []
        self._drag: tuple[int, int] | None = None
        self._drag_moved = False
        self._pressed_at: tuple[float, float] | None = None  # where a grab's press was
        self._inserted = False  # the vertex held was inserted by this press
        self.refused_close: int | None = None  # the version at which a close was refused
        self.refused_move: int | None = None  # the version at which a flattening drag was taken back
        self._mask_cache: tuple[int, tuple[int, int], np.ndarray] | None = None

    # ------------------------------------------------------------ state

    @property
    def drawing(self) -> bool:
        return bool(self.current)

    @property
    def dragging(self) -> bool:
        return self._drag is not None

    @property
    def changed(self) -> bool:
        """True when the closed shapes differ from the ones the frame opened with."""
        return [(s.points, s.hole) for s in self.shapes] != [(s.points, s.hole) for s in self.initial]

    @property
    def unsaved(self) -> bool:
        """Edits that leaving the frame unsaved would lose: the shapes changed, or a polygon begun."""
        return self.changed or self.drawing

    @property
    def vertex_count(self) -> int:
        return sum(len(s.points) for s in self.shapes)

    def geometry(self):
        return shapes_geometry(self.shapes)

    def mask(self, height: int, width: int) -> np.ndarray:
        """uint8 HxW 0/255 mask of the closed shapes (the polygon being drawn is not included)."""
        key = (height, width)
        if self._mask_cache is None or self._mask_cache[:2] != (self.version, key):
            self._mask_cache = (self.version, key, rasterize(self.geometry(), height, width))
        return self._mask_cache[2]

    @property
    def can_accept(self) -> bool:
        """Enter would save: no polygon is being drawn, or the one drawn closes."""
        return _closes(self.current)

    @property
    def steps(self) -> int:
        """Undo steps kept (to tell later changes from earlier ones: take_back_to_savable)."""
        return len(self._history)

    def take_back_to_savable(self, steps: int) -> bool:
        """Where Enter would not save now (a polygon begun that cannot close), undo the fewest of the
        changes made after the first `steps` undo steps that leave one it would save; none where no
        such state is among them. Returns True when changes were undone."""
        if self.can_accept:
            return False
        # Each step holds the state before its change: undoing back to step i leaves that state.
        back = next((i for i in range(len(self._history) - 1, steps - 1, -1) if _closes(self._history[i][1])), None)
        if back is None:
            return False
        while len(self._history) > back and self.undo():
            pass
        return True

    def _snapshot(self, mode: bool = False) -> None:
        # Every change but a drag's own moves starts here: a vertex still held is let go first (the
        # edit may delete it or renumber its shape's vertices, and a held index would then move
        # another vertex, or none: an IndexError on every later mouse move).
        self._end_drag()
        self._history.append(([s.copy() for s in self.shapes], list(self.current), self.current_hole,
                              self.hole_mode if mode else None, self.vertices_edited))

    def _touch(self) -> None:
        self.version += 1

    # ------------------------------------------------------------ hit tests

    def vertex_at(self, x: float, y: float) -> tuple[int, int] | None:
        """(shape index, vertex index) of the closed-shape vertex nearest (x, y) within grab_radius; of
        vertices as near, the topmost (last drawn) shape's, as shape_at takes (a shared corner moved
        the person's outline under the hole drawn on it)."""
        best, best_d = None, self.grab_radius
        for si in range(len(self.shapes) - 1, -1, -1):
            for vi, p in enumerate(self.shapes[si].points):
                d = _dist((x, y), p)
                if d < best_d or (best is None and d == best_d):
                    best, best_d = (si, vi), d
        return best

    def edge_at(self, x: float, y: float) -> tuple[int, int, tuple[float, float]] | None:
        """(shape index, index of the edge's first vertex, nearest point) within edge_radius of (x, y);
        of edges as near, the topmost shape's (as vertex_at)."""
        best, best_d = None, self.edge_radius
        for si in range(len(self.shapes) - 1, -1, -1):
            pts = self.shapes[si].points
            for ei in range(len(pts)):
                d, q = _project((x, y), pts[ei], pts[(ei + 1) % len(pts)])
                if d < best_d or (best is None and d == best_d):
                    best, best_d = (si, ei, q), d
        return best

    def shape_at(self, x: float, y: float) -> int | None:
        """Index of the topmost (last drawn) closed shape whose area contains (x, y)."""
        import shapely

        for si in range(len(self.shapes) - 1, -1, -1):
            geom = shape_geometry(self.shapes[si].points)
            if not geom.is_empty and geom.buffer(1.0).contains(shapely.Point(x, y)):
                return si
        return None

    # ------------------------------------------------------------ mouse gestures

    def press(self, x: float, y: float, hole: bool = False) -> str | None:
        """Left button down at (x, y): add/close while drawing, else grab a vertex, insert on an edge,
        or start a new polygon (a hole if `hole` or hole mode is on). Returns what it did."""
        if self.drawing:
            if len(self.current) >= 3 and _dist((x, y), self.current[0]) <= self.close_radius:
                return "close" if self.close() else None
            if vertex(x, y) == self.current[-1]:  # a double click's second press: no vertex twice
                return None
            self.add_vertex(x, y)
            return "add"
        hit = self.vertex_at(x, y)
        if hit is not None:
            self._snapshot()
            self._drag, self._drag_moved, self._inserted = hit, False, False
            self._pressed_at = (float(x), float(y))
            return "grab"
        edge = self.edge_at(x, y)
        if edge is not None:
            si, ei, q = edge
            self.insert_vertex(si, ei, q)
            # Counted once, as inserted, however far it is dragged from there.
            self._drag, self._drag_moved, self._inserted = (si, ei + 1), True, True
            return "insert"
        self.current_hole = hole or self.hole_mode
        self.add_vertex(x, y)
        return "start"

    def move(self, x: float, y: float) -> bool:
        """Mouse moved with the button held; moves a grabbed vertex. Returns True if anything changed."""
        if self._drag is None:
            return False
        si, vi = self._drag
        if (not self._drag_moved and self._pressed_at is not None
                and _dist((x, y), self._pressed_at) <= self.grab_radius / 2):
            return False  # a click on a vertex, or a hand's tremor, is no drag: it moved the vertex to the pointer
        if self.shapes[si].points[vi] == vertex(x, y):
            return False
        self.shapes[si].points[vi] = vertex(x, y)
        self._drag_moved = True
        self._touch()
        return True

    def release(self, x: float, y: float) -> str | None:
        """Left button up: ends a drag ("moved"), or drops the undo step of a grab that never moved."""
        if self._drag is None:
            return None
        self.move(x, y)
        return self._end_drag()

    def _end_drag(self) -> str | None:
        """Let go of the vertex held, where it is now: "moved", or None (a grab that never moved leaves
        no undo step; nothing was held)."""
        if self._drag is None:
            return None
        (si, _), moved = self._drag, self._drag_moved
        self._drag, self._pressed_at = None, None
        if not moved:
            self._history.pop()
            return None
        if shape_geometry(self.shapes[si].points).area <= 0:
            # Dragged onto a line with the others (or onto a neighbour of a triangle): a polygon of no
            # area was saved to K.json, drawing nothing. Taken back, as close() refuses one, with the
            # count of vertices edited (a vertex inserted and taken back was still counted).
            taken = self._history.pop()
            self.shapes, self.vertices_edited = taken[0], taken[4]
            self._touch()
            self.refused_move = self.version
            return None
        if not self._inserted:
            self.vertices_edited += 1
        return "moved"

    def let_go(self) -> str | None:
        """Let go of a vertex still held (the button not yet released) where it is, as a release there
        would: before a save (Enter saved a drag of no area as it was, uncounted) or another edit."""
        return self._end_drag()

    def right_click(self, x: float, y: float) -> str | None:
        """Right click: closes the polygon being drawn, else deletes the vertex under the pointer."""
        if self.drawing:
            return "close" if self.close() else None
        # A vertex still held is let go first: taken back (an inserted one dragged to no area), it left
        # the vertex found under the pointer one past the shape's end (an IndexError).
        self._end_drag()
        hit = self.vertex_at(x, y)
        if hit is not None:
            self.delete_vertex(*hit)
            return "delete_vertex"
        return None

    # ------------------------------------------------------------ edits

    def add_vertex(self, x: float, y: float) -> None:
        self._snapshot()
        self.current.append(vertex(x, y))
        self.vertices_edited += 1
        self._touch()

    def close(self) -> bool:
        """Close the polygon being drawn (needs at least 3 vertices, not all on one line: a polygon
        of no area draws nothing, and could not be picked to delete)."""
        if not self.current or not _closes(self.current):
            self.refused_close = self.version  # the view says why, until the next change
            return False
        self._snapshot()
        self.shapes.append(Shape(self.current, self.current_hole))
        self.current, self.current_hole = [], False
        self._touch()
        return True

    def insert_vertex(self, si: int, ei: int, point: tuple[float, float]) -> None:
        """Insert a vertex after vertex ei of shape si (on the edge ei → ei+1)."""
        self._snapshot()
        self.shapes[si].points.insert(ei + 1, vertex(*point))
        self.vertices_edited += 1
        self._touch()

    def delete_vertex(self, si: int, vi: int) -> None:
        """Delete one vertex; a shape left with fewer than 3 vertices, or with no area (the rest on one
        line, as after a vertex inserted on an edge), is deleted: close() refuses such a polygon, which
        would draw nothing, could not be picked, and be saved to K.json as it is."""
        self._snapshot()
        del self.shapes[si].points[vi]
        self.vertices_edited += 1
        left = self.shapes[si].points
        if len(left) < 3 or shape_geometry(left).area <= 0:
            self.vertices_edited += len(self.shapes[si].points)
            del self.shapes[si]
        self._touch()

    def delete_shape(self, si: int) -> None:
        self._snapshot()
        self.vertices_edited += len(self.shapes[si].points)
        del self.shapes[si]
        self._touch()

    def delete_shape_at(self, x: float, y: float) -> bool:
        """Delete the polygon being drawn, else the closed shape under (x, y)."""
        if self.drawing:
            self._snapshot()
            self.current, self.current_hole = [], False
            self._touch()
            return True
        si = self.shape_at(x, y)
        if si is None:
            return False
        self.delete_shape(si)
        return True

    def clear(self) -> bool:
        """Remove every shape (undoable), to draw from scratch."""
        if not self.shapes and not self.current:
            return False
        self._snapshot()
        self.vertices_edited += self.vertex_count
        self.shapes, self.current, self.current_hole = [], [], False
        self._touch()
        return True

    def restart(self) -> None:
        """Back to the shapes the frame opened with (undoable), and to no vertices edited."""
        self._snapshot()
        self.shapes = [s.copy() for s in self.initial]
        self.current, self.current_hole = [], False
        self.vertices_edited = 0
        self._touch()

    def toggle_hole(self) -> bool:
        """Switch hole mode; the polygon being drawn switches with it. Returns the new mode."""
        if self.drawing:
            self._snapshot(mode=True)  # undone by z like any other change of the polygon being drawn
        self.hole_mode = not self.hole_mode
        if self.drawing:
            self.current_hole = self.hole_mode
            self._touch()
        return self.hole_mode

    def undo(self) -> bool:
        """Undo the last change (a vertex, a close — which reopens the polygon — a drag, a delete).
        Returns False when there is none: the shapes the frame opened with stay as they are (with no
        history, undo reopened the last of them and took its vertices away one by one, a label
        changed by what was meant as "undo", and counted as no edit). Pressed while a vertex is held
        that has not moved yet, it undoes the change before the grab (the grab's own step changed
        nothing: undoing it was an "undo" that did nothing visible)."""
        if self._drag is not None and not self._drag_moved:
            self._end_drag()  # a grab not moved leaves no step: the change before it is undone
        self._drag, self._pressed_at = None, None  # a drag under way is what the pop below takes back
        if not self._history:
            return False
        shapes, current, hole, mode, edited = self._history.pop()
        self.shapes, self.current, self.current_hole, self.vertices_edited = shapes, current, hole, edited
        if mode is not None:
            self.hole_mode = mode
        self._touch()
        return True
