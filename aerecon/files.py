"""Writing files so that a reader never sees a partial one, whatever interrupts the writer."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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
