"""Plain values PoseNet produces: keypoints, poses and palms (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field

# PoseNet's 17 keypoints in the order of its heatmap channels. "left" is the person's left as in an
# ordinary photo of someone facing the camera: the keypoint on the image's right, mirrored or not.
KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Tree edges (parent, child) in the order of the displacement channels; the nose is the root.
POSE_EDGES = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b])
    for a, b in (
        ("nose", "left_eye"), ("left_eye", "left_ear"),
        ("nose", "right_eye"), ("right_eye", "right_ear"),
        ("nose", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("left_shoulder", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("nose", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("right_shoulder", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    )
)

# Lines drawn for a person to look at (not the decoding tree).
SKELETON_LINES = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b])
    for a, b in (
        ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
        ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    )
)


@dataclass(frozen=True)
class Keypoint:
    """A body keypoint in frame pixels (x right, y down) with PoseNet's score in [0, 1]."""

    x: float
    y: float
    score: float


@dataclass(frozen=True)
class Pose:
    """One person: keypoints by name (all 17) and the pose score in [0, 1]."""

    keypoints: dict[str, Keypoint] = field(default_factory=dict)
    score: float = 0.0


@dataclass(frozen=True)
class Palm:
    """A palm centre in frame pixels; side is PoseNet's arm ("left"/"right"), score in [0, 1]."""

    x: float
    y: float
    side: str
    score: float
