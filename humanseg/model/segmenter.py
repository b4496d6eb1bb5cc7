"""Inference on BGR uint8 frames of any size against a background whose features are cached."""

from __future__ import annotations

import copy
import os

import cv2
import numpy as np
import torch

from humanseg.errors import HumansegError
from humanseg.model.checkpoint import load_model, resolve_weights
from humanseg.model.network import SiameseSegNet, fuse_batchnorm


def working_size(width: int, height: int, work_width: int) -> tuple[int, int]:
    """The (w, h) the network runs at: at most work_width wide, aspect kept, never upscaled."""
    w = min(work_width, width)
    h = max(1, round(height * w / width))
    return w, h


class Segmenter:
    """set_background(bkg) once, then predict(frame) -> person probability HxW float32 in [0, 1]."""

    def __init__(self, model: SiameseSegNet, work_width: int = 320, device: str = "cpu"):
        self.device = torch.device(device)
        model = copy.deepcopy(model).eval()
        if self.device.type == "cpu":
            # Folded batch norm and channels-last memory are both markedly faster on CPU.
            model = fuse_batchnorm(model).to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.work_width = int(work_width)
        self.cache = None
        self.bkg_shape: tuple[int, int] | None = None

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        h, w = img.shape[:2]
        size = working_size(w, h, self.work_width)
        if (w, h) != size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        t = torch.from_numpy(np.ascontiguousarray(img)).to(self.device)
        t = t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        return t.contiguous(memory_format=torch.channels_last)

    def set_background(self, bkg: np.ndarray) -> None:
        """Compute and keep the background's features (bkg: HxWx3 BGR uint8)."""
        if bkg is None or bkg.ndim != 3 or bkg.shape[2] != 3:
            raise HumansegError("background must be a colour image")
        with torch.inference_mode():
            self.cache = self.model.encode_background(self._tensor(bkg))
        self.bkg_shape = bkg.shape[:2]

    def logits(self, frame: np.ndarray) -> np.ndarray:
        """Person logits at the frame's full size, float32 HxW."""
        if self.cache is None:
            raise HumansegError("no background set")
        if frame.shape[:2] != self.bkg_shape:
            raise HumansegError(
                f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the background's "
                f"{self.bkg_shape[1]}x{self.bkg_shape[0]}")
        with torch.inference_mode():
            out = self.model.forward_cached(self._tensor(frame), self.cache)
        small = out[0, 0].float().cpu().numpy()
        h, w = frame.shape[:2]
        if small.shape != (h, w):
            small = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return small

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Person probability HxW float32 in [0, 1]."""
        z = self.logits(frame)
        return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)

    def predict_mask(self, frame: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Person mask HxW uint8 (255 person, 0 background)."""
        z = self.logits(frame)
        cut = float(np.log(threshold / (1 - threshold)))
        return np.where(z > cut, 255, 0).astype(np.uint8)


def load_segmenter(weights: str | os.PathLike | None = None, device: str = "cpu",
                   work_width: int | None = None, num_threads: int | None = None) -> Segmenter:
    """A Segmenter from a checkpoint (default: $HUMANSEG_WEIGHTS or the shipped model)."""
    if num_threads:
        torch.set_num_threads(num_threads)
    path = resolve_weights(weights)
    model, ckpt = load_model(path)
    return Segmenter(model, work_width or ckpt.get("work_width", 320), device)
