"""Dev frames as other cameras see them, for the tests of other frame shapes."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

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
    as at a desk): `benchmarks/robustness.py`'s "person closer" at zoom times the size."""
    return _robustness().closer(frame, bkg, mask, zoom)


@functools.lru_cache(maxsize=None)
def _robustness():
    """benchmarks/robustness.py as a module (not put on sys.path, where its folder's live.py and pose.py
    would stand for other modules)."""
    spec = importlib.util.spec_from_file_location(
        "robustness_scenes", Path(__file__).resolve().parents[1] / "benchmarks" / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
