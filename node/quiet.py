"""Quiet logs by default: py-libp2p silent unless -v, repeated warnings rate-limited.

py-libp2p configures its own `libp2p` logger when it is imported (no handler, no propagation, level
WARNING), so its messages bypass our format and land on stderr through Python's last-resort handler:
`Failed to read DHT message from stream:` with nothing after the colon, or a 7-line `Failed to open
stream to peer` at ERROR each time a peer lacks a protocol. `library_logs()` (called once libp2p is
imported) routes it through our handlers: nothing by default, WARNING and up with -v, all with -vv
(known noise, NOISE, with -vv only).
`RateLimit` lets the same warning (logger + message template) through once per `window_s` and says how
many were held back.
"""
from __future__ import annotations

import logging
import time

# py-libp2p messages that describe an ordinary remote failure, at ERROR or WARNING
NOISE = ("Failed to open stream to peer", "Failed to read DHT message", "Incomplete DHT message",
         "DHT message too large", "Received an invalid-signed-record")
WINDOW_S = 60.0


def library_logs() -> None:
    """Route py-libp2p's logging through our handlers: nothing by default (its warnings and errors
    are about remote peers' failures), WARNING and up with -v, everything with -vv. Call after
    `import libp2p` (its import resets the `libp2p` logger)."""
    lib = logging.getLogger("libp2p")
    lib.handlers.clear()
    lib.propagate = True
    lib.setLevel(library_level(logging.getLogger().getEffectiveLevel()))
    for name, child in list(logging.root.manager.loggerDict.items()):
        if name.startswith("libp2p.") and isinstance(child, logging.Logger):
            child.setLevel(logging.NOTSET)     # e.g. its auto-connector sets itself to INFO
    install()


def library_level(ours: int) -> int:
    """py-libp2p's log level for our root level: -vv all, -v WARNING, default none."""
    if ours <= logging.DEBUG:
        return logging.DEBUG
    return logging.WARNING if ours <= logging.INFO else logging.CRITICAL + 1


def is_noise(record: logging.LogRecord) -> bool:
    """A py-libp2p message about an ordinary remote failure (shown with -vv only)."""
    return record.name.startswith("libp2p") and str(record.msg).startswith(NOISE)


class RateLimit(logging.Filter):
    """A handler filter: drop py-libp2p noise (unless -vv); let a given WARNING-or-worse message
    through at most once per `window_s`."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.window_s = window_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if is_noise(record):
            return logging.getLogger().getEffectiveLevel() <= logging.DEBUG
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (-self.window_s, 0))
        if now - last < self.window_s:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} similar held back in the last {self.window_s:.0f} s)"
        if len(self._last) > 10_000:
            self._last.clear()
        return True


def install() -> None:
    """Install one RateLimit on every handler of the root logger (idempotent)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RateLimit) for f in handler.filters):
            handler.addFilter(RateLimit())


def uninstall() -> None:
    """Remove what `install` added (tests that run a daemon inside pytest's own logging)."""
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, RateLimit)]:
            handler.removeFilter(f)
