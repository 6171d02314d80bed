"""A run's memory stays flat over its steps: the training loop keeps no tensor per step.

Found in a soak test: the loop kept each step's loss tensor (up to 256), which pinned the CPU heap
between the steps' freed logits buffers; a tinystories-cpu run grew ~8 MB a step, to 2.4 GB.
Checked here by what stays alive, not by RSS (which depends on the allocator and the machine).
"""
from __future__ import annotations

import weakref

import numpy as np
import torch

from node.harness.config import Config
from node.harness.train import Trainer, train_loop

TOKENS = np.random.default_rng(0).integers(0, 64, 5000).astype(np.uint16)
TAIL = 50                   # train_loss: the mean loss of the last 50 steps
CFG = Config(n_layer=1, n_embd=32, n_head=2, batch_size=4, seq_len=16)


def _run(steps: int) -> tuple[int, dict]:
    """Train `steps` steps; the most step results alive at once, and the loop's outcome."""
    trainer = Trainer(CFG, 64, TOKENS, 0, torch.device("cpu"), "fp32", False, total_steps=steps)
    step, results, most = trainer.step, [], 0

    def watched_step() -> torch.Tensor:
        out = step()
        results.append(weakref.ref(out))
        return out

    def emit(event: dict) -> None:
        nonlocal most
        most = max(most, sum(ref() is not None for ref in results))

    trainer.step = watched_step            # the real step, watched
    out = train_loop(trainer, emit, every_s=0.0, check_every=1)
    return most, out


def test_the_loop_keeps_no_loss_tensor_per_step() -> None:
    most, out = _run(3 * TAIL)
    assert most <= 2, f"{most} step results alive at once"
    assert out["steps"] == 3 * TAIL and np.isfinite(out["train_loss"])


def test_train_loss_is_the_mean_of_the_last_steps() -> None:
    steps = TAIL + 7
    losses: list[float] = []
    trainer = Trainer(CFG, 64, TOKENS, 0, torch.device("cpu"), "fp32", False, total_steps=steps)
    train_loop(trainer, lambda e: losses.append(e["loss"]), every_s=0.0, check_every=1)
    again = Trainer(CFG, 64, TOKENS, 0, torch.device("cpu"), "fp32", False, total_steps=steps)
    out = train_loop(again, lambda e: None, every_s=0.0, check_every=1)
    assert abs(out["train_loss"] - sum(losses[-TAIL:]) / TAIL) < 1e-5      # emitted at 6 places
    short = Trainer(CFG, 64, TOKENS, 0, torch.device("cpu"), "fp32", False, total_steps=5)
    assert np.isfinite(train_loop(short, lambda e: None, every_s=0.0, check_every=1)["train_loss"])
