"""The research worker as a daemon service: what `swarm join` runs beside the node.

Started by the daemon once its `node` record is published (`Daemon.run(on_started=...)`); runs the
roles loop (swarm/worker.py) in a thread of its own; stops at shutdown, killing the current
training run (no record for it); asks the daemon to stop once `--max-runs` / `--duration` are
reached. A node whose data cannot be had says so in one line and still works: without a runner it takes
the roles that need no training (statistician, meta-analyst); with a pinned training role
(`--role experimenter|verifier`) its work loop stops with that line instead.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memory.stats import GateParams

log = logging.getLogger(__name__)
ROLES = ("experimenter", "verifier", "statistician", "meta_analyst")
TRAINING_ROLES = ("experimenter", "verifier")


class NoData(RuntimeError):
    """A pinned training role without the track's data; one line."""


@dataclass
class WorkOptions:
    """The join options that shape the work loop."""

    track: str = "tinystories-cpu"
    budget_tokens: int | None = None
    threads: int | None = None
    data_dir: Path | None = None
    max_runs: int | None = None
    role: str | None = None               # pinned role, or None: chosen from the memory
    agent: str = "auto"                   # auto | offline | claude
    agent_model: str | None = None
    lease_s: float = 600.0
    run_timeout_s: float | None = None
    gate: GateParams = field(default_factory=GateParams)

    def check(self) -> None:
        """Raise ValueError with one line on a bad option (before the node starts)."""
        from node.harness import get_track

        get_track(self.track)                    # KeyError names the known tracks
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"--role must be one of {', '.join(ROLES)}, not {self.role!r}")
        if self.agent not in ("auto", "offline", "claude"):
            raise ValueError(f"--agent must be auto, offline or claude, not {self.agent!r}")
        if self.agent == "claude" and not os.environ.get("ANTHROPIC_API_KEY"):
            raise ValueError("--agent claude needs ANTHROPIC_API_KEY (or use --agent offline)")
        if self.lease_s <= 0:
            raise ValueError("--lease must be positive")


def gate_params(overrides: list[str], min_baseline: int | None) -> GateParams:
    """GateParams with `KEY=VALUE` overrides (`--gate`) and `--min-baseline`; ValueError on a bad one."""
    known = {f.name: f.type for f in dataclasses.fields(GateParams)}
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise ValueError(f"--gate wants KEY=VALUE with KEY one of {', '.join(known)}; got {item!r}")
        cast = int if isinstance(getattr(GateParams(), key), int) else float
        try:
            values[key] = cast(raw)
        except ValueError:
            raise ValueError(f"--gate {key} wants a number, got {raw!r}") from None
    if min_baseline is not None:
        values["min_baseline"] = min_baseline
    if values.get("min_baseline", 2) < 2:
        raise ValueError("--min-baseline must be at least 2 (a noise floor needs two runs)")
    return GateParams(**values)


class NodeWork:
    """The worker thread of one node (a `node.daemon.Service`)."""

    def __init__(self, daemon: Any, loop: asyncio.AbstractEventLoop, options: WorkOptions) -> None:
        from swarm.worker import Progress

        self.daemon, self.loop, self.options = daemon, loop, options
        self.stop_event = threading.Event()
        self.progress = Progress()            # replaced by the worker's own once it exists
        self.error: str | None = None
        self.data_missing: str | None = None  # why this node cannot train, when it cannot
        self.thread = threading.Thread(target=self._main, name="worker", daemon=True)

    @classmethod
    def starter(cls, options: WorkOptions) -> Any:
        """The daemon's `on_started` hook: start one NodeWork and hand it back."""
        def start(daemon: Any, loop: asyncio.AbstractEventLoop) -> list[NodeWork]:
            work = cls(daemon, loop, options)
            work.thread.start()
            return [work]
        return start

    # ---- the Service interface ----

    def stop(self) -> None:
        """Stop the loop; the current training run is killed."""
        self.stop_event.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; False if it is still running."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def status(self) -> dict[str, Any]:
        """The worker's progress (role, current run, role mix, the swarm's best, timing)."""
        return {"track": self.options.track, **self.progress.snapshot(),
                **({"error": self.error} if self.error else {}),
                **({"no_data": self.data_missing} if self.data_missing else {})}

    # ---- the thread ----

    def _main(self) -> None:
        try:
            worker = self._make_worker()
            if worker is not None and not self.stop_event.is_set():
                worker.run()
                if not self.stop_event.is_set():          # the loop ended on its own budget
                    log.info("--max-runs / --duration reached; stopping the node")
                    self.daemon.stop_threadsafe()
        except NoData as exc:                  # one line, no traceback; the node keeps syncing
            self.error = str(exc)
            self.progress.doing = "stopped: no data for a training role"
            log.error("%s", exc)
        except Exception as exc:               # the node keeps syncing; status shows why
            self.error = f"{type(exc).__name__}: {exc}"
            self.progress.doing = "stopped on an error"
            log.exception("the work loop stopped")

    def _make_worker(self) -> Any:
        from roles.agent import make_proposer
        from roles.strategy import harness_validator
        from swarm.worker import Worker, make_context

        opts = self.options
        runner, track_id, base = self._runner()
        ctx = make_context(self.daemon, self.loop, track_id, base, runner, opts.gate, opts.lease_s)
        proposer = make_proposer(opts.agent, harness_validator, opts.agent_model)
        worker = Worker(ctx, proposer, pinned=opts.role, can_train=runner is not None,  # type: ignore[arg-type]
                        max_runs=opts.max_runs, stop_event=self.stop_event)
        self.progress = worker.progress
        return worker

    def _runner(self) -> tuple[Any, str, dict[str, Any]]:
        """The harness runner with the track prepared (data, tokenizer), or None when the data
        cannot be had (the node then takes only roles that need no training)."""
        from node.harness.data import DataError
        from roles.harness_runner import HarnessRunner

        opts = self.options
        runner = HarnessRunner(opts.track, opts.budget_tokens, opts.threads, self.daemon.home,
                               opts.data_dir, opts.run_timeout_s, stop=self.stop_event)
        self.progress.doing = f"preparing {opts.track} (data, tokenizer)"
        try:
            track_id, base = runner.prepare()
        except DataError as exc:
            # never a silent downgrade: one line says why, and a pinned training role stops here
            if opts.role in TRAINING_ROLES:
                raise NoData(f"--role {opts.role} needs {opts.track}'s data: {exc}") from None
            log.warning("no data for %s, so this node will not train (statistician / "
                        "meta-analyst only): %s", opts.track, exc)
            self.data_missing = str(exc)
            track = runner.track
            return None, track.id if track.data.pinned else track.name, track.base.model_dump()
        return runner, track_id, base
