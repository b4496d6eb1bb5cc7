"""Find, download, convert, cache and check PoseNet weights.

Lookup order: an explicit path (`--posenet-weights`), the HUMANSEG_POSENET_WEIGHTS environment
variable, the cache folder, then Google's TF.js checkpoint (manifest.json plus one raw little-endian
float32 file per variable) converted to a state dict and written atomically to the cache.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import math
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch

from humanseg.errors import (WeightsError, WeightsNotFound, damaged_zip_member, load_tensors, refused_on_the_way,
                             torch_load_failure)
from humanseg.pose.mobilenet import MODEL_IDS, PoseNetMobileNetV1, checkpoint_name
from humanseg.store import not_a_file, write_bytes_atomic

WEIGHTS_ENV = "HUMANSEG_POSENET_WEIGHTS"
URL_ENV = "HUMANSEG_POSENET_URL"
CACHE_ENV = "HUMANSEG_CACHE"
DEFAULT_BASE_URL = "https://storage.googleapis.com/tfjs-models/weights/posenet/"
HEADS = ("heatmap", "offset", "displacement_fwd", "displacement_bwd")
_CHUNK = 1 << 16


def cache_base() -> Path | None:
    """The project's cache folder: $HUMANSEG_CACHE, else $XDG_CACHE_HOME/humanseg, else
    ~/.cache/humanseg; None without a home folder (no $HOME and no passwd entry: a container's
    arbitrary user id, env -i)."""
    if os.environ.get(CACHE_ENV):  # ~ expanded (quoted, it made a folder named "~" here)
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # a relative one is to be ignored (XDG base directory spec)
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            return None
    return Path(base) / "humanseg"


def cache_dir() -> Path:
    """Folder holding cached weights: cache_base()/posenet (~/.cache/humanseg/posenet)."""
    base = cache_base()
    if base is None:
        raise WeightsNotFound(f"no home folder to keep the PoseNet weights cache in: set ${CACHE_ENV} to a "
                              f"folder, or give the weights file (--posenet-weights PATH where the command "
                              f"has it, else ${WEIGHTS_ENV}=PATH)")
    return base / "posenet"


def weights_hint(weights: str | os.PathLike | None = None) -> str:
    """How to get PoseNet weights, in one clause, for a line saying the weights could not be used.
    Where $HUMANSEG_POSENET_WEIGHTS gave the file (no --posenet-weights), the variable is what to
    mend: it is looked up before the cache, so weights put there would not have been read."""
    try:
        if weights is None and os.environ.get(WEIGHTS_ENV):
            return (f"fix {WEIGHTS_ENV} or unset it (then {cache_dir()} or a download is used), or pass "
                    f"--posenet-weights PATH")
        where = f"put mobilenet_v1_050.pth in {cache_dir()}"
    except Exception:  # the hint must never hide the real error (no home folder, say)
        where = "put mobilenet_v1_050.pth in the PoseNet cache"
    return f"to get weights, {where} or pass --posenet-weights PATH"


def cached_path(model_id: int) -> Path:
    """Where the converted weights of a model id live in the cache."""
    return cache_dir() / f"{checkpoint_name(model_id)}.pth"


def base_url() -> str:
    """Base URL of the TF.js checkpoints (HUMANSEG_POSENET_URL overrides Google's), ending in '/'."""
    url = os.environ.get(URL_ENV) or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


# --- converting a TF.js checkpoint ------------------------------------------------------------

def _tfjs_to_torch_name(name: str) -> tuple[str, str] | None:
    """(state dict key, kind) for a TF.js variable name; kind says how to lay the tensor out."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "MobilenetV1":
        return None
    layer, var = parts[1], parts[2]
    suffix = {"weights": "weight", "depthwise_weights": "weight", "biases": "bias"}.get(var)
    if suffix is None:
        return None
    if layer == "Conv2d_0":
        return f"features.conv0.conv.{suffix}", "conv" if suffix == "weight" else "bias"
    for head in HEADS:
        if layer == f"{head}_2":
            return f"{head}.{suffix}", "conv" if suffix == "weight" else "bias"
    if layer.startswith("Conv2d_"):
        index, _, kind = layer[len("Conv2d_"):].partition("_")
        if index.isdigit() and kind in ("depthwise", "pointwise"):
            if kind == "depthwise" and var == "depthwise_weights":
                layout = "depthwise"
            else:
                layout = "conv" if suffix == "weight" else "bias"
            return f"features.conv{int(index)}.{kind}.{suffix}", layout
    return None


def tfjs_to_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """State dict from TF.js variables: conv kernels (kh, kw, in, out) -> (out, in, kh, kw),
    depthwise kernels (kh, kw, in, mult) -> (in * mult, 1, kh, kw); unknown variables are skipped."""
    state = {}
    for name, array in variables.items():
        mapped = _tfjs_to_torch_name(name)
        if mapped is None:
            continue
        key, layout = mapped
        array = np.asarray(array, dtype=np.float32)
        if layout == "conv":
            array = array.transpose(3, 2, 0, 1)
        elif layout == "depthwise":
            kh, kw, cin, mult = array.shape
            array = array.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        state[key] = torch.from_numpy(np.array(array, dtype=np.float32, order="C"))
    return state


def _read_url(url: str, progress=None) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        chunks = []
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            if progress is not None:
                progress.update(len(chunk))
    data = b"".join(chunks)
    # Google's bucket has served these files gzip-encoded without saying so. Raw float32 data can start
    # with gzip's two magic bytes too (0.0314 does): what does not decompress is taken as it came.
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            pass
    return data


def download_tfjs_checkpoint(model_id: int, url: str | None = None,
                             show_progress: bool = True) -> dict[str, torch.Tensor]:
    """Download the TF.js checkpoint of a model id and convert it to a state dict."""
    from tqdm import tqdm

    folder = (url or base_url()) + checkpoint_name(model_id) + "/"
    try:
        manifest = json.loads(_read_url(folder + "manifest.json"))
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:  # (InvalidURL)
        raise _missing_error(model_id, f"download of {folder}manifest.json failed: {_reason(exc)}") from None
    if not isinstance(manifest, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("filename"), str) and isinstance(v.get("shape"), list)
            and all(type(s) is int and 0 <= s <= 1 << 20 for s in v["shape"]) for v in manifest.values()):
        # (a shape of strings was a numpy traceback; a negative one "68 bytes, expected -68")
        raise WeightsError(f"{folder}manifest.json: not a TF.js checkpoint manifest", exit_code=1)
    wanted = {name: spec for name, spec in manifest.items() if _tfjs_to_torch_name(name)}
    if not all(math.prod(spec["shape"]) <= 1 << 24 and (len(spec["shape"]) == 4 or _tfjs_to_torch_name(name)[1]
                                                         not in ("conv", "depthwise"))
               for name, spec in wanted.items()):
        # (a kernel of another rank was a numpy traceback; np.prod of huge sides overflowed to 0)
        raise WeightsError(f"{folder}manifest.json: not a PoseNet MobileNetV1 checkpoint (a kernel is not "
                           f"4-dimensional, or too large)", exit_code=1)
    total = sum(4 * int(np.prod(spec["shape"])) for spec in wanted.values())
    variables = {}
    with tqdm(total=total, unit="B", unit_scale=True, desc=f"PoseNet {checkpoint_name(model_id)}",
              disable=not show_progress, leave=False) as bar:
        for name, spec in wanted.items():
            file_url = folder + str(spec["filename"])
            try:
                data = _read_url(file_url, bar)
            except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
                raise _missing_error(model_id, f"download of {file_url} failed: {_reason(exc)}") from None
            shape = tuple(int(s) for s in spec["shape"])
            if len(data) != 4 * int(np.prod(shape)):
                raise WeightsError(f"{file_url}: {len(data)} bytes, expected {4 * int(np.prod(shape))} "
                                   f"for shape {list(shape)}", exit_code=1)
            variables[name] = np.frombuffer(data, dtype="<f4").reshape(shape)
    return tfjs_to_state_dict(variables)


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    return str(getattr(exc, "reason", None) or exc)


def _missing_error(model_id: int, why: str) -> WeightsNotFound:
    error = WeightsNotFound(
        f"no PoseNet weights for model {model_id}: put {checkpoint_name(model_id)}.pth in {cache_dir()} "
        f"or pass --posenet-weights PATH ({why})")  # exit 2, a missing input, in every command
    error.why = why  # for a command without --posenet-weights to say it its own way
    return error


def save_atomic(state: dict[str, torch.Tensor], path: Path) -> None:
    """torch.save to `path` through a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(path, buf.getvalue(), overwrite=True)


# --- lookup and checking ----------------------------------------------------------------------

def _not_a_file(path: Path) -> str:
    if path.is_dir():
        return "a folder, not a weights file (.pth)"
    why = not_a_file(path)  # (a link to nothing, or a symlink loop, was "no such file")
    return "no such file" if why == "missing" else why.removeprefix("is ")


def resolve_weights(weights: str | os.PathLike | None, model_id: int, show_progress: bool = True) -> Path:
    """Path of usable weights for a model id, downloading into the cache when nothing local exists."""
    if model_id not in MODEL_IDS:
        raise WeightsError(f"PoseNet model id must be one of {', '.join(map(str, MODEL_IDS))}, got {model_id}")
    if weights is not None:
        if str(weights) == "":  # an unset shell variable: Path("") is the current folder
            raise WeightsError("--posenet-weights is empty: name a weights file (.pth)")
        path = Path(weights)
        refused = refused_on_the_way(path)
        if refused:  # a folder on the way that may not be entered (is_file() raised: exit 1)
            raise WeightsError(f"--posenet-weights {path}: cannot read it ({refused})")
        if not path.is_file():
            raise WeightsError(f"--posenet-weights {path}: {_not_a_file(path)}")
        return path
    if os.environ.get(WEIGHTS_ENV):
        path = Path(os.path.expanduser(os.environ[WEIGHTS_ENV]))  # ~ expanded, as in HUMANSEG_CACHE (quoted)
        if os.environ[WEIGHTS_ENV].endswith(os.sep) and os.environ[WEIGHTS_ENV].strip(os.sep):
            raise WeightsError(f"{WEIGHTS_ENV}={os.environ[WEIGHTS_ENV]}: names a folder (it ends in "
                               f"{os.sep}); name a weights file (.pth)")  # (pathlib drops it: w.pth/ read w.pth)
        refused = refused_on_the_way(path)
        if refused:
            raise WeightsError(f"{WEIGHTS_ENV}={path}: cannot read it ({refused})")
        if not path.is_file():
            raise WeightsError(f"{WEIGHTS_ENV}={path}: {_not_a_file(path)}")
        return path
    path = cached_path(model_id)
    if path.is_file():
        return path
    state = download_tfjs_checkpoint(model_id, show_progress=show_progress)
    check_state_dict(state, model_id, source=f"{base_url()}{checkpoint_name(model_id)}/")
    try:
        save_atomic(state, path)
    except OSError as exc:
        raise WeightsError(f"cannot write PoseNet weights to {path}: {exc.strerror or exc}", exit_code=1) from None
    return path


def _model_id_of(state: dict) -> int | None:
    """Model id whose first layer width matches the state dict (None if unknown)."""
    weight = state.get("features.conv0.conv.weight")
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        return None
    return {16: 50, 24: 75, 32: 100}.get(int(weight.shape[0]))


def check_state_dict(state, model_id: int, source: str) -> None:
    """Raise WeightsError (one line naming `source`) unless `state` fits the network of model_id."""
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"{source}: not a PoseNet state dict (expected a dict of tensors)")
    expected = PoseNetMobileNetV1(model_id).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        found = _model_id_of(state)
        hint = f"; it looks like model {found}" if found and found != model_id else ""
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise WeightsError(f"{source}: not a PoseNet MobileNetV1 model {model_id} state dict ({detail}, "
                           f"{len(missing)} missing, {len(unexpected)} unexpected{hint})")
    for key, tensor in expected.items():
        value = state[key]
        # An integer, bool or complex copy loaded silently and found nobody; a float8, sparse, meta or
        # quantized one was a traceback. Weights are dense float tensors.
        if (value.layout != torch.strided or value.is_meta or value.is_quantized
                or value.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64)):
            raise WeightsError(f"{source}: {key} is a {str(value.dtype).removeprefix('torch.')} tensor "
                               f"({value.layout}), not dense float weights")
        if tuple(state[key].shape) != tuple(tensor.shape):
            found = _model_id_of(state)
            what = f"holds model {found} weights, not model {model_id}" if found and found != model_id \
                else "does not fit"
            raise WeightsError(f"{source}: {what} ({key} is {list(state[key].shape)}, "
                               f"expected {list(tensor.shape)})")
    broken = [k for k in expected if state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if broken:  # found nobody in every image, in silence
        raise WeightsError(f"{source}: PoseNet weights hold NaN or infinite values ({len(broken)} tensor(s), "
                           f"e.g. {broken[0]})")


def load_state_dict(path: Path, model_id: int) -> dict[str, torch.Tensor]:
    """Read and check a weights file; every failure is one line naming the file."""
    try:
        state = load_tensors(path)
    except Exception as exc:  # torch raises many types for truncated or foreign files; say what it means
        raise WeightsError(f"{path}: cannot load PoseNet weights ({torch_load_failure(path, exc)})") from None
    damaged = damaged_zip_member(path)
    if damaged:  # torch.load does not check the archive's checksums: flipped bytes loaded, in silence
        raise WeightsError(f"{path}: cannot load PoseNet weights (a damaged PyTorch archive: {damaged} fails "
                           f"its checksum)")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    check_state_dict(state, model_id, source=str(path))
    return state


def load_network(weights: str | os.PathLike | None = None, model_id: int = 50, output_stride: int = 16,
                 show_progress: bool = True) -> PoseNetMobileNetV1:
    """PoseNet in eval mode with weights found by the lookup order above."""
    path = resolve_weights(weights, model_id, show_progress=show_progress)
    state = load_state_dict(path, model_id)
    network = PoseNetMobileNetV1(model_id, output_stride)
    network.load_state_dict(state, strict=True)
    return network.eval()

