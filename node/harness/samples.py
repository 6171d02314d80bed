"""Deterministic samples after training: fixed prompts, a fixed sampling seed and temperature.

Each prompt is continued token by token (top-k sampling from the model's forward, on the run's
device) until a newline (the end of a TinyStories paragraph) or `MAX_NEW_TOKENS`. The random draws
come from one CPU generator seeded with `SAMPLE_SEED` and the logits are sampled on the CPU in
float64, so the same model gives the same text, and two runs with the same seed the same samples.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

# Lower-case like the TinyStories tracks' text; a fixed set, so every run is read alike.
PROMPTS = ("once upon a time,", "one day, a little girl named lily", "the dog was very hungry.",
           "tom and his mom went to the park")
SAMPLE_SEED = 1234
TEMPERATURE = 0.8
TOP_K = 40
MAX_NEW_TOKENS = 120
MAX_TEXT_CHARS = 600          # a record bound: 4 samples of at most 600 characters


def _next_token(logits: torch.Tensor, gen: torch.Generator) -> int:
    logits = logits.double().cpu() / TEMPERATURE
    top, idx = torch.topk(logits, min(TOP_K, logits.numel()))
    probs = torch.softmax(top, dim=-1)
    return int(idx[torch.multinomial(probs, 1, generator=gen)])


@torch.no_grad()
def continue_text(model: torch.nn.Module, tokenizer: Any, prompt: str, seq_len: int,
                  device: torch.device, gen: torch.Generator,
                  autocast: contextlib.AbstractContextManager | None = None) -> str:
    """The model's continuation of `prompt` (the prompt itself not included)."""
    ids = [int(t) for t in tokenizer.encode(prompt)]
    start = len(ids)
    for _ in range(MAX_NEW_TOKENS):
        x = torch.tensor([ids[-seq_len:]], device=device)
        with autocast or contextlib.nullcontext():
            logits = model(x)[0, -1].float()
        ids.append(_next_token(logits, gen))
        if "\n" in tokenizer.decode(ids[-1:]):
            break
    text = tokenizer.decode(ids[start:])
    return text.split("\n", 1)[0][:MAX_TEXT_CHARS]


def write_samples(model: torch.nn.Module, tokenizer: Any, seq_len: int, device: torch.device,
                  autocast: Any = None) -> list[dict[str, str]]:
    """`{prompt, text}` for every prompt of `PROMPTS`, deterministic for a given model."""
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(SAMPLE_SEED)
    try:
        return [{"prompt": p, "text": continue_text(model, tokenizer, p, seq_len, device, gen,
                                                    autocast() if autocast else None)}
                for p in PROMPTS]
    finally:
        model.train(was_training)
