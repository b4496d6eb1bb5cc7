import csv
import glob
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from humanseg.errors import HumansegError
from humanseg.model import load_model
from humanseg.store import _alive
from tests.conftest import as_from_a_terminal

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--size", "128x96", "-b", "2", "--val-every", "10", "--threads", "1", "--init", "scratch"]


def run_training(args, cwd=ROOT, env=None, timeout=600):
    return subprocess.run([sys.executable, "training.py", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def train_here(args, env=None):
    """training.py's command run in this process, answered as run_training answers (exit code, stdout,
    stderr): a run's files and lines without an interpreter and torch started for each run. What is the
    process's own (its exit status, its one line on stderr, signals, limits) is checked by run_training."""
    import atexit
    import traceback

    import click
    from click.testing import CliRunner

    import training
    from humanseg import cli

    args = [str(a) for a in args]
    threads, here, show = torch.get_num_threads(), os.getcwd(), click.UsageError.show
    click.UsageError.show = cli._show_usage_error  # one line, as as_a_tool() makes it in the process
    os.chdir(ROOT)  # (relative paths as run_training's cwd)
    try:
        result = CliRunner().invoke(training.main, args, env=env)
    finally:
        os.chdir(here)
        click.UsageError.show = show
        torch.set_num_threads(threads)  # (--threads sets this process's)
        atexit.unregister(cli._ignore_interrupts)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # Uncaught: the process would print its traceback on stderr and exit 1.
        tb = "".join(traceback.format_exception(*result.exc_info))
        return subprocess.CompletedProcess(args, 1, result.stdout, result.stderr + tb)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def two_sets(tmp_path, dev_root):
    root = tmp_path / "images"
    for n in (2, 8):
        shutil.copytree(dev_root / f"set{n}", root / f"set{n}")
    return root


def store_sets(root):
    from humanseg import store

    return store.list_sets(root)


def history(out):
    with open(out / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def train_quietly(images, out, log=lambda *a, **k: None, **options):
    """A tiny in-process run from scratch on `images` (64x64 samples, no held-out set unless asked)."""
    from humanseg import train as train_module

    cfg = {"iterations": 2, "batch": 2, "size": (64, 64), "val_sets": None, "init": "scratch", **options}
    return train_module.train(train_module.TrainConfig(images=[str(images)], out=str(out), **cfg), log=log)


def test_a_run_on_large_frames_reads_them_at_the_size_it_samples_them(large_sets, tmp_path, monkeypatch):
    # Dev sets 2 and 8 at 1920x1440, set 8 held out: the run holds set 8 at full size to validate on it,
    # and set 2's frames at the size its samples take from the read on (with no more than a frame or two
    # at full size at a time, not the whole set).
    import tracemalloc

    from humanseg import train as train_module

    read, validated = {}, []
    load_pairs, validate = train_module.load_pairs, train_module.validate

    def measured(*args, **kwargs):
        tracemalloc.start()
        try:
            read["pairs"] = load_pairs(*args, **kwargs)
            read["peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return read["pairs"]

    monkeypatch.setattr(train_module, "load_pairs", measured)
    monkeypatch.setattr(train_module, "validate",
                        lambda model, pairs, ww: validated.append(pairs) or validate(model, pairs, ww))
    train_quietly(large_sets, tmp_path / "w", iterations=1, val_sets="8")
    shapes = [(p.set_key.rsplit(":", 1)[1], p.frame.shape, p.mask.shape) for p in read["pairs"]]
    assert shapes == [("set2", (328, 437, 3), (328, 437))] * 6 + [("set8", (1440, 1920, 3), (1440, 1920))] * 3
    assert validated and all([p.set_key.endswith(":set8") and p.frame.shape == (1440, 1920, 3) for p in pairs]
                             for pairs in validated) and len(validated[0]) == 3
    image, mask = 1440 * 1920 * 3, 1440 * 1920
    held_out = 4 * image + 3 * mask  # set 8's frames, masks and background
    assert read["peak"] < held_out + 2 * (image + mask), read["peak"]  # set 2 alone is 6 * (image + mask) + image


def test_short_run_lowers_loss_writes_checkpoints_and_resumes(two_sets, tmp_path):
    out = tmp_path / "w"
    r = run_training(["-i", "40", "--images", str(two_sets), "--out", str(out), "--val-sets", "8", *SMALL])
    assert r.returncode == 0, r.stderr
    assert "validating on 3 frames (set8)" in r.stdout and "lr 0.003;" in r.stdout
    rows = history(out)
    losses = [float(x["loss"]) for x in rows]
    assert losses[-1] < losses[0]
    assert {x["step"] for x in rows if x["val_iou"]} == {"10", "20", "30", "40"}
    for name in ("last.pt", "best.pt"):
        model, ckpt = load_model(out / name)
        assert ckpt["optimizer"] is not None and "iou" in ckpt["metrics"]
    assert load_model(out / "last.pt")[1]["step"] == 40
    img = cv2.imread(str(out / "training.png"))
    assert img is not None and img.shape == (400, 800, 3)

    # Resume continues at the saved step with the saved optimizer state, up to the new total.
    before = load_model(out / "last.pt")[1]
    r = train_here(["-i", "50", "--resume", "--images", str(two_sets), "--out", str(out), "--val-sets", "8", *SMALL])
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout and "at step 40" in r.stdout and "lr 0.003;" in r.stdout  # the run's own rate
    after = load_model(out / "last.pt")[1]
    assert after["step"] == 50
    assert after["optimizer"]["state"][0]["step"] == before["optimizer"]["state"][0]["step"] + 10
    steps = [int(x["step"]) for x in history(out)]
    assert steps == sorted(steps) and steps[-1] == 50 and len(steps) == len(set(steps))

    # Starting from a trained model (fine-tuning) takes gentler steps unless --lr says otherwise.
    args = ["-i", "2", "--images", str(two_sets), "--val-sets", "none", "--init", str(out / "last.pt"),
            "--size", "128x96", "-b", "2", "--threads", "1"]
    r = train_here([*args, "--out", str(tmp_path / "ft")])
    assert r.returncode == 0 and "lr 0.0005;" in r.stdout, r.stderr
    r = train_here([*args, "--out", str(tmp_path / "ft2"), "--lr", "0.01"])
    assert r.returncode == 0 and "lr 0.01;" in r.stdout, r.stderr

    # A new run into an OUT that holds one replaces nothing unless --force says so.
    kept = {name: (out / name).read_bytes() for name in ("last.pt", "best.pt")}
    r = run_training([*args, "--out", str(out)])
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"--out {out} already holds a training run" in r.stderr and "--resume" in r.stderr
    assert {name: (out / name).read_bytes() for name in kept} == kept
    # Nor a run whose checkpoints were moved away: its metrics.csv and training.png stay.
    for name in ("metrics.csv", "training.png"):
        plots = tmp_path / f"only-{name}"
        plots.mkdir()
        (plots / name).write_bytes((out / name).read_bytes())
        r = train_here([*args, "--out", str(plots)])
        assert r.returncode == 2 and f"--out {plots} already holds a training run ({name});" in r.stderr
        assert [p.read_bytes() for p in plots.iterdir()] == [(out / name).read_bytes()]
    r = train_here([*args, "--out", str(out), "--force"])
    assert r.returncode == 0, r.stderr
    assert load_model(out / "last.pt")[1]["step"] == 2
    # The replaced run's best.pt goes too: beside a new run stopped before validating, it passed for
    # that run's best. But only once the new run has written a checkpoint: one whose first save failed
    # (a full disk, here a file size limit) deleted it first, leaving neither run's best.
    assert (out / "best.pt").is_file()
    best = (out / "best.pt").read_bytes()

    def small_disk():
        import resource
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    r = subprocess.run([sys.executable, "training.py", "-i", "20", "--stop-at", "1", "--images", str(two_sets),
                        "--out", str(out), "--val-sets", "8", "--force", *SMALL], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=small_disk)
    assert r.returncode == 1 and "File too large" in r.stderr, r.stderr
    assert (out / "best.pt").read_bytes() == best
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "training.png"]
    r = train_here(["-i", "20", "--stop-at", "1", "--images", str(two_sets), "--out", str(out),
                    "--val-sets", "8", "--force", *SMALL])
    assert r.returncode == 0, r.stderr
    assert not (out / "best.pt").exists() and load_model(out / "last.pt")[1]["step"] == 1


@pytest.mark.slow
def test_resume_is_exact(two_sets, tmp_path):
    """20 steps in one go equal 10 steps + resume to 20 (same samples, same optimizer state)."""
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--images", str(two_sets), "--val-sets", "none", *SMALL]
    assert train_here(["-i", "20", "--out", str(a), *common]).returncode == 0
    r = train_here(["-i", "20", "--stop-at", "10", "--out", str(b), *common])
    assert r.returncode == 0 and "stopped at step 10" in r.stdout
    # metrics.csv's seconds go on across the pause: the first half is made to have taken 1000 s.
    text = (b / "metrics.csv").read_text().splitlines()
    head, (row,) = text[0].split(","), text[1:]
    cells = row.split(",")
    cells[head.index("seconds")] = "1000.0"
    (b / "metrics.csv").write_text("\n".join([text[0], ",".join(cells)]) + "\n")
    # (resumed in a process of its own: nothing of the first half's left in memory)
    assert run_training(["-i", "20", "--out", str(b), "--resume", *common]).returncode == 0
    rows = [(int(row["step"]), float(row["seconds"])) for row in csv.DictReader(open(b / "metrics.csv"))]
    assert [s for s, _ in rows] == [10, 20] and rows[0][1] == 1000.0 and rows[1][1] > 1000.0
    # A run that is done says so, rather than training nothing; nor is there anything to resume elsewhere.
    r = train_here(["-i", "20", "--out", str(b), "--resume", *common])
    assert r.returncode == 2 and r.stderr == (f"Error: --resume: {b / 'last.pt'} is already at step 20 of 20; "
                                              f"ask for more iterations with -i\n")
    assert r.stdout == ""  # the run's header ("training on ...") came before it
    r = train_here(["-i", "20", "--out", str(tmp_path / "c"), "--resume", *common])
    assert r.returncode == 2
    assert r.stderr == f"Error: --resume: no checkpoint to resume at {tmp_path / 'c' / 'last.pt'}\n"
    sa = load_model(a / "last.pt")[0].state_dict()
    sb = load_model(b / "last.pt")[0].state_dict()
    for k in sa:  # the same weights, bit for bit (same samples, same optimizer state, same threads)
        assert torch.equal(sa[k], sb[k]), k
    # The running loss and IoU go on as they were (they started afresh: a spike at the resumed steps).
    for key in ("loss", "train_iou"):
        assert float(history(b)[-1][key]) == pytest.approx(float(history(a)[-1][key]), rel=1e-4), key


@pytest.mark.slow
def test_resume_refuses_a_run_asked_for_with_other_settings(two_sets, tmp_path):
    # Resumed with other held-out sets, the validated best.pt was replaced by an unvalidated one, and
    # set 8 was trained on; another seed, size or batch quietly broke "continues exactly".
    out = tmp_path / "w"
    common = ["--images", str(two_sets), "--out", str(out), "--size", "128x96", "-b", "2", "--threads", "1"]
    r = train_here(["-i", "4", "--stop-at", "2", "--val-sets", "8", "--val-every", "2", "--init", "scratch",
                    *common])
    assert r.returncode == 0, r.stderr
    best = (out / "best.pt").read_bytes()
    for k, (change, said) in enumerate([
            (["--val-sets", "none"], "--val-sets 8, this one asks for none"),
            (["--val-sets", "2"], "--val-sets 8, this one asks for 2"),
            (["--val-sets", "8", "--seed", "3"], "--seed 0, this one asks for 3"),
            (["--val-sets", "8", "-b", "1"], "-b 2, this one asks for 1"),
            (["--val-sets", "8", "--init", "default"], "--init scratch, this one asks for default")]):
        at = common.index("-b")  # (given once: the change's -b instead of the run's)
        given = common[:at] + common[at + 2:] if "-b" in change else common
        run = run_training if k == 0 else train_here  # (the first refused by a process, its exit status)
        r = run(["-i", "4", "--resume", *given, *change])
        assert r.returncode == 2 and r.stderr == (f"Error: --resume: the run was started with {said} "
                                                  f"({out / 'last.pt'}); give the run's options again to "
                                                  f"continue it, or start a new run from it (--init "
                                                  f"{out / 'last.pt'} and another --out)\n"), r.stderr
    r = train_here(["-i", "4", "--resume", "--val-sets", "8", "--stop-at", "2", *common])
    assert r.returncode == 2 and r.stderr == f"Error: --stop-at 2: {out / 'last.pt'} is already at step 2\n"
    assert (out / "best.pt").read_bytes() == best and load_model(out / "last.pt")[1]["step"] == 2
    # More labels since (a frame added to set 2): not the run's samples any more.
    shutil.copy(two_sets / "set2" / "0.png", two_sets / "set2" / "90.png")
    shutil.copy(two_sets / "set2" / "0_mask.png", two_sets / "set2" / "90_mask.png")
    r = train_here(["-i", "4", "--resume", "--val-sets", "8", *common])
    assert r.returncode == 2 and ("started with --images (its labeled frames) set2 (6), set8 (3), this one asks "
                                  "for set2 (7), set8 (3)") in r.stderr, r.stderr
    for name in ("90.png", "90_mask.png"):
        (two_sets / "set2" / name).unlink()
    # The same options (--init left out: the run's own), the images moved and named another way, the
    # held-out sets spelt another way: it goes on.
    moved = tmp_path / "moved"
    two_sets.rename(moved)
    common[1] = os.path.relpath(moved, ROOT)
    r = train_here(["-i", "4", "--resume", "--val-sets", " 8,", "--val-every", "2", "--arch", "base",
                    "--stop-at", "3", *common])
    assert r.returncode == 0, r.stderr
    assert load_model(out / "last.pt")[1]["step"] == 3
    # The run's record keeps its --init (it was rewritten as "default", and the run's own --init
    # given again was then refused).
    assert torch.load(out / "last.pt", weights_only=False)["extra"]["run"]["init"] == "scratch"
    r = train_here(["-i", "4", "--resume", "--val-sets", "8", "--val-every", "2", "--init", "scratch", *common])
    assert r.returncode == 0, r.stderr
    assert load_model(out / "last.pt")[1]["step"] == 4


def test_the_run_sampler_is_distributed_samplers_order_without_its_list():
    # DistributedSampler built a list of iterations x batch x processes indices before step 1:
    # -i 100000000000 ran out of memory, told as "use a smaller -b or --size".
    import itertools
    import tracemalloc

    from torch.utils.data.distributed import DistributedSampler

    from humanseg.train import RunSampler

    class Sized:
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    for world in (1, 2, 3):
        for start in (0, 5, 24):
            for rank in range(world):
                data = Sized(24 * world)
                theirs = list(itertools.islice(DistributedSampler(data, world, rank, shuffle=False), start, None))
                ours = RunSampler(data, world, rank, start)
                assert list(ours) == theirs and len(ours) == len(theirs), (world, start, rank)
    tracemalloc.start()
    huge = RunSampler(Sized(2 * 10**11), 2, 1, 3)
    assert next(iter(huge)) == 7 and len(huge) == 10**11 - 3
    assert tracemalloc.get_traced_memory()[1] < 1_000_000
    tracemalloc.stop()


def test_resume_compares_the_held_out_sets_themselves():
    # A run of an earlier humanseg drew a fraction's sets in another order: resumed, it trained on the
    # sets it had held out, every option given alike. The sets held out are now in the run record.
    from humanseg.train import resume_mismatch

    saved = {"run": {"val_sets": 0.34, "held_out": [[0, "set1"], [0, "set2"]]}}
    now = {"val_sets": 0.34, "held_out": [[1, "set4"], [1, "set5"]]}
    assert resume_mismatch(saved, now) == ("the run was started with held-out sets (--val-sets) set1, set2, this "
                                           "one asks for set4 of --images #2, set5 of --images #2")
    assert resume_mismatch(saved, {**now, "held_out": [[0, "set1"], [0, "set2"]]}) is None
    assert resume_mismatch({"run": {"val_sets": 0.34}}, now) is None  # recorded before: not compared


def test_a_worker_ending_after_the_loop_is_no_failure_and_a_killed_one_is_named_through_the_chain():
    # Both seen once each in a full run: SIGTERM to the process group ended the loader's worker, and
    # PyTorch's SIGCHLD handler raised in the middle of saving last.pt (exit 1 and a traceback); a
    # worker killed for memory came as "exited unexpectedly", caused by "killed by signal: Killed".
    from humanseg.signals import child_ends_ignored
    from humanseg.train import TrainConfig, memory_failure

    def torch_handler(signum, frame):
        raise RuntimeError("DataLoader worker (pid 1602) is killed by signal: Terminated.")

    before = signal.signal(signal.SIGCHLD, torch_handler)
    try:
        with child_ends_ignored():
            os.kill(os.getpid(), signal.SIGCHLD)
            time.sleep(0.01)
        assert signal.getsignal(signal.SIGCHLD) is torch_handler
    finally:
        signal.signal(signal.SIGCHLD, before)
    try:
        try:
            raise RuntimeError("DataLoader worker (pid 1572) is killed by signal: Killed. ")
        except RuntimeError as killed:
            raise RuntimeError("DataLoader worker (pid(s) 1572) exited unexpectedly") from killed
    except RuntimeError as exc:
        said = memory_failure(exc, TrainConfig(images=[]), "cpu", 0, True)
    assert said and said.startswith("a data loader worker was killed at step 1, most likely out of memory")


def _sleep_long():
    time.sleep(60)


def test_a_worker_dying_as_it_hands_a_batch_over_is_named_and_workers_stop_with_the_loop():
    # A worker killed (or ended by a SIGTERM to the process group) while passing its batch's memory
    # over reset the connection: a ConnectionResetError traceback, exit 1, the steps done unsaved.
    import multiprocessing as mp

    from humanseg.train import TrainConfig, _batches, _shut_down_workers, memory_failure

    worker = mp.get_context("fork").Process(target=_sleep_long)
    worker.start()

    class Handover:
        _workers = [worker]

        def __iter__(self):
            return self

        def __next__(self):
            if worker.is_alive():
                os.kill(worker.pid, signal.SIGKILL)
            raise ConnectionResetError(104, "Connection reset by peer")

    class Loader:
        _iterator = Handover()

        def __iter__(self):
            return self._iterator

    with pytest.raises(RuntimeError) as exc:
        next(_batches(Loader()))
    assert str(exc.value) == f"DataLoader worker (pid {worker.pid}) is killed by signal: Killed."
    said = memory_failure(exc.value, TrainConfig(images=[]), "cpu", 6, True)
    assert said.startswith("a data loader worker was killed at step 7, most likely out of memory")
    Handover._workers = []  # no worker gone: the error is what it was
    with pytest.raises(ConnectionResetError):
        next(_batches(Loader()))

    # PyTorch may catch the reset itself and say "exited unexpectedly" (caused by the reset, not by its
    # SIGCHLD handler's "killed by signal"): a traceback, seen once in a full run.
    worker = mp.get_context("fork").Process(target=_sleep_long)
    worker.start()
    Handover._workers = [worker]

    def caught_by_torch(self):
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGKILL)
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as reset:
            raise RuntimeError(f"DataLoader worker (pid(s) {worker.pid}) exited unexpectedly") from reset

    Handover.__next__ = caught_by_torch
    with pytest.raises(RuntimeError) as exc:
        next(_batches(Loader()))
    assert str(exc.value) == f"DataLoader worker (pid {worker.pid}) is killed by signal: Killed."
    assert memory_failure(exc.value, TrainConfig(images=[]), "cpu", 6, True).startswith("a data loader worker was killed")

    def other_failure(self):
        raise RuntimeError("stack expects each tensor to be equal size")

    Handover.__next__ = other_failure  # another RuntimeError: as it was
    with pytest.raises(RuntimeError, match="equal size"):
        next(_batches(Loader()))

    # A persistent loader's workers are stopped when the loop ends, not left to end later under
    # PyTorch's SIGCHLD handler (which raised in the middle of saving, or at the interpreter's exit).
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(8.0)), batch_size=2,
                                       num_workers=1, persistent_workers=True)
    assert [len(b[0]) for b in _batches(data)] == [2, 2, 2, 2]
    workers = list(data._iterator._workers)
    assert workers and all(w.is_alive() for w in workers)
    _shut_down_workers(data)
    assert data._iterator is None and not any(w.is_alive() for w in workers)
    _shut_down_workers(data)  # twice, or without workers: nothing to do
    _shut_down_workers(torch.utils.data.DataLoader(torch.arange(4.0)))


def test_a_second_signal_waits_for_the_step_to_end():
    # A second Ctrl-C raised in the middle of a step: last.pt then held the step before with the
    # BatchNorm statistics (or half the optimizer's update) of the one interrupted.
    from humanseg.signals import StopSignals

    stops = StopSignals()
    stops.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.signum == signal.SIGINT  # the first: stop after this step
        reached = False
        with pytest.raises(KeyboardInterrupt):
            with stops.step():
                os.kill(os.getpid(), signal.SIGINT)  # the second, mid-step
                reached = True  # the step goes on to its end
        assert reached
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # between steps (validation, the loader): at once
            time.sleep(1)
    finally:
        stops.restore()


def test_under_torchrun_a_second_signal_does_not_stop_at_once(capfd):
    # torchrun's agent repeats a signal to every rank: a rank stopping at once on the repeat left the
    # others waiting for it at the next step. The note says so (no "send it again").
    from humanseg.signals import StopSignals

    stops = StopSignals(twice_stops_at_once=False)
    stops.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the repeat, between steps or in one: no stop at once
            with stops.step():
                os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pytest.fail("a repeated signal stopped this rank at once")
        assert stops.signum == signal.SIGINT
        assert capfd.readouterr().err == "\nSIGINT: stopping after this step\n"
    finally:
        stops.restore()


def test_a_loader_worker_ending_mid_step_is_said_after_the_step():
    # PyTorch's loader raises from its SIGCHLD handler when a worker dies (as a SIGTERM to the process
    # group does): raised mid-step, the step counter had moved on without the step's metrics row, and
    # last.pt could hold half a step (the SIGTERM test then failed now and then).
    from humanseg.signals import StopSignals

    def loader_handler(signum, frame):
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")

    previous = signal.signal(signal.SIGCHLD, loader_handler)
    stops = StopSignals()
    try:
        reached = False
        with pytest.raises(RuntimeError, match="is killed by signal"):
            with stops.step():
                os.kill(os.getpid(), signal.SIGCHLD)
                time.sleep(0.05)
                reached = True  # the step goes on to its end
        assert reached and signal.getsignal(signal.SIGCHLD) is loader_handler
        with stops.step():  # a step without a worker ending: nothing said
            pass
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_a_damaged_history_is_read_without_its_bad_rows(tmp_path):
    from humanseg.train import read_history

    path = tmp_path / "metrics.csv"
    # inf as a step was an OverflowError; a nan val_iou broke training.png after the next steps.
    path.write_text("step,loss,train_iou,val_iou\n10,0.5,0.8,\nabc,1,,\n20,0.4,0.85,0.9\n30,x\ninf,1,1,\n"
                    "40,0.3,0.9,nan\n50,0.3,0.9,-inf\n")
    said = []
    rows = read_history(path, said.append)
    assert [(r["step"], r["loss"], r["val_iou"]) for r in rows] == [(10, 0.5, None), (20, 0.4, 0.9)]
    assert said == [f"warning: {path}: 5 row(s) could not be read; left out of the history"]
    # A field over csv's size limit was a traceback (csv.Error) from --resume; that row alone is left out.
    path.write_text("step,loss,train_iou,val_iou\n10,0.5,0.8,\n20," + "9" * 200000 + ",0.8,\n30,0.3,0.9,\n")
    said = []
    assert [r["step"] for r in read_history(path, said.append)] == [10, 30]
    assert said == [f"warning: {path}: 1 row(s) could not be read; left out of the history"]


@pytest.mark.slow
def test_two_process_gloo_run_ends_with_identical_weights(two_sets, tmp_path):
    out = tmp_path / "ddp"
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "training.py", "-i", "6", "--images", str(two_sets), "--out", str(out), "--val-sets", "8",
         "--device", "cpu", *SMALL],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) weights ([0-9a-f]+)", r.stdout))
    assert set(digests) == {"0", "1"}
    assert digests["0"] == digests["1"]
    assert digests["0"] == weights_digest(out / "last.pt")  # the ranks' weights are the saved ones
    # Rank 0 alone says and writes what the run did: its history, with the validation it alone ran.
    assert r.stdout.count("training on ") == 1 and r.stdout.count("done: 6 steps") == 1, r.stdout
    assert [(x["step"], bool(x["val_iou"])) for x in history(out)] == [("6", True)]


def weights_digest(checkpoint) -> str:
    """The rank digest of a checkpoint's weights, computed here: sha256 over the sorted names and bytes."""
    h = hashlib.sha256()
    for k, v in sorted(torch.load(checkpoint, weights_only=False)["state_dict"].items()):
        h.update(k.encode())
        h.update(v.cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def start_in_own_group(cmd, out):
    """Start cmd in a process group of its own (SIGINT not ignored) and wait until out/last.pt exists."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            # (a background CI shell may ignore SIGINT) in a group of our own
                            preexec_fn=lambda: (as_from_a_terminal(), os.setpgrp()))
    deadline = time.monotonic() + 300
    while not (out / "last.pt").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def signal_group_and_wait(proc, sig):
    try:
        os.killpg(proc.pid, sig)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_signal_that_comes_while_the_ranks_agree_stops_them_at_the_next_step(monkeypatch):
    # Under torchrun each rank has its signal once; one that came while the ranks combined theirs was
    # overwritten by the agreed "none", and the run trained on until the agent killed it.
    import torch.distributed as dist

    from humanseg.signals import StopSignals
    from humanseg.train import stop_agreed

    stops = StopSignals(twice_stops_at_once=False)
    stops.install()
    try:
        def others_had_none(flag, op):  # this rank's signal comes while it waits for the others
            assert op == dist.ReduceOp.MAX
            signal.raise_signal(signal.SIGTERM)
            flag.zero_()

        monkeypatch.setattr(dist, "all_reduce", others_had_none)
        assert stop_agreed(stops, "cpu", True) is False  # the ranks agreed on going on: all go on
        assert stops.signum == signal.SIGTERM
        monkeypatch.setattr(dist, "all_reduce", lambda flag, op: None)  # the others have none still
        assert stop_agreed(stops, "cpu", True) is True  # this rank's signal stops them all now
        assert stops.signum == signal.SIGTERM
    finally:
        stops.restore()

    other = StopSignals(twice_stops_at_once=False)
    monkeypatch.setattr(dist, "all_reduce", lambda flag, op: flag.fill_(int(signal.SIGINT)))
    assert stop_agreed(other, "cpu", True) is True and other.signum == signal.SIGINT  # another rank's Ctrl-C
    assert stop_agreed(StopSignals(), "cpu", False) is False  # one process: its own signal alone


@pytest.mark.slow
def test_ctrl_c_under_torchrun_stops_every_rank_at_the_same_step(two_sets, tmp_path):
    # torchrun's agent repeats the signal to the ranks; they agree on one step, end equal, rank 0 saves.
    out = tmp_path / "ddp"
    proc = start_in_own_group(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
         "training.py", "-i", "5000", "--images", str(two_sets), "--out", str(out), "--val-sets", "none",
         "--val-every", "1", "--device", "cpu", "--size", "128x96", "-b", "2", "--threads", "1", "--init", "scratch"],
        out)
    stdout, stderr = signal_group_and_wait(proc, signal.SIGINT)
    digests = dict(re.findall(r"rank (\d) weights ([0-9a-f]+)", stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], stdout + stderr[-3000:]
    saved = re.findall(r"interrupted at step (\d+): saved", stdout)
    assert len(saved) == 1 and load_model(out / "last.pt")[1]["step"] == int(saved[0])
    assert digests["0"] == weights_digest(out / "last.pt")


@pytest.mark.slow
@pytest.mark.one_at_a_time  # (up to 4 GB each: not both at once when `make test` runs two tests at a time)
@pytest.mark.parametrize("workers", ["0", "1"])
def test_running_out_of_memory_is_one_line(two_sets, tmp_path, workers):
    # Batches too large for the memory there is ended in PyTorch's "can't allocate memory" traceback
    # (or, with a loader worker, "unable to mmap ... Cannot allocate memory").
    import resource

    limit = 4 * 2**30  # address space: enough to start, not for 64 samples of 1280x960

    out = tmp_path / "w"
    shared = set(glob.glob("/dev/shm/torch_*"))
    r = subprocess.run([sys.executable, "training.py", "-i", "2", "-b", "64", "--size", "1280x960", "--images",
                        str(two_sets), "--out", str(out), "--val-sets", "none", "--workers", workers,
                        "--threads", "1", "--init", "scratch"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "OMP_NUM_THREADS": "1"},
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    said = ["Error: out of memory at step 1 with -b 64 at --size 1280x960 on cpu (no checkpoint was written); "
            "use a smaller -b or --size"]
    if workers == "1":  # now and then the worker is killed before its allocation fails: said as such
        said.append("Error: a data loader worker was killed at step 1, most likely out of memory (no checkpoint "
                    "was written); use a smaller -b or --size, or --workers 0")
    assert r.stderr.strip().splitlines()[-1] in said
    assert not out.exists()
    # The worker's batch whose mapping failed kept its shared memory file (900 MB of RAM each run, until
    # the machine restarted: a few runs of this test filled /dev/shm and the next was killed). A file is
    # named torch_PID_... after the process that made it: one of a process still running is another
    # test's (`make test` runs two at a time), one of a process that has ended was left behind.
    def running(name):
        try:
            return _alive(int(name.split("_")[1]))
        except (ValueError, IndexError):  # (a name of another form)
            return False

    left = {f for f in set(glob.glob("/dev/shm/torch_*")) - shared if not running(os.path.basename(f))}
    assert not left


@pytest.mark.slow
def test_a_loader_worker_killed_is_one_line(two_sets, tmp_path):
    # The system's out-of-memory killer may pick a data loader worker rather than the trainer: the
    # trainer then ended in the loader's traceback ("DataLoader worker (pid N) is killed by signal").
    out = tmp_path / "w"
    proc = start_in_own_group([sys.executable, "training.py", "-i", "5000", "--val-every", "1", "--images",
                               str(two_sets), "--out", str(out), "--val-sets", "none", *SMALL[:4], "--threads",
                               "1", "--init", "scratch", "--workers", "1"], out)
    try:
        children = [int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert children, "no loader worker found"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    line = stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"Error: a data loader worker was killed at step (\d+), most likely out of memory "
                        rf"\({re.escape(str(out / 'last.pt'))} holds step (\d+)\); use a smaller -b or --size, "
                        rf"or --workers 0", line), line
    assert load_model(out / "last.pt")[1]["step"] >= 1


def test_out_of_memory_validating_is_told_apart_from_a_step(two_sets, tmp_path, monkeypatch):
    # Validation runs whole frames, one at a time: running out of memory there said "at step 3 ...
    # use a smaller -b or --size" after step 2, advice that does not help.
    import humanseg.train as train_module

    def validate(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module, "validate", validate)
    out = tmp_path / "w"
    with pytest.raises(HumansegError) as err:
        train_quietly(two_sets, out, iterations=4, batch=1, size=(128, 96), val_sets="8", val_every=2)
    assert err.value.exit_code == 1 and str(err.value) == (
        "out of memory validating or saving after step 2 on cpu (no checkpoint was written); validation runs "
        "each held-out frame whole: hold out fewer sets, or sets with smaller frames (--val-sets)")


def test_no_labeled_frames_is_a_clear_error(tmp_path):
    root = tmp_path / "images"
    (root / "set1").mkdir(parents=True)
    cv2.imwrite(str(root / "set1" / "bkg.png"), np.zeros((48, 64, 3), np.uint8))
    cv2.imwrite(str(root / "set1" / "0.png"), np.zeros((48, 64, 3), np.uint8))
    r = run_training(["-i", "1", "--images", str(root), "--out", str(tmp_path / "a" / "b" / "w")])
    assert r.returncode == 2
    assert "no labeled frames found" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists()  # no --out folder, nor its parents, made for a run refused


def test_out_folders_made_are_the_runs_own():
    # The run that lost the --out lock removed the folder the winner had just made (both had found it
    # missing), and the winner's checkpoints then had nowhere to go.
    import tempfile

    from humanseg.train import _make_folders

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a" / "b" / "w"
        assert _make_folders(out) == [out, out.parent, out.parent.parent] and out.is_dir()
        assert _make_folders(out) == []  # there already: another run's, not this one's to remove


def test_set_without_bkg_and_mismatched_sizes_are_named(tmp_path):
    root = tmp_path / "images"
    s = root / "set4"
    s.mkdir(parents=True)
    cv2.imwrite(str(s / "0.png"), np.zeros((48, 64, 3), np.uint8))
    r = train_here(["-i", "1", "--images", str(root), "--out", str(tmp_path / "w")])
    assert r.returncode == 2 and "background missing" in r.stderr and "set4" in r.stderr
    cv2.imwrite(str(s / "bkg.png"), np.zeros((40, 64, 3), np.uint8))
    cv2.imwrite(str(s / "0_mask.png"), np.zeros((48, 64), np.uint8))
    r = run_training(["-i", "1", "--images", str(root), "--out", str(tmp_path / "w")])
    assert r.returncode == 2 and "differs from bkg.png" in r.stderr and "0.png" in r.stderr
    assert "Traceback" not in r.stderr


def test_unusable_backgrounds_folder_is_named(two_sets, tmp_path, dev_root):
    rooms = tmp_path / "rooms"
    rooms.mkdir()
    (rooms / "notes.txt").write_text("not an image")
    args = ["-i", "1", "--images", str(two_sets), "--out", str(tmp_path / "w"), "--backgrounds", str(rooms)]
    r = train_here(args)
    assert r.returncode == 2 and f"--backgrounds {rooms} holds no image (.png, .jpg, .bmp, .webp, .tif)" in r.stderr
    shutil.copy(dev_root / "set2" / "bkg.png", rooms / "room.png")
    (rooms / "broken.jpg").write_bytes(b"\xff\xd8 cut short")
    r = run_training(args)
    assert r.returncode == 2 and f"--backgrounds image unreadable or corrupt: {rooms / 'broken.jpg'}" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w" / "last.pt").exists()
    (rooms / "broken.jpg").unlink()
    (rooms / "gone.png").symlink_to(tmp_path / "unmounted" / "room.png")  # said as every image is, not "corrupt"
    r = train_here(args)
    assert r.returncode == 2 and f"--backgrounds image is a link to nothing: {rooms / 'gone.png'}" in r.stderr
    (rooms / "gone.png").unlink()
    # A capture set's folder is no room: its frames show the person (and a held-out set would leak in).
    args[-1] = str(two_sets / "set8")
    r = train_here(args)
    assert r.returncode == 2 and f"--backgrounds {two_sets / 'set8'} is a capture set folder" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w" / "last.pt").exists()
    # Rooms numbered as a video's frames are (1.png, 2.png), with no bkg.png or labels: rooms.
    from humanseg.data.dataset import load_backgrounds

    numbered = tmp_path / "numbered"
    numbered.mkdir()
    for k in (1, 2):
        shutil.copy(dev_root / "set2" / "bkg.png", numbered / f"{k}.png")
    assert len(load_backgrounds(numbered)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, line", [(signal.SIGINT, 130, "Error: interrupted"),
                                             (signal.SIGTERM, 143, "Error: terminated (SIGTERM)"),
                                             (signal.SIGHUP, 129, "Error: terminated (SIGHUP)")])
def test_ctrl_c_or_sigterm_saves_the_step_and_resume_goes_on(two_sets, tmp_path, sig, code, line):
    # The signal goes to the whole process group, as Ctrl-C in a terminal does: the loader's worker too.
    out = tmp_path / "w"
    args = ["--images", str(two_sets), "--out", str(out), "--val-sets", "none", "--size", "128x96", "-b", "2",
            "--threads", "1", "--init", "scratch", "--workers", "1"]
    proc = start_in_own_group([sys.executable, "training.py", "-i", "5000", "--val-every", "1", *args], out)
    stdout, stderr = signal_group_and_wait(proc, sig)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and stderr.strip().endswith(line)
    saved = re.search(r"interrupted at step (\d+): saved (\S+) \(continue with --resume\)", stdout + stderr)
    assert saved and Path(saved.group(2)) == out / "last.pt", stdout + stderr
    step = int(saved.group(1))
    assert 1 <= step < 5000 and load_model(out / "last.pt")[1]["step"] == step
    assert int(history(out)[-1]["step"]) == step
    r = train_here(["-i", str(step + 2), "--resume", "--val-every", "1", *args])
    assert r.returncode == 0, r.stderr
    assert f"resumed {out / 'last.pt'} at step {step}" in r.stdout + r.stderr
    assert load_model(out / "last.pt")[1]["step"] == step + 2


@pytest.mark.slow
def test_an_output_pipe_closed_stops_the_run_as_a_signal_does_with_the_step_saved(two_sets, tmp_path):
    # `training.py ... | head -1` (or a `| tee` that went away): the next validation line raised
    # BrokenPipeError, "Error: Broken pipe", exit 1, and the steps since the last checkpoint were lost.
    out = tmp_path / "w"
    err = tmp_path / "err"
    with open(err, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "training.py", "-i", "5000", "--val-every", "2", "--images",
                                 str(two_sets), "--out", str(out), "--val-sets", "8", "--size", "128x96", "-b", "2",
                                 "--threads", "1", "--init", "scratch", "--workers", "0"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=err_file, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            assert proc.stdout.readline().startswith(b"training on ")
            proc.stdout.close()  # as head -1 does
            assert proc.wait(timeout=300) == 141
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = err.read_text()
    assert "Traceback" not in stderr and stderr.strip().endswith("Error: terminated (SIGPIPE)"), stderr
    step = load_model(out / "last.pt")[1]["step"]
    assert step >= 2 and step % 2 == 0 and int(history(out)[-1]["step"]) == step  # saved where it stopped


@pytest.mark.slow
def test_ctrl_c_with_output_through_tee_saves_the_step(two_sets, tmp_path):
    # `training.py ... 2>&1 | tee log`, then Ctrl-C, which ends tee too: the progress bar's next write
    # raised BrokenPipeError in the clean-up, before the save: no last.pt, a new run's --out removed.
    out, log = tmp_path / "w", tmp_path / "log"
    command = (f"{shlex.quote(sys.executable)} training.py -i 5000 --images {shlex.quote(str(two_sets))} --out "
               f"{shlex.quote(str(out))} --val-sets none --size 128x96 -b 2 --threads 1 --init scratch --workers 0 "
               f"2>&1 | tee {shlex.quote(str(log))} > /dev/null; echo exit=${{PIPESTATUS[0]}}")
    proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: (as_from_a_terminal(), os.setpgrp()))
    try:
        deadline = time.monotonic() + 300
        while "3/5000" not in (log.read_text(errors="replace") if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert stdout.strip().splitlines()[-1] == "exit=130", stdout
    step = load_model(out / "last.pt")[1]["step"]
    assert step >= 3 and int(history(out)[-1]["step"]) == step


@pytest.mark.slow
def test_the_readme_command_trains_on_a_single_set(tmp_path, dev_root):
    # A first afternoon gives one labeled set: the default --val-sets 0.2 must not hold it out.
    root = tmp_path / "images"
    shutil.copytree(dev_root / "set3", root / "set3")
    out = tmp_path / "weights"
    r = train_here(["-i", "2", "-b", "2", "--images", str(root), "--out", str(out), "--size", "128x96",
                    "--threads", "1"])
    assert r.returncode == 0, r.stderr
    assert "training on 4 frames (1 set) + 0 extra rooms; validating on 0 frames (none)" in r.stdout + r.stderr
    assert f"best {out / 'best.pt'} (no validation: the last step's)" in r.stdout + r.stderr
    assert load_model(out / "best.pt")[1]["step"] == 2


def test_an_out_folder_that_cannot_be_written_is_refused_before_training(two_sets, read_only_folder):
    # Checkpoints are first written at the first validation, which a long run reaches after a while.
    r = run_training(["-i", "2", "-b", "1", "--images", str(two_sets), "--out", str(read_only_folder)])
    assert r.returncode == 2 and "step" not in r.stdout + r.stderr
    assert r.stderr == f"Error: --out {read_only_folder}: cannot write there (read-only, or no permission)\n"
    r = train_here(["-i", "2", "-b", "1", "--images", str(two_sets), "--out", str(read_only_folder / "w")])
    assert r.returncode == 2 and r.stderr == f"Error: --out {read_only_folder / 'w'}: cannot write in " \
                                             f"{read_only_folder} (read-only, or no permission)\n"


def test_bad_options_are_usage_errors(tmp_path, two_sets):
    # (What click or training.py refuse, before torch is imported, is run as a process; what the run
    # refuses, in this one (train_here), but for an --out in use by another run.)
    r = run_training(["--size", "100x50"])
    assert r.returncode == 2 and "multiples of 16" in r.stderr
    # A 4K camera's size ran the machine out of memory; samples are frames fitted to 320x240 anyway.
    r = run_training(["--size", "3840x2160", "--images", str(two_sets), "--out", str(tmp_path / "s")])
    assert r.returncode == 2 and "Error: Invalid value for '--size': at most 1280x1280" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
    for seed in ("-5", str(2**70)):  # tracebacks deep in numpy / torch
        r = run_training(["-i", "1", "--seed", seed, "--out", str(tmp_path / "s")])
        assert r.returncode == 2 and r.stderr.startswith("Error: Invalid value for '--seed'"), r.stderr
    assert not (tmp_path / "s").exists()
    # -b 100000 ran the machine out of memory, --workers 100000 forked until killed, --lr 1e38 overflowed,
    # -i 10**20 overflowed in the sampler (a traceback), --boundary-gain 1e39 made the loss nan.
    for option, value, rule in (("'-b' / '--batch'", "100000", "1<=x<=1024"), ("'--workers'", "100000", "0<=x<=64"),
                                ("'--lr'", "1e38", "0<x<=1000000.0"),
                                ("'-i' / '--iterations'", str(10**20), "1<=x<=1000000000"),
                                ("'--boundary-gain'", "1e39", "0<=x<=1000")):
        flag = {"'-b' / '--batch'": "-b", "'-i' / '--iterations'": "-i"}.get(option, option.strip("'"))
        r = run_training(["-i" if flag != "-i" else "-b", "1", flag, value, "--out", str(tmp_path / "s")])
        shown = {"1e38": "1e+38", "1e39": "1e+39"}.get(value, value)
        assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
            f"Error: Invalid value for {option}: {shown} is not in the range {rule}."), r.stderr
    # -b 1 at 32x32: batch normalization of 1x1 features, a traceback; a boundary width of 99999999999
    # overflowed in max_pool2d.
    r = run_training(["-i", "1", "-b", "1", "--size", "32x32", "--out", str(tmp_path / "s")])
    assert r.returncode == 2 and r.stderr == ("Error: -b 1 needs a --size larger than 32x32 (its deepest features "
                                              "would be 1x1, one value per channel, which batch normalization "
                                              "cannot train on)\n")
    r = run_training(["-i", "1", "--boundary-width", "99999999999", "--out", str(tmp_path / "s")])
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("Error: Invalid value for '--boundary-width'")
    # --out as a --backgrounds folder: its training.png became a room of the next run.
    rooms = tmp_path / "rooms"
    rooms.mkdir()
    shutil.copy(two_sets / "set2" / "bkg.png", rooms / "room.png")
    r = train_here(["-i", "1", "--images", str(two_sets), "--backgrounds", str(rooms), "--out", str(rooms)])
    assert r.returncode == 2 and r.stderr == (f"Error: --out {rooms} is a --backgrounds folder, whose every image "
                                              f"is taken for an empty room; choose another --out\n")
    assert sorted(p.name for p in rooms.iterdir()) == ["room.png"]
    r = run_training(["-i", "1", "--resume", "--force", "--out", str(tmp_path / "s")])  # --force went unused
    assert r.returncode == 2 and r.stderr == ("Error: use either --resume (continue the run in --out) or --force "
                                              "(start a new one there), not both\n")
    r = run_training(["-i", "1", "--init", "", "--out", str(tmp_path / "s")])  # was taken for the default
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--init': give default, scratch or a checkpoint file")
    for spec in ("", ","):  # named no set, and was taken for none
        r = run_training(["-i", "1", "--val-sets", spec])
        assert r.returncode == 2 and r.stderr.startswith("Error: Invalid value for '--val-sets': give set numbers")
    # An --out among the capture sets (images/set11 would pass for a set), or whose last.pt is a
    # folder (said after the whole run, naming a temporary file): refused before training.
    r = train_here(["-i", "1", "--images", str(two_sets), "--out", str(two_sets / "set11")])
    assert r.returncode == 2 and f"--out {two_sets / 'set11'}: set11 would sit among the capture sets" in r.stderr
    r = train_here(["-i", "1", "--images", str(two_sets), "--out", str(two_sets / "set2")])
    assert r.returncode == 2 and f"--out {two_sets / 'set2'} is a capture set folder" in r.stderr
    (tmp_path / "w" / "last.pt").mkdir(parents=True)
    r = train_here(["-i", "1", "--images", str(two_sets), "--out", str(tmp_path / "w")])
    assert r.returncode == 2 and r.stderr == f"Error: --out {tmp_path / 'w'}: last.pt there is not a file; move it away\n"
    assert store_sets(two_sets) == [2, 8]
    r = train_here(["-i", "1", "--images", str(tmp_path / "nowhere")])
    assert r.returncode == 2 and "images folder not found" in r.stderr
    # Another run training into the same --out (here: its lock held by this test): the one that ended
    # last replaced the other's finished checkpoints.
    import fcntl
    busy = tmp_path / "busy"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        r = run_training(["-i", "1", "--images", str(two_sets), "--out", str(busy)])
    finally:
        os.close(fd)
    assert r.returncode == 2 and r.stderr == (f"Error: --out {busy} is in use by another training run; wait for it "
                                              f"to end, or choose another --out\n")
    assert list(busy.iterdir()) == []
    # torchrun's variables set by hand, wrongly: a ValueError's traceback from int() or the process group.
    for world, rank, line in (("abc", "0", "WORLD_SIZE='abc' is not a whole number"),
                              ("0", "0", "WORLD_SIZE=0 with RANK=0: a run needs at least one process"),
                              ("2", "-1", "RANK='-1' is not a whole number")):
        r = train_here(["-i", "1", "--images", str(two_sets), "--out", str(tmp_path / "s")],
                       env={"WORLD_SIZE": world, "RANK": rank})
        assert r.returncode == 2 and r.stderr.startswith(f"Error: {line}") and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "s").exists()
    if not torch.cuda.is_available():
        r = train_here(["-i", "1", "--images", str(two_sets), "--device", "cuda", "--out", str(tmp_path / "w")])
        assert r.returncode == 2 and r.stderr == "Error: --device cuda: no CUDA device is available\n"


def test_the_same_images_folder_twice_is_refused(dev_root, tmp_path, monkeypatch):
    # Its frames would count twice (the same folder spelled another way, too).
    from humanseg.data.dataset import load_pairs

    monkeypatch.chdir(dev_root.parent)
    with pytest.raises(HumansegError, match=re.escape(f"--images {dev_root} is given twice (the same folder as dev)")):
        load_pairs([Path("dev"), Path(f"{dev_root}/"), tmp_path])
    r = run_training(["-i", "1", "--images", str(dev_root), "--images", str(dev_root) + "/", "--out",
                      str(tmp_path / "w")])
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert f"--images {dev_root} is given twice" in r.stderr and not (tmp_path / "w").exists()


def test_a_set_folder_reached_twice_through_a_link_is_refused(dev_root, tmp_path):
    # A set of one --images root linked into another: counted twice, and it could be held out for
    # validation under one name while trained on under the other (best.pt picked on training frames).
    from humanseg.data.dataset import load_pairs

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for n in (1, 2):
        shutil.copytree(dev_root / f"set{n}", a / f"set{n}")
    shutil.copytree(dev_root / "set3", b / "set3")
    (b / "set5").symlink_to(a / "set1")
    with pytest.raises(HumansegError, match=re.escape(f"--images: {b / 'set5'} is the set folder {a / 'set1'} again "
                                                      f"(through a link); its frames would count twice, and be "
                                                      f"validated on while trained on")):
        load_pairs([a, b])
    (b / "set5").unlink()
    (a / "set4").symlink_to(a / "set2")  # within one folder too
    with pytest.raises(HumansegError, match=re.escape(f"--images: {a / 'set4'} is the set folder {a / 'set2'} again")):
        load_pairs([a, b])
    (a / "set4").unlink()
    assert len({p.set_key for p in load_pairs([a, b])}) == 3


def test_a_set_folder_not_ours_to_open_is_bad_input_named_as_the_folder(dev_root, tmp_path, unprivileged):
    # "Error: .../set1/bkg.png: Permission denied", exit 1, though bkg.png was fine (training and
    # evaluate; an unreadable frame or mask was already exit 2).
    images = tmp_path / "images"
    for n in (1, 2):
        shutil.copytree(dev_root / f"set{n}", images / f"set{n}")
    for mode in (0, 0o644):  # (not entered; listed but not entered)
        (images / "set1").chmod(mode)
        for argv in (["training.py", "-i", "1", "--images", str(images), "--out", str(tmp_path / "w")],
                     ["-m", "humanseg", "evaluate", "--method", "absdiff", "--images", str(images)]):
            r = subprocess.run(unprivileged([sys.executable, *argv]), cwd=ROOT, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 2 and r.stderr == (f"Error: set folder unreadable (Permission denied): "
                                                      f"{images / 'set1'}\n"), r.stderr
    (images / "set1").chmod(0o755)
    assert not (tmp_path / "w").exists()


def test_held_out_sets_of_several_folders_are_named_with_their_folder(dev_root, tmp_path):
    # "validating on 4 frames (set3)" did not say which folder's set3 (each root may have one).
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(dev_root / "set3", a / "set3")
    shutil.copytree(dev_root / "set8", b / "set3")
    shutil.copytree(dev_root / "set2", b / "set2")
    r = train_here(["-i", "1", "--images", str(a), "--images", str(b), "--val-sets", "3", "--out",
                    str(tmp_path / "w"), *SMALL])
    assert r.returncode == 0, r.stderr
    frames = len(list((a / "set3").glob("*_mask.png"))) + len(list((b / "set3").glob("*_mask.png")))
    assert f"validating on {frames} frames ({a / 'set3'}, {b / 'set3'})" in r.stdout


def test_held_out_sets_are_named_in_number_order(dev_root, tmp_path):
    # `--val-sets 5,9,11` said "(set11, set5, set9)": sorted as text, where every other list of sets
    # (evaluate's table, "sets here: 1, 5, 12") is in number order.
    root = tmp_path / "images"
    for n in (2, 5, 9, 11):
        shutil.copytree(dev_root / f"set{n}", root / f"set{n}")
    r = train_here(["-i", "1", "--images", root, "--val-sets", "5,9,11", "--out", tmp_path / "w", *SMALL])
    assert r.returncode == 0, r.stderr
    assert re.search(r"validating on \d+ frames \(set5, set9, set11\)", r.stdout), r.stdout


def test_the_same_backgrounds_folder_twice_is_refused(two_sets, tmp_path):
    # Its rooms would be drawn twice as often as the command says.
    from humanseg.data.dataset import load_rooms

    rooms = tmp_path / "rooms"
    rooms.mkdir()
    cv2.imwrite(str(rooms / "a.png"), np.full((48, 64, 3), 90, np.uint8))
    assert len(load_rooms([rooms])) == 1
    with pytest.raises(HumansegError, match=re.escape(f"--backgrounds {rooms} is given twice")):
        load_rooms([rooms, f"{rooms}/"])
    with pytest.raises(HumansegError, match=re.escape(f"--backgrounds folder not found: {tmp_path / 'none'}")):
        load_rooms([rooms, tmp_path / "none"])
    r = run_training(["-i", "1", "--images", str(two_sets), "--backgrounds", str(rooms), "--backgrounds",
                      str(tmp_path / "." / "rooms"), "--out", str(tmp_path / "w")])
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "is given twice" in r.stderr and not (tmp_path / "w").exists()


def test_an_images_folder_that_adds_nothing_is_named(dev_root, tmp_path):
    # Among others, a folder without labeled frames (a typo, a set folder) is a mistake, not a no-op.
    from humanseg.data.dataset import load_pairs

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HumansegError, match=re.escape(f"no labeled frames found in {empty}")):
        load_pairs([dev_root, empty])
    with pytest.raises(HumansegError, match=re.escape(f"--images {dev_root / 'set1'} is a set folder; give the "
                                                      f"folder that holds it: {dev_root}")):
        load_pairs([dev_root, dev_root / "set1"])


@pytest.mark.slow
def test_arch_picks_the_network_trained_from_scratch(two_sets, tmp_path):
    from humanseg.model.network import ARCHS, NetConfig

    out = tmp_path / "w"
    r = train_here(["-i", "2", "--images", str(two_sets), "--out", str(out), "--arch", "large",
                    "--val-sets", "none", *SMALL])
    assert r.returncode == 0, r.stderr
    model, _ = load_model(out / "last.pt")
    assert model.config == ARCHS["large"] != NetConfig()
    r = run_training(["-i", "2", "--images", str(two_sets), "--out", str(tmp_path / "w2"), "--arch", "large",
                      "--init", str(out / "last.pt"), "--size", "128x96", "-b", "2"])
    assert r.returncode == 2 and "--arch applies to --init scratch only" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_training(["-i", "2", "--images", str(two_sets), "--arch", "huge"])
    assert r.returncode == 2 and "huge" in r.stderr


@pytest.mark.slow
def test_resumes_a_checkpoint_written_before_learning_rate_scales(two_sets, tmp_path):
    out = tmp_path / "w"
    r = train_here(["-i", "2", "--images", str(two_sets), "--out", str(out), "--val-sets", "none", *SMALL])
    assert r.returncode == 0, r.stderr
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    for g in ckpt["optimizer"]["param_groups"]:
        del g["lr_scale"]  # as the optimizer state of older checkpoints looks
    torch.save(ckpt, out / "last.pt")
    r = train_here(["-i", "3", "--images", str(two_sets), "--out", str(out), "--val-sets", "none", "--resume",
                    *SMALL])
    assert r.returncode == 0, r.stderr
    model, resumed = load_model(out / "last.pt")
    assert resumed["step"] == 3
    assert [g["lr_scale"] for g in resumed["optimizer"]["param_groups"]] == [1.0]


@pytest.mark.slow
def test_pose_arch_starts_from_posenet_and_its_layers_learn_slower(two_sets, tmp_path, posenet_weights):
    from humanseg.pose.weights import load_state_dict
    from humanseg.train import PRETRAINED_LR_SCALE, param_groups

    out = tmp_path / "w"
    env = {"HUMANSEG_POSENET_WEIGHTS": str(posenet_weights)}
    r = train_here(["-i", "2", "--images", str(two_sets), "--out", str(out), "--arch", "pose",
                    "--val-sets", "none", *SMALL], env=env)
    assert r.returncode == 0, r.stderr
    assert "encoder from PoseNet" in r.stdout
    model, ckpt = load_model(out / "last.pt")
    assert model.config.encoder == "posenet050"
    # Adam moves every weight by about the learning rate per step: PoseNet's layers (starting from
    # its checkpoint) a tenth as far as the network's own layers (starting from seed 0's draw).
    state = load_state_dict(posenet_weights, 50)
    moved = (model.encoder.features.conv7.pointwise.weight - state["features.conv7.pointwise.weight"]).abs().max()
    torch.manual_seed(0)
    from humanseg.model.network import ARCHS, SiameseSegNet

    fresh = SiameseSegNet(ARCHS["pose"])
    moved_own = (model.encoder.top[0].pw[0].weight - fresh.encoder.top[0].pw[0].weight).abs().max()
    assert 0 < moved < 1.5e-3 < 3e-3 < moved_own
    groups = param_groups(model)
    assert [g["lr_scale"] for g in groups] == [1.0, PRETRAINED_LR_SCALE]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert [g["lr_scale"] for g in ckpt["optimizer"]["param_groups"]] == [1.0, PRETRAINED_LR_SCALE]
    # Without PoseNet's weights it says where they are missing, in one line.
    r = train_here(["-i", "2", "--images", str(two_sets), "--out", str(tmp_path / "w2"), "--arch", "pose",
                    *SMALL], env={"HUMANSEG_POSENET_WEIGHTS": str(tmp_path / "gone.pth")})
    assert r.returncode == 2 and "gone.pth: no such file" in r.stderr and "Traceback" not in r.stderr
    # None in the cache and no download: said in training's terms (it has no --posenet-weights), exit 2.
    r = run_training(["-i", "2", "--images", str(two_sets), "--out", str(tmp_path / "w3"), "--arch", "pose",
                      *SMALL], env={"HUMANSEG_CACHE": str(tmp_path / "cache"), "HUMANSEG_POSENET_WEIGHTS": "",
                                    "HUMANSEG_POSENET_URL": "http://127.0.0.1:9/"})
    assert r.returncode == 2 and r.stderr.startswith(
        f"Error: --arch pose starts from PoseNet's weights, and there are none: put mobilenet_v1_050.pth in "
        f"{tmp_path / 'cache' / 'posenet'} or set HUMANSEG_POSENET_WEIGHTS=PATH (download of "), r.stderr
    assert r.stderr.endswith("); --arch base needs none\n") and len(r.stderr.splitlines()) == 1


def test_boundary_term_weighs_a_band_around_the_outline():
    from humanseg.train import boundary_weights, dice_loss, segmentation_loss

    target = torch.zeros(1, 1, 20, 20)
    target[..., 5:15, 5:15] = 1
    w = boundary_weights(target, width=2, gain=6.0)
    # Two pixels either side of the outline (rows/cols 5 and 14 are the square's edge pixels):
    # rows/cols 3..16 minus 7..12.
    band = torch.zeros(20, 20, dtype=torch.bool)
    band[3:17, 3:17] = True
    band[7:13, 7:13] = False
    assert torch.equal(w[0, 0] == 7.0, band) and torch.all(w[0, 0][~band] == 1.0)
    logits = torch.randn(1, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    each = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")[0, 0]
    plain = each.mean() + dice_loss(logits, target)
    assert torch.isclose(segmentation_loss(logits, target, 2, 0.0), plain)
    # The band weighs 1 + 6 in the cross-entropy's mean, the rest 1 (weights built by hand above).
    weighted = (each * (1 + 6 * band.float())).mean() + dice_loss(logits, target)
    assert torch.isclose(segmentation_loss(logits, target, 2, 6.0), weighted)
    assert not torch.isclose(segmentation_loss(logits, target, 1, 6.0), weighted)


def test_dice_by_hand_and_its_gradient_on_a_frame_with_nobody_in_it():
    from humanseg.train import dice_loss

    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    p = torch.sigmoid(logits.detach())
    inter, total = (p * target).sum(), p.sum() + target.sum()
    assert torch.isclose(dice_loss(logits, target), 1 - (2 * inter + 1) / (total + 1))
    # Nobody in the frame: the +1 keeps a loss that still pushes every pixel towards background.
    empty = torch.zeros_like(target)
    loss = dice_loss(logits, empty)
    loss.backward()
    assert 0 < loss.item() < 1 and (logits.grad > 0).all()


def test_the_learning_rate_warms_up_then_decays_to_two_percent():
    from humanseg.train import lr_at

    # 1000 steps: 50 of warm-up (5%), the first step already learning, then a cosine to 2% of the rate.
    assert lr_at(0, 1000, 1.0) == pytest.approx(1 / 50) and lr_at(49, 1000, 1.0) == pytest.approx(1.0)
    assert lr_at(50, 1000, 1.0) == pytest.approx(1.0)
    assert lr_at(525, 1000, 1.0) == pytest.approx(0.02 + 0.98 * 0.5)  # halfway through the decay
    assert lr_at(1000, 1000, 1.0) == pytest.approx(0.02) and lr_at(5000, 1000, 2.0) == pytest.approx(0.04)
    assert lr_at(0, 10, 0.5) == pytest.approx(0.5)  # a run too short to warm up (5% of 10 < 1 step)


def test_held_out_sets_are_the_same_however_written():
    from humanseg.train import _val_spec

    for a, b in (("3,7", "7, 3"), ("1,9", "9,1"), ("set2,set10", "10,2"), ("1,2,3,4,5,6,7,8,9", "9,8,7,6,5,4,3,2,1")):
        assert _val_spec(a) == _val_spec(b) == sorted(_val_spec(a)), (a, b)
    assert _val_spec(".2") == _val_spec("0.2") == 0.2


@pytest.mark.slow
def test_boundary_options_reach_the_run_and_its_checkpoint(two_sets, tmp_path):
    out = tmp_path / "w"
    r = train_here(["-i", "2", "--images", str(two_sets), "--out", str(out), "--val-sets", "none",
                    "--boundary-width", "2", "--boundary-gain", "6", *SMALL])
    assert r.returncode == 0, r.stderr
    assert torch.load(out / "last.pt", weights_only=False)["extra"]["boundary"] == [2, 6.0]
    r = run_training(["-i", "2", "--images", str(two_sets), "--boundary-gain", "-1"])
    assert r.returncode == 2 and "--boundary-gain" in r.stderr


@pytest.mark.slow
def test_the_training_step_uses_the_configured_boundary_term(two_sets, tmp_path, monkeypatch):
    from humanseg import train as train_module

    seen = []
    real = train_module.segmentation_loss

    def recording(logits, target, width, gain):
        seen.append((width, gain))
        return real(logits, target, width, gain)

    monkeypatch.setattr(train_module, "segmentation_loss", recording)
    train_quietly(two_sets, tmp_path / "w", batch=1, size=(128, 96), boundary_width=3, boundary_gain=4.5)
    assert seen == [(3, 4.5), (3, 4.5)]


@pytest.mark.slow
def test_refine_kernel_converts_a_loaded_network_and_is_refused_on_resume(two_sets, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    common = ["-i", "2", "--images", str(two_sets), "--val-sets", "none", "--size", "128x96", "-b", "2",
              "--threads", "1"]
    assert train_here([*common, "--out", str(a), "--init", "scratch"]).returncode == 0
    assert load_model(a / "last.pt")[0].config.refine_kernel == 3
    r = train_here([*common, "--out", str(b), "--init", str(a / "last.pt"), "--refine-kernel", "1"])
    assert r.returncode == 0, r.stderr
    assert "refine kernel now 1" in r.stdout
    model = load_model(b / "last.pt")[0]
    assert model.config.refine_kernel == 1 and model.refine.inp.kernel_size == (1, 1)
    r = run_training(["-i", "4", *common[2:], "--out", str(b), "--resume", "--refine-kernel", "3"])
    assert r.returncode == 2 and "--refine-kernel applies to a new run" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_run_that_diverges_stops_in_one_line_and_keeps_its_last_good_checkpoint(two_sets, tmp_path):
    # --lr 1e6 sends the weights to inf within a few steps: the run went on with NaN weights, saved
    # them as last.pt, and then plotting training.png raised a traceback.
    args = ["-b", "2", "--images", str(two_sets), "--val-sets", "none", "--size", "128x96", "--threads", "1",
            "--val-every", "2", "--out", str(tmp_path / "a")]
    assert train_here(["-i", "4", *args]).returncode == 0
    good = (tmp_path / "a" / "last.pt").read_bytes()
    r = run_training(["-i", "40", *args, "--resume", "--lr", "1e6"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    m = re.fullmatch(r"Error: training diverged at step (\d+): (the loss is (nan|inf)|[\w.]+ is not finite) "
                     r"\((.*)\); start again with a lower --lr \(this run's: 1e\+06\)", line)
    assert m, line
    step, kept = int(m.group(1)), m.group(4)
    model, ckpt = load_model(tmp_path / "a" / "last.pt")  # refused if it held NaN
    assert kept == f"{tmp_path / 'a' / 'last.pt'} holds step {ckpt['step']}" and ckpt["step"] == (step - 1) // 2 * 2
    assert ckpt["step"] > 4 or (tmp_path / "a" / "last.pt").read_bytes() == good
    # Diverging before the first checkpoint leaves no --out folder behind.
    r = train_here(["-i", "40", "-b", "2", "--images", str(two_sets), "--val-sets", "none", "--size", "128x96",
                    "--threads", "1", "--lr", "1e6", "--out", str(tmp_path / "b")])
    assert r.returncode == 1 and "(no checkpoint was written)" in r.stderr and not (tmp_path / "b").exists()


def test_a_damaged_optimizer_state_is_named_on_resume(two_sets, tmp_path):
    # Adam's moments of another shape loaded without a word and failed at the first step, in a traceback.
    out = tmp_path / "run"
    common = ["-i", "4", "--images", str(two_sets), "--val-sets", "none", "--out", str(out), *SMALL]
    assert train_here([*common, "--stop-at", "2"]).returncode == 0
    ckpt = torch.load(out / "last.pt", weights_only=True)
    moments = ckpt["optimizer"]["state"][0]
    moments["exp_avg"] = torch.zeros(3, 3)
    torch.save(ckpt, out / "last.pt")
    r = run_training([*common, "--resume"])
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        f"Error: optimizer state in {out / 'last.pt'} does not fit the model")
    ckpt["step"] = "x"
    torch.save(ckpt, out / "last.pt")
    r = train_here([*common, "--resume"])
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == (
        f"Error: checkpoint {out / 'last.pt'} has an invalid step 'x' (a whole number, 0 or more)")
    # The run record and metrics, read by --resume (tracebacks, some after training steps), and a
    # checkpoint without optimizer state (resumed with a fresh one, without a word).
    assert train_here([*common, "--stop-at", "2", "--force"]).returncode == 0
    good = torch.load(out / "last.pt", weights_only=True)
    for damage, said in (
            (lambda c: c.update(extra="x"), "has a damaged run record (extra is a str)"),
            (lambda c: c["extra"].update(best_iou="x"), "has an invalid best_iou 'x' in its run record "
                                                        "(a number from -1 to 1)"),
            (lambda c: c["extra"].update(lr=float("nan")), "has an invalid lr nan in its run record (a positive number)"),
            (lambda c: c.update(metrics={"iou": "x"}), "has damaged metrics"),
            (lambda c: c.update(optimizer=None), "holds no optimizer state, so the run cannot go on exactly (a "
                                                 f"released checkpoint?); start a new run from it with --init {out / 'last.pt'}")):
        ckpt = {**good, "extra": dict(good["extra"])}
        damage(ckpt)
        torch.save(ckpt, out / "last.pt")
        r = train_here([*common, "--resume"])
        assert (r.returncode, r.stderr) == (2, f"Error: --resume: {out / 'last.pt'} {said}\n")
    # No best_iou recorded (None) is no validation yet: it was compared with a number, a traceback.
    torch.save({**good, "extra": {**good["extra"], "best_iou": None}}, out / "last.pt")
    r = train_here([*common, "--resume", "--stop-at", "3"])
    assert r.returncode == 0, r.stderr


def test_a_checkpoint_says_which_step_its_metrics_are_of(two_sets, tmp_path):
    # last.pt at step 6 held step 4's validation scores, saying nothing of it.
    out = tmp_path / "run"
    r = train_here(["-i", "10", "--stop-at", "6", "--images", str(two_sets), "--val-sets", "8", "--out", str(out),
                    "--size", "128x96", "-b", "2", "--val-every", "4", "--threads", "1", "--init", "scratch"])
    assert r.returncode == 0, r.stderr
    _, last = load_model(out / "last.pt")
    _, best = load_model(out / "best.pt")
    assert last["step"] == 6 and last["extra"]["metrics_step"] == 4 and set(last["metrics"]) >= {"iou", "boundary_f"}
    assert best["step"] == 4 and best["extra"]["metrics_step"] == 4 and best["metrics"] == last["metrics"]
    # Paused at 5 and resumed to 6: the same (a resumed last.pt held no metrics, metrics_step None).
    again = tmp_path / "again"
    common = ["-i", "10", "--images", str(two_sets), "--val-sets", "8", "--out", str(again), "--size", "128x96",
              "-b", "2", "--val-every", "4", "--threads", "1", "--init", "scratch"]
    assert train_here([*common, "--stop-at", "5"]).returncode == 0
    # best.pt gone (last.pt copied on its own): said, and the next validation writes it (the run's
    # "done" line named a best.pt that was never written).
    (again / "best.pt").unlink()
    r = train_here([*common, "--stop-at", "6", "--resume"])
    assert r.returncode == 0, r.stderr
    assert f"warning: --resume: {again / 'best.pt'} is missing" in r.stdout and not (again / "best.pt").exists()
    _, resumed = load_model(again / "last.pt")
    assert resumed["step"] == 6 and resumed["extra"]["metrics_step"] == 4 and resumed["metrics"] == last["metrics"]
    assert train_here([*common, "--stop-at", "8", "--resume"]).returncode == 0
    assert load_model(again / "best.pt")[1]["step"] == 8


def test_the_plot_of_a_run_of_one_row_shows_its_loss(tmp_path):
    # A run under 10 steps writes one metrics row: the loss was drawn as a line of one point, nothing.
    from humanseg.train import plot_history

    plot_history([{"step": 4, "loss": 0.8, "train_iou": 0.5}], tmp_path / "training.png")
    img = cv2.imread(str(tmp_path / "training.png"))
    loss_colour = (np.abs(img.astype(int) - (200, 80, 0)).sum(axis=2) < 60)
    loss_colour[:40] = False  # (the legend's text above the frame)
    assert loss_colour.sum() >= 9
    # No rows (a --force run stopped before its first step): an empty plot replaces the last run's.
    plot_history([], tmp_path / "training.png")
    img = cv2.imread(str(tmp_path / "training.png"))
    assert img.shape == (400, 800, 3) and not (np.abs(img.astype(int) - (200, 80, 0)).sum(axis=2) < 60).any()


def test_the_plot_puts_each_value_where_its_axis_says(tmp_path):
    # A falling loss and a rising IoU: the loss line high at the left and low at the right, the IoU's
    # the other way round; each scaled to the 300 px tall frame (loss 0..its largest, IoU 0..1).
    from humanseg.train import plot_history

    rows = [{"step": s, "loss": 1.0 - 0.009 * s, "train_iou": 0.5, "val_iou": 0.01 * s} for s in range(0, 101, 10)]
    plot_history(rows, tmp_path / "training.png")
    img = cv2.imread(str(tmp_path / "training.png")).astype(int)

    def rows_of(colour, x):
        near = np.abs(img[45:, x - 1:x + 2] - colour).sum(axis=2).min(axis=1) < 60
        return 45 + np.flatnonzero(near)

    loss, iou = (200, 80, 0), (0, 160, 0)
    # Frame from y 50 (top) to 350 (bottom), x 50 to 750.
    assert abs(rows_of(loss, 52).mean() - 50) < 4 and abs(rows_of(loss, 748).mean() - (350 - 0.1 * 300)) < 4
    assert abs(rows_of(iou, 52).mean() - 350) < 4 and abs(rows_of(iou, 748).mean() - 50) < 4


@pytest.mark.slow
def test_resume_keeps_the_runs_best_score(two_sets, tmp_path):
    # Nothing checked that a resumed run goes on from its recorded best: forgotten, the first
    # validation after --resume would replace best.pt with a worse checkpoint.
    out = tmp_path / "w"
    args = ["--images", str(two_sets), "--out", str(out), "--val-sets", "8", *SMALL[:4], "--threads", "1",
            "--init", "scratch", "--val-every", "2"]
    first = train_here(["-i", "2", *args])
    assert first.returncode == 0, first.stderr
    record = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    record["extra"]["best_iou"] = 1.0  # as if the run had validated perfectly: nothing can beat it
    torch.save(record, out / "last.pt")
    best = (out / "best.pt").read_bytes()
    again = train_here(["-i", "4", *args, "--resume"])
    assert again.returncode == 0, again.stderr
    assert (out / "best.pt").read_bytes() == best  # step 4's validation (below 1) did not replace it
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert last["step"] == 4 and last["extra"]["best_iou"] == 1.0


@pytest.mark.slow
def test_every_validation_and_the_last_step_are_recorded_and_a_forced_runs_best_is_kept(two_sets, tmp_path):
    out = tmp_path / "w"
    small = ["--images", str(two_sets), "--out", str(out), "--size", "128x96", "-b", "2", "--threads", "1",
             "--init", "scratch"]
    # A run without validation: its last step is in metrics.csv and training.png, and best.pt is
    # the last step's, also where --stop-at pauses it.
    r = train_here(["-i", "2", "--val-sets", "none", *small])
    assert r.returncode == 0, r.stderr
    assert [x["step"] for x in history(out)] == ["2"] and cv2.imread(str(out / "training.png")) is not None
    r = train_here(["-i", "4", "--stop-at", "2", "--val-sets", "none", "--force", *small])
    assert r.returncode == 0, r.stderr
    assert load_model(out / "best.pt")[1]["step"] == 2
    # Replacing it (--force) with a run that validates before it writes any last.pt: the new best.pt,
    # written first, is the one kept.
    args = ["-i", "7", "--val-every", "3", "--val-sets", "8", *small]
    r = train_here([*args, "--stop-at", "3", "--force"])
    assert r.returncode == 0, r.stderr
    assert load_model(out / "best.pt")[1]["step"] == 3
    # Validated every 3 steps and at the last (7, off that grid); each validation is a row of its own
    # with all three scores, whatever its step.
    r = train_here([*args, "--resume"])
    assert r.returncode == 0, r.stderr
    validated = [x for x in history(out) if x["val_iou"]]
    assert [x["step"] for x in validated] == ["3", "6", "7"]
    assert all(float(x["val_dice"]) >= 0 and float(x["val_boundary_f"]) >= 0 for x in validated)
    assert load_model(out / "last.pt")[1]["step"] == 7


@pytest.fixture
def parsed(monkeypatch):
    """training.py's command with the run replaced by a note of its TrainConfig: invoke(args) -> (result, cfg)."""
    from click.testing import CliRunner

    import training
    from humanseg import train as train_module

    seen = []
    monkeypatch.setattr(train_module, "train", lambda cfg, log=print: seen.append(cfg))

    def invoke(args):
        seen.clear()
        result = CliRunner().invoke(training.main, args)
        return result, (seen[0] if seen else None)

    return invoke


def test_the_command_passes_its_options_and_documented_defaults_to_the_run(parsed):
    # training.py only parses: what the run gets is the README's defaults, and each option converted
    # (--val-sets in any case of "none" is no held-out set, --refine-kernel a number, repeatables lists).
    from humanseg.train import TrainConfig

    result, cfg = parsed([])
    assert result.exit_code == 0, result.output
    assert cfg == TrainConfig(
        images=["images"], iterations=1000, batch=2, out="weights", resume=False, force=False, lr=None,
        size=(320, 240), val_sets="0.2", device="auto", seed=0, workers=0, init=None, val_every=250,
        backgrounds=[], threads=None, stop_at=None, arch=None, boundary_width=5, boundary_gain=2.0,
        refine_kernel=None)
    result, cfg = parsed([
        "-i", "7", "-b", "3", "--images", "a", "--images", "b", "--out", "o", "--resume", "--lr", "0.01",
        "--size", "64x48", "--val-sets", "NONE", "--device", "cpu", "--seed", "4", "--workers", "1",
        "--init", "scratch", "--arch", "large", "--val-every", "5", "--backgrounds", ".", "--threads", "2",
        "--stop-at", "6", "--boundary-width", "3", "--boundary-gain", "0.5", "--refine-kernel", "1"])
    assert result.exit_code == 0, result.output
    assert cfg == TrainConfig(
        images=["a", "b"], iterations=7, batch=3, out="o", resume=True, force=False, lr=0.01, size=(64, 48),
        val_sets=None, device="cpu", seed=4, workers=1, init="scratch", val_every=5, backgrounds=["."],
        threads=2, stop_at=6, arch="large", boundary_width=3, boundary_gain=0.5, refine_kernel=1)


@pytest.mark.parametrize("size, taken", [("320", (320, 320)), ("64X48", (64, 48)), ("32x32", (32, 32)),
                                         ("1280x1280", (1280, 1280)), ("1280x32", (1280, 32))])
def test_a_size_at_the_edges_of_its_range_is_taken(size, taken):
    import training

    assert training._size(None, None, size) == taken


@pytest.mark.parametrize("size", ["16x64", "64x16", "40x64", "64x40", "1296x64", "64x1296", "64x", "ax64"])
def test_a_size_outside_its_range_is_refused(size):
    import click

    import training

    with pytest.raises(click.BadParameter):
        training._size(None, None, size)


def test_torchruns_variables_out_of_range_are_named_before_the_process_group(monkeypatch):
    # RANK 2 of 2, a LOCAL_RANK that is no number, a digit int() refuses (²): init_process_group failed
    # in a traceback (or waited); spaces around a number are no error.
    from humanseg.train import _launch_env

    for world, rank, local, said in (("2", "2", "0", "WORLD_SIZE=2 with RANK=2: a run needs"),
                                     ("2", "1", "x", "LOCAL_RANK='x' is not a whole number"),
                                     ("\u00b2", "0", "0", "WORLD_SIZE='\u00b2' is not a whole number")):
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local)
        with pytest.raises(HumansegError, match=re.escape(said)):
            _launch_env()
    monkeypatch.setenv("WORLD_SIZE", " 2 ")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    # A WORLD_SIZE left in the shell without torchrun's meeting place: torch's ValueError traceback
    # ("environment variable MASTER_ADDR expected, but not set"; MASTER_PORT=abc: int()'s).
    for addr, port, said in ((None, None, "WORLD_SIZE=2 but MASTER_ADDR is not set (torchrun sets it; unset "
                                          "WORLD_SIZE to train in one process)"),
                             ("127.0.0.1", None, "WORLD_SIZE=2 but MASTER_PORT is not set"),
                             ("127.0.0.1", "abc", "MASTER_PORT='abc' is not a whole number"),
                             (" ", "29500", "WORLD_SIZE=2 but MASTER_ADDR is not set"),
                             ("127.0.0.1", "70000", "MASTER_PORT=70000 is not a port (1 to 65535")):
        for name, value in (("MASTER_ADDR", addr), ("MASTER_PORT", port)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        with pytest.raises(HumansegError, match=re.escape(said)):
            _launch_env()
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert _launch_env() == (2, 1)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name)
    assert _launch_env() == (1, 0)  # one process needs none of them


@pytest.mark.parametrize("name", ["last.pt", "best.pt", "metrics.csv", "training.png"])
def test_any_of_the_runs_files_that_is_not_a_file_is_refused_before_training(two_sets, tmp_path, name):
    from humanseg import train as train_module

    out = tmp_path / "w"
    (out / name).mkdir(parents=True)
    with pytest.raises(HumansegError) as err:
        train_module.train(train_module.TrainConfig(images=[str(two_sets)], iterations=1, out=str(out)),
                           log=lambda *a, **k: None)
    assert str(err.value) == f"--out {out}: {name} there is not a file; move it away"
    assert [p.name for p in out.iterdir()] == [name]


def test_an_init_checkpoint_is_the_same_run_however_its_path_is_written(tmp_path, monkeypatch):
    # Resumed with --init given as an absolute path where the run had it relative (or the other
    # way), the run was refused as started from another checkpoint.
    from humanseg.train import TrainConfig, resume_mismatch, run_settings

    monkeypatch.chdir(tmp_path)
    relative = run_settings(TrainConfig(images=[], init="w/last.pt"), 1, [], [])
    absolute = run_settings(TrainConfig(images=[], init=str(tmp_path / "w" / "last.pt")), 1, [], [])
    assert relative["init"] == str(tmp_path / "w" / "last.pt")
    assert resume_mismatch({"run": relative}, absolute) is None
    assert resume_mismatch({"run": relative}, run_settings(TrainConfig(images=[], init="v/last.pt"), 1, [], []))


@pytest.mark.slow
def test_the_initial_weights_follow_the_seed(two_sets, tmp_path):
    # --seed's help: "Initial weights and every sample follow from it". One step at a negligible rate
    # leaves the weights where the seed put them.
    from humanseg.model.network import ARCHS, SiameseSegNet

    for seed in (0, 5):
        out = tmp_path / f"seed{seed}"
        train_quietly(two_sets, out, iterations=1, lr=1e-12, seed=seed)
        trained = load_model(out / "last.pt")[0].state_dict()
        torch.manual_seed(seed)
        fresh = SiameseSegNet(ARCHS["base"]).state_dict()
        weights = [k for k in fresh if k.endswith(".weight") and fresh[k].dim() == 4]
        assert weights and all(torch.allclose(trained[k], fresh[k], atol=1e-6) for k in weights), seed


def test_validation_scores_each_frame_against_its_own_sets_background(two_sets, default_weights):
    # Held-out sets of other rooms: each frame is compared with its own set's bkg.png, and the scores
    # are the mean over frames.
    from humanseg.data.dataset import load_pairs
    from humanseg.train import validate

    model = load_model(default_weights)[0].eval()
    pairs = load_pairs([two_sets])
    per_set = [[p for p in pairs if p.set_key.endswith(f":set{n}")] for n in (2, 8)]
    assert all(per_set) and not np.array_equal(per_set[0][0].background, per_set[1][0].background)
    each = [validate(model, ps, 320) for ps in per_set]
    both = validate(model, per_set[0] + per_set[1], 320)
    n = [len(ps) for ps in per_set]
    for key in ("iou", "dice", "boundary_f"):
        assert both[key] == pytest.approx((each[0][key] * n[0] + each[1][key] * n[1]) / sum(n), abs=1e-9), key
    assert each[1]["iou"] > 0.5


@pytest.mark.slow
def test_a_resume_from_an_earlier_last_pt_drops_the_history_after_its_step(two_sets, tmp_path):
    # last.pt put back from a copy of step 2 after the run went on to 4: metrics.csv held step 4 twice
    # (the old run's and the new one's) and the plot went back and forth.
    out = tmp_path / "w"
    train_quietly(two_sets, out, iterations=4, stop_at=2)
    early = (out / "last.pt").read_bytes()
    train_quietly(two_sets, out, iterations=4, resume=True)
    assert [x["step"] for x in history(out)] == ["2", "4"]
    (out / "last.pt").write_bytes(early)
    train_quietly(two_sets, out, iterations=4, resume=True)
    assert [x["step"] for x in history(out)] == ["2", "4"]


def test_resume_refuses_a_run_record_out_of_its_ranges():
    # A best_iou above 1 was never beaten (best.pt never written again), an lr of 0 trained nothing,
    # a bool passed for a number; each is named, where a hand-edited last.pt went on without a word.
    from humanseg.errors import WeightsError
    from humanseg.train import resume_record

    good = {"extra": {"best_iou": 0.5, "lr": 0.003, "metrics_step": 4}, "metrics": {"iou": 0.5}, "optimizer": {}}
    assert resume_record(good, Path("w/last.pt")) == {"extra": good["extra"], "metrics": {"iou": 0.5}}
    edge = {**good, "extra": {"best_iou": -1, "lr": 1e-9, "metrics_step": 0}, "metrics": None}
    assert resume_record(edge, Path("w/last.pt"))["metrics"] == {}
    assert resume_record({**good, "extra": None}, Path("w/last.pt"))["extra"] == {}
    for change, said in ((dict(best_iou=1.5), "invalid best_iou 1.5"), (dict(best_iou=-1.01), "invalid best_iou"),
                         (dict(best_iou=True), "invalid best_iou True"), (dict(lr=0.0), "invalid lr 0.0"),
                         (dict(lr=-1e-3), "invalid lr"), (dict(lr=float("inf")), "invalid lr inf"),
                         (dict(metrics_step=-1), "invalid metrics_step -1"),
                         (dict(metrics_step=2.0), "invalid metrics_step 2.0")):
        with pytest.raises(WeightsError, match=re.escape(said)):
            resume_record({**good, "extra": {**good["extra"], **change}}, Path("w/last.pt"))
    for metrics in ({1: 0.5}, {"iou": None}, ["iou"]):
        with pytest.raises(WeightsError, match="has damaged metrics"):
            resume_record({**good, "metrics": metrics}, Path("w/last.pt"))


def test_resume_holds_a_checkpoint_from_before_run_records_to_what_it_stored():
    # Checkpoints written before extra["run"] stored their --val-sets (as given), --seed and boundary
    # term (the gain as given, 2 for 2.0): those are compared, spelt as the run spells them now.
    from humanseg.train import resume_mismatch

    old = {"val_sets": "8, 3", "seed": 0, "boundary": [5, 2]}
    now = {"images": [[["set2", 6]]], "val_sets": [3, 8], "seed": 0, "boundary": [5, 2.0], "held_out": [[0, "set3"]]}
    assert resume_mismatch(old, now) is None
    assert resume_mismatch(old, {**now, "seed": 1}) == "the run was started with --seed 0, this one asks for 1"
    assert resume_mismatch(old, {**now, "val_sets": [3]}) == (
        "the run was started with --val-sets 3,8, this one asks for 3")
    assert resume_mismatch(old, {**now, "boundary": [5, 6.0]}) == (
        "the run was started with --boundary-width / --boundary-gain 5 / 2, this one asks for 5 / 6")
    # Every difference in one line (said one at a time, a user gave the options again run after run);
    # the held-out sets, which follow from --images and --val-sets, only when nothing else differs.
    saved = {"run": {**now, "size": [64, 48]}}
    assert resume_mismatch(saved, {**now, "seed": 1, "size": [96, 64], "held_out": [[0, "set2"]]}) == (
        "the run was started with --seed 0, this one asks for 1; with --size 64x48, this one asks for 96x64")
    assert resume_mismatch(saved, {**now, "size": [64, 48], "held_out": [[0, "set2"]]}) == (
        "the run was started with held-out sets (--val-sets) set3, this one asks for set2")


def test_the_default_init_is_the_shipped_model_and_without_it_a_fresh_network(default_weights, monkeypatch, tmp_path):
    from humanseg import train as train_module

    model, origin = train_module.initial_model("default")
    shipped = load_model(default_weights)[0]
    assert origin == f"shipped model {default_weights.name}" and model.config == shipped.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))
    monkeypatch.setattr(train_module, "DEFAULT_WEIGHTS", tmp_path / "default.pt")
    model, origin = train_module.initial_model("default")
    assert origin == "scratch (no shipped model found)" and model.config == train_module.ARCHS["base"]


def test_a_workers_shared_memory_files_are_removed_and_no_one_elses(tmp_path):
    # A batch whose mapping failed for want of memory keeps its /dev/shm file until the machine restarts.
    from humanseg.train import _remove_shared_memory_of

    names = ["torch_12_0_1", "torch_12_9", "torch_123_0_1", "torch_4_0", "torch_120", "other_12_0"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    _remove_shared_memory_of([12, 77], str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_12_0", "torch_120", "torch_123_0_1", "torch_4_0"]
    _remove_shared_memory_of([4], str(tmp_path / "gone"))  # no such folder: nothing to do


def test_the_labeled_frames_of_a_run_are_counted_per_folder_in_set_number_order():
    from humanseg.data.dataset import Pair
    from humanseg.train import _shown, labeled_frames

    blank = np.zeros((2, 2), np.uint8)
    keys = ["a:set10", "a:set2", "a:set10", "b:set1", "a:set2", "a:set10"]
    frames = labeled_frames([Pair(k, blank, blank, blank) for k in keys])
    assert frames == [[["set2", 2], ["set10", 3]], [["set1", 1]]]
    assert _shown("images", frames) == "set2 (2), set10 (3); set1 (1)"


def test_a_flag_given_twice_is_no_option_given_twice(parsed):
    # Only options of one value are refused when repeated: --resume --resume asks for the same thing.
    result, cfg = parsed(["--resume", "--resume", "--images", "a", "--images", "b"])
    assert result.exit_code == 0 and cfg.resume and cfg.images == ["a", "b"], result.output
    result, cfg = parsed(["--seed", "1", "--seed=2"])
    assert result.exit_code == 2 and "--seed given 2 times; give it once" in result.output and cfg is None


def test_only_one_sample_per_step_at_the_smallest_size_is_refused(parsed):
    # Batch normalization needs more than one value per channel: -b 1 at 32x32 (1x1 deepest features).
    for args in (["-b", "1", "--size", "64x32"], ["-b", "1", "--size", "32x64"], ["-b", "2", "--size", "32x32"]):
        result, cfg = parsed(args)
        assert result.exit_code == 0 and cfg is not None, (args, result.output)
    result, cfg = parsed(["-b", "1", "--size", "32"])
    assert result.exit_code == 2 and "-b 1 needs a --size larger than 32x32" in result.output and cfg is None
    result, cfg = parsed(["--init", "  "])  # blank, as an unset variable in quotes with spaces
    assert result.exit_code == 2 and "give default, scratch or a checkpoint file" in result.output


@pytest.mark.slow
def test_metrics_csv_and_the_lines_said_hold_each_steps_rate_and_validation_scores(two_sets, tmp_path, capsys):
    # Each column is what its name says: the rate the step trained at (warm-up, then the cosine), and
    # the validation scores the checkpoints hold for that step. Each validation is said in a line, and
    # the run's end names best.pt with the best score (not the last), which best.pt's step is of;
    # --threads is torch's thread count.
    from humanseg.train import lr_at

    out, said = tmp_path / "w", []
    threads = torch.get_num_threads()
    try:
        result = train_quietly(two_sets, out, iterations=30, val_sets="8", val_every=10, lr=0.01, threads=1,
                               log=said.append)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    rows = {int(x["step"]): x for x in history(out)}
    assert sorted(rows) == [10, 20, 30]
    shown = capsys.readouterr().out
    for step, row in rows.items():
        assert float(row["lr"]) == pytest.approx(lr_at(step - 1, 30, 0.01), rel=1e-6)
        scores = [float(row[f"val_{key}"]) for key in ("iou", "dice", "boundary_f")]
        assert (f"step {step}: val mIoU {scores[0]:.4f}  Dice {scores[1]:.4f}  boundary F {scores[2]:.4f}"
                in shown), shown
    _, last = load_model(out / "last.pt")
    assert last["step"] == 30 and [float(rows[30][f"val_{key}"]) for key in ("iou", "dice", "boundary_f")] == \
        pytest.approx([last["metrics"][key] for key in ("iou", "dice", "boundary_f")], rel=1e-6)
    best_step = max(rows, key=lambda s: float(rows[s]["val_iou"]))
    best = float(rows[best_step]["val_iou"])
    assert said[-1] == f"done: 30 steps; last {out / 'last.pt'}, best {out / 'best.pt'} (val mIoU {best:.4f})"
    assert load_model(out / "best.pt")[1]["step"] == best_step
    assert result["step"] == 30 and result["best_iou"] == pytest.approx(best)


def test_a_history_with_bytes_that_are_not_text_or_an_extra_field_is_read(tmp_path):
    # A byte that is not UTF-8 (a file edited in another encoding) was a UnicodeDecodeError's traceback
    # from --resume; a row with one field too many keeps the fields it names.
    from humanseg.train import read_history

    path = tmp_path / "metrics.csv"
    path.write_bytes(b"step,loss,train_iou,val_iou\n10,0.5,0.8,\n20,0.4\xff,0.85,\n30,0.3,0.9,0.7,junk\n")
    said = []
    rows = read_history(path, said.append)
    assert [(r["step"], r["loss"], r["val_iou"]) for r in rows] == [(10, 0.5, None), (30, 0.3, 0.7)]
    assert said == [f"warning: {path}: 1 row(s) could not be read; left out of the history"]
    assert read_history(tmp_path / "none.csv", said.append) == [] and len(said) == 1


def test_the_run_record_holds_what_the_samples_follow_from_and_each_difference_is_said():
    from humanseg.train import TrainConfig, resume_mismatch, run_settings

    cfg = TrainConfig(images=[], batch=3, size=(64, 48), val_sets=" 7,3", seed=9, boundary_width=2,
                      boundary_gain=6, init="scratch")
    record = run_settings(cfg, 2, [], ["room"] * 4)
    assert record == {"images": [], "backgrounds": 4, "val_sets": [3, 7], "seed": 9, "size": [64, 48], "batch": 3,
                      "processes": 2, "boundary": [2, 6.0], "init": "scratch", "arch": "base", "held_out": []}
    assert resume_mismatch({"run": record}, record) is None
    for key, now, said in (("backgrounds", 0, "--backgrounds (4 room images), this one asks for (0 room images)"),
                           ("size", [128, 96], "--size 64x48, this one asks for 128x96"),
                           ("batch", 2, "-b 3, this one asks for 2"),
                           ("processes", 1, "processes (torchrun) 2, this one asks for 1"),
                           ("arch", "large", "--arch base, this one asks for large"),
                           ("images", [[["set1", 2]]],
                            "--images (its labeled frames) none, this one asks for set1 (2)"),
                           ("held_out", [[0, "set3"]], "held-out sets (--val-sets) none, this one asks for set3")):
        assert resume_mismatch({"run": record}, {**record, key: now}) == f"the run was started with {said}", key


def test_a_data_loader_worker_leaves_signals_to_the_trainer_and_closes_its_out_lock(tmp_path):
    # A worker outliving a killed trainer kept --out locked; Ctrl-C or a closed terminal killed workers
    # under a batch the trainer was waiting for, where the trainer saves first and then stops them.
    from humanseg import train as train_module

    fd = os.open(tmp_path, os.O_RDONLY)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    train_module._locks.append(fd)
    try:
        signal.signal(signal.SIGTERM, lambda *a: None)
        train_module._worker_leaves_signals_to_trainer(0)
        assert {s: signal.getsignal(s) for s in handlers} == {
            signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_IGN}
        with pytest.raises(OSError):
            os.fstat(fd)
    finally:
        train_module._locks.remove(fd)
        for s, handler in handlers.items():
            signal.signal(s, handler)


@pytest.mark.parametrize("option, last_taken, first_refused", [
    ("-i", "1000000000", "1000000001"), ("-b", "1024", "1025"), ("--workers", "64", "65"),
    ("--threads", "256", "257"), ("--seed", str(2**32 - 1), str(2**32)), ("--lr", "1e6", "1000001"),
    ("--boundary-width", "100", "101"), ("--boundary-gain", "1000", "1000.5"), ("--val-every", "1", "0"),
    ("--stop-at", "1", "0"), ("--lr", "1e-300", "0")])
def test_each_numeric_option_takes_its_last_value_and_refuses_the_next(parsed, option, last_taken, first_refused):
    taken, cfg = parsed([option, last_taken])
    assert taken.exit_code == 0 and cfg is not None, taken.output
    refused, cfg = parsed([option, first_refused])
    assert refused.exit_code == 2 and "is not in the range" in refused.output and cfg is None, refused.output


def test_each_way_of_running_out_of_memory_is_said_as_such_and_other_failures_are_left_alone():
    from humanseg.train import TrainConfig, memory_failure

    cfg = TrainConfig(images=[], batch=8, size=(256, 192))
    for exc in (RuntimeError("DataLoader worker (pid 9) is killed by signal: Bus error."),  # as _batches says it
                RuntimeError("unable to write to file </torch_9_1>: No space left on device (28): shared memory")):
        assert memory_failure(exc, cfg, "cpu", 4, True) == (
            "the data loader's shared memory (/dev/shm) ran out at step 5 ({kept}); use --workers 0, or give "
            "/dev/shm more room")
    assert memory_failure(MemoryError(), cfg, "cuda:0", 4, True) == (
        "out of memory at step 5 with -b 8 at --size 256x192 on cuda:0 ({kept}); use a smaller -b or --size")
    # oneDNN's convolution without memory for its workspace (a traceback under `ulimit -v`):
    assert memory_failure(RuntimeError("could not create a primitive"), cfg, "cpu", 4, True).startswith(
        "out of memory at step 5 with -b 8")
    assert memory_failure(RuntimeError("CUDA out of memory"), cfg, "cpu", 4, False).startswith(
        "out of memory validating or saving after step 4 on cpu ({kept}); validation runs each held-out frame whole")
    for exc in (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), ValueError("out of memory"),
                RuntimeError("DataLoader worker (pid 9) is killed by signal: Terminated.")):
        assert memory_failure(exc, cfg, "cpu", 4, True) is None, exc


def loss_at_step(monkeypatch, step: int, change) -> None:
    """The training step `step` (from 1) of the next run in this process has change(loss) as its loss
    (change may raise instead: a failure in that step)."""
    from humanseg import train as train_module

    real, calls = train_module.segmentation_loss, []

    def loss(*args):
        calls.append(1)
        value = real(*args)
        return change(value) if len(calls) == step else value

    monkeypatch.setattr(train_module, "segmentation_loss", loss)


def test_running_out_of_memory_in_a_later_step_is_said_as_a_step_with_the_checkpoint_kept(
        two_sets, tmp_path, monkeypatch):
    # After a step's checkpoint the next step's failure is a step's again (not "validating or saving").
    def fails(loss):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    loss_at_step(monkeypatch, 3, fails)
    out = tmp_path / "w"
    with pytest.raises(HumansegError) as err:
        train_quietly(two_sets, out, iterations=6, val_every=2)
    assert err.value.exit_code == 1 and str(err.value) == (
        f"out of memory at step 3 with -b 2 at --size 64x64 on cpu ({out / 'last.pt'} holds step 2); "
        f"use a smaller -b or --size")
    assert load_model(out / "last.pt")[1]["step"] == 2


def test_a_loss_gone_infinite_is_named_as_the_loss_and_its_step_is_not_saved(two_sets, tmp_path, monkeypatch):
    # The loss is checked before the weights: a forward pass that overflowed says so, not "the
    # weights of some layer are not finite" (which the step made of it afterwards).
    loss_at_step(monkeypatch, 2, lambda loss: loss * float("inf"))
    out = tmp_path / "w"
    with pytest.raises(HumansegError) as err:
        train_quietly(two_sets, out, iterations=3, val_every=1)
    assert err.value.exit_code == 1 and str(err.value) == (
        f"training diverged at step 2: the loss is inf ({out / 'last.pt'} holds step 1); start again with "
        f"a lower --lr (this run's: 0.003)")
    assert load_model(out / "last.pt")[1]["step"] == 1


def test_a_failure_in_a_step_that_is_not_memory_is_raised_not_taken_for_an_interruption(
        two_sets, tmp_path, monkeypatch):
    # A bug (a RuntimeError of PyTorch's) is not said as "interrupted" with the step saved for --resume.
    def fails(loss):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")

    loss_at_step(monkeypatch, 2, fails)
    out = tmp_path / "w"
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes"):
        train_quietly(two_sets, out, iterations=3, val_every=1)
    assert load_model(out / "last.pt")[1]["step"] == 1  # the last good step's checkpoint, as it was


def test_an_unknown_arch_is_named_with_the_known_ones():
    # --arch is a click choice; a library caller's unknown name was a KeyError.
    from humanseg.train import initial_model

    with pytest.raises(HumansegError) as err:
        initial_model("scratch", "huge")
    assert str(err.value) == "unknown --arch 'huge' (base, large, pose)"


@pytest.mark.parametrize("size", ["64x", "ax64", "64x48x2", "64,48"])
def test_a_size_not_written_as_width_x_height_is_said_so(parsed, size):
    result, cfg = parsed(["--size", size])
    assert result.exit_code == 2 and cfg is None
    assert result.output.splitlines()[-1] == "Error: Invalid value for '--size': use WIDTHxHEIGHT, e.g. 320x240"


def test_a_loader_failure_after_a_sigterm_is_an_interruption_with_the_step_saved(two_sets, tmp_path, monkeypatch):
    # A SIGTERM to the whole process group ends the loader's workers too, and the loader raises for
    # them: that is the stop asked for (last.pt and metrics.csv at the last whole step), not a failure.
    from humanseg.signals import Terminated

    def terminated(loss):
        signal.raise_signal(signal.SIGTERM)
        raise RuntimeError("DataLoader worker (pid 9) is killed by signal: Terminated.")

    loss_at_step(monkeypatch, 2, terminated)
    out = tmp_path / "w"
    with pytest.raises(Terminated) as err:
        train_quietly(two_sets, out, iterations=3, val_every=1)
    assert err.value.signum == signal.SIGTERM
    assert load_model(out / "last.pt")[1]["step"] == 1 and [r["step"] for r in history(out)] == ["1"]


def test_a_run_that_ends_in_out_while_this_one_starts_is_not_replaced(two_sets, tmp_path, monkeypatch):
    # Another run's checkpoint, written between the first look at --out and taking its lock.
    from humanseg import train as train_module

    out, real = tmp_path / "w", train_module._lock_folder

    def lock_after_another_run_ended(folder):
        (folder / "last.pt").write_bytes(b"another run's")
        return real(folder)

    monkeypatch.setattr(train_module, "_lock_folder", lock_after_another_run_ended)
    with pytest.raises(HumansegError) as err:
        train_quietly(two_sets, out)
    assert str(err.value) == (f"--out {out} already holds a training run (last.pt); continue it with --resume, "
                              f"start over with --force, or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"] and (out / "last.pt").read_bytes() == b"another run's"


@pytest.mark.slow
def test_a_training_killed_between_its_two_checkpoints_resumes_and_mends_best_pt(tmp_path, dev_root):
    # At a validation that improves, last.pt is written first and best.pt after it: a run killed
    # between the two (a SIGKILL, an OOM kill, a power loss) leaves last.pt, which --resume continues,
    # and best.pt missing or behind it, which --resume then writes as last.pt's copy. (Written the
    # other way round, a kill at the first validation left best.pt alone: the rerun said "continue it
    # with --resume", and --resume said "no checkpoint to resume".) The kill is made to land there by
    # a save_checkpoint that kills the process when asked for best.pt.
    images = tmp_path / "images"
    for n in (1, 2, 3):
        shutil.copytree(dev_root / f"set{n}", images / f"set{n}")
    out = tmp_path / "weights"
    args = ["training.py", "-i", "6", "-b", "2", "--size", "64x48", "--val-every", "2", "--val-sets", "3",
            "--threads", "1", "--images", str(images), "--out", str(out)]
    code = (
        "import os, runpy, signal, sys\n"
        "import humanseg.train as train\n"
        "real = train.save_checkpoint\n"
        "def save(path, *a, **k):\n"
        "    if os.path.basename(path) == 'best.pt':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(path, *a, **k)\n"
        "train.save_checkpoint = save\n"
        f"sys.argv = {args!r}\n"
        "runpy.run_path('training.py', run_name='__main__')\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # metrics.csv before best.pt: written after it, a kill (or a full disk) at best.pt lost the first
    # validation's row, and --resume's running loss and IoU then started afresh.
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "metrics.csv"]
    first_row = history(out)
    at_kill = torch.load(out / "last.pt", weights_only=True)
    assert [int(r["step"]) for r in first_row] == [2]
    assert float(first_row[0]["val_iou"]) == pytest.approx(at_kill["metrics"]["iou"], abs=1e-4)
    assert at_kill["step"] == 2 and at_kill["extra"]["best_iou"] == at_kill["metrics"]["iou"]
    again = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "continue it with --resume" in again.stdout + again.stderr
    resumed = subprocess.run([sys.executable, *args, "--resume"], cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (f"--resume: {out / 'best.pt'} was behind {out / 'last.pt'} (a run cut off between writing the two); "
            f"{out / 'last.pt'}'s step 2 (val mIoU {at_kill['metrics']['iou']:.4f}) is written there") in resumed.stdout
    assert "is missing" not in resumed.stdout + resumed.stderr
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["step"] >= 2 and best["metrics"]["iou"] >= at_kill["metrics"]["iou"]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "training.png"]
    assert [int(r["step"]) for r in history(out)] == [2, 4, 6] and history(out)[0] == first_row[0]


def scripted_validations(monkeypatch, scores):
    """training's validate replaced by one that answers the given mIoUs in turn (Dice and boundary F
    the same): which validation improves is then the test's, not the random network's."""
    from humanseg import train as train_module

    scores = iter(scores)

    def validate(model, pairs, work_width):
        s = next(scores)
        return {"iou": s, "dice": s, "boundary_f": s}

    monkeypatch.setattr(train_module, "validate", validate)


def validated_run_args(two_sets, out):
    return ["--images", two_sets, "--out", out, "--val-sets", "8", "--size", "128x96", "-b", "2", "--threads", "1",
            "--init", "scratch", "--val-every", "2"]


def test_best_pt_keeps_the_best_validation_through_later_worse_ones(two_sets, tmp_path, monkeypatch):
    # best.pt is written after last.pt at a validation that improved, and only then: a later, worse
    # validation must not write it again.
    scripted_validations(monkeypatch, [0.5, 0.3, 0.4])
    out = tmp_path / "w"
    r = train_here(["-i", "6", *validated_run_args(two_sets, out)])
    assert r.returncode == 0, r.stderr
    best, last = (torch.load(out / n, map_location="cpu", weights_only=True) for n in ("best.pt", "last.pt"))
    assert best["step"] == 2 and best["metrics"]["iou"] == 0.5
    assert last["step"] == 6 and last["extra"]["best_iou"] == 0.5


def test_a_second_ctrl_c_after_last_pt_at_a_validation_that_improved_still_writes_best_pt(
        two_sets, tmp_path, monkeypatch):
    # A second Ctrl-C during a validation stops at once: held while last.pt is written, it is raised as
    # the write ends, before best.pt's. The run's end writes the best.pt that validation earned.
    from humanseg import train as train_module

    scripted_validations(monkeypatch, [0.5])
    real, raised = train_module.save_checkpoint, []

    def save(path, *a, **k):
        written = real(path, *a, **k)
        if Path(path).name == "last.pt" and not raised:
            raised.append(path)
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(train_module, "save_checkpoint", save)
    out = tmp_path / "w"
    r = train_here(["-i", "6", *validated_run_args(two_sets, out)])
    assert r.returncode == 130 and raised, r.stderr
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert best["step"] == 2 and best["metrics"]["iou"] == 0.5


def test_resume_writes_a_best_pt_that_is_behind_last_pts_validation_and_only_then(two_sets, tmp_path, monkeypatch):
    # Cut off between last.pt and best.pt at a later validation that improved, best.pt is there but
    # holds an earlier, worse one: --resume writes last.pt's copy over it. A best.pt that is up to date
    # is left alone, without a word.
    scripted_validations(monkeypatch, [0.5, 0.6, 0.7])
    out = tmp_path / "w"
    args = validated_run_args(two_sets, out)
    assert train_here(["-i", "2", *args]).returncode == 0
    at_2 = (out / "best.pt").read_bytes()
    r = train_here(["-i", "4", "--resume", *args])
    assert r.returncode == 0, r.stderr
    assert "was behind" not in r.stdout + r.stderr
    assert torch.load(out / "best.pt", map_location="cpu", weights_only=True)["step"] == 4
    (out / "best.pt").write_bytes(at_2)  # as if the run had been killed before best.pt's write at step 4
    r = train_here(["-i", "6", "--resume", *args])
    assert r.returncode == 0, r.stderr
    assert (f"--resume: {out / 'best.pt'} was behind {out / 'last.pt'} (a run cut off between writing the two); "
            f"{out / 'last.pt'}'s step 4 (val mIoU 0.6000) is written there") in r.stdout
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert best["step"] == 6 and best["metrics"]["iou"] == 0.7


def test_resume_copies_no_last_pt_into_a_missing_best_pt_when_its_metrics_are_of_an_earlier_step(
        two_sets, tmp_path, monkeypatch):
    # Paused off the validation grid (--stop-at 3), last.pt holds step 3's weights with step 2's
    # scores. Were best.pt deleted, step 3's weights are not the ones validated: --resume says
    # best.pt is missing rather than writing last.pt there as step 2's best.
    scripted_validations(monkeypatch, [0.5, 0.4])
    out = tmp_path / "w"
    args = validated_run_args(two_sets, out)
    assert train_here(["-i", "4", "--stop-at", "3", *args]).returncode == 0
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert last["step"] == 3 and last["extra"]["metrics_step"] == 2 and last["metrics"]["iou"] == 0.5
    (out / "best.pt").unlink()
    r = train_here(["-i", "4", "--resume", *args])
    assert r.returncode == 0, r.stderr
    assert f"warning: --resume: {out / 'best.pt'} is missing" in r.stdout + r.stderr
    assert "was behind" not in r.stdout + r.stderr
    # The warning promises the best of the validations from now on is written there: one below the
    # run's old best (0.4 < 0.5) is, or the run would end with no best.pt.
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert best["step"] == 4 and best["metrics"]["iou"] == 0.4


def test_ctrl_c_again_while_a_stopping_run_saves_waits_for_the_saves(two_sets, tmp_path, monkeypatch):
    # The first Ctrl-C ends the loop after its step; another while the loader's workers were stopped
    # and last.pt, best.pt and metrics.csv saved ended the run there, before them: every step since
    # the last checkpoint lost (a new run's --out removed), "Error: interrupted" alone. Held now.
    from humanseg import train as train_module

    real_loss, real_save, losses, saves = train_module.segmentation_loss, train_module.save_checkpoint, [], []

    def loss(*a, **k):
        losses.append(1)
        if len(losses) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C, in step 3
        return real_loss(*a, **k)

    def save(path, *a, **k):
        saves.append(Path(path).name)
        os.kill(os.getpid(), signal.SIGINT)  # and again, as each checkpoint is saved
        return real_save(path, *a, **k)

    monkeypatch.setattr(train_module, "segmentation_loss", loss)
    monkeypatch.setattr(train_module, "save_checkpoint", save)
    out = tmp_path / "w"
    r = train_here(["-i", "50", "--val-every", "100", "--images", two_sets, "--out", out, "--val-sets", "none",
                    "--size", "128x96", "-b", "2", "--threads", "1", "--init", "scratch", "--workers", "1"])
    assert r.returncode == 130 and r.stderr.strip().endswith("Error: interrupted"), r.stderr
    assert f"interrupted at step 3: saved {out / 'last.pt'} (continue with --resume)" in r.stdout + r.stderr
    assert saves == ["best.pt", "last.pt"]
    assert load_model(out / "last.pt")[1]["step"] == 3 and load_model(out / "best.pt")[1]["step"] == 3
    assert int(history(out)[-1]["step"]) == 3 and (out / "training.png").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the run's handlers are gone
    # A run that had finished when the signals came (its last step's checkpoint, then its end's): all
    # saved, then answered as a stop.
    losses.clear(), saves.clear()
    r = train_here(["-i", "2", "--val-every", "100", "--images", two_sets, "--out", out, "--val-sets", "none",
                    "--size", "128x96", "-b", "2", "--threads", "1", "--init", "scratch", "--force"])
    assert r.returncode == 130 and r.stderr.strip().endswith("Error: interrupted"), r.stderr
    assert f"done: 2 steps; last {out / 'last.pt'}" in r.stdout + r.stderr and saves[-2:] == ["best.pt", "last.pt"]
    assert load_model(out / "last.pt")[1]["step"] == 2 and int(history(out)[-1]["step"]) == 2


@pytest.mark.parametrize("cut_at", ["write_history", "save_checkpoint", "plot_history"])
def test_a_run_cut_off_anywhere_in_a_save_resumes_with_every_row_of_its_history(two_sets, tmp_path, monkeypatch,
                                                                                 cut_at):
    # A save writes metrics.csv, last.pt, then training.png. Written after last.pt, metrics.csv lost
    # the rows since the last save to a kill between the two: --resume went on from the newer last.pt,
    # and step 4's validation was in neither the csv nor the plot. Written first, a kill after it
    # leaves rows past last.pt's step, which --resume leaves out and makes again. (The run's first
    # save writes last.pt first: below.)
    from humanseg import train as train_module

    out = tmp_path / "w"
    args = ["-i", "6", *validated_run_args(two_sets, out)]

    class Killed(BaseException):
        pass

    real = getattr(train_module, cut_at)
    seen = []

    def cut(*a, **k):
        seen.append(a)
        if len(seen) == 2:  # the save at step 4 (the first is step 2's)
            raise Killed
        return real(*a, **k)

    def at_last_pt(path, *a, **k):  # save_checkpoint: only last.pt's calls counted
        return cut(path, *a, **k) if Path(path).name == "last.pt" else real(path, *a, **k)

    monkeypatch.setattr(train_module, cut_at, at_last_pt if cut_at == "save_checkpoint" else cut)
    with pytest.raises(Killed):
        train_here(args)
    assert len(seen) == 2
    monkeypatch.setattr(train_module, cut_at, real)
    r = train_here([*args, "--resume"])
    assert r.returncode == 0, r.stderr
    rows = history(out)
    assert [x["step"] for x in rows if x["val_iou"]] == ["2", "4", "6"]
    steps = [int(x["step"]) for x in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 6


def test_a_run_cut_off_between_its_first_metrics_csv_and_last_pt_is_not_left_unresumable(two_sets, tmp_path,
                                                                                        monkeypatch):
    # Later saves write metrics.csv before last.pt (above); the first one must not: a kill between the
    # two left a metrics.csv alone, which the rerun is told to resume and --resume cannot.
    from humanseg import train as train_module

    out = tmp_path / "w"
    args = ["-i", "4", *validated_run_args(two_sets, out)]

    class Killed(BaseException):
        pass

    real = train_module.save_checkpoint

    def cut(path, *a, **k):
        raise Killed

    monkeypatch.setattr(train_module, "save_checkpoint", cut)
    with pytest.raises(Killed):
        train_here(args)
    assert not out.exists() or list(out.iterdir()) == []
    monkeypatch.setattr(train_module, "save_checkpoint", real)
    monkeypatch.setattr(train_module, "write_history", lambda *a, **k: cut(None))
    with pytest.raises(Killed):
        train_here(args)
    assert "last.pt" in [p.name for p in out.iterdir()]
    monkeypatch.undo()
    r = train_here([*args, "--resume"])
    assert r.returncode == 0, r.stderr
    assert [x["step"] for x in history(out)] == ["4"]  # (step 2's row, a moment, is the cut's)


def test_a_forced_run_cut_off_after_its_first_checkpoint_leaves_none_of_the_earlier_runs_files(
        two_sets, tmp_path, monkeypatch):
    # --force replaced last.pt, then removed the earlier best.pt, then wrote metrics.csv: killed
    # between them, the earlier run's metrics.csv (and best.pt, a moment) stayed beside this run's
    # last.pt, and --resume went on with the two runs' rows mixed. The earlier run's files now go as
    # the first checkpoint takes its name (its bytes written: a full disk keeps them, above).
    from humanseg import train as train_module

    out = tmp_path / "w"
    args = ["-i", "4", "--images", two_sets, "--out", out, "--val-sets", "8", *SMALL]
    assert train_here(args).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "training.png"]

    class Killed(BaseException):
        pass

    def killed(*a, **k):  # (as a kill there: nothing after the checkpoints runs)
        raise Killed

    monkeypatch.setattr(train_module, "write_history", killed)  # (right after last.pt, before best.pt)
    with pytest.raises(Killed):
        train_here([*args, "--force", "--lr", "0.01"])
    assert sorted(p.name for p in out.iterdir()) == ["last.pt"]  # this run's alone
    assert load_model(out / "last.pt")[1]["extra"]["lr"] == 0.01


def test_a_run_stopped_in_its_final_validation_says_how_it_goes_on(two_sets, tmp_path, monkeypatch):
    # A second Ctrl-C in the last step's validation: the run said "continue with --resume", which then
    # refused ("already at step 2 of 2; ask for more iterations with -i").
    from humanseg import train as train_module

    def cut_short(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "validate", cut_short)
    out, lines = tmp_path / "w", []
    with pytest.raises(HumansegError, match="^interrupted$"):
        train_quietly(two_sets, out, log=lines.append, size=(128, 96), val_sets="8", val_every=5)
    assert lines[-1] == (f"interrupted at step 2: saved {out / 'last.pt'} (continue with --resume and -i over 2; "
                         f"it was the last step; its final validation was cut short)")
    assert load_model(out / "last.pt")[1]["step"] == 2


def test_a_run_refused_by_the_out_lock_leaves_the_folder_to_the_run_that_holds_it(two_sets, tmp_path, monkeypatch):
    # Run B made --out, run A locked it first, and B, refused, removed the "empty" folder A was
    # training into: A then died at its first save ("last.pt: No such file or directory").
    from humanseg import train as train_module

    def held_by_another(out):  # (A has written nothing there yet: its first save comes later)
        raise HumansegError(f"--out {out} is in use by another training run")

    monkeypatch.setattr(train_module, "_lock_folder", held_by_another)
    out = tmp_path / "new" / "w"
    with pytest.raises(HumansegError, match="in use by another training run"):
        train_quietly(two_sets, out, size=(128, 96))
    assert out.is_dir()  # for A's first save


def test_a_resume_whose_last_pt_was_written_before_the_lock_is_refused(two_sets, tmp_path, monkeypatch):
    # --resume read last.pt, then another run on the same --out wrote its later steps and ended before
    # this one took the lock: it resumed from the step read and trained over those steps.
    from humanseg import store
    from humanseg import train as train_module

    out = tmp_path / "w"
    train_quietly(two_sets, out, size=(128, 96))
    lock = train_module._lock_folder

    def another_run_ends_first(folder):
        store.write_bytes_atomic(folder / "last.pt", (folder / "last.pt").read_bytes(), overwrite=True)
        return lock(folder)

    monkeypatch.setattr(train_module, "_lock_folder", another_run_ends_first)
    with pytest.raises(HumansegError, match=r"^--resume: .*last.pt was written by another training run as this "
                                            r"one started; run --resume again to continue from it$"):
        train_quietly(two_sets, out, size=(128, 96), iterations=4, resume=True)
    assert load_model(out / "last.pt")[1]["step"] == 2


def test_a_first_validation_of_zero_still_writes_best_pt(two_sets, tmp_path, monkeypatch):
    # A run whose validations all score 0 (an early network that finds nobody) writes best.pt too:
    # its "done" line names it.
    scripted_validations(monkeypatch, [0.0])
    out = tmp_path / "w"
    r = train_here(["-i", "2", *validated_run_args(two_sets, out)])
    assert r.returncode == 0, r.stderr
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert best["step"] == 2 and best["metrics"]["iou"] == 0.0


def test_metrics_csv_has_a_row_every_10_steps_between_validations(two_sets, tmp_path):
    # Between validations (none here) metrics.csv gets a row every 10 steps: the other tests' runs
    # validated at each tenth step or were shorter.
    train_quietly(two_sets, tmp_path / "w", iterations=30)
    assert [x["step"] for x in history(tmp_path / "w")] == ["10", "20", "30"]


def test_the_plot_scales_a_rising_loss_to_its_largest_value(tmp_path):
    # A loss that rises (after warm-up, or resumed with a higher --lr) is scaled to its largest value,
    # not its first: drawn at the frame's top, not above it, out of the picture.
    from humanseg.train import plot_history

    rows = [{"step": s, "loss": 0.1 + 0.009 * s, "train_iou": 0.5} for s in range(0, 101, 10)]
    plot_history(rows, tmp_path / "training.png")
    img = cv2.imread(str(tmp_path / "training.png")).astype(int)
    near = np.abs(img[45:, 746:751] - (200, 80, 0)).sum(axis=2).min(axis=1) < 60
    ys = 45 + np.flatnonzero(near)
    assert ys.size and abs(ys.mean() - 50) < 4  # the largest loss at the frame's top (y 50)


def test_an_output_guard_drops_only_a_closed_pipes_failures():
    # Only a closed pipe (EPIPE) is dropped and said to the guard: stdout on a full disk (ENOSPC) is
    # an error named as such, not a stop as if by SIGPIPE (exit 141, "terminated (SIGPIPE)").
    import errno
    import io

    from humanseg.signals import OutputGuard

    class Failing(io.StringIO):
        def __init__(self, err):
            super().__init__()
            self.err = err

        def write(self, text):
            raise OSError(self.err, os.strerror(self.err))

    saved = sys.stdout, sys.stderr
    try:
        sys.stdout = Failing(errno.ENOSPC)
        with OutputGuard() as guard:
            with pytest.raises(OSError) as err:
                print("x")
            assert err.value.errno == errno.ENOSPC and not guard.broken
    finally:
        sys.stdout, sys.stderr = saved
    try:
        sys.stdout = Failing(errno.EPIPE)
        with OutputGuard() as guard:
            print("x")  # dropped, and said to the guard
            assert guard.broken
    finally:
        sys.stdout, sys.stderr = saved
