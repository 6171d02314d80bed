"""The cyclic garbage collector paused while a thread builds many objects that form no cycles.

Decoding a large msgpack frame or a batch of records allocates hundreds of thousands of lists and
dicts; each allocation threshold reached makes the collector walk them all again (an 8 MiB sync
have frame: 0.07 CPU-s to decode with the collector paused, 0.3-0.5 s without). Pauses nest
across threads: the collector runs again when the last one ends, and only if it ran before the
first began. Overlapping pauses must not keep it off for good (requesters taking turns to send
have frames could, and the cycles the rest of the node makes would pile up meanwhile): once the
collector has been off for `MAX_PAUSE_S`, a new block runs without pausing it, so the last pause
ends and the collector runs again.
"""
from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator

MAX_PAUSE_S = 2.0      # the longest stretch a new block may extend (a block itself runs to its end)

_lock = threading.Lock()
_depth = 0
_was_enabled = False
_since = 0.0           # when the current pause began (monotonic seconds)


def _join() -> bool:
    """Enter a pause (True), or not (the collector has been off for MAX_PAUSE_S already)."""
    global _depth, _was_enabled, _since
    with _lock:
        if _depth == 0:
            _was_enabled, _since = gc.isenabled(), time.monotonic()
            gc.disable()
        elif time.monotonic() - _since > MAX_PAUSE_S:
            return False
        _depth += 1
        return True


def _leave() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            gc.enable()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block (reference counting still frees what it can), unless
    overlapping blocks have kept the collector off for MAX_PAUSE_S already."""
    joined = _join()
    try:
        yield
    finally:
        if joined:
            _leave()
