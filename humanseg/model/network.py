"""The siamese network: one shared encoder for frame and background, compared at four scales.

Reading order: `exposure_fit` (map the frame's colours into the background's exposure), `Encoder`
(depthwise-separable MobileNet-style stages at strides 2/4/8/16/32), `Compare` (frame features,
background features and their absolute difference fused by a 1x1 convolution), `Decoder`
(upsampling with skip connections), `Refine` (a pixel-level correction at input resolution).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from humanseg.pose.mobilenet import backbone as posenet_backbone, layer_channels


@dataclass
class NetConfig:
    """Everything needed to rebuild the network (stored in checkpoints)."""

    widths: tuple[int, ...] = (16, 24, 48, 112, 160)
    blocks: tuple[int, ...] = (1, 2, 3, 4, 2)
    decoder_widths: tuple[int, ...] = (16, 24, 32, 64, 96)
    refine_width: int = 8
    # Kernel of the refine step's first convolution: 3, or 1 (that convolution, the largest single
    # cost per frame at the working resolution, then takes about a quarter of the time); the
    # step's output convolution stays 3x3 either way.
    refine_kernel: int = 3
    exposure_iters: int = 3
    # Finest encoder level the decoder reads; 1 skips the stride-2 level (the head then sits at stride 4).
    decode_from: int = 1
    # "own": the Encoder below; "posenet050": PoseNet's MobileNetV1-0.50 layers 0-7 (strides 2-16,
    # pretrained on people, see PoseNetEncoder) and an own stride-32 stage of widths[4] x blocks[4].
    encoder: str = "own"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "NetConfig":
        if not isinstance(d, dict):  # (a string was said as "unknown keys" of its letters)
            raise ValueError(f"not a record of settings (its type: {type(d).__name__})")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        d = {"decode_from": 0, **d}  # checkpoints from before decode_from decoded every level
        config = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        config.check()
        return config

    def check(self) -> None:
        """ValueError naming the first field a network cannot be built or run from (a checkpoint's
        config edited or damaged: -3 channels, a level that does not exist, 2.5 iterations)."""
        def whole(value, low: int, high: int) -> bool:
            return type(value) is int and low <= value <= high

        levels = len(self.widths) if isinstance(self.widths, tuple) else 0
        for name in ("widths", "blocks", "decoder_widths"):
            value = getattr(self, name)
            if not (isinstance(value, tuple) and 2 <= len(value) == levels and all(whole(v, 1, 4096) for v in value)):
                count = "at least 2" if name == "widths" else f"{levels} (one per level, as widths)"
                raise ValueError(f"{name} must be {count} whole numbers from 1 to 4096, not {value!r}")
        checks = (("refine_width", whole(self.refine_width, 1, 4096), "a whole number from 1 to 4096"),
                  ("refine_kernel", self.refine_kernel in (1, 3) and type(self.refine_kernel) is int, "1 or 3"),
                  ("exposure_iters", whole(self.exposure_iters, 0, 20), "a whole number from 0 to 20"),
                  ("decode_from", whole(self.decode_from, 0, levels - 2), f"a level from 0 to {levels - 2}"),
                  ("encoder", self.encoder in ("own", "posenet050"), "'own' or 'posenet050'"))
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"{name} must be {what}, not {getattr(self, name)!r}")


# Named configurations for training from scratch (`training.py --arch`). "large" spends its extra
# parameters on the stride-16/32 stages, where they cost little time per frame.
ARCHS = {
    "base": NetConfig(),
    "large": NetConfig(widths=(16, 32, 64, 128, 224), blocks=(1, 2, 4, 6, 3),
                       decoder_widths=(16, 24, 40, 64, 112)),
    "pose": NetConfig(widths=(32, 64, 128, 256, 160), blocks=(2, 2, 2, 2, 2), encoder="posenet050"),
}


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1,
            act: bool = True) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    layers = [nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SepBlock(nn.Module):
    """Depthwise 3x3 then pointwise 1x1; residual when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.dw = conv_bn(cin, cin, 3, stride, groups=cin, dilation=dilation)
        self.pw = conv_bn(cin, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        if self.residual:
            y = y + x
        return F.relu(y)


class Encoder(nn.Module):
    """Image (B,3,H,W) normalised -> features at strides 2, 4, 8, ... (one per stage)."""

    def __init__(self, widths, blocks):
        super().__init__()
        self.stem = conv_bn(3, widths[0], 3, stride=2)
        stages = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layers = []
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                # Dilation in the last stage widens the context without another downsampling.
                dilation = 2 if (i == len(widths) - 1 and j == n - 1 and n > 1) else 1
                layers.append(SepBlock(cin, w, stride, dilation))
                cin = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return []  # trained from random weights only

    def forward(self, x) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class PoseNetEncoder(nn.Module):
    """PoseNet's MobileNetV1-0.50 backbone up to stride 16 (its layers conv0-conv7, which saw people
    in training), then an own stage at stride 32. Features at strides 2, 4, 8, 16, 32.

    Built with the layer names of the PoseNet state dict (`features.convN...`), so
    `load_posenet` copies a PoseNet checkpoint's backbone in; the input transform PoseNet expects
    (RGB in [-1, 1]) is folded into the first convolution there, so it costs nothing per frame.
    """

    LEVELS = ((0, 1), (2, 3), (4, 5), (6, 7))  # PoseNet layers making up each stride level
    WIDTHS = tuple(layer_channels(50)[last] for _, last in LEVELS)  # (32, 64, 128, 256)

    def __init__(self, top_width: int, top_blocks: int):
        super().__init__()
        self.features = posenet_backbone(50, 16, layers=self.LEVELS[-1][-1] + 1)
        top, cin = [], self.WIDTHS[-1]
        for j in range(top_blocks):
            dilation = 2 if (j == top_blocks - 1 and top_blocks > 1) else 1
            top.append(SepBlock(cin, top_width, 2 if j == 0 else 1, dilation))
            cin = top_width
        self.top = nn.Sequential(*top)

    def load_posenet(self, state: dict[str, torch.Tensor]) -> None:
        """Copy PoseNet's backbone weights in (a PoseNet state dict, `features.convN.*` keys)."""
        names = set(self.features.state_dict())
        self.features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                       if k.startswith("features.") and k[len("features."):] in names})
        conv = self.features.conv0.conv
        with torch.no_grad():
            # Our input is (BGR - MEAN) / STD; PoseNet's is RGB * 2 - 1 = flip(x) * 2 STD + 2 MEAN - 1.
            w = conv.weight.flip(1)
            conv.bias.add_(w.sum((1, 2, 3)) * (2 * MEAN - 1))
            conv.weight.copy_(w * 2 * STD)

    def pretrained_parameters(self) -> list[nn.Parameter]:
        return list(self.features.parameters())

    def forward(self, x) -> list[torch.Tensor]:
        feats = []
        for first, last in self.LEVELS:
            for i in range(first, last + 1):
                x = self.features[i](x)
            feats.append(x)
        feats.append(self.top(x))
        return feats


class Compare(nn.Module):
    """Fuse frame features f, background features b and |f - b|: W_f f + W_d |f - b| + W_b b.

    Written as a sum of three 1x1 convolutions rather than one over a concatenation, so the
    background's term is computed once per background and the concatenation never materialises.
    """

    def __init__(self, c: int, cout: int):
        super().__init__()
        self.frame = nn.Conv2d(c, cout, 1, bias=True)
        self.diff = nn.Conv2d(c, cout, 1, bias=False)
        self.bkg = nn.Conv2d(c, cout, 1, bias=False)

    def forward(self, f, b, bkg_term=None):
        if bkg_term is None:
            bkg_term = self.bkg(b)
        return F.relu(self.frame(f) + self.diff((f - b).abs()) + bkg_term)


class Decoder(nn.Module):
    """Coarse-to-fine: upsample, add the compared skip features, mix with a separable block."""

    def __init__(self, widths, dwidths, start: int = 0):
        super().__init__()
        self.start = start
        widths, dwidths = list(widths)[start:], list(dwidths)[start:]
        self.compare = nn.ModuleList([Compare(w, d) for w, d in zip(widths, dwidths)])
        top = dwidths[-1]
        # Global context at the coarsest scale: scene-wide cues (lighting shift, camera shake).
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(top, top, 1), nn.Sigmoid())
        self.mix = nn.ModuleList([SepBlock(d, d) for d in dwidths])
        # 1x1 projections so a coarse level's width matches the next finer level's.
        self.project = nn.ModuleList([conv_bn(dwidths[i + 1], dwidths[i], 1, act=False)
                                      for i in range(len(dwidths) - 1)])
        self.head = nn.Conv2d(dwidths[0], 1, 1)

    def forward(self, ff: list[torch.Tensor], bf: list[torch.Tensor],
                bterms: list[torch.Tensor]) -> torch.Tensor:
        ff, bf = ff[self.start:], bf[self.start:]
        x = self.compare[-1](ff[-1], bf[-1], bterms[-1])
        x = x * self.context(x)
        x = self.mix[-1](x)
        for i in range(len(ff) - 2, -1, -1):
            skip = self.compare[i](ff[i], bf[i], bterms[i])
            # Project before upsampling: the 1x1 runs on the smaller map.
            x = F.interpolate(self.project[i](x), size=skip.shape[-2:], mode="bilinear",
                              align_corners=False)
            x = self.mix[i](x + skip)
        return self.head(x)  # logits at stride 2 ** (start + 1)


def pixel_difference(frame: torch.Tensor, bkg: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the colour channels, (B,1,H,W): the refine step's evidence."""
    return (frame - bkg).abs().mean(1, keepdim=True)


class Refine(nn.Module):
    """Correct the upsampled logits with pixel-level evidence (frame, background, difference)."""

    def __init__(self, width: int, kernel: int = 3):
        super().__init__()
        self.inp = nn.Conv2d(1 + 3 + 1, width, kernel, padding=kernel // 2, bias=True)
        self.bkg = nn.Conv2d(3, width, kernel, padding=kernel // 2, bias=False)  # cached per background
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, logits, frame, bkg, bkg_term=None):
        if bkg_term is None:
            bkg_term = self.bkg(bkg)
        h = F.relu(self.inp(torch.cat([logits, frame, pixel_difference(frame, bkg)], 1)) + bkg_term)
        return logits + self.out(h)


def with_refine_kernel(model: "SiameseSegNet", kernel: int) -> "SiameseSegNet":
    """A copy of `model` whose refine step's first convolution has `kernel` (1 or 3), all else equal.

    3 -> 1 sums each 3x3 filter's taps into one (the same response wherever the input is flat; on
    the three-stage PoseNet-encoder model, held-out mIoU / boundary F went from 0.977 / 0.902 to
    0.976 / 0.901 by this alone, before training on); 1 -> 3 puts the 1x1 weights in the centre
    tap (the same function).
    """
    if kernel not in (1, 3):
        raise ValueError(f"refine kernel must be 1 or 3, not {kernel}")
    old = model.config.refine_kernel
    new = SiameseSegNet(replace(model.config, refine_kernel=kernel))
    state = dict(model.state_dict())
    for name in ("refine.inp.weight", "refine.bkg.weight"):
        w = state[name]
        if kernel == 1 and old == 3:
            state[name] = w.sum((2, 3), keepdim=True)
        elif kernel == 3 and old == 1:
            state[name] = F.pad(w, (1, 1, 1, 1))
    new.load_state_dict(state)
    return new.train(model.training)


class MergedRefine(nn.Module):
    """Refine with its background convolution merged into the input one: the same function.

    One convolution over [logits, frame, diff, bkg] (8 channels, one SIMD block of ONNX Runtime's
    blocked layout with AVX2, which pads the 5 channels of `inp` to 8 anyway) replaces two
    convolutions plus a full-resolution add; used where the background term is not cached (ONNX).
    """

    def __init__(self, refine: Refine):
        super().__init__()
        inp, bkg = refine.inp, refine.bkg
        out = refine.out
        self.conv = nn.Conv2d(inp.in_channels + bkg.in_channels, inp.out_channels, inp.kernel_size,
                              padding=inp.padding, bias=True)
        # out (C->1, 3x3) as a depthwise 3x3 and a channel sum: the blocked layout would pad its
        # single output channel to a whole block (8 or 16), doing 8-16x the work. The sum is a
        # ReduceSum, not a 1x1 convolution of ones, which would pad the same way (3-4% less time in
        # ONNX Runtime's run, interleaved A/B).
        self.out_dw = nn.Conv2d(out.in_channels, out.in_channels, 3, padding=1, groups=out.in_channels, bias=False)
        self.out_bias = nn.Parameter(out.bias.detach().clone().reshape(1, 1, 1, 1))
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([inp.weight, bkg.weight], 1))
            self.conv.bias.copy_(inp.bias)
            self.out_dw.weight.copy_(out.weight.reshape(out.in_channels, 1, 3, 3))

    def forward(self, logits, frame, bkg, bkg_term=None):
        h = F.relu(self.conv(torch.cat([logits, frame, pixel_difference(frame, bkg), bkg], 1)))
        return logits + self.out_bias + self.out_dw(h).sum(1, keepdim=True)


# The exposure fit's constants, shared by the PyTorch fit and its numpy twin (the ONNX path):
FIT_GAIN_RANGE = (0.5, 2.0)  # the fitted gains are clamped to this range
FIT_VAR_EPS = 1e-4           # regularises the gain where the sample hardly varies
FIT_SOFT_RESID = 0.06        # pixels differing by more (~15 grey levels) barely count
FIT_SCALE = 4                # the fit samples every FIT_SCALE-th pixel (`fit_sample_grid`)


def fit_sample_grid(scale: int) -> tuple[slice, slice]:
    """Rows and columns the fit samples (every `scale`-th pixel): the same points in both fits."""
    step = slice(scale // 2, None, scale)
    return step, step


def exposure_fit(frame: torch.Tensor, bkg: torch.Tensor, iters: int = 3, scale: int = FIT_SCALE) -> torch.Tensor:
    """Per-channel gain/offset mapping frame (B,3,H,W, 0..1) into bkg's exposure, fitted robustly.

    Auto-exposure and white balance move background pixels by tens of grey levels between the
    reference and the frame; a weighted least-squares fit that down-weights pixels that still
    differ (the person, shadows, moved objects) undoes most of that before any comparison.
    """
    # A strided sample is plenty for six parameters and costs nothing, unlike pooling.
    rows, cols = fit_sample_grid(scale)
    f, b = frame[..., rows, cols], bkg[..., rows, cols]
    w = torch.ones_like(f[:, :1])
    gain = torch.ones(frame.shape[0], 3, 1, 1, dtype=frame.dtype, device=frame.device)
    offset = torch.zeros_like(gain)
    for _ in range(iters):
        ws = w.sum((2, 3), keepdim=True) + 1e-6
        mf = (w * f).sum((2, 3), keepdim=True) / ws
        mb = (w * b).sum((2, 3), keepdim=True) / ws
        cov = (w * (f - mf) * (b - mb)).sum((2, 3), keepdim=True) / ws
        var = (w * (f - mf) ** 2).sum((2, 3), keepdim=True) / ws
        gain = (cov / (var + FIT_VAR_EPS)).clamp(*FIT_GAIN_RANGE)
        offset = mb - gain * mf
        resid = (gain * f + offset - b).abs().mean(1, keepdim=True)
        # Soft weights: pixels that still differ by more than ~0.06 (15 grey levels) barely count.
        w = torch.exp(-((resid / FIT_SOFT_RESID) ** 2))
    return (gain * frame + offset).clamp(0.0, 1.0)


def numpy_exposure_fit(frame: np.ndarray, bkg_sample: np.ndarray, iters: int = 3,
                       scale: int = FIT_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """`exposure_fit`'s gain and offset (3 each, float32, BGR) in numpy, for the ONNX path.

    frame: HxWx3 uint8, padded as the network pads; bkg_sample: the background's 0..1 values at
    the same sample points, (3, n) float64 (`exposure_sample`, taken once per background). The
    same weighted fit from moment sums (one matrix-vector product per iteration, channels as rows:
    numpy is slow along a short last axis); the fitted frame agrees with the PyTorch fit's to
    about 1e-7. About 0.2-0.4 ms at 320x240, a millisecond less than the same small operations as
    graph nodes.
    """
    # float64: the moment sums' differences (E[fb] - E[f]E[b]) would lose digits in float32.
    rows, cols = fit_sample_grid(scale)
    f = np.ascontiguousarray(frame[rows, cols].reshape(-1, 3).T, np.float64)
    f *= 1 / 255.0
    b = np.asarray(bkg_sample, np.float64)
    sums = np.concatenate([f, b, f * b, f * f, np.ones((1, f.shape[1]))])
    w = np.ones(f.shape[1])
    gain, offset = np.ones(3), np.zeros(3)
    for _ in range(iters):
        s = sums @ w
        ws = s[12] + 1e-6
        mf, mb = s[0:3] / ws, s[3:6] / ws
        cov = s[6:9] / ws - mf * mb
        var = s[9:12] / ws - mf * mf
        gain = np.clip(cov / (var + FIT_VAR_EPS), *FIT_GAIN_RANGE)
        offset = mb - gain * mf
        d = f * gain[:, None]
        d += offset[:, None] - b
        np.abs(d, out=d)
        r = (d[0] + d[1] + d[2]) * (1 / (3 * FIT_SOFT_RESID))
        w = np.exp(-(r * r))
    return gain.astype(np.float32), offset.astype(np.float32)


def exposure_sample(bkg: torch.Tensor, scale: int = FIT_SCALE) -> np.ndarray:
    """The padded 0..1 background (1,3,H,W) at `exposure_fit`'s sample points, (3, n) float64."""
    rows, cols = fit_sample_grid(scale)
    b = bkg[0, :, rows, cols]
    return np.ascontiguousarray(b.reshape(3, -1).detach().cpu().numpy(), np.float64)


def normalising_lut(gain: np.ndarray, offset: np.ndarray) -> list[np.ndarray]:
    """Per channel, uint8 value -> (clamp(gain * v / 255 + offset, 0, 1) - MEAN) / STD, float32 (1, 256)."""
    v = np.arange(256, dtype=np.float32) * np.float32(1 / 255.0)
    return [((np.clip(v * g + o, 0.0, 1.0) - MEAN) / STD).astype(np.float32).reshape(1, 256)
            for g, o in zip(gain, offset)]


class BkgCache:
    """Everything about the background that does not depend on the frame, computed once."""

    def __init__(self, bkg: torch.Tensor, normed: torch.Tensor, feats: list[torch.Tensor],
                 bterms: list[torch.Tensor], refine_term: torch.Tensor):
        self.bkg = bkg            # padded, 0..1
        self.normed = normed      # padded, normalised
        self.feats = feats
        self.bterms = bterms
        self.refine_term = refine_term


MEAN, STD = 0.45, 0.25


class SiameseSegNet(nn.Module):
    """frame, bkg: (B,3,H,W) float 0..1 (BGR) -> person logits (B,1,H,W); H, W any size."""

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = config or NetConfig()
        c = self.config
        if c.encoder == "posenet050":
            if tuple(c.widths[:4]) != PoseNetEncoder.WIDTHS:
                raise ValueError(f"encoder posenet050 has widths {PoseNetEncoder.WIDTHS} up to stride 16")
            self.encoder = PoseNetEncoder(c.widths[4], c.blocks[4])
        elif c.encoder == "own":
            self.encoder = Encoder(c.widths, c.blocks)
        else:
            raise ValueError(f"unknown encoder {c.encoder!r}")
        self.decoder = Decoder(c.widths, c.decoder_widths, c.decode_from)
        if c.refine_kernel not in (1, 3):
            raise ValueError(f"refine_kernel must be 1 or 3, not {c.refine_kernel}")
        self.refine = Refine(c.refine_width, c.refine_kernel)
        # Inputs are padded to a multiple of 16, the size step of training crops (training.py --size):
        # the network only ever learned from such sizes, so it is not shown padding it never saw.
        # Coarser levels may then have odd sizes; the decoder upsamples to each skip's own size.
        self.stride = min(16, 2 ** len(c.widths))

    def _pad(self, x):
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph or pw:
            # Replicate padding: a constant border would read as a change between frame and bkg.
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return x

    def encode_background(self, bkg: torch.Tensor) -> BkgCache:
        bkg = self._pad(bkg)
        normed = (bkg - MEAN) / STD
        feats = self.encoder(normed)
        bterms = [cmp.bkg(f) for cmp, f in zip(self.decoder.compare, feats[self.decoder.start:])]
        return BkgCache(bkg, normed, feats, bterms, self.refine.bkg(normed))

    def forward_cached(self, frame: torch.Tensor, cache: BkgCache, refine: nn.Module | None = None) -> torch.Tensor:
        """Logits for `frame` against a cached background; `refine` stands in for self.refine
        (MergedRefine, the same function, where the export wants it)."""
        h, w = frame.shape[-2:]
        frame = self._pad(frame)
        if frame.shape[-2:] != cache.bkg.shape[-2:]:
            raise ValueError(f"frame size {w}x{h} does not match the background's")
        frame = exposure_fit(frame, cache.bkg, self.config.exposure_iters)
        return self.forward_normed((frame - MEAN) / STD, cache, refine)[..., :h, :w]

    def forward_normed(self, fn: torch.Tensor, cache: BkgCache, refine: nn.Module | None = None) -> torch.Tensor:
        """The rest of forward_cached, from the frame already padded, exposure-fitted and normalised
        (`fn`, as `numpy_exposure_fit` + `normalising_lut` make it; what the ONNX graph takes)."""
        logits = self.decoder(self.encoder(fn), cache.feats, cache.bterms)
        logits = F.interpolate(logits, size=fn.shape[-2:], mode="bilinear", align_corners=False)
        refine = self.refine if refine is None else refine
        return refine(logits, fn, cache.normed, cache.refine_term)

    def forward(self, frame: torch.Tensor, bkg: torch.Tensor) -> torch.Tensor:
        return self.forward_cached(frame, self.encode_background(bkg))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every Conv2d+BatchNorm2d pair (inside conv_bn Sequentials) into one Conv2d, in place."""
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            items = list(module._modules.items())
            for (n1, conv), (n2, bn) in zip(items, items[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    std = torch.sqrt(bn.running_var + bn.eps)
                    scale = bn.weight / std
                    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                      conv.padding, conv.dilation, conv.groups, bias=True)
                    fused.weight.data = conv.weight.data * scale.reshape(-1, 1, 1, 1)
                    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
                    fused.bias.data = (bias - bn.running_mean) * scale + bn.bias
                    module._modules[n1] = fused
                    module._modules[n2] = nn.Identity()
    return model
