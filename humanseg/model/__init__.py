"""The siamese segmentation network, its checkpoints, and inference on frames."""

from humanseg.model.checkpoint import (DEFAULT_WEIGHTS, load_model, read_checkpoint, resolve_weights,
                                       save_checkpoint)
from humanseg.model.network import NetConfig, SiameseSegNet, count_parameters
from humanseg.model.segmenter import Segmenter, load_segmenter, working_size

__all__ = ["DEFAULT_WEIGHTS", "NetConfig", "Segmenter", "SiameseSegNet", "count_parameters",
           "load_model", "load_segmenter", "read_checkpoint", "resolve_weights", "save_checkpoint",
           "working_size"]
