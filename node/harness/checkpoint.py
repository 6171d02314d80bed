"""A run's checkpoint: everything needed to continue it bit-identically in a later process.

Written by the run's own process (run.py) every `checkpoint_every_s` seconds of training and at the
step where its node asks it to stop (SIGTERM/SIGINT), to the path its spec names (in the node's
home: roles/pending.py). Contents: model, optimisers, EMA, the batch stream's numpy generator
state, torch's CPU (and CUDA) generator states, the step, the loss tail, the loss curve, the
training seconds, timed tokens, wall seconds and peak memory of the segments so far, and the run's
fingerprint (track, config, seed, threads, device, precision, compile, harness code, torch). It is
written atomically (a temporary file in the same folder, fsync, rename), read with
`torch.load(weights_only=True)` (tensors and plain containers only; the metadata is one JSON
string), and refused whole when its fingerprint differs from the run's: then the run starts over.
`summary` reads what a checkpoint says of its run for people (`swarm pending`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memory.atomic import write_atomic
from memory.diskspace import full_disk_cause

FORMAT = 1
HERE = Path(__file__).resolve().parent


class BadCheckpoint(ValueError):
    """A checkpoint that cannot be resumed: unreadable, truncated, or of another run or code."""


def code_version() -> str:
    """A digest of the harness's source files: changed code may train differently, so a
    checkpoint written by other code is refused rather than resumed."""
    digest = hashlib.sha256()
    for path in sorted(HERE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Prior:
    """What the segments before this one did (all zero for a fresh run)."""

    step: int = 0
    train_s: float = 0.0
    timed_tokens: int = 0
    wall_s: float = 0.0
    peak_mem_mb: float = 0.0
    tail: torch.Tensor | None = None
    segments: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def payload(trainer: Any, fingerprint: dict[str, Any], prior: Prior, curve: Any) -> dict[str, Any]:
    """The checkpoint of `trainer` now; `prior` holds the totals up to this step."""
    meta = {"format": FORMAT, "fingerprint": fingerprint, "step": trainer.step_no,
            "train_s": prior.train_s, "timed_tokens": prior.timed_tokens, "wall_s": prior.wall_s,
            "peak_mem_mb": prior.peak_mem_mb, "segments": prior.segments,
            "curve": curve.state() if curve is not None else None,
            "numpy_rng": trainer.batches.rng.bit_generator.state}
    cuda = torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else []
    return {"meta": json.dumps(meta), "model": trainer.model.state_dict(),
            "opts": [opt.state_dict() for opt in trainer.opts],
            "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
            "tail": prior.tail.detach().cpu(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": cuda}


def write(path: Path, data: dict[str, Any]) -> str | None:
    """Write `data` to `path` atomically and durably (memory/atomic.py); None, or why it could
    not (a full disk: the OS's words). A failed write leaves the previous checkpoint, if any, in
    place and no partial file."""
    try:
        write_atomic(path, lambda f: torch.save(data, f), durable=True)
        return None
    except Exception as exc:             # noqa: BLE001 - torch wraps OSErrors in RuntimeErrors
        cause = full_disk_cause(exc)
        return f"the disk is full ({cause})" if cause else f"{type(exc).__name__}: {exc}"[:300]


def remove_stale(path: Path) -> None:
    """Delete temporary files a killed writer of `path` left behind."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def read(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint at `path` if it belongs to the run of `fingerprint`; raises BadCheckpoint."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(data["meta"])
    except Exception as exc:                 # noqa: BLE001 - truncated zip, bad pickle, bad JSON
        raise BadCheckpoint(f"unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadCheckpoint("of another format")
    theirs = meta.get("fingerprint") or {}
    for key in sorted(set(fingerprint) | set(theirs)):
        if theirs.get(key) != fingerprint.get(key):
            raise BadCheckpoint(f"written for another {key} ({theirs.get(key)!r}, "
                                f"this run: {fingerprint.get(key)!r})"[:300])
    data["meta"] = meta
    return data


def summary(path: Path) -> dict[str, Any]:
    """What a checkpoint says of its run, for people (`swarm pending`): the steps done and
    planned, training seconds, segments, and the fingerprint. Raises BadCheckpoint when
    unreadable. The tensors are mapped, not read: a listing of large checkpoints stays quick."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        meta = json.loads(data["meta"])
    except Exception as exc:                 # noqa: BLE001 - as in `read`
        raise BadCheckpoint(f"unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadCheckpoint("of another format")
    marks = meta.get("fingerprint") if isinstance(meta.get("fingerprint"), dict) else {}
    return {"step": meta.get("step"), "steps": marks.get("steps"), "train_s": meta.get("train_s"),
            "segments": meta.get("segments"), "fingerprint": marks}


def restore(trainer: Any, data: dict[str, Any], curve: Any) -> Prior:
    """Put `trainer` (fresh, same spec) and `curve` where the checkpoint left them; the prior
    segments' totals. Raises BadCheckpoint when the tensors do not fit the model."""
    meta = data["meta"]
    try:
        trainer.model.load_state_dict(data["model"])
        for opt, state in zip(trainer.opts, data["opts"], strict=True):
            opt.load_state_dict(state)
        if trainer.ema is not None:
            trainer.ema.load_state_dict(data["ema"])
        trainer.batches.rng.bit_generator.state = meta["numpy_rng"]
        torch.set_rng_state(data["torch_rng"])
        if trainer.device.type == "cuda" and data["cuda_rng"]:
            torch.cuda.set_rng_state_all(data["cuda_rng"])
        if curve is not None and meta.get("curve") is not None:
            curve.restore(meta["curve"])
        tail = data["tail"].to(trainer.device)
    except Exception as exc:                 # noqa: BLE001 - shapes, keys, types
        raise BadCheckpoint(f"does not fit the run ({type(exc).__name__})") from None
    trainer.step_no = int(meta["step"])
    return Prior(step=trainer.step_no, train_s=float(meta["train_s"]),
                 timed_tokens=int(meta["timed_tokens"]), wall_s=float(meta["wall_s"]),
                 peak_mem_mb=float(meta["peak_mem_mb"]), tail=tail,
                 segments=int(meta["segments"]) + 1)
