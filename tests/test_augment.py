"""Training data: augmentations do what their names say, samples are reproducible, sets are held out whole."""

import shutil

import cv2
import numpy as np
import pytest

from humanseg.data import augment as A
from humanseg.data.dataset import Pair, TrainingSet, load_backgrounds, load_pairs, split_sets
from humanseg.errors import HumansegError


@pytest.fixture(scope="module")
def pairs(dev_root):
    return load_pairs([dev_root])


def _person_pair(pairs):
    return next(p for p in pairs if p.mask.max() > 0)


def test_camouflage_recolours_only_the_person_towards_the_background(pairs):
    p = _person_pair(pairs)
    changed_any = False
    for seed in range(5):
        out = A.camouflage(p.frame, p.background, p.mask, np.random.default_rng(seed))
        outside = p.mask == 0
        assert np.array_equal(out[outside], p.frame[outside])
        moved = np.abs(out.astype(int) - p.frame.astype(int)).sum(2) > 0
        if moved.any():
            changed_any = True
            before = np.abs(p.frame.astype(int) - p.background.astype(int))[moved].mean()
            after = np.abs(out.astype(int) - p.background.astype(int))[moved].mean()
            assert after < before
    assert changed_any
    empty = np.zeros_like(p.mask)
    assert A.camouflage(p.frame, p.background, empty, np.random.default_rng(0)) is p.frame


def test_cast_shadow_only_darkens_outside_the_person(pairs):
    p = _person_pair(pairs)
    out = A.cast_shadow(p.frame, p.mask, np.random.default_rng(3))
    assert np.array_equal(out[p.mask > 0], p.frame[p.mask > 0])
    assert (out.astype(int) <= p.frame.astype(int)).all()
    assert (out != p.frame).any()


def test_samples_are_reproducible_binary_and_sized(pairs, dev_root):
    train, val = split_sets(pairs, "3,7")
    ds = TrainingSet(train, [], size=(128, 96), length=20, seed=5)
    f1, b1, m1 = ds[7]
    f2, b2, m2 = ds[7]
    assert f1.shape == (3, 96, 128) and b1.shape == (3, 96, 128) and m1.shape == (1, 96, 128)
    assert torch_equal(f1, f2) and torch_equal(b1, b2) and torch_equal(m1, m2)
    assert set(np.unique(m1.numpy())) <= {0.0, 1.0}
    f3, _, _ = ds[8]
    assert not torch_equal(f1, f3)


def test_validation_holds_out_whole_sets(pairs):
    train, val = split_sets(pairs, "3,7")
    assert {p.set_key.rsplit(":", 1)[1] for p in val} == {"set3", "set7"}
    assert not {p.set_key for p in train} & {p.set_key for p in val}
    assert len(train) + len(val) == len(pairs)
    t2, v2 = split_sets(pairs, "0.25", seed=1)
    assert not {p.set_key for p in t2} & {p.set_key for p in v2} and v2
    # A fraction never holds out every set: one set trains without validation, two keep one to train.
    one = [p for p in pairs if p.set_key.endswith(":set3")]
    assert one and split_sets(one, "0.2") == (one, [])
    two = [p for p in pairs if p.set_key.endswith((":set3", ":set7"))]
    t3, v3 = split_sets(two, "0.99")
    assert len({p.set_key for p in t3}) == 1 and len({p.set_key for p in v3}) == 1


def test_a_fractions_held_out_sets_do_not_depend_on_how_the_roots_are_written(pairs):
    # Keys sorted as "<root as typed>:setN" strings: the same two folders given as a relative and an
    # absolute path (or moved, which --resume allows) held out another set.
    names = {f"set{n}" for n in (1, 2, 3, 4)}
    first = [p for p in pairs if p.set_key.rsplit(":", 1)[1] in names]

    def rooted(a, b):  # sets 1, 2 under root a, sets 3, 4 under root b
        return [Pair(f"{a if int(p.set_key.rsplit(':set', 1)[1]) < 3 else b}:{p.set_key.rsplit(':', 1)[1]}",
                     p.frame, p.background, p.mask) for p in first]

    def held(a, b, seed):  # (first root or second, set name) of each held-out frame
        return sorted((p.set_key.rsplit(":", 1)[0] == b, p.set_key.rsplit(":", 1)[1])
                      for p in split_sets(rooted(a, b), "0.25", seed)[1])

    for seed in range(6):
        assert held("/data/mv/a", "/data/mv/b", seed) == held("a", "/data/mv/b", seed) == held("/z", "/y/b", seed)


def test_val_sets_are_set_numbers_or_a_fraction(pairs):
    for spec in ("-1", "+3", "3,x", "3,-7"):  # int() would take -1 and +3 and then find no such set
        with pytest.raises(HumansegError, match=r"--val-sets must be set numbers like 3,7 or a fraction"):
            split_sets(pairs, spec)
    with pytest.raises(HumansegError, match=r"no labeled frames: \[99\]"):
        split_sets(pairs, "3, 99")
    for spec in ("1.0", "0.0", "1.5"):  # a fraction of the sets, not all or none of them
        with pytest.raises(HumansegError, match=rf"^--val-sets fraction must be between 0 and 1: {spec}$"):
            split_sets(pairs, spec)
    every = ",".join(str(n) for n in sorted({int(p.set_key.rsplit(":set", 1)[1]) for p in pairs}))
    with pytest.raises(HumansegError, match=r"^--val-sets holds out every set; nothing left to train on$"):
        split_sets(pairs, every)
    assert {p.set_key.rsplit(":", 1)[1] for p in split_sets(pairs, " 3 ,7,")[1]} == {"set3", "set7"}
    # As evaluate --sets reads them, set names too (training refused "set3,set7").
    assert {p.set_key.rsplit(":", 1)[1] for p in split_sets(pairs, "set3,set7")[1]} == {"set3", "set7"}


def test_val_sets_hold_out_that_set_of_every_root(tmp_path, dev_root):
    other = tmp_path / "other"
    shutil.copytree(dev_root / "set3", other / "set3")
    shutil.copytree(dev_root / "set5", other / "set5")
    pairs = load_pairs([dev_root, other])
    train, val = split_sets(pairs, "3")
    assert sorted({p.set_key for p in val}) == sorted([f"{dev_root}:set3", f"{other}:set3"])
    assert f"{other}:set5" in {p.set_key for p in train}


def test_hidden_files_in_a_backgrounds_folder_are_passed_over(tmp_path, dev_root):
    # macOS leaves ._room.png beside room.png on a USB stick: not an image, and not the user's room.
    (tmp_path / "room.png").write_bytes((dev_root / "set2" / "bkg.png").read_bytes())
    (tmp_path / "._room.png").write_bytes(b"resource fork")
    rooms = load_backgrounds(tmp_path)
    assert len(rooms) == 1 and rooms[0].shape == (480, 640, 3)


def test_a_folder_of_masks_alone_is_no_backgrounds_folder(tmp_path, dev_root):
    # evaluate --save-masks OUT/set8 holds K_mask.png files only: masks, not empty rooms to train on.
    for k in (0, 1):
        (tmp_path / f"{k}_mask.png").write_bytes((dev_root / "set8" / f"{k}_mask.png").read_bytes())
    with pytest.raises(HumansegError, match=f"--backgrounds {tmp_path} is a capture set folder"):
        load_backgrounds(tmp_path)


def test_sets_whose_labels_are_all_empty_rooms_still_give_samples(pairs):
    # Only the empty last frames (bkg.png again, an empty mask): nobody to paste, every sample empty.
    empty = [p for p in pairs if p.mask.max() == 0][:3]
    ds = TrainingSet(empty, [], size=(96, 72), length=30, seed=2)
    for i in range(30):
        frame, bkg, mask = ds[i]
        assert frame.shape == (3, 72, 96) and bkg.shape == (3, 72, 96) and not mask.any()


def torch_equal(a, b):
    return bool((a == b).all())


def _grey_room(seed, h=240, w=320):
    """A textured grey room: no pixel is saturated, so a red person is told apart by colour alone."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 1, (h, w)).astype(np.float32), (0, 0), 6)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    grey = 70 + 110 * (0.6 * noise + 0.4 * np.linspace(0, 1, w)[None, :])
    return np.repeat(grey[..., None], 3, 2).astype(np.uint8)


def test_every_kind_of_sample_keeps_its_label_on_the_person():
    # A red L-shaped "person" off the centre of two grey rooms: wherever a sample shows red, its label
    # must say person, whichever kind the sample is (real, pasted onto another room, empty) and
    # whatever crop, flip, nudge, shadow or moved object it got. A label flipped, shifted or scaled
    # apart from its frame, or a moved object pasted over the person, shows up as a low IoU.
    pairs = []
    for k, seed in enumerate((1, 2)):
        room = _grey_room(seed)
        mask = np.zeros(room.shape[:2], np.uint8)
        mask[90:220, 30:80] = 255
        mask[180:220, 80:150] = 255
        frame = room.copy()
        frame[mask > 0] = (30, 30, 220)
        pairs.append(Pair(f"root:set{k + 1}", frame, room, mask))
    ds = TrainingSet(pairs, [], size=(160, 120), length=60, seed=3, p_camouflage=0.0)
    kinds = set()
    checked = inter = union = 0
    for i in range(len(ds)):
        frame, bkg, mask = ds.sample(i)
        f = frame.astype(int)
        red = f[..., 2] - np.maximum(f[..., 0], f[..., 1]) > 60
        label = mask > 127
        b = bkg.astype(int)
        assert not (b[..., 2] - b[..., :2].max(2) > 60).any(), i
        kinds.add("person" if label.any() else "empty")
        inter += (red & label).sum()
        union += (red | label).sum()
        if label.sum() >= 300:
            assert (red & label).sum() / (red | label).sum() > 0.8, i
            checked += 1
        else:
            assert red.sum() <= 300, i
    # Pooled over the samples: 0.987 as built (the draws are seeded); the label shifted 1 px diagonally
    # from its frame gives 0.971, warped with the reference's camera nudge 0.977 (both passed at 0.97).
    assert inter / union > 0.982
    assert kinds == {"person", "empty"} and checked >= 30


def test_a_pasted_person_cut_by_their_frame_is_neither_streaked_nor_floating():
    # The person's mask was warped with replicated borders: a person cut off by their frame's edge and
    # pasted smaller got streaks of "person" from that edge to the sample's (tiles of training samples
    # showed them), and one cut at the bottom, placed freely, floated with a straight cut.
    # 640x480 pictures into 160x120 samples at a working width of 160: the person comes out smaller than
    # the sample, free to float.
    room = _grey_room(5, 480, 640)
    pairs = []
    for k in range(2):  # cut at the bottom; cut at the top, its head a triangle (each row wider)
        mask = np.zeros(room.shape[:2], np.uint8)
        if k == 0:
            mask[240:, 260:380] = 255
        else:
            for r in range(220):
                mask[r, 320 - 10 - r // 2:320 + 10 + r // 2 + r % 2] = 255
        frame = room.copy()
        frame[mask > 0] = (30, 30, 220)
        pairs.append(Pair(f"root:set{k + 1}", frame, room, mask))
    rooms = [_grey_room(6, 480, 640), _grey_room(7, 480, 640)]
    for person, edge in zip(pairs, (-1, 0)):
        ds = TrainingSet([person], rooms, size=(160, 120), length=40, seed=4, p_composite=1.0, p_empty=0.0,
                         p_camouflage=0.0, work_width=160)
        labels = [ds.sample(i)[2] > 127 for i in range(len(ds))]
        labels = [label for label in labels if label.any()]
        assert len(labels) >= 30
        if edge == -1:  # every one reaches the bottom row, with no gap: the cut stays out of view
            assert all(label[-1].any() and all(label[label.any(1).argmax():].any(1)) for label in labels)
        else:  # nor one cut at the top: no streak of its top row above it, no headless person lower
            for label in labels:
                assert label[0].any()
                rows = [tuple(np.flatnonzero(row)) for row in label]
                same = next(i for i, row in enumerate(rows) if row != rows[0])
                assert same <= 3, same  # (a row or two alike where it is scaled up, not a streak)


def test_a_pasted_person_cut_at_a_side_of_their_frame_keeps_that_cut_out_of_view():
    # Only the bottom and top cuts were kept out of view: a person cut off by the left or right edge of
    # their frame was pasted anywhere across the room, half a face ending in a straight line.
    room = _grey_room(5, 480, 640)
    rooms = [_grey_room(6, 480, 640), _grey_room(7, 480, 640)]
    # (cut at the left, the right, neither; the outlines of real cut people often end a pixel or two
    # short of the edge: 2-3 px in, the cut sat a column inside the sample)
    for cols in (slice(0, 110), slice(530, 640), slice(2, 110), slice(530, 638), slice(260, 380)):
        mask = np.zeros(room.shape[:2], np.uint8)
        mask[150:400, cols] = 255
        frame = room.copy()
        frame[mask > 0] = (30, 30, 220)
        ds = TrainingSet([Pair("root:set1", frame, room, mask)], rooms, size=(160, 120), length=60, seed=4,
                         p_composite=1.0, p_empty=0.0, p_camouflage=0.0, work_width=160)
        labels = [label for label in (ds.sample(i)[2] > 127 for i in range(len(ds))) if label.any()]
        assert len(labels) >= 45
        at_side = [label[:, 0].any() or label[:, -1].any() for label in labels]
        if cols.start == 260:  # (not pinned to a side: most stand clear of both)
            assert sum(at_side) < len(labels) / 2
        else:  # both sides turn up (flips)
            assert all(at_side)
            assert any(label[:, 0].any() for label in labels) and any(label[:, -1].any() for label in labels)


def test_frames_of_another_shape_than_the_crop_keep_their_scale_jitter():
    # The "fill the crop" clamp won every draw for a 16:9 frame in a 4:3 crop: one scale for every sample.
    ds = TrainingSet([Pair("root:set1", np.zeros((720, 1280, 3), np.uint8), np.zeros((720, 1280, 3), np.uint8),
                           np.zeros((720, 1280), np.uint8))], [], size=(320, 240))
    rng = np.random.default_rng(0)
    scales = np.array([abs(ds._base_affine((720, 1280), rng)[0, 0]) for _ in range(300)])
    assert scales.min() >= 240 / 720 - 1e-9 and scales.max() > 1.25 * 240 / 720
    assert len(np.unique(scales.round(4))) > 100
    # A 4:3 frame: the same draws as before (about the inference scale, 0.5 for 640x480 at 320).
    rng = np.random.default_rng(0)
    scales = np.array([ds._base_affine((480, 640), rng)[0, 0] for _ in range(300)])
    assert abs(scales).min() == pytest.approx(0.5) and abs(scales).max() <= 0.65 + 1e-9


def test_affine_translates_in_x_and_y_and_warps_without_black_borders():
    m = A.affine(1.0, 0.0, 5.0, -3.0)
    assert np.allclose(m @ [10, 20, 1], [15, 17])
    m = A.affine(2.0, 90.0, 1.0, 2.0, center=(10.0, 10.0))  # about the centre, then moved
    assert np.allclose(m @ [10, 10, 1], [11, 12]) and np.allclose(m @ [11, 10, 1], [11, 10])
    both = A.compose(A.affine(1.0, 0.0, 0.0, 7.0), A.affine(3.0, 0.0, 0.0, 0.0))  # scale, then move
    assert np.allclose(both @ [2, 2, 1], [6, 13])
    img = np.full((40, 60, 3), 200, np.uint8)
    out = A.warp(img, A.affine(1.0, 0.0, 8.0, 6.0), (60, 40))  # the uncovered strip repeats the edge
    assert (out == 200).all()
    mask = A.warp(np.full((40, 60), 255, np.uint8), A.affine(1.0, 0.0, 8.0, 6.0), (60, 40), border=0)
    assert not mask[:6].any() and not mask[:, :8].any() and (mask[6:, 8:] == 255).all()


def test_photometric_is_a_per_channel_monotonic_camera_change():
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, 2).repeat(4, 0)  # 4x256, grey
    assert np.array_equal(A.photometric(ramp, np.random.default_rng(0), strength=0.0), ramp)
    means, casts = [], []
    for seed in range(40):
        out = A.photometric(ramp, np.random.default_rng(seed)).astype(int)
        assert (np.diff(out, axis=1) >= 0).all()  # brighter stays brighter, in every channel
        assert np.array_equal(out, A.photometric(ramp, np.random.default_rng(seed)))
        means.append(out[:, 64:192].mean() / ramp[:, 64:192].mean())
        casts.append(np.ptp(out[0, 128]))  # channels of one grey pixel apart: white balance
    # Darker and brighter exposures both occur, within the camera-like range (at most about 1.6x).
    assert min(means) < 0.85 and max(means) > 1.15 and 0.55 < min(means) and max(means) < 1.7
    assert max(casts) >= 10 and min(casts) <= 6


def test_camera_degradations_keep_the_picture_and_are_reproducible(pairs):
    img = _person_pair(pairs).frame
    sigmas = []
    for s in range(10):
        out = A.sensor_noise(img, np.random.default_rng(s), max_sigma=5.0)
        diff = (out.astype(float) - img.astype(float)).reshape(-1, 3)
        assert np.abs(diff.mean(0)).max() < 0.5 and diff.std(0).max() < 5.5  # zero mean, sigma up to 5
        # Every channel gets its own noise, as a camera's sensor gives (not the blue channel alone).
        if diff.any():  # (sigma under 0.5 adds none)
            assert np.ptp(diff.std(0)) < 0.1 and np.abs(np.corrcoef(diff.T) - np.eye(3)).max() < 0.05
        assert np.array_equal(out, A.sensor_noise(img, np.random.default_rng(s), max_sigma=5.0))
        sigmas.append(diff.std())
    assert sum(x > 1 for x in sigmas) >= 5
    for fn in (A.jpeg, A.low_resolution, A.blur):
        out = fn(img, np.random.default_rng(1))
        mse = ((out.astype(float) - img.astype(float)) ** 2).mean()
        assert out.shape == img.shape and 0.5 < mse < 200, fn.__name__  # changed, still the same picture
    # Resolution loss and blur take away fine detail: less energy in the Laplacian.
    detail = lambda x: cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()  # noqa: E731
    for fn in (A.low_resolution, A.blur):
        assert detail(fn(img, np.random.default_rng(1))) < 0.7 * detail(img), fn.__name__
    for s in range(5):
        a = A.camera_degrade(img, np.random.default_rng(s))
        assert np.array_equal(a, A.camera_degrade(img, np.random.default_rng(s)))
    # Sensor noise is part of every camera change (but draws too faint to add any, or smoothed away):
    # a flat wall, which blur, resolution loss and JPEG leave as it is, mostly comes out grainy.
    wall = np.full((60, 80, 3), 128, np.uint8)
    grainy = [A.camera_degrade(wall, np.random.default_rng(s)).std() > 0.1 for s in range(40)]
    assert sum(grainy) >= 20, sum(grainy)  # 28 as built; none without the noise


def test_frame_and_reference_get_their_own_camera_changes():
    # Dropping the reference's own photometric change (or the empty sample's camera nudge) passed
    # every test: a flat grey room, empty samples only, shows both.
    room = np.full((240, 320, 3), 128, np.uint8)
    room[100:140, 150:170] = 40  # a dark patch: a nudge moves it in the reference alone
    pair = Pair("root:set1", room, room, np.zeros((240, 320), np.uint8))
    ds = TrainingSet([pair], [], size=(160, 120), length=80, seed=1, p_empty=1.0, p_composite=0.0,
                     p_camouflage=0.0, work_width=160)
    frame_means, bkg_means, moved = [], [], 0
    for i in range(len(ds)):
        frame, bkg, mask = ds.sample(i)
        assert not mask.any()
        frame_means.append(frame[:40].mean())  # (the flat part, above the patch)
        bkg_means.append(bkg[:40].mean())
        dark = [np.argwhere(image.mean(axis=2) < 80) for image in (frame, bkg)]
        if min(len(d) for d in dark) >= 50:  # (the patch in view in both)
            moved += np.hypot(*(dark[0].mean(axis=0) - dark[1].mean(axis=0))) > 1
    # Each its own brightness: the reference's varies, and not in step with the frame's.
    assert np.std(bkg_means) > 3 and np.std(np.subtract(frame_means, bkg_means)) > 3
    # The patch sits elsewhere in the reference in many samples (the camera nudged): 37 of 78 as built,
    # 7 without the nudge (blur, noise and JPEG move its centre too, less often).
    assert moved >= 25
