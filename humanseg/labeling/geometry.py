"""Polygon geometry for labels: shapes → shapely geometry → mask, and mask → shapes.

Coordinates are image pixels with pixel (x, y) centred at (x, y); a pixel belongs to the mask when
its centre lies inside the geometry, so the mask's pixel count matches the polygon's area.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

PERSON = "person"
HOLE = "hole"


def vertex(x: float, y: float) -> tuple[float, float]:
    """A vertex as shapes keep it: to 2 decimals, as K.json holds it (a click at zoom 3 is 33.666...
    px, an outline's corner an irrational offset), so the json's polygons draw exactly the mask saved
    with them and the tint on screen."""
    return round(float(x), 2), round(float(y), 2)


@dataclass
class Shape:
    """One closed polygon: vertices [(x, y), ...] in image pixels; a hole is subtracted."""

    points: list[tuple[float, float]] = field(default_factory=list)
    hole: bool = False

    def copy(self) -> "Shape":
        return Shape(list(self.points), self.hole)

    @property
    def label(self) -> str:
        return HOLE if self.hole else PERSON


def polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The area-carrying part of a geometry (drops the points and lines make_valid may leave)."""
    if geom.is_empty:
        return Polygon()
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    return shapely.union_all(parts) if parts else Polygon()


def shape_geometry(points) -> BaseGeometry:
    """A valid polygonal geometry for one vertex list (a bow-tie becomes two triangles)."""
    if len(points) < 3:
        return Polygon()
    return polygonal(shapely.make_valid(Polygon(points)))


def shapes_geometry(shapes: list[Shape]) -> BaseGeometry:
    """Apply shapes in order: a person shape is unioned in, a hole is subtracted from what came before."""
    geom: BaseGeometry = Polygon()
    # A run of shapes of one kind goes in as one union (shapely.union_all): one at a time, the time
    # grew with the square of their number, and a mask of specks outlined by --redo (2,000 shapes)
    # took 9 s at every redraw, a K.json of 5,000 small polygons 42 s.
    for hole, run in itertools.groupby(shapes, key=lambda shape: bool(shape.hole)):
        parts = [part for part in (shape_geometry(shape.points) for shape in run) if not part.is_empty]
        if parts:
            run_union = shapely.union_all(parts)
            geom = geom.difference(run_union) if hole else geom.union(run_union)
    return polygonal(geom)


def _rings(geom: BaseGeometry) -> list[np.ndarray]:
    rings = []
    for poly in getattr(geom, "geoms", [geom]):
        if poly.is_empty:
            continue
        rings.append(np.asarray(poly.exterior.coords, dtype=np.float64))
        rings.extend(np.asarray(r.coords, dtype=np.float64) for r in poly.interiors)
    return rings


def rasterize(geom: BaseGeometry, height: int, width: int) -> np.ndarray:
    """uint8 HxW mask, 255 where the pixel centre lies inside geom (even-odd scanline fill)."""
    mask = np.zeros((height, width), np.uint8)
    rings = _rings(polygonal(geom))
    if not rings:
        return mask
    # Every edge of every ring; valid geometry has no crossing rings, so even-odd parity is exact.
    x0 = np.concatenate([r[:-1, 0] for r in rings])
    y0 = np.concatenate([r[:-1, 1] for r in rings])
    x1 = np.concatenate([r[1:, 0] for r in rings])
    y1 = np.concatenate([r[1:, 1] for r in rings])
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    # Half-open rule lo <= row < hi: a vertex on a scanline is counted once, horizontal edges never.
    first = np.clip(np.ceil(lo), 0, height).astype(np.int64)
    last = np.clip(np.ceil(hi), 0, height).astype(np.int64)
    counts = np.maximum(last - first, 0)
    if counts.sum() == 0:
        return mask
    edge = np.repeat(np.arange(len(x0)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = first[edge] + offsets
    t = (rows - y0[edge]) / (y1[edge] - y0[edge])
    xs = x0[edge] + t * (x1[edge] - x0[edge])
    order = np.lexsort((xs, rows))
    rows, xs = rows[order], xs[order]
    # Consecutive crossings on a row pair up as (enter, leave); pixels with enter <= x < leave are in.
    start = np.clip(np.ceil(xs[0::2]), 0, width).astype(np.int64)
    stop = np.clip(np.ceil(xs[1::2]), 0, width).astype(np.int64)
    row = rows[0::2]
    diff = np.zeros((height, width + 1), np.int32)
    np.add.at(diff, (row, start), 1)
    np.add.at(diff, (row, stop), -1)
    mask[np.cumsum(diff, axis=1)[:, :width] > 0] = 255
    return mask


def shapes_to_mask(shapes: list[Shape], height: int, width: int) -> np.ndarray:
    """uint8 HxW 0/255 mask of the shapes, applied in order (holes subtract)."""
    return rasterize(shapes_geometry(shapes), height, width)


def mask_to_geometry(mask: np.ndarray, epsilon: float = 0.0, min_area: float = 0.0) -> BaseGeometry:
    """Shapely geometry of a 0/255 mask; epsilon (px) simplifies outlines, blobs under min_area (px²) drop."""
    binary = (np.asarray(mask) >= 128).astype(np.uint8)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return Polygon()
    hierarchy = hierarchy[0]

    def ring(i):
        c = contours[i]
        if epsilon > 0 and len(c) > 3:
            c = cv2.approxPolyDP(c, epsilon, True)
        return c.reshape(-1, 2).astype(np.float64)

    # Contours run through the centres of the border pixels: an outline is grown by half a pixel to
    # their edges (which also gives 1 px wide lines and single pixels their area back), and a hole's,
    # which runs through the foreground pixels around it, shrunk by as much to its own. Each on its
    # own: a hole subtracted before the growing took a 1 px wall between it and the outside (or a
    # 1 px ring whole) with it.
    parts = []
    for i, (_, _, child, parent) in enumerate(hierarchy):
        if parent >= 0:
            continue
        part = polygonal(_ring_geometry(ring(i)).buffer(0.5, join_style="mitre", cap_style="square",
                                                        mitre_limit=2.0))
        j = child
        while j >= 0:
            hole = polygonal(_ring_geometry(ring(j))).buffer(-0.5, join_style="mitre", mitre_limit=2.0)
            part = part.difference(polygonal(hole))
            j = hierarchy[j][0]
        parts.append(part)
    geom = polygonal(shapely.union_all(parts)) if parts else Polygon()
    if min_area > 0:
        kept = [Polygon(p.exterior, [r for r in p.interiors if Polygon(r).area >= min_area])
                for p in getattr(geom, "geoms", [geom]) if p.area >= min_area]
        geom = polygonal(shapely.union_all(kept)) if kept else Polygon()
    return geom


def _ring_geometry(points: np.ndarray) -> BaseGeometry:
    # Collapsed contours (a pixel, a 1 px line) stay as points/lines rather than vanishing.
    if len(points) == 1:
        return shapely.Point(points[0])
    if len(points) == 2:
        return shapely.LineString(points)
    return shapely.make_valid(Polygon(points))


def geometry_to_shapes(geom: BaseGeometry) -> list[Shape]:
    """Shapes for a geometry: each polygon's outline then its holes, the largest outline first.

    Ordered by the area inside the outline, holes included: a polygon lying in another's hole then
    always comes after that hole (which erases what was drawn before it), even when it has more area
    than the thin ring around it.
    """
    polys = sorted((p for p in getattr(polygonal(geom), "geoms", [polygonal(geom)]) if not p.is_empty),
                   key=lambda p: shapely.geometry.Polygon(p.exterior).area, reverse=True)
    shapes = []
    for poly in polys:
        poly = shapely.geometry.polygon.orient(poly)
        shapes.append(Shape([vertex(x, y) for x, y in poly.exterior.coords[:-1]]))
        shapes.extend(Shape([vertex(x, y) for x, y in r.coords[:-1]], hole=True) for r in poly.interiors)
    return shapes


def mask_to_shapes(mask: np.ndarray, epsilon: float = 0.0, min_area: float = 0.0) -> list[Shape]:
    """Editable shapes for a 0/255 mask (outlines simplified by epsilon px, blobs < min_area px² dropped)."""
    return geometry_to_shapes(mask_to_geometry(mask, epsilon, min_area))

