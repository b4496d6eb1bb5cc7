"""ONNX export: onnxruntime agrees with PyTorch on dev frames at several sizes; CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from humanseg import store
from humanseg.errors import HumansegError
from humanseg.export import export_onnx
from humanseg.cli import main as cli
from humanseg.model import SiameseSegNet, load_model, save_checkpoint
from tests.conftest import ROOT, as_from_a_terminal


@pytest.fixture(scope="module")
def onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("onnxruntime is in requirements.txt but not installed")
        pytest.skip("onnxruntime not installed")
    return onnxruntime


def tensor(image):
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.slow
def test_onnx_matches_pytorch_on_a_dev_frame(tmp_path, dev_root, default_weights, onnxruntime):
    out = tmp_path / "model.onnx"
    res = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--weights", str(default_weights)])
    assert res.exit_code == 0, res.output
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["frame", "background"]
    assert session.get_outputs()[0].name == "probability"
    assert [i.shape for i in session.get_inputs()] == [["batch", 3, "height", "width"]] * 2
    assert session.get_outputs()[0].shape == ["batch", 1, "height", "width"]

    model, _ = load_model(default_weights)
    model.eval()
    frame = cv2.imread(str(dev_root / "set3" / "1.png"))
    bkg = cv2.imread(str(dev_root / "set3" / "bkg.png"))
    # The Segmenter's working size, the full frame, and sizes that are not multiples of the stride.
    for w, h in [(320, 240), (640, 480), (203, 157)]:
        f = tensor(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA))
        b = tensor(cv2.resize(bkg, (w, h), interpolation=cv2.INTER_AREA))
        with torch.no_grad():
            expected = torch.sigmoid(model(f, b)).numpy()
        got = session.run(None, {"frame": f.numpy(), "background": b.numpy()})[0]
        assert got.shape == (1, 1, h, w)
        assert np.abs(got - expected).max() <= 1e-4, (w, h)
        assert 0.05 < (got > 0.5).mean() < 0.6  # a person was found, not an empty map


def test_export_errors_are_one_line(tmp_path):
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"keep")
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "--onnx", str(existing)])
    assert res.exit_code == 2 and "already exists" in res.output
    assert existing.read_bytes() == b"keep"
    res = runner.invoke(cli, ["export", "--onnx", str(tmp_path / "x.onnx"), "--weights", str(tmp_path / "no.pt")])
    assert res.exit_code == 2 and res.output == f"Error: weights file not found: {tmp_path / 'no.pt'}\n"
    res = runner.invoke(cli, ["export"])
    assert res.exit_code == 2 and "--onnx" in res.output
    # 21 was taken, and this torch's exporter printed its multi-line warning that it writes up to 20.
    res = runner.invoke(cli, ["export", "--onnx", str(tmp_path / "x.onnx"), "--opset", "21"])
    assert res.exit_code == 2 and "'--opset': 21 is not in the range 13<=x<=20" in res.output
    res = runner.invoke(cli, ["export", "--onnx", str(existing / "x.onnx")])  # a file where a folder should be
    assert res.exit_code == 2 and res.output == f"Error: --onnx {existing / 'x.onnx'}: folder {existing} is a file, not a folder\n"
    # Said before the weights are read (loading and tracing the model takes seconds).
    res = runner.invoke(cli, ["export", "--onnx", str(tmp_path / "no" / "x.onnx"), "--weights", str(existing)])
    assert res.exit_code == 2 and res.output == f"Error: --onnx {tmp_path / 'no' / 'x.onnx'}: folder {tmp_path / 'no'} does not exist\n"
    # A capture's own file is never replaced by the model, --force or not.
    _, frame = store.save_background(tmp_path / "images", np.zeros((48, 64, 3), np.uint8))
    before = frame.read_bytes()
    res = runner.invoke(cli, ["export", "--onnx", str(frame), "--force"])
    assert res.exit_code == 2 and f"--onnx {frame} is a file of the capture set" in res.output
    assert frame.read_bytes() == before
    # Nor the checkpoint being exported (--onnx w.pt --weights w.pt --force replaced it).
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, SiameseSegNet())
    kept = weights.read_bytes()
    res = runner.invoke(cli, ["export", "--onnx", str(tmp_path / "." / "w.pt"), "--weights", str(weights), "--force"])
    assert res.exit_code == 2 and "is the checkpoint being exported" in res.output and weights.read_bytes() == kept


def test_a_full_disk_names_the_onnx_file_and_leaves_nothing(tmp_path):
    # A file size limit makes writes past 100 kB fail as on a full disk (the model is about 1.4 MB).
    def small_disk():
        import resource
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = tmp_path / "m.onnx"
    r = subprocess.run([sys.executable, "-m", "humanseg", "export", "--onnx", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, preexec_fn=small_disk)
    assert r.returncode == 1 and r.stderr.strip() == f"Error: --onnx {out}: File too large"
    assert list(tmp_path.iterdir()) == []


def test_export_takes_a_long_name(tmp_path):
    # The temporary NAME.tmp of a 255-byte name was too long to make ("File name too long" naming it).
    out = tmp_path / ("m" * 250 + ".onnx")
    res = CliRunner().invoke(cli, ["export", "--onnx", str(out)])
    assert res.exit_code == 0, res.output
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [out.name] and out.stat().st_size > 100_000
    assert res.output == f"wrote {out} ({out.stat().st_size // 1024} KiB)\n"
    import onnx  # without --opset: 17, as --help says

    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_export_names_a_read_only_folders_file(read_only_folder):
    # On a read-only folder, removing a temporary file that was never made failed too, and its error
    # (naming NAME.tmp) replaced the one that said which file could not be written.
    runner = CliRunner()
    target = read_only_folder / "m.onnx"
    with pytest.raises(HumansegError) as exc:
        export_onnx(None, target)
    assert str(target) in str(exc.value) and ".tmp" not in str(exc.value)
    # The command finds the place before the model is loaded and traced.
    res = runner.invoke(cli, ["export", "--onnx", str(target)])
    assert res.exit_code == 2 and res.output == (f"Error: --onnx {target}: cannot write in {read_only_folder} "
                                                 f"(read-only, or no permission)\n"), res.output


def test_an_interrupted_export_leaves_no_temporary_file_and_never_touches_the_users(tmp_path):
    import signal

    out = tmp_path / "m.onnx"
    mine = tmp_path / "m.onnx.tmp"  # a file of the user's, named as the temporary file once was
    mine.write_bytes(b"mine")
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        proc = subprocess.Popen([sys.executable, "-m", "humanseg", "export", "--onnx", str(out)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=as_from_a_terminal)
        try:
            deadline = time.monotonic() + 120
            while not list(tmp_path.glob("m.onnx.*.tmp")) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # The one line, and exit 128 + the signal's number. (A Ctrl-C that lands inside torch's tracer can
        # leave CPython's "unhandled interrupt" flag set, and the interpreter then ends by the signal
        # itself, which a shell reports as the same 130 / 143.)
        assert proc.returncode in (code, -sig) and stderr.strip().splitlines() == [
            "Error: interrupted" if sig == signal.SIGINT else "Error: terminated (SIGTERM)"], stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx.tmp"] and mine.read_bytes() == b"mine"
    res = CliRunner().invoke(cli, ["export", "--onnx", str(out)])
    assert res.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.tmp"]
    assert mine.read_bytes() == b"mine"


def test_force_replaces_an_existing_file_with_the_opset_asked_for(tmp_path):
    import onnx

    out = tmp_path / "m.onnx"
    out.write_bytes(b"an older export")
    res = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--opset", "13", "--force"])
    assert res.exit_code == 0, res.output
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [13]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_a_link_pointing_nowhere_counts_as_an_existing_onnx_file(tmp_path):
    link = tmp_path / "m.onnx"
    link.symlink_to(tmp_path / "gone.onnx")
    res = CliRunner().invoke(cli, ["export", "--onnx", str(link)])
    assert res.exit_code == 2 and res.output == f"Error: --onnx {link} already exists (pass --force to overwrite)\n"
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "gone.onnx")


def test_the_checkpoint_named_another_way_is_not_replaced(tmp_path):
    # --onnx sub/../w.pt names the checkpoint as surely as w.pt does.
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, SiameseSegNet())
    kept = weights.read_bytes()
    (tmp_path / "sub").mkdir()
    other_name = tmp_path / "sub" / ".." / "w.pt"
    res = CliRunner().invoke(cli, ["export", "--onnx", str(other_name), "--weights", str(weights), "--force"])
    assert res.exit_code == 2 and res.output == (f"Error: --onnx {other_name} is the checkpoint being exported; "
                                                 f"write it to another file\n"), res.output
    assert weights.read_bytes() == kept


def test_export_onnx_names_a_missing_folder(tmp_path):
    # Called as a function (not through the command, which checks first): still the one-line error.
    target = tmp_path / "no" / "m.onnx"
    with pytest.raises(HumansegError) as exc:
        export_onnx(None, target)
    assert str(exc.value) == f"--onnx {target}: folder {tmp_path / 'no'} does not exist" and exc.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_an_onnx_name_ending_in_a_slash_is_refused_not_written_as_a_file(tmp_path):
    # `--onnx new/` wrote a file named new (a folder was asked for, in effect).
    r = CliRunner().invoke(cli, ["export", "--onnx", f"{tmp_path / 'new'}/"])
    assert r.exit_code == 2 and r.output.endswith(f"Error: Invalid value for '--onnx': {tmp_path / 'new'}/ names a "
                                                  f"folder (it ends in /); name a file.\n"), r.output
    assert list(tmp_path.iterdir()) == []


def test_weights_behind_a_folder_not_ours_to_enter_are_named_as_weights(tmp_path, dev_root, unprivileged):
    # is_file() raised PermissionError: "Error: .../w.pt: Permission denied", exit 1, from every
    # command that loads weights, --weights or $HUMANSEG_WEIGHTS; PoseNet's likewise.
    locked = tmp_path / "locked"
    locked.mkdir()
    weights = locked / "w.pt"
    save_checkpoint(weights, SiameseSegNet())
    locked.chmod(0)  # (not even its owner enters, but by a capability the program has not)
    out = tmp_path / "o.onnx"
    env = {k: v for k, v in os.environ.items() if k != "HUMANSEG_WEIGHTS"}
    for args, extra, line in (
            (["--weights", str(weights)], {}, f"weights file unreadable or corrupt: {weights} (cannot read it: "
                                              f"Permission denied)"),
            ([], {"HUMANSEG_WEIGHTS": str(weights)}, f"HUMANSEG_WEIGHTS={weights}: cannot read it (Permission denied)")):
        r = subprocess.run(unprivileged([sys.executable, "-m", "humanseg", "export", "--onnx", str(out), *args]),
                           cwd=ROOT, capture_output=True, text=True, timeout=120, env={**env, **extra})
        assert r.returncode == 2 and r.stderr == f"Error: {line}\n", r.stderr
    pose = locked / "w.pth"
    r = subprocess.run(unprivileged([sys.executable, "-m", "humanseg", "pose", "--posenet-weights", str(pose),
                                     str(dev_root / "set1" / "0.png")]),
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stderr == f"Error: --posenet-weights {pose}: cannot read it (Permission denied)\n", r.stderr
    assert not out.exists()
    locked.chmod(0o700)


def test_a_failing_exporter_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    # An error of PyTorch's exporter itself (an operator it cannot write at the opset asked for) is the
    # command's one line and exit 1, its temporary file removed, not a traceback; one whose message
    # goes on with the traced graph (thousands of lines) is said by its first line.
    failures = [torch.onnx.errors.UnsupportedOperatorError("aten::grid_sampler", 13, 16),
                RuntimeError("_export_onnx(): incompatible function arguments\n" + "    %graph node\n" * 50)]

    def failing(*args, **kwargs):
        args[2].write(b"partial")  # (after it began writing)
        raise failures.pop(0)

    monkeypatch.setattr(torch.onnx, "export", failing)
    weights = save_checkpoint(tmp_path / "w.pt", SiameseSegNet())
    out = tmp_path / "m.onnx"
    for said in ("aten::grid_sampler", "_export_onnx(): incompatible function arguments"):
        res = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--weights", str(weights), "--opset", "13"])
        assert res.exit_code == 1 and res.output.startswith("Error: ONNX export failed: "), res.output
        assert said in res.output
        assert len(res.output.splitlines()) == 1, res.output
        assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_export_takes_a_name_that_is_not_utf8(tmp_path):
    # PyTorch's exporter, given the file's name, could not pass undecodable bytes to its C++ side: it
    # failed with the whole traced graph in its message (9,700 lines). The graph is made in memory.
    name = os.fsdecode(b"m\xff.onnx")  # as a Latin-1 file name arrives
    r = subprocess.run([sys.executable, "-m", "humanseg", "export", "--onnx", name], cwd=tmp_path,
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr[-600:]
    assert os.listdir(tmp_path) == [name] and (tmp_path / name).stat().st_size > 100_000
    assert r.stdout.startswith(b"wrote m\xff.onnx (")


@pytest.mark.slow
def test_export_without_force_keeps_an_onnx_file_that_appeared_meanwhile(tmp_path, default_weights, monkeypatch):
    # `export --onnx m.onnx` checks that m.onnx is not there at its start, then traces the model for
    # seconds; it then moved its temporary file into place with os.replace, which replaced whatever
    # was there by then: two exports to one name (a script exporting several checkpoints, a second
    # terminal) both printed "wrote m.onnx", and the first one's model was gone without --force. The
    # other export is made to finish at a fixed point: just before this one's file is put in place.
    import humanseg.export as export

    out = tmp_path / "m.onnx"
    other = b"the other export's model"
    real = export._declare_one_channel

    def other_export_finishes_meanwhile(model):
        out.write_bytes(other)
        return real(model)

    monkeypatch.setattr(export, "_declare_one_channel", other_export_finishes_meanwhile)
    res = CliRunner().invoke(cli, ["export", "--onnx", str(out), "--weights", str(default_weights)])
    assert out.read_bytes() == other, f"replaced without --force (exit {res.exit_code}: {res.output.strip()})"
    assert res.exit_code == 1 and res.output == (f"Error: --onnx {out} appeared during the export (another export "
                                                 f"to the same name?) and is left as it is; pass --force to "
                                                 f"overwrite it\n")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left
