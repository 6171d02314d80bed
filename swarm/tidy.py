"""Folders a failed command made and left empty go again.

A failed `swarm run` on a new home (data it could not get, a refused config) left `HOME/`,
`HOME/cache/data/NAME/` and `HOME/checkpoints/` behind, empty: a new user then took the home for
one that had been used.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def _folders(root: Path) -> set[str]:
    """Every folder under `root`, `root` included (none when it does not exist)."""
    if not root.is_dir():
        return set()
    return {str(root), *(os.path.join(top, name) for top, dirs, _ in os.walk(root) for name in dirs)}


def remove_new_empty(root: Path, before: set[str]) -> None:
    """Remove the empty folders under `root` (and `root`) that are not in `before`, deepest
    first; a folder something else has written into meanwhile stays."""
    for top, dirs, _ in os.walk(root, topdown=False):
        for name in dirs:
            path = os.path.join(top, name)
            if path not in before:
                with contextlib.suppress(OSError):      # not empty, or gone: leave it
                    os.rmdir(path)
    if str(root) not in before:
        with contextlib.suppress(OSError):
            os.rmdir(root)


@contextlib.contextmanager
def tidy_on_failure(root: Path) -> Iterator[None]:
    """Run the block; when it fails (an exception, an exit code other than 0), remove the empty
    folders it made under `root`."""
    before = _folders(root)
    try:
        yield
    except BaseException as exc:
        if _exit_code(exc) != 0:
            remove_new_empty(root, before)
        raise


def _exit_code(exc: BaseException) -> object:
    """The exit code `exc` ends the command with: typer's / click's Exit, SystemExit; else 1."""
    if isinstance(exc, SystemExit):
        return exc.code or 0
    code = getattr(exc, "exit_code", None)
    return 1 if code is None else code
