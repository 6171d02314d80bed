"""val_bpb: summed next-token NLL (nats) / ln 2 / bytes predicted, as in karpathy/autoresearch.

Every token of the evaluation prefix but the first is predicted exactly once, in windows of at
most `seq_len` tokens, whatever the seq_len, so configs with different contexts are scored on the
same bytes.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Bits per byte from a summed NLL in nats over tokens that spell `n_bytes` bytes."""
    if n_bytes <= 0:
        raise ValueError("no bytes were predicted")
    return nll_nats / math.log(2) / n_bytes


def _windows(n: int, seq_len: int) -> list[tuple[int, int]]:
    """(start, length) of input windows covering targets 1..n-1 once each."""
    return [(s, min(seq_len, n - 1 - s)) for s in range(0, n - 1, seq_len)]


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, tokens: np.ndarray, token_bytes: np.ndarray,
                 seq_len: int, batch_size: int, device: torch.device,
                 autocast: contextlib.AbstractContextManager | None = None) -> float:
    """val_bpb of `model` on `tokens`; `token_bytes[id]` is how many bytes token `id` spells."""
    was_training = model.training
    model.eval()
    data = torch.from_numpy(tokens.astype(np.int64))
    nbytes = torch.from_numpy(token_bytes.astype(np.int64))
    total_nll, total_bytes = 0.0, 0
    windows = _windows(len(data), seq_len)
    full = [s for s, ln in windows if ln == seq_len]
    groups = [full[i:i + batch_size] for i in range(0, len(full), batch_size)]
    groups += [[s] for s, ln in windows if ln != seq_len]        # the short tail window
    for starts in groups:
        ln = min(seq_len, len(data) - 1 - starts[0])
        x = torch.stack([data[s:s + ln] for s in starts]).to(device)
        y = torch.stack([data[s + 1:s + 1 + ln] for s in starts])
        with autocast or contextlib.nullcontext():
            logits = model(x)
        nll = F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(),
                              reduction="none").double().sum()      # sum in float64
        total_nll += float(nll)
        total_bytes += int(nbytes[y].sum())
    model.train(was_training)
    return bits_per_byte(total_nll, total_bytes)
