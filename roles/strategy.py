"""The built-in strategy (no API key, or `--agent offline`): mutations of the track's best config.

Guided by the meta-analysis: with probability 1 - `explore`, take the knob setting with the most
negative estimated effect that the best config lacks and nobody tried on it; otherwise (or when
there is none) a random mutation from `MUTATIONS`. Every proposal is validated (when the context
can) and skipped when it repeats or nearly repeats a tried config.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from memory import records as R
from roles import evidence, leases
from roles.base import Proposal
from roles.context import Context
from roles.meta_analyst import estimate

# knob -> ("mul" factors | "add" steps | "set" values)
MUTATIONS: dict[str, tuple[str, list[Any]]] = {
    "lr": ("mul", [0.5, 2.0, 3.0]),
    "n_layer": ("add", [-1, 1]),
    "n_embd": ("mul", [0.5, 2.0]),
    "mlp_ratio": ("set", [2.0, 3.0, 4.0]),
    "activation": ("set", ["gelu", "relu2", "swiglu"]),
    "norm": ("set", ["layernorm", "rmsnorm"]),
    "pos_encoding": ("set", ["learned", "rope"]),
    "schedule": ("set", ["cosine", "wsd", "linear"]),
    "warmup_frac": ("set", [0.0, 0.02, 0.1]),
    "weight_decay": ("set", [0.0, 0.05, 0.2]),
    "batch_size": ("mul", [0.5, 2.0]),
    "init_scale": ("mul", [0.5, 2.0]),
    "qk_norm": ("set", [True, False]),
    "beta2": ("set", [0.95, 0.99]),
    "grad_clip": ("set", [0.0, 0.5, 1.0]),
}
Validate = Callable[[dict[str, Any]], "str | None"]      # config -> error, or None when valid


def _mutate(knob: str, current: Any, op: str, arg: Any) -> Any:
    if op == "mul":
        value = current * arg
        return int(value) if isinstance(current, int) else round(value, 8)
    if op == "add":
        return current + arg
    return arg


class Strategy:
    """Proposes mutations of the best config; `validate` refuses configs the harness would."""

    def __init__(self, validate: Validate | None = None, explore: float = 0.3,
                 attempts: int = 60) -> None:
        self.validate, self.explore, self.attempts = validate, explore, attempts

    def candidates(self, ctx: Context, best: dict[str, Any]) -> list[dict[str, Any]]:
        """Diffs in the order this strategy would try them."""
        # A joint effect (knobs the runs only changed together) guides to the joint diff.
        diffs = [(e, R.effect_settings(e.knob, e.value)) for e in estimate(ctx)]
        guided = [d for e, d in diffs
                  if e.effect < 0 and any(best.get(k) != v for k, v in d.items())]
        options = [(k, op, a) for k, (op, args) in MUTATIONS.items() if k in best for a in args]
        ctx.rng.shuffle(options)
        randoms = [{k: _mutate(k, best[k], op, a)} for k, op, a in options]
        if guided and ctx.rng.random() >= self.explore:
            return guided + randoms
        return randoms + guided

    def propose(self, ctx: Context) -> Proposal | None:
        """The first candidate that is new, not near a tried config, and valid."""
        best = evidence.best_config(ctx)
        tried = evidence.tried_configs(ctx)
        for diff in self.candidates(ctx, best)[: self.attempts]:
            config = {**best, **diff}
            if config == best or leases.near_duplicate(config, tried):
                continue
            if self.validate is not None and self.validate(config) is not None:
                continue
            return Proposal(diff, f"strategy: mutate the best config with {diff}", "strategy")
        return None


def harness_validator(config: dict[str, Any], budget_tokens: int | None = None) -> str | None:
    """Validate a config with the training harness's own rules (lazy import): its range checks
    and, given the track's token budget, its budget check (e.g. `ngram_steps` above the run's
    steps), so proposers never propose a run the harness would refuse at that budget."""
    from node.harness.config import Refused, build_config
    from node.harness.feasibility import check_budget
    try:
        cfg = build_config(config, {})
        if budget_tokens:
            check_budget(cfg, budget_tokens)
    except Refused as exc:
        return str(exc)
    return None


def budget_validator(budget_tokens: int | None) -> Validate:
    """`harness_validator` for one track budget (None: the range checks alone)."""
    return functools.partial(harness_validator, budget_tokens=budget_tokens)
