"""`swarm bench checkpoint`: what a run's checkpoints cost and what they save.

Three measures, on the tinystories-cpu base config (docs/RUNNING.md has the figures):
- `write_cost`: seconds to write one checkpoint (atomic: temp file, fsync, rename) into the home,
  seconds to read it back, and its size, after a few steps (optimiser state allocated);
- `slowdown`: real runs (subprocesses, as a node runs them) of one spec and seed with checkpoints
  every `every_s` against none, interleaved (off, on, on, off, ...), medians of tokens/s and wall
  seconds; the two kinds must give the same val_bpb;
- `lost_work`: a real run stopped as a node's Ctrl-C stops it after `stop_after_s` seconds of
  training, then run again: the training seconds and steps redone, with checkpoints (resumed at the
  step of the stop) and without (main's behaviour: the run starts over).
"""
from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Note = Callable[[str], None]


def write_cost(folder: Path, threads: int, writes: int = 7) -> dict[str, Any]:
    """Median seconds to write and to read one checkpoint of the tinystories-cpu base config, and
    its bytes on disk (written into `folder`, removed after)."""
    import torch

    from node.harness import checkpoint as ck
    from node.harness.curve import LossCurve
    from node.harness.feasibility import check_budget
    from node.harness.tracks import get_track
    from node.harness.train import TAIL, Trainer
    from swarm.bench.harness import synthetic_tokens

    torch.set_num_threads(threads)
    track = get_track("tinystories-cpu")
    vocab, cfg = track.tokenizer.vocab_size, track.base
    trainer = Trainer(cfg, vocab, synthetic_tokens(vocab), 0, torch.device("cpu"), "fp32", False,
                      check_budget(cfg, track.budget.tokens))
    for _ in range(3):                       # the optimiser's state exists after a step
        trainer.step()
    folder.mkdir(parents=True, exist_ok=True)
    path, prior = folder / "bench.pt", ck.Prior(tail=torch.zeros(TAIL))
    write_s, read_s = [], []
    try:
        for _ in range(writes):
            started = time.perf_counter()
            error = ck.write(path, ck.payload(trainer, {}, prior, LossCurve()))
            write_s.append(time.perf_counter() - started)
            if error:
                raise OSError(error)
            started = time.perf_counter()
            ck.read(path, {})
            read_s.append(time.perf_counter() - started)
        size = path.stat().st_size
    finally:
        path.unlink(missing_ok=True)
    return {"params": trainer.params, "bytes": size, "write_s": statistics.median(write_s),
            "read_s": statistics.median(read_s), "writes": writes}


def _run(spec: dict[str, Any], checkpoint: Path | None, every_s: float | None,
         stop: threading.Event | None = None,
         on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
    from node.harness.experiment import run_experiment
    return run_experiment(spec["track"], {}, spec["seed"], budget_tokens=spec["budget"],
                          threads=spec["threads"], home=spec["home"], data_dir=spec["data_dir"],
                          checkpoint=checkpoint, checkpoint_every_s=every_s, stop=stop,
                          on_event=on_event)


def slowdown(spec: dict[str, Any], pairs: int, every_s: float, note: Note) -> dict[str, Any]:
    """Interleaved runs with and without checkpoints; per kind the medians and the runs."""
    folder = Path(spec["home"]) / "bench-checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for i in range(pairs):
        for kind in (("off", "on") if i % 2 == 0 else ("on", "off")):
            path = folder / "run.pt" if kind == "on" else None
            writes: list[dict[str, Any]] = []
            result = _run(spec, path, every_s,
                          on_event=lambda e: writes.append(e) if e["event"] == "checkpoint" else None)
            if path is not None:
                path.unlink(missing_ok=True)
            m = result.metrics
            runs[kind].append({"status": result.status, "val_bpb": m.val_bpb,
                               "tokens_per_s": m.tokens_per_s, "wall_s": m.wall_s,
                               "checkpoints": len(writes)})
            note(f"{kind}: {m.tokens_per_s:,.0f} tok/s, {m.wall_s:.1f} s, {len(writes)} checkpoints")
    return {kind: {"median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows),
                   "median_wall_s": statistics.median(r["wall_s"] for r in rows), "runs": rows}
            for kind, rows in runs.items()}


def lost_work(spec: dict[str, Any], stop_after_s: float, checkpoints: bool) -> dict[str, Any]:
    """Stop a run after `stop_after_s` training seconds (as a node's Ctrl-C does), run it again:
    the training seconds and steps redone, and whether the result matches `spec["whole"]`."""
    from node.harness.runner import Cancelled

    path = Path(spec["home"]) / "bench-checkpoint" / "lost.pt" if checkpoints else None
    if path is not None:
        path.unlink(missing_ok=True)
    stop, seen = threading.Event(), {"train_s": 0.0, "step": 0}

    def watch(event: dict[str, Any]) -> None:
        if event["event"] == "stopped" and isinstance(event.get("step"), int):
            seen["step"] = event["step"]           # the step its checkpoint holds
        if event["event"] == "progress":
            seen.update(train_s=event["elapsed_s"], step=event["step"])
            if event["elapsed_s"] >= stop_after_s:
                stop.set()
    try:
        _run(spec, path, None, stop, watch)
        return {"error": "the run ended before the stop"}
    except Cancelled:
        pass
    resumed: dict[str, Any] = {}
    again = _run(spec, path, None,
                 on_event=lambda e: resumed.update(e) if e["event"] == "resumed" else None)
    if path is not None:
        path.unlink(missing_ok=True)
    return {"stopped_at_step": seen["step"], "trained_s": seen["train_s"],
            "resumed_at_step": resumed.get("step", 0),
            "redone_steps": seen["step"] - resumed.get("step", 0),
            "lost_train_s": max(0.0, seen["train_s"] - resumed.get("train_s", 0.0)),
            "val_bpb": again.metrics.val_bpb}
