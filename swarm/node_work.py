"""The research worker as a daemon service: what `swarm join` runs beside the node.

Started by the daemon once its `node` record is published (`Daemon.run(on_started=...)`); runs the
roles loop (swarm/worker.py) in a thread of its own; stops at shutdown, killing the current
training run (no record for it); asks the daemon to stop once `--max-runs` / `--duration` are
reached. A node whose data cannot be had says so in one line and still works: without a runner it takes
the roles that need no training (statistician, meta-analyst); with a pinned training role
(`--role experimenter|verifier`), which could never work, the node stops with that line instead and
`swarm join` exits non-zero. A box with several
GPUs runs one worker per GPU (`device_plan`), each training in its own processes pinned to its
device (CUDA_VISIBLE_DEVICES).
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
    checkpoint_every_s: float | None = None   # None: the harness's default (CHECKPOINT_EVERY_S)
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
        if self.checkpoint_every_s is not None and self.checkpoint_every_s <= 0:
            raise ValueError("--checkpoint-every must be positive")


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


def device_plan(visible: str | None, gpu_count: int) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES of each worker: one worker per GPU this process may use (those
    `visible` lists, else 0..gpu_count-1); a single unpinned worker (None) without GPUs."""
    if visible is not None:
        listed = [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return (listed[:gpu_count] or [None]) if gpu_count else [None]
    return [str(i) for i in range(gpu_count)] or [None]


def bootstrap_peers(addrs: list[str]) -> list[str]:
    """The peer ids named by `/p2p/ID` in bootstrap multiaddrs."""
    out = []
    for addr in addrs:
        parts = str(addr).split("/")
        if "p2p" in parts and parts.index("p2p") + 1 < len(parts):
            out.append(parts[parts.index("p2p") + 1])
    return out


def pin_roots(home: Path, bootstrap: list[str], pins: tuple[str, ...]) -> None:
    """Pin `--trust` keys in HOME/trust.json; on a first join (no trust.json yet) the peers this
    node bootstraps through too, logged (docs/TRUST.md)."""
    from roles import trust

    if not (home / trust.TRUST_FILE).exists():
        for peer in bootstrap_peers(bootstrap):
            trust.pin(home, peer, "bootstrapped through on first join", source="bootstrap")
            log.info("trusting %s (bootstrapped through; swarm trust remove to undo)", peer)
    for peer in pins:
        trust.pin(home, peer, "swarm join --trust", source="join")


def with_roots(start: Any | None, pins: tuple[str, ...], gate: GateParams | None = None) -> Any:
    """A `swarm join` start-up hook that pins the roots (`pin_roots`) and records the node's gate
    for the browsing commands (HOME/gate.json, swarm/gate_file.py), then runs `start` (the
    dashboard, the workers): with or without --no-work, once the node holds its home."""
    from swarm.gate_file import save_gate

    def started(daemon: Any, loop: asyncio.AbstractEventLoop) -> list[Any]:
        pin_roots(daemon.home, list(daemon.config.net.bootstrap), pins)
        save_gate(daemon.home, gate or GateParams())
        return start(daemon, loop) if start is not None else []
    return started


def gpu_count() -> int:
    """CUDA devices torch sees (0 without CUDA)."""
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class NodeWork:
    """One worker thread of a node (a `node.daemon.Service`); `device` pins its runs to one GPU."""

    def __init__(self, daemon: Any, loop: asyncio.AbstractEventLoop, options: WorkOptions,
                 device: str | None = None, workers: int = 1) -> None:
        from swarm.worker import Progress

        self.daemon, self.loop, self.options, self.device = daemon, loop, options, device
        self.workers = workers                # workers of this node training at once
        self.stop_event = threading.Event()
        self.progress = Progress()            # replaced by the worker's own once it exists
        self.error: str | None = None
        self.data_missing: str | None = None  # why this node cannot train, when it cannot
        name = "worker" if device is None else f"worker-gpu{device}"
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    @classmethod
    def starter(cls, options: WorkOptions, devices: list[str | None] | None = None) -> Any:
        """The daemon's `on_started` hook: start one NodeWork per device and hand them back."""
        def start(daemon: Any, loop: asyncio.AbstractEventLoop) -> list[NodeWork]:
            plan = devices or device_plan(os.environ.get("CUDA_VISIBLE_DEVICES"), gpu_count())
            works = [cls(daemon, loop, options, device, len(plan)) for device in plan]
            for work in works:
                work.thread.start()
            return works
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
        except NoData as exc:
            # the pinned role could never work: stop the node with this one line (join prints it,
            # once, and exits 1) rather than keep a node up to --duration that does nothing asked
            self.error = str(exc)
            self.progress.doing = "stopped: no data for a training role"
            self.daemon.stop_on(str(exc))
        except Exception as exc:               # the node keeps syncing; status shows why
            if self._disk_full(exc):
                return
            self.error = f"{type(exc).__name__}: {exc}"
            self.progress.doing = "stopped on an error"
            log.exception("the work loop stopped")

    def _disk_full(self, exc: Exception) -> bool:
        """When `exc` is a full disk (e.g. writing the track's token arrays): stop the node with
        that one line, as the daemon does when the memory cannot take a record."""
        from memory.diskspace import full_disk_cause, full_disk_message
        from memory.store import DiskFull

        cause = full_disk_cause(exc)
        if cause is None:
            return False
        self.error = full_disk_message(self.daemon.home, cause)
        self.progress.doing = "stopped: the disk is full"
        self.daemon.disk_full(DiskFull(self.error))
        return True

    def _make_worker(self) -> Any:
        from roles.agent import make_proposer
        from roles.strategy import budget_validator
        from swarm.worker import Worker, make_context

        opts = self.options
        runner, track_id, base = self._runner()
        ctx = make_context(self.daemon, self.loop, track_id, base, runner, opts.gate, opts.lease_s,
                           pinned=self._roots(), budget_tokens=self._budget(runner))
        proposer = make_proposer(opts.agent, budget_validator(ctx.budget_tokens), opts.agent_model)
        worker = Worker(ctx, proposer, pinned=opts.role, can_train=runner is not None,  # type: ignore[arg-type]
                        max_runs=opts.max_runs, stop_event=self.stop_event)
        self.progress = worker.progress
        return worker

    def _roots(self) -> frozenset[str]:
        """Pinned keys: HOME/trust.json (`with_roots` pinned --trust and the bootstrap peers)."""
        from roles import trust

        return frozenset(trust.load_pins(self.daemon.home))

    def _budget(self, runner: Any) -> int | None:
        """The track's token budget (the sanity bounds check runs against it)."""
        from node.harness import get_track

        track = runner.track if runner is not None else \
            get_track(self.options.track).with_budget(self.options.budget_tokens)
        return track.budget.tokens

    def _runner(self) -> tuple[Any, str, dict[str, Any]]:
        """The harness runner with the track prepared (data, tokenizer), or None when the data
        cannot be had (the node then takes only roles that need no training)."""
        from node.harness.data import DataError
        from roles.harness_runner import HarnessRunner

        opts = self.options
        runner = HarnessRunner(opts.track, opts.budget_tokens, opts.threads, self.daemon.home,
                               opts.data_dir, opts.run_timeout_s, stop=self.stop_event,
                               visible_devices=self.device, checkpoints=True,
                               checkpoint_every_s=opts.checkpoint_every_s, workers=self.workers)
        self.progress.doing = f"preparing {opts.track} (data, tokenizer)"
        try:
            track_id, base = runner.prepare()
        except DataError as exc:
            # never a silent downgrade: one line says why, and a pinned training role stops here
            if opts.role in TRAINING_ROLES:
                raise NoData(f"--role {opts.role} needs {opts.track}'s data: {exc} (or join "
                             "without --role: the node then assesses and keeps the memory in "
                             "sync)") from None
            log.warning("no data for %s, so this node will not train (statistician / "
                        "meta-analyst only): %s", opts.track, exc)
            self.data_missing = str(exc)
            track = runner.track
            return None, track.id if track.data.pinned else track.name, track.base.model_dump()
        return runner, track_id, base
