"""A simulated track for role tests: true knob effects plus deterministic per-seed noise.

The runner is the harness's stand-in (the roles' injectable "run this config with this seed"); a
seed always gives the same val_bpb, as a fixed-seed CPU run does, so replays match exactly.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

from memory import canonical, records as R, synthetic
from memory.crypto import Keypair
from memory.stats import GateParams
from memory.store import Store
from roles.context import Context, StorePublisher

TRACK = "sim-track"
BASE: dict[str, Any] = {"lr": 0.003, "n_layer": 3, "activation": "gelu", "norm": "layernorm"}
SD = 0.002
PARAMS = GateParams(min_baseline=8)


class SimRunner:
    """val_bpb = 1 + sum of true effects of the config's settings + seed noise (sd 0.002)."""

    def __init__(self, effects: dict[tuple[str, Any], float] | None = None) -> None:
        self.effects = effects or {}
        self.calls = 0

    def true_bpb(self, config: Mapping[str, Any]) -> float:
        """The config's noise-free val_bpb."""
        return 1.0 + sum(self.effects.get((k, v), 0.0) for k, v in config.items())

    def noise(self, config: Mapping[str, Any], seed: int) -> float:
        key = hashlib.blake2b(f"{canonical.config_hash(dict(config))}:{seed}".encode()).digest()
        return random.Random(key).gauss(0.0, SD)

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> R.RunBody:
        self.calls += 1
        value = round(self.true_bpb(config) + self.noise(config, seed), 6)
        return synthetic.run_body(TRACK, dict(config), seed, value, purpose=purpose, ref=ref)


def context(store: Store, key: Keypair, runner: SimRunner | None, seed: int = 0,
            **kw: Any) -> Context:
    """A role context for `key` over `store` on the simulated track."""
    return Context(store=store, me=key.peer_id, publish=StorePublisher(store, key), track=TRACK,
                   base_config=kw.pop("base_config", dict(BASE)), run=runner,
                   params=kw.pop("params", PARAMS),
                   rng=random.Random(seed), **kw)
