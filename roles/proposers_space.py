"""The knob space the optimizer proposers search: optuna distributions from the `Config` fields.

Every knob of the track's config that `Config` declares becomes a distribution:
- `Literal[...]` and `bool` knobs: categorical;
- floats whose range spans >= 100x (lr, init_scale): log-uniform; other floats: uniform;
- ints whose range spans >= 64x (n_embd, batch_size, seq_len, n_head): a categorical grid of
  powers of two times the current value (the harness wants divisible shapes, not n_embd = 301);
  other ints (n_layer, ngram_steps): uniform ints.
Knobs of other types (optional values, strings) are left alone. A window around the best config
keeps proposals sane (lr 1e-5..1 in one step is not); `widen` doubles it, up to the full range.
Conditional knobs are only sampled when their parent makes them matter (`CONDITIONS`).
Given `feasible` (the harness's own check for the track's budget, `strategy.harness_validator`),
each knob's window is cut to the values the harness accepts with the best config's other knobs
(bisection on that check for numbers, a filter for choices): e.g. `ngram_steps` never above the
run's steps at a tiny budget. The rules stay the harness's; combinations it still refuses are
re-asked by the proposer.
"""
from __future__ import annotations

import functools
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

def _window_layer(config: dict[str, Any]) -> bool:
    """Has the config a sliding-window (S) layer? The harness's own tiling (`layer_windows`: the
    pattern tiled over the layers, the last one full), so "L", "LL" or one layer have none."""
    from node.harness.config import Config
    pattern, layers = config.get("attn_pattern"), config.get("n_layer")
    if not isinstance(pattern, str) or type(layers) is not int:
        return True                     # not the harness's to read: the knob is left searched
    windows = Config.model_construct(attn_pattern=pattern, n_layer=layers).layer_windows()
    return any(w is not None for w in windows)


# child knob -> whether it matters in a config (the harness's defaults filled in, since an opt-in
# knob at its default is left out of a config). A child that does nothing trains bit for bit as
# the config without it, under another hash (an alias: scripts/audit_alias_configs.py): a
# proposal of it is a wasted experiment, and its runs look like another config's.
CONDITIONS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "decay_frac": lambda c: c["schedule"] == "wsd",
    "ngram_weight": lambda c: isinstance(c["ngram_steps"], (int, float)) and c["ngram_steps"] > 0,
    "muon_lr": lambda c: c["optimizer"] == "muon",
    "attn_window": _window_layer,
}


@functools.cache
def _defaults() -> dict[str, Any]:
    from node.harness.config import Config
    return {n: f.default for n, f in Config.model_fields.items()}


def matters(name: str, config: dict[str, Any]) -> bool:
    """Does knob `name` change what the harness trains, given `config`'s other knobs
    (`CONDITIONS`)? Knobs without a condition always do."""
    cond = CONDITIONS.get(name)
    return cond is None or cond({**_defaults(), **config})


LOG_SPAN = 100.0           # floats spanning more than this factor are searched on a log scale
GRID_SPAN = 64.0           # ints spanning more than this factor are searched on a x2 grid


@dataclass(frozen=True)
class Knob:
    """One searchable knob: its kind and its `Config` bounds."""

    name: str
    kind: str                      # "cat" | "log" | "float" | "grid" | "int"
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] = ()


def _bounds(field: Any) -> tuple[float | None, float | None]:
    lo = hi = None
    for meta in field.metadata:
        lo = getattr(meta, "ge", lo)
        hi = getattr(meta, "le", hi)
    return lo, hi


def _knob(name: str, field: Any) -> Knob | None:
    ann = field.annotation
    if ann is bool:
        return Knob(name, "cat", choices=(False, True))
    if typing.get_origin(ann) is typing.Literal:
        return Knob(name, "cat", choices=tuple(typing.get_args(ann)))
    lo, hi = _bounds(field)
    if ann not in (int, float) or lo is None or hi is None:
        return None
    wide = lo > 0 and hi / lo >= (LOG_SPAN if ann is float else GRID_SPAN)
    kind = {(float, True): "log", (float, False): "float", (int, True): "grid",
            (int, False): "int"}[(ann, wide)]
    return Knob(name, kind, float(lo), float(hi))


def config_knobs() -> dict[str, Knob]:
    """Every searchable knob the harness's `Config` declares (lazy import: pydantic model)."""
    from node.harness.config import Config
    return {n: k for n, f in Config.model_fields.items() if (k := _knob(n, f)) is not None}


def _window(knob: Knob, v: Any, widen: int) -> BaseDistribution:
    """The knob's distribution around the current value `v`, `widen` doublings wide."""
    if knob.kind == "cat":
        return CategoricalDistribution(list(knob.choices))
    lo, hi = knob.lo, knob.hi
    grow = 2.0 ** widen
    if knob.kind == "log" and v > 0:
        return FloatDistribution(max(lo, v / 4 / grow), min(hi, v * 4 * grow), log=True)
    if knob.kind == "grid" and v > 0:
        steps = 2 + widen
        grid = sorted({int(v * 2.0**k) for k in range(-steps, steps + 1)
                       if lo <= v * 2.0**k <= hi and float(v * 2.0**k).is_integer()})
        return CategoricalDistribution(grid or [int(v)])
    half = min((hi - lo) * 0.25, max(abs(v), (hi - lo) * 0.05)) * grow
    if knob.kind == "int":
        half = max(1, round(half))
        return IntDistribution(int(max(lo, v - half)), int(min(hi, v + half)))
    return FloatDistribution(max(lo, v - half), min(hi, v + half))


def _cover(dist: BaseDistribution, values: list[Any]) -> BaseDistribution:
    """Stretch `dist` so every observed value lies inside (a rebuilt trial must fit its space)."""
    if isinstance(dist, CategoricalDistribution):
        extra = [v for v in values if v not in dist.choices]
        return dist if not extra else CategoricalDistribution(
            list(dist.choices) + sorted(set(extra), key=repr))
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return dist
    lo, hi = min([dist.low, *nums]), max([dist.high, *nums])
    if isinstance(dist, IntDistribution):
        return IntDistribution(int(math.floor(lo)), int(math.ceil(hi)))
    if dist.log and lo <= 0:
        return dist
    return FloatDistribution(lo, hi, log=dist.log)


Feasible = Callable[[dict[str, Any]], bool]


def _edge(ok: Feasible, best: dict[str, Any], name: str, inside: float, outside: float,
          integer: bool) -> float:
    """The feasible value nearest `outside`, by bisection from the feasible `inside`."""
    for _ in range(40):
        if (abs(outside - inside) <= 1) if integer else (
                abs(outside - inside) <= 1e-6 * max(abs(inside), abs(outside), 1e-12)):
            break
        mid = (inside + outside) // 2 if integer else (inside + outside) / 2
        if ok({**best, name: mid}):
            inside = mid
        else:
            outside = mid
    return inside


def _fit(dist: BaseDistribution, name: str, best: dict[str, Any], ok: Feasible) -> BaseDistribution:
    """`dist` cut to the values `ok` accepts with `best`'s other knobs (monotone per knob)."""
    v = best[name]
    if isinstance(dist, CategoricalDistribution):
        keep = [c for c in dist.choices if c == v or ok({**best, name: c})]
        return CategoricalDistribution(keep)
    integer = isinstance(dist, IntDistribution)
    lo, hi = dist.low, dist.high
    if not ok({**best, name: hi}):
        hi = _edge(ok, best, name, v, hi, integer)
    if not ok({**best, name: lo}):
        lo = _edge(ok, best, name, v, lo, integer)
    if integer:
        return IntDistribution(int(lo), int(hi))
    return FloatDistribution(lo, hi, log=dist.log) if lo < hi else dist


class Space:
    """The distributions of the knobs of `best` (windowed around it, covering `observed`)."""

    def __init__(self, best: dict[str, Any], observed: list[dict[str, Any]] | None = None,
                 widen: int = 0, knobs: dict[str, Knob] | None = None,
                 feasible: Feasible | None = None) -> None:
        knobs = config_knobs() if knobs is None else knobs
        self.best = dict(best)
        self.dists: dict[str, BaseDistribution] = {}
        fit = feasible is not None and feasible(self.best)
        for name, knob in knobs.items():
            if name in best and best[name] is not None:
                seen = [c[name] for c in observed or [] if name in c]
                dist = _window(knob, best[name], widen)
                if fit:
                    dist = _fit(dist, name, self.best, feasible)  # type: ignore[arg-type]
                self.dists[name] = _cover(dist, seen)

    def active(self, name: str, config: dict[str, Any]) -> bool:
        """Does this knob matter in `config` (conditional knobs: `matters`)?"""
        return matters(name, config)

    def params(self, config: dict[str, Any]) -> dict[str, Any]:
        """A config's values for the knobs of this space that matter in it (a trial's params)."""
        return {k: config[k] for k in self.dists if k in config and self.active(k, config)}

    def distributions(self, params: dict[str, Any]) -> dict[str, BaseDistribution]:
        """The distributions of the given params (for `optuna.trial.create_trial`)."""
        return {k: self.dists[k] for k in params}

    def sample(self, suggest: Callable[[str, BaseDistribution], Any]) -> dict[str, Any]:
        """A full config: the best config with every active knob drawn by `suggest`, in order."""
        config = dict(self.best)
        for name, dist in self.dists.items():
            if self.active(name, config):
                config[name] = suggest(name, dist)
        return config

    def fits(self, config: dict[str, Any]) -> bool:
        """Does every value of `config` lie in this space (else it cannot be a trial)?"""
        return all(self.dists[k]._contains(self.dists[k].to_internal_repr(v))
                   for k, v in self.params(config).items())
