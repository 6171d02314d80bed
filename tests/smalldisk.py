"""Run a command with a small tmpfs mounted on a folder, in a private mount namespace: a full disk
for real (DuckDB's own error, the OS's ENOSPC), seen by nothing outside that command.

Root uses `unshare -m`; anyone else a user namespace (`unshare -rm`) where the kernel allows it;
tests skip where neither works.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

MOUNT = 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"'
# the folder itself, bound onto itself read-only: a read-only disk under what it holds
READ_ONLY = 'mount --bind "$2" "$2" && mount -o remount,ro,bind "$2" && shift 2 && exec "$@"'


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
    """Run `argv` with a `size` tmpfs (e.g. "1m") on `folder`; its output as text. Past `timeout`
    its whole process group is killed (a node it started included) and the test fails."""
    return _mounted(MOUNT, size, folder, argv, timeout, env)


def on_read_only(folder: Path, argv: list[str], timeout: float = 300,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` with `folder` (and all it holds) on a read-only mount; as `on_small_disk`."""
    return _mounted(READ_ONLY, "ro", folder, argv, timeout, env)


def _mounted(script: str, option: str, folder: Path, argv: list[str], timeout: float,
             env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    """Run `argv` after `script` mounted something on `folder` in a private mount namespace."""
    if UNSHARE is None:
        pytest.skip("no private mount namespace here (unshare)")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*UNSHARE, "sh", "-c", script, "sh", option, str(folder), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout:.0f} s:\n{out[-1000:]}\n{err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def python(code: str, *args: str) -> list[str]:
    """argv running `code` with this interpreter."""
    return [sys.executable, "-c", code, *args]
