"""Frame sources: a camera index, a video file, or a folder / glob pattern of images."""

from __future__ import annotations

import glob
import os
import re
import time
import warnings
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from humanseg import store
from humanseg.errors import HumansegError, refused_on_the_way

IMAGE_EXTS = store.IMAGE_EXTS
VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv"}
MAX_CAMERA_INDEX = 2**31 - 1
MAX_UNDECODED = 100_000  # failed reads in a row (about 0.2 s at a file's end) before it is taken to end
MAX_FPS = 1000.0  # a file reporting more has a broken header: taken as 30, as one reporting none
VIDEOS_NOT_READ = "videos are not read from a folder or pattern: give one as --source"


def natural_key(path: str):
    # The whole path, so a pattern over several folders keeps each folder's frames together (set3/*
    # then set4/*, not alternating); the path itself breaks ties (1.png and 01.png) as the same
    # order every time. [0-9], not \d or isdigit(): "1²2.png" has a digit int() does not take.
    return [int(t) if t.isascii() and t.isdigit() else t for t in re.split(r"([0-9]+)", path)], path


class FrameSource:
    """Yields BGR uint8 frames; `read()` returns None at the end. Use as a context manager."""

    def read(self) -> np.ndarray | None:  # pragma: no cover - interface
        raise NotImplementedError

    def release(self) -> None:
        pass

    @property
    def fps(self) -> float:
        return 30.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame


class ImageFolderSource(FrameSource):
    """Images of a folder (natural order: 2.png before 10.png) or of a glob pattern.

    Only image files that are plain frames are taken (from a folder or a glob): a capture set's bkg.png,
    masks and predictions, and files of other types, are skipped; where a capture set's frames (K.png
    beside bkg.png) are taken, only they are taken from its folder, so another image there (a pose
    drawing) neither passes for a frame nor shifts the numbers of the frames' results.
    """

    def __init__(self, paths: list[str], loop: bool = False):
        if not paths:
            raise HumansegError("no images found for the source")
        self.paths = paths
        self.loop = loop
        self.index = 0
        self.last_path: str | None = None  # the file read() last returned, for errors about that frame
        self._delivered = 0  # frames read() returned; once a whole pass, every image had been read
        # K of each K.png when every image is named so, and no name repeats (a glob over two sets'
        # folders): a capture set's frames, whose results are then named after them.
        names = [os.path.basename(p) for p in paths]
        numbered = [store.FRAME_RE.match(n) for n in names]
        self.frame_numbers = ([int(m.group(1)) for m in numbered]
                              if all(numbered) and len(set(names)) == len(names) else None)

    @classmethod
    def from_spec(cls, spec: str, loop: bool = False) -> "ImageFolderSource":
        found = list(Path(spec).iterdir() if os.path.isdir(spec) else map(Path, glob.glob(spec)))
        # A glob such as images/set3/*.png takes frames only, as the folder does.
        # Hidden files are passed over as a glob's * does (macOS leaves ._0.png copies on USB sticks).
        paths = [str(p) for p in found if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
                 and not p.stem.endswith(("_mask", "_pred")) and p.stem != "bkg" and p.is_file()]
        # A capture set's folder (bkg.png and K.png frames), whose frames are among those taken: the
        # set is the source. (Other images asked for by name or pattern, or a folder of frames named
        # otherwise that holds a bkg.png, are taken as they are.)
        with_frames = {os.path.dirname(p) for p in paths if store.FRAME_RE.match(os.path.basename(p))}
        in_sets = {folder for folder in with_frames if os.path.isfile(os.path.join(folder or ".", store.BKG_NAME))}
        strays = sorted((p for p in paths if os.path.dirname(p) in in_sets
                         and not store.FRAME_RE.match(os.path.basename(p))), key=natural_key)
        if strays:
            left_out = set(strays)
            paths = [p for p in paths if p not in left_out]
            names = ", ".join(os.path.basename(p) for p in strays[:3]) + (", ..." if len(strays) > 3 else "")
            warnings.warn(f"{spec}: {names} not read (in a capture set's folder only its K.png frames are "
                          f"frames)", stacklevel=2)
        paths.sort(key=natural_key)
        videos = sorted(p.name for p in found if p.suffix.lower() in VIDEO_EXTS)
        if not paths:
            if videos:
                passed = f" ({VIDEOS_NOT_READ}, e.g. {videos[0]})"
            else:
                # Folders are not searched (an images root holds set folders, not frames): said as
                # such, with what to give instead, rather than counted among the files passed over.
                folders = sorted((p for p in found if p.is_dir()), key=lambda p: natural_key(str(p)))
                files = len(found) - len(folders)
                said = []
                if files:
                    said.append(f"{files} other file{'s' if files != 1 else ''}: bkg.png, masks, "
                                f"predictions and files of other types are not frames")
                if folders:  # (a pattern's folders: the pattern itself, or the folders beside them were read)
                    pattern = os.path.join(spec, "*", "*.png") if os.path.isdir(spec) else os.path.join(spec, "*.png")
                    said.append(f"{len(folders)} folder{'s' if len(folders) != 1 else ''}, not searched: "
                                f"give one, e.g. {folders[0]}, or a pattern, e.g. '{pattern}'")
                passed = f" ({'; '.join(said)})" if said else ""
            raise HumansegError(f"no images found in source: {store.shown_path(spec)}{passed}")
        if videos:
            warnings.warn(f"{spec}: {', '.join(videos[:3])}{', ...' if len(videos) > 3 else ''} not read "
                          f"({VIDEOS_NOT_READ})", stacklevel=2)
        return cls(paths, loop=loop)

    def check_all(self) -> None:
        """Read every image once, for a run that writes results and must not stop half-way: an
        unreadable image, or one of another size than the first, raises an error that names it."""
        shape = None
        for path in self.paths:
            frame = self._imread(path)
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise HumansegError(f"{path} is {frame.shape[1]}x{frame.shape[0]} but {self.paths[0]} is "
                                    f"{shape[1]}x{shape[0]}")

    def read(self):
        if self.index >= len(self.paths):
            if not self.loop:
                return None
            self.index = 0
        path = self.paths[self.index]
        self.index += 1
        try:
            frame = self._imread(path)
        except HumansegError:
            # Listed when the session started, and read since (a loop's second pass) or gone now:
            # moved, deleted or changed while playing, a runtime failure as a video file's (exit 1);
            # one never read that fails is bad input (exit 2).
            if self._delivered >= len(self.paths) or not os.path.lexists(path):
                raise SourceGone(f"image {path} in source could no longer be read (moved, deleted or "
                                 f"changed while playing?)") from None
            raise
        self.last_path = path
        self._delivered += 1
        return frame

    @property
    def last_number(self) -> int | None:
        """K of the frame read() last returned, when the frames are numbered (`frame_numbers`)."""
        return self.frame_numbers[self.index - 1] if self.frame_numbers and self.index else None

    @staticmethod
    def _imread(path: str) -> np.ndarray:
        frame = store.decode_file(path)  # gone, or not ours to read: as unreadable as a corrupt one
        if frame is None:
            raise HumansegError(f"unreadable image in source: {path}")
        return frame


class CameraStopped(HumansegError):
    """A camera gave no frame for a while: the session ends with this error, keeping what it made."""

    exit_code = 1


class SourceGone(CameraStopped):
    """A file source that played could no longer be read (an image of a folder, a looped video, moved or
    deleted meanwhile): ends as a camera that stops, keeping what was made (live mode discarded its
    recording of the frames before, keeping their masks)."""


# Frames a video file may fall short of the count it states before that is said (some state an estimate).
COUNT_SLACK = 2


class VideoSource(FrameSource):
    """A camera (int index) or a video file, through cv2.VideoCapture.

    A file ends when its frames do, or starts again with `loop` (as a folder does: the capture tool,
    live mode in a window). A camera that fails a read is asked again for up to
    `grace_seconds` (webcams drop a frame now and then, above all while starting); one that still
    gives nothing is an error that says so, not a quiet end of the session. A file whose frames stop
    decoding before its end (a damaged stretch) goes on with the frames after it, with a warning
    naming the frames skipped, rather than ending there as if it were over."""

    grace_seconds = 2.0

    def __init__(self, spec: int | str, loop: bool = False):
        self.spec = spec
        self.is_camera = isinstance(spec, int)
        self.loop = loop and not self.is_camera
        if not self.is_camera:
            store.refuse_non_utf8_video_name(spec, "video file")
        self.cap = cv2.VideoCapture(spec)
        if not self.cap.isOpened():
            what = (f"camera {spec} (none there, or in use by another program? --source also takes a video "
                    f"file or an image folder)") if self.is_camera else f"video file {spec}"
            raise HumansegError(f"cannot open {what}")
        self._tried = 0  # a file's frames read so far, decoded or not
        self._frames = 0  # frames returned in all

    @property
    def fps(self) -> float:
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        return fps if fps and 0 < fps <= MAX_FPS else 30.0

    def read(self):
        ok, frame = self._read()
        if not ok and self.loop:
            # The first frame again, from the file opened anew: OpenCV's rewind (a seek to frame 0)
            # reports success on a one-frame file without doing it.
            self.cap.release()
            self.cap, self._tried = cv2.VideoCapture(self.spec), 0
            ok, frame = self._read() if self.cap.isOpened() else (False, None)
            if not ok and self._frames:  # it played before: moved, deleted or damaged since
                raise SourceGone(f"video file {self.spec} could no longer be read (moved, deleted or "
                                 f"changed while playing?)")  # (a runtime failure, as a
                # camera that stops: the file was good when the session started)
        if ok:
            self._frames += 1
        if ok or not self.is_camera:
            return frame if ok else None
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
            ok, frame = self.cap.read()
            if ok:
                return frame
        raise CameraStopped(f"camera {self.spec} gave no frame for {self.grace_seconds:g} s (unplugged, or in "
                            f"use by another program?)")

    def _read(self):
        ok, frame = self.cap.read()
        if self.is_camera:
            return ok, frame
        self._tried += 1
        if ok:
            return ok, frame
        first, total = self._tried, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        # Each failed read moves past one frame; a header's count is trusted for MAX_UNDECODED frames
        # more at most (one claiming 2**31 frames spun for an hour at the file's end).
        while not ok and self._tried < min(total, first + MAX_UNDECODED):
            ok, frame = self.cap.read()
            self._tried += 1
        if ok:
            last = self._tried - 1
            which = f"frame {first}" if last == first else f"frames {first}-{last}"
            warnings.warn(f"video file {self.spec}: {which} (counted from 1) could not be decoded (damaged?); "
                          f"skipped", stacklevel=2)
        elif total - first + 1 > COUNT_SLACK:
            # Damage that runs to the end (a file cut short): an end, but not a quiet one, or a
            # recording would come out half as long with nothing said. (A few frames of slack: some
            # files state an estimated count.) How many, not which: AVI and MKV readers pass over a
            # damaged stretch in the middle without a failed read, so the missing frames may lie there.
            warnings.warn(f"video file {self.spec}: {total - first + 1} of its {total} frames could not be "
                          f"decoded (cut short, or damaged?); it ends after {first - 1} frames", stacklevel=2)
        return ok, frame

    def release(self):
        self.cap.release()


def open_source(spec: str | int, loop: bool = False) -> FrameSource:
    """Open a camera index ("0"), a video file, an image folder or a glob pattern."""
    if isinstance(spec, str) and spec.strip().isascii() and spec.strip().isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        if spec > MAX_CAMERA_INDEX:  # OpenCV's C int: a traceback past it
            raise HumansegError(f"camera index {spec} is out of range (0 to {MAX_CAMERA_INDEX})")
        return VideoSource(spec)
    spec = str(spec)
    refused = refused_on_the_way(spec)  # a folder on the way not ours to enter: was "source not found"
    if refused is None and os.path.isdir(spec):
        try:
            os.listdir(spec)
        except PermissionError as exc:  # (the folder's own mode: exit 1, naming no --source)
            refused = exc.strerror
    if refused:
        raise HumansegError(f"source unreadable ({refused}): {store.shown_path(spec)}")
    if os.path.isdir(spec) or (any(ch in spec for ch in "*?[") and not os.path.isfile(spec)):  # take[1].mp4
        return ImageFolderSource.from_spec(spec, loop=loop)
    if os.path.isfile(spec):
        if Path(spec).suffix.lower() in IMAGE_EXTS:
            return ImageFolderSource([spec], loop=loop)
        return VideoSource(spec, loop=loop)
    if not spec.strip():  # an unset shell variable
        raise HumansegError("source is empty: give a camera index, a video file or an image folder")
    if os.path.exists(spec):  # a device or a named pipe
        raise HumansegError(f"source is not a file or a folder: {store.shown_path(spec)}")
    raise HumansegError(f"source not found: {store.shown_path(spec)}")


def open_source_quietly(spec: str, loop: bool = False) -> FrameSource:
    """open_source for a command's --source: a missing camera or a broken video file gets our one
    line (naming --source), without OpenCV's WARN lines or FFmpeg's own ("moov atom not found")."""
    # A user who set OPENCV_LOG_LEVEL to see more than errors (WARNING, INFO, ...) sees OpenCV's and
    # FFmpeg's lines; otherwise both are silenced. FFmpeg's level is read once, when OpenCV first
    # loads it (and a user's own OPENCV_FFMPEG_LOGLEVEL is kept).
    wants_logs = os.environ.get("OPENCV_LOG_LEVEL", "ERROR").upper() in ("WARNING", "WARN", "INFO", "DEBUG",
                                                                          "VERBOSE", "3", "4", "5", "6")
    if not wants_logs:
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    level = cv2.getLogLevel()
    cv2.setLogLevel(level if wants_logs else 0)  # 0 = silent
    try:
        return open_source(spec, loop=loop)
    except HumansegError as exc:
        raise HumansegError(f"--source {store.shown_path(spec)}: {exc}") from None
    finally:
        cv2.setLogLevel(level)


class Peeked:
    """A source whose first frame was already read (e.g. to size the window); read() returns it first."""

    def __init__(self, source, first):
        self._source, self._first = source, first

    def read(self):
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        return self._source.read()

    def __getattr__(self, name):
        return getattr(self._source, name)


def looks_mirrored(frame: np.ndarray, background: np.ndarray, margin: float = 0.1) -> bool:
    """True when the frame (BGR, the background's size) matches the background flipped left-right
    clearly better than as it is: a background saved mirrored (the capture tool's default) meeting
    frames that are not, or the other way round. Compared as grey thumbnails 64 px wide, block by
    block (8x8 blocks, each normalised on its own, so exposure does not count, nor does a person
    filling much of the frame: they match neither way, and the room around them decides). On every
    dev frame the right orientation wins by 0.37 or more in mean block correlation (of at most 2);
    cut to portrait around the person, by 0.26 at 3:4 and 0.20 at 9:16 (one correlation over the
    whole thumbnail, used before, took 1 in 52 portrait frames for mirrored, and missed 1 to 4 in 52
    mirrored ones cut to portrait, square or 16:9); a room that looks the same both ways stays under
    the margin."""
    def thumb(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        small = cv2.resize(img, (64, max(1, round(64 * h / w))), interpolation=cv2.INTER_AREA)
        return (cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small).astype(np.float32)

    f, b = thumb(frame), thumb(background)
    rows = f.shape[0] // BLOCK * BLOCK
    if rows == 0:
        return False  # a strip a few pixels tall: nothing to tell by

    def blocks(img: np.ndarray) -> np.ndarray:
        cells = img[:rows].reshape(rows // BLOCK, BLOCK, -1, BLOCK).transpose(0, 2, 1, 3).reshape(-1, BLOCK * BLOCK)
        return cells - cells.mean(axis=1, keepdims=True)

    def mean_correlation(x: np.ndarray, y: np.ndarray) -> float:
        norms = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        return float(np.where(norms > 1e-3, (x * y).sum(axis=1) / np.maximum(norms, 1e-3), 0.0).mean())

    bb = blocks(b)
    return mean_correlation(blocks(np.ascontiguousarray(f[:, ::-1])), bb) - mean_correlation(blocks(f), bb) > margin


BLOCK = 8  # looks_mirrored's blocks, in pixels of its 64-px-wide thumbnails
