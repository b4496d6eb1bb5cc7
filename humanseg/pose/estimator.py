"""PoseEstimator: BGR frame in, poses and palms in frame pixels out."""

from __future__ import annotations

import os
import warnings

import cv2
import numpy as np
import torch

from humanseg import store
from humanseg.ort_session import session_from_module
from humanseg.pose.decode import (DecodedPose, decode_multiple_poses, decode_single_pose, sigmoid,
                                  valid_input_size)
from humanseg.pose.keypoints import KEYPOINT_NAMES, Keypoint, Palm, Pose
from humanseg.pose.mobilenet import PoseNetMobileNetV1
from humanseg.pose.palm import palms_from_pose
from humanseg.pose.weights import load_network

# Half a 640x480 frame (a 321x241 input) found more wrists than full size here. By default every frame
# is fitted to that size, 320x240, up or down: a wider camera's person spans as many input pixels and
# the network costs what it does for a 640 px frame (at half size a 1280x720 and a 1920x1080 frame were
# 3 and 7 times the pixels), and a smaller camera's person is large enough to find (at half size a
# 160x120 frame gave 12 of the dev frames' 50 wrists, fitted 50; a 320x240 one 46 and 50).
DEFAULT_INPUT_WIDTH = 320


class PoseEstimator:
    """Runs PoseNet on BGR uint8 frames (H, W, 3); results are in the frame's pixel coordinates."""

    def __init__(self, network: PoseNetMobileNetV1, scale: float | None = None, max_poses: int = 1,
                 min_pose_score: float = 0.25, part_threshold: float = 0.5, nms_radius: float = 20.0,
                 wrist_threshold: float = 0.3, elbow_threshold: float = 0.3, optimize: bool = True,
                 single_when_alone: bool = False):
        if scale is not None and not 0.05 <= float(scale) <= 2.0:
            raise ValueError(f"pose scale must be within 0.05 and 2.0, got {scale}")
        self.network = network.eval()
        self.output_stride = network.output_stride
        self.scale = None if scale is None else float(scale)  # None: fitted to DEFAULT_INPUT_WIDTH x 3/4 of it
        self.max_poses = max_poses
        self.min_pose_score = min_pose_score
        self.part_threshold = part_threshold
        self.nms_radius = nms_radius
        self.wrist_threshold = wrist_threshold
        self.elbow_threshold = elbow_threshold
        # With max_poses > 1: where the multi-pose decoder finds one person or none, the single-pose
        # decoder's answer (the capture tool: one person as before, each of two people their own palms).
        self.single_when_alone = single_when_alone
        self._runner = optimized_for_cpu(self.network) if optimize else self.network

    @classmethod
    def load(cls, weights: str | os.PathLike | None = None, model_id: int = 50, output_stride: int = 16,
             scale: float | None = None, num_threads: int | None = None, show_progress: bool = True,
             **options) -> "PoseEstimator":
        """Estimator with weights from the lookup order (raises WeightsError, one line, when none);
        num_threads sets torch's (process-wide) CPU thread count."""
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        network = load_network(weights, model_id, output_stride, show_progress=show_progress)
        return cls(network, scale=scale, **options)

    def input_size(self, frame_width: int, frame_height: int) -> tuple[int, int]:
        """Network input (width, height) in pixels for a frame size at this estimator's scale."""
        scale = self.scale
        if scale is None:  # the frame fitted to 320x240, up or down: a 640x480 frame at half size
            scale = min(DEFAULT_INPUT_WIDTH / frame_width, DEFAULT_INPUT_WIDTH * 3 / 4 / frame_height)
        return (valid_input_size(frame_width * scale, self.output_stride),
                valid_input_size(frame_height * scale, self.output_stride))

    def preprocess(self, frame_bgr: np.ndarray) -> torch.Tensor:
        """(1, 3, h, w) float32 RGB in [-1, 1] at the valid input size."""
        store.check_bgr(frame_bgr, "frame")
        h, w = frame_bgr.shape[:2]
        in_w, in_h = self.input_size(w, h)
        resized = cv2.resize(frame_bgr, (in_w, in_h), interpolation=cv2.INTER_LINEAR)
        rgb = resized[:, :, ::-1].astype(np.float32) * (2.0 / 255.0) - 1.0
        return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]

    def forward(self, tensor: torch.Tensor) -> tuple[np.ndarray, ...]:
        """Network outputs for one image as numpy: heatmap logits, offsets, fwd and bwd displacements."""
        with torch.inference_mode():
            outputs = self._runner(tensor)
        return tuple(o[0].numpy() for o in outputs)

    def decode(self, outputs: tuple[np.ndarray, ...]) -> list[DecodedPose]:
        """Poses in network-input pixels, strongest first, those under min_pose_score dropped."""
        heatmap, offsets, disp_fwd, disp_bwd = outputs
        poses = []
        if self.max_poses > 1:
            poses = decode_multiple_poses(sigmoid(heatmap), offsets, disp_fwd, disp_bwd, self.output_stride,
                                          max_poses=self.max_poses, part_threshold=self.part_threshold,
                                          nms_radius=self.nms_radius)
            poses = [p for p in poses if p.score >= self.min_pose_score]
        if self.max_poses == 1 or (self.single_when_alone and len(poses) < 2):
            poses = [p for p in [decode_single_pose(heatmap, offsets, self.output_stride)]
                     if p.score >= self.min_pose_score]
        return sorted(poses, key=lambda p: -p.score)

    def estimate(self, frame_bgr: np.ndarray) -> list[Pose]:
        """Poses in the frame, strongest first; keypoints in frame pixels (may lie outside the frame)."""
        tensor = self.preprocess(frame_bgr)  # (checks the frame)
        h, w = frame_bgr.shape[:2]
        in_h, in_w = tensor.shape[2:]
        decoded = self.decode(self.forward(tensor))
        return [to_frame_pose(p, w / in_w, h / in_h) for p in decoded]

    def palms_from_poses(self, poses: list[Pose], frame_width: int, frame_height: int) -> list[Palm]:
        """Palms of all poses that pass the wrist and elbow thresholds, inside the frame."""
        palms = []
        for pose in poses:
            palms.extend(palms_from_pose(pose, frame_width, frame_height,
                                         self.wrist_threshold, self.elbow_threshold))
        return palms

    def palms(self, frame_bgr: np.ndarray) -> list[Palm]:
        """Palm centres in frame pixels (0, 1 or 2 per person)."""
        poses = self.estimate(frame_bgr)
        return self.palms_from_poses(poses, frame_bgr.shape[1], frame_bgr.shape[0])


class OrtRunner:
    """The network in ONNX Runtime (dynamic input size): called like the module, returns torch tensors.

    On CPU it runs MobileNet's depthwise convolutions faster than PyTorch; outputs agree within 1e-3.
    """

    def __init__(self, network: PoseNetMobileNetV1, threads: int | None = None):
        example = torch.zeros(1, 3, 8 * network.output_stride + 1, 8 * network.output_stride + 1)
        outputs = ["heatmap", "offsets", "displacement_fwd", "displacement_bwd"]
        axes = {name: {2: "h", 3: "w"} for name in ["image", *outputs]}
        self.session = session_from_module(network, (example,), ["image"], outputs, axes,
                                           threads or torch.get_num_threads())

    def __call__(self, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = self.session.run(None, {"image": np.ascontiguousarray(tensor.numpy())})
        return tuple(torch.from_numpy(o) for o in outs)


def traced_for_cpu(network: PoseNetMobileNetV1) -> torch.nn.Module:
    """A frozen TorchScript copy run through oneDNN (about 1.5x faster than eager on CPU)."""
    example = torch.zeros(1, 3, 8 * network.output_stride + 1, 8 * network.output_stride + 1)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(network, example))
        return torch.jit.optimize_for_inference(traced)


def optimized_for_cpu(network: PoseNetMobileNetV1):
    """The fastest runner that works: ONNX Runtime, else frozen TorchScript, else the eager network."""
    for make in (OrtRunner, traced_for_cpu):
        try:
            return make(network)
        except Exception:  # an optimisation must never stop the tool from running
            continue
    return network


def to_frame_pose(decoded: DecodedPose, sx: float, sy: float) -> Pose:
    """Map a pose from input pixels to frame pixels; sx, sy = frame size / input size (pixel centres)."""
    keypoints = {}
    for name, (y, x), score in zip(KEYPOINT_NAMES, decoded.coords, decoded.scores):
        keypoints[name] = Keypoint(x=float((x + 0.5) * sx - 0.5), y=float((y + 0.5) * sy - 0.5),
                                   score=float(score))
    return Pose(keypoints=keypoints, score=float(decoded.score))
