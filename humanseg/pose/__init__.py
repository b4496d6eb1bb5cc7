"""PoseNet (MobileNetV1) in PyTorch: body keypoints and palm centres from BGR frames.

Importing this package loads neither torch nor weights; `PoseEstimator.load()` does.
"""

from __future__ import annotations

from humanseg.pose.keypoints import KEYPOINT_NAMES, Keypoint, Palm, Pose
from humanseg.pose.palm import PalmSmoother, palms_from_pose

# The MobileNetV1 widths PoseNet's weights come in (x100). Here, not in `mobilenet`, so that
# `python -m humanseg -h` lists the `pose` command (its --model-id choices) without importing torch.
MODEL_IDS = (50, 75, 100, 101)

__all__ = ["KEYPOINT_NAMES", "MODEL_IDS", "Keypoint", "Palm", "PalmSmoother", "Pose", "PoseEstimator", "palms_from_pose"]


def __getattr__(name):
    # torch is imported only when the estimator is first asked for.
    if name == "PoseEstimator":
        from humanseg.pose.estimator import PoseEstimator

        return PoseEstimator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
