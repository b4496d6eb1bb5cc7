"""Checkpoint format: config (enough to rebuild), state dict, step, optimizer state, metrics.

Loading checks that the file is one of ours and that it fits the network, and says what does not
in one line (WeightsError), instead of a PyTorch traceback.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import torch

from humanseg.cli import MAX_WORK_WIDTH, MIN_WORK_WIDTH
from humanseg.errors import WeightsError, damaged_zip_member, load_tensors, refused_on_the_way, torch_load_failure
from humanseg.model.network import NetConfig, SiameseSegNet
from humanseg.store import not_a_file, write_bytes_atomic

FORMAT = "humanseg-siamese"
VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pt"


def save_checkpoint(path: str | os.PathLike, model: SiameseSegNet, step: int = 0, optimizer=None,
                    metrics: dict | None = None, work_width: int = 320, extra: dict | None = None,
                    overwrite: bool = True, before_rename: Callable[[], None] | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename; before_rename: `write_bytes_atomic`'s)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "work_width": int(work_width),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "step": int(step),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "metrics": metrics or {},
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return write_bytes_atomic(path, buf.getvalue(), overwrite=overwrite, before_rename=before_rename)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict, validated; WeightsError names the file and what is wrong."""
    path = Path(path)
    refused = refused_on_the_way(path)
    if refused:
        raise WeightsError(f"weights file unreadable or corrupt: {path} (cannot read it: {refused})")
    if path.is_dir():
        raise WeightsError(f"weights path is a folder, not a checkpoint file: {path}")
    if not path.is_file():
        if path.exists():  # a device or a named pipe
            raise WeightsError(f"weights path is not a file: {path}")
        why = not_a_file(path)  # a link to nothing or a symlink loop was "not found", though a name is there
        raise WeightsError(f"weights file not found: {path}" if why == "missing" else f"weights file {why}: {path}")
    try:
        ckpt = load_tensors(path)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise WeightsError(f"weights file unreadable or corrupt: {path} ({torch_load_failure(path, exc)})") from None
    damaged = damaged_zip_member(path)
    if damaged:  # (a flipped byte in default.pt loaded, and segmented a little differently, in silence)
        raise WeightsError(f"weights file unreadable or corrupt: {path} (a damaged PyTorch archive: {damaged} "
                           f"fails its checksum)")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        # PoseNet's weights, the other .pth a user of this tool has, said as such
        posenet = (isinstance(ckpt, dict) and "heatmap.weight" in ckpt
                   and any(str(k).startswith("features.") for k in ckpt))
        raise WeightsError(f"not a humanseg segmentation checkpoint{' (PoseNet weights)' if posenet else ''}: {path}")
    version = ckpt.get("version")
    if type(version) is not int or version < 0:
        raise WeightsError(f"checkpoint {path} has an invalid format version {version!r} (a whole number)")
    if version > VERSION:
        raise WeightsError(f"checkpoint {path} has format version {ckpt['version']}, newer than this "
                           f"humanseg understands ({VERSION})")
    step = ckpt.get("step", 0)
    if type(step) is not int or step < 0:
        raise WeightsError(f"checkpoint {path} has an invalid step {step!r} (a whole number, 0 or more)")
    width = ckpt.get("work_width", 320)
    if not (type(width) is int and MIN_WORK_WIDTH <= width <= MAX_WORK_WIDTH):  # 0 gave empty masks
        raise WeightsError(f"checkpoint {path} has an invalid work_width {width!r} (the width in pixels the "
                           f"network runs at, {MIN_WORK_WIDTH} to {MAX_WORK_WIDTH})")
    return ckpt


def build_model(ckpt: dict, path: str | os.PathLike = "checkpoint") -> SiameseSegNet:
    """Rebuild the network from a checkpoint dict and load its weights strictly."""
    if "config" not in ckpt:
        raise WeightsError(f"checkpoint {path} has no model config")
    try:
        config = NetConfig.from_dict(ckpt["config"])
        model = SiameseSegNet(config)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise WeightsError(f"checkpoint {path} has an invalid model config: {exc}") from None
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise WeightsError(f"checkpoint {path} has no state dict")
    own = model.state_dict()

    def kind(v) -> str:
        if not isinstance(v, torch.Tensor):
            return type(v).__name__
        if v.layout != torch.strided or v.is_meta:  # (no values to check: the NaN check's traceback)
            return f"a {'meta' if v.is_meta else str(v.layout).removeprefix('torch.')} tensor"
        return str(v.dtype)

    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor) or v.layout != torch.strided
           or v.is_meta or (k in own and v.dtype != own[k].dtype)]
    if odd:  # an int64 copy of a float weight loaded without a word and gave empty masks
        k = odd[0]
        got = kind(state[k])
        raise WeightsError(f"weights {path} do not fit the model: {len(odd)} not of the model's type (e.g. {k}: "
                           f"{got}, not {own[k].dtype if k in own else 'a tensor'})")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape (e.g. {wrong[0]})")
        raise WeightsError(f"weights {path} do not fit the model: " + "; ".join(parts))
    broken = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:  # a run that diverged: every mask would come out empty
        raise WeightsError(f"weights {path} hold NaN or infinite values ({len(broken)} tensor(s), e.g. "
                           f"{broken[0]})")
    model.load_state_dict(state)
    return model


def load_model(path: str | os.PathLike) -> tuple[SiameseSegNet, dict]:
    """The checkpoint's network, in eval mode (for inference: in training mode its BatchNorm used each
    batch's statistics, a mask 6000 pixels off for a library caller; training sets its own mode), and
    the checkpoint dict."""
    ckpt = read_checkpoint(path)
    return build_model(ckpt, path).eval(), ckpt


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    """The explicit path, else $HUMANSEG_WEIGHTS, else the shipped default model."""
    if weights is not None and not str(weights):  # --weights "" (an unset shell variable) is no choice made
        raise WeightsError("--weights is empty: name a checkpoint file, or leave the option out for the "
                           "shipped model")
    if weights:
        return Path(weights)
    env = os.environ.get("HUMANSEG_WEIGHTS")
    if env:  # set once and forgotten, say: the error names the variable, not only a path
        path = Path(os.path.expanduser(env))  # quoted, "~/w.pt" was looked for in a folder named "~"
        if env.endswith(os.sep) and env.strip(os.sep):  # (pathlib drops it: w.pt/ read w.pt)
            raise WeightsError(f"HUMANSEG_WEIGHTS={env}: names a folder (it ends in {os.sep}); name a "
                               f"checkpoint file")
        refused = refused_on_the_way(path)
        if refused:
            raise WeightsError(f"HUMANSEG_WEIGHTS={env}: cannot read it ({refused})")
        if not path.is_file():
            raise WeightsError(f"HUMANSEG_WEIGHTS={env}: no checkpoint file there (unset it to use the "
                               f"shipped model, or pass --weights)")
        return path
    if not DEFAULT_WEIGHTS.is_file():
        raise WeightsError(f"no trained model: the shipped default {DEFAULT_WEIGHTS} is missing; "
                           f"train one with training.py or pass --weights")
    return DEFAULT_WEIGHTS


def release_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, recipe: str = "") -> Path:
    """Copy a training checkpoint without its optimizer state (a third of the size), for shipping."""
    ckpt = read_checkpoint(src)
    for key in ("metrics", "extra"):  # (a hand-edited one ended in dict()'s traceback, or was copied as it was)
        if ckpt.get(key) is not None and not isinstance(ckpt[key], dict):
            raise WeightsError(f"checkpoint {src} has a damaged {key} record ({key} is a "
                               f"{type(ckpt[key]).__name__}, not a dict)")
    model = build_model(ckpt, src)
    extra = dict(ckpt.get("extra") or {}, recipe=recipe) if recipe else ckpt.get("extra")
    return save_checkpoint(dst, model, ckpt.get("step", 0), None, ckpt.get("metrics"),
                           ckpt.get("work_width", 320), extra)

