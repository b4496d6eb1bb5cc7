"""Draw poses and palms on a frame so a person can see what PoseNet found."""

from __future__ import annotations

import cv2
import numpy as np

from humanseg.pose.keypoints import KEYPOINT_NAMES, SKELETON_LINES, Palm, Pose

# Palms red, as the capture tool draws them (humanseg.ui.draw.PALM_COLOUR; they were magenta here).
_LEFT, _RIGHT, _MIDDLE, _PALM = (255, 160, 0), (0, 140, 255), (0, 220, 0), (0, 0, 255)


def _colour(name: str) -> tuple[int, int, int]:
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _MIDDLE


def draw_poses(frame_bgr: np.ndarray, poses: list[Pose], palms: list[Palm],
               min_score: float = 0.3) -> np.ndarray:
    """A copy of the frame with skeleton lines, keypoints (score >= min_score) and palm dots."""
    canvas = frame_bgr.copy()
    for pose in poses:
        kps = pose.keypoints
        for a, b in SKELETON_LINES:
            ka, kb = kps[KEYPOINT_NAMES[a]], kps[KEYPOINT_NAMES[b]]
            if ka.score >= min_score and kb.score >= min_score:
                cv2.line(canvas, (round(ka.x), round(ka.y)), (round(kb.x), round(kb.y)),
                         _colour(KEYPOINT_NAMES[b]), 2, cv2.LINE_AA)
        for name, kp in kps.items():
            if kp.score >= min_score:
                cv2.circle(canvas, (round(kp.x), round(kp.y)), 4, _colour(name), -1, cv2.LINE_AA)
    for palm in palms:
        centre = (round(palm.x), round(palm.y))
        cv2.circle(canvas, centre, 12, _PALM, 2, cv2.LINE_AA)
        cv2.circle(canvas, centre, 3, _PALM, -1, cv2.LINE_AA)
    return canvas
