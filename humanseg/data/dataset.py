"""Training samples: real (frame, background, mask) triples plus people composited onto other rooms.

Each item is drawn at random from three kinds, so a few labeled sets become many scenes:
- real: a labeled frame with its own bkg.png, both jittered independently as two camera shots;
- composite: a labeled person cut out and pasted onto another set's bkg.png or an empty room,
  with that room as the reference;
- empty: a background against itself (nothing should be found), often with a moved object.
On top: background shift/rotation (camera nudged), cast shadows and moved objects labelled
background, parts of the person recoloured like the wall behind (camouflage), exposure/white-balance/
noise/blur/JPEG per image, flips, scale and crops.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from humanseg import store
from humanseg.data import augment as A
from humanseg.errors import HumansegError
from humanseg.live import background_mismatch
from humanseg.model.segmenter import working_size


@dataclass
class Pair:
    set_key: str
    frame: np.ndarray
    background: np.ndarray
    mask: np.ndarray
    # Where the pair is stored smaller than it was labelled (for_sampling): the mask's (height, width)
    # as labelled and its person's (first row, last row, first column, last column) there, or None
    # where the mask is empty. None: the mask is as labelled.
    labelled: tuple | None = None


def labelled_box(pair: Pair) -> tuple:
    """The pair's mask's (height, width) as labelled and its person's (first row, last row, first
    column, last column) there, or None where it shows no one (see Pair.labelled)."""
    if pair.labelled is not None:
        return pair.labelled
    mask = pair.mask
    ys, xs = np.flatnonzero(mask.max(1)), np.flatnonzero(mask.max(0))
    box = (int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])) if len(ys) else None
    return mask.shape[:2], box


def set_places(pairs: list[Pair]) -> dict[str, tuple[int, str]]:
    """Each set key's (position of its root among the --images roots, set name): the set's place in
    the run, however the root's path is written."""
    return key_places([p.set_key for p in pairs])


def key_places(keys: list[str]) -> dict[str, tuple[int, str]]:
    """set_places of the set keys, in the run's order."""
    roots: dict[str, int] = {}
    places = {}
    for key in keys:
        root, name = key.rsplit(":", 1)
        places[key] = (roots.setdefault(root, len(roots)), name)
    return places


def distinct_folders(folders: list[str | os.PathLike], option: str) -> list[Path]:
    """The folders as paths; one given twice, under any spelling, is an error: what it holds would
    count twice."""
    seen: dict[Path, Path] = {}
    for folder in map(Path, folders):
        first = seen.setdefault(folder.resolve(), folder)
        if first is not folder:
            raise HumansegError(f"{option} {folder} is given twice (the same folder as {first})")
    return list(seen.values())


def load_pairs(roots: list[str | os.PathLike], progress: bool = False,
               prepare: Callable[[list[str]], Callable[[Pair], Pair]] | None = None, check: bool = True) -> list[Pair]:
    """Every labeled frame under each root (decoded once, kept in memory); set keys are 'root:setN'.
    With `progress`, a bar on stderr where it is a terminal (a thousand frames took 14 s without a word).
    `prepare`, given every set's key in the run's order once the sets are listed and before a frame is
    decoded, returns what each pair is passed through as it is read (training keeps the frames it
    samples at the size it takes them: for_training). With `check`, a set whose labeled frames do not
    match its bkg.png (background_mismatch, the label as the person) is named in a warning (training's
    other processes leave it to the first)."""
    found = []  # (root, its sets holding labeled frames)
    folders: dict[Path, Path] = {}  # each set folder as the system finds it -> as named
    for root in distinct_folders(roots, "--images"):
        if not root.is_dir():
            raise HumansegError(f"images folder not found: {root}")
        infos = store.labeled_sets(root)
        if not infos:  # a root that adds nothing is a mistake (a set folder, a typo), not a no-op
            store.check_root(root)
            raise HumansegError(f"no labeled frames found in {root}"
                                + (store.why_no_labels(root) or " (label some with label_images.py)"))
        for info in infos:  # a link to a set of another root (or of its own): trained on and held out
            store.refuse_set_reached_again(folders, store.set_path(root, info.number),
                                           "its frames would count twice, and be validated on while "
                                           "trained on")
        found.append((root, infos))
    through = prepare([f"{root}:set{info.number}" for root, infos in found for info in infos]) if prepare else None
    # The total known from the start; cleared at the end (leave=False), before an error's line or
    # training's first. (Closed stderr: 2>&-.)
    bar = tqdm(total=sum(len(info.labeled) for _, infos in found for info in infos), desc="reading frames",
               unit="frame", leave=False, disable=None if progress and sys.stderr is not None and found else True)
    pairs = []
    mismatched: dict[Path, list[str]] = {}  # each set's folder -> its frames that do not match bkg.png
    with bar:
        for root, infos in found:
            for s in store.read_labeled(infos):
                if check and background_mismatch(s.frame, s.background, s.mask):  # at full size
                    mismatched.setdefault(store.set_path(root, s.set_number), []).append(s.path.name)
                pair = Pair(f"{root}:set{s.set_number}", s.frame, s.background, s.mask)
                pairs.append(through(pair) if through else pair)
                s = pair = None  # (a frame kept smaller is not held at full size while the next is read)
                bar.update()
    labeled = {store.set_path(root, info.number): len(info.labeled) for root, infos in found for info in infos}
    for folder, names in mismatched.items():  # once the bar is gone
        store.warn_of_mismatched(folder, names, labeled[folder], "trained on as they are, they teach the model to "
                           "take what changed in the room for background: re-capture the set, or leave it out")
    return pairs


def for_training(val_spec: str | None, seed: int, size: tuple[int, int], work_width: int):
    """load_pairs' `prepare` for a training run: the sets it holds out (split_sets, drawn from the sets'
    keys alone) are kept as they are, for validation at full size; the others' frames far larger than
    any sample takes of them are kept at that size (for_sampling) as each is read, so a run of large
    frames never holds them all at full size (a 4000x3000 frame and its mask: 48 MB, kept 0.6 MB)."""
    def prepare(keys: list[str]) -> Callable[[Pair], Pair]:
        held_out = held_out_keys(keys, val_spec, seed)
        backgrounds: dict = {}
        return lambda pair: pair if pair.set_key in held_out else for_sampling(pair, size, work_width, backgrounds)
    return prepare


def load_rooms(folders: list[str | os.PathLike],
               through: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """Every image of the --backgrounds folders (each folder once), each passed `through` as it is read
    (training keeps the size sampling takes: `shrunk`)."""
    return [img for folder in distinct_folders(folders, "--backgrounds") for img in load_backgrounds(folder, through)]


def load_backgrounds(folder: str | os.PathLike | None,
                     through: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """Extra empty rooms for compositing (the folder's images, of the formats `--source` reads,
    `store.IMAGE_EXTS`; a .webp beside a.png was left out). A folder that is
    missing or holds no image, and an image that cannot be read, are errors that name it: a room
    left out without a word would train a different model than the command asked for."""
    if not folder:
        return []
    if not Path(folder).is_dir():
        raise HumansegError(f"--backgrounds folder not found: {folder}")
    # A capture set's folder: its frames show the person, its masks are no rooms. (Rooms numbered 1.png,
    # 2.png, ... as a video's frames are named, without bkg.png or masks beside them, are rooms.)
    names = os.listdir(folder)
    if (store.BKG_NAME in names and store.list_frames(folder)) or any(store.MASK_RE.match(n) for n in names):
        raise HumansegError(f"--backgrounds {folder} is a capture set folder (it holds bkg.png with K.png "
                            f"frames, or K_mask.png labels); give a folder of empty rooms (its sets are read "
                            f"with --images)")
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in store.IMAGE_EXTS and not p.name.startswith("."):  # not ._x.png
            # Named as every image is: unreadable or corrupt, not ours to read, a link to nothing, a folder.
            img = store.read_image(p, "--backgrounds image")
            out.append(through(img) if through else img)
    if not out:
        raise HumansegError(f"--backgrounds {folder} holds no image (.png, .jpg, .bmp, .webp, .tif)")
    return out


def sampling_scale(shape, size: tuple[int, int], work_width: int) -> float:
    """The largest scale TrainingSet's samples take of an image of this shape (h, w, ...): the jitter's
    top (1.3) about the inference scale or the least that fills the crop, times a pasted person's
    largest shrink (1.05)."""
    h, w = shape[:2]
    inference = working_size(w, h, work_width)[0] / w
    return max(inference, size[0] / w, size[1] / h) * 1.3 * 1.05


# Images stored smaller only where sampling takes at most half of them: the dev sets' and rooms'
# 640x480 (0.68 at the defaults) stay as they are, and so do the samples the shipped model learned from.
SHRINK_AT = 0.5


def shrunk(image: np.ndarray, size: tuple[int, int], work_width: int) -> np.ndarray:
    """The image at the most that sampling takes of it (see for_sampling), or itself."""
    f = sampling_scale(image.shape, size, work_width)
    if f > SHRINK_AT:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def for_sampling(pair: Pair, size: tuple[int, int], work_width: int, backgrounds: dict) -> Pair:
    """The pair, its frame far larger than any sample takes (a 1920x1080 or a phone camera's set)
    area-averaged down to that as inference shrinks a frame (INTER_AREA); or itself. Warped straight
    from full size, a sample was a bilinear pick of every third pixel or fewer: fine patterns (a
    striped shirt, a radiator's fins) came out as moiré the network never sees at work, and the
    full-size copies were held through the whole run. A set's background is shrunk once and shared
    by its frames (`backgrounds`, kept by the caller); masks come out soft at their edges, cut at half
    as every warped mask is, and their person's box as labelled goes with them (Pair.labelled)."""
    if pair.labelled is not None or sampling_scale(pair.frame.shape, size, work_width) > SHRINK_AT:
        return pair
    key = (pair.set_key, id(pair.background))  # (the set's background is alive while its frames are read)
    if key not in backgrounds:
        backgrounds[key] = shrunk(pair.background, size, work_width)
    return Pair(pair.set_key, shrunk(pair.frame, size, work_width), backgrounds[key],
                shrunk(pair.mask, size, work_width), labelled_box(pair))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 BGR -> 3xHxW float 0..1."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


class TrainingSet(Dataset):
    """Random augmented samples of size (w, h); `length` items per epoch, each reproducible from seed+index."""

    def __init__(self, pairs: list[Pair], extra_backgrounds: list[np.ndarray], size=(320, 240),
                 length: int = 100000, seed: int = 0, p_composite: float = 0.45, p_empty: float = 0.1,
                 work_width: int = 320, p_camouflage: float = 0.2):
        if not pairs:
            raise HumansegError("no labeled frames to train on")
        self.size = size
        self.work_width = work_width
        backgrounds: dict = {}  # (pairs load_pairs kept small already: as they are)
        pairs = [for_sampling(p, size, work_width, backgrounds) for p in pairs]
        self.pairs = pairs
        boxes = [labelled_box(p) for p in pairs]
        people = [i for i, (_, box) in enumerate(boxes) if box is not None]
        self.people = [pairs[i] for i in people]
        # Each person's first and last labelled rows and columns (found once, not per sample), in the
        # stored image's pixels (pixel centres scaled: row r of h rows is (r + 0.5) h'/h - 0.5), and
        # which of their frame's edges cut them off: within 3 px of it in the frame as labelled
        # (outlines clicked at the frame's edge end a pixel or two inside it), also where it is stored
        # smaller, where 3 px would reach 6 or more of the labelled frame's.
        self.person_rows, self.person_cols, self.person_cuts = [], [], []
        for i in people:
            ((lh, lw), (top, bottom, left, right)), (h, w) = boxes[i], pairs[i].mask.shape
            self.person_rows.append(tuple((y + 0.5) * h / lh - 0.5 for y in (top, bottom)))
            self.person_cols.append(tuple((x + 0.5) * w / lw - 0.5 for x in (left, right)))
            self.person_cuts.append((top <= 2, bottom >= lh - 3, left <= 2, right >= lw - 3))
        # Unique backgrounds of the training sets plus the extra rooms.
        seen = {}
        for p in pairs:
            seen.setdefault(p.set_key, p.background)
        self.rooms = list(seen.values()) + [shrunk(room, size, work_width) for room in extra_backgrounds]
        self.length = length
        self.seed = seed
        self.p_composite = p_composite if self.people else 0.0
        self.p_empty = p_empty
        self.p_camouflage = p_camouflage

    def __len__(self):
        return self.length

    def _base_affine(self, src_shape, rng, person_scale=1.0, fill=True):
        """Scale the source as inference would (to fit work_width x 3/4 of it) with jitter, random crop
        offset, flip. fill: never smaller than the crop (replicated borders would be a pattern real
        frames lack), which scales a portrait frame up past inference (480x640 into 320x240: 1.8x);
        a pasted person needs no filling (the room fills the sample) and keeps the inference scale."""
        h, w = src_shape[:2]
        ow, oh = self.size
        inference = working_size(w, h, self.work_width)[0] / w
        least = max(ow / w, oh / h) if fill else 0.0
        # Jittered about the inference scale, or about the least that fills the crop where that is
        # more (a 16:9 frame in a 4:3 crop): clamped to it alone, every sample had that one scale.
        s = max(inference, least) * rng.uniform(0.8, 1.3)
        s = max(s, least) * person_scale
        tx = rng.uniform(min(0, ow - w * s), max(0, ow - w * s))
        ty = rng.uniform(min(0, oh - h * s), max(0, oh - h * s))
        m = A.affine(s, 0, tx, ty)
        if rng.random() < 0.5:
            m = A.compose(np.array([[-1, 0, ow - 1], [0, 1, 0]], np.float64), m)
        return m

    def _camera_nudge(self, rng):
        """A small shift/rotation/zoom of the reference: the camera was touched between shots."""
        if rng.random() < 0.4:
            return np.array([[1, 0, 0], [0, 1, 0]], np.float64)
        ow, oh = self.size
        return A.affine(1 + rng.uniform(-0.015, 0.015), rng.uniform(-1.0, 1.0),
                        rng.uniform(-2.5, 2.5), rng.uniform(-2.5, 2.5), center=(ow / 2, oh / 2))

    def sample(self, index: int):
        rng = np.random.default_rng((self.seed, index))
        size = self.size
        r = rng.random()
        if r < self.p_empty:
            room = self.rooms[rng.integers(len(self.rooms))]
            m = self._base_affine(room.shape, rng)
            frame = A.warp(room, m, size)
            bkg = A.warp(room, A.compose(self._camera_nudge(rng), m), size)
            mask = np.zeros(size[::-1], np.uint8)
        elif r < self.p_empty + self.p_composite:
            k = rng.integers(len(self.people))
            person, (top, low) = self.people[k], self.person_rows[k]
            room = self.rooms[rng.integers(len(self.rooms))]
            m = self._base_affine(room.shape, rng)
            room_out = A.warp(room, m, size)
            bkg = A.warp(room, A.compose(self._camera_nudge(rng), m), size)
            # The person gets their own placement: smaller/larger, anywhere along the bottom or free.
            # A person their frame's bottom edge cuts off (34 of the 40 dev people) keeps that cut at or
            # below the sample's bottom edge: placed higher, they floated, cut straight. One cut at the
            # top keeps that cut at or above the sample's top (else they came out headless), and one cut
            # at both is not shrunk (the sample's height then holds no more than theirs).
            top_cut, cut, left_cut, right_cut = self.person_cuts[k]  # (found in __init__)
            shrink = rng.uniform(0.45, 1.05)
            both = cut and top_cut  # not shrunk, and as large as the sample's height at least
            pm = self._base_affine(person.frame.shape, rng, person_scale=1.0 if both else shrink, fill=both)
            if rng.random() < 0.6 or cut:
                # Keep the person's lowest pixel near the bottom edge as real captures have it.
                bottom = (pm[1, 1] * low + pm[1, 2])
                lift = rng.uniform(-0.05, 0.2)
                if cut and top_cut:  # both cuts out of view: the bottom anywhere from the edge down to
                    # where the top cut meets the top edge. The labelled rows (an outline clicked a row
                    # or two inside the frame's edges) are made to span the sample's height and a row:
                    # scaled to the frame's height alone, the cut head came out a row or two below the
                    # top with room above it (in 2 of 5 such samples).
                    grow = (size[1] + 1) / (pm[1, 1] * max(low - top, 1))
                    if grow > 1:
                        pm = A.compose(A.affine(grow, 0, 0, 0, center=(size[0] / 2, size[1])), pm)
                        bottom = pm[1, 1] * low + pm[1, 2]
                    span = pm[1, 1] * (low - top)
                    pm[1, 2] += size[1] - bottom + max(0.0, span - size[1]) * (lift + 0.05) / 0.25
                else:
                    # At most 3/4 of the person below the edge: a fifth of a tall sample's height (1280x960)
                    # put a person of the network's scale wholly out of view, an empty "composite" in 9.
                    down = min((max(lift, 0.0) if cut else lift) * size[1], 0.75 * abs(pm[1, 1]) * (low - top))
                    pm[1, 2] += size[1] - bottom + down
            if top_cut and not cut:
                pm[1, 2] -= max(0.0, pm[1, 1] * top + pm[1, 2])
            # A person cut off at one side of their frame keeps that cut at or beyond the sample's side
            # (placed anywhere across, 2 of the 40 dev people showed half a face ending in a straight
            # line mid-room). pm has no rotation: x' = pm[0, 0] x + pm[0, 2], pm[0, 0] < 0 when flipped.
            left, right = self.person_cols[k]
            if left_cut != right_cut:  # the outermost labelled column goes a column past the side, as
                edge_x = pm[0, 2] + pm[0, 0] * (left if left_cut else right)  # the lowest row does below
                if (pm[0, 0] > 0) == left_cut:  # the person lies right of the cut: it goes to the left
                    pm[0, 2] -= max(0.0, edge_x + 1)
                else:
                    pm[0, 2] += max(0.0, size[0] - edge_x)
            pf = A.photometric(A.warp(person.frame, pm, size), rng, 0.5)
            # Nothing beyond the picture they came from is person: its replicated edge rows were pasted
            # as streaks of "person" below a person cut off by the frame, or above one cut at the top.
            soft = A.warp(person.mask, pm, size, border=0).astype(np.float32) / 255
            # A one-pixel feather hides the polygon's hard cut without blurring the label.
            alpha = cv2.GaussianBlur(soft, (3, 3), 0.7)[..., None]
            frame = np.clip(room_out * (1 - alpha) + pf * alpha + 0.5, 0, 255).astype(np.uint8)
            mask = np.where(soft >= 0.5, 255, 0).astype(np.uint8)
        else:
            pair = self.pairs[rng.integers(len(self.pairs))]
            m = self._base_affine(pair.frame.shape, rng)
            frame = A.warp(pair.frame, m, size)
            mask = np.where(A.warp(pair.mask, m, size) >= 128, 255, 0).astype(np.uint8)
            bkg = A.warp(pair.background, A.compose(self._camera_nudge(rng), m), size)

        if rng.random() < self.p_camouflage:
            frame = A.camouflage(frame, bkg, mask, rng)
        if rng.random() < 0.3:
            frame = A.cast_shadow(frame, mask, rng)
        if rng.random() < 0.2:
            src = self.rooms[rng.integers(len(self.rooms))]
            src = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
            # Something moved into view (frame only) or away (reference only): not a person.
            if rng.random() < 0.5:
                frame = A.paste_object(frame, src, rng, keep=mask)
            else:
                bkg = A.paste_object(bkg, src, rng)
        frame = A.camera_degrade(A.photometric(frame, rng), rng)
        bkg = A.camera_degrade(A.photometric(bkg, rng, 0.6), rng)
        return frame, bkg, mask

    def __getitem__(self, index: int):
        frame, bkg, mask = self.sample(index)
        return to_tensor(frame), to_tensor(bkg), torch.from_numpy(mask[None] > 127).float()


def split_sets(pairs: list[Pair], val_spec: str | None, seed: int = 0) -> tuple[list[Pair], list[Pair]]:
    """Hold out whole sets: val_spec is '3,7' (set numbers), a fraction '0.2', or None/'' (none)."""
    val_keys = held_out_keys([p.set_key for p in pairs], val_spec, seed)
    train = [p for p in pairs if p.set_key not in val_keys]
    val = [p for p in pairs if p.set_key in val_keys]
    return train, val


def held_out_keys(set_keys: list[str], val_spec: str | None, seed: int = 0) -> set[str]:
    """The keys of the sets split_sets holds out, from the run's set keys in its order.

    A fraction's draw follows the seed, the order of the --images roots and their sets' names, not
    how a root's path is written: keys sorted as 'root:setN' strings held out other sets when the
    same folder was given as a relative path, or moved (and --resume, which allows that, then
    trained on a set it had held out)."""
    places = key_places(set_keys)
    keys = sorted(places, key=places.__getitem__)
    if not val_spec:
        return set()
    try:
        frac = float(val_spec)
        is_frac = "." in val_spec
    except ValueError:
        is_frac = False
    if is_frac:
        if not 0 < frac < 1:
            raise HumansegError(f"--val-sets fraction must be between 0 and 1: {val_spec}")
        rng = np.random.default_rng(seed)
        # At least one set, but never every set: a user's first afternoon has one labeled set, and
        # the default fraction must then train on it (without validation) rather than refuse.
        n = min(max(1, round(frac * len(keys))), len(keys) - 1)
        val_keys = set(rng.choice(keys, size=n, replace=False).tolist())
    else:
        # 3 or set3, as evaluate --sets takes them
        items = store.set_number_items(val_spec, "--val-sets")
        if not all(x.isascii() and x.isdigit() for x in items):  # not -1 or +3, which int() takes
            raise HumansegError(f"--val-sets must be set numbers like 3,7 or a fraction like 0.2: {val_spec}")
        numbers = {int(x) for x in items}
        val_keys = {k for k in keys if int(k.rsplit(":set", 1)[1]) in numbers}
        missing = numbers - {int(k.rsplit(":set", 1)[1]) for k in val_keys}
        if missing:
            named = ", ".join(f"set{n}" for n in sorted(missing))  # (said as a list: [0])
            raise HumansegError(f"--val-sets names sets with no labeled frames: {named} (a fraction is written "
                                f"with a point, e.g. 0.2)")
    if len(val_keys) == len(keys):
        raise HumansegError("--val-sets holds out every set; nothing left to train on")
    return val_keys
