"""Ctrl-C while the `swarm` command is still importing its libraries: one line and exit 130.

Importing typer, rich and the command modules takes ~0.5 s, before any command runs; a Ctrl-C
then was a KeyboardInterrupt traceback through importlib. `swarm/__init__.py` calls `guard()`
when this process was started as the CLI (the `swarm` script, `python -m swarm.cli`); the CLI
calls `release()` when a command starts, whose own Ctrl-C handling says the same line
(swarm/cli.py). Library users (tests, the node's subprocesses) are left alone.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

INTERRUPTED = b"error: interrupted\n"


def started_as_cli() -> bool:
    """Whether this process is the `swarm` command: its script, or `python -m swarm.cli`."""
    if os.path.basename(sys.argv[0]) == "swarm":
        return True
    argv = list(getattr(sys, "orig_argv", []))
    return "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "swarm.cli"


def _interrupted(signum: int, frame: FrameType | None) -> None:
    os.write(2, INTERRUPTED)        # no rich here: it may be the very import interrupted
    raise SystemExit(130)


def guard() -> None:
    """Ctrl-C from now until `release()` exits 130 with one line. Not when SIGINT is ignored
    (`nohup`, a `&` job of a script): that stays as it is."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _interrupted)


def release() -> None:
    """Ctrl-C is a KeyboardInterrupt again (commands stop cleanly on it) if `guard()` took it."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is _interrupted):
        signal.signal(signal.SIGINT, signal.default_int_handler)
