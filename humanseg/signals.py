"""Stopping on request: SIGTERM and SIGHUP handled as Ctrl-C is, and training's stop-after-this-step
signals."""

from __future__ import annotations

import _thread
import errno
import os
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager


# Asked to stop by another than the user's Ctrl-C: `kill`, a job scheduler (SIGTERM); the terminal
# closed or an ssh connection dropped (SIGHUP, which ended a recording and a checkpoint's write
# half-way, with no clean-up; left alone where ignored, as under nohup).
STOPS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C's KeyboardInterrupt would be, so the same clean-up
    runs: temporary files removed, a recording kept, windows closed. signum: which."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = signum


def quiet_hung_up_terminal(signum: int) -> None:
    """On SIGHUP, point stdout and stderr at /dev/null where they lead nowhere any more (a terminal
    that has gone with its window or ssh connection; a 0-byte write to it fails): the log lines after
    the stop and the one-line error failed with "Input/output error", exit 1, not 129."""
    if signum != getattr(signal, "SIGHUP", None):
        return
    for fd in (1, 2):
        try:
            os.write(fd, b"")  # (isatty() says False for a terminal that has gone)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)
            except OSError:
                pass


def quiet_closed_pipes() -> None:
    """Point stdout and stderr at /dev/null where they are pipes whose reader is gone (`| tee` ended by
    the same Ctrl-C, `| head -1` done): every later write would fail again."""
    for fd in (1, 2):
        try:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            if any(events & select.POLLERR for _, events in poller.poll(0)):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)
        except (OSError, ValueError, AttributeError):  # (closed, or no poll on this system)
            pass


class StreamProxy:
    """A text stream standing in for another, whose failed writes and flushes go to `failed(exc)`
    (which raises, or returns to drop what was written); everything else is the stream's own."""

    def __init__(self, stream):
        self._stream = stream

    def failed(self, exc: OSError) -> None:
        raise exc

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            self.failed(exc)
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            self.failed(exc)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Guarded(StreamProxy):
    """A text stream whose writes to a closed pipe are dropped, and said to its OutputGuard."""

    def __init__(self, stream, guard: "OutputGuard"):
        super().__init__(stream)
        self._guard = guard

    def failed(self, exc: OSError) -> None:
        self._guard.closed(exc)


class OutputGuard:
    """Within the block, sys.stdout and sys.stderr drop what goes to a pipe whose reader is gone, and
    `broken` says it happened: training then stops and saves as on a signal. Its progress bar or a log
    line raised BrokenPipeError (`training.py ... 2>&1 | tee log`, then Ctrl-C, ends tee too), which
    skipped the save: the steps since the last checkpoint were lost, and a new run's --out removed."""

    def __init__(self):
        self.broken = False
        self._saved = None

    def closed(self, exc: OSError) -> None:
        if exc.errno != errno.EPIPE:
            raise exc
        self.broken = True
        quiet_closed_pipes()

    def start(self) -> "OutputGuard":
        self._saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = (None if s is None else _Guarded(s, self) for s in self._saved)
        return self

    def end(self) -> None:
        """The streams as they were (again: a no-op once done, or before start)."""
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None

    def __enter__(self) -> "OutputGuard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.end()


def raise_for(signum: int):
    """The exception a stop signal is raised as: Terminated, or KeyboardInterrupt for Ctrl-C."""
    raise Terminated(signum) if signum in STOPS else KeyboardInterrupt()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM and SIGHUP raise Terminated (each unless it was ignored, or this is
    not the main thread, where signal handlers cannot be set)."""
    if not _main_thread():
        yield
        return

    def handle(signum, frame):
        quiet_hung_up_terminal(signum)
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handle) for sig in STOPS if signal.getsignal(sig) is not signal.SIG_IGN}
    resent: list[threading.Thread] = []
    hook = sys.unraisablehook

    def unraisable(args):
        # A Ctrl-C (or SIGTERM, SIGHUP) whose exception was raised inside a weakref callback or a __del__
        # (importlib's module locks have one, so any import can be the place) is printed as "Exception
        # ignored in ..." and dropped by Python: an interrupted export ran to its end, exit 0, with that
        # traceback. Sent again instead, a moment later, from another thread, so that it comes to the
        # main thread once it has left the callback (sent from here, it was raised inside this hook).
        if isinstance(args.exc_value, KeyboardInterrupt):
            signum = getattr(args.exc_value, "signum", signal.SIGINT)
            thread = threading.Thread(target=_send_again, args=(signum,), daemon=True)
            resent.append(thread)
            thread.start()
        else:
            hook(args)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        try:
            for thread in resent:  # (the signal sent again then comes here, if not before)
                thread.join()
        finally:
            sys.unraisablehook = hook
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _send_again(signum: int) -> None:
    time.sleep(0.01)  # (the main thread leaves the callback that dropped it)
    _thread.interrupt_main(signum)


_holding = [0]  # signals_held blocks the main thread is in


@contextmanager
def signals_held():
    """Within the block (work that must finish or not start: closing a recording, claiming and writing
    a file, making a set folder and its bkg.png), Ctrl-C, SIGTERM and SIGHUP are held back; one that
    came is handed after the block to the handler that was there, as if it came then (Ctrl-C's
    KeyboardInterrupt, a command's Terminated, training's stop after this step). A second Ctrl-C while
    a recording was being closed aborted the process and left only its temporary file; one between
    a temporary file's creation and its being known to the code that removes it left the file. A
    block within a block leaves the holding to the outer one."""
    if not _main_thread() or _holding[0]:
        yield
        return
    came: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, *STOPS):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, lambda signum, frame: came.append(signum))
    _holding[0] += 1
    try:
        yield
    finally:
        _holding[0] -= 1
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # Handed on whether the block ended or raised (a failed save that is caught and gone on from,
        # a loader worker's end raised by PyTorch's SIGCHLD handler): one dropped with the block's
        # error was lost, and training took the worker's end for a failure of its own.
        if came:
            handler = previous.get(came[-1])
            if callable(handler):
                handler(came[-1], None)
            else:  # the default action: ended as the signal would have ended it, with the clean-up above
                raise_for(came[-1])


@contextmanager
def child_ends_ignored():
    """After the data loader is done with: a worker's end is no error any more. PyTorch's SIGCHLD
    handler stays installed and raised from wherever the main thread was when a worker, ended by the
    SIGTERM sent to the whole process group, was reaped: in the middle of saving last.pt."""
    if not (hasattr(signal, "SIGCHLD") and _main_thread()):
        yield
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)


class StopSignals:
    """Ctrl-C (SIGINT), SIGTERM or SIGHUP while training: the step in progress finishes, then training stops
    with last.pt saved, so the checkpoint is never taken half way through an optimizer step. A second
    signal stops at once (but for the run's saves as it ends: hold()), except under torchrun, whose
    agent repeats the signal to every rank: there the ranks must stop together. SIGINT is left alone
    where it was ignored (a job started in the background)."""

    def __init__(self, twice_stops_at_once: bool = True):
        self.signum: int | None = None
        self.twice_stops_at_once = twice_stops_at_once
        self._previous: dict[int, object] = {}
        self._in_step = False
        self._held: int | None = None  # a second signal that came during a step
        self._holding = False  # every signal held (hold())

    @contextmanager
    def step(self):
        """An optimizer step: a second signal waits for its end (one step, a fraction of a second),
        so the model, its BatchNorm statistics and the optimizer's state are all of one step when
        last.pt is saved. Stopping at once stays quick where it matters: in validation, or while
        the data loader is waited for."""
        # PyTorch's data loader raises from a SIGCHLD handler when a worker dies (a SIGTERM to the whole
        # process group ends it too): raised mid-step, the step's counter had moved on without its
        # metrics, and last.pt could hold half a step. Held until the step's end, like a second signal.
        child = signal.getsignal(signal.SIGCHLD) if hasattr(signal, "SIGCHLD") and _main_thread() else None
        ended: list = []
        if callable(child):
            signal.signal(signal.SIGCHLD, lambda signum, frame: ended.append(frame))
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False
            if callable(child):
                signal.signal(signal.SIGCHLD, child)
        if ended:
            child(signal.SIGCHLD, ended[-1])
        if self._held is not None:
            raise_for(self._held)

    def install(self) -> None:
        if _main_thread():
            for sig in (signal.SIGINT, *STOPS):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)

    def hold(self) -> None:
        """From now on (training's loop is over: last.pt and metrics.csv are being saved) every signal
        is held, to be answered once they are: a second Ctrl-C here had ended the run before its
        saves, losing every step since the last checkpoint (and a new run's --out)."""
        self._holding = True

    def _handle(self, signum, frame) -> None:
        quiet_hung_up_terminal(signum)
        if self._holding:
            if self.signum is None:
                self.signum = signum
            return
        if self.signum is not None:
            if self.twice_stops_at_once:
                if self._in_step:
                    self._held = signum  # asked twice: stop once this step is whole
                    return
                raise_for(signum)
            return
        self.signum = signum
        again = " (send it again to stop at once)" if self.twice_stops_at_once else ""
        try:
            os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step{again}\n".encode())
        except OSError:  # stderr gone (a closed pipe): stopping and saving matter more than the note
            pass

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
