"""The simulated clock of the role benchmarks (`swarm bench trust`, `swarm bench search`), and
the digest that shows a simulation reproduced.

Never the wall clock: a record's id hashes its ts, and roles break ties by ts and id, so wall time
made the same command give different figures (honest runs 29 and 30 at 8 rounds in the trust
bench). A simulation signs with `stamp` and hands `seconds` to `Context.clock`.
"""
from __future__ import annotations

import hashlib

from memory.store import Store

START_MS = 1_700_000_000_000   # the simulated clock's start (Nov 2023: in the past, never ahead)
STEP_MS = 1_000                # simulated time per worker step (leases: 600 s, grace: 1 h)


class SimClock:
    """The simulation's time: a fixed start, +1 ms per signed record, +STEP_MS per step."""

    def __init__(self) -> None:
        self.ms = START_MS

    def stamp(self) -> int:
        """The next record's ts (each record its own millisecond)."""
        self.ms += 1
        return self.ms

    def seconds(self) -> float:
        """Now, as `Context.clock` reads it."""
        return self.ms / 1000

    def step(self) -> None:
        """A worker step's worth of time passes."""
        self.ms += STEP_MS


def memory_digest(store: Store) -> str:
    """A hash of every record id stored: the same command and seed give the same digest, or the
    simulation is not reproducible (an id hashes its record's ts, so wall time shows here)."""
    ids = "\n".join(r[0] for r in store.query("SELECT id FROM records ORDER BY id", []).rows)
    return hashlib.blake2b(ids.encode(), digest_size=8).hexdigest()
