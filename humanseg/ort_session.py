"""Run a PyTorch module in ONNX Runtime on CPU: export it in memory, open an inference session.

Used by the segmentation network and by PoseNet, whose small depthwise convolutions ONNX Runtime
runs about twice as fast as eager PyTorch on CPU. Raises whatever export or onnxruntime raises
(ImportError when it is not installed); callers fall back to PyTorch.

Exporting takes a second or two at every start (most of it importing the `onnx` package), so each
exported graph is kept in a cache folder (`graph_cache_dir`) under a key that covers everything the
export depends on: the module's weights and settings, the project's own source, the export's
arguments and torch's version. A graph that cannot be read there is exported again; a cache that
cannot be written is left alone.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import warnings
from pathlib import Path

import torch

OPSET = 17
CACHE_ENV = "HUMANSEG_ONNX_CACHE"
CACHE_KEEP = 12  # graphs kept; beyond that the least recently used go


def graph_cache_dir() -> Path | None:
    """$HUMANSEG_ONNX_CACHE ("off": no cache), else the cache folder PoseNet's weights go in (see
    `humanseg.pose.weights.cache_base`) + /onnx; None for none."""
    given = os.environ.get(CACHE_ENV)
    if given is not None and given.strip():
        return None if given.strip().lower() == "off" else Path(given).expanduser()
    from humanseg.pose.weights import cache_base

    base = cache_base()
    return base / "onnx" if base is not None else None


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """A hash of the package's Python source: a graph exported by other code is not reused."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def graph_key(module: torch.nn.Module, example: tuple, input_names: list[str], output_names: list[str],
              dynamic_axes: dict) -> str:
    """What the exported graph follows from: torch's version, the export's arguments, the package's
    source, every submodule's class and plain settings, and every parameter and buffer."""
    h = hashlib.sha256()

    def add(*parts) -> None:
        for part in parts:
            h.update(repr(part).encode() + b"\0")

    add(torch.__version__, OPSET, input_names, output_names, sorted(dynamic_axes.items()), source_digest(),
        [(tuple(t.shape), str(t.dtype)) for t in example])
    for name, sub in module.named_modules():
        settings = sorted((k, repr(v)) for k, v in vars(sub).items()
                          if not k.startswith("_") and not isinstance(v, (torch.Tensor, torch.nn.Module)))
        add(name, type(sub).__module__, type(sub).__qualname__, settings)
    for name, t in module.state_dict().items():
        t = t.detach().cpu()
        add(name, str(t.dtype), tuple(t.shape), t.is_contiguous(memory_format=torch.channels_last)
            if t.dim() == 4 else None)
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())  # (C order, any strides)
    return h.hexdigest()[:32]


def _export(module, example, input_names, output_names, dynamic_axes) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def _keep(path: Path, graph: bytes) -> None:
    """Write the graph into the cache (atomically) and drop the least recently used beyond CACHE_KEEP;
    any failure (a folder that cannot be written, a full disk) leaves the cache as it was."""
    from humanseg.store import write_bytes_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, graph, overwrite=True)
        kept = sorted(path.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[CACHE_KEEP:]:
            old.unlink()
    except Exception:  # (write_bytes_atomic says an OSError as its own error)
        pass


def session_from_module(module: torch.nn.Module, example: tuple, input_names: list[str],
                        output_names: list[str], dynamic_axes: dict, threads: int, cache: bool = True):
    """An onnxruntime.InferenceSession running `module` (traced on `example`) with `threads` threads.
    cache: take the graph from the cache folder when it is there, and keep it there when it is not
    (False for a module whose weights are about to change, as in training's validation)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    path = None
    try:  # (no cache rather than no session: an unreadable source file, an unknown ~user)
        folder = graph_cache_dir() if cache else None
        if folder is not None:
            path = folder / f"{graph_key(module, example, input_names, output_names, dynamic_axes)}.onnx"
    except Exception:
        path = None
    if path is not None and path.is_file():
        try:
            graph = path.read_bytes()
            session = ort.InferenceSession(graph, options, providers=providers)
        except Exception:  # damaged or unreadable: exported again below, and replaced
            pass
        else:
            try:
                os.utime(path)  # recently used
            except OSError:
                pass
            return session
    graph = _export(module, example, input_names, output_names, dynamic_axes)
    session = ort.InferenceSession(graph, options, providers=providers)
    if path is not None:
        _keep(path, graph)
    return session
