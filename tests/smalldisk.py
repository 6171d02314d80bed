"""Run a command with a small tmpfs mounted on a folder, in a private mount namespace: a full disk
for real (DuckDB's own error, the OS's ENOSPC), seen by nothing outside that command.

Root uses `unshare -m`; anyone else a user namespace (`unshare -rm`) where the kernel allows it;
tests skip where neither works.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MOUNT = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'


def _unshare() -> list[str] | None:
    if shutil.which("unshare") is None:
        return None
    for flags in (["-m"], ["-r", "-m"]):
        argv = ["unshare", *flags, "--propagation", "private"]
        if subprocess.run([*argv, "true"], capture_output=True).returncode == 0:
            return argv
    return None


UNSHARE = _unshare()


def on_small_disk(folder: Path, size: str, argv: list[str], timeout: float = 300,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` with a `size` tmpfs (e.g. "1m") on `folder`; its output as text."""
    if UNSHARE is None:
        pytest.skip("no private mount namespace here (unshare)")
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run([*UNSHARE, "sh", "-c", MOUNT, "sh", size, str(folder), *argv],
                          capture_output=True, text=True, timeout=timeout, env=env)


def python(code: str, *args: str) -> list[str]:
    """argv running `code` with this interpreter."""
    return [sys.executable, "-c", code, *args]
