"""Shared fixtures: paths to ../shared, copies of dev sets, and a real X server (Xvfb)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "dev"
BACKGROUNDS = SHARED / "data" / "backgrounds"
POSENET_050 = SHARED / "models" / "posenet" / "mobilenet_v1_050.pth"
IN_CI = bool(os.environ.get("CI"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds")
    config.addinivalue_line("markers", "gui: a test that opens real windows under Xvfb")


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
    read_fd, write_fd = os.pipe()
    # -noreset: by default the server resets each time its last client disconnects, and a program
    # connecting during that reset fails with "could not connect to display" (seen in CI: the
    # program under test connected just as one of the tests' xdotool calls disconnected; 121 of
    # 1600 connections from two parallel xdotool loops failed without it, none with it).
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        number = fh.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not report a display number")
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)
