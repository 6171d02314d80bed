"""Deterministic samples after training: fixed prompts, a fixed sampling seed and temperature.

The prompts are continued together, token by token (one batched forward per token, top-k sampling
from the model's logits, on the run's device), each until a newline (the end of a TinyStories
paragraph) or `MAX_NEW_TOKENS`. The random draws
come from one CPU generator seeded with `SAMPLE_SEED` and the logits are sampled on the CPU in
float64, so the same model gives the same text, and two runs with the same seed the same samples.
The prompts and constants are in prompts.py (no torch: the judge reads them).
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from node.harness.prompts import (MAX_NEW_TOKENS, MAX_TEXT_CHARS, PROMPTS, SAMPLE_SEED,
                                  TEMPERATURE, TOP_K)

__all__ = ["PROMPTS", "SAMPLE_SEED", "TEMPERATURE", "TOP_K", "MAX_NEW_TOKENS", "MAX_TEXT_CHARS",
           "continue_texts", "write_samples"]


def _next_token(logits: torch.Tensor, gen: torch.Generator) -> int:
    logits = logits.double().cpu() / TEMPERATURE
    top, idx = torch.topk(logits, min(TOP_K, logits.numel()))
    probs = torch.softmax(top, dim=-1)
    return int(idx[torch.multinomial(probs, 1, generator=gen)])


def _batch(windows: list[list[int]], device: torch.device) -> torch.Tensor:
    # Right-padding is harmless: attention is causal, so a sequence's last real position never
    # sees the padding after it.
    width = max(len(w) for w in windows)
    return torch.tensor([w + [0] * (width - len(w)) for w in windows], device=device)


@torch.no_grad()
def continue_texts(model: torch.nn.Module, tokenizer: Any, prompts: tuple[str, ...], seq_len: int,
                   device: torch.device, gen: torch.Generator,
                   autocast: contextlib.AbstractContextManager | None = None
                   ) -> list[tuple[str, bool]]:
    """The model's continuations of `prompts` (prompts not included), each with whether the model
    ended it (a newline) rather than a limit, all advanced in one batch: one forward per new
    token for every unfinished prompt, draws in prompt order."""
    ids = [[int(t) for t in tokenizer.encode(p)] for p in prompts]
    starts = [len(i) for i in ids]
    active = list(range(len(prompts)))
    for _ in range(MAX_NEW_TOKENS):
        if not active:
            break
        windows = [ids[i][-seq_len:] for i in active]
        with autocast or contextlib.nullcontext():
            logits = model(_batch(windows, device)).float()
        for row, i in enumerate(active):
            ids[i].append(_next_token(logits[row, len(windows[row]) - 1], gen))
        active = [i for i in active if "\n" not in tokenizer.decode(ids[i][-1:])]
    return [_finish(tokenizer.decode(i[s:])) for i, s in zip(ids, starts)]


def _finish(text: str) -> tuple[str, bool]:
    """The text up to its paragraph's end, at most `MAX_TEXT_CHARS`, and whether it ended there
    (False: cut at the token or character limit, wherever the cut falls, even after a `.`)."""
    line, newline, _ = text.partition("\n")
    return line[:MAX_TEXT_CHARS], bool(newline) and len(line) <= MAX_TEXT_CHARS


def write_samples(model: torch.nn.Module, tokenizer: Any, seq_len: int, device: torch.device,
                  autocast: Any = None) -> tuple[list[dict[str, str]], list[bool]]:
    """`{prompt, text}` for every prompt of `PROMPTS`, deterministic for a given model, and for
    each whether the model ended it (see `continue_texts`)."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(SAMPLE_SEED)
    try:
        texts = continue_texts(model, tokenizer, PROMPTS, seq_len, device, gen,
                               autocast() if autocast else None)
    finally:
        model.train(was_training)
    return [{"prompt": p, "text": t} for p, (t, _) in zip(PROMPTS, texts)], [e for _, e in texts]
