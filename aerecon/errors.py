"""Errors a user can cause. Entry points print their message instead of a traceback."""

import sys
from contextlib import contextmanager


class AereconError(Exception):
    """A problem with the user's input (config, paths, files) that they can fix."""


class AudioError(AereconError):
    """A file that cannot be used as audio; the message says why."""


class DataError(AereconError):
    """A dataset that cannot be used as configured (no files, empty split, ...)."""


class ConfigError(AereconError):
    """A config value that cannot work; the message names the key and a valid example."""


class NumericalError(AereconError):
    """Training diverged (a NaN or Inf loss); the message names where and what to change."""


def user_error(error: BaseException) -> AereconError | None:
    """The AereconError behind `error`, if any (hydra's instantiate wraps what constructors raise)."""
    while error is not None:
        if isinstance(error, AereconError):
            return error
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def exit_on_user_error():
    """In an entry point: a user's mistake prints one `aerecon: error: ...` line and exits 2."""
    try:
        yield
    except Exception as error:
        if (found := user_error(error)) is None:
            raise
        print(f"aerecon: error: {found}", file=sys.stderr)
        sys.exit(2)
