"""Palm centres from wrist and elbow, and the One-Euro smoother."""

import numpy as np
import pytest

from humanseg.pose import Keypoint, Palm, PalmSmoother, Pose, palms_from_pose
from humanseg.pose.keypoints import KEYPOINT_NAMES


def _pose(**points):
    kps = {name: Keypoint(0.0, 0.0, 0.0) for name in KEYPOINT_NAMES}
    for name, (x, y, s) in points.items():
        kps[name] = Keypoint(x, y, s)
    return Pose(keypoints=kps, score=0.8)


def test_palm_is_half_a_forearm_past_the_wrist():
    pose = _pose(left_wrist=(100, 200, 0.9), left_elbow=(80, 140, 0.8))
    (palm,) = palms_from_pose(pose, 640, 480)
    assert (palm.x, palm.y, palm.side) == (pytest.approx(110), pytest.approx(230), "left")
    assert palm.score == pytest.approx(0.8)


def test_arms_are_independent_and_need_both_scores():
    pose = _pose(left_wrist=(100, 200, 0.9), left_elbow=(80, 140, 0.1),
                 right_wrist=(400, 200, 0.9), right_elbow=(420, 150, 0.9))
    palms = palms_from_pose(pose, 640, 480)
    assert [p.side for p in palms] == ["right"]
    pose = _pose(left_wrist=(100, 200, 0.2), left_elbow=(80, 140, 0.9),
                 right_wrist=(400, 200, 0.9), right_elbow=(420, 150, 0.9))
    assert [p.side for p in palms_from_pose(pose, 640, 480)] == ["right"]


def test_palms_outside_the_frame_are_dropped():
    pose = _pose(left_wrist=(100, 460, 0.9), left_elbow=(100, 400, 0.9),  # palm at y=490
                 right_wrist=(630, 100, 0.9), right_elbow=(600, 100, 0.9))  # palm at x=645
    assert palms_from_pose(pose, 640, 480) == []
    assert len(palms_from_pose(pose, 700, 500)) == 2


def test_smoother_steadies_jitter_and_follows_a_real_move():
    rng = np.random.default_rng(0)
    smoother = PalmSmoother()
    raw, smooth = [], []
    for i in range(60):
        p = Palm(300 + rng.normal(0, 4), 200 + rng.normal(0, 4), "left", 0.9)
        (s,) = smoother.update([p], i / 30)
        raw.append(p.x)
        smooth.append(s.x)
    assert np.std(smooth[10:]) < 0.5 * np.std(raw[10:])
    for i in range(60, 90):  # the hand moves to x=450 and stays
        (s,) = smoother.update([Palm(450, 200, "left", 0.9)], i / 30)
    assert s.x == pytest.approx(450, abs=3)


def test_smoother_keeps_sides_apart_and_forgets_after_a_gap():
    smoother = PalmSmoother(forget_after=0.5)
    smoother.update([Palm(100, 100, "left", 0.9), Palm(500, 100, "right", 0.9)], 0.0)
    left, right = smoother.update([Palm(110, 100, "left", 0.9), Palm(500, 100, "right", 0.9)], 1 / 30)
    assert 100 < left.x < 110 and right.x == pytest.approx(500)
    (left,) = smoother.update([Palm(300, 300, "left", 0.9)], 2.0)  # a new hand after 2 s: no glide
    assert (left.x, left.y) == (300, 300)


def test_smoother_takes_two_answers_at_one_timestamp():
    # A coarse clock gives two pose answers the same time: no time passed, so the newer is taken as
    # it is (a division by zero otherwise).
    smoother = PalmSmoother()
    smoother.update([Palm(100, 100, "left", 0.9)], 5.0)
    (left,) = smoother.update([Palm(120, 100, "left", 0.9)], 5.0)
    assert (left.x, left.y) == (120, 100)
