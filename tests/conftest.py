"""Shared fixtures: paths to ../shared, copies of dev sets, and a real X server (Xvfb)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from gui import start_xvfb

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "dev"
BACKGROUNDS = SHARED / "data" / "backgrounds"
POSENET_050 = SHARED / "models" / "posenet" / "mobilenet_v1_050.pth"
IN_CI = bool(os.environ.get("CI"))
# The README tells users to set this for their own model: the suite tests the shipped one, whatever
# the shell it runs in says (with fast.pt there, a test read default.pt's held-out sets and scored
# fast.pt on them). Tests that mean it set it themselves.
os.environ.pop("HUMANSEG_WEIGHTS", None)
# Exported ONNX graphs are cached (humanseg.ort_session): in a folder of the suite's own, not the
# user's cache; shared by the suite's processes, as a user's commands share theirs. pytest-xdist's
# processes inherit the one pytest's first process made (and removes at its exit).
if "PYTEST_XDIST_WORKER" not in os.environ:
    _GRAPHS = tempfile.mkdtemp(prefix="humanseg-graphs-")
    os.environ["HUMANSEG_ONNX_CACHE"] = _GRAPHS
    atexit.register(shutil.rmtree, _GRAPHS, ignore_errors=True)


def as_from_a_terminal() -> None:
    """preexec_fn for a program a test sends Ctrl-C or a hangup: those signals as a terminal's program
    has them, whatever the suite was started under (a background job ignores SIGINT, nohup SIGHUP,
    and the program then rightly leaves them alone)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds")
    config.addinivalue_line("markers", "gui: a test that opens real windows under Xvfb")
    config.addinivalue_line("markers", "one_at_a_time: a test that never runs while another so marked runs "
                                       "(`make test` runs two processes)")


@pytest.fixture(autouse=True)
def _one_at_a_time(request, tmp_path_factory):
    """Tests marked one_at_a_time hold a lock that every pytest-xdist process of this run shares (in
    the run's temporary folder, above each process's own)."""
    if request.node.get_closest_marker("one_at_a_time") is None or "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    import fcntl

    with open(tmp_path_factory.getbasetemp().parent / "one-at-a-time.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def need_shared(path: Path = DEV) -> Path:
    """Skip when ../shared is absent on a developer machine; in CI its absence is a failure."""
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} not present (../shared is absent)")
    return path


@pytest.fixture(scope="session")
def dev_root() -> Path:
    return need_shared(DEV)


@pytest.fixture(scope="session")
def default_weights() -> Path:
    """The shipped segmentation model; its absence skips on a developer machine but fails in CI."""
    from humanseg.model.checkpoint import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        if IN_CI:
            pytest.fail(f"shipped model missing in CI: {DEFAULT_WEIGHTS}")
        pytest.skip(f"shipped model not present: {DEFAULT_WEIGHTS}")
    return DEFAULT_WEIGHTS


@pytest.fixture(scope="session")
def posenet_weights() -> Path:
    return need_shared(POSENET_050)


@pytest.fixture
def copy_set(tmp_path, dev_root):
    """copy_set(3) -> images root in tmp_path holding a copy of dev set3 (as set3)."""

    def _copy(number: int, dest_number: int | None = None, labels: bool = True) -> Path:
        root = tmp_path / "images"
        dest = root / f"set{dest_number or number}"
        shutil.copytree(dev_root / f"set{number}", dest)
        if not labels:
            for p in dest.glob("*_mask.png"):
                p.unlink()
        return root

    return _copy


@pytest.fixture(scope="session")
def large_sets(tmp_path_factory, dev_root) -> Path:
    """An images root holding dev sets 2 and 8 at 3x (1920x1440, as large as a 1080p camera's frames):
    frames and backgrounds enlarged smoothly, masks as blocks (read-only for the tests that share it)."""
    import cv2

    root = tmp_path_factory.mktemp("large") / "images"
    for n in (2, 8):
        for src in sorted((dev_root / f"set{n}").glob("*.png")):
            img = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
            smooth = cv2.INTER_NEAREST if src.name.endswith("_mask.png") else cv2.INTER_CUBIC
            (root / f"set{n}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f"set{n}" / src.name), cv2.resize(img, None, fx=3, fy=3, interpolation=smooth),
                        [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return root


@pytest.fixture
def xdisplay():
    """A private Xvfb display ":N" for one test (skipped only outside CI if tools are missing).

    One server per test (about 0.1 s to start) so no X state (keys held, pointer, focus) is carried
    from one test's program to the next."""
    missing = [t for t in ("Xvfb", "xdotool") if shutil.which(t) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"{', '.join(missing)} missing in CI (make test installs them)")
        pytest.skip(f"{', '.join(missing)} not installed")
    try:
        proc, display = start_xvfb()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield display
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def make_read_only():
    """make_read_only(folder): this process can no longer write in folder (its files stay readable): a
    read-only bind mount for root (whom file modes do not stop), the folder's write permission taken
    away for anyone else. Undone after the test; skipped where root may not mount."""
    import subprocess

    undo = []

    def _make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(0o755))
            return folder
        try:
            r = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
        except FileNotFoundError:  # no mount program
            r = subprocess.CompletedProcess([], 127)
        if r.returncode == 0:
            undo.append(lambda: subprocess.run(["umount", str(folder)], check=True))
        if r.returncode != 0 or os.access(folder, os.W_OK):
            pytest.skip("no read-only folder here: running as root, and mount is not allowed")
        return folder

    yield _make
    for step in reversed(undo):
        step()


@pytest.fixture
def unprivileged(tmp_path):
    """unprivileged(argv) -> argv that runs the program so that a file's mode stops it reading the file:
    as it is for anyone but root, and for root with the capabilities that override file modes dropped
    (setpriv). Skipped where neither works, as make_read_only is where root may not mount."""
    import subprocess
    import sys

    prefix = [] if os.geteuid() != 0 else ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    probe = tmp_path / "unprivileged-probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        r = subprocess.run([*prefix, sys.executable, "-c", f"open({str(probe)!r}).read()"], capture_output=True)
    except FileNotFoundError:  # no setpriv
        r = subprocess.CompletedProcess([], 0)
    probe.unlink()
    if r.returncode == 0 or b"PermissionError" not in r.stderr:
        pytest.skip("no way here to run a program that file modes stop (root, and setpriv missing or not allowed)")
    return lambda argv: [*prefix, *argv]


@pytest.fixture
def read_only_folder(tmp_path, make_read_only):
    """An empty folder this process cannot write in (see make_read_only)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    return make_read_only(folder)


class Stopped(Exception):
    """What the SIGTERM handler of `sigterm_after_fsync` raises."""


@pytest.fixture
def sigterm_after_fsync(monkeypatch):
    """A SIGTERM to this process just after the first file is synced to disk (in the middle of a
    save), its handler raising Stopped, which the fixture yields; the handler before is put back."""
    import signal

    real_fsync, synced = os.fsync, []

    def fsync_then_sigterm(fd):
        real_fsync(fd)
        synced.append(fd)
        if len(synced) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(signum, frame):
        raise Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(os, "fsync", fsync_then_sigterm)
    try:
        yield Stopped
    finally:
        signal.signal(signal.SIGTERM, previous)
