"""MobileNetV1 PoseNet: the backbone of Google's TF.js PoseNet with its four 1x1 output heads.

Layer names follow the converted `mobilenet_v1_*.pth` files (`features.conv0.conv`,
`features.convN.depthwise` / `.pointwise`, `heatmap`, `offset`, `displacement_fwd`,
`displacement_bwd`), so those files load with `strict=True`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from humanseg.pose import MODEL_IDS

OUTPUT_STRIDES = (8, 16)
NUM_KEYPOINTS = 17
NUM_EDGES = 16

# Output channels of the 14 layers at multiplier 1.0 and each layer's nominal stride.
_BASE_CHANNELS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
_STRIDES_100 = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
# The 0.50 and 0.75 checkpoints end at stride 16 and keep the width of the 512 block to the end.
_STRIDES_SMALL = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, 1)


def checkpoint_name(model_id: int) -> str:
    """File / folder stem of a model id, e.g. 50 -> 'mobilenet_v1_050'."""
    return f"mobilenet_v1_{model_id:03d}"


@dataclass(frozen=True)
class LayerSpec:
    """One backbone layer: output channels, stride and dilation actually used."""

    out_channels: int
    stride: int
    dilation: int


def layer_channels(model_id: int) -> tuple[int, ...]:
    """Output channels of the 14 backbone layers for a model id (50, 75, 100, 101)."""
    if model_id not in MODEL_IDS:
        raise ValueError(f"model id must be one of {MODEL_IDS}, got {model_id}")
    if model_id in (100, 101):
        return _BASE_CHANNELS
    multiplier = model_id / 100
    channels = [int(c * multiplier) for c in _BASE_CHANNELS]
    channels[12] = channels[13] = channels[11]
    return tuple(channels)


def layer_specs(model_id: int, output_stride: int) -> list[LayerSpec]:
    """Per-layer stride and dilation: once the output stride is reached, strides turn into dilation."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
    strides = _STRIDES_100 if model_id in (100, 101) else _STRIDES_SMALL
    specs, current_stride, rate = [], 1, 1
    for channels, stride in zip(layer_channels(model_id), strides):
        if current_stride == output_stride:
            specs.append(LayerSpec(channels, 1, rate))
            rate *= stride
        else:
            specs.append(LayerSpec(channels, stride, 1))
            current_stride *= stride
    return specs


class _StemConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)

    def forward(self, x):
        return torch.clamp(self.conv(x), 0.0, 6.0)


class _SeparableConv(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride=stride, padding=dilation,
                                   dilation=dilation, groups=in_ch)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x):
        x = torch.clamp(self.depthwise(x), 0.0, 6.0)
        return torch.clamp(self.pointwise(x), 0.0, 6.0)


def backbone(model_id: int = 50, output_stride: int = 16, layers: int | None = None) -> nn.Sequential:
    """The MobileNetV1 layers conv0, conv1, ... (the first `layers` of them; default all 14), named
    as in the converted state dicts (`convN.conv`, `convN.depthwise`, `convN.pointwise`)."""
    modules, in_ch = [], 3
    for i, spec in enumerate(layer_specs(model_id, output_stride)[:layers]):
        if i == 0:
            layer = _StemConv(in_ch, spec.out_channels, spec.stride)
        else:
            layer = _SeparableConv(in_ch, spec.out_channels, spec.stride, spec.dilation)
        modules.append((f"conv{i}", layer))
        in_ch = spec.out_channels
    return nn.Sequential(OrderedDict(modules))


class PoseNetMobileNetV1(nn.Module):
    """PoseNet on MobileNetV1; input (N, 3, H, W) RGB in [-1, 1] with (H-1) and (W-1) divisible by the
    output stride; returns heatmap logits (N, 17, h, w), offsets (N, 34, h, w) in input pixels
    (y for keypoints 0-16, then x), forward and backward displacements (N, 32, h, w)."""

    def __init__(self, model_id: int = 50, output_stride: int = 16):
        super().__init__()
        self.model_id = model_id
        self.output_stride = output_stride
        self.features = backbone(model_id, output_stride)
        in_ch = self.features[-1].pointwise.out_channels
        self.heatmap = nn.Conv2d(in_ch, NUM_KEYPOINTS, 1)
        self.offset = nn.Conv2d(in_ch, 2 * NUM_KEYPOINTS, 1)
        self.displacement_fwd = nn.Conv2d(in_ch, 2 * NUM_EDGES, 1)
        self.displacement_bwd = nn.Conv2d(in_ch, 2 * NUM_EDGES, 1)

    def forward(self, x: torch.Tensor):
        x = self.features(x)
        return self.heatmap(x), self.offset(x), self.displacement_fwd(x), self.displacement_bwd(x)
