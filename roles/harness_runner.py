"""The real `Runner`: one training run through the harness's `run_experiment` (a subprocess)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from memory.records import RunBody
from roles import pending

log = logging.getLogger(__name__)
# A box's GPU workers (threads of one node) prepare the same track in the same home at once;
# its cache files (tokenizer, token arrays) are written through fixed temporary names, so two
# writers raced (one's rename found the other's file gone): one prepares, the others find it made.
_PREPARING = threading.Lock()


class HarnessRunner:
    """Runs a full config with a seed on one track, budget and thread count; returns the run body.

    `stop` (an Event the node sets at shutdown) stops the current run; the call then raises the
    harness's `Cancelled`, so the interrupted run is not published now. With `checkpoints` on
    (a node's worker), every run is noted as pending in HOME/checkpoints and checkpoints there
    (roles/pending.py): a stopped run is resumed at the node's next start (`pending`, roles/
    resume.py), and `forget` drops its files once it is published. `on_progress`, when set, gets
    each progress event of the run under way (the harness's `{"event": "progress", "step",
    "steps", "loss", "elapsed_s", ...}`, about once a second): the live panel of `swarm join`.
    `workers` is how many runners of this machine train at once (a box's GPU workers): each
    run then gets its share of the cores (unless `threads` is set) and of the memory guard.
    """

    on_progress: Callable[[dict[str, Any]], None] | None = None

    def __init__(self, track: Any, budget_tokens: int | None = None, threads: int | None = None,
                 home: Path | None = None, data_dir: Path | None = None,
                 timeout_s: float | None = None, stop: threading.Event | None = None,
                 visible_devices: str | None = None, checkpoints: bool = False,
                 checkpoint_every_s: float | None = None, workers: int = 1) -> None:
        from node.harness import get_track     # lazy: keeps torch and friends out of imports

        track = get_track(track) if isinstance(track, str) else track
        self.track = track.with_budget(budget_tokens)
        self.threads, self.home, self.data_dir, self.timeout_s = threads, home, data_dir, timeout_s
        self.stop, self.visible_devices = stop, visible_devices     # the GPU(s) runs may use
        self.checkpoints, self.checkpoint_every_s = checkpoints, checkpoint_every_s
        self.workers = max(1, workers)
        # finished runs not yet published: (config_hash, seed, purpose, ref) of their body -> note
        self.finished: dict[tuple[str, int, str, str | None], pending.Pending] = {}

    def prepare(self) -> tuple[str, dict[str, Any]]:
        """Fetch data and train the tokenizer now; return the track id runs carry and its base config."""
        from node.harness.prepare import prepare
        from node.home import resolve_home

        with _PREPARING:
            ready = prepare(self.track, resolve_home(self.home), self.data_dir, None)
        self.track = ready.track
        track_id = self.track.id if self.track.data.pinned else self.track.name
        return track_id, self.track.base.model_dump()

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> RunBody:
        """One run (never raises for the run itself: crashes come back as results)."""
        from node.harness import run_experiment, to_run_body

        path = self._checkpoint(config, seed, purpose, ref)
        result = run_experiment(self.track, dict(config), seed, threads=self.run_threads(),
                                timeout_s=self.timeout_s, home=self.home, data_dir=self.data_dir,
                                memory_limit_mb=self.memory_limit_mb(),
                                stop=self.stop, visible_devices=self.visible_devices,
                                on_event=self._event, checkpoint=path,
                                checkpoint_every_s=self.checkpoint_every_s)
        if path is not None:
            self.finished[(result.config_hash, seed, purpose, ref)] = \
                self._pending(config, seed, purpose, ref)
        log.info("run %s seed %d: %s val_bpb=%s", purpose, seed, result.status,
                 result.metrics.val_bpb)
        return to_run_body(result, purpose, ref)

    def run_threads(self) -> int | None:
        """A run's threads: those set, else its share of the cores when workers share them
        (None: the harness's default, every core)."""
        from node.harness.hardware import cores_share
        return self.threads or (cores_share(self.workers) if self.workers > 1 else None)

    def memory_limit_mb(self) -> float | None:
        """A run's memory guard when workers share the memory: its share of 90% of what is
        available as it starts (None: the harness's default, all of that 90%)."""
        from node.harness.runner import default_memory_limit_mb
        return default_memory_limit_mb(self.workers) if self.workers > 1 else None

    # ---- pending runs (checkpoints) ----

    def _home(self) -> Path:
        from node.home import resolve_home
        return resolve_home(self.home)

    def _pending(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> pending.Pending:
        track_id = self.track.id if self.track.data.pinned else self.track.name
        return pending.Pending(track_id, dict(config), seed, purpose, ref, self.visible_devices)

    def _checkpoint(self, config: Mapping[str, Any], seed: int, purpose: str,
                    ref: str | None) -> Path | None:
        """The run's checkpoint file, the run noted as pending (None: no checkpoints)."""
        if not self.checkpoints:
            return None
        run = self._pending(config, seed, purpose, ref)
        return pending.checkpoint_path(self._home(), run) if pending.mark(self._home(), run) else None

    def pending(self) -> list[pending.Pending]:
        """Runs this worker started and has not published (none without checkpoints)."""
        return pending.listed(self._home(), self.visible_devices) if self.checkpoints else []

    def discard(self, run: pending.Pending) -> None:
        """Drop a pending run and its checkpoint."""
        pending.drop(self._home(), run)

    def forget(self, body: RunBody) -> None:
        """`body` is published: its pending files go."""
        run = self.finished.pop((body.config_hash, body.seed, body.purpose, body.ref), None)
        if run is not None:
            self.discard(run)

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "progress" and self.on_progress is not None:
            self.on_progress(event)
