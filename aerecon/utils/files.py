"""Writing files so that a reader never sees a partial one, whatever interrupts the writer; their
hashes; and locks that make one process the only writer of a folder."""

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout


def is_url(root: str) -> bool:
    """A data root in an object store (s3://, gs://, ... or LitData's local: stand-in), not a path."""
    return "://" in str(root) or str(root).startswith("local:")


def atomic_write(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(f)` into a temporary file beside `target`, fsync it, then rename it over `target`."""
    target = Path(target)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_link(source: Path, target: Path) -> bool:
    """Make `target` a hard link to `source`, replacing it atomically; False where links are not
    supported (the caller then writes a copy). A hard link, not a symlink: deleting either name
    leaves the other whole."""
    target = Path(target)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.link")
    try:
        os.link(source, tmp)
        os.replace(tmp, target)
        return True
    except OSError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def sha256(path: Path) -> str:
    """The file's SHA-256, read a megabyte at a time (hashlib.file_digest needs Python 3.11)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def only_writer(lock: Path, refusal: str) -> Iterator[None]:
    """Within: this process holds `lock`; when another holds it, a ConfigError(`refusal`) at once."""
    from aerecon.utils.errors import ConfigError

    held = FileLock(str(lock), timeout=0)
    try:
        held.acquire()
    except Timeout:
        raise ConfigError(refusal) from None
    try:
        yield
    finally:
        held.release()
