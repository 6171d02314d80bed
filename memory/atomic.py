"""Replacing a file whole: readers see the old content or the new, never a part.

The temporary file gets a fresh name in the same folder, `.NAME.<random>.tmp` (not one named after
the pid, which a crashed writer left behind and a pid reused later wrote into), and it is removed
if the write fails, so a full disk or a read-only folder leaves nothing behind. `durable` also
syncs the file and the folder, so the new content survives a power cut (a run's checkpoint, a
pending-run note); a cache does without.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Writer = Callable[[BinaryIO], None]


def write_atomic(path: Path, data: str | bytes | Writer, durable: bool = False) -> None:
    """Write `data` (text, bytes, or a function writing into the open file) to `path` through a
    temporary file and a rename. Raises what the writing raised, the temporary file removed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
