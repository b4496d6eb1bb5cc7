"""Mask metrics with the project's definitions (docs/CONVENTIONS.md): IoU, Dice, boundary F (3 px).

Masks are HxW arrays; anything > 0 (or True) is person. An empty ground truth scores 1 when the
prediction is empty too, else 0.
"""

from __future__ import annotations

import cv2
import numpy as np


def _bool(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask) > 0


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = _bool(pred), _bool(truth)
    if p.shape != g.shape:
        raise ValueError(f"masks of different sizes: {p.shape} and {g.shape}")
    return p, g


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """|pred ∩ truth| / |pred ∪ truth|; 1 when both are empty."""
    p, g = _pair(pred, truth)
    union = np.logical_or(p, g).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(p, g).sum() / union)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2 |pred ∩ truth| / (|pred| + |truth|); 1 when both are empty."""
    p, g = _pair(pred, truth)
    total = p.sum() + g.sum()
    if total == 0:
        return 1.0
    return float(2 * np.logical_and(p, g).sum() / total)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: mask pixels with a 4-neighbour outside the mask (image edge not counted)."""
    m = _bool(mask).astype(np.uint8)
    eroded = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)),
                       borderType=cv2.BORDER_REPLICATE)
    return (m - eroded).astype(bool)


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: float = 3.0) -> float:
    """F-measure of boundary pixels matched within `tolerance` px (Euclidean) of the other boundary."""
    p, g = _pair(pred, truth)
    bp, bg = boundary(p), boundary(g)
    if not bp.any() and not bg.any():
        # No outline in either: each mask is empty or fills the frame (the image edge is no outline).
        # Alike they agree; a full frame against an empty one is as wrong as a mask can be.
        return 1.0 if p.any() == g.any() else 0.0
    if not bp.any() or not bg.any():
        return 0.0
    # Distance from every pixel to the nearest boundary pixel of the other mask.
    dist_to_g = cv2.distanceTransform((~bg).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    dist_to_p = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    precision = float((dist_to_g[bp] <= tolerance).mean())
    recall = float((dist_to_p[bg] <= tolerance).mean())
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def frame_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"iou": iou(pred, truth), "dice": dice(pred, truth), "boundary_f": boundary_f(pred, truth)}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average each metric over frames (mIoU etc.)."""
    if not rows:
        return {"iou": float("nan"), "dice": float("nan"), "boundary_f": float("nan")}
    return {k: float(np.mean([r[k] for r in rows])) for k in ("iou", "dice", "boundary_f")}
