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


def to_labelme(shapes: list[Shape], image_name: str, height: int, width: int) -> dict:
    """A labelme document for the shapes of one image (imageData left out: the PNG sits beside it)."""
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": [
            {
                "label": HOLE if s.hole else PERSON,
                "points": [[round(x, 2), round(y, 2)] for x, y in s.points],
                "group_id": None,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
            }
            for s in shapes
        ],
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": int(height),
        "imageWidth": int(width),
    }


def from_labelme(doc: dict, source: str = "K.json") -> list[Shape]:
    """Shapes of a labelme document (polygons only; other shape types are ignored)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise StoreError(f"not a labelme file (no 'shapes' list): {source}")
    shapes = []
    for i, item in enumerate(doc["shapes"]):
        if not isinstance(item, dict) or item.get("shape_type", "polygon") != "polygon":
            continue
        try:
            points = [(float(p[0]), float(p[1])) for p in item["points"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise StoreError(f"shape {i} has malformed points: {source}") from None
        if not all(math.isfinite(c) for p in points for c in p):  # json.loads reads NaN and Infinity
            raise StoreError(f"shape {i} has a point that is not a finite number: {source}")
        if len(points) >= 3:
            shapes.append(Shape(points, hole=item.get("label") == HOLE))
    return shapes


def read_labelme(path: str | Path, size: tuple[int, int] | None = None) -> list[Shape]:
    """Shapes stored in a labelme JSON file; StoreError names the file if it cannot be read, or if
    it says it was drawn on an image of another (height, width) than `size`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"label file unreadable ({exc.__class__.__name__}): {path}") from None
    shapes = from_labelme(doc, str(path))
    try:
        drawn = (int(doc["imageHeight"]), int(doc["imageWidth"]))
    except (KeyError, TypeError, ValueError):
        drawn = None  # no size recorded: taken as drawn on this frame
    if size is not None and drawn is not None and drawn != tuple(size):
        raise StoreError(f"label file drawn on a {drawn[1]}x{drawn[0]} image, the frame is "
                         f"{size[1]}x{size[0]}: {path}")
    return shapes
