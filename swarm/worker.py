"""The node's work loop: choose a role, work, publish, repeat (what `swarm join` runs beside the daemon).

The loop runs in its own thread: training blocks for minutes, while the daemon's asyncio loop keeps
gossip and sync going. Records are signed here and handed to the daemon's `ingest_and_announce`
(stored and gossiped). The worker starts after the daemon published its `node` record, and is the
only other signer of this node's records, so seqs never collide.
"""
from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memory import codec
from memory.records import Body, Record, RunBody
from memory.stats import GateParams
from roles import choice
from roles.base import Role, RoleName
from roles.context import Context, Runner
from roles.experimenter import Experimenter
from roles.meta_analyst import MetaAnalyst
from roles.statistician import Statistician
from roles.verifier import Verifier

log = logging.getLogger(__name__)
IDLE_S = 2.0           # pause when no role had anything to do


class DaemonPublisher:
    """Signs with the node's key and stores + gossips through the running daemon."""

    def __init__(self, daemon: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.daemon, self.loop = daemon, loop
        self._lock = threading.Lock()

    def __call__(self, kind: str, body: Body) -> Record:
        """Sign as the next seq, ingest and announce; wait until stored."""
        with self._lock:
            keypair = self.daemon.keypair
            record = codec.sign(keypair, kind, self.daemon.store.next_seq(keypair.peer_id), body)
            future = asyncio.run_coroutine_threadsafe(
                self.daemon.ingest_and_announce([record.raw]), self.loop)
            future.result(timeout=60)
        return record


@dataclass
class Progress:
    """What the progress display and `swarm status` show."""

    role: str = "starting"
    doing: str = ""
    runs: int = 0
    roles: dict[str, int] = field(default_factory=dict)
    train_s: float = 0.0
    busy_s: float = 0.0

    def coordination_share(self) -> float:
        """Share of busy time not spent training (memory reads, choosing, publishing)."""
        return (self.busy_s - self.train_s) / self.busy_s if self.busy_s > 0 else 0.0


class TimedRunner:
    """Wraps a Runner to count runs and the time spent training."""

    def __init__(self, runner: Runner, progress: Progress) -> None:
        self.runner, self.progress = runner, progress

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> RunBody:
        self.progress.doing = f"{purpose} run, seed {seed}"
        started = time.monotonic()
        try:
            return self.runner(config, seed, purpose, ref)
        finally:
            self.progress.train_s += time.monotonic() - started
            self.progress.runs += 1


class Worker:
    """One node's loop over the roles until stopped, out of runs or out of time."""

    def __init__(self, ctx: Context, proposer: Any, pinned: RoleName | None = None,
                 can_train: bool = True, max_runs: int | None = None,
                 duration_s: float | None = None) -> None:
        self.progress = Progress()
        if ctx.run is not None:
            ctx.run = TimedRunner(ctx.run, self.progress)
        self.ctx, self.pinned, self.can_train = ctx, pinned, can_train
        self.max_runs, self.duration_s = max_runs, duration_s
        self.roles: dict[str, Role] = {"experimenter": Experimenter(proposer),
                                       "verifier": Verifier(), "statistician": Statistician(),
                                       "meta_analyst": MetaAnalyst()}
        self.stop_event = threading.Event()

    def done(self, started: float) -> bool:
        """Stopped, or --max-runs / --duration reached."""
        return (self.stop_event.is_set()
                or (self.max_runs is not None and self.progress.runs >= self.max_runs)
                or (self.duration_s is not None and time.monotonic() - started >= self.duration_s))

    def step(self) -> str | None:
        """Choose a role and do one unit of its work."""
        picked = choice.choose(self.ctx, self.can_train, self.pinned)
        self.progress.role = picked.role
        self.progress.roles[picked.role] = self.progress.roles.get(picked.role, 0) + 1
        summary = self.roles[picked.role].work(self.ctx)
        log.info("%s: %s", picked.role, summary or "nothing to do")
        return summary

    def run(self) -> None:
        """Loop until done; errors in one step are logged and the loop goes on."""
        started = time.monotonic()
        while not self.done(started):
            t0 = time.monotonic()
            try:
                summary = self.step()
            except Exception:                        # a bug in one step must not stop the node
                log.exception("work step failed")
                summary = None
            self.progress.busy_s += time.monotonic() - t0
            if summary is None:
                self.stop_event.wait(IDLE_S)


def make_context(daemon: Any, loop: asyncio.AbstractEventLoop, track_id: str,
                 base_config: dict[str, Any], runner: Runner | None,
                 params: GateParams, lease_s: float) -> Context:
    """A role context over a running daemon."""
    return Context(store=daemon.store, me=daemon.keypair.peer_id,
                   publish=DaemonPublisher(daemon, loop), track=track_id,
                   base_config=base_config, run=runner, params=params,
                   rng=random.Random(), lease_s=lease_s)
