"""Reading and writing label sidecars `K.json` in labelme's polygon format.

Convention for holes: a shape labelled "hole" is subtracted from the shapes before it; every other
label is added ("person"). Shapes are applied in file order, so labelme shows the same outlines.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from humanseg.errors import StoreError
from humanseg.labeling.geometry import HOLE, PERSON, Shape

LABELME_VERSION = "5.4.1"
# A point further than this from the image is a hand edit gone wrong (shapely failed on 1e308, the
# drawing overflowed from 5e8).
MAX_COORDINATE = 1e6


def to_labelme(shapes: list[Shape], image_name: str, height: int, width: int, base: dict | None = None) -> dict:
    """A labelme document for the shapes of one image (imageData left out: the PNG sits beside it).

    base: the document being replaced (a K.json opened for editing). What the labeler does not edit
    is kept as it was: its other keys (flags, imageData, ...), its shapes that are not polygons
    (rectangles, points, ...; after the polygons, as they draw nothing), and each polygon whose points
    the edit left unchanged, with its own label, group_id, description and flags."""
    polygons = [
        {
            "label": HOLE if s.hole else PERSON,
            # As they are (the editor's own to 2 decimals, an opened file's as it had them): rounded
            # here, they drew other pixels than the mask saved with them.
            "points": [[float(x), float(y)] for x, y in s.points],
            "group_id": None,
            "description": "",
            "shape_type": "polygon",
            "flags": {},
        }
        for s in shapes
    ]
    doc = {"version": LABELME_VERSION, "flags": {}, "shapes": polygons, "imagePath": image_name,
           "imageData": None, "imageHeight": int(height), "imageWidth": int(width)}
    if not isinstance(base, dict) or not isinstance(base.get("shapes"), list):
        return doc
    kept: dict = {}  # (hole, rounded points) -> the base's polygons of those points, in file order
    others = []  # what draws nothing: other shape types, and polygons of fewer than 3 points
    for item in base["shapes"]:
        key = _polygon_key(item) if isinstance(item, dict) and _shape_type(item) == "polygon" else None
        if key is not None and len(key[1]) >= 3:
            kept.setdefault(key, []).append(item)
        else:
            others.append(item)
    merged = dict(base)
    merged.update(shapes=[_take(kept, p) for p in polygons] + others, imagePath=image_name,
                  imageHeight=int(height), imageWidth=int(width))
    for key in ("version", "flags", "imageData"):
        merged.setdefault(key, doc[key])
    return merged


def _shape_type(item: dict) -> str:
    """A shape's type as labelme reads it: missing or null is a polygon."""
    return item.get("shape_type") or "polygon"


def _point(p) -> tuple[float, float]:
    """A labelme point, [x, y] of two JSON numbers. Anything else is a TypeError: float() read the
    characters of a string, so a point written "12" was taken for (1, 2), and ["200", "100"] passed."""
    if not isinstance(p, (list, tuple)) or len(p) < 2 or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in p[:2]):
        raise TypeError("not a point")
    return float(p[0]), float(p[1])


def _polygon_key(item: dict):
    """(hole, points to 2 decimals) of a labelme polygon as from_labelme reads it, else None."""
    try:
        points = tuple((round(x, 2), round(y, 2)) for x, y in map(_point, item["points"]))
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        return None
    return item.get("label") == HOLE, points


def _take(kept: dict, polygon: dict) -> dict:
    """The base's own polygon with the points of `polygon` (the first one left), else `polygon`."""
    same = kept.get(_polygon_key(polygon))
    return same.pop(0) if same else polygon


def from_labelme(doc: dict, source: str = "K.json") -> list[Shape]:
    """Shapes of a labelme document (polygons only; other shape types are ignored)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise StoreError(f"not a labelme file (no 'shapes' list): {source}")
    shapes = []
    for i, item in enumerate(doc["shapes"]):
        if not isinstance(item, dict) or _shape_type(item) != "polygon":
            continue
        try:
            points = [_point(p) for p in item["points"]]
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):  # (a 400-digit integer)
            raise StoreError(f"shape {i} has malformed points: {source}") from None
        if not all(math.isfinite(c) for p in points for c in p):  # json.loads reads NaN and Infinity
            raise StoreError(f"shape {i} has a point that is not a finite number: {source}")
        if not all(abs(c) <= MAX_COORDINATE for p in points for c in p):  # shapely failed on 1e308
            raise StoreError(f"shape {i} has a point over {MAX_COORDINATE:.0e} px away: {source}")
        if len(points) >= 3:
            shapes.append(Shape(points, hole=item.get("label") == HOLE))
    return shapes


def read_labelme(path: str | Path, size: tuple[int, int] | None = None) -> list[Shape]:
    """Shapes stored in a labelme JSON file; StoreError names the file if it cannot be read, or if
    it says it was drawn on an image of another (height, width) than `size`."""
    return read_labelme_doc(path, size)[0]


def read_labelme_doc(path: str | Path, size: tuple[int, int] | None = None) -> tuple[list[Shape], dict]:
    """read_labelme's shapes and the whole document they came from."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    # (ValueError: JSON's own errors, and an integer of over 4300 digits; RecursionError: lists
    # nested thousands deep. Both ended the labeler in a traceback before any frame opened.)
    except (OSError, ValueError, RecursionError) as exc:
        raise StoreError(f"label file unreadable ({exc.__class__.__name__}): {path}") from None
    shapes = from_labelme(doc, str(path))
    try:
        drawn = (int(doc["imageHeight"]), int(doc["imageWidth"]))
    except (KeyError, TypeError, ValueError, OverflowError):  # (Infinity, 1e999: a traceback)
        drawn = None  # no size recorded: taken as drawn on this frame
    if size is not None and drawn is not None and drawn != tuple(size):
        raise StoreError(f"label file drawn on a {drawn[1]}x{drawn[0]} image, the frame is "
                         f"{size[1]}x{size[0]}: {path}")
    return shapes, doc
