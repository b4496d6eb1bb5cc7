"""Decoding PoseNet maps: valid input sizes, single-pose peaks, multi-pose traversal and NMS."""

import numpy as np
import pytest

from humanseg.pose.decode import (decode_multiple_poses, decode_single_pose, valid_input_size)
from humanseg.pose.keypoints import KEYPOINT_INDEX, POSE_EDGES

STRIDE = 16


@pytest.mark.parametrize("size, stride, expected", [
    (320, 16, 321), (240, 16, 241), (640, 16, 641), (480, 16, 481),
    (329, 16, 321), (330, 16, 337),  # rounds to the nearest valid size
    (320, 8, 321), (244, 8, 241), (3, 16, 17), (0, 8, 9),
])
def test_valid_input_size(size, stride, expected):
    assert valid_input_size(size, stride) == expected
    assert (expected - 1) % stride == 0


def _empty_maps(h=16, w=21):
    heat = np.full((17, h, w), -10.0, np.float32)
    return heat, np.zeros((34, h, w), np.float32), np.zeros((32, h, w), np.float32), np.zeros((32, h, w), np.float32)


def test_single_pose_peak_maps_to_input_pixel():
    heat, offsets, _, _ = _empty_maps()
    k = KEYPOINT_INDEX["left_wrist"]
    heat[k, 7, 11] = 4.0
    offsets[k, 7, 11], offsets[k + 17, 7, 11] = 3.5, -2.25
    pose = decode_single_pose(heat, offsets, STRIDE)
    assert pose.coords[k] == pytest.approx([7 * 16 + 3.5, 11 * 16 - 2.25])
    assert pose.scores[k] == pytest.approx(1 / (1 + np.exp(-4.0)))
    assert pose.scores[KEYPOINT_INDEX["nose"]] < 0.001


def _untrained_estimator(output_stride=16, **options):
    """A PoseEstimator around a PoseNet of random weights (its network's output replaced by a test)."""
    from humanseg.pose.estimator import PoseEstimator
    from humanseg.pose.mobilenet import PoseNetMobileNetV1

    return PoseEstimator(PoseNetMobileNetV1(50, output_stride), optimize=False, **options)


def test_estimator_maps_single_peak_back_to_frame_pixel(monkeypatch):
    est = _untrained_estimator(scale=0.5, min_pose_score=0.0)
    frame = np.zeros((480, 640, 3), np.uint8)
    assert tuple(est.preprocess(frame).shape) == (1, 3, 241, 321)
    heat, offsets, fwd, bwd = _empty_maps(16, 21)
    k = KEYPOINT_INDEX["right_elbow"]
    heat[k, 10, 4] = 5.0
    offsets[k, 10, 4], offsets[k + 17, 10, 4] = 2.0, 6.0
    monkeypatch.setattr(est, "forward", lambda tensor: (heat, offsets, fwd, bwd))
    (pose,) = est.estimate(frame)
    kp = pose.keypoints["right_elbow"]
    # input (y, x) = (162, 70) in a 321x241 input; frame = (input + 0.5) * frame/input - 0.5
    assert kp.x == pytest.approx((70 + 0.5) * 640 / 321 - 0.5)
    assert kp.y == pytest.approx((162 + 0.5) * 480 / 241 - 0.5)
    assert 139 < kp.x < 141 and 322 < kp.y < 324


def test_the_estimator_decodes_at_its_networks_output_stride(monkeypatch):
    # --output-stride 8: a 321x241 input gives 41x31 maps, whose cells are 8 input pixels apart.
    est = _untrained_estimator(output_stride=8, scale=0.5, min_pose_score=0.0)
    frame = np.zeros((480, 640, 3), np.uint8)
    heat, offsets, fwd, bwd = _empty_maps(31, 41)
    k = KEYPOINT_INDEX["left_wrist"]
    heat[k, 20, 8] = 5.0
    monkeypatch.setattr(est, "forward", lambda tensor: (heat, offsets, fwd, bwd))
    for max_poses in (1, 3):  # the single- and the multi-pose decoder
        est.max_poses = max_poses
        (pose,) = est.estimate(frame)
        kp = pose.keypoints["left_wrist"]
        assert (kp.x, kp.y) == (pytest.approx((64 + 0.5) * 640 / 321 - 0.5), pytest.approx((160 + 0.5) * 480 / 241 - 0.5))


def _nose_towards_eye():
    """Maps with a nose root at cell (5, 6) whose forward displacement to the left eye lands near
    cell (7, 5): (scores, offsets, fwd, bwd, nose, eye)."""
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose, eye = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["left_eye"]
    scores[nose, 5, 6] = 0.9
    edge = POSE_EDGES.index((nose, eye))
    fwd[edge, 5, 6], fwd[edge + 16, 5, 6] = 33.0, -15.0
    return scores, offsets, fwd, bwd, nose, eye


def test_multi_pose_follows_displacements_and_refines_with_offsets():
    scores, offsets, fwd, bwd, nose, eye = _nose_towards_eye()
    scores[eye, 7, 5] = 0.8
    offsets[eye, 7, 5], offsets[eye + 17, 7, 5] = 1.5, 2.5
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5)
    assert pose.coords[nose] == pytest.approx([80, 96])
    assert pose.coords[eye] == pytest.approx([7 * 16 + 1.5, 5 * 16 + 2.5])
    assert pose.scores[eye] == pytest.approx(0.8)


def test_a_keypoint_reached_along_an_edge_takes_the_score_where_it_ends():
    # The score was read at the cell the last refinement started from, not the one the point ended in.
    scores, offsets, fwd, bwd, nose, eye = _nose_towards_eye()
    offsets[eye, 7, 5] = offsets[eye, 8, 5] = 10.0  # each refinement moves it on: (7,5) -> (8,5) -> (9,5)
    scores[eye, 7, 5], scores[eye, 8, 5], scores[eye, 9, 5] = 0.6, 0.65, 0.7
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5, refine_steps=2)
    assert pose.coords[eye] == pytest.approx([8 * 16 + 10, 5 * 16])
    assert pose.scores[eye] == pytest.approx(0.7)


def test_a_keypoint_pushed_past_the_maps_edge_is_read_at_the_edge():
    # A face at the top of the frame: the jump from the nose to an eye ends above the maps. Its cell is the
    # first row (a negative row index read the last one, at the bottom of the frame).
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose, eye = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["left_eye"]
    scores[nose, 0, 6] = 0.9
    scores[eye, 0, 6], scores[eye, 14, 6] = 0.8, 0.3
    fwd[POSE_EDGES.index((nose, eye)), 0, 6] = -40.0
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5, refine_steps=1)
    assert pose.coords[eye] == pytest.approx([0, 96]) and pose.scores[eye] == pytest.approx(0.8)


def test_a_keypoint_pushed_past_the_maps_left_edge_is_read_at_the_edge():
    # The same at the left edge: a negative column read the last one, at the frame's right side.
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose, eye = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["left_eye"]
    w = scores.shape[2]
    scores[nose, 6, 0] = 0.9
    scores[eye, 6, 0], scores[eye, 6, w - 1] = 0.8, 0.3
    fwd[POSE_EDGES.index((nose, eye)) + 16, 6, 0] = -40.0
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5, refine_steps=1)
    assert pose.coords[eye] == pytest.approx([96, 0]) and pose.scores[eye] == pytest.approx(0.8)


def test_multi_pose_backward_walk_reaches_the_nose_from_a_wrist_root():
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    wrist, elbow = KEYPOINT_INDEX["left_wrist"], KEYPOINT_INDEX["left_elbow"]
    scores[wrist, 12, 10] = 0.95
    edge = POSE_EDGES.index((elbow, wrist))
    bwd[edge, 12, 10], bwd[edge + 16, 12, 10] = -48.0, 0.0
    scores[elbow, 9, 10] = 0.7
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5)
    assert pose.coords[wrist] == pytest.approx([192, 160])
    assert pose.coords[elbow] == pytest.approx([144, 160])
    assert pose.scores[elbow] == pytest.approx(0.7)
    # and on, elbow to shoulder to the nose, then out to every other limb: all 17 placed (walked in
    # the skeleton's own order, a wrist root got its elbow alone and the pose fell under the cut-off).
    assert pose.coords[KEYPOINT_INDEX["nose"]] == pytest.approx([144, 160])
    assert pose.coords[KEYPOINT_INDEX["right_ankle"]] == pytest.approx([144, 160])


def test_multi_pose_returns_at_most_max_poses():
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose = KEYPOINT_INDEX["nose"]
    for x, score in ((2, 0.9), (10, 0.8), (18, 0.7)):  # three people far apart
        scores[nose, 3, x] = score
    assert len(decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=3)) == 3
    poses = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=2)
    assert [p.coords[nose][1] for p in poses] == pytest.approx([32, 160])  # the two strongest


def test_multi_pose_finds_two_people_and_suppresses_a_duplicate_root():
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose, wrist = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["right_wrist"]
    scores[nose, 3, 3] = 0.9
    scores[nose, 3, 17] = 0.8
    # A wrist peak whose zero displacements put it on the first person's wrist: no third pose.
    scores[wrist, 3, 3] = 0.6
    poses = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5, nms_radius=20)
    assert len(poses) == 2
    assert poses[0].coords[nose] == pytest.approx([48, 48])
    assert poses[1].coords[nose] == pytest.approx([48, 272])
    assert poses[0].score > poses[1].score


def test_multi_pose_ignores_parts_under_threshold():
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    scores[0, 4, 4] = 0.4
    assert decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, part_threshold=0.5) == []
    assert decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE) == []  # 0.5 by default, as in PoseNet


def test_the_estimator_lists_poses_strongest_first_and_drops_the_weak(monkeypatch):
    # pose --max-poses N says "strongest first"; decode hands them over in its own order.
    from types import SimpleNamespace

    from humanseg.pose import estimator as E

    est = _untrained_estimator(max_poses=3)
    found = [SimpleNamespace(score=s) for s in (0.3, 0.1, 0.9, 0.25, 0.6)]
    monkeypatch.setattr(E, "decode_multiple_poses", lambda *args, **kwargs: list(found))
    maps = _empty_maps(16, 21)
    assert [p.score for p in est.decode(maps)] == [0.9, 0.6, 0.3, 0.25]  # min_pose_score 0.25 kept


def test_a_multi_pose_root_keeps_its_own_score_and_both_offsets():
    # The root's x was read from its y offset, and its score was lost, where the root was a peak
    # whose offsets were not zero.
    scores, offsets, fwd, bwd, nose, eye = _nose_towards_eye()
    offsets[nose, 5, 6], offsets[nose + 17, 5, 6] = 3.0, -4.0
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5)
    assert pose.coords[nose] == pytest.approx([5 * 16 + 3, 6 * 16 - 4])
    assert pose.scores[nose] == pytest.approx(0.9)


def test_a_peak_on_the_maps_edge_is_a_root():
    # A person at the frame's border (a hand raised to the top) has its peaks in the first or last row.
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose = KEYPOINT_INDEX["nose"]
    scores[nose, 0, 0] = 0.9
    scores[nose, 15, 20] = 0.8
    poses = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5)
    assert [list(p.coords[nose]) for p in poses] == [[0, 0], [240, 320]]


def test_only_the_strongest_of_neighbouring_cells_is_a_root():
    # A weaker cell beside a peak (below it, to its right) is not a second root, even where the
    # suppression radius is too small to merge the two.
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose = KEYPOINT_INDEX["nose"]
    scores[nose, 4, 4], scores[nose, 5, 5] = 0.8, 0.9
    (pose,) = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5, nms_radius=5)
    assert pose.coords[nose] == pytest.approx([80, 80])


def test_a_part_exactly_at_the_threshold_is_a_root():
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    scores[0, 4, 4] = 0.5
    assert len(decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, part_threshold=0.5)) == 1


def test_keypoints_a_stronger_pose_claimed_do_not_count_for_a_weaker_one():
    # The second person's eye (and the ear walked to from it) lands on the first person's: their
    # scores stay the keypoints' own, but the second pose's score is what its free keypoints add
    # up to, over all 17.
    heat, offsets, fwd, bwd = _empty_maps()
    scores = 1 / (1 + np.exp(-heat))
    nose, eye, ear = KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["left_eye"], KEYPOINT_INDEX["left_ear"]
    scores[nose, 3, 3], scores[eye, 3, 3] = 0.9, 0.8
    scores[nose, 3, 17] = 0.7
    edge = POSE_EDGES.index((nose, eye))
    fwd[edge + 16, 3, 17] = -14 * 16.0  # from the second nose (48, 272) onto the first eye (48, 48)
    first, second = decode_multiple_poses(scores, offsets, fwd, bwd, STRIDE, max_poses=5, nms_radius=20)
    assert second.coords[eye] == pytest.approx(first.coords[eye]) and second.scores[eye] == pytest.approx(0.8)
    assert second.coords[ear] == pytest.approx(first.coords[ear])
    free = [i for i in range(17) if i not in (eye, ear)]
    assert second.score == pytest.approx(second.scores[free].sum() / 17)
    assert first.score == pytest.approx(first.scores.sum() / 17)


def test_estimated_keypoints_keep_their_own_scores_and_the_pose_the_mean(monkeypatch):
    est = _untrained_estimator(scale=0.5, min_pose_score=0.0)
    heat, offsets, fwd, bwd = _empty_maps(16, 21)
    heat[KEYPOINT_INDEX["left_wrist"], 10, 4] = 5.0
    heat[KEYPOINT_INDEX["left_elbow"], 8, 4] = 1.0
    monkeypatch.setattr(est, "forward", lambda tensor: (heat, offsets, fwd, bwd))
    (pose,) = est.estimate(np.zeros((480, 640, 3), np.uint8))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    assert pose.keypoints["left_wrist"].score == pytest.approx(sig(5.0))
    assert pose.keypoints["left_elbow"].score == pytest.approx(sig(1.0))
    assert pose.keypoints["nose"].score == pytest.approx(sig(-10.0))
    assert pose.score == pytest.approx((sig(5.0) + sig(1.0) + 15 * sig(-10.0)) / 17)


def test_one_pose_asked_for_is_the_single_person_decoders(monkeypatch):
    # --max-poses 1: argmax per keypoint, so a person whose parts are all a little under the
    # multi-pose part threshold (0.5) is still found.
    est = _untrained_estimator(scale=0.5, max_poses=1)
    heat, offsets, fwd, bwd = _empty_maps(16, 21)
    heat[:, 6, 9] = np.log(0.45 / 0.55)  # every keypoint's peak at 0.45
    monkeypatch.setattr(est, "forward", lambda tensor: (heat, offsets, fwd, bwd))
    (pose,) = est.estimate(np.zeros((480, 640, 3), np.uint8))
    assert pose.score == pytest.approx(0.45)


def test_the_estimators_multi_pose_options_reach_the_decoder():
    # Two nose peaks 32 input pixels apart, at 0.45 and 0.4: roots with a part threshold of 0.3, and
    # one person within a suppression radius of 40.
    est = _untrained_estimator(scale=0.5, max_poses=5, min_pose_score=0.0, part_threshold=0.3, nms_radius=40)
    heat, offsets, fwd, bwd = _empty_maps(16, 21)
    nose = KEYPOINT_INDEX["nose"]
    heat[nose, 3, 3], heat[nose, 3, 5] = np.log(0.45 / 0.55), np.log(0.4 / 0.6)
    (pose,) = est.decode((heat, offsets, fwd, bwd))
    assert pose.coords[nose] == pytest.approx([48, 48])
