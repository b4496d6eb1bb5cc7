"""The capture store: the original tool's `images/setN/{bkg.png, K.png, K_mask.png}` layout.

Everything that reads or writes captures goes through here: discovery (numeric order, gaps
allowed), claiming new sets and frames without races, atomic writes that never overwrite unless
asked, and validation that names the file at fault.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from humanseg.errors import AlreadyExists, HumansegError, StoreError, out_of_memory
from humanseg.signals import signals_held

# Numbers as the tool writes them, without leading zeros: "set01" or "07.png" would be read as set 1 or
# frame 7 and then looked up as set1/ or 7.png, which are other names (or none). ASCII digits to the
# name's very end: \d took "1２.png" (a full-width digit) as frame 12, and $ took "1.png\n" as frame 1
# a second time.
SET_RE = re.compile(r"\Aset(0|[1-9][0-9]*)\Z")
FRAME_RE = re.compile(r"\A(0|[1-9][0-9]*)\.png\Z")
BKG_NAME = "bkg.png"
# Image files read outside the layout (a --source folder's frames, --backgrounds' rooms).
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def mask_name(k: int) -> str:
    return f"{k}_mask.png"


def pred_name(k: int) -> str:
    return f"{k}_pred.png"


def label_json_name(k: int) -> str:
    return f"{k}.json"


@dataclass
class SetInfo:
    """One set folder: its number, paths, and which frames have a mask."""

    number: int
    path: Path
    frames: list[int] = field(default_factory=list)
    labeled: list[int] = field(default_factory=list)

    @property
    def bkg_path(self) -> Path:
        return self.path / BKG_NAME

    @property
    def unlabeled(self) -> list[int]:
        done = set(self.labeled)
        return [k for k in self.frames if k not in done]

    def frame_path(self, k: int) -> Path:
        return self.path / f"{k}.png"

    def mask_path(self, k: int) -> Path:
        return self.path / mask_name(k)

    def pred_path(self, k: int) -> Path:
        return self.path / pred_name(k)

    def json_path(self, k: int) -> Path:
        return self.path / label_json_name(k)


# ---------------------------------------------------------------- discovery

def set_path(root: str | os.PathLike, number: int) -> Path:
    return Path(root) / f"set{number}"


def list_sets(root: str | os.PathLike) -> list[int]:
    """Set numbers found under root, in numeric order (set2 before set10)."""
    root = Path(root)
    if not root.is_dir():
        return []
    numbers = []
    for entry in root.iterdir():
        m = SET_RE.match(entry.name)
        if m and entry.is_dir():
            if not _unfinished(entry):
                numbers.append(int(m.group(1)))
        elif m and entry.is_symlink() and not entry.exists() and str(entry) not in _warned_sets:  # unmounted
            _warned_sets.add(str(entry))
            warnings.warn(f"{entry} {not_a_file(entry)} ({os.readlink(entry)}); that set is left out",
                          stacklevel=2)
    return sorted(numbers)


_warned_sets: set[str] = set()  # set folders said once: links to nothing, saves cut off
EMPTY_SET_GRACE = 5.0  # seconds an empty set folder may be one whose background is being saved
BKG_TEMPORARY_RE = re.compile(r"\Abkg\.png\.([0-9]+)\.[0-9a-f]{6}\.tmp\Z")


def _unfinished(folder: Path) -> bool:
    """Whether folder is a set whose background is still being written, or never was: it holds
    nothing but bkg.png's temporary file(s), its writer alive (left out without a word) or gone
    (killed, or the power lost, mid-save: left out, said once), or nothing at all. Such a set
    stopped every tool ("background missing") while nothing was captured in it."""
    if os.path.lexists(folder / BKG_NAME):
        return False
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    if not names:
        # Made, and its bkg.png's temporary file not yet (a kill in that half millisecond leaves it so
        # for good; training and evaluate then stopped at "background missing"): said once it is older
        # than a save takes.
        try:
            age = time.time() - folder.stat().st_mtime
        except OSError:
            return False
        if age > EMPTY_SET_GRACE and str(folder) not in _warned_sets:
            _warned_sets.add(str(folder))
            warnings.warn(f"{folder} is empty (a new set whose background was never written: a save cut "
                          f"off?); that set is left out", stacklevel=3)
        return True
    found = [BKG_TEMPORARY_RE.match(name) for name in names]
    if not all(found):
        return False
    if not any(_alive(int(m.group(1))) for m in found) and str(folder) not in _warned_sets:
        _warned_sets.add(str(folder))
        warnings.warn(f"{folder} holds no background, only {names[0]} (a save cut off); that set is left "
                      f"out", stacklevel=3)
    return True


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if pid <= 0:  # (0 and negative numbers name process groups)
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (a number no process can have)
        return False
    except OSError:  # another user's
        return True
    return True


def check_root(root: str | os.PathLike) -> None:
    """Refuse a set folder (setN/ holding bkg.png; or any folder holding bkg.png and no setN/: one
    renamed, or a link to one) given where the images root belongs: sets made in it would nest
    (setN/set1/), and its frames would not be found."""
    root = Path(root)
    if not (root / BKG_NAME).is_file():
        return
    where = Path(os.path.abspath(root))  # "." inside a set folder has its name; links are kept as given
    if SET_RE.match(where.name):
        raise StoreError(f"--images {root} is a set folder; give the folder that holds it: {where.parent}")
    if not list_sets(root):  # a set folder by its content: renamed, or reached through a link
        raise StoreError(f"--images {root} holds {BKG_NAME} and no set folders, as a set folder does; give "
                         f"the folder that holds the sets (set1, set2, ...)")


def list_frames(folder: str | os.PathLike) -> list[int]:
    """Frame numbers K of the K.png files in a set folder, in numeric order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return _frames_in(os.listdir(folder))


def count_frames(folder: str | os.PathLike) -> int:
    """How many K.png frames a set folder holds that are files (a link to nothing, or a folder so
    named, is no frame: capture's bottom line counted one). Only links cost a stat: the rest are
    told by the listing's file types; one that cannot be followed (a loop, no permission) is no frame
    either. A folder that is not there holds none."""
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if FRAME_RE.match(e.name) and _is_file(e))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _frames_in(names: list[str]) -> list[int]:
    return sorted(int(m.group(1)) for m in map(FRAME_RE.match, names) if m)


def passed_over(folder: str | os.PathLike, sets: bool, within: str = "") -> str:
    """A hint naming what looks like the layout's names but is not (set01, Set3; 07.png, 1.PNG, 0.jpg),
    for a message that says nothing was found; "" when there is none. within: the folder's name as
    the names' prefix ("set3/")."""
    folder = Path(folder)
    near = re.compile(r"^\s*set\d+\s*$" if sets else rf"^\s*\d+\.({_NEAR_EXTS})\s*$", re.IGNORECASE)  # ( 1.png too)
    exact = SET_RE if sets else FRAME_RE
    try:
        names = sorted(p.name for p in folder.iterdir() if near.match(p.name) and not exact.match(p.name))
    except OSError:
        return ""
    if not names:
        return ""
    shown = ", ".join(repr(within + n) if n != n.strip() else within + n for n in names[:3]) + (
        ", ..." if len(names) > 3 else "")
    layout = "set1, set2, ..." if sets else "0.png, 1.png, ..."
    return f" ({shown} passed over: the layout's names are {layout})"


def why_no_labels(root: str | os.PathLike) -> str:
    """For "no labeled frames found in root": the names near the layout's that were passed over, of
    set folders or of the frames in the sets found; "" when there are none."""
    hint = passed_over(root, sets=True)
    for n in ([] if hint else list_sets(root)):
        hint = passed_over(set_path(root, n), sets=False, within=f"set{n}/")
        if hint:
            break
    return hint


def numbers_shown(numbers: list[int], most: int = 12) -> str:
    """Set numbers for a line: all of a few; of many, the first and last few and how many (a thousand
    sets made a line of 5,000 characters)."""
    if len(numbers) <= most:
        return ", ".join(map(str, numbers))
    half = most // 2
    return (f"{', '.join(map(str, numbers[:half]))}, ..., {', '.join(map(str, numbers[-half:]))}: "
            f"{len(numbers)} sets")


def scan_set(root: str | os.PathLike, number: int) -> SetInfo:
    """Describe set `number` under root; raises StoreError if the folder or its bkg.png is missing."""
    path = set_path(root, number)
    try:
        found = path.is_dir()
    except OSError:  # a number too long for a file name (--set 1000...0): no such set, not exit 1
        found = False
    if not found:
        check_root(root)
        if not os.path.isdir(root):  # (was "set folder not found: images/set1 (no sets here)")
            raise StoreError(f"images folder not found: {root}")
        if os.path.islink(path) and not os.path.exists(path):  # (False, not OSError, for a name too long)
            raise StoreError(f"set folder {not_a_file(path)}: {path} -> {os.readlink(path)}")
        available = list_sets(root)
        hint = (f" (sets here: {numbers_shown(available)})" if available
                else passed_over(root, sets=True) or " (no sets here)")
        raise StoreError(f"set folder not found: {path}{hint}")
    try:  # one listing for the background's near names, the frames, their labels and the labels left out
        names = os.listdir(path)
        has_bkg = (path / BKG_NAME).is_file()
    except PermissionError as exc:  # the folder's mode ("bkg.png: Permission denied", exit 1)
        raise StoreError(f"set folder unreadable ({exc.strerror}): {path}") from None
    if not has_bkg:
        if os.path.lexists(path / BKG_NAME):  # a folder so named, a link to nothing
            raise StoreError(f"background {not_a_file(path / BKG_NAME)}: {path / BKG_NAME}")
        other = sorted(n for n in names if re.fullmatch(rf"\s*bkg\.({_NEAR_EXTS})\s*", n, re.IGNORECASE))
        hint = ""
        if other:  # a JPEG (not the layout's, and lossy), BKG.PNG, ' bkg.png'
            shown = repr(other[0]) if other[0] != other[0].strip() else other[0]
            lossy = "" if other[0].strip().lower().endswith(".png") else ", lossless"
            hint = f" ({shown} passed over: the background is {BKG_NAME}{lossy})"
        raise StoreError(f"background missing: {path / BKG_NAME}{hint}")
    frames = _frames_in(names)
    labeled = [k for k in frames if (path / mask_name(k)).is_file()]
    _warn_stray_masks(path, names, frames)
    return SetInfo(number=number, path=path, frames=frames, labeled=labeled)


# Image names near the layout's that are passed over (a camera app's JPEGs), named where nothing is found.
_NEAR_EXTS = "png|jpe?g|bmp|webp|tiff?"
MASK_RE = re.compile(r"\A(0|[1-9][0-9]*)_mask\.png\Z")
NEAR_MASK_RE = re.compile(r"^\s*\d+_mask\.png\s*$", re.IGNORECASE)
_warned_stray: set[str] = set()


def _warn_stray_masks(path: Path, names: list[str], frames: list[int]) -> None:
    """One warning per set folder (and process) for a label that is left out: a K_mask.png without
    its K.png (deleted, or named K.PNG), one that is not a file, or a mask named off the layout
    (01_mask.png, 1_mask.PNG)."""
    key = str(path)
    if key in _warned_stray:
        return
    have = set(frames)
    stray = []
    for name in sorted(names):
        p, m = path / name, MASK_RE.match(name)
        if m and not p.is_file():
            stray.append(f"{p} {not_a_file(p)}")
        elif m and int(m.group(1)) not in have:
            stray.append(f"{p} has no frame {m.group(1)}.png beside it")
        elif not m and NEAR_MASK_RE.match(name):
            stray.append(f"{p} is not named as the layout's masks are (K_mask.png, K without leading zeros)")
    if stray:
        _warned_stray.add(key)
        more = f" (and {len(stray) - 1} more there)" if len(stray) > 1 else ""
        warnings.warn(f"{stray[0]}; that label is left out{more}", stacklevel=3)


def warn_of_mismatched(folder: Path, names: list[str], labeled: int, outcome: str) -> None:
    """One warning for a capture set whose labeled frames `names` (of `labeled`) do not match its
    bkg.png (live.background_mismatch, their labels as the person); nothing where they all match."""
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        verb = "does" if len(names) == 1 else "do"
        warnings.warn(f"{folder}: {len(names)} of its {labeled} labeled frames ({shown}) {verb} not match its "
                      f"bkg.png: most of their room differs from it, or is shifted against it (the camera "
                      f"moved after it was taken, or it shows another room?); {outcome}", stacklevel=2)


def scan_root(root: str | os.PathLike) -> list[SetInfo]:
    """Every set under root that has a bkg.png (sets without one are reported, not skipped silently)."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(f"images folder not found: {root}")
    return [scan_set(root, n) for n in list_sets(root)]


def next_set_number(root: str | os.PathLike) -> int:
    """One above every existing set number (gaps are never filled, sets never reused)."""
    existing = list_sets(root)
    return (existing[-1] + 1) if existing else 1


def next_frame_number(folder: str | os.PathLike) -> int:
    """One above every frame number in use in the set folder: its K.png frames, and the K of a
    K_mask.png, K_pred.png or K.json file left without its frame (a new K.png would take on that
    label)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    names = os.listdir(folder)
    used = _frames_in(names)
    for name in names:
        m = CAPTURE_FILE_RE.match(name)
        if m and m.group(2) and m.group(3) != ".png" and (folder / name).is_file():
            used.append(int(m.group(2)))
    return max(used) + 1 if used else 0


def is_capture_folder(folder: str | os.PathLike) -> bool:
    """A capture set's folder: it holds bkg.png or K.png frames."""
    folder = Path(folder)
    return (folder / BKG_NAME).is_file() or bool(list_frames(folder))


def refuse_capture_folder(folder: str | os.PathLike, what: str) -> None:
    """StoreError if folder is a capture set (bkg.png or K.png there): masks written into it as
    K_mask.png would replace its labels or pass for labels."""
    folder = Path(folder)
    if is_capture_folder(folder):
        raise StoreError(f"{what} {folder} is a capture set folder (it holds bkg.png or K.png frames): masks "
                         f"written there would replace or pass for its labels; choose another folder")


def set_number_items(value: str, what: str) -> list[str]:
    """The items of a set list (`3,7`, `set3, set7`) without their `set`: a name with a leading zero
    (`set01`) is not the layout's, and was read as set 1 even beside a set01 folder: StoreError."""
    items = [x.strip() for x in value.split(",") if x.strip()]
    for x in items:
        if re.fullmatch(r"set0\d+", x):
            raise StoreError(f"{what} {value}: {x} is not a set of the layout, whose names have no leading "
                             f"zeros (set1, set2, ...)")
    return [x.removeprefix("set") for x in items]


def refuse_new_set_folder(path: str | os.PathLike, what: str) -> None:
    """StoreError if writing path would make a setN folder beside capture sets (images/set9/...):
    every tool reading that images folder would then take it for a set without bkg.png and stop."""
    path = Path(os.path.abspath(path))
    for place in (path, *path.parents):
        if SET_RE.match(place.name) and not is_capture_folder(place) and any(
                is_capture_folder(set_path(place.parent, n)) for n in list_sets(place.parent)):
            raise StoreError(f"{what} {path}: {place.name} would sit among the capture sets of "
                             f"{place.parent}, where every tool would take it for one; choose another place")


# bkg.png, K.png, K_mask.png, K_pred.png, K.json: the files a capture set is made of.
CAPTURE_FILE_RE = re.compile(r"\A(bkg\.png|(0|[1-9][0-9]*)(\.png|_mask\.png|_pred\.png|\.json))\Z")


def refuse_capture_file(path: str | os.PathLike, what: str) -> None:
    """StoreError if path is (or would become) one of a capture set's own files, such as
    images/set3/0.png: an output file written there replaces a capture, or passes for one."""
    path = Path(path)
    if CAPTURE_FILE_RE.match(path.name) and is_capture_folder(path.parent):
        raise StoreError(f"{what} {path} is a file of the capture set {path.parent}; "
                         f"write it somewhere else")


def shown_path(path: str | os.PathLike) -> str:
    """path as text to print: bytes that are not UTF-8 as \\xff escapes (not lone surrogates)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def refuse_non_utf8_video_name(path: str | os.PathLike, what: str) -> None:
    """StoreError if path, as OpenCV is given it, is not valid UTF-8: its VideoCapture and VideoWriter
    crash the process (a segmentation fault) on such a name, where images are read and written by
    Python's own file calls. (A relative name is given as it is: the folder it is in may have any name.)"""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"{what} {shown_path(path)}: OpenCV cannot open a video whose path is not valid UTF-8; "
                         f"rename it (or its folder)") from None


def refuse_special_file(path: str | os.PathLike, what: str) -> None:
    """StoreError if path is there and is neither a file, a folder nor a link: a device or a pipe
    (--force replaced /dev/null with a JSON report, as root, and a named pipe with a file)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise StoreError(f"{what} {path} is not a regular file (a device or a pipe); name a file".lstrip())


def refuse_set_reached_again(seen: dict[Path, Path], named: Path, why: str) -> None:
    """Record set folder `named` in seen (each set folder as the system finds it -> as named); one
    reached again through a link (images/set4 -> set3, or across --images roots) is refused: `why`."""
    first = seen.setdefault(named.resolve(), named)
    if first != named:
        raise HumansegError(f"--images: {named} is the set folder {first} again (through a link); {why}")


@contextlib.contextmanager
def appeared_meanwhile():
    """An output that appeared after the check before the run (another run writing there too): a
    runtime failure, exit 1, said as live mode says it, not "refusing to overwrite" as bad input."""
    try:
        yield
    except AlreadyExists as exc:
        raise HumansegError(f"{exc.path}: it appeared during the run (another program's?): not replaced "
                            f"without --force", exit_code=1) from None


def refuse_missing_folder(path: str | os.PathLike, what: str) -> None:
    """StoreError unless the folder a file is written into is there (for outputs that do not make it)."""
    path = Path(path)
    if not path.parent.is_dir():
        there = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise StoreError(f"{what} {path}: folder {path.parent} {there}")


def refuse_unwritable(path: str | os.PathLike, what: str, folder: bool = False) -> None:
    """StoreError unless path (a file, or with folder a folder) could be written: its nearest existing
    folder must be one this process may write in. Checked before a tool starts, so that a read-only
    place fails then rather than at the first save (after a countdown, a drawn polygon, a long run)."""
    path = Path(path)
    if not folder:
        refuse_special_file(path, what)
    there = path if folder else path.parent
    there = Path(os.path.abspath(there))
    while not os.path.lexists(there) and there != there.parent:
        there = there.parent
    if not there.is_dir():
        # (a symlink loop was "a link to nothing")
        kind = not_a_file(there).removeprefix("is ") if there.is_symlink() and not there.exists() else "a file"
        raise StoreError(f"{what} {path}: {there} is {kind}, not a folder")
    if not os.access(there, os.W_OK | os.X_OK):
        place = "there" if there == Path(os.path.abspath(path)) else f"in {there}"
        raise StoreError(f"{what} {path}: cannot write {place} (read-only, or no permission)")


# ---------------------------------------------------------------- atomic writes

NAME_MAX = 255  # bytes in one file name on the filesystems this runs on (ext4, APFS, NTFS, ...)


def temporary_path(path: str | os.PathLike, tail: str, keep_suffix: bool = False) -> Path:
    """The name path's content is written under before it is moved into place: in path's folder, so
    os.replace / os.link stay on one filesystem, ending in tail (+ path's suffix with keep_suffix, for
    writers that pick the format by it). Shortened so that a name that fits also fits with the tail,
    a digest of the whole name keeping two long names that share their start apart."""
    path = Path(path)
    base, suffix = (path.stem, path.suffix) if keep_suffix else (path.name, "")
    end = tail + suffix
    # os.fsencode: a name that is not UTF-8 (bad\xff.png) holds surrogates, which .encode() refuses.
    room = NAME_MAX - len(os.fsencode(end))
    if len(os.fsencode(base)) > room:
        digest = "~" + hashlib.sha1(os.fsencode(path.name)).hexdigest()[:8]
        # (a character cut in two leaves its first bytes as trailing surrogates: dropped)
        base = re.sub("[\udc80-\udcff]+$", "", os.fsdecode(os.fsencode(base)[:room - len(digest)])) + digest
    return path.with_name(base + end)


def remove_temporary(tmp: str | os.PathLike) -> None:
    """Remove a temporary file if it is there. Never raises: it runs while another error is on its way
    (on a read-only folder even removing a file that was never made fails, and would hide that error)."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    except OSError:
        if os.path.lexists(tmp):
            warnings.warn(f"could not remove the temporary file {tmp}", stacklevel=2)


def claim_temporary(path: str | os.PathLike, keep_suffix: bool = False) -> Path:
    """A new, empty temporary file for path's content (named as temporary_path says, with this
    process's pid and a random part), created exclusively: never a file that was there before, so
    removing it afterwards removes only this process's own. An OSError (a read-only folder) names path."""
    path = Path(path)
    for _ in range(100):
        tmp = temporary_path(path, f".{os.getpid()}.{secrets.token_hex(3)}.tmp", keep_suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # less the umask, as open() makes
            return tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    raise OSError(errno.EEXIST, "no free temporary name beside it", str(path))


def write_temporary(tmp: Path, data: bytes, path: Path) -> None:
    """Write data to tmp, flushed to disk; an OSError names path (a full disk names no file, a closed
    folder names the temporary one)."""
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None


def _put_in_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move a written temporary file to path; without overwrite, an existing path raises StoreError.
    An OSError names path, not the temporary file (`last.pt.1234.tmp: Is a directory`)."""
    if overwrite:
        refuse_special_file(path, "")
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        return
    try:
        # link() fails if the target exists: the no-overwrite check and the write are one step.
        os.link(tmp, path)
    except FileExistsError:
        raise AlreadyExists(path) from None
    except OSError:
        # Filesystems without hard links (FAT32 / exFAT sticks, some network shares): the name is claimed
        # with an exclusive create, then the file renamed over that empty claim. (A check then a rename
        # let two capture tools on one set both take a number: one frame lost, both said "saved".)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise AlreadyExists(path) from None
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        claim = file_identity(path)
        try:
            os.replace(tmp, path)
        except BaseException as exc:
            if file_identity(path) == claim:  # our empty claim, nothing else's
                os.unlink(path)
            if isinstance(exc, OSError):
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
            raise


def write_in_place(tmp: Path, path: Path, overwrite: bool = False) -> None:
    """Move a finished temporary file to path; without overwrite path must not exist (AlreadyExists
    if it does, the temporary file then left as it is)."""
    _put_in_place(tmp, path, overwrite)
    if os.path.lexists(tmp):  # linked: the temporary name goes
        remove_temporary(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = False,
                       before_rename: Callable[[], None] | None = None) -> Path:
    """Write data to path via a temporary file; without overwrite, an existing path raises StoreError.
    before_rename() runs once the data is on the disk, just before it takes path's name (a failed
    write, a full disk, never reaches it)."""
    path = Path(path)
    tmp = None
    with signals_held():  # a Ctrl-C as the temporary file is made, before tmp names it, left the file
        try:
            tmp = claim_temporary(path)
            write_temporary(tmp, data, path)
            if before_rename is not None:
                before_rename()
            _put_in_place(tmp, path, overwrite)
        finally:
            if tmp is not None:
                remove_temporary(tmp)
    return path


def write_together(files: list[tuple[str | os.PathLike, bytes, bool]]) -> list[Path]:
    """Write (path, data, overwrite) files so that all of them are written or none changes (a label's
    mask and its json: a mask left without its json would count the frame as labeled).

    Every file is written to its temporary file first, so a full disk stops the save before anything
    is replaced. Then they are moved into place in order; if one cannot be (a folder where the file
    should be, a file that appeared meanwhile, an interrupt), those already in place are taken back:
    a new file is removed, a replaced one is restored from a hard link to it kept until the end (a
    link needs no room on the disk; where there are none, from its bytes). A Ctrl-C waits for the
    end (an interrupt as a temporary file was made, before the list held it, left the file)."""
    with signals_held():
        return _write_together(files)


def _write_together(files: list[tuple[str | os.PathLike, bytes, bool]]) -> list[Path]:
    staged = [(Path(path), data, overwrite) for path, data, overwrite in files]
    temporaries: list[Path] = []
    placed: list[tuple[Path, Path | bytes | None]] = []  # (path, what restores it; None: remove it)
    try:
        for path, data, _ in staged:
            temporaries.append(claim_temporary(path))
            write_temporary(temporaries[-1], data, path)
        for (path, _, overwrite), tmp in zip(staged, temporaries):
            old: Path | bytes | None = None
            if overwrite and os.path.lexists(path):
                old = temporary_path(path, f".{os.getpid()}.old")
                try:
                    os.link(path, old)
                except OSError:
                    old = path.read_bytes()
            try:
                _put_in_place(tmp, path, overwrite)
            except BaseException:
                if isinstance(old, Path):
                    remove_temporary(old)
                raise
            placed.append((path, old))
    except BaseException:
        for path, old in reversed(placed):
            try:
                if old is None:
                    os.unlink(path)
                elif isinstance(old, Path):
                    os.replace(old, path)
                else:
                    write_bytes_atomic(path, old, overwrite=True)
            except OSError:
                warnings.warn(f"could not take back {path} after a failed save", stacklevel=2)
        raise
    finally:
        for tmp in temporaries:
            remove_temporary(tmp)
        for _, old in placed:
            if isinstance(old, Path):
                remove_temporary(old)
    return [path for path, _, _ in staged]


def encode_png(image: np.ndarray) -> bytes:
    # An empty image (a source's 0x0 frame, from Python) is this error, not OpenCV's assertion.
    if image.size == 0:
        raise StoreError(f"could not encode an empty image ({'x'.join(map(str, image.shape[1::-1]))}) as PNG")
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise StoreError("could not encode image as PNG")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False) -> Path:
    """Atomically write a PNG (BGR uint8 or single-channel uint8)."""
    return write_bytes_atomic(path, encode_png(image), overwrite=overwrite)


def file_identity(path: str | os.PathLike) -> tuple | None:
    """Which file is at path now (device, inode, size, modification time), None when there is none: a
    file replaced (written anew, deleted and made again) has another."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class OwnFiles:
    """Writes of a run that may write a path again (a re-captured background, a looped frame's mask):
    it replaces a file it wrote itself, but one that appeared there since (another program's) only
    with overwrite (--force); AlreadyExists then. Without this, either every write replaced whatever
    was there, or a second write of the run's own file was refused."""

    def __init__(self, overwrite: bool = False):
        self.overwrite = overwrite
        # hash(path) -> hash(what it was when this run wrote it): two ints an entry, about 150 bytes,
        # where a Path and its identity took over 500 (live --save-masks keeps one per frame: 80 MB an
        # hour at 30 fps). Two paths or files whose 64-bit hashes both meet are not to be met in practice.
        self._written: dict[int, int] = {}

    def write_image(self, path: str | os.PathLike, image: np.ndarray) -> Path:
        path = Path(path)
        key = hash(os.fspath(path))
        found = file_identity(path)
        ours = found is not None and self._written.get(key) == hash(found)
        write_image(path, image, overwrite=self.overwrite or ours)
        self._written[key] = hash(file_identity(path))
        return path


def encode_json(obj) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


def write_json(path: str | os.PathLike, obj, overwrite: bool = False) -> Path:
    return write_bytes_atomic(path, encode_json(obj), overwrite=overwrite)


# ---------------------------------------------------------------- creating sets and frames

def create_set(root: str | os.PathLike) -> tuple[int, Path]:
    """Claim the next free set folder with an exclusive mkdir; returns (number, path)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    number = next_set_number(root)
    while True:
        path = set_path(root, number)
        try:
            path.mkdir()
            return number, path
        except FileExistsError:
            number = max(number + 1, next_set_number(root))


def save_background(root: str | os.PathLike, image: np.ndarray) -> tuple[int, Path]:
    """Create a new set and save image as its bkg.png; returns (set number, bkg path). If the write
    fails (disk full, say) the new folder is removed again: a set without bkg.png stops training and
    the labeler."""
    data = encode_png(image)  # before the mkdir: a kill in its 30 ms left an empty set folder (no temporary file)
    with signals_held():  # a Ctrl-C just after the mkdir left a set folder without bkg.png
        number, path = create_set(root)
        try:
            return number, write_bytes_atomic(path / BKG_NAME, data)
        except BaseException:
            try:
                path.rmdir()  # only while empty: never takes anything else with it
            except OSError:
                pass
            raise


def save_frame(root: str | os.PathLike, number: int, image: np.ndarray) -> tuple[int, Path]:
    """Save image as the next free K.png of set `number`; returns (K, path)."""
    path = set_path(root, number)
    if not path.is_dir():
        raise StoreError(f"set folder not found: {path}")
    k = next_frame_number(path)
    while True:
        try:
            return k, write_image(path / f"{k}.png", image)
        except StoreError:
            if not (path / f"{k}.png").exists():
                raise
            k = max(k + 1, next_frame_number(path))


# ---------------------------------------------------------------- reading and validation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# The ancillary chunks that change what OpenCV decodes: transparency (a mask's alpha) and orientation.
PNG_CHUNKS_USED = (b"tRNS", b"eXIf")


def _png_chunks(buf) -> Iterator[tuple[bytes, int, int]]:
    """(kind, start, end) of each whole chunk of a PNG's bytes after its signature, up to and including
    IEND (anything after it is left alone); stops early at a chunk cut short."""
    at, end = 8, len(buf)
    while at + 12 <= end:
        stop = at + 12 + int.from_bytes(buf[at:at + 4], "big")
        if stop > end:
            return
        kind = bytes(buf[at + 4:at + 8])
        yield kind, at, stop
        if kind == b"IEND":
            return
        at = stop


def _chunk_intact(buf, start: int, end: int) -> bool:
    """Whether a chunk's CRC matches its type and data."""
    return zlib.crc32(buf[start + 4:end - 4]) == int.from_bytes(buf[end - 4:end], "big")


def _chunk_sound(kind: bytes, body, colour_type: int | None, palette: int | None) -> bool:
    """Whether a tRNS or eXIf chunk is one libpng takes: eXIf starting with a TIFF byte order (some
    writers put "Exif\\0\\0" before it), tRNS of the length its image's colour type calls for (2 bytes
    for grey, 6 for RGB, a byte for each palette entry at most, after the palette; none with an alpha
    channel)."""
    if kind == b"eXIf":
        return bytes(body[:4]) in (b"MM\x00*", b"II*\x00")
    if colour_type == 0:
        return len(body) == 2
    if colour_type == 2:
        return len(body) == 6
    if colour_type == 3:
        return palette is not None and 0 < len(body) <= palette
    return False


def _png_checked(data: np.ndarray) -> np.ndarray | None:
    """The PNG's bytes when every chunk is whole up to IEND and the critical ones (IHDR, PLTE, IDAT;
    those libpng stops at) match their checksums, else None. Other ancillary chunks than
    PNG_CHUNKS_USED (colour profiles, gamma, text, ...; OpenCV applies none of them) are left out, as
    is one with a wrong checksum: libpng checks them and prints a warning for every read of a file
    with an odd one ("iCCP: known incorrect sRGB profile", common in edited images). A PNG cut short
    (a copy or download cut off) or with damaged data is then named without handing it to the
    decoder, whose libpng prints its own line ("PNG input buffer is incomplete", "bad adaptive filter
    value") past any log setting. zlib's CRC costs about 0.3 ms for a 640x480 frame's 500 kB."""
    buf = memoryview(data)
    dropped = []
    colour_type, palette, used = None, None, set()
    for kind, start, end in _png_chunks(buf):
        ancillary = kind[0] & 0x20  # a lower-case first letter
        body = buf[start + 8:end - 4]
        if not _chunk_intact(buf, start, end):
            if not ancillary:
                return None
            dropped.append((start, end))
        elif ancillary and (kind not in PNG_CHUNKS_USED or kind in used
                            or not _chunk_sound(kind, body, colour_type, palette)):
            # (one that libpng would refuse, with a warning of its own: "eXIf: incorrect byte-order
            # specifier", "tRNS: invalid", a second one "duplicate")
            dropped.append((start, end))
        elif ancillary:
            used.add(kind)
        if kind == b"IHDR" and len(body) == 13:
            colour_type = body[9]
        elif kind == b"PLTE":
            palette = len(body) // 3
        if kind == b"IEND":
            if not dropped:
                return data
            keep, last = [], 0
            for a, b in dropped:
                keep.append(data[last:a])
                last = b
            return np.concatenate(keep + [data[last:]])
    return None


def decode_image(data: np.ndarray, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """cv2.imdecode of a file's bytes; None for an empty file or a corrupt one (a PNG is checked
    first, `_png_checked`). With the default flags the image is BGR uint8: a 16-bit image holding
    values up to 255 (8-bit data saved in 16 bits) keeps those values, where OpenCV would keep the
    top 8 bits and make it black; one whose values stay under 4096 (a 10- or 12-bit camera's) is read
    as 12-bit data, where OpenCV would leave it near black (a scale per image, from its brightest
    value, read one camera's background and frames at brightnesses up to 4 times apart; a 12-bit
    frame dark enough to stay under 256 is still taken for 8-bit data); a 16-bit image using more of
    its range is scaled down as OpenCV does."""
    if not data.size:
        return None
    if data[:8].tobytes() == PNG_SIGNATURE:
        data = _png_checked(data)
        if data is None:
            return None
    if flags != cv2.IMREAD_COLOR:
        return _imdecode(data, flags)
    image = _imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None or image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f":
        return _float_to_8bit(image)
    if image.dtype == np.uint16:
        top = int(image.max())
        if top <= 255:
            return image.astype(np.uint8)
        if top < 4096:  # a 10- or 12-bit camera's values: OpenCV's top 8 bits would be 0..3 or 0..15
            return cv2.convertScaleAbs(image, alpha=1 / 16)  # one scale for both: a camera's frames
    return _imdecode(data, cv2.IMREAD_COLOR)                     # and background read alike


def _float_to_8bit(image: np.ndarray) -> np.ndarray:
    """A floating-point image (a float TIFF) as 8 bits: 0..1 data (its brightest value at most 1.5, as
    LogLuv-compressed files overshoot 1 a little) scaled by 255, other values taken as 0..255; clipped.
    (OpenCV's own conversion had put 0..1 data through a tone curve, 10 read as 46 and 128 as 163,
    and made 0..255 data white.)"""
    image = np.nan_to_num(image, nan=0.0, posinf=255.0, neginf=0.0)
    scale = 255.0 if not image.size or float(image.max()) <= 1.5 else 1.0
    return np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)


def _imdecode(data: np.ndarray, flags: int) -> np.ndarray | None:
    """cv2.imdecode, None where OpenCV raises: a header stating more than 2**30 pixels (a JPEG whose
    size bytes are damaged, a PNG claiming 40000x30000 in 118 bytes) is an assertion error there."""
    try:
        return cv2.imdecode(data, flags)
    except cv2.error as exc:
        if out_of_memory(exc):  # a good file too large for this machine: not "corrupt"
            raise MemoryError(f"{exc}".strip().splitlines()[-1]) from None
        return None


def check_bgr(image, what: str) -> None:
    """HumansegError unless image is what every tool reads: an HxWx3 BGR uint8 array (for callers of the
    library, whose float, 16-bit or grey arrays failed deep in OpenCV or gave silently wrong answers)."""
    if (not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8
            or image.size == 0):  # 0x0 divided by zero in PoseNet's input size
        got = (f"{image.dtype} {'x'.join(map(str, image.shape))}" if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise HumansegError(f"{what} must be a colour image, HxWx3 BGR uint8 (got {got})")


class ImageTooLarge(StoreError):
    """An image that decoding ran out of memory on: one too large for this machine, or a header
    damaged to claim a huge size. A runtime failure (exit 1), named; the labeler passes it over."""

    exit_code = 1


def _decoded(data: np.ndarray, path, what: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """decode_image, its running out of memory said as ImageTooLarge naming the file."""
    try:
        return decode_image(data, flags)
    except MemoryError:
        raise ImageTooLarge(f"{what} too large to decode in this machine's memory (or its header is "
                            f"damaged): {path}") from None


def decode_file(path: str | os.PathLike, what: str = "image") -> np.ndarray | None:
    """A BGR uint8 image from a file (`decode_image`); None when it cannot be read (gone, a folder, not
    ours to read) or decoded; ImageTooLarge when memory ran out decoding it."""
    if not os.path.isfile(path):  # a named pipe: reading it waited for a writer, for ever
        return None
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    return _decoded(data, path, what)


def not_a_file(path: Path) -> str:
    """Why path, which is not a file, cannot be read, as a line says it: "missing", "is a link to
    nothing", "is a symlink loop" (both were "missing", though a name is there), "is not a file"."""
    if not os.path.lexists(path):
        return "missing"
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as exc:
            return "is a symlink loop" if exc.errno == errno.ELOOP else "is a link to nothing"
    return "is not a file"


def _file_bytes(path: Path, what: str) -> np.ndarray:
    """A file's bytes; StoreError naming it where the system refuses them (not ours to read, an I/O
    error), so every tool passes it over or says so as it does a corrupt one."""
    try:
        return np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise StoreError(f"{what} unreadable ({exc.strerror or exc}): {path}") from None


def read_image(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Read a BGR uint8 image; StoreError names the file if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{what} {not_a_file(path)}: {path}")
    data = _file_bytes(path, what)
    image = _decoded(data, path, what)
    if image is None:
        raise StoreError(f"{what} unreadable or corrupt: {path}")
    return image


def exif_orientation(data: np.ndarray) -> int:
    """The EXIF orientation (1..8; 1 when none) of a PNG's eXIf chunk or a JPEG's Exif segment: what
    OpenCV applies to an image read in colour and ignores with IMREAD_UNCHANGED (a mask)."""
    raw = data.tobytes()
    tiff = b""
    if raw[:8] == PNG_SIGNATURE:
        # Before or after the image data, as libpng reads it; one failing its checksum is left out
        # for the frame too (_png_checked).
        tiff = next((raw[start + 8:end - 4] for kind, start, end in _png_chunks(raw)
                     if kind == b"eXIf" and _chunk_intact(raw, start, end)), b"")
    elif raw[:2] == b"\xff\xd8":
        at = 2
        while at + 4 <= len(raw) and raw[at] == 0xFF and raw[at + 1] not in (0xD9, 0xDA):
            length = int.from_bytes(raw[at + 2:at + 4], "big")
            if raw[at + 1] == 0xE1 and raw[at + 4:at + 10] == b"Exif\0\0":
                tiff = raw[at + 10:at + 2 + length]
                break
            at += 2 + length
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8 or int.from_bytes(tiff[2:4], order) != 42:  # (TIFF's number)
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd:ifd + 2], order) if ifd + 2 <= len(tiff) else 0
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[entry:entry + 2], order) == 0x0112:  # Orientation, a SHORT
            value = int.from_bytes(tiff[entry + 8:entry + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """image turned as EXIF orientation says (as OpenCV turns a colour image it reads)."""
    if orientation in (5, 6, 7, 8):
        image = cv2.transpose(image)
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    return image if flip is None else cv2.flip(image, flip)


_warned_binarize: set[tuple[str, str]] = set()


def _with_alpha(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A mask with an alpha channel as what shows: a pixel that is not there (transparent) is never
    person. Where the alpha varies, the label is the alpha, unless the colour of the opaque part is a
    mask itself (0 and one other value for the most part): then that colour, there alone. So
    a one-colour image on transparency (black or white, or a black person on transparent white) and a
    cut-out (the person's own picture, as background removers write) are their opaque part, and a
    black-and-white mask with transparent bits its white part. (Until the fifty-ninth day the colour
    decided unless it was one value everywhere: a cut-out's dark clothes were left out, and a black
    person on transparent white was read inverted.) Where the alpha is one value, the colour, or
    nothing where it is all transparent."""
    if alpha.min() == alpha.max():
        return colour if alpha.any() else alpha
    full = np.iinfo(alpha.dtype).max
    opaque = alpha >= (int(full) + 1) // 2
    inside = colour[opaque]
    top = inside.max() if inside.size else 0
    # (0 and its brightest value: 0/255, 0/1 or a class number, 8-bit values in 16 bits)
    if inside.size and inside.min() != top and np.isin(inside, (0, top)).mean() >= 0.9:
        return np.where(opaque, colour, 0).astype(colour.dtype)
    return alpha


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as uint8 0/255 of the given (H, W). A mask of two values, 0 and one other (0/1 as
    some tools write, a class number), counts the other as person; values other than that are
    binarized at 128; both with one warning per folder."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"mask {not_a_file(path)}: {path}")
    data = _file_bytes(path, "mask")
    mask = _decoded(data, path, "mask", cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise StoreError(f"mask unreadable or corrupt: {path}")
    # Turned as its frame is: OpenCV applies an EXIF orientation to frames (read in colour), not to
    # what it reads unchanged (a mask marked 180 degrees as its frame was read the other way up).
    mask = orient(mask, exif_orientation(data))
    if mask.dtype.kind == "f":  # a float TIFF: 0..1 (a 0..1 mask was read as empty) or 0..255
        mask = _float_to_8bit(mask)
    if mask.ndim == 3:
        # A colour mask (the original tool's are grey): any colour counts, so a person painted red
        # (0, 0, 255) is not read as empty from its blue channel.
        colour = mask[..., :3].max(axis=2)
        if mask.shape[2] == 4:
            colour = _with_alpha(colour, mask[..., 3])
        mask = colour
    if mask.dtype != np.uint8:
        # 16 bit: values up to 255 are 8-bit data saved in 16 bits (read as such, below); 0 and one
        # other value (0/65535, 0/1000), or that value alone, is person where not 0; other values are
        # scaled to 8 bits as frames are (under 4096: 12-bit data) and binarized below, with its
        # warning (soft edges were cut at half of 65535 without a word, and a 12-bit mask came out
        # empty; a mask of 1000 alone was scaled to 62 and warned of as 0/62).
        values = np.unique(mask)
        if values[-1] <= 255:
            mask = mask.astype(np.uint8)
        elif len(values) == 1 or len(values) == 2 and values[0] == 0:
            mask = (mask > 0).astype(np.uint8) * 255
        else:
            scale = 16 if values[-1] < 4096 else 257
            mask = np.minimum(np.rint(mask / scale), 255).astype(np.uint8)
    if shape is not None and mask.shape[:2] != tuple(shape[:2]):
        raise StoreError(
            f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its frame "
            f"{shape[1]}x{shape[0]}: {path}"
        )
    if cv2.countNonZero(cv2.inRange(mask, 1, 254)):  # (np.isin took 13 bytes a pixel for a moment)
        levels = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)[1:]) + 1
        two = len(levels) == 1  # 0 and one other value: 0/1, 0/15 (a class number), 0/200
        if two:
            how = f"0/{levels[0]} values, read as 0/255"
            mask = np.where(mask > 0, 255, 0).astype(np.uint8)
        else:
            how = "values other than 0/255, binarized at 128"
            mask = np.where(mask >= 128, 255, 0).astype(np.uint8)
            if not mask.any():
                how += " (none reaches 128: read as empty)"
        key = (str(path.parent), how)  # once per folder and kind
        if key not in _warned_binarize:
            _warned_binarize.add(key)
            warnings.warn(f"mask has {how}: {path}", stacklevel=2)
    return mask


def read_background(info: SetInfo) -> np.ndarray:
    return read_image(info.bkg_path, "background")


def read_frame(info: SetInfo, k: int, bkg_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read frame K of a set, checking it has the background's size."""
    frame = read_image(info.frame_path(k), "frame")
    if bkg_shape is not None and frame.shape[:2] != tuple(bkg_shape[:2]):
        raise StoreError(
            f"frame size {frame.shape[1]}x{frame.shape[0]} differs from bkg.png "
            f"{bkg_shape[1]}x{bkg_shape[0]}: {info.frame_path(k)}"
        )
    return frame


@dataclass
class Sample:
    """One labeled frame with its background: BGR uint8 HxWx3 and mask uint8 HxW (0/255)."""

    set_number: int
    index: int
    frame: np.ndarray
    background: np.ndarray
    mask: np.ndarray
    path: Path


def labeled_sets(root: str | os.PathLike, sets: list[int] | None = None) -> list[SetInfo]:
    """The chosen sets (all by default) that hold labeled frames, as listed; nothing decoded yet."""
    numbers = list_sets(root) if sets is None else sets
    return [info for info in (scan_set(root, n) for n in numbers) if info.labeled]


def read_labeled(infos: list[SetInfo]) -> Iterator[Sample]:
    """The labeled frames of these sets, validated, read one at a time (a caller that keeps less of
    each holds no more than one set's background and one frame at full size)."""
    for info in infos:
        bkg = read_background(info)
        for k in info.labeled:
            frame = read_frame(info, k, bkg.shape)
            mask = read_mask(info.mask_path(k), frame.shape)
            yield Sample(info.number, k, frame, bkg, mask, info.frame_path(k))
            frame = mask = None  # (not held while the next is decoded)
