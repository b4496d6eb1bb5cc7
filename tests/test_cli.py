"""What every entry point shares (humanseg/cli.py): one line on bad input, whatever reports it."""

import errno
import os
import shutil
import signal
import subprocess
import sys

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from humanseg import cli
from tests.conftest import ROOT, as_from_a_terminal


def run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("OPENCV_LOG_LEVEL", None)
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)


def test_a_truncated_png_is_named_in_one_line_without_opencvs_log(tmp_path, dev_root):
    # OpenCV printed "[ WARN:0@1.9] global grfmt_png.cpp:678 read_from_io PNG input buffer is
    # incomplete" before the tool's own line.
    # Cut further in, libpng itself printed "libpng error: PNG input buffer is incomplete".
    for size in (5000, 200_000):
        cut = tmp_path / f"cut{size}.png"
        cut.write_bytes((dev_root / "set3" / "1.png").read_bytes()[:size])
        r = run("-m", "humanseg", "predict", "--bkg", dev_root / "set3" / "bkg.png", cut, "--out", tmp_path / "out")
        assert r.returncode == 2 and r.stderr == f"Error: frame unreadable or corrupt: {cut}\n"


def test_a_truncated_image_of_another_format_named_png_is_named_in_one_line(tmp_path, dev_root):
    # A BMP cut short and named .png: OpenCV's decoder logged "[ERROR:0@0.04] global loadsave.cpp:1085
    # imdecode_ ... Unexpected end of input stream" (an error-level line) before the tool's own line.
    frame = cv2.imread(str(dev_root / "set3" / "1.png"))
    ok, data = cv2.imencode(".bmp", frame)
    cut = tmp_path / "cut.png"
    cut.write_bytes(data.tobytes()[:data.size // 2])
    r = run("-m", "humanseg", "predict", "--bkg", dev_root / "set3" / "bkg.png", cut, "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stderr == f"Error: frame unreadable or corrupt: {cut}\n"


def test_damaged_pngs_are_named_in_one_line_by_every_tool_that_reads_images(tmp_path, dev_root):
    # libpng printed "libpng error: bad adaptive filter value" (damaged data) or "Read Error" (cut
    # short) before the tool's line: for a set's frame, a --backgrounds room, and `pose`'s image.
    shutil.copytree(dev_root / "set3", tmp_path / "images" / "set3")
    whole = (dev_root / "set3" / "1.png").read_bytes()
    damaged = bytearray(whole)
    damaged[200:4000] = bytes(3800)
    (tmp_path / "images" / "set3" / "1.png").write_bytes(damaged)
    r = run("-m", "humanseg", "evaluate", "--images", tmp_path / "images", "--method", "absdiff")
    assert r.returncode == 2 and r.stderr == f"Error: frame unreadable or corrupt: {tmp_path / 'images' / 'set3' / '1.png'}\n"
    shutil.copy(dev_root / "set3" / "1.png", tmp_path / "images" / "set3" / "1.png")
    rooms = tmp_path / "rooms"
    rooms.mkdir()
    (rooms / "room.png").write_bytes(whole[:100_000])
    r = run("training.py", "-i", "1", "--images", tmp_path / "images", "--backgrounds", rooms, "--out", tmp_path / "w",
            "--val-sets", "none", "--init", "scratch")
    assert r.returncode == 2 and r.stderr == f"Error: --backgrounds image unreadable or corrupt: {rooms / 'room.png'}\n"
    r = run("-m", "humanseg", "pose", rooms / "room.png")
    assert r.returncode == 2 and r.stderr == f"Error: {rooms / 'room.png'}: not a readable image\n"


def test_a_bad_option_value_is_one_line(tmp_path):
    # click printed its usage and a "Try --help" hint before the error: three lines.
    r = run("training.py", "-i", "4", "--backgrounds", tmp_path / "none")
    assert r.returncode == 2
    assert r.stderr == f"Error: Invalid value for '--backgrounds': Directory '{tmp_path / 'none'}' does not exist.\n"
    r = run("-m", "humanseg", "pose", tmp_path / "none.png")  # (named as predict names a frame)
    assert r.returncode == 2 and r.stderr == f"Error: image missing: {tmp_path / 'none.png'}\n"


def test_an_empty_images_folder_is_refused_by_every_command_that_takes_one():
    # `--images ""` (an unset shell variable) was the current folder.
    for args in (["training.py", "-i", "1"], ["label_images.py", "-s", "1"], ["-m", "humanseg", "evaluate"]):
        r = run(*args, "--images", "")
        assert (r.returncode, r.stderr) == (2, "Error: Invalid value for '--images': empty; name a folder.\n"), args


def test_images_given_twice_is_refused_where_one_folder_is_read(dev_root, tmp_path):
    # The last one given won without a word: `evaluate --images a --images b` scored b's sets alone.
    other = tmp_path / "other"
    shutil.copytree(dev_root / "set3", other / "set3")
    for args in (["main.py"], ["label_images.py", "-s", "3"], ["-m", "humanseg", "evaluate"]):
        r = run(*args, "--images", dev_root, "--images", other)
        assert r.returncode == 2 and r.stderr == (
            f"Error: Invalid value for '--images': given 2 times ({dev_root}, {other}); this command reads one "
            f"folder of sets (training.py pools several)\n"), args


def test_an_option_of_one_value_given_twice_is_refused():
    # The last one won without a word: `label_images.py -s 2 -s 1` labeled set 1, `main.py --set 1
    # --set 2` went on with set 2, `predict --out a --out b` wrote to b.
    for args, shown in ((["label_images.py", "-s", "2", "-s", "1"], "--set"),
                        (["label_images.py", "--set=2", "-s1"], "--set"),
                        (["main.py", "--set", "1", "--set", "2"], "--set"),
                        (["-m", "humanseg", "predict", "--out", "a", "--out", "b", "--bkg", "x", "y"], "--out"),
                        (["training.py", "-b", "2", "--batch", "4"], "--batch")):
        r = run(*args)
        assert r.returncode == 2 and r.stderr == f"Error: {shown} given 2 times; give it once\n", (args, r.stderr)
    r = run("-m", "humanseg", "live", "--mirror", "--no-mirror", "--source", "x")  # the last won
    assert r.returncode == 2 and r.stderr == "Error: give --mirror or --no-mirror, not both\n"
    # An option whose name begins another's is not that one given again (--bkg, --bkg-seconds).
    result = CliRunner().invoke(cli.main, ["live", "--bkg", "/nonexistent.png", "--bkg-seconds", "1", "--source",
                                           "/nonexistent", "--no-window"])
    assert result.exit_code == 2 and "given 2 times" not in result.output, result.output
    # Options that take several are still taken so: training.py's --images, evaluate's --method.
    result = CliRunner().invoke(cli.main, ["evaluate", "--method", "absdiff", "--method", "absdiff", "--images",
                                           "/nonexistent"])
    assert "given 2 times" not in result.output


def test_an_empty_file_or_folder_name_is_refused_by_every_command(dev_root):
    # An unset shell variable: `--json ""`, `--save-masks ""`, `live --output ""` wrote nothing without a
    # word, `predict --out ""` wrote into the current folder, `export --onnx ""` failed in an odd message.
    bkg, frame = dev_root / "set3" / "bkg.png", dev_root / "set3" / "0.png"
    live = ["-m", "humanseg", "live", "--source", dev_root / "set3", "--no-window"]
    for args, option, what in [
            (["-m", "humanseg", "evaluate", "--images", dev_root], "--json", "file"),
            (["-m", "humanseg", "evaluate", "--images", dev_root], "--montage", "file"),
            (["-m", "humanseg", "evaluate", "--images", dev_root], "--save-masks", "folder"),
            (["-m", "humanseg", "predict", "--bkg", bkg, frame], "--out", "folder"),
            (live, "--output", "file"), (live, "--save-masks", "folder"), (live, "--save-bkg", "file"),
            (live, "--bkg", "file"), (live, "--replace", "file"),  # (no background, a gradient: without a word)
            (["-m", "humanseg", "predict", frame, "--out", "never-made"], "--bkg", "file"),
            (["-m", "humanseg", "export"], "--onnx", "file"), (["training.py", "-i", "1"], "--out", "folder")]:
        r = run(*args, option, "")
        assert (r.returncode, r.stdout, r.stderr) == (
            2, "", f"Error: Invalid value for '{option}': empty; name a {what}.\n"), (args, option)


def test_a_file_to_read_named_with_a_trailing_slash_is_refused_not_read_as_the_file(tmp_path, dev_root,
                                                                                    posenet_weights):
    # pathlib drops a trailing separator, so `--weights w.pt/` and `predict x.png/` read the file,
    # where the system refuses such a name (it names a folder): now each says so in one line.
    bkg, frame = dev_root / "set3" / "bkg.png", dev_root / "set3" / "0.png"
    weights = tmp_path / "w.pt"
    shutil.copy(ROOT / "humanseg" / "weights" / "default.pt", weights)
    for args, option, value in [
            (["-m", "humanseg", "predict", "--bkg", bkg, "--out", tmp_path / "out"], "FRAMES...", f"{frame}/"),
            (["-m", "humanseg", "predict", "--bkg", bkg, frame, "--out", tmp_path / "out", "--weights"],
             "--weights", f"{weights}/"),
            (["-m", "humanseg", "evaluate", "--images", dev_root, "--sets", "3", "--weights"], "--weights",
             f"{weights}/"),
            (["-m", "humanseg", "export", "--onnx", tmp_path / "m.onnx", "--weights"], "--weights", f"{weights}/"),
            (["-m", "humanseg", "live", "--source", dev_root / "set3", "--no-window", "--weights"], "--weights",
             f"{weights}/"),
            (["-m", "humanseg", "pose"], "IMAGES...", f"{frame}/"),
            (["-m", "humanseg", "pose", frame, "--posenet-weights"], "--posenet-weights", f"{posenet_weights}/"),
            (["main.py", "--posenet-weights"], "--posenet-weights", f"{posenet_weights}/"),
            (["main.py", "--weights"], "--weights", f"{weights}/"),
            (["label_images.py", "-s", "3", "--images", dev_root, "--weights"], "--weights", f"{weights}/"),
            (["training.py", "-i", "1", "--images", dev_root, "--out", tmp_path / "run", "--init"], "--init",
             f"{weights}/")]:
        r = run(*args, value)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        assert r.stderr.startswith("Error: Invalid value for ") and f"'{option}'" in r.stderr, (args, r.stderr)
        assert r.stderr.endswith(f"{value} names a folder (it ends in /); name a "
                                 f"{'checkpoint file' if option == '--init' else 'file'}.\n"), (args, r.stderr)
        assert r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]  # nothing written
    for variable, value, command in [("HUMANSEG_WEIGHTS", f"{weights}/", ["-m", "humanseg", "predict", "--bkg",
                                                                          bkg, frame, "--out", tmp_path / "out"]),
                                     ("HUMANSEG_POSENET_WEIGHTS", f"{posenet_weights}/", ["-m", "humanseg", "pose",
                                                                                          frame])]:
        env = dict(os.environ, OMP_NUM_THREADS="1", **{variable: value})
        r = subprocess.run([sys.executable, *map(str, command)], cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 2 and r.stderr.startswith(f"Error: {variable}={value}: names a folder (it ends in "
                                                         f"/); name a "), r.stderr
        assert r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_every_command_takes_h_for_help():
    # `python -m humanseg -h` and every subcommand's -h were "Error: No such option: -h", while the
    # entry points took it.
    for args in (["-m", "humanseg"], ["-m", "humanseg", "evaluate"], ["-m", "humanseg", "predict"],
                 ["-m", "humanseg", "live"], ["-m", "humanseg", "export"], ["-m", "humanseg", "pose"],
                 ["main.py"], ["label_images.py"], ["training.py"], ["-m", "humanseg.model.release"]):
        short, long = run(*args, "-h"), run(*args, "--help")
        assert (short.returncode, short.stderr) == (0, ""), args
        assert short.stdout == long.stdout and "Usage:" in short.stdout and "-h, --help" in short.stdout, args


def test_help_imports_no_torch():
    # `python -m humanseg -h` took 2.5 s: listing the commands imported `pose`'s module, which took
    # its --model-id choices from the network's module and so imported torch. torch is blocked here
    # (an import of it fails), so any help that still needs it is a traceback.
    def blocked(run_it, *args):
        script = ("import runpy, sys\n"
                  "sys.modules['torch'] = None\n"
                  "sys.argv = ['prog', *sys.argv[1:]]\n"
                  f"runpy.{run_it}\n")
        return subprocess.run([sys.executable, "-c", script, *args, "-h"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    for args in ([], ["pose"], ["evaluate"], ["predict"], ["live"], ["export"]):
        r = blocked("run_module('humanseg', run_name='__main__', alter_sys=True)", *args)
        assert (r.returncode, r.stderr) == (0, "") and "Usage:" in r.stdout, (args, r.stderr[-800:])
        if args == ["pose"]:
            assert "[50|75|100|101]" in r.stdout  # its --model-id choices still there
    for entry in ("main.py", "label_images.py", "training.py"):
        r = blocked(f"run_path({entry!r}, run_name='__main__')")
        assert (r.returncode, r.stderr) == (0, "") and "Usage:" in r.stdout, (entry, r.stderr[-800:])
    listing = run("-m", "humanseg", "-h").stdout  # (what it lists: the same as with torch there)
    for name in ("evaluate", "export", "live", "pose", "predict"):
        assert f"  {name} " in listing, name


def test_nan_and_inf_are_refused_where_a_number_is_asked_for():
    # A range check compares, and every comparison with nan is false: `--zoom nan` got through to a
    # ValueError deep in the labeler, and `--lr nan` was taken as a learning rate.
    for args, option, value in [(["main.py", "-b"], "'-b' / '--bkg-countdown'", "nan"),
                                (["label_images.py", "-s", "1", "--zoom"], "'--zoom'", "nan"),
                                (["training.py", "--lr"], "'--lr'", "nan"),  # (inf: above its range)
                                (["-m", "humanseg", "live", "--countdown"], "'--countdown'", "-nan"),
                                (["-m", "humanseg", "live", "--countdown"], "'--countdown'", "inf"),
                                (["main.py", "--max-fps"], "'--max-fps'", "inf")]:
        r = run(*args, value)
        shown = value.lstrip("-")
        assert (r.returncode, r.stderr) == (2, f"Error: Invalid value for {option}: {shown} is not a finite number.\n")
    r = run("label_images.py", "-s", "1", "--zoom", "0.01")
    assert r.returncode == 2 and "0.01 is not in the range 0.1<=x<=4.0" in r.stderr  # still a range
    r = run("label_images.py", "-s", "-1")  # ("set folder not found: images/set-1")
    assert (r.returncode, r.stderr) == (2, "Error: Invalid value for '-s' / '--set': -1 is not in the range x>=0.\n")
    r = run("-m", "humanseg", "evaluate", "--images", "images", "--work-width", "31")  # README: 32 to 4096
    assert r.returncode == 2 and "31 is not in the range 32<=x<=4096" in r.stderr, r.stderr


def test_a_warning_is_one_line(tmp_path, dev_root):
    # A 0/1 mask was "humanseg/evaluate.py:74: UserWarning: mask has 0/1 values ..." and the source line.
    shutil.copytree(dev_root / "set3", tmp_path / "set3")
    mask = tmp_path / "set3" / "0_mask.png"
    cv2.imwrite(str(mask), (cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8))
    r = run("-m", "humanseg", "evaluate", "--images", tmp_path, "--method", "absdiff")
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"warning: mask has 0/1 values, read as 0/255: {mask}\n"


def test_ctrl_c_while_a_command_is_imported_is_one_line(monkeypatch):
    # A command's module is imported when it is looked up, before its own error handling runs (`pose`
    # imported torch there, two seconds, until the sixty-sixth day): Ctrl-C then gave click's
    # "Aborted!" and exit 1, SIGTERM no line at all.
    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.importlib, "import_module", interrupted)
    res = CliRunner().invoke(cli.main, ["pose", "x.png"])
    assert res.exit_code == 130 and res.output == "Error: interrupted\n"


def test_a_ctrl_c_while_the_process_exits_prints_no_traceback():
    # A second Ctrl-C just after a command's "Error: interrupted" landed in torch's exit hooks:
    # "Exception ignored in atexit callback ... KeyboardInterrupt" under the one line.
    script = (
        "import atexit, os, signal, time\n"
        "def late():\n"  # registered before the command ran, so it runs after its hook, as torch's does
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.2)\n"
        "    print('exit hooks done')\n"
        "atexit.register(late)\n"
        "from humanseg.cli import reports_errors\n"
        "reports_errors(lambda: None)()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            preexec_fn=as_from_a_terminal)
    assert (result.returncode, result.stdout, result.stderr) == (0, "exit hooks done\n", "")


@pytest.mark.parametrize("sig, line", [(signal.SIGINT, "Error: interrupted"),
                                       (signal.SIGTERM, "Error: terminated (SIGTERM)")])
@pytest.mark.parametrize("more_work", [True, False])
def test_a_ctrl_c_that_python_drops_in_a_callback_still_stops_the_command(sig, line, more_work):
    # The signal's exception raised inside a weakref callback (importlib's module locks have one, so any
    # import can be the place) is printed by Python as "Exception ignored in ..." and dropped: an
    # interrupted export ran on to its end and exited 0 with that traceback. It must stop the command
    # as any Ctrl-C does, whether work follows or the command was about to return.
    script = (
        "import os, signal, sys, time, weakref, click\n"
        "from humanseg.cli import reports_errors\n"
        "class Thing: pass\n"
        "@click.command()\n"
        "@reports_errors\n"
        "def cmd():\n"
        "    thing = Thing()\n"
        f"    ref = weakref.ref(thing, lambda _: os.kill(os.getpid(), {int(sig)}))\n"
        "    del thing\n"  # the callback runs here; the signal's exception is raised inside it
        "    print('after the callback', flush=True)\n"
        f"    for _ in range({300 if more_work else 0}):\n"
        "        time.sleep(0.01)\n"
        "    print('finished', flush=True)\n"
        "cmd()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            preexec_fn=as_from_a_terminal)
    assert (result.returncode, result.stderr) == (128 + sig, line + "\n")
    # Stopped within the work, not after it (without work, it is stopped as the command returns).
    if more_work:
        assert result.stdout == "after the callback\n"
    else:
        assert result.stdout in ("after the callback\n", "after the callback\nfinished\n")


def test_only_our_own_user_warnings_are_shortened_to_one_line():
    # Another package's warning, or a deprecation of ours, keeps Python's form (file and line) to find it by.
    own = cli._format_warning("a 0/1 mask", UserWarning, os.path.join(cli._PACKAGE, "store.py"), 12)
    assert own == "warning: a 0/1 mask\n"
    theirs = cli._format_warning("odd", UserWarning, "/usr/lib/python3/dist-packages/x.py", 7, line="")
    assert theirs.startswith("/usr/lib/python3/dist-packages/x.py:7: UserWarning: odd")
    deprecated = cli._format_warning("old", DeprecationWarning, os.path.join(cli._PACKAGE, "store.py"), 3, line="")
    assert "DeprecationWarning: old" in deprecated and not deprecated.startswith("warning:")


def test_a_names_undecodable_bytes_are_written_as_they_are_and_other_characters_escaped():
    def written(text, encoding):
        try:
            text.encode(encoding)
        except UnicodeEncodeError as exc:
            return cli._names_as_they_are(exc)
        raise AssertionError(text)

    assert written("set\udcff\udc80.png", "utf-8") == (b"\xff\x80", 5)  # a Latin-1 name's bytes
    assert written("a\u2014b", "ascii") == ("\\u2014", 2)
    assert written("\udc7f", "utf-8") == ("\\udc7f", 1)  # a lone surrogate that is no byte: escaped
    assert written("\udcff\udc7f", "utf-8") == ("\\udcff\\udc7f", 2)  # nor is a run holding one


def test_a_folder_option_refuses_a_file_and_a_file_option_a_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert cli.Folder().convert(str(tmp_path), None, None) == str(tmp_path)
    assert cli.File().convert(str(tmp_path / "notes.txt"), None, None) == str(tmp_path / "notes.txt")
    with pytest.raises(click.BadParameter, match="is a file"):
        cli.Folder().convert(str(tmp_path / "notes.txt"), None, None)
    with pytest.raises(click.BadParameter, match="is a directory"):
        cli.File().convert(str(tmp_path), None, None)
    assert cli.UserError("x").exit_code == 2 and cli.UserError("x", 1).exit_code == 1


def test_a_command_failing_for_memory_or_a_file_is_one_line_and_any_other_failure_its_traceback(tmp_path):
    def failing(exc):
        @cli.reports_errors
        def command():
            raise exc
        return command

    for exc, message, code in ((MemoryError(), "out of memory (an image too large for this machine's memory, or too many at once?)", 1),
                               (RuntimeError("can't allocate memory"), "out of memory (an image too large", 1),
                               # a data loader worker's numpy MemoryError, and a failed shared-memory map,
                               # as the RuntimeErrors PyTorch raises for them
                               (RuntimeError("Caught MemoryError in DataLoader worker process 0.\nOriginal Traceback "
                                             "(most recent call last):\nnumpy.core._exceptions._ArrayMemoryError: "
                                             "Unable to allocate 30.0 MiB for an array with shape (1024, 1024, 30)"),
                                "out of memory (an image too large", 1),
                               (RuntimeError("unable to mmap 31457280 bytes from file </torch_9_1>: Cannot allocate "
                                             "memory (12)"), "out of memory (an image too large", 1),
                               (PermissionError(13, "Permission denied", str(tmp_path / "x")), str(tmp_path / "x"), 1),
                               (OSError(28, "No space left on device"), "No space left on device", 1),  # no file
                               (cli.HumansegError("bad input"), "bad input", 2),
                               (cli.HumansegError("training diverged", exit_code=1), "training diverged", 1)):
        with pytest.raises(cli.UserError) as err:
            failing(exc)()
        assert err.value.exit_code == code and err.value.message.startswith(message), (exc, err.value.message)
    with pytest.raises(ZeroDivisionError):  # a bug stays a traceback, to be reported as one
        failing(ZeroDivisionError())()


def test_a_misspelt_command_is_a_usage_error_that_names_it():
    # The lazy group looks a command up by name: one it does not know is click's usage error (exit 2),
    # not a traceback from looking up a module for it.
    res = CliRunner().invoke(cli.main, ["evalute", "--images", "images"])
    assert res.exit_code == 2 and res.output.endswith("Error: No such command 'evalute'.\n"), res.output
    assert "Traceback" not in res.output


def _symlink_loop(folder, name):
    """folder/name -> other-name -> name: links that lead back to each other."""
    link, other = folder / name, folder / f"other-{name}"
    link.symlink_to(other.name)
    other.symlink_to(link.name)
    return link


@pytest.mark.parametrize("case", ["predict frame", "predict mask", "predict mask --force", "pose drawing",
                                  "export", "evaluate --montage", "evaluate --json", "evaluate --weights",
                                  "live --save-bkg", "training --images", "training --init"])
def test_a_symlink_loop_anywhere_a_path_is_given_is_one_line(case, tmp_path, dev_root, posenet_weights):
    # pathlib's resolve() raises RuntimeError("Symlink loop from ...") for it, not an OSError: where a
    # command resolved a path given (to compare it with others), exit 1 and a 40-line traceback.
    s1, out = dev_root / "set1", tmp_path / "out"
    out.mkdir()
    root = tmp_path / "images"
    shutil.copytree(s1, root / "set1", ignore=shutil.ignore_patterns("[1-9]*"))
    names = {"predict mask": "0_mask.png", "predict mask --force": "0_mask.png", "pose drawing": "0_pose.png",
             "export": "m.onnx", "live --save-bkg": "room.png"}
    loop = _symlink_loop(out if case.startswith(("predict mask", "pose")) else tmp_path, names.get(case, "looped"))
    predict = ["-m", "humanseg", "predict", "--bkg", s1 / "bkg.png", "--out", out]
    evaluate = ["-m", "humanseg", "evaluate", "--images", root]
    training = ["training.py", "-i", 1, "--out", tmp_path / "run", "--val-sets", "none", "--size", "64x64"]
    args = {"predict frame": [*predict, loop], "predict mask": [*predict, s1 / "0.png"],
            "predict mask --force": [*predict, s1 / "0.png", "--force"],
            "pose drawing": ["-m", "humanseg", "pose", "--out", out, "--posenet-weights", posenet_weights,
                             s1 / "0.png"],
            "export": ["-m", "humanseg", "export", "--onnx", loop],
            "evaluate --montage": [*evaluate, "--method", "absdiff", "--montage", loop, "--json", tmp_path / "r.json"],
            "evaluate --json": [*evaluate, "--method", "absdiff", "--save-masks", tmp_path / "masks", "--json", loop],
            "evaluate --weights": [*evaluate, "--json", tmp_path / "r.json", "--weights", loop],
            "live --save-bkg": ["-m", "humanseg", "live", "--no-window", "--source", s1 / "0.png", "--bkg",
                                s1 / "bkg.png", "--save-bkg", loop, "--save-masks", tmp_path / "masks",
                                "--max-frames", 1],
            "training --images": [*training, "--images", loop],
            "training --init": [*training, "--images", root, "--init", loop]}[case]
    r = run(*args)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        f"Error: {loop}: a symlink loop (links that lead back to each other); remove or mend it"], r.stderr[-600:]
    assert os.readlink(loop) == f"other-{loop.name}"  # left as it was


def test_release_imports_neither_torch_nor_opencv_before_its_ctrl_c_handling():
    # `python -m humanseg.model.release` imported torch (through humanseg.model's __init__) and
    # OpenCV (through store) before its handler was in place: a Ctrl-C in its first second and a
    # half was a KeyboardInterrupt traceback. The entry points' own imports take a tenth of that.
    script = ("import sys, humanseg.model.release\n"
              "print(sorted(m for m in ('torch', 'cv2') if m in sys.modules))\n"
              "from humanseg.model import load_segmenter, DEFAULT_WEIGHTS\n"  # the package's names still there
              "print(callable(load_segmenter), DEFAULT_WEIGHTS.name, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\nTrue default.pt True\n", "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_that_cannot_be_written_is_named_as_standard_output():
    # stdout to a full disk: `--help` and `--version` were a traceback (click re-raises all but a
    # closed pipe), and a command's own output failing read "Error: No space left on device", as if
    # the file it was writing were on a full disk.
    for args in (["-m", "humanseg", "--help"], ["-m", "humanseg", "--version"], ["-m", "humanseg", "live", "-h"],
                 ["training.py", "--help"], ["main.py", "-h"], ["label_images.py", "-h"],
                 ["-m", "humanseg", "evaluate", "--images", str(ROOT.parent / "shared" / "data" / "dev"), "--sets",
                  "1", "--method", "absdiff"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True,
                               timeout=120)
        assert (r.returncode, r.stderr) == (1, "Error: standard output: No space left on device\n"), args
    # A closed pipe stays a BrokenPipeError (training stops on it as on a signal), now with the name.
    named = cli._named(BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert isinstance(named, BrokenPipeError) and str(named) == "[Errno 32] Broken pipe: 'standard output'"
    kept = OSError(errno.ENOSPC, "No space left on device", "weights/best.pt")
    assert cli._named(kept) is kept  # a file's own error keeps its file
