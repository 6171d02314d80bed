"""A lock held by one process: an exclusive flock on a file that names the holder's pid.

The kernel drops a flock when its process dies, however it dies, so a dead holder's lock is no
lock: the next process takes it at once. `release(remove=True)` deletes the file while still
holding it; `acquire` takes only a file that is still in its place, so a process that opened the
file before it went never holds a lock on a deleted file beside a new holder.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class Held(RuntimeError):
    """Another live process holds the lock; `pid` is what it wrote ("?" when unreadable)."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is held by pid {pid}")
        self.path, self.pid = path, pid


class PidLock:
    """An exclusive, non-blocking flock on `path` (created 0600), the holder's pid written in it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise Held naming the live holder's pid."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise Held(self.path, pid) from None
            if self._still_there(fd):
                break
            os.close(fd)            # its holder deleted it meanwhile: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def _still_there(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self, remove: bool = False) -> None:
        """Release the lock; with `remove`, delete its file first (else the file stays: its lock
        is what counts)."""
        if self._fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
