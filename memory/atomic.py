"""Replacing a small file whole: readers see the old content or the new, never a part.

The temporary file gets a fresh name in the same folder (not one named after the pid, which a
crashed writer left behind and a pid reused later wrote into), and it is removed if the write
fails, so a full disk or a read-only folder leaves nothing behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename; OSError if it cannot."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
