"""The siamese segmentation network, its checkpoints, and inference on frames.

The names below are imported on first use (PEP 562), so that importing the package, as
`python -m humanseg.model.release` does before its Ctrl-C handling is in place, does not import torch
(seconds in which a Ctrl-C gave a traceback)."""

import importlib

_WHERE = {"DEFAULT_WEIGHTS": "checkpoint", "load_model": "checkpoint", "read_checkpoint": "checkpoint",
          "resolve_weights": "checkpoint", "save_checkpoint": "checkpoint", "NetConfig": "network",
          "SiameseSegNet": "network", "count_parameters": "network", "Segmenter": "segmenter",
          "load_segmenter": "segmenter", "working_size": "segmenter"}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
