"""Shape clean-up of the network's logits: drop specks, close pinholes.

A person is one large blob (or a few); the network's gross errors are small isolated false
positives (a reflection, a moved cushion's edge) and small holes where clothes match the wall.
Both are fixed on the working-resolution logits by flipping their sign, which keeps the soft
edges' magnitudes for anything drawn from the probabilities. Thresholds are relative to the
largest blob, so they hold for small (far) people as well as near ones.
"""

from __future__ import annotations

import cv2
import numpy as np

# A blob is dropped when smaller than either of these (fractions of the frame / of the largest blob).
MIN_BLOB_OF_FRAME = 0.0005
MIN_BLOB_OF_LARGEST = 0.02
# An enclosed hole (not touching the border) is filled when smaller than this share of the largest blob.
MAX_HOLE_OF_LARGEST = 0.01


def above(z: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 255 where z > threshold, else 0: cv2.compare, several times faster than numpy, except for
    arrays of at most 4 elements (a frame of 2x2 pixels, say), which OpenCV takes for a scalar."""
    if z.size <= 4:
        return np.where(z > threshold, 255, 0).astype(np.uint8)
    return cv2.compare(z, float(threshold), cv2.CMP_GT)


def _set_sign(z: np.ndarray, contour: np.ndarray, positive: bool, holes=()) -> None:
    """Make z positive (or negative) inside a filled contour, in place, keeping magnitudes; the
    inside of `holes` (contours traced through the rim of the blob around them) is left alone, so
    whatever lies in a dropped blob's hole (a person inside a thin ring) keeps its sign."""
    x, y, w, h = cv2.boundingRect(contour)
    fill = np.zeros((h, w), np.uint8)
    cv2.drawContours(fill, [contour], 0, 1, cv2.FILLED, offset=(-x, -y))
    for hole in holes:
        cv2.drawContours(fill, [hole], 0, 0, cv2.FILLED, offset=(-x, -y))
        cv2.drawContours(fill, [hole], 0, 1, 1, offset=(-x, -y))  # the rim is the blob's own
    sub = z[y:y + h, x:x + w]
    sel = fill.astype(bool)
    sub[sel] = np.abs(sub[sel]) if positive else -np.abs(sub[sel])


def clean_logits(z: np.ndarray) -> np.ndarray:
    """Logits HxW float32 -> logits with specks made negative and pinholes made positive.

    Returns `z` itself when nothing changes, else a changed copy. Blobs (8-connected) and their
    holes (4-connected background they enclose) come from one contour trace, several times cheaper
    than labelling connected components (the background's 4-connected labelling alone cost ~0.5 ms
    at 320x240). A zero frame around the mask makes background that touches the image border part
    of the outside, so it is never a hole.
    """
    mask = above(z, 0.0)
    framed = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, hierarchy = cv2.findContours(framed, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE, offset=(-1, -1))
    if not contours:  # nobody
        return z
    parent = hierarchy[0][:, 3]
    outer = parent < 0  # blobs' outlines; the rest are their holes
    # Pixel counts by Pick's theorem on the traced pixel centres (B of them, enclosing area A): a
    # blob's outline runs through its own pixels (A + B/2 + 1 of them), a hole's through the
    # pixels around it (A - B/2 + 1 inside). A lone pixel's outline is one point, a closed walk of
    # no steps: B is 0 (counted as 1, it made 1.5 pixels and outlived a threshold between 1 and 1.5).
    poly = np.array([cv2.contourArea(c) for c in contours])
    half_b = np.array([len(c) / 2 if len(c) > 1 else 0.0 for c in contours])
    area = np.where(outer, poly + half_b + 1, np.maximum(poly - half_b + 1, 1))
    blob = area.copy()
    np.subtract.at(blob, parent[~outer], area[~outer])  # a blob's own pixels exclude its holes
    largest = blob[outer].max()
    specks = np.flatnonzero(outer & (blob < max(MIN_BLOB_OF_FRAME * mask.size, MIN_BLOB_OF_LARGEST * largest)))
    # A dropped speck's holes stay as they are (a ring-shaped speck is not filled in).
    holes = np.flatnonzero(~outer & (area < MAX_HOLE_OF_LARGEST * largest) & ~np.isin(parent, specks))
    if not len(specks) and not len(holes):
        return z
    out = z.copy()
    for i in specks:
        _set_sign(out, contours[i], positive=False, holes=[contours[j] for j in np.flatnonzero(parent == i)])
    for i in holes:   # a hole's fill covers its rim of person pixels, positive already
        _set_sign(out, contours[i], positive=True)
    return out
