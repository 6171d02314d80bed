"""A response-surface proposer: a Bayesian additive quadratic model of the track's outcomes, drawn
once per proposal (Thompson sampling) and followed to the drawn model's optimum.

Response surface methodology (Box & Wilson, 1951) in its plainest form. Every numeric knob the
track's outcomes vary becomes a quadratic in its coordinate (log2 for log-scaled and grid knobs,
the value for the others), measured from the best config in units of the knob's search window;
every category seen becomes an indicator against the best config's. Mean val_bpb per config, in
noise sds of the baseline, is regressed on them by Bayesian ridge regression, each config weighted
by its seeds (1/n of seed noise plus `model_sd`^2 of misfit: no real surface is quadratic). One
draw from the coefficients' posterior, its deviation from the mean scaled by `spread` (0.5: the
portfolio has random search for exploration), gives a model; the proposal moves the best
config's knobs that the draw says gain most (at least `min_gain` sds each, `max_knobs` at most),
each to the drawn model's optimum within `reach` windows of the values seen. Knobs the data
leave uncertain are drawn far from their mean, so they get explored; knobs it pins down are
exploited. Outcomes the harness could not have run (a value outside its knob's bounds or
choices) are left out.

Why, beside TPE: late in a gated search every screened candidate takes a slot of the error budget
(LOND, memory/stats.py), so only large steps still pass, and TPE's proposals around the best config
are mostly small or null moves (one to four of ~30 knobs, most of which do nothing). A model that
pools every outcome of the track can move several knobs at once to where the pooled data point.
It is a source of its own in the portfolio (`rsm`): the bandit weighs it by what it verifies.
Why not a library: optuna has no response-surface sampler, and its GPSampler costs seconds of CPU
per ask (roles/proposers.py); this is a weighted least-squares solve of ~60 columns, milliseconds.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from roles import evidence, leases, search_evidence
from roles.base import Proposal
from roles.context import Context
from roles.proposers_space import Knob, config_knobs, matters
from roles.strategy import Validate


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _inside(knob: Knob, v: float) -> bool:
    lo = coordinate(knob, knob.lo) if knob.lo is not None else None
    hi = coordinate(knob, knob.hi) if knob.hi is not None else None
    return (lo is None or lo <= v) and (hi is None or v <= hi)


def _plausible(config: dict[str, Any], knobs: dict[str, Knob]) -> bool:
    """Could the harness have run it: every knob's value one of its choices or inside its
    bounds? (A trusted author's outcome still should not stretch the model to lr = 1e308.)"""
    for name, value in config.items():
        knob = knobs.get(name)
        if knob is None or value is None:
            continue
        if knob.kind == "cat":
            if not _scalar(value) or (knob.choices and value not in knob.choices):
                return False
        elif (v := coordinate(knob, value)) is None or not _inside(knob, v):
            return False
    return True


def coordinate(knob: Knob, value: Any) -> float | None:
    """A numeric knob's value on the axis the model is quadratic in (log2 for log and grid)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:                   # an integer beyond any float: no value of a knob
        return None
    if knob.kind in ("log", "grid"):
        return math.log2(v) if 0 < v < math.inf else None
    return v if math.isfinite(v) else None


def window(knob: Knob, value: float) -> float:
    """The knob's search window's half-width around `value`, on its axis (proposers_space)."""
    if knob.kind in ("log", "grid"):
        return 2.0                        # x4 either side: two octaves
    lo, hi = knob.lo or 0.0, knob.hi or 1.0
    half = min((hi - lo) * 0.25, max(abs(value), (hi - lo) * 0.05))
    return max(1.0, round(half)) if knob.kind == "int" else max(half, 1e-9)


@dataclass(frozen=True)
class Axis:
    """One numeric knob in the model: its columns, its unit, and the range its values were seen."""

    knob: Knob
    center: float                 # the best config's coordinate
    unit: float                   # one search window
    seen: tuple[float, float]     # min and max z among the outcomes
    lin: int                      # column of z
    sq: int | None                # column of z^2 (None: fewer than three values seen)


class Model:
    """The posterior of an additive quadratic model fitted to the outcomes, around `best`."""

    def __init__(self, best: dict[str, Any], knobs: dict[str, Knob],
                 outcomes: Sequence[search_evidence.Outcome], sd: float,
                 model_sd: float = 0.5, prior_sd: float = 3.0) -> None:
        self.best = best
        outcomes = [o for o in outcomes if _plausible(o.config, knobs)]
        self.axes: list[Axis] = []
        self.levels: dict[str, list[tuple[Any, int]]] = {}
        columns = 1                                     # column 0: the intercept
        for name in sorted(knobs):
            # a knob that does nothing in the best config
            if name not in best or best[name] is None or not matters(name, best):
                continue
            columns = self._add_knob(knobs[name], outcomes, columns)
        self.columns = columns
        x = np.array([self.features(o.config) for o in outcomes]).reshape(len(outcomes), columns)
        means = np.array([o.mean for o in outcomes])
        keep = np.isfinite(means)                      # (values are inside their bounds)
        x, means, outcomes = x[keep], means[keep], [o for o, k in zip(outcomes, keep) if k]
        y = (means - means.mean()) / sd
        w = 1.0 / (1.0 / np.array([o.n for o in outcomes], dtype=float) + model_sd ** 2)
        prior = np.full(columns, prior_sd ** -2)
        prior[0] = 1e-6                                 # the intercept is free
        precision = x.T @ (w[:, None] * x) + np.diag(prior)
        self.chol = np.linalg.cholesky(precision)
        self.mean = np.linalg.solve(precision, x.T @ (w * y))

    def _add_knob(self, knob: Knob, outcomes: Sequence[search_evidence.Outcome],
                  col: int) -> int:
        values = [o.config.get(knob.name, self.best[knob.name]) for o in outcomes]
        if knob.kind == "cat":                  # (`_plausible` left out non-scalar values)
            seen = sorted({v for v in values if v != self.best[knob.name]}, key=repr)
            self.levels[knob.name] = [(v, col + i) for i, v in enumerate(seen)]
            return col + len(seen)
        center = coordinate(knob, self.best[knob.name])
        coords = {c for v in values if (c := coordinate(knob, v)) is not None}
        if center is None or len(coords | {center}) < 2:
            return col
        unit = window(knob, self.best[knob.name])
        zs = [(c - center) / unit for c in coords | {center}]
        quadratic = len(coords | {center}) >= 3
        self.axes.append(Axis(knob, center, unit, (min(zs), max(zs)), col,
                              col + 1 if quadratic else None))
        return col + (2 if quadratic else 1)

    def features(self, config: dict[str, Any]) -> list[float]:
        """The config's row of the design matrix."""
        row = [0.0] * self.columns
        row[0] = 1.0
        for axis in self.axes:
            c = coordinate(axis.knob, config.get(axis.knob.name))
            z = 0.0 if c is None else (c - axis.center) / axis.unit
            row[axis.lin] = z
            if axis.sq is not None:
                row[axis.sq] = z * z
        for name, levels in self.levels.items():
            for level, col in levels:
                row[col] = float(config.get(name) == level)
        return row

    def draw(self, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
        """Coefficients drawn from the posterior (precision = L L^T, so L^-T e has its cov),
        their deviation from the mean scaled by `spread`."""
        e = rng.standard_normal(self.columns)
        return self.mean + spread * np.linalg.solve(self.chol.T, e)


def _best_z(axis: Axis, a: float, c: float, reach: float) -> float:
    """Where a z + c z^2 is lowest within `reach` windows of the values seen."""
    lo, hi = axis.seen[0] - reach, axis.seen[1] + reach
    if c > 1e-12:
        return min(hi, max(lo, -a / (2 * c)))
    return lo if a + c * (lo + hi) > 0 else hi        # concave or flat: the better end


def _value(axis: Axis, z: float, best_value: Any) -> Any:
    """The knob value at z, rounded as a person would write it and inside the knob's bounds."""
    knob, c = axis.knob, axis.center + z * axis.unit
    lo = knob.lo if knob.lo is not None else -math.inf
    hi = knob.hi if knob.hi is not None else math.inf
    if knob.kind == "grid":                       # whole octaves from the best value
        v = best_value * 2.0 ** round(c - axis.center)
        return int(v) if float(v).is_integer() and lo <= v <= hi else best_value
    if knob.kind == "int":
        return int(min(hi, max(lo, round(c))))
    v = 2.0 ** c if knob.kind == "log" else c
    return float(f"{min(hi, max(lo, v)):.3g}")


def moves(model: Model, beta: np.ndarray, reach: float = 0.5) -> list[tuple[float, str, Any]]:
    """(drawn gain in sds, knob, value) for every knob the drawn model would change, best first."""
    out = []
    for axis in model.axes:
        a, c = beta[axis.lin], beta[axis.sq] if axis.sq is not None else 0.0
        z = _best_z(axis, a, c, reach)
        value = _value(axis, z, model.best[axis.knob.name])
        if value != model.best[axis.knob.name]:
            zv = (coordinate(axis.knob, value) - axis.center) / axis.unit  # type: ignore[operator]
            out.append((-(a * zv + c * zv * zv), axis.knob.name, value))
    for name, levels in model.levels.items():
        if levels:
            level, col = min(levels, key=lambda lc: beta[lc[1]])   # (levels need no order)
            out.append((-float(beta[col]), name, level))
    return sorted(out, key=lambda m: (-m[0], m[1]))


class SurfaceProposer:
    """Multi-knob proposals toward the optimum of a drawn response surface (see the module)."""

    def __init__(self, validate: Validate | None = None, knobs: dict[str, Knob] | None = None,
                 min_outcomes: int = 40, min_gain: float = 0.25, max_knobs: int = 4,
                 attempts: int = 8, reach: float = 0.5, spread: float = 0.5) -> None:
        self.validate, self.knobs, self.spread = validate, knobs, spread
        self.min_outcomes, self.min_gain, self.max_knobs = min_outcomes, min_gain, max_knobs
        self.attempts, self.reach = attempts, reach
        self.name = "rsm"
        self.calls = 0

    def model(self, ctx: Context, done: list[search_evidence.Outcome] | None = None
              ) -> Model | None:
        """The model of the track's outcomes (`done`: as read already) around its best config
        (None: too few outcomes or no noise floor yet)."""
        done = search_evidence.outcomes(ctx) if done is None else done
        floor = evidence.baseline(ctx).floor()
        if len(done) < self.min_outcomes or floor is None or floor.std <= 0:
            return None
        knobs = config_knobs() if self.knobs is None else self.knobs
        return Model(evidence.best_config(ctx), knobs, done, floor.std)

    def propose(self, ctx: Context) -> Proposal | None:
        """A new, valid config the drawn model says is better by `min_gain` sds, or None."""
        from roles.proposers import node_seed     # the portfolio's module imports this one
        done = search_evidence.outcomes(ctx)
        model = self.model(ctx, done)
        if model is None:
            return None
        self.calls += 1
        rng = np.random.default_rng(node_seed(ctx.me, self.name, self.calls))
        tried = evidence.tried_configs(ctx) + [o.config for o in done]
        for _ in range(self.attempts):
            picked = [m for m in moves(model, model.draw(rng, self.spread), self.reach)
                      if m[0] >= self.min_gain][:self.max_knobs]
            diff = {name: value for _, name, value in picked}
            config = {**model.best, **diff}
            if diff and not leases.near_duplicate(config, tried) and (
                    self.validate is None or self.validate(config) is None):
                gain = sum(m[0] for m in picked)
                return Proposal(diff, f"{self.name}: a drawn quadratic model of "
                                      f"{len(tried)} configs says {gain:.1f} sd better",
                                "strategy")
        return None

    def suggestions(self, ctx: Context) -> list[dict[str, Any]]:
        """The fitted model's own step (its posterior mean, not a draw) for the agent's digest,
        without publishing anything; empty while the model passes."""
        model = self.model(ctx)
        if model is None:
            return []
        picked = [m for m in moves(model, model.mean, self.reach)
                  if m[0] >= self.min_gain][:self.max_knobs]
        return [{name: value for _, name, value in picked}] if picked else []
