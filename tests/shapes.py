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
