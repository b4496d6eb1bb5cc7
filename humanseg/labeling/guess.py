"""The starting guess for a frame: a saved prediction, the model, or plain background differencing."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from humanseg.errors import HumansegError
from humanseg.labeling.geometry import Shape, mask_to_shapes

# For a 640x480 frame, scaled with the frame's size (a 1920x1080 guess kept 116 vertices, twice its
# 640x360 copy's; at 160x120 150 px² dropped the gaps between arm and body):
GUESS_EPSILON = 1.0  # px: outline simplification of guesses (IoU ≥ 0.99 on the dev masks)
GUESS_MIN_AREA = 150.0  # px²: blobs smaller than this are noise, not a person
EXISTING_EPSILON = 0.5  # px: re-opened masks stay close to what was saved


def background_difference(frame: np.ndarray, background: np.ndarray, threshold: float = 32.0) -> np.ndarray:
    """uint8 HxW 0/255 foreground mask of a BGR frame against its BGR background (same size)."""
    f = frame.astype(np.float32)
    b = background.astype(np.float32)
    # Auto-exposure shifts every channel by a gain; the median ratio is dominated by background pixels.
    gain = np.median((f.reshape(-1, 3) + 1.0) / (b.reshape(-1, 3) + 1.0), axis=0)
    diff = np.abs(f - b * gain).max(axis=2)
    diff = cv2.GaussianBlur(diff, (5, 5), 0)
    mask = (diff > threshold).astype(np.uint8) * 255
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    return mask


@dataclass
class Guess:
    """A starting mask (uint8 HxW 0/255) and where it came from: "pred", "model" or "diff"."""

    mask: np.ndarray
    source: str

    def shapes(self) -> list[Shape]:
        s = float(np.sqrt(self.mask.shape[0] * self.mask.shape[1] / (640 * 480)))
        # (never finer than 3/4 of a pixel: finer, the outline keeps its pixel staircase as vertices)
        return mask_to_shapes(self.mask, GUESS_EPSILON * max(s, 0.75), GUESS_MIN_AREA * s * s)


class Guesser:
    """Best available guess per frame; the model is loaded once, on first need, and only if present."""

    def __init__(self, background: np.ndarray | None, use_model: bool = True, weights: str | None = None,
                 load=None):
        self.background = background
        self.use_model = use_model
        self.weights = weights
        self._load = load  # callable(weights) -> segmenter; default humanseg.model.load_segmenter
        self._segmenter = None
        self.model_problem: str | None = None

    def _model(self):
        if self._segmenter is None and self.use_model and self.model_problem is None:
            try:
                load = self._load
                if load is None:
                    from humanseg.model import load_segmenter as load
                seg = load(weights=self.weights)
                if self.background is not None:  # (None: only checking that the weights load)
                    seg.set_background(self.background)
                self._segmenter = seg
            except Exception as exc:  # noqa: BLE001 - the model is optional; any failure means fall back
                # No usable model: fall back to differencing and say why once.
                self.model_problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return self._segmenter

    def require_model(self) -> None:
        """Load the model now; HumansegError (one line, naming the file) if it cannot be used. For an
        explicit --weights: a typo there is bad input, not a reason to fall back to differencing."""
        if self._model() is None:
            problem = self.model_problem or "the model is turned off"
            raise HumansegError(problem if str(self.weights) in problem else f"--weights {self.weights}: {problem}")

    def guess(self, frame: np.ndarray, pred_path: Path | None = None) -> Guess:
        """The guess for one BGR frame: pred_path (K_pred.png) when it exists and fits, else the model;
        with weights named (--weights: that model was asked for, say one trained since the capture)
        the model first, then K_pred.png; background differencing last."""
        order = (self._model_guess, self._pred_guess) if self.weights is not None else (
            self._pred_guess, self._model_guess)
        for way in order:
            guess = way(frame, pred_path)
            if guess is not None:
                return guess
        return Guess(background_difference(frame, self.background), "diff")

    def _pred_guess(self, frame: np.ndarray, pred_path: Path | None) -> Guess | None:
        from humanseg.store import read_mask

        if pred_path is not None and pred_path.is_file():
            try:
                return Guess(read_mask(pred_path, frame.shape), "pred")
            except HumansegError as exc:  # only a guess: say so and guess another way
                print(f"warning: {exc}; guessing without it", file=sys.stderr)
        return None

    def _model_guess(self, frame: np.ndarray, pred_path: Path | None = None) -> Guess | None:
        seg = self._model()
        if seg is not None:
            try:
                mask = np.asarray(seg.predict_mask(frame))
                if mask.shape == frame.shape[:2]:
                    return Guess(np.where(mask >= 128, 255, 0).astype(np.uint8), "model")
            except Exception as exc:  # noqa: BLE001 - a failing guess must not end the labeling session
                self.model_problem = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
                self._segmenter = None
        return None
