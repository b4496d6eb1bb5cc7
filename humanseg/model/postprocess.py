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

# A blob is dropped when smaller than both of these (fractions of the frame / of the largest blob).
MIN_BLOB_OF_FRAME = 0.0005
MIN_BLOB_OF_LARGEST = 0.02
# An enclosed hole (not touching the border) is filled when smaller than this share of the largest blob.
MAX_HOLE_OF_LARGEST = 0.01


def _flip(z: np.ndarray, labels: np.ndarray, stats: np.ndarray, ids, positive: bool) -> None:
    for i in ids:
        x, y, w, h = stats[i, :4]
        sub = z[y:y + h, x:x + w]
        sel = labels[y:y + h, x:x + w] == i
        sub[sel] = np.abs(sub[sel]) if positive else -np.abs(sub[sel])


def clean_logits(z: np.ndarray) -> np.ndarray:
    """Logits HxW float32 -> logits with specks made negative and pinholes made positive.

    Returns `z` itself when nothing changes, else a changed copy.
    """
    mask = cv2.compare(z, 0.0, cv2.CMP_GT)  # 255 / 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return z
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = int(areas.max())
    out = z
    drop = np.flatnonzero(areas < max(MIN_BLOB_OF_FRAME * mask.size, MIN_BLOB_OF_LARGEST * largest)) + 1
    if len(drop):
        out = z.copy()
        _flip(out, labels, stats, drop, positive=False)
        mask = cv2.compare(out, 0.0, cv2.CMP_GT)
    # Holes: background components (4-connected, as the complement of 8-connected blobs) that do
    # not touch the image border.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.bitwise_not(mask), connectivity=4)
    hgt, wid = mask.shape
    x, y, w, h, a = (stats[:, k] for k in range(5))
    inside = (x > 0) & (y > 0) & (x + w < wid) & (y + h < hgt)
    holes = np.flatnonzero(inside & (a < MAX_HOLE_OF_LARGEST * largest))
    holes = holes[holes > 0]
    if len(holes):
        if out is z:
            out = z.copy()
        _flip(out, labels, stats, holes, positive=True)
    return out
