"""`python -m humanseg ...`: a click group whose subcommands are imported only when used."""

from __future__ import annotations

import atexit
import codecs
import contextlib
import functools
import importlib
import math
import os
import re
import signal
import sys
import warnings
from pathlib import Path

import click

from humanseg import errors
from humanseg.errors import HumansegError, out_of_memory
from humanseg.signals import StreamProxy, Terminated, sigterm_as_interrupt

_PACKAGE = str(Path(__file__).resolve().parent)
_python_format = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None):
    if issubclass(category, UserWarning) and str(filename).startswith(_PACKAGE):
        return f"warning: {message}\n"
    return _python_format(message, category, filename, lineno, line)


def _show_usage_error(self, file=None):
    click.echo(f"Error: {self.format_message()}", err=True, file=file)


def _names_as_they_are(exc: UnicodeError):
    """Encoding errors of stdout/stderr: a file name's undecodable bytes (surrogates) as those bytes,
    anything else the encoding lacks backslash-escaped."""
    if isinstance(exc, UnicodeEncodeError):
        bad = exc.object[exc.start:exc.end]
        if all("\udc80" <= c <= "\udcff" for c in bad):
            return bytes(ord(c) - 0xDC00 for c in bad), exc.end
    return codecs.backslashreplace_errors(exc)


_NAMES_AS_THEY_ARE = "humanseg.names_as_they_are"


def as_a_tool() -> None:
    """Process-wide settings for a command-line tool, so that its output on bad input is its one line;
    each entry point (python -m humanseg, main.py, label_images.py, training.py, model.release) calls
    this first, and importing the package as a library changes none of it.
     - OpenCV's own log lines ("[ WARN:0@1.9] ... PNG input buffer is incomplete", or "[ERROR:0@0.04]
       ... Unexpected end of input stream" for a cut BMP, before our "Error: frame unreadable or
       corrupt: ...") are held back; setting OPENCV_LOG_LEVEL shows them again.
     - Our warnings (a 0/1 mask, a damaged video) are one line, "warning: ...", not Python's
       "FILE:LINE: UserWarning: ..." followed by the source line.
     - A bad option value ("Directory 'x' does not exist") is one line, "Error: ...", exit 2, as our
       own errors are, rather than click's usage, a "Try --help" hint and then the error.
     - A file name that is not valid UTF-8 (bytes Python keeps as surrogates) is printed as it is, its
       own bytes, where a UTF-8 desktop locale's strict stdout raised UnicodeEncodeError (the C locale's
       kept them); any other character the terminal's encoding lacks is escaped (\\u2014).
     - Output that cannot be written (stdout to a full disk, or /dev/full) is said as such, "Error:
       standard output: No space left on device", exit 1: it read as a full disk under a file being
       written, and `--help` or `--version` gave a traceback."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")  # its error-level lines too: a truncated BMP
    if "cv2" in sys.modules and os.environ["OPENCV_LOG_LEVEL"] == "FATAL":  # imported already
        sys.modules["cv2"].setLogLevel(1)  # fatal only
    warnings.formatwarning = _format_warning
    click.UsageError.show = _show_usage_error
    codecs.register_error(_NAMES_AS_THEY_ARE, _names_as_they_are)
    for stream in (sys.__stdout__, sys.__stderr__):  # the process's own (not a test's capturing stand-in)
        if stream is not None:
            stream.reconfigure(errors=_NAMES_AS_THEY_ARE)
    if sys.stdout is not None and not isinstance(sys.stdout, NamedStdout):
        sys.stdout = NamedStdout(sys.stdout)
    sys.excepthook = _output_failure_in_one_line


STDOUT_NAME = "standard output"


class NamedStdout(StreamProxy):
    """sys.stdout whose failed writes name it: an OSError without a file name (a full disk's) gets
    "standard output" as its name, so that it reads "standard output: No space left on device" (a
    closed pipe's stays a BrokenPipeError)."""

    def failed(self, exc: OSError) -> None:
        raise _named(exc) from None


def _named(exc: OSError) -> OSError:
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, STDOUT_NAME)  # (the errno's own subclass, as OSError makes it)


_python_excepthook = sys.excepthook


def _output_failure_in_one_line(kind, exc, tb):
    """What escapes every command's own handling: click's --help and --version writing to a full stdout."""
    if isinstance(exc, OSError) and exc.filename == STDOUT_NAME:
        try:
            sys.stderr.write(f"Error: {errors.reason(exc)}\n")
            sys.stderr.flush()
            return  # (exit status 1, as for any uncaught exception)
        except Exception:
            pass
    _python_excepthook(kind, exc, tb)


# Every command, entry point and benchmark takes -h as well as --help (subcommands inherit the group's).
CONTEXT = {"help_option_names": ["-h", "--help"]}


def _given_as(option: click.Option, token: str) -> bool:
    """Whether a command-line token gives this option (--set 3, --set=3, -s 3 or -s3)."""
    for name in option.opts:
        if token == name or (name.startswith("--") and token.startswith(name + "=")):
            return True
        if len(name) == 2 and not token.startswith("--") and token.startswith(name):
            return True
    return False


class Command(click.Command):
    """click.Command that refuses an option of one value given twice: the last one won without a
    word (`label_images.py -s 2 -s 1` labeled set 1, `predict --out a --out b` wrote to b only)."""

    def parse_args(self, ctx, args):
        once = [p for p in self.params if isinstance(p, click.Option) and not p.multiple and not p.count
                and not p.is_flag]
        tokens = args[:args.index("--")] if "--" in args else args
        for option in once:
            given = [t for t in tokens if _given_as(option, t)]
            if len(given) > 1:
                raise click.UsageError(f"{option.opts[-1]} given {len(given)} times; give it once", ctx)
        for option in self.params:  # --mirror --no-mirror: the last won
            if isinstance(option, click.Option) and option.secondary_opts:
                on, off = (any(t in names for t in tokens) for names in (option.opts, option.secondary_opts))
                if on and off:
                    raise click.UsageError(f"give {option.opts[-1]} or {option.secondary_opts[-1]}, not both", ctx)
        return super().parse_args(ctx, args)


# name -> "module:attribute"; importing lazily keeps `--help` fast and torch out of light commands.
SUBCOMMANDS = {
    "pose": "humanseg.pose.cli:pose_command",
    "evaluate": "humanseg.evaluate:evaluate_command",
    "predict": "humanseg.evaluate:predict_command",
    "live": "humanseg.live:live_command",
    "export": "humanseg.export:export_command",
}


# torch's thread count: 100000 crashed it (a segmentation fault), 1e11 overflowed.
MAX_THREADS = 256
# The network's working width (a checkpoint's work_width, --work-width): 0 gave empty masks, 100000 asked
# for 90 GB.
MIN_WORK_WIDTH, MAX_WORK_WIDTH = 32, 4096


class Number(click.FloatRange):
    """click.FloatRange that refuses nan and inf: a comparison with nan is always false, so a range
    let it through (`--zoom nan` failed deep inside, `--lr nan` was taken as a learning rate)."""

    name = "number"

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value):
            self.fail(f"{value} is not a finite number.", param, ctx)
        return value


class Folder(click.Path):
    """click.Path for a folder that refuses an empty value: `--images ""` (an unset shell variable)
    was taken for the current folder, and the capture tool made its sets there; an empty output
    folder wrote into the current one."""

    what = "folder"

    def __init__(self, **kwargs):
        super().__init__(**{"file_okay": False, **kwargs})

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value == "":
            self.fail(f"empty; name a {self.what}.", param, ctx)
        if isinstance(value, (str, os.PathLike)):
            parts = Path(value).parts
            for i, part in enumerate(parts):
                # OUT/new/..: every check looked at a place that is not there yet (nothing to refuse),
                # then the write made `new` and landed in OUT (--save-masks images/tmp/.. --force
                # replaced the labels of images/setN).
                if part == ".." and i and not os.path.isdir(os.path.join(*parts[:i])):
                    self.fail(f"{os.path.join(*parts[:i])} is not a folder, so {os.fspath(value)} "
                              f"cannot be followed through its '..'; name the {self.what} without it.",
                              param, ctx)
        return super().convert(value, param, ctx)


def _refuse_a_folders_name(path_type: click.Path, value, param, ctx) -> None:
    """A file's name ending in the separator names a folder (the system refuses to open `x.png/`),
    where pathlib drops the separator and reads or writes the file `x.png`."""
    if isinstance(value, str) and value.endswith(os.sep) and value.strip(os.sep):
        path_type.fail(f"{value} names a folder (it ends in {os.sep}); name a file.", param, ctx)


class File(Folder):
    """click.Path for a file that refuses an empty value: `--json ""` or `--output ""` wrote nothing
    without a word, `--onnx ""` failed in an odd message."""

    what = "file"

    def __init__(self, **kwargs):
        super().__init__(**{"file_okay": True, "dir_okay": False, **kwargs})

    def convert(self, value, param, ctx):
        _refuse_a_folders_name(self, value, param, ctx)  # (`export --onnx new/` wrote a file named new)
        return super().convert(value, param, ctx)


class InFile(click.Path):
    """click.Path for a file to read (a checkpoint, a frame): `--weights w.pt/` or `predict x.png/`
    read the file as if the separator were not there. An empty value is left to the command, which
    says what leaving the option out does instead."""

    def convert(self, value, param, ctx):
        _refuse_a_folders_name(self, value, param, ctx)
        return super().convert(value, param, ctx)


class UserError(click.ClickException):
    """A one-line error with the exit code the failure calls for."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def interrupts_in_one_line():
    """Ctrl-C, SIGTERM and SIGHUP (a `kill`, a closed terminal clean up as Ctrl-C does) inside: one
    line, exit 130 / 143 / 129."""
    try:
        with sigterm_as_interrupt():
            yield
    except Terminated as exc:
        raise UserError(f"terminated ({signal.Signals(exc.signum).name})", 128 + exc.signum) from None
    except KeyboardInterrupt:
        raise UserError("interrupted", 130) from None


def _ignore_interrupts() -> None:
    """At exit, after the command's own one line: a Ctrl-C as torch's exit hooks ran printed a
    traceback ("Exception ignored in atexit callback ... KeyboardInterrupt") under it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def symlink_loop(exc: BaseException) -> str | None:
    """The path of pathlib's "Symlink loop from '...'" RuntimeError (Python 3.11 and 3.12 resolve()
    raise it, not an OSError, for links that lead back to each other), else None."""
    if type(exc) is RuntimeError and len(exc.args) == 1:
        m = re.fullmatch(r"Symlink loop from (['\"])(.*)\1", str(exc.args[0]), re.S)
        if m:
            return m.group(2)
    return None


def reports_errors(fn):
    """Turn HumansegError (and Ctrl-C, SIGTERM) into one line on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with interrupts_in_one_line():
                return fn(*args, **kwargs)
        except HumansegError as exc:
            raise UserError(str(exc), exc.exit_code) from None
        except OSError as exc:  # a folder we cannot write, a full disk: one line, not a traceback
            raise UserError(errors.reason(exc), 1) from None
        except Exception as exc:
            loop = symlink_loop(exc)
            if loop is not None:  # wherever a path given was resolved: one line for every option
                raise UserError(f"{loop}: a symlink loop (links that lead back to each other); remove or "
                                f"mend it", 2) from None
            if not out_of_memory(exc):
                raise
            # A huge frame (6400x4800) on a small machine: numpy's MemoryError, OpenCV's error.
            # (Training's data set, decoded whole, too: there no one image is to blame.)
            raise UserError("out of memory (an image too large for this machine's memory, or too many "
                            "at once?)", 1) from None
        finally:
            # Exit hooks run last registered first: this one, registered after the command imported
            # torch (and registered again each time, so it stays the last), runs before torch's.
            atexit.unregister(_ignore_interrupts)
            atexit.register(_ignore_interrupts)

    return wrapper


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx, name):
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        with interrupts_in_one_line():  # importing torch takes seconds: Ctrl-C then is one line too
            module = importlib.import_module(module_name)
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(package_name=None, version=__import__("humanseg").__version__)
def main():
    """humanseg: person segmentation with a background reference."""


def _one_images_root(ctx, param, value):
    # Given twice, the last one given won without a word: `evaluate --images a --images b` scored b's
    # sets alone (training.py, which pools several roots, has its own --images).
    if len(value) > 1:
        raise click.BadParameter(f"given {len(value)} times ({', '.join(value)}); this command reads one "
                                 f"folder of sets (training.py pools several)")
    return value[0]


images_option = click.option(
    "--images", "images", default=["images"], show_default=True, multiple=True, callback=_one_images_root,
    type=Folder(), help="Folder holding the setN/ capture folders.",
)
