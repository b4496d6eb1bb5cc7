"""Dev frames as other cameras see them, for the tests of other frame shapes."""

from __future__ import annotations

import cv2
import numpy as np


def portrait(image: np.ndarray, x: int, width: int, size: tuple[int, int],
             interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """image cut to `width` columns from x (its whole height) and scaled to size (w, h): a portrait
    camera's view of the same room."""
    return cv2.resize(image[:, x:x + width], size, interpolation=interpolation)


def person_centre(masks) -> float:
    """The mean of the people's mean columns over masks (empty ones left out)."""
    return float(np.mean([np.nonzero(m)[1].mean() for m in masks if m.any()]))


def nearer(frame: np.ndarray, bkg: np.ndarray, mask: np.ndarray, zoom: float):
    """frame, bkg and mask as a camera nearer the person sees them (the upper body filling the frame,
    as at a desk): the crop 1/zoom of the frame's width and height from just above the person's head,
    centred on them, scaled up to the frame's size (the mask with INTER_NEAREST)."""
    h, w = frame.shape[:2]
    ch, cw = int(h / zoom), int(w / zoom)
    ys, xs = np.nonzero(mask)
    top = int(np.clip(ys.min() - ch // 10, 0, h - ch))
    left = int(np.clip((xs.min() + xs.max()) // 2 - cw // 2, 0, w - cw))

    def up(image, interpolation=cv2.INTER_CUBIC):
        return cv2.resize(image[top:top + ch, left:left + cw], (w, h), interpolation=interpolation)

    return up(frame), up(bkg), up(mask, cv2.INTER_NEAREST)
