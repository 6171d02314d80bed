"""The training harness: tracks, data, tokenizer, GPT, training loop, val_bpb, one process per run.

config.py       the typed, flat, range-checked experiment config (`Config`, `build_config`)
tracks.py       tracks (data + tokenizer + eval + budget + base config), ids are content hashes
data.py         the track's text by sha256: data dir, cache, embedded copy, peers, upstream
hub.py          upstream parquet rows at a pinned dataset revision (huggingface_hub)
data_files/     the embedded tinystories-cpu sample (xz) and its CDLA-Sharing-1.0 notice
tokenizer.py    deterministic byte-level BPE
prepare.py      data + tokenizer + token arrays, cached under the home
model.py        the GPT
train.py        batches, schedule, n-gram teacher, z-loss, the loop
optim.py        AdamW / Muon param groups, embedding lr, weight EMA
evaluate.py     val_bpb
curve.py        the bounded loss curve (at most 64 evenly thinned points)
prompts.py      the fixed sample prompts and sampling constants (no torch; the judge reads them)
samples.py      deterministic samples from fixed prompts after training
quality.py      offline quality measures of the samples (repetition, distinct-n, ...)
feasibility.py  refusals before a run (memory, budget, time)
hardware.py     device description, free memory, measured peak FLOP/s
spec.py         RunSpec (parent -> child), RunResult (child -> parent), `to_run_body`
run.py          the child: `python -m node.harness.run` (JSON lines on stdout)
runner.py       the parent: limits, crash/hang/OOM handling
experiment.py   `run_experiment`, the API for roles

Importing this package does not import torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["run_experiment", "to_run_body", "RunResult", "TRACKS", "get_track", "Refused", "Cancelled"]


def __getattr__(name: str) -> Any:
    # lazy: the roles layer and the CLI import this package without paying for torch
    if name == "run_experiment":
        from node.harness.experiment import run_experiment
        return run_experiment
    if name in ("to_run_body", "RunResult"):
        from node.harness import spec
        return getattr(spec, name)
    if name in ("TRACKS", "get_track"):
        from node.harness import tracks
        return getattr(tracks, name)
    if name == "Cancelled":
        from node.harness.runner import Cancelled
        return Cancelled
    if name == "Refused":
        from node.harness.config import Refused
        return Refused
    raise AttributeError(name)
