"""Refuse, before anything runs, a spec that cannot fit the node's memory, budget or time limit.

The memory figure is a deliberately rough upper estimate (fp32 weights, grads and two AdamW
moments, activations per token per layer, logits, the n-gram teacher); the time check divides the
run's FLOPs by half the measured peak, so it refuses only runs that cannot finish in time.
"""
from __future__ import annotations

from node.harness.config import Config, Refused

OPTIMISTIC_MFU = 0.5
RUNTIME_OVERHEAD = 400 * 2**20          # the torch runtime itself, on CPU
MAX_TEACHER_BYTES = 2 * 2**30           # a dense bigram table: vocab^2 floats


def estimate_memory(cfg: Config, vocab_size: int, params: int) -> int:
    """Rough peak bytes of one training step."""
    tokens = cfg.batch_size * cfg.seq_len
    states = params * 4 * (5 if cfg.ema_decay else 4)         # weights, grads, adam m, v (+ EMA)
    per_layer = cfg.n_embd * (16 + 6 * cfg.mlp_ratio) + 4 * cfg.n_head
    activations = tokens * cfg.n_layer * per_layer * 4
    logits = tokens * vocab_size * 4 * 3                      # logits, softmax, their grad
    teacher = 0
    if cfg.ngram_steps:
        teacher = vocab_size * vocab_size * 4 + tokens * vocab_size * 4 * 2
    return states + activations + logits + teacher + RUNTIME_OVERHEAD


def check_budget(cfg: Config, budget_tokens: int) -> int:
    """The number of optimiser steps the budget allows; refuse when it is unusable."""
    steps = budget_tokens // cfg.tokens_per_step
    if steps < 1:
        raise Refused(f"a budget of {budget_tokens} tokens is less than one step "
                      f"(batch_size x seq_len = {cfg.tokens_per_step})")
    if cfg.ngram_steps > steps:
        raise Refused(f"ngram_steps ({cfg.ngram_steps}) exceeds the run's {steps} steps")
    return steps


def check_fits(cfg: Config, vocab_size: int, params: int, free_bytes: int, device: str) -> None:
    """Refuse when the estimated memory is over 80% of what the node grants."""
    if cfg.ngram_steps and vocab_size * vocab_size * 4 > MAX_TEACHER_BYTES:
        raise Refused(f"the bigram teacher needs a {vocab_size}^2 table; use ngram_steps=0 "
                      f"with a vocab this large")
    need = estimate_memory(cfg, vocab_size, params)
    if free_bytes and need > 0.8 * free_bytes:
        raise Refused(f"needs ~{need / 2**30:.2f} GiB, the {device} grants "
                      f"{free_bytes / 2**30:.2f} GiB")


def check_time(flops_per_token: float, budget_tokens: int, peak_flops: float,
               timeout_s: float | None) -> None:
    """Refuse when even at 50% of the measured peak the run would outlast its time limit."""
    if not timeout_s or peak_flops <= 0:
        return
    best = flops_per_token * budget_tokens / (peak_flops * OPTIMISTIC_MFU)
    if best > timeout_s:
        raise Refused(f"needs at least {best:.0f} s at {OPTIMISTIC_MFU:.0%} of this node's peak "
                      f"FLOP/s; the limit is {timeout_s:.0f} s")
