"""Errors a user can cause. Entry points print their message instead of a traceback."""

import errno
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

STARTED = time.time() - 1  # when this process began, near enough: folders made since are its own (ctime, 1 s grain)


class AereconError(Exception):
    """A problem with the user's input (config, paths, files) that they can fix."""

    label, exit_code = "error", 2  # what the entry point prints before the message, and exits with


class AudioError(AereconError):
    """A file that cannot be used as audio; the message says why."""


class DataError(AereconError):
    """A dataset that cannot be used as configured (no files, empty split, ...)."""


class DiskError(AereconError):
    """A file aerecon must write cannot be written (a full or read-only disk); nothing already written is lost."""


def first_line(error: BaseException) -> str:
    """A third-party error as one short line: store clients raise their own types, some with
    pages of detail."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


# The OSErrors that mean "this file cannot be written here", not a bug: a full disk, over quota,
# read-only, too big, or a folder the user may not write (files aerecon reads are checked where read).
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM})


def disk_error(error: BaseException, advice: str) -> DiskError | None:
    """A DiskError naming the file `error` could not write, and what to do (`advice`); None for any
    other error."""
    if not isinstance(error, OSError) or error.errno not in DISK_ERRNOS:
        return None
    where = f" {error.filename}" if error.filename else ""
    return DiskError(f"cannot write{where} ({error.strerror or error}). {advice}")


class ConfigError(AereconError):
    """A config value that cannot work; the message names the key and a valid example."""


class NumericalError(AereconError):
    """Training diverged (a NaN or Inf loss); the message names where and what to change."""


class Stopped(BaseException):
    """The user (or a scheduler) stopped the run with a signal; the message says how to resume.

    Not an Exception, as KeyboardInterrupt is not: no `except Exception` (a decoder's failure
    taken for a bad file, a store client's for a bad URL, logging's for a bad line) swallows it."""

    label = "stopped"

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def user_error(error: BaseException) -> AereconError | Stopped | None:
    """The AereconError (or stop) behind `error`, if any (hydra's instantiate wraps what constructors raise)."""
    return cause(error, (AereconError, Stopped))


def message_of(error: BaseException) -> str:
    """An error's message; for one raised in a DataLoader worker (which torch raises again in the
    main process with the worker's traceback as its message), the worker's own message."""
    text = str(error)
    if text.startswith("Caught ") and "\nOriginal Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def cause(error: BaseException, kinds) -> BaseException | None:
    """The first error of `kinds` in `error`'s chain of causes (a library that wraps what it caught
    in its own exception keeps the original there), or None."""
    while error is not None:
        if isinstance(error, kinds):
            return error
        error = error.__cause__ or error.__context__
    return None


def reraise_stop_or_disk(error: BaseException, target) -> None:
    """Raises the stop, or a full or read-only disk as a DiskError naming `target`, that a library
    wrapped in an exception of its own; returns for any other error."""
    found = cause(error, (Stopped, KeyboardInterrupt, OSError))
    if isinstance(found, (Stopped, KeyboardInterrupt)):
        raise found from None
    if isinstance(found, OSError) and found.errno in DISK_ERRNOS:
        raise DiskError(f"cannot write {target} ({found.strerror or found}); nothing was written") from None


@contextmanager
def exit_on_user_error():
    """In an entry point: a user's mistake prints one `aerecon: error: ...` line and exits 2;
    a stop by signal prints `aerecon: stopped: ...` and exits 128 + the signal's number."""
    try:
        yield
    except KeyboardInterrupt:  # Ctrl+C outside a training epoch (scanning, caching, testing, evaluating)
        print(
            "aerecon: stopped: SIGINT outside a training epoch; every file written so far is complete", file=sys.stderr
        )
        sys.exit(128 + signal.SIGINT)
    except (Exception, Stopped) as error:
        found = user_error(error) or disk_error(
            error, "Free some space (or make the folder writable), then run the same command again"
        )
        if found is None:
            raise
        if not (isinstance(found, Stopped) and os.environ.get("LOCAL_RANK", "0") != "0"):  # DDP: rank 0 says it
            print(f"aerecon: {found.label}: {message_of(found)}", file=sys.stderr)
        if not isinstance(found, Stopped):
            remove_refused_run()
        sys.exit(found.exit_code)


def remove_refused_run() -> None:
    """A run refused before it wrote anything leaves no folder to clutter TensorBoard and reports:
    its folder goes when this process made it (Hydra does, before the command's own checks) and
    it holds only Hydra's record of the command and the log; so do the parents this process made
    for it, once empty."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    run = Path(HydraConfig.get().runtime.output_dir).absolute()

    def made_here(folder: Path) -> bool:
        return folder != Path.cwd().absolute() and folder.is_dir() and folder.stat().st_ctime >= STARTED

    if not made_here(run) or not (run / ".hydra").is_dir():
        return
    if any(p.name not in (".hydra", ".run.lock") and not (p.is_file() and p.suffix == ".log") for p in run.iterdir()):
        return
    shutil.rmtree(run, ignore_errors=True)
    for parent in run.parents:
        if not made_here(parent) or any(parent.iterdir()):
            break
        parent.rmdir()


class Forwarding:
    """The launchers (e.g. Lightning's, of DDP ranks) whose processes a signal is passed on to."""

    def __init__(self):
        self.launchers = []

    def add(self, launcher) -> None:
        if hasattr(launcher, "kill"):
            self.launchers.append(launcher)

    def forward(self, signum: int) -> None:
        for launcher in self.launchers:
            launcher.kill(signum)


@contextmanager
def sigterm_stops(message: Callable[[], str]):
    """Within: SIGTERM raises Stopped(message()) like Ctrl+C raises KeyboardInterrupt (which becomes
    Stopped too, with the same message), so every
    `finally` runs (worker processes are terminated, temporary files removed) and the entry point
    exits 143 with the message. Yields a Forwarding: the processes of the launchers added to it
    (DDP ranks this process started) get the signal too, so none is left waiting for this one."""
    forwarding = Forwarding()
    if threading.current_thread() is not threading.main_thread():
        yield forwarding
        return

    def stop(signum: int, frame) -> None:
        forwarding.forward(signum)
        raise Stopped(f"{signal.Signals(signum).name} {message()}", signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield forwarding
    except KeyboardInterrupt:  # Ctrl+C: the same message, with its own signal
        raise Stopped(f"SIGINT {message()}", signal.SIGINT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
