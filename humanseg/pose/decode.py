"""Turn PoseNet's output maps into keypoints (numpy only).

All positions here are (y, x) in the network input's pixels; the estimator maps them to the frame.
Maps are channel-first for one image: scores (17, h, w), offsets (34, h, w) with y for keypoints
0-16 then x, displacements (32, h, w) with y for edges 0-15 then x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from humanseg.pose.keypoints import POSE_EDGES

NUM_KEYPOINTS = 17


@dataclass
class DecodedPose:
    """A pose in input pixels: coords (17, 2) as (y, x), scores (17,), and the pose score."""

    coords: np.ndarray
    scores: np.ndarray
    score: float


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, elementwise."""
    return 1.0 / (1.0 + np.exp(-x))


def valid_input_size(size: float, output_stride: int) -> int:
    """Nearest size n >= stride + 1 with (n - 1) divisible by the output stride, in pixels."""
    steps = max(1, int(round((size - 1) / output_stride)))
    return steps * output_stride + 1


def decode_single_pose(heatmap_logits: np.ndarray, offsets: np.ndarray, output_stride: int) -> DecodedPose:
    """Best cell per keypoint plus its offset; heatmap_logits (17, h, w) before the sigmoid."""
    k, h, w = heatmap_logits.shape
    flat = heatmap_logits.reshape(k, -1).argmax(axis=1)
    ys, xs = np.divmod(flat, w)
    idx = np.arange(k)
    scores = sigmoid(heatmap_logits[idx, ys, xs].astype(np.float64))
    coords = np.stack([
        ys * output_stride + offsets[idx, ys, xs],
        xs * output_stride + offsets[idx + k, ys, xs],
    ], axis=1).astype(np.float64)
    return DecodedPose(coords, scores, float(scores.mean()))


def _local_maxima(scores: np.ndarray, threshold: float, radius: int) -> list[tuple[float, int, int, int]]:
    """(score, keypoint, y, x) of cells at least `threshold` that are the maximum of their window."""
    k, h, w = scores.shape
    padded = np.pad(scores, ((0, 0), (radius, radius), (radius, radius)), constant_values=-np.inf)
    window_max = np.full_like(scores, -np.inf)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            np.maximum(window_max, padded[:, dy:dy + h, dx:dx + w], out=window_max)
    ks, ys, xs = np.nonzero((scores >= threshold) & (scores >= window_max))
    found = [(float(scores[a, b, c]), int(a), int(b), int(c)) for a, b, c in zip(ks, ys, xs)]
    found.sort(key=lambda item: -item[0])
    return found


def _cell(point: np.ndarray, output_stride: int, h: int, w: int) -> tuple[int, int]:
    y = int(np.clip(round(point[0] / output_stride), 0, h - 1))
    x = int(np.clip(round(point[1] / output_stride), 0, w - 1))
    return y, x


def _follow_edge(source: np.ndarray, target: int, edge: int, displacements: np.ndarray,
                 scores: np.ndarray, offsets: np.ndarray, output_stride: int,
                 refine_steps: int) -> tuple[np.ndarray, float]:
    """Jump from a keypoint along one skeleton edge, then snap onto the target's heatmap and offsets."""
    _, h, w = scores.shape
    num_edges = displacements.shape[0] // 2
    cy, cx = _cell(source, output_stride, h, w)
    point = source + np.array([displacements[edge, cy, cx], displacements[edge + num_edges, cy, cx]])
    for _ in range(refine_steps):
        cy, cx = _cell(point, output_stride, h, w)
        point = np.array([cy * output_stride + offsets[target, cy, cx],
                          cx * output_stride + offsets[target + NUM_KEYPOINTS, cy, cx]], dtype=np.float64)
    cy, cx = _cell(point, output_stride, h, w)  # the score where the point ended, not where it came from
    return point, float(scores[target, cy, cx])


def _decode_from_root(root_score: float, root: int, root_point: np.ndarray, scores: np.ndarray,
                      offsets: np.ndarray, disp_fwd: np.ndarray, disp_bwd: np.ndarray,
                      output_stride: int, refine_steps: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.zeros((NUM_KEYPOINTS, 2))
    kp_scores = np.zeros(NUM_KEYPOINTS)
    known = np.zeros(NUM_KEYPOINTS, dtype=bool)
    coords[root], kp_scores[root], known[root] = root_point, root_score, True
    # Walk towards the nose first (children to parents), then out to every limb end.
    for edge in reversed(range(len(POSE_EDGES))):
        parent, child = POSE_EDGES[edge]
        if known[child] and not known[parent]:
            coords[parent], kp_scores[parent] = _follow_edge(
                coords[child], parent, edge, disp_bwd, scores, offsets, output_stride, refine_steps)
            known[parent] = True
    for edge in range(len(POSE_EDGES)):
        parent, child = POSE_EDGES[edge]
        if known[parent] and not known[child]:
            coords[child], kp_scores[child] = _follow_edge(
                coords[parent], child, edge, disp_fwd, scores, offsets, output_stride, refine_steps)
            known[child] = True
    return coords, kp_scores


def decode_multiple_poses(scores: np.ndarray, offsets: np.ndarray, disp_fwd: np.ndarray,
                          disp_bwd: np.ndarray, output_stride: int, max_poses: int = 10,
                          part_threshold: float = 0.5, nms_radius: float = 20.0,
                          local_radius: int = 1, refine_steps: int = 2) -> list[DecodedPose]:
    """Multi-person decoding: heatmap peaks as roots, displacement-guided walks along the skeleton,
    and suppression of roots / keypoints within nms_radius input pixels of a found pose."""
    squared_radius = nms_radius ** 2
    poses: list[DecodedPose] = []
    for root_score, k, y, x in _local_maxima(scores, part_threshold, local_radius):
        if len(poses) >= max_poses:
            break
        root_point = np.array([y * output_stride + offsets[k, y, x],
                               x * output_stride + offsets[k + NUM_KEYPOINTS, y, x]], dtype=np.float64)
        if any(np.sum((p.coords[k] - root_point) ** 2) <= squared_radius for p in poses):
            continue
        coords, kp_scores = _decode_from_root(root_score, k, root_point, scores, offsets,
                                              disp_fwd, disp_bwd, output_stride, refine_steps)
        # Keypoints already claimed by a stronger pose do not add to this one's score.
        free = np.ones(NUM_KEYPOINTS, dtype=bool)
        for p in poses:
            free &= np.sum((p.coords - coords) ** 2, axis=1) > squared_radius
        poses.append(DecodedPose(coords, kp_scores, float(kp_scores[free].sum() / NUM_KEYPOINTS)))
    return poses
