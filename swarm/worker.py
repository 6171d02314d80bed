"""The node's work loop: choose a role, work, publish, repeat (what `swarm join` runs beside the daemon).

The loop runs in its own thread: training blocks for minutes, while the daemon's asyncio loop keeps
gossip and sync going. Records go through `Daemon.publish`, which signs every record of this node
one at a time (so seqs never collide), stores it and gossips it.
"""
from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from memory.records import Body, Record, RunBody
from memory.store import DiskFull
from memory.stats import GateParams
from node.harness.runner import Cancelled
from roles import choice, evidence, leases
from roles.base import Role, RoleName
from roles.context import Context, Runner
from roles.experimenter import Experimenter
from roles.judge import make_judge
from roles.meta_analyst import MetaAnalyst
from roles.resume import resume_pending
from roles.statistician import Statistician
from roles.verifier import Verifier

log = logging.getLogger(__name__)
IDLE_S = 2.0           # pause when no role had anything to do
IDLE_MAX_S = 60.0      # the longest idle wait of a node that cannot train


class DaemonPublisher:
    """Publishes through the running daemon, which signs every record of this node (one signer)."""

    def __init__(self, daemon: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.daemon, self.loop = daemon, loop

    def __call__(self, kind: str, body: Body) -> Record:
        """Sign as the node's next seq, store and gossip; wait until stored."""
        future = asyncio.run_coroutine_threadsafe(self.daemon.publish(kind, body), self.loop)
        return future.result(timeout=60)


@dataclass
class Progress:
    """What the progress display and `swarm status` show (written by the worker thread only)."""

    role: str = "starting"
    doing: str = "preparing the track"
    runs: int = 0
    roles: dict[str, int] = field(default_factory=dict)
    run_started: float | None = None           # monotonic start of the current training run
    step_started: float | None = None          # monotonic start of the current unit of work
    role_mix: dict[str, int] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    # As this node derives them (trusted authors only), never the records' own say: a hostile key
    # could otherwise fill the panel with "verified" claims or a finished baseline.
    claims: dict[str, int] = field(default_factory=dict)
    baseline_runs: int | None = None           # trusted runs of the track's base config
    train_s: float = 0.0
    busy_s: float = 0.0
    lease_renewals: int = 0
    run_step: dict[str, Any] = field(default_factory=dict)   # the run under way: step, loss
    # the judge's work here (docs/ROLES.md): a node run for judging said nothing of it, and one
    # with a refused ANTHROPIC_API_KEY only logged a warning
    judgements: int = 0
    judge_errors: int = 0

    def on_run_progress(self, event: dict[str, Any]) -> None:
        """A progress event of the run under way (from the harness, about once a second)."""
        step, steps, elapsed = event.get("step"), event.get("steps"), event.get("elapsed_s")
        if not (isinstance(step, int) and isinstance(steps, int) and 0 < step <= steps):
            return
        loss = event.get("loss")
        out: dict[str, Any] = {"step": step, "steps": steps,
                               "loss": loss if isinstance(loss, (int, float)) else None}
        if isinstance(elapsed, (int, float)) and elapsed >= 0:
            # Training time left at the pace so far (the evaluation after it is not counted).
            out["left_s"] = round(elapsed / step * (steps - step), 1)
        self.run_step = out

    def totals(self) -> tuple[float, float]:
        """(busy s, training s) so far, the step and the run under way included."""
        now = time.monotonic()
        busy = self.busy_s + (now - self.step_started if self.step_started is not None else 0.0)
        train = self.train_s + (now - self.run_started if self.run_started is not None else 0.0)
        return busy, train

    def coordination_share(self) -> float:
        """Share of busy time not spent training (memory reads, choosing, publishing, leases)."""
        busy, train = self.totals()
        return (busy - train) / busy if busy > 0 else 0.0

    def mean_run_s(self) -> float:
        """Mean seconds per training run so far (0 before the first)."""
        return self.train_s / self.runs if self.runs else 0.0

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy for `swarm status` and the display."""
        current = (None if self.run_started is None
                   else {"what": self.doing, **self.run_step,
                         "running_s": round(time.monotonic() - self.run_started, 1)})
        busy, train = self.totals()
        return {"role": self.role, "doing": self.doing, "current_run": current, "runs": self.runs,
                "my_roles": dict(self.roles), "role_mix": dict(self.role_mix),
                "best": dict(self.best), "claims": dict(self.claims),
                "baseline_runs": self.baseline_runs, "train_s": round(train, 3),
                "busy_s": round(busy, 3), "lease_renewals": self.lease_renewals,
                "judgements": self.judgements, "judge_errors": self.judge_errors,
                "coordination_share": round(self.coordination_share(), 5)}


class ForgetOnPublish:
    """Wraps a Publisher: once a run is published, the runner drops its pending files."""

    def __init__(self, publish: Any, forget: Callable[[RunBody], None]) -> None:
        self.publish, self.forget = publish, forget

    def __call__(self, kind: str, body: Body) -> Record:
        record = self.publish(kind, body)
        if kind == "run" and isinstance(body, RunBody):
            self.forget(body)
        return record


class TimedRunner:
    """Wraps a Runner: renews the current work's leases before each run, counts runs and the time
    spent training (everything else in a step is coordination)."""

    def __init__(self, runner: Runner, progress: Progress, ctx: Context) -> None:
        self.runner, self.progress, self.ctx = runner, progress, ctx
        self.before_run: Callable[[], None] | None = None    # e.g. bring the display up to date
        if hasattr(runner, "on_progress"):      # the harness's runner reports steps and loss
            runner.on_progress = progress.on_run_progress

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> RunBody:
        if self.progress.runs and self.before_run is not None:
            self.before_run()           # a unit of several runs: show those it has published
        # A run can outlast the lease (tinystories-cpu: minutes per run, several runs per unit).
        self.progress.lease_renewals += leases.renew(self.ctx, 1.5 * self.progress.mean_run_s())
        self.progress.doing = f"{purpose} run, seed {seed}"
        self.progress.run_step = {}
        started = self.progress.run_started = time.monotonic()
        try:
            body = self.runner(config, seed, purpose, ref)
        finally:
            self.progress.train_s += time.monotonic() - started
            self.progress.run_started, self.progress.run_step = None, {}
        self.progress.runs += 1            # a cancelled run (exception) is not a run
        return body


class Worker:
    """One node's loop over the roles until stopped, out of runs or out of time."""

    def __init__(self, ctx: Context, proposer: Any, pinned: RoleName | None = None,
                 can_train: bool = True, max_runs: int | None = None,
                 duration_s: float | None = None, stop_event: threading.Event | None = None) -> None:
        self.progress = Progress()
        self.harness = ctx.run                  # the runner itself (pending runs, checkpoints)
        if hasattr(ctx.run, "forget"):          # a published run's checkpoint goes
            ctx.publish = ForgetOnPublish(ctx.publish, ctx.run.forget)
        if ctx.run is not None:
            ctx.run = TimedRunner(ctx.run, self.progress, ctx)
            ctx.run.before_run = self._refresh_quietly
        self.ctx, self.pinned, self.can_train = ctx, pinned, can_train
        self.max_runs, self.duration_s = max_runs, duration_s
        self.roles: dict[str, Role] = {"experimenter": Experimenter(proposer),
                                       "verifier": Verifier(), "statistician": Statistician(),
                                       "meta_analyst": MetaAnalyst(judge=make_judge())}
        self.stop_event = stop_event or threading.Event()

    def stop(self) -> None:
        """Ask the loop to stop (a running HarnessRunner sharing the event kills its run)."""
        self.stop_event.set()

    def out_of_budget(self, started: float) -> bool:
        """--max-runs or --duration reached."""
        return ((self.max_runs is not None and self.progress.runs >= self.max_runs)
                or (self.duration_s is not None and time.monotonic() - started >= self.duration_s))

    def done(self, started: float) -> bool:
        """Stopped, or out of budget."""
        return self.stop_event.is_set() or self.out_of_budget(started)

    def idle_wait(self, idle_steps: int) -> float:
        """Seconds to wait after `idle_steps` idle steps in a row.

        A node that cannot train (no data), or is pinned to a role that never trains
        (`--role meta_analyst`: 27 `role` records in its first minute, idle), finds nothing to do
        most of the time; each step publishes a `role` record, so it backs off (doubling, up to
        IDLE_MAX_S) instead of publishing one every IDLE_S seconds. A node that trains always
        waits IDLE_S."""
        trains = self.can_train and (self.pinned is None or self.pinned in choice.TRAINING_ROLES)
        if trains:
            return IDLE_S
        return min(IDLE_MAX_S, IDLE_S * 2 ** max(0, idle_steps - 1))

    def step(self) -> str | None:
        """Choose a role and do one unit of its work."""
        self.ctx.held.clear()              # the last unit's leases are left to expire
        picked = choice.choose(self.ctx, self.can_train, self.pinned)
        self.progress.role = picked.role
        self.progress.doing = f"working as {picked.role}"
        self.progress.roles[picked.role] = self.progress.roles.get(picked.role, 0) + 1
        summary = self.roles[picked.role].work(self.ctx)
        self.progress.judgements = self.ctx.counters.get("judgements", 0)
        self.progress.judge_errors = self.ctx.counters.get("judge_errors", 0)
        log.info("%s: %s", picked.role, summary or "nothing to do")
        return summary

    def refresh_view(self) -> None:
        """The swarm's role mix and best config, for the display and `swarm status`."""
        mix: dict[str, int] = {}
        for row in self.ctx.rows("SELECT role, sum(times) AS n FROM role_mix GROUP BY role"):
            mix[row["role"]] = int(row["n"])
        self.progress.role_mix = mix
        base = evidence.baseline(self.ctx)
        diff = {k: v for k, v in base.config.items() if self.ctx.base_config.get(k) != v}
        mean = sum(base.values) / len(base.values) if base.values else None
        self.progress.best = {"config_hash": base.hash, "diff": diff, "val_bpb": mean,
                              "runs": len(base.values)}
        self.progress.claims = evidence.claim_tally(self.ctx)
        self.progress.baseline_runs = len(evidence.baseline(self.ctx, self.ctx.base_config).values)

    def _refresh_quietly(self) -> None:
        """`refresh_view`, where a failure only leaves the display late."""
        try:
            self.refresh_view()
        except Exception:                            # noqa: BLE001 - only the display is late
            log.debug("view refresh failed", exc_info=True)

    def resume(self) -> bool:
        """Resume and publish the runs this node left unfinished (roles/resume.py); False when
        the node stops meanwhile."""
        if not hasattr(self.harness, "pending") or not self.harness.pending():
            return True             # the panel said "resuming a pending run" on every fresh home
        self.progress.doing = "resuming a pending run"
        try:
            resume_pending(self.ctx, self.harness)
        except Cancelled:
            log.info("resumed run stopped: the node is shutting down")
            return False
        except DiskFull as exc:
            log.warning("work stopped: %s", exc)
            return False
        return True

    def run(self) -> None:
        """Loop until done; errors in one step are logged and the loop goes on."""
        started, idle = time.monotonic(), 0
        self._refresh_quietly()                      # the panel has counts before the first run
        if not self.resume():
            self.progress.doing = "stopped"
            return
        while not self.done(started):
            t0 = self.progress.step_started = time.monotonic()
            try:
                summary = self.step()
                self.refresh_view()
            except Cancelled:
                log.info("current run stopped: the node is shutting down")
                break
            except DiskFull as exc:                  # the daemon stops the node and says why
                log.warning("work stopped: %s", exc)
                break
            except Exception:                        # a bug in one step must not stop the node
                log.exception("work step failed")
                summary = None
            finally:        # a step a stop cut short counts too: its run's training time does
                self.progress.busy_s, self.progress.step_started = (
                    self.progress.busy_s + time.monotonic() - t0, None)
            idle = 0 if summary is not None else idle + 1
            if summary is None:
                self.progress.doing = "idle: no open work"
                self.stop_event.wait(self.idle_wait(idle))
        self.progress.doing, self.progress.step_started = "stopped", None


def make_context(daemon: Any, loop: asyncio.AbstractEventLoop, track_id: str,
                 base_config: dict[str, Any], runner: Runner | None,
                 params: GateParams, lease_s: float, pinned: frozenset[str] = frozenset(),
                 budget_tokens: int | None = None) -> Context:
    """A role context over a running daemon (trust roots: its key + `pinned`; docs/TRUST.md)."""
    return Context(store=daemon.store, me=daemon.keypair.peer_id,
                   publish=DaemonPublisher(daemon, loop), track=track_id,
                   base_config=base_config, run=runner, params=params,
                   rng=random.Random(), lease_s=lease_s, pinned=pinned,
                   budget_tokens=budget_tokens)
