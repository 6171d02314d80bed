"""Simulated response surfaces over the real knobs, with a known optimum, for `swarm bench search`.

The training run is replaced by `SurfaceRunner`: val_bpb = 1 + SD x loss(config) + noise, where
loss is in noise sds and 0 at the optimum. The base config (the harness's `Config` defaults) sits
5.5 sds above the optimum on every surface. Noise is fixed per (config, seed), as a fixed-seed CPU
run is, so replays match.

- separable: a quadratic bowl in lr (log2), n_layer, warmup_frac, weight_decay, mlp_ratio and
  init_scale (log2), plus costs for activation and norm; every other knob does nothing;
- interactions: the same with an lr x n_layer cross term and rope paying off only with rmsnorm;
- rugged: separable plus ripples in lr and mlp_ratio (local minima every third of an octave).
Noise: `normal`, `t3` (Student t with 3 df, scaled to the same sd), `hetero` (every config other
than the base has twice the sd). `crash` is the share of runs that crash (status "crash").
"""
from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memory import records as R, synthetic

SD = 0.002
BEST_GAIN = 5.5                  # noise sds between the base config and the optimum
SURFACES = ("separable", "interactions", "rugged")
NOISES = ("normal", "t3", "hetero")

# knob -> (coordinate of a value, coordinate of the optimum, weight)
QUADRATIC: dict[str, tuple[Any, float, float]] = {
    "lr": (lambda v: math.log2(v / 0.003), 1.0, 1.2),
    "n_layer": (lambda v: (v - 3) / 2, 1.0, 1.0),
    "warmup_frac": (lambda v: (v - 0.05) / 0.05, 0.6, 0.5),
    "weight_decay": (lambda v: (v - 0.1) / 0.1, -0.5, 0.4),
    "mlp_ratio": (lambda v: (v - 4.0) / 1.75, -4 / 7, 0.6),
    "init_scale": (lambda v: math.log2(v), -0.5, 0.5),
}
CATEGORICAL: dict[str, dict[Any, float]] = {
    "activation": {"swiglu": 0.0, "relu2": 0.4, "gelu": 0.8},
    "norm": {"rmsnorm": 0.0, "layernorm": 0.5},
}


def _z(config: Mapping[str, Any], knob: str) -> float:
    coord, opt, _ = QUADRATIC[knob]
    return coord(config[knob]) - opt


def raw_loss(config: Mapping[str, Any], surface: str) -> float:
    """Unscaled loss (0 at the optimum, whatever the surface)."""
    loss = sum(w * _z(config, k) ** 2 for k, (_, _, w) in QUADRATIC.items() if k in config)
    loss += sum(costs.get(config.get(k), 1.0) for k, costs in CATEGORICAL.items() if k in config)
    if surface == "interactions":
        loss += 0.8 * _z(config, "lr") * _z(config, "n_layer")
        rope, rms = config.get("pos_encoding") == "rope", config.get("norm") == "rmsnorm"
        loss += (0.0 if rope and rms else 0.4) + (0.4 if rope and not rms else 0.0)
    elif surface == "rugged":
        for knob in ("lr", "mlp_ratio"):
            loss += 0.35 * (1 - math.cos(2 * math.pi * 3 * _z(config, knob)))
    elif surface != "separable":
        raise ValueError(f"unknown surface {surface!r} ({', '.join(SURFACES)})")
    return loss


@dataclass
class Surface:
    """One surface over one base config: loss in noise sds, 0 at the optimum."""

    kind: str
    base: dict[str, Any]

    def __post_init__(self) -> None:
        self.scale = BEST_GAIN / raw_loss(self.base, self.kind)

    def loss(self, config: Mapping[str, Any]) -> float:
        """Noise sds above the optimum."""
        return self.scale * raw_loss(config, self.kind)

    def gain(self, config: Mapping[str, Any]) -> float:
        """True improvement over the base config, in noise sds (negative: worse)."""
        return BEST_GAIN - self.loss(config)


class SurfaceRunner:
    """The `Runner` of the benchmark: a run of a config is a draw from the surface."""

    def __init__(self, surface: Surface, track: str, noise: str = "normal", crash: float = 0.0,
                 salt: int = 0) -> None:
        if noise not in NOISES:
            raise ValueError(f"unknown noise {noise!r} ({', '.join(NOISES)})")
        self.surface, self.track, self.noise, self.crash, self.salt = (
            surface, track, noise, crash, salt)
        self.runs = 0

    def _rng(self, config: Mapping[str, Any], seed: int) -> random.Random:
        key = f"{self.salt}:{sorted(config.items())!r}:{seed}".encode()
        return random.Random(hashlib.blake2b(key, digest_size=16).digest())

    def draw(self, config: Mapping[str, Any], seed: int) -> float | None:
        """The run's val_bpb, or None when it crashes."""
        rng = self._rng(config, seed)
        if rng.random() < self.crash:
            return None
        sd = SD * (2.0 if self.noise == "hetero" and dict(config) != self.surface.base else 1.0)
        if self.noise == "t3":             # t(3) has variance 3: scale it back to sd
            z = rng.gauss(0, 1) / math.sqrt(sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3)
            eps = sd * z / math.sqrt(3)
        else:
            eps = rng.gauss(0.0, sd)
        return 1.0 + SD * self.surface.loss(config) + eps

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> R.RunBody:
        self.runs += 1
        value = self.draw(config, seed)
        return synthetic.run_body(self.track, dict(config), seed,
                                  None if value is None else round(value, 7),
                                  status="ok" if value is not None else "crash",
                                  purpose=purpose, ref=ref)
