"""Inference on BGR uint8 frames of any size against a background whose features are cached."""

from __future__ import annotations

import copy
import os

import cv2
import numpy as np
import torch

from humanseg.errors import HumansegError
from humanseg.model.checkpoint import load_model, resolve_weights
from humanseg.model.network import (BkgCache, MergedRefine, SiameseSegNet, exposure_sample, fuse_batchnorm,
                                    normalising_lut, numpy_exposure_fit)
from humanseg.model.postprocess import above, clean_logits
from humanseg.ort_session import session_from_module


class _CachedForward(torch.nn.Module):
    """forward_normed with the background cache spelled out as tensors (what an ONNX graph takes):
    the frame comes in padded, exposure-fitted and normalised (done in numpy, `OrtRunner.run_bgr`)."""

    def __init__(self, model: SiameseSegNet, n_feats: int):
        super().__init__()
        self.model, self.n_feats = model, n_feats
        self.refine = MergedRefine(model.refine)  # the same function in one convolution

    def forward(self, normed_frame, bkg, normed, refine_term, *rest):
        feats, bterms = list(rest[:self.n_feats]), list(rest[self.n_feats:])
        return self.model.forward_normed(normed_frame, BkgCache(bkg, normed, feats, bterms, refine_term), self.refine)


class OrtRunner:
    """The per-frame half of the network (frame + cached background tensors -> logits) in ONNX Runtime.

    On CPU it runs these small depthwise convolutions about twice as fast as eager PyTorch. Exported
    once per model with dynamic height and width; frames are given already padded to the stride.
    """

    def __init__(self, model: SiameseSegNet, cache: BkgCache, threads: int):
        n_feats = len(cache.feats)
        names = ["normed_frame", "bkg", "normed", "refine_term"] + [f"feat{i}" for i in range(n_feats)] + \
                [f"bterm{i}" for i in range(len(cache.bterms))]
        axes = {n: {2: f"h{n}", 3: f"w{n}"} for n in names}
        axes["logits"] = {2: "h", 3: "w"}
        self.session = session_from_module(_CachedForward(model, n_feats).eval(),
                                           (cache.normed, *self._tensors(cache)), names, ["logits"], axes, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]  # unused ones are pruned away
        self.names = names
        self.iters = model.config.exposure_iters
        self.feed: dict[str, np.ndarray] = {}
        self.bkg_sample = np.zeros((3, 0))
        self.frame_buf = np.zeros((1, 3, 0, 0), np.float32)

    @staticmethod
    def _tensors(cache: BkgCache) -> list[torch.Tensor]:
        return [cache.bkg, cache.normed, cache.refine_term, *cache.feats, *cache.bterms]

    def set_background(self, cache: BkgCache) -> None:
        arrays = [t.detach().contiguous().float().numpy() for t in self._tensors(cache)]
        self.feed = {n: a for n, a in zip(self.names[1:], arrays) if n in self.inputs}
        self.bkg_sample = exposure_sample(cache.bkg)

    def run_bgr(self, img: np.ndarray, stride: int) -> np.ndarray:
        """HxWx3 uint8 BGR at working size -> logits HxW.

        Prepared with numpy and OpenCV alone: a torch op here would wake PyTorch's OpenMP threads,
        whose spinning then competes with ONNX Runtime's own threads for the same cores. The
        exposure fit runs here, not in the graph (as a few dozen tiny graph nodes it cost about a
        millisecond), and its gain and offset, the clamp and the normalisation are applied in one
        lookup per channel, straight into the graph's planar input.
        """
        h, w = img.shape[:2]
        ph, pw = (-h) % stride, (-w) % stride
        if ph or pw:  # replicate padding, as the network's own
            img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        if self.frame_buf.shape[2:] != img.shape[:2]:
            self.frame_buf = np.empty((1, 3, *img.shape[:2]), np.float32)
        gain, offset = numpy_exposure_fit(img, self.bkg_sample, self.iters)
        for c, (plane, lut) in enumerate(zip(cv2.split(img), normalising_lut(gain, offset))):
            cv2.LUT(plane, lut, dst=self.frame_buf[0, c])
        feed = dict(self.feed, normed_frame=self.frame_buf)
        return self.session.run(None, feed)[0][0, 0, :h, :w]


def working_size(width: int, height: int, work_width: int) -> tuple[int, int]:
    """The (w, h) the network runs at, aspect kept: work_width wide. A narrower frame is upscaled (a
    person in a 160x120 frame is then the size the network learned), but not to more than 4/3 of
    work_width tall, so a tall, narrow strip is not blown up to thousands of rows."""
    scale = work_width / width
    if scale > 1:
        scale = max(1.0, min(scale, work_width * 4 / 3 / height))
    w = max(1, round(width * scale))
    return w, max(1, round(height * w / width))


class Segmenter:
    """set_background(bkg) once, then predict(frame) -> person probability HxW float32 in [0, 1]."""

    def __init__(self, model: SiameseSegNet, work_width: int = 320, device: str = "cpu",
                 backend: str = "auto", threads: int | None = None, clean: bool = True):
        """backend: "torch", "onnxruntime", or "auto" (ONNX Runtime on CPU when it is installed and
        the export works; PyTorch otherwise). clean: drop specks and close pinholes in the network's
        output (`postprocess.clean_logits`); False gives the network's raw answer."""
        if backend not in ("auto", "torch", "onnxruntime"):
            raise HumansegError(f"unknown backend {backend!r} (auto, torch, onnxruntime)")
        self.device = torch.device(device)
        self.backend = backend if self.device.type == "cpu" else "torch"
        self.threads = threads or torch.get_num_threads()
        self._ort: OrtRunner | None = None
        model = copy.deepcopy(model).eval()
        if self.device.type == "cpu":
            # Folded batch norm and channels-last memory are both markedly faster on CPU.
            model = fuse_batchnorm(model).to(memory_format=torch.channels_last)
        self.model = model.to(self.device)
        self.work_width = int(work_width)
        self.clean = bool(clean)
        self.cache = None
        self.bkg_shape: tuple[int, int] | None = None
        if self.backend != "torch":
            # Export now (a second or two), not at the first background: a live view then starts at once.
            with torch.inference_mode():
                probe = torch.zeros(1, 3, 2 * model.stride, 2 * model.stride)
                self.cache = self.model.encode_background(probe.contiguous(memory_format=torch.channels_last))
            self._start_ort()
            self.cache = None

    def _resized(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        size = working_size(w, h, self.work_width)
        if (w, h) != size:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR)
        return img

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        img = self._resized(img)
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
        if self.backend != "torch":
            self._start_ort()

    def _start_ort(self) -> None:
        try:
            if self._ort is None:
                self._ort = OrtRunner(self.model, self.cache, self.threads)
            self._ort.set_background(self.cache)
        except Exception as exc:  # an optional speed-up: fall back to PyTorch unless it was asked for
            if self.backend == "onnxruntime":
                raise HumansegError(f"ONNX Runtime backend unavailable: {str(exc).splitlines()[0][:200]}") from None
            self.backend, self._ort = "torch", None

    @property
    def active_backend(self) -> str:
        return "onnxruntime" if self._ort is not None else "torch"

    def logits(self, frame: np.ndarray) -> np.ndarray:
        """Person logits at the frame's full size, float32 HxW."""
        if self.cache is None:
            raise HumansegError("no background set")
        if frame.shape[:2] != self.bkg_shape:
            raise HumansegError(
                f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the background's "
                f"{self.bkg_shape[1]}x{self.bkg_shape[0]}")
        if self._ort is not None:
            small = self._ort.run_bgr(self._resized(frame), self.model.stride)
        else:
            with torch.inference_mode():
                out = self.model.forward_cached(self._tensor(frame), self.cache)
            small = out[0, 0].float().cpu().numpy()
        if self.clean:
            small = clean_logits(small)
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
        return above(z, cut)


def load_segmenter(weights: str | os.PathLike | None = None, device: str = "cpu",
                   work_width: int | None = None, num_threads: int | None = None,
                   backend: str = "auto", clean: bool = True) -> Segmenter:
    """A Segmenter from a checkpoint (default: $HUMANSEG_WEIGHTS or the shipped model)."""
    if num_threads:
        torch.set_num_threads(num_threads)
    path = resolve_weights(weights)
    model, ckpt = load_model(path)
    return Segmenter(model, work_width or ckpt.get("work_width", 320), device, backend, num_threads, clean)
