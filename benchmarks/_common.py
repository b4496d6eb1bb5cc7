"""What the benchmark scripts share: option types that refuse what cannot be timed, and one-line errors.

Not a benchmark itself (`make bench` runs benchmarks/[!_]*.py).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from humanseg.cli import MAX_THREADS, MAX_WORK_WIDTH, MIN_WORK_WIDTH
from humanseg.errors import HumansegError


def _whole(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"{value} is not {what}")
    return value


def count(text: str) -> int:
    """Repeats, frames, runs: at least 1 (a median of nothing is no measurement)."""
    return _whole(text, 1, None, "at least 1")


def at_least_0(text: str) -> int:
    """Warm-up calls: none is a choice."""
    return _whole(text, 0, None, "0 or more")


def threads(text: str) -> int:
    return _whole(text, 1, MAX_THREADS, f"a thread count from 1 to {MAX_THREADS}")


def work_width(text: str) -> int:
    return _whole(text, MIN_WORK_WIDTH, MAX_WORK_WIDTH, f"a working width from {MIN_WORK_WIDTH} to {MAX_WORK_WIDTH}")


def run(main: Callable[[], None]) -> None:
    """main(), with the tool's errors (missing weights, a set without frames, ...) as one line."""
    try:
        main()
    except HumansegError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(130)
