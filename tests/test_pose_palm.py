"""Palm centres from wrist and elbow, and the One-Euro smoother."""

import math

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


def test_a_palm_never_goes_on_the_other_sides_hand():
    # The left hand gone, the right one seen near where the left was: it glides from the right hand's
    # place, never from the left's (crossed or joined hands mixed their two filters).
    smoother = PalmSmoother(beta=0.0)
    smoother.update([Palm(100, 100, "left", 0.9), Palm(300, 100, "right", 0.9)], 0.0)
    (right,) = smoother.update([Palm(110, 100, "right", 0.9)], 1 / 30)
    assert right.side == "right" and 110 < right.x < 300
    (left,) = smoother.update([Palm(290, 100, "left", 0.9)], 2 / 30)
    assert left.side == "left" and 100 < left.x < 290


def test_two_peoples_palms_of_one_side_are_smoothed_apart():
    # The capture tool finds every person's palms: each goes on the hand of its side that was nearest,
    # in whatever order PoseNet lists the people; one filter per side smoothed them into each other.
    smoother = PalmSmoother(beta=0.0)
    smoother.update([Palm(100, 100, "left", 0.9), Palm(500, 120, "left", 0.8)], 0.0)
    b, a = smoother.update([Palm(510, 120, "left", 0.8), Palm(110, 100, "left", 0.9)], 1 / 30)
    assert 100 < a.x < 105 and a.y == pytest.approx(100)
    assert 500 < b.x < 505 and b.y == pytest.approx(120)
    assert b.x - 500 == pytest.approx(a.x - 100)  # each moved 10 px: each filter moved alike
    # One of them gone: the other goes on; once the gone one is forgotten, a hand that comes is new.
    (a,) = smoother.update([Palm(120, 100, "left", 0.9)], 0.4)
    assert 100 < a.x < 120
    c, a = smoother.update([Palm(300, 400, "left", 0.7), Palm(120, 100, "left", 0.9)], 0.7)
    assert (c.x, c.y) == (300, 400) and 100 < a.x < 120
    # The nearest pair is matched first, whatever comes first in the list.
    smoother = PalmSmoother(beta=0.0)
    smoother.update([Palm(100, 100, "left", 0.9), Palm(200, 100, "left", 0.9)], 0.0)
    near_second, near_first = smoother.update([Palm(160, 100, "left", 0.9), Palm(101, 100, "left", 0.9)], 1 / 30)
    assert 160 < near_second.x < 200 and 100 < near_first.x < 101


def test_smoother_takes_two_answers_at_one_timestamp():
    # A coarse clock gives two pose answers the same time: no time passed, so the newer is taken as
    # it is (a division by zero otherwise).
    smoother = PalmSmoother()
    smoother.update([Palm(100, 100, "left", 0.9)], 5.0)
    (left,) = smoother.update([Palm(120, 100, "left", 0.9)], 5.0)
    assert (left.x, left.y) == (120, 100)


def test_each_threshold_is_its_own_parts_and_a_score_at_it_passes():
    pose = _pose(left_wrist=(100, 200, 0.5), left_elbow=(80, 140, 0.2))
    (palm,) = palms_from_pose(pose, 640, 480, wrist_threshold=0.5, elbow_threshold=0.1)
    assert (palm.x, palm.y, palm.score) == (pytest.approx(110), pytest.approx(230), pytest.approx(0.2))
    assert palms_from_pose(pose, 640, 480, wrist_threshold=0.1, elbow_threshold=0.5) == []


def test_a_palm_on_the_first_row_or_column_is_kept_and_one_on_the_width_or_height_is_not():
    at_origin = _pose(left_wrist=(0, 0, 0.9), left_elbow=(0, 0, 0.9))
    assert [(p.x, p.y) for p in palms_from_pose(at_origin, 640, 480)] == [(0, 0)]
    at_width = _pose(right_wrist=(630, 100, 0.9), right_elbow=(610, 100, 0.9))  # palm at x=640
    assert palms_from_pose(at_width, 640, 480) == [] and len(palms_from_pose(at_width, 641, 480)) == 1
    at_height = _pose(right_wrist=(100, 470, 0.9), right_elbow=(100, 450, 0.9))  # palm at y=480
    assert palms_from_pose(at_height, 640, 480) == [] and len(palms_from_pose(at_height, 640, 481)) == 1


def test_an_arm_missing_from_the_pose_does_not_hide_the_other():
    # A Pose made by a caller may hold only some keypoints: no left arm at all, the right one still counts.
    pose = Pose(keypoints={"right_wrist": Keypoint(400, 200, 0.9), "right_elbow": Keypoint(420, 150, 0.9)})
    assert [(p.side, p.x, p.y) for p in palms_from_pose(pose, 640, 480)] == [("right", 390, 225)]
    # Nor does a left wrist whose elbow is missing: that arm has no palm, and no error.
    pose = Pose(keypoints={**pose.keypoints, "left_wrist": Keypoint(100, 200, 0.9)})
    assert [(p.side, p.x, p.y) for p in palms_from_pose(pose, 640, 480)] == [("right", 390, 225)]


def _follow(smoother, start, step, frames=15):
    """x of the smoothed palm of a hand moving `step` px a frame at 30 fps, after a still second."""
    for i in range(30):
        smoother.update([Palm(start, 200, "left", 0.9)], i / 30)
    for i in range(frames):
        (s,) = smoother.update([Palm(start + step * (i + 1), 200, "left", 0.9)], (30 + i) / 30)
    return s.x


def test_the_smoother_follows_a_fast_move_closely_and_alike_either_way():
    # The One-Euro cutoff rises with the speed: a hand moving 20 px a frame lags far less behind than
    # with a fixed cutoff (beta 0), to the left as to the right.
    end = 300 + 20 * 15
    lag = end - _follow(PalmSmoother(), 300, 20)
    fixed_lag = end - _follow(PalmSmoother(beta=0.0), 300, 20)
    assert 0 < lag < 0.5 * fixed_lag
    assert 600 - _follow(PalmSmoother(), 600, -20) == pytest.approx(_follow(PalmSmoother(), 300, 20) - 300)


def test_reset_forgets_every_side():
    # The capture tool resets on a change of frame size: the next palm is taken as it is, at once.
    smoother = PalmSmoother()
    smoother.update([Palm(100, 100, "left", 0.7)], 0.0)
    smoother.reset()
    (left,) = smoother.update([Palm(300, 300, "left", 0.7)], 1 / 30)
    assert (left.x, left.y, left.side, left.score) == (300, 300, "left", 0.7)


def test_the_smoothers_cutoff_is_in_hertz_whatever_the_frame_rate():
    # One-Euro: alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi f_c). At rest (beta 0) and the default
    # 1.5 Hz a 10 px step moves the dot 10 / (1 + 1 / (3 pi dt)) px: 2.39 px at 30 fps, 4.85 at 10 fps.
    for dt in (1 / 30, 1 / 10):
        smoother = PalmSmoother(beta=0.0)
        smoother.update([Palm(100, 100, "left", 0.9)], 7.0)
        (palm,) = smoother.update([Palm(110, 100, "left", 0.9)], 7.0 + dt)
        assert palm.x == pytest.approx(100 + 10 / (1 + 1 / (3 * math.pi * dt)))


def test_by_default_a_hand_gone_for_a_second_comes_back_where_it_is():
    # Half a second out of view is a new hand: it does not glide in from where the last one was.
    smoother = PalmSmoother()
    smoother.update([Palm(100, 100, "left", 0.9)], 0.0)
    (palm,) = smoother.update([Palm(400, 300, "left", 0.9)], 1.0)
    assert (palm.x, palm.y) == (400, 300)
