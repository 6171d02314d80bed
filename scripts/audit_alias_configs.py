"""Configs the harness trains bit for bit alike under other config hashes (trust audit of
2026-12-02; docs/TRUST.md, "Spot checks").

    PYTHONPATH=. .venv/bin/python scripts/audit_alias_configs.py

Trains a tiny config (2 layers, width 32, 20 steps, seed 7, fp32 on this CPU) and, for each knob
change below, the same config with that change, and prints whether the config hash differs and
whether every weight after training is bit-identical. A run re-signed under such an alias was no
copy by config and seed, so a spot check replayed it and vouched for a key that trained nothing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memory.canonical import config_hash                   # noqa: E402
from node.harness.config import Config                      # noqa: E402
from node.harness.train import Trainer                      # noqa: E402

TOKENS = np.random.default_rng(0).integers(0, 64, 5000).astype(np.uint16)
CHANGES = ({"decay_frac": 0.7}, {"attn_pattern": "LL"}, {"attn_window": 8}, {"muon_lr": 0.05},
           {"ngram_weight": 0.9})


def train(**change: object) -> tuple[str, list[torch.Tensor]]:
    """The config's hash and its weights after 20 steps."""
    cfg = Config(**{"n_layer": 2, "n_embd": 32, "n_head": 2, "batch_size": 4, "seq_len": 16,
                    **change})
    trainer = Trainer(cfg, 64, TOKENS, 7, torch.device("cpu"), "fp32", False, total_steps=20)
    for _ in range(20):
        trainer.step()
    return config_hash(cfg.model_dump()), [p.detach().clone() for p in trainer.model.parameters()]


def main() -> None:
    """Print one line per change."""
    base_hash, base = train()
    for change in CHANGES:
        chash, weights = train(**change)
        same = all(torch.equal(a, b) for a, b in zip(base, weights))
        print(f"{change}: other hash {chash != base_hash}, bit-identical weights {same}")


if __name__ == "__main__":
    main()
