"""The training job: augmented samples -> siamese network, validated on held-out whole sets.

Runs as a plain process or under `torchrun` (DistributedDataParallel; only rank 0 writes files).
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import math
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from humanseg import metrics, store
from humanseg.data.dataset import (Pair, TrainingSet, for_training, load_pairs, load_rooms, set_places, shrunk,
                                    split_sets)
from humanseg.errors import HumansegError, WeightsError, out_of_memory, plural
from humanseg.model.checkpoint import DEFAULT_WEIGHTS, load_model, read_checkpoint, save_checkpoint
from humanseg.model.network import ARCHS, SiameseSegNet, count_parameters, with_refine_kernel
from humanseg.model.segmenter import Segmenter
from humanseg.signals import STOPS, OutputGuard, StopSignals, Terminated, child_ends_ignored
from humanseg.sources import natural_key


# The loss's boundary term: cross-entropy weight 1 + GAIN within WIDTH px of the true outline.
BOUNDARY_WIDTH, BOUNDARY_GAIN = 5, 2.0


@dataclass
class TrainConfig:
    images: list[str]
    iterations: int = 1000
    batch: int = 2
    out: str = "weights"
    resume: bool = False
    force: bool = False  # a new run may replace the last.pt / best.pt of an earlier one in `out`
    lr: float | None = None  # None: the resumed run's, else 3e-3 from scratch, 5e-4 fine-tuning
    size: tuple[int, int] = (320, 240)
    val_sets: str | None = "0.2"
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    init: str | None = None  # default (the shipped model), scratch or a checkpoint; None: default
    val_every: int = 250
    backgrounds: list[str] = field(default_factory=list)
    work_width: int = 320
    threads: int | None = None
    stop_at: int | None = None
    arch: str | None = None  # a network.ARCHS name, only with init "scratch" (default "base")
    # The loss's boundary term (`boundary_weights`).
    boundary_width: int = BOUNDARY_WIDTH
    boundary_gain: float = BOUNDARY_GAIN
    # Kernel of the refine step's first convolution (1 or 3); None keeps the starting network's
    # (3 from scratch). Changing a loaded network's converts it (network.with_refine_kernel).
    refine_kernel: int | None = None


# ---------------------------------------------------------------- losses

def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    total = p.sum((1, 2, 3)) + target.sum((1, 2, 3))
    # +1 smoothing so frames with nobody in them (empty target) have a finite, useful loss.
    return (1 - (2 * inter + 1) / (total + 1)).mean()


def boundary_weights(target: torch.Tensor, width: int = BOUNDARY_WIDTH,
                     gain: float = BOUNDARY_GAIN) -> torch.Tensor:
    """Per-pixel BCE weights: 1 + gain near the true boundary, where the F-measure is decided."""
    k = 2 * width + 1
    dil = F.max_pool2d(target, k, 1, width)
    ero = -F.max_pool2d(-target, k, 1, width)
    return 1.0 + gain * (dil - ero)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, boundary_width: int = BOUNDARY_WIDTH,
                      boundary_gain: float = BOUNDARY_GAIN) -> torch.Tensor:
    """Boundary-weighted binary cross-entropy + Dice."""
    bce = F.binary_cross_entropy_with_logits(logits, target,
                                             weight=boundary_weights(target, boundary_width, boundary_gain))
    return bce + dice_loss(logits, target)


# ---------------------------------------------------------------- helpers

class RunSampler(DistributedSampler):
    """DistributedSampler's order (no shuffling: the samples themselves are drawn at random from their
    index), from this rank's position `start` on (resuming mid-run), without building its list: that
    list holds iterations x batch x processes indices, and `-i 100000000000` ran out of memory
    before step 1."""

    def __init__(self, dataset, num_replicas: int, rank: int, start: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        if self.total_size != len(dataset):  # DistributedSampler would pad with repeats; never here
            raise ValueError(f"{len(dataset)} samples do not divide among {num_replicas} processes")
        self.start = start

    def __iter__(self):
        return iter(range(self.rank + self.start * self.num_replicas, self.total_size, self.num_replicas))

    def __len__(self):
        return max(0, self.num_samples - self.start)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HumansegError("--device cuda: no CUDA device is available")
    return torch.device(name)


def validate(model: SiameseSegNet, pairs: list[Pair], work_width: int) -> dict[str, float]:
    """mIoU / Dice / boundary F of the model on whole frames at their full size."""
    seg = Segmenter(model, work_width=work_width, device="cpu", graph_cache=False)  # weights change next step
    rows = []
    current = None
    for p in pairs:
        if current is not p.background:
            seg.set_background(p.background)
            current = p.background
        rows.append(metrics.frame_scores(seg.predict_mask(p.frame), p.mask))
    return metrics.mean_scores(rows)


def state_digest(model: torch.nn.Module) -> str:
    """A short hash of all parameters and buffers (used to check ranks agree)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def plot_history(rows: list[dict], path: Path) -> None:
    """training.png: loss (blue) and validation IoU (green) over steps, drawn with OpenCV; an empty
    frame for no rows (a --force run stopped before its first step: the run it replaced had left its
    own plot there)."""
    w, h, pad = 800, 400, 50
    img = np.full((h, w, 3), 255, np.uint8)
    last_step = max((r["step"] for r in rows), default=0)
    x_max = last_step or 1

    def xy(step, value, lo, hi):
        x = pad + (w - 2 * pad) * step / x_max
        y = h - pad - (h - 2 * pad) * (value - lo) / ((hi - lo) or 1)
        return int(x), int(y)

    cv2.rectangle(img, (pad, pad), (w - pad, h - pad), (0, 0, 0), 1)
    losses = [(r["step"], r["loss"]) for r in rows if r.get("loss") not in (None, "") and math.isfinite(r["loss"])]
    if losses:
        hi = max(v for _, v in losses)
        pts = np.array([xy(s, v, 0, hi) for s, v in losses], np.int32)
        cv2.polylines(img, [pts], False, (200, 80, 0), 1, cv2.LINE_AA)
        if len(pts) == 1:  # a run under 10 steps has one row: a line of one point draws nothing
            cv2.circle(img, tuple(int(c) for c in pts[0]), 3, (200, 80, 0), -1)
        cv2.putText(img, f"loss (0..{hi:.2f})", (pad, pad - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (200, 80, 0), 1, cv2.LINE_AA)
    vals = [(r["step"], r["val_iou"]) for r in rows if r.get("val_iou") not in (None, "")]
    if vals:
        pts = np.array([xy(s, v, 0, 1) for s, v in vals], np.int32)
        cv2.polylines(img, [pts], False, (0, 160, 0), 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(c) for c in p), 3, (0, 160, 0), -1)
        cv2.putText(img, f"val IoU (0..1), last {vals[-1][1]:.3f}", (w // 2, pad - 10),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 160, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"step {last_step}", (w - pad - 80, h - pad + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (0, 0, 0), 1, cv2.LINE_AA)
    store.write_image(path, img, overwrite=True)


def write_history(rows: list[dict], path: Path) -> None:
    fh = io.StringIO(newline="")
    writer = csv.DictWriter(fh, fieldnames=["step", "loss", "train_iou", "val_iou", "val_dice",
                                            "val_boundary_f", "lr", "seconds"])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in writer.fieldnames})
    store.write_bytes_atomic(path, fh.getvalue().encode(), overwrite=True)


def _workers(loader) -> list:
    """A DataLoader's worker processes (its persistent iterator's), [] when there are none."""
    return getattr(getattr(loader, "_iterator", None), "_workers", None) or []


def _worker_pids(loader) -> list[int]:
    return [w.pid for w in _workers(loader) if getattr(w, "pid", None)]


def _batches(loader):
    """loader's batches; a worker that died while handing its batch over (the connection it was
    passing the batch's memory through reset: a kill, the out-of-memory killer, a SIGTERM to the
    process group) is said as PyTorch says a worker's death ("DataLoader worker (pid N) is killed by
    signal: Killed."), where the connection's error was a traceback, and so was PyTorch's own
    "DataLoader worker (pid(s) N) exited unexpectedly" when it caught that error itself."""
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, EOFError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and "exited unexpectedly" not in str(exc):
                raise
            for w in _workers(loader):
                if isinstance(exc, (ConnectionError, EOFError, RuntimeError)):
                    w.join(timeout=1.0)  # (ending, or ended: its end reset the connection)
                if not w.is_alive() and w.exitcode is not None and w.exitcode < 0:
                    raise RuntimeError(f"DataLoader worker (pid {w.pid}) is killed by signal: "
                                       f"{signal.strsignal(-w.exitcode)}.") from exc
            raise
        yield batch


def _shut_down_workers(loader) -> None:
    """Stop a persistent loader's workers now: PyTorch's SIGCHLD handler raised from wherever the
    main thread was (saving last.pt, the interpreter's exit) when one of them ended after training."""
    batches = getattr(loader, "_iterator", None)
    if batches is not None and hasattr(batches, "_shutdown_workers"):
        try:
            batches._shutdown_workers()
        except Exception:  # (already ended workers, closed queues: nothing left to stop)
            pass
        loader._iterator = None


def _remove_shared_memory_of(pids: list[int], folder: str = "/dev/shm") -> None:
    """Remove the shared memory files named for these (loader worker) processes: a batch whose mapping
    failed for want of memory keeps its file (torch_PID_..., the batch's size, 900 MB at -b 64 and
    1280x960) until the machine restarts, and each such run took that much more RAM from it."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if any(name.startswith(f"torch_{pid}_") for pid in pids):
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def read_history(path: Path, log=print) -> list[dict]:
    """metrics.csv's rows; rows that cannot be read (the file edited or damaged) are left out, with a
    warning: the run goes on, its checkpoint holds what matters."""
    if not path.is_file():
        return []
    out, bad = [], 0
    with open(path, newline="", errors="replace") as fh:
        rows = csv.DictReader(fh)
        while True:
            try:
                r = next(rows)
            except StopIteration:
                break
            except csv.Error:  # a field over csv's size limit (128 kB of junk): the reader goes on after it
                bad += 1
                continue
            try:
                row = {k: (float(v) if v not in ("", None) else None) for k, v in r.items() if k is not None}
                if not all(math.isfinite(v) for v in row.values() if v is not None):
                    raise ValueError  # inf as a step was an OverflowError; nan broke the plot after a step
                row["step"] = int(row["step"])
            except (TypeError, ValueError, KeyError):
                bad += 1
                continue
            out.append(row)
    if bad:
        log(f"warning: {path}: {bad} row(s) could not be read; left out of the history")
    return out


# A resumed run goes on exactly only with the samples, held-out sets and loss it started with.
RUN_OPTIONS = {"images": "--images (its labeled frames)", "backgrounds": "--backgrounds", "val_sets": "--val-sets",
               "seed": "--seed", "size": "--size", "batch": "-b", "processes": "processes (torchrun)",
               "boundary": "--boundary-width / --boundary-gain", "init": "--init", "arch": "--arch",
               "held_out": "held-out sets (--val-sets)"}


def labeled_frames(pairs: list[Pair]) -> list[list]:
    """Per --images root, in order: [set name, labeled frames] of each set. What the run learns from,
    whatever the folder is called now (a project moved, or copied to another machine)."""
    per_root: dict[str, Counter] = {}
    for p in pairs:
        root, name = p.set_key.rsplit(":", 1)
        per_root.setdefault(root, Counter())[name] += 1
    return [[[name, n] for name, n in sorted(sets.items(), key=lambda t: int(t[0][3:]))]
            for sets in per_root.values()]


def _val_spec(spec):
    """--val-sets as split_sets reads it: "3, 7", "7,3" and "set3,set7" are [3, 7]; ".2" and "0.2" are 0.2."""
    if spec is None or not isinstance(spec, str):
        return spec
    if "." in spec:
        try:
            return float(spec)
        except ValueError:
            return spec
    return sorted({int(x) for x in (y.strip().removeprefix("set") for y in spec.split(",")) if x.isdigit()})


def held_out_sets(pairs: list[Pair], val_pairs: list[Pair]) -> list[list]:
    """The held-out sets as [--images position, set name]: what the run validates on, whatever the
    folders are called now (a run of an earlier humanseg drew a fraction's sets in another order)."""
    places = set_places(pairs)
    return sorted(list(places[key]) for key in {p.set_key for p in val_pairs})


def run_settings(cfg: TrainConfig, world: int, pairs: list[Pair], rooms: list,
                 val_pairs: list[Pair] = ()) -> dict:
    """What a run's samples, split and loss follow from (stored in its checkpoints as extra["run"])."""
    init = cfg.init or "default"
    return {"images": labeled_frames(pairs), "backgrounds": len(rooms), "val_sets": _val_spec(cfg.val_sets),
            "seed": cfg.seed, "size": list(cfg.size), "batch": cfg.batch, "processes": world,
            "boundary": [cfg.boundary_width, float(cfg.boundary_gain)],
            "init": init if init in ("default", "scratch") else str(Path(init).resolve()),
            "arch": cfg.arch or ("base" if init == "scratch" else None),
            "held_out": held_out_sets(pairs, list(val_pairs))}  # last: the options it follows from first


def _shown(key: str, value) -> str:
    if value is None:
        return "none"
    if key == "images":
        return "; ".join(", ".join(f"{name} ({n})" for name, n in sets) for sets in value) or "none"
    if key == "backgrounds":
        return f"({value} room images)"
    if key == "held_out":
        several = any(root for root, _ in value)  # sets of a second --images folder: said which
        return ", ".join(f"{name} of --images #{root + 1}" if several else name for root, name in value) or "none"
    if key == "size":
        return "x".join(map(str, value))
    if key == "boundary":
        return f"{value[0]} / {value[1]:g}"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return str(value)


def resume_mismatch(extra: dict, now: dict, unasked=()) -> str | None:
    """The settings this run asks for that differ from the checkpoint's run, all said in one line (one
    at a time, a user gave the options again run after run); None when they agree. The held-out sets
    follow from --images and --val-sets, so they are said only when nothing else differs. Settings in
    `unasked` (--init, --arch not given) are not compared; checkpoints from before extra["run"] are
    held to what they stored."""
    saved = extra.get("run")
    if saved is None:  # older checkpoints: their seed, held-out sets and boundary term
        saved = {k: extra[k] for k in ("val_sets", "seed", "boundary") if k in extra}
    said = []
    for key, value in now.items():
        if key not in saved or key in unasked or key == "held_out" and said:
            continue
        then = saved[key]
        if key == "boundary":
            then = [then[0], float(then[1])]
        if key == "val_sets":
            then = _val_spec(then)
        if then != value:
            said.append(f"{RUN_OPTIONS[key]} {_shown(key, then)}, this one asks for {_shown(key, value)}")
    return f"the run was started with {'; with '.join(said)}" if said else None


def best_is_behind(record: dict, step: int, best_iou: float, best_path: Path) -> bool:
    """Whether last.pt (its resume_record, at step) holds the run's best validation while best.pt is
    missing or holds a worse one: a run cut off between the two checkpoints of a validation that
    improved (last.pt is written first, so --resume always finds it; best.pt is then its copy)."""
    if record["extra"].get("metrics_step") != step or record["metrics"].get("iou") != best_iou:
        return False
    if not best_path.is_file():
        return True
    try:
        return float(read_checkpoint(best_path)["metrics"]["iou"]) < best_iou
    except Exception:  # unreadable or not a checkpoint of this run: left as it is
        return False


def resume_record(ckpt: dict, path: Path) -> dict:
    """What --resume reads from last.pt besides the weights, checked (a hand-edited or damaged file
    failed in a traceback, some only at the first validation, after training steps): its run record
    `extra` (best_iou, lr, metrics_step), its metrics and its optimizer state."""
    extra = ckpt.get("extra")
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise WeightsError(f"--resume: {path} has a damaged run record (extra is a {type(extra).__name__})")

    def number(value, ok) -> bool:
        return type(value) in (int, float) and math.isfinite(value) and ok(value)

    for key, ok, what in (("best_iou", lambda v: -1 <= v <= 1, "a number from -1 to 1"),
                          ("lr", lambda v: v > 0, "a positive number")):
        if extra.get(key) is not None and not number(extra[key], ok):
            raise WeightsError(f"--resume: {path} has an invalid {key} {extra[key]!r} in its run record ({what})")
    at = extra.get("metrics_step")
    if at is not None and (type(at) is not int or at < 0):
        raise WeightsError(f"--resume: {path} has an invalid metrics_step {at!r} in its run record")
    metrics = ckpt.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(isinstance(k, str) and type(v) in (int, float)
                                                for k, v in metrics.items()):
        raise WeightsError(f"--resume: {path} has damaged metrics")
    if not isinstance(ckpt.get("optimizer"), dict):  # a released checkpoint, such as the shipped one
        raise WeightsError(f"--resume: {path} holds no optimizer state, so the run cannot go on exactly "
                           f"(a released checkpoint?); start a new run from it with --init {path}")
    return {"extra": extra, "metrics": dict(metrics)}


def initial_model(init: str, arch: str | None = None) -> tuple[SiameseSegNet, str]:
    """The starting network: 'default' (shipped model if present), 'scratch', or a checkpoint path.

    arch names the configuration (network.ARCHS) of a network trained from scratch; a loaded
    checkpoint brings its own, so asking for one there is an error.
    """
    if arch is not None and arch not in ARCHS:
        raise HumansegError(f"unknown --arch {arch!r} ({', '.join(ARCHS)})")
    fresh = ARCHS[arch or "base"]
    if init == "scratch":
        model = SiameseSegNet(fresh)
        if fresh.encoder == "posenet050":
            from humanseg.errors import WeightsNotFound
            from humanseg.pose.weights import (WEIGHTS_ENV, cache_dir, checkpoint_name, load_state_dict,
                                               resolve_weights)

            try:
                path = resolve_weights(None, 50)
            except WeightsNotFound as exc:  # its hint names the pose tools' --posenet-weights
                raise HumansegError(f"--arch {arch} starts from PoseNet's weights, and there are none: put "
                                    f"{checkpoint_name(50)}.pth in {cache_dir()} or set {WEIGHTS_ENV}=PATH "
                                    f"({getattr(exc, 'why', exc)}); --arch base needs none") from None
            model.encoder.load_posenet(load_state_dict(path, 50))
            return model, f"scratch ({arch}, encoder from PoseNet)"
        return model, f"scratch ({arch or 'base'})"
    if arch is not None:
        raise HumansegError(f"--arch applies to --init scratch only; --init {init} brings its own network")
    if init == "default":
        if DEFAULT_WEIGHTS.is_file():
            return load_model(DEFAULT_WEIGHTS)[0], f"shipped model {DEFAULT_WEIGHTS.name}"
        return SiameseSegNet(fresh), "scratch (no shipped model found)"
    return load_model(init)[0], init


PRETRAINED_LR_SCALE = 0.1


def param_groups(model: SiameseSegNet) -> list[dict]:
    """Optimizer groups: layers that came pretrained (PoseNet's) learn at a tenth of the rate."""
    pretrained = model.encoder.pretrained_parameters()
    ids = {id(p) for p in pretrained}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": rest, "lr_scale": 1.0}]
    if pretrained:
        groups.append({"params": pretrained, "lr_scale": PRETRAINED_LR_SCALE})
    return groups


def lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up over 5% of the steps, then cosine decay to 2% of the base rate."""
    warm = max(1, int(0.05 * total))
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


# ---------------------------------------------------------------- the job

def memory_failure(exc: BaseException, cfg: TrainConfig, device, step: int, in_step: bool) -> str | None:
    """The one line for a run that ran out of memory (with "{kept}" for what the checkpoints hold),
    or None for any other failure. step: steps done; in_step: the failure came loading or training
    on the next batch (else validating or saving after step)."""
    text = str(exc)
    killed = (f"a data loader worker was killed at step {step + 1}, most likely out of memory ({{kept}}); "
              f"use a smaller -b or --size, or --workers 0")
    if isinstance(exc, RuntimeError) and ("shared memory" in text or "Bus error" in text):
        return (f"the data loader's shared memory (/dev/shm) ran out at step {step + 1} ({{kept}}); use "
                f"--workers 0, or give /dev/shm more room")
    if isinstance(exc, RuntimeError) and "is killed by signal: Killed" in text:
        return killed
    if not out_of_memory(exc):
        # "worker exited unexpectedly", from PyTorch's SIGCHLD handler's "killed by signal: Killed"
        return killed if "is killed by signal: Killed" in str(exc.__cause__ or "") else None
    if in_step:
        return (f"out of memory at step {step + 1} with -b {cfg.batch} at --size {cfg.size[0]}x{cfg.size[1]} "
                f"on {device} ({{kept}}); use a smaller -b or --size")
    return (f"out of memory validating or saving after step {step} on {device} ({{kept}}); validation runs "
            f"each held-out frame whole: hold out fewer sets, or sets with smaller frames (--val-sets)")


def stop_agreed(stops: StopSignals, device, distributed: bool) -> bool:
    """Whether training stops after this step: asked to (stops.signum). Under torchrun every rank stops
    at the same step: the decision is the ranks' highest signal, and one that comes while they agree
    (a rank waits there for the others most of a step) is this rank's for the next step's agreement.
    It was overwritten by the agreed "none": the agent sends each rank its Ctrl-C once, and a run whose
    ranks all had theirs there went on training until the agent killed it, with nothing saved."""
    if not distributed:
        return stops.signum is not None
    flag = torch.tensor([stops.signum or 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    agreed = int(flag.item())
    if agreed and stops.signum is None:
        stops.signum = agreed  # another rank's signal: this one stops as it would for its own
    return agreed != 0


def _worker_leaves_signals_to_trainer(worker_id: int) -> None:
    """Data loader processes leave Ctrl-C to the training process, which stops them once it has saved
    (they would otherwise die under a batch it is still waiting for). SIGTERM gets its default back
    (the handler the command installed comes with the fork): the loader stops its workers with it.
    SIGHUP (a closed terminal, sent to the whole process group) is left to the trainer as Ctrl-C is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in _locks:  # (a worker outliving a killed trainer kept --out locked)
        try:
            os.close(fd)
        except OSError:
            pass
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _make_folders(out: Path) -> list[Path]:
    """Make out and its missing parents; returns those this process made, deepest first (one another
    run made meanwhile is not this run's to remove)."""
    missing = []
    while not os.path.lexists(out):
        missing.append(out)
        out = out.parent
    made = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
            made.append(folder)
        except FileExistsError:
            pass
    return made[::-1]


_locks: list[int] = []  # --out locks held by this process: data loader workers close their copies


def _lock_folder(out: Path) -> int | None:
    """An exclusive lock on the --out folder (its file descriptor), or HumansegError when another
    training run holds it. None where file locks are not to be had (no fcntl: Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise HumansegError(f"--out {out} is in use by another training run; wait for it to end, or choose "
                            f"another --out") from None
    _locks.append(fd)
    return fd


def _launch_env() -> tuple[int, int]:
    """(processes, this one's rank) from torchrun's WORLD_SIZE and RANK (1, 0 when unset); a value
    that is not one (WORLD_SIZE=abc, 0, RANK 2 of 2) is named in one line, not a ValueError's
    traceback from int() or from the process group."""
    def number(name: str, default: str) -> int:
        value = os.environ.get(name, default).strip()
        if not (value.isascii() and value.isdigit()):
            raise HumansegError(f"{name}={os.environ.get(name)!r} is not a whole number (torchrun sets it; "
                                f"unset it to train in one process)")
        return int(value)

    world, rank = number("WORLD_SIZE", "1"), number("RANK", "0")
    if world < 1 or rank >= world:
        raise HumansegError(f"WORLD_SIZE={world} with RANK={rank}: a run needs at least one process, and a "
                            f"rank below their number (torchrun sets both; unset them to train in one process)")
    if world > 1:
        number("LOCAL_RANK", "0")
        # The process group meets at MASTER_ADDR:MASTER_PORT: a WORLD_SIZE left in the shell without
        # them was torch's ValueError traceback ("environment variable MASTER_ADDR expected").
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name, "").strip():
                raise HumansegError(f"WORLD_SIZE={world} but {name} is not set (torchrun sets it; unset "
                                    f"WORLD_SIZE to train in one process)")
        port = number("MASTER_PORT", "")
        if not 0 < port < 65536:
            raise HumansegError(f"MASTER_PORT={port} is not a port (1 to 65535; torchrun sets it)")
    return world, rank


def train(cfg: TrainConfig, log=print) -> dict:
    """Run training; returns the final metrics dict. Writes last.pt, best.pt, metrics.csv, training.png."""
    world, rank = _launch_env()
    distributed = world > 1
    device = pick_device(cfg.device)
    if distributed:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    is_main = rank == 0
    out = Path(cfg.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    csv_path, png_path = out / "metrics.csv", out / "training.png"
    made_out: list[Path] = []  # the folders this run made for --out, deepest first
    lock = None
    stops = None
    pipes = OutputGuard()  # entered with the progress bar, left at the end

    try:
        held = [p.name for p in (last_path, best_path, csv_path, png_path) if p.is_file()]
        if held and not cfg.resume and not cfg.force:
            raise HumansegError(f"--out {out} already holds a training run ({', '.join(held)}); continue it "
                                f"with --resume, start over with --force, or choose another --out")
        if is_main:  # checkpoints are first written at the first validation: a run must not get that far
            if store.is_capture_folder(out):
                raise HumansegError(f"--out {out} is a capture set folder; choose another folder")
            store.refuse_new_set_folder(out, "--out")
            store.refuse_unwritable(out, "--out", folder=True)
            for folder in cfg.backgrounds or []:  # training.png would be a room of the next run
                if Path(folder).resolve() == out.resolve():
                    raise HumansegError(f"--out {out} is a --backgrounds folder, whose every image is taken "
                                        f"for an empty room; choose another --out")
            for path in (last_path, best_path, csv_path, png_path):
                if os.path.lexists(path) and not path.is_file():
                    raise HumansegError(f"--out {out}: {path.name} there is not a file; move it away")
        # Every root must hold labeled frames. Frames far larger than the samples are kept at the size
        # sampling takes as they are read (for_training; the held-out sets at full size).
        pairs = load_pairs(cfg.images, progress=is_main, check=is_main,
                           prepare=for_training(cfg.val_sets, cfg.seed, cfg.size, cfg.work_width))
        train_pairs, val_pairs = split_sets(pairs, cfg.val_sets, cfg.seed)
        rooms = load_rooms(cfg.backgrounds, through=lambda room: shrunk(room, cfg.size, cfg.work_width))

        torch.manual_seed(cfg.seed)  # before the model is built: initial weights follow --seed
        start_step, best_iou, history = 0, -1.0, []
        optimizer_state = None
        run_record = run_settings(cfg, world, pairs, rooms, val_pairs)  # stored in every checkpoint
        if cfg.resume:
            if cfg.refine_kernel is not None:
                raise HumansegError("--refine-kernel applies to a new run; --resume keeps the run's network")
            if not last_path.is_file():
                raise HumansegError(f"--resume: no checkpoint to resume at {last_path}")
            read_last = store.file_identity(last_path)  # checked again once the folder is ours (below)
            model, ckpt = load_model(last_path)
            start_step = ckpt.get("step", 0)
            record = resume_record(ckpt, last_path)
            unasked = [k for k in ("init", "arch") if getattr(cfg, k) is None]
            differs = resume_mismatch(record["extra"], run_record, unasked=unasked)
            # What was not asked is the run's as it started (it was stored as "--init default", and the
            # run's own options given again were refused on its next resume).
            run_record.update({k: v for k, v in (record["extra"].get("run") or {}).items() if k in unasked})
            if differs:
                raise HumansegError(f"--resume: {differs} ({last_path}); give the run's options again "
                                    f"to continue it, or start a new run from it (--init {last_path} and "
                                    f"another --out)")
            if cfg.stop_at and cfg.stop_at <= start_step:
                raise HumansegError(f"--stop-at {cfg.stop_at}: {last_path} is already at step {start_step}")
            if start_step >= cfg.iterations:  # said before the run's header: one line
                raise HumansegError(f"--resume: {last_path} is already at step {start_step} of "
                                    f"{cfg.iterations}; ask for more iterations with -i")
            optimizer_state = ckpt.get("optimizer")
            best_iou = record["extra"].get("best_iou")
            best_iou = -1.0 if best_iou is None else best_iou
            best_behind = val_pairs and best_iou > -1 and best_is_behind(record, start_step, best_iou, best_path)
            if val_pairs and best_iou > -1 and not best_path.is_file() and not best_behind:  # last.pt copied alone
                if is_main:
                    log(f"warning: --resume: {best_path} is missing; the best of the validations from now "
                        f"on is written there")
                best_iou = -1.0
            history = read_history(csv_path, log) if is_main else []
            history = [r for r in history if r["step"] <= start_step]
            origin = f"resumed {last_path} at step {start_step}"
            lr = cfg.lr or record["extra"].get("lr")
        else:
            model, origin = initial_model(cfg.init or "default", cfg.arch)
            if cfg.refine_kernel is not None and cfg.refine_kernel != model.config.refine_kernel:
                model = with_refine_kernel(model, cfg.refine_kernel)
                origin += f", refine kernel now {cfg.refine_kernel}"
            lr = cfg.lr
        if not lr:  # fine-tuning a working model wants gentler steps than learning from scratch
            lr = 3e-3 if origin.startswith("scratch") else 5e-4
        model.to(device)

        if is_main:
            # One run at a time in a folder: a second run with the same --out, started before the first
            # wrote anything, passed the check above, and the one that ended last replaced the other's
            # finished checkpoints without a word. Held until this process ends.
            made_out = _make_folders(out)
            try:
                lock = _lock_folder(out)
            except HumansegError:
                made_out = []  # (another run's folder now, though this one made it: not removed)
                raise
            if cfg.resume and store.file_identity(last_path) != read_last:
                # Another run, ending between the read and the lock, had written it: resumed from the
                # step read, this run would have trained over that run's later steps.
                raise HumansegError(f"--resume: {last_path} was written by another training run as this one "
                                    f"started; run --resume again to continue from it")
            held = [p.name for p in (last_path, best_path, csv_path, png_path) if p.is_file()]
            if held and not cfg.resume and not cfg.force:  # a run that ended between the check and the lock
                raise HumansegError(f"--out {out} already holds a training run ({', '.join(held)}); continue it "
                                    f"with --resume, start over with --force, or choose another --out")
            if cfg.resume and best_behind:  # cut off between last.pt and best.pt, which is its copy
                store.write_bytes_atomic(best_path, last_path.read_bytes(), overwrite=True)
                log(f"--resume: {best_path} was behind {last_path} (a run cut off between writing the two); "
                    f"{last_path}'s step {start_step} (val mIoU {best_iou:.4f}) is written there")
            # Named with their folder when sets come from several --images (each may have a set1).
            several = len({p.set_key.rsplit(":", 1)[0] for p in train_pairs + val_pairs}) > 1
            val_names = sorted({os.path.join(*p.set_key.rsplit(":", 1)) if several else p.set_key.rsplit(":", 1)[1]
                                for p in val_pairs},  # in number order: set5, set9, set11
                               key=natural_key)
            n_sets = len({p.set_key for p in train_pairs})
            log(f"training on {plural(len(train_pairs), 'frame')} ({plural(n_sets, 'set')}) "
                f"+ {plural(len(rooms), 'extra room')}; validating on {plural(len(val_pairs), 'frame')} "
                f"({', '.join(val_names) or 'none'}); model {count_parameters(model):,} parameters; "
                f"start: {origin}; lr {lr:g}; device {device}" + (f" x{world}" if distributed else ""))

        net = model
        if distributed:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = torch.optim.AdamW(param_groups(model), lr=lr, weight_decay=1e-4)
        if optimizer_state:
            try:
                optimizer.load_state_dict(optimizer_state)
                # Adam's running moments must have their parameter's shape (load_state_dict does not
                # look: a damaged state failed at the first step, inside the optimizer).
                for p in model.parameters():
                    for moment in optimizer.state.get(p, {}).values():
                        if isinstance(moment, torch.Tensor) and moment.dim() and moment.shape != p.shape:
                            raise ValueError
            except (ValueError, KeyError, TypeError, AttributeError):
                raise WeightsError(f"optimizer state in {last_path} does not fit the model") from None

        total = cfg.iterations
        dataset = TrainingSet(train_pairs, rooms, size=cfg.size, length=total * cfg.batch * world,
                              seed=cfg.seed, work_width=cfg.work_width)
        pairs = train_pairs = rooms = None  # (held by the dataset; the workers start with no other copy)
        sampler = RunSampler(dataset, num_replicas=world, rank=rank, start=start_step * cfg.batch)
        loader = DataLoader(dataset, batch_size=cfg.batch, sampler=sampler,
                            num_workers=cfg.workers, drop_last=True,
                            persistent_workers=cfg.workers > 0, worker_init_fn=_worker_leaves_signals_to_trainer)

        # With --force, the earlier run's files go as this run's first checkpoint takes its name, once
        # its bytes are on the disk (a run that fails before then, or a full disk, leaves the earlier
        # run whole): beside this run's last.pt its best.pt would pass for this run's, and its
        # metrics.csv's rows for this run's steps (a kill between the new last.pt and the new
        # metrics.csv, then --resume, mixed the two runs' rows).
        replacing = [is_main and cfg.force and not cfg.resume]

        def checkpoint(step, metrics_now, path):
            def earlier_run_gone():
                for other in (last_path, best_path, csv_path, png_path):
                    if other != path:
                        other.unlink(missing_ok=True)

            save_checkpoint(path, model, step, optimizer, metrics_now, cfg.work_width,
                            extra={"best_iou": best_iou, "metrics_step": val_step[0],  # the step metrics are of
                                   "val_sets": cfg.val_sets, "seed": cfg.seed, "lr": lr,
                                   "images": [str(x) for x in cfg.images],
                                   "boundary": [cfg.boundary_width, cfg.boundary_gain],
                                   "run": run_record},
                            before_rename=earlier_run_gone if replacing[0] else None)
            replacing[0] = False

        def save_run(step, best_first):
            """The run's files at `step`. metrics.csv goes first: a kill between it and last.pt leaves
            rows past last.pt's step, which --resume leaves out and makes again (written after, such a
            kill lost the rows since the last save, --resume going on from the newer last.pt). The
            run's first save writes its checkpoint first: a metrics.csv alone would be a run that the
            rerun is told to resume and --resume cannot (and a forced run's removes the earlier run's);
            then metrics.csv, before best.pt (written after it, a full disk or a kill at best.pt lost the
            first validation's row, and the running loss and IoU --resume goes on from)."""
            csv_first = not replacing[0] and last_path.is_file()
            if csv_first:
                write_history(history, csv_path)
            if best_first:  # no validation: best.pt is the last step's
                checkpoint(step, last_val, best_path)
            checkpoint(step, last_val, last_path)
            if not csv_first:
                write_history(history, csv_path)
            if improved:  # (at the end: a Ctrl-C between a validation that improved and its checkpoints)
                checkpoint(step, last_val, best_path)
            plot_history(history, png_path)

        interrupted = stopped_early = improved = False
        step = saved_step = start_step
        # metrics.csv's seconds go on from where a resumed run's rows end (they started again at 0).
        earlier = history[-1].get("seconds") if history else None
        run_loss, run_iou, t0 = None, None, time.time() - (earlier or 0.0)
        last_val: dict = {}
        val_step = [None]  # the step last_val was measured at (a checkpoint between validations keeps it)
        if cfg.resume:  # the running loss / IoU and the last validation go on as they were (they started
            last = history[-1] if history and history[-1]["step"] == start_step else {}  # afresh: a spike
            run_loss, run_iou = last.get("loss"), last.get("train_iou")
            last_val, val_step[0] = record["metrics"], record["extra"].get("metrics_step")
        row: dict | None = None
        pipes.start()
        bar = tqdm(total=total, initial=start_step, disable=not is_main or sys.stderr is None, unit="it",
                   dynamic_ncols=True)  # (stderr closed, 2>&-: no bar rather than a failure)
        net.train()
        stops = StopSignals(twice_stops_at_once=not distributed)

        # The tensors a diverging run fills with inf or NaN (updated in place: listed once, not per step).
        state = [(name, t) for name, t in itertools.chain(model.named_parameters(), model.named_buffers())
                 if t.is_floating_point()]
        stops.install()
        in_step = True  # a batch being loaded or trained on (not validation or checkpoints)
        try:
            for frame, bkg, target in _batches(loader):
                frame, bkg, target = frame.to(device), bkg.to(device), target.to(device)
                # A second Ctrl-C waits for the step's end (its metrics row included): last.pt is one step.
                with stops.step():
                    for g in optimizer.param_groups:
                        # Checkpoints from before the groups had scales resume with their one group at 1.
                        g["lr"] = lr_at(step, total, lr) * g.setdefault("lr_scale", 1.0)
                    logits = net(frame, bkg)
                    loss = segmentation_loss(logits, target, cfg.boundary_width, cfg.boundary_gain)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    optimizer.step()
                    step += 1
                    with torch.no_grad():
                        pred, tgt = logits > 0, target > 0.5
                        union = (pred | tgt).sum((1, 2, 3)).float()
                        inter = (pred & tgt).sum((1, 2, 3)).float()
                        batch_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean()
                    lv, iv = loss.item(), batch_iou.item()
                    # A loss, weight or BatchNorm statistic gone to inf or NaN: what this step made
                    # is not saved, and the last checkpoint stays as it was.
                    why = None
                    if not math.isfinite(lv):
                        why = f"the loss is {lv}"
                    elif not bool(torch.stack([torch.isfinite(t).all() for _, t in state]).all()):  # one sync
                        why = next(f"{name} is not finite" for name, t in state if not bool(torch.isfinite(t).all()))
                    finite = torch.tensor([float(why is None)], device=device)
                    if distributed:  # every rank stops at the same step (their weights are one)
                        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                    if not finite.item():
                        kept = (f"{last_path} holds step {saved_step}" if saved_step else
                                "no checkpoint was written")
                        raise HumansegError(f"training diverged at step {step}: {why or 'on another rank'} "
                                            f"({kept}); start again with a lower --lr (this run's: {lr:g})",
                                            exit_code=1)
                    run_loss = lv if run_loss is None else 0.95 * run_loss + 0.05 * lv
                    run_iou = iv if run_iou is None else 0.95 * run_iou + 0.05 * iv
                    bar.update(1)
                    bar.set_postfix(loss=f"{run_loss:.3f}", iou=f"{run_iou:.3f}")
                    row = {"step": step, "loss": run_loss, "train_iou": run_iou,
                           "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.time() - t0, 1)}
                in_step = False
                if is_main and val_pairs and (step % cfg.val_every == 0 or step == total):
                    model.eval()
                    last_val = validate(model, val_pairs, cfg.work_width)
                    val_step[0] = step
                    model.train()
                    row.update(val_iou=last_val["iou"], val_dice=last_val["dice"],
                               val_boundary_f=last_val["boundary_f"])
                    bar.write(f"step {step}: val mIoU {last_val['iou']:.4f}  Dice {last_val['dice']:.4f}  "
                              f"boundary F {last_val['boundary_f']:.4f}")
                    if last_val["iou"] > best_iou:
                        best_iou = last_val["iou"]
                        improved = True  # best.pt is written after last.pt (below): see best_is_behind
                if is_main and (step % 10 == 0 or "val_iou" in row or step == total):
                    history.append(row)
                if step % cfg.val_every == 0 or step == total:
                    saved_step = step  # on every rank, for the divergence message
                    if is_main:
                        save_run(step, best_first=False)
                        improved = False
                in_step = True
                if step >= total:
                    break
                if cfg.stop_at and step >= cfg.stop_at:
                    # A planned pause: same as an interruption, but a normal exit.
                    stopped_early = True
                    break
                if pipes.broken and stops.signum is None:  # stopped as by a signal, and saved
                    stops.signum = signal.SIGPIPE
                if stop_agreed(stops, device, distributed):
                    interrupted = True
                    break
        except KeyboardInterrupt:
            interrupted = True
        except (RuntimeError, MemoryError) as exc:
            why = memory_failure(exc, cfg, device, step, in_step) if stops.signum is None else None
            if why:
                kept = f"{last_path} holds step {saved_step}" if saved_step else "no checkpoint was written"
                raise HumansegError(why.format(kept=kept), exit_code=1) from None
            if stops.signum is None or not isinstance(exc, RuntimeError):
                raise
            interrupted = True  # a SIGTERM to the whole process group also ended the loader's workers
        finally:
            stops.hold()  # from here to the saves' end; restored below, or where an error leaves
            bar.close()
            workers = _worker_pids(loader)
            with child_ends_ignored():  # (a worker ending as it is stopped is no failure either)
                _shut_down_workers(loader)
            # Once they are stopped (none can make another): a batch whose mapping failed for want of
            # memory kept its shared memory file (removed before, a batch prefetched meanwhile left one).
            _remove_shared_memory_of(workers)

        with child_ends_ignored():  # the loop is over: a worker ending now (a SIGTERM) is no failure
            if (is_main and (interrupted or stopped_early) and row is not None and row["step"] == step
                    and (not history or history[-1]["step"] != step)):
                history.append(row)  # metrics.csv ends at the step last.pt holds
            if distributed:
                # DDP keeps parameters in step; buffers (BN statistics) are made equal here too.
                for buf in model.buffers():
                    dist.broadcast(buf, 0)
                log(f"rank {rank} weights {state_digest(model)}")
            if is_main:
                save_run(step, best_first=not val_pairs)
                if interrupted or stopped_early:
                    # Stopped at the last step (a second Ctrl-C in the final validation): --resume alone
                    # was refused ("already at step 3 of 3").
                    how = ("--resume" if step < total else
                           f"--resume and -i over {step}; it was the last step" +
                           ("; its final validation was cut short" if val_pairs else ""))
                    log(f"{'interrupted' if interrupted else 'stopped'} at step {step}: saved {last_path} "
                        f"(continue with {how})")
                else:
                    log(f"done: {step} steps; last {last_path}, best {best_path} (val mIoU "
                        f"{best_iou:.4f})" if val_pairs else
                        f"done: {step} steps; last {last_path}, best {best_path} (no validation: the last step's)")
        stops.restore()
        # A signal that came while the run saved, having finished: answered now that all is saved.
        interrupted = interrupted or stops.signum is not None
        if interrupted:
            if stops.signum in (*STOPS, signal.SIGPIPE):  # (SIGPIPE: "terminated (SIGPIPE)", exit 141)
                raise Terminated(stops.signum)  # reported as every command reports SIGTERM / SIGHUP
            raise HumansegError("interrupted", exit_code=130)
        return {"step": step, "best_iou": best_iou, **last_val}
    except BaseException:
        for folder in made_out:  # the run made them, and failed before anything went in: none left empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    finally:
        if stops is not None:  # (a run that failed while it saved: held, and restored here)
            stops.restore()
        pipes.end()
        if lock is not None:
            _locks.remove(lock)
            os.close(lock)
        if distributed and dist.is_initialized():
            dist.destroy_process_group()
