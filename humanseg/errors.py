"""Errors the tool reports to users as one line (never a traceback)."""


class HumansegError(Exception):
    """A user-facing failure; the message names the file or option at fault.

    exit_code follows the CLI convention: 2 bad usage or bad input, 1 a runtime failure.
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class StoreError(HumansegError):
    """Something wrong with the images/setN/ layout or one of its files."""


class WeightsError(HumansegError):
    """Weights missing, corrupt, or not fitting the model."""
