"""Errors the tool reports to users as one line (never a traceback)."""

import os
import warnings
import zipfile


class HumansegError(Exception):
    """A user-facing failure; the message names the file or option at fault.

    exit_code follows the CLI convention: 2 bad usage or bad input, 1 a runtime failure.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class StoreError(HumansegError):
    """Something wrong with the images/setN/ layout or one of its files."""


class AlreadyExists(StoreError):
    """A write that may not replace a file found the file there (`path`)."""

    def __init__(self, path):
        super().__init__(f"refusing to overwrite existing file: {path}")
        self.path = path


class WeightsError(HumansegError):
    """Weights missing, corrupt, or not fitting the model."""


class WeightsNotFound(WeightsError):
    """No weights where they are looked for; the message already says where to put them."""


def plural(n: int, word: str) -> str:
    """'1 frame', '2 frames': a count as messages say it."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def reason(exc: BaseException) -> str:
    """An error in the tool's words: "PATH: what went wrong" for an OSError that names its file
    (Python's own reads "[Errno 28] No space left on device: 'PATH'"), else its message."""
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return str(exc)


def load_tensors(path):
    """torch.load(path) on the CPU, tensors and plain data only (no code in the file runs). Quietly:
    a file pickled with protocol 4 or 5 printed two lines of torch's warning before the one-line error."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def refused_on_the_way(path) -> str | None:
    """The system's words ("Permission denied") where it will not look at path at all: a folder on
    the way that may not be entered, where is_file() raised PermissionError (a runtime failure, exit
    1, naming no weights) and exists() said nothing is there. None otherwise."""
    try:
        os.stat(path)
    except PermissionError as exc:
        return exc.strerror
    except (OSError, ValueError):
        pass
    return None


def _pickle_protocol(path, head: bytes) -> int | None:
    """The pickle protocol of a plain pickle file, or of a PyTorch archive's data.pkl; None if neither."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                head = archive.open(name).read(2) if name else b""
    except Exception:  # a damaged archive: said as that below
        return None
    return head[1] if len(head) >= 2 and head[0] == 0x80 else None


def torch_load_failure(path, exc: Exception) -> str:
    """Why torch.load(path, weights_only=True) failed, in a few words a user can act on."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        return f"cannot read it: {err.strerror}"
    if _pickle_protocol(path, head) in (4, 5):  # (tensors alone were said to be Python objects)
        return ("pickled with a protocol PyTorch's safe loader cannot read; save it with torch.save's "
                "default protocol")
    objects = "Weights only load failed" in str(exc)
    if zipfile.is_zipfile(path):
        return "holds Python objects, not only tensors" if objects else "a damaged PyTorch archive"
    if head == b"PK\x03\x04":
        return "a truncated PyTorch archive"
    if head[:1] == b"\x80" and objects:  # an old-style (pickle) PyTorch file
        return "holds Python objects, not only tensors"
    return "not a PyTorch weights file"


def damaged_zip_member(path) -> str | None:
    """The first member of a zip checkpoint (PyTorch's format) whose CRC fails, else None (not a zip:
    None). torch.load does not check them: flipped bytes load, in silence, as other weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None
    except Exception:  # zipfile raises others on damaged headers (struct.error, ...): damaged
        return "its directory"


def out_of_memory(exc: BaseException) -> bool:
    """True for a failed allocation: numpy's MemoryError; PyTorch's "can't allocate memory" on CPU
    and its OutOfMemoryError on a GPU (RuntimeErrors); OpenCV's "Insufficient memory"; a data loader
    worker's MemoryError, or a machine out of memory mapping the worker's batch, as the RuntimeError
    the loader raises."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    if type(exc).__name__ == "error" and "Insufficient memory" in text:  # OpenCV's (cv2.error)
        return True
    # ("could not create a primitive": oneDNN's convolution that found no memory for its workspace; a
    # training step under a memory limit ended in its traceback.)
    return isinstance(exc, RuntimeError) and any(
        words in text for words in ("can't allocate memory", "out of memory", "Unable to allocate",
                                    "Cannot allocate memory", "could not create a primitive"))
