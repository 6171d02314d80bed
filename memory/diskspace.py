"""Recognising a full disk in the errors DuckDB and the OS raise, and saying so in one line.

A volunteer's laptop fills up: DuckDB then fails a commit with an IOException or a
TransactionException whose text names the cause ("Could not write file ...: No space left on
device"). The node must say that in one line and stop, not print tracebacks at every sync.
"""
from __future__ import annotations

import errno
from pathlib import Path

# The OS's words for "this write cannot happen for lack of room" (strerror of ENOSPC, EDQUOT and
# EFBIG, the last for a per-process file size limit), as DuckDB copies them into its messages.
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def full_disk_cause(exc: BaseException) -> str | None:
    """The OS's words when `exc` is a write refused for lack of room, else None."""
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return exc.strerror or FULL_TEXTS[FULL_ERRNOS.index(exc.errno)]
    text = str(exc)
    return next((words for words in FULL_TEXTS if words in text), None)


def full_disk_message(folder: Path, cause: str) -> str:
    """The one line a node prints when its home's disk is full."""
    return (f"the disk holding {folder} is full ({cause}): nothing more can be stored; free some "
            "space, then start the node again (every record stored before is kept)")
