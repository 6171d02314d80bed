"""The harness's Python API for the roles layer: run one experiment, get a `RunResult`."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memory.canonical import config_hash
from node.harness.config import Refused, build_config
from node.harness.hardware import available_cores
from node.harness.prepare import StageProgress, prepare
from node.harness.runner import OnEvent, fallback_context, run_spec
from node.harness.spec import RunResult, RunSpec, empty_metrics
from node.harness.tracks import Track, get_track
from node.home import cache_dir, resolve_home

DEFAULT_TIMEOUT_S = 3600.0


def _scalar(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def refused_result(track: Track, overrides: Mapping[str, Any], seed: int, threads: int,
                   reason: str, device: str = "auto", visible_devices: str | None = None) -> RunResult:
    """The result of a spec that failed validation (nothing ran)."""
    config = {**track.base.model_dump(), **{str(k): _scalar(v) for k, v in overrides.items()}}
    ctx = fallback_context(threads, device, visible_devices)
    track_id = track.id if track.data.pinned else track.name
    return RunResult(status="refused", error=reason[:400], track=track_id, config=config,
                     config_hash=config_hash(config), seed=seed, budget_tokens=track.budget.tokens,
                     metrics=empty_metrics(), hardware=ctx["hardware"], software=ctx["software"])


def run_experiment(track: Track | str, config_overrides: Mapping[str, Any] | None, seed: int,
                   budget_tokens: int | None = None, threads: int | None = None,
                   timeout_s: float | None = None, *, home: Path | str | None = None,
                   data_dir: Path | str | None = None, device: str = "auto",
                   precision: str = "auto", memory_limit_mb: float | None = None,
                   on_event: OnEvent | None = None, on_prepare: StageProgress | None = None,
                   fault: str | None = None, stop: threading.Event | None = None,
                   visible_devices: str | None = None, checkpoint: Path | None = None,
                   checkpoint_every_s: float | None = None) -> RunResult:
    """Run one experiment in a subprocess and return its result (status ok|crash|nan|timeout|refused).

    Raises KeyError for an unknown track name and `DataError` when the track's data cannot be had;
    everything about the run itself comes back as a result. Setting `stop` kills the run and
    raises `runner.Cancelled` (a node shutting down). `visible_devices` pins the run's process
    to those GPUs (CUDA_VISIBLE_DEVICES). With `checkpoint` (a file path) the run checkpoints
    there every `checkpoint_every_s` training seconds and when stopped, and a later call with
    the same path and spec resumes from it (node/harness/resume.py).
    """
    track = (get_track(track) if isinstance(track, str) else track).with_budget(budget_tokens)
    threads = threads or available_cores()
    overrides = dict(config_overrides or {})
    try:
        config = build_config(track.base.model_dump(), overrides)
    except Refused as exc:
        return refused_result(track, overrides, seed, threads, str(exc), device, visible_devices)
    root = resolve_home(home)
    ready = prepare(track, root, data_dir, on_prepare)
    spec = RunSpec(track=ready.track, config=config, seed=seed, threads=threads, device=device,
                   precision=precision, tokenizer=str(ready.tokenizer),
                   train_tokens=str(ready.train_tokens), eval_tokens=str(ready.eval_tokens),
                   cache=str(cache_dir(root)), timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
                   memory_limit_mb=memory_limit_mb, fault=fault, visible_devices=visible_devices,
                   checkpoint=str(checkpoint) if checkpoint else None,
                   **({"checkpoint_every_s": checkpoint_every_s} if checkpoint_every_s else {}))
    return run_spec(spec, on_event, stop)
