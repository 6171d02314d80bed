"""The run process's side of checkpoints: resume from one, write them as it trains, stop on request.

A stop request (SIGTERM or SIGINT from the node's shutdown, or the node gone) sets a flag; the
training loop sees it after the current step, writes a checkpoint at that step and raises
`Interrupted`, and run.py ends with a `{"event": "stopped"}` line instead of a result. Outside
training (planning, evaluation) a stop request ends the process at once: the last periodic
checkpoint, if any, stays for the next start.
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from node.harness import checkpoint as ck

Emit = Callable[[dict[str, Any]], None]
STOP = threading.Event()


class Interrupted(BaseException):
    """The run stopped on request (a BaseException: no `except Exception` turns it into a crash)."""

    def __init__(self, step: int | None) -> None:
        super().__init__(f"stopped at step {step}")
        self.step = step


class Checkpointer:
    """The train loop's hook: a checkpoint every `every_s` seconds of training, and at a stop."""

    def __init__(self, path: Path, every_s: float, fingerprint: dict[str, Any], trainer: Any,
                 curve: Any, prior: ck.Prior, emit: Emit, wall: Callable[[], tuple[float, float]]) -> None:
        self.path, self.every_s, self.fingerprint = path, every_s, fingerprint
        self.trainer, self.curve, self.prior, self.emit, self.wall = trainer, curve, prior, emit, wall
        self.active, self.last, self.writes = False, time.perf_counter(), 0

    def __call__(self, done: int, tail: torch.Tensor, train_s: float, timed_tokens: int) -> None:
        stop = STOP.is_set()
        due = done < self.trainer.total_steps and time.perf_counter() - self.last >= self.every_s
        if stop or due:
            self.save(tail, train_s, timed_tokens)
        if stop:
            raise Interrupted(done)

    def save(self, tail: torch.Tensor, train_s: float, timed_tokens: int) -> None:
        """Write the checkpoint now; a failed write (a full disk) is reported, never fatal."""
        started = time.perf_counter()
        wall_s, peak = self.wall()
        totals = ck.Prior(train_s=train_s, timed_tokens=timed_tokens, wall_s=wall_s,
                          peak_mem_mb=max(peak, self.prior.peak_mem_mb), tail=tail,
                          segments=self.prior.segments)
        error = ck.write(self.path, ck.payload(self.trainer, self.fingerprint, totals, self.curve))
        self.last = time.perf_counter()
        if error:
            self.emit({"event": "warning", "message": f"checkpoint not written: {error}"})
            return
        self.writes += 1
        self.emit({"event": "checkpoint", "step": self.trainer.step_no,
                   "write_s": round(self.last - started, 4), "bytes": self.path.stat().st_size})


def resume(trainer: Any, path: Path, fingerprint: dict[str, Any], curve: Any,
           emit: Emit) -> ck.Prior | None:
    """Load the checkpoint at `path` into `trainer` and `curve`; None when there is none, or when it
    is refused (one warning line, the file deleted: the run starts over; `trainer` must then be
    rebuilt if the refusal came after loading began, which `resume` says by raising)."""
    ck.remove_stale(path)
    if not path.exists():
        return None
    try:
        data = ck.read(path, fingerprint)
    except ck.BadCheckpoint as exc:
        _refuse(path, str(exc), emit)
        return None
    try:
        prior = ck.restore(trainer, data, curve)
    except ck.BadCheckpoint as exc:
        _refuse(path, str(exc), emit)
        raise
    emit({"event": "resumed", "step": prior.step, "wall_s": round(prior.wall_s, 3),
          "train_s": round(prior.train_s, 3),
          "segments": prior.segments})
    return prior


def _refuse(path: Path, why: str, emit: Emit) -> None:
    path.unlink(missing_ok=True)
    emit({"event": "warning", "message": f"checkpoint {path.name} refused, starting over: {why}"})


def on_stop_signals(checkpointer: Callable[[], Checkpointer | None]) -> None:
    """SIGTERM and SIGINT stop the run: at the next step while training (with a checkpoint),
    at once otherwise."""
    def handler(signum: int, frame: Any) -> None:
        STOP.set()
        ckpt = checkpointer()
        if ckpt is None or not ckpt.active:
            raise Interrupted(None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
