"""Proposers from a well-kept optimizer (optuna, by ask-and-tell) and the portfolio that picks one.

`OptunaProposer` rebuilds an optuna study from the memory before every proposal: one COMPLETE
trial per config with finished runs (its mean val_bpb), one RUNNING trial per config another node
holds an experiment lease on (TPE's constant liar keeps nodes apart), in config-hash order, so two
replicas with the same records build the same study. Each node's sampler is seeded from its own key
and its call count, so nodes do not propose the same config; the leases catch what still collides.
Proposals change several knobs at once. A proposal that the harness would refuse, or that repeats a
tried config, is told back as FAILED and another is asked; when none is new the search window
widens (`Space(widen=...)`), so the search never runs dry.

`Portfolio` asks its proposers in an order drawn by Thompson sampling on each source's record in the
memory (verified improvement in noise sds per run spent, `search_evidence.source_records`), with
`explore` as a floor of uniform choices. Random search is that floor and no more (`floor`): it is
asked first only in the uniform draws (5% of proposals beside TPE) or when the others have nothing.
Why: verified claims come one to four per 500 runs, too sparse for the draw to tell TPE from random
search in time, so the draw split them about evenly, and in every measurement at 500 runs the mix
found less than TPE alone (docs/ROLES.md, "Measured"; at 1,000 runs the two were level).
The response surface (`rsm`, roles/proposers_rsm.py) is drawn like TPE. Sources other than the
agent are recorded as `strategy` with the proposer's name leading the rationale (`tpe: ...`,
`rsm: ...`, `random: ...`): no schema change.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from roles import evidence, leases, search_evidence
from roles.base import Proposal, Proposer
from roles.context import Context
from roles.proposers_rsm import SurfaceProposer
from roles.proposers_space import Knob, Space
from roles.strategy import Validate

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)
MAX_TRIALS = 1000          # the study keeps the best configs when the track has more
# A Gaussian process costs O(n^3) in its trials per fit, and each ask fits and optimises an
# acquisition function: 7-20 CPU s per ask at 50-500 trials on the 2-core build machine
# (docs/ROLES.md), against milliseconds for TPE. Its study keeps the best 200.
GP_MAX_TRIALS = 200
MAX_WIDEN = 4


def node_seed(me: str, *parts: Any) -> int:
    """A 32-bit seed from this node's key and the given parts (sampler seeds, tie breaks)."""
    text = ":".join([me, *map(str, parts)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """`tpe` (multivariate, grouped for conditional knobs, constant liar), `random`, or `gp`
    (optuna's GPSampler: a Gaussian process with log expected improvement over the knobs every
    trial has; the conditional knobs are sampled at random; RUNNING trials are taken into
    account by the sampler itself)."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind not in ("tpe", "gp"):
        raise ValueError(f"unknown sampler {kind!r} (tpe, random or gp)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=True)


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_int(name, dist.low, dist.high)


def build_study(space: Space, done: list[search_evidence.Outcome], running: list[dict[str, Any]],
                sampler: optuna.samplers.BaseSampler, max_trials: int = MAX_TRIALS) -> optuna.Study:
    """A study holding the track's outcomes (the best `max_trials`) and the running configs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        kept = sorted(done, key=lambda o: (o.mean, o.hash))[:max_trials]
        for o in sorted(kept, key=lambda o: o.hash):
            _add(study, space, o.config, TrialState.COMPLETE, o.mean)
        for config in running:
            _add(study, space, config, TrialState.RUNNING, None)
    return study


def _add(study: optuna.Study, space: Space, config: dict[str, Any], state: TrialState,
         value: float | None) -> None:
    params = space.params(config)
    if params and space.fits(config):
        study.add_trial(create_trial(params=params, distributions=space.distributions(params),
                                     value=value, state=state))


class OptunaProposer:
    """Multi-knob proposals from an optuna sampler over the study rebuilt from the memory."""

    def __init__(self, kind: str = "tpe", validate: Validate | None = None,
                 knobs: dict[str, Knob] | None = None, attempts: int = 24,
                 local: float = 0.7, max_knobs: int = 4) -> None:
        self.kind, self.validate, self.knobs, self.attempts = kind, validate, knobs, attempts
        self.local, self.max_knobs = local, max_knobs
        self.name = kind
        self.max_trials = GP_MAX_TRIALS if kind == "gp" else MAX_TRIALS
        self.widen = 0
        self.calls = 0

    def _feasible(self, config: dict[str, Any]) -> bool:
        return self.validate is None or self.validate(config) is None

    def study(self, ctx: Context, best: dict[str, Any] | None = None,
              seed: int = 0) -> tuple[optuna.Study, Space]:
        """The study as the memory holds it now, and the space it was built over."""
        best = evidence.best_config(ctx) if best is None else best
        done = search_evidence.outcomes(ctx)
        running = search_evidence.pending(ctx, best)
        space = Space(best, [o.config for o in done] + running, self.widen, self.knobs,
                      self._feasible)
        return build_study(space, done, running, make_sampler(self.kind, seed),
                           self.max_trials), space

    def propose(self, ctx: Context) -> Proposal | None:
        """A new, valid multi-knob config; widens the search when the window is exhausted."""
        best = evidence.best_config(ctx)
        tried = evidence.tried_configs(ctx) + [o.config for o in search_evidence.outcomes(ctx)]
        while True:
            self.calls += 1
            study, space = self.study(ctx, best, node_seed(ctx.me, self.kind, self.calls))
            diff = self._ask(study, space, best, tried, ctx.rng)
            if diff is not None:
                return Proposal(diff, f"{self.name}: {len(study.trials)} trials in the study; "
                                      f"window x{2 ** self.widen}", "strategy")
            if self.widen >= MAX_WIDEN:
                return None
            self.widen += 1
            ctx.count(f"{self.name}_widened")
            log.info("%s: nothing new in the window; widening to x%d", self.name, 2**self.widen)

    def _ask(self, study: optuna.Study, space: Space, best: dict[str, Any],
             tried: list[dict[str, Any]], rng: Any = None) -> dict[str, Any] | None:
        for _ in range(self.attempts):
            trial = study.ask()
            config = space.sample(lambda n, d: _suggest(trial, n, d))
            diff = {k: v for k, v in config.items() if best.get(k) != v}
            if rng is not None and len(diff) > 1 and rng.random() < self.local:
                # a trust region: most proposals move only a few of the sampled knobs (the
                # study learns from the configs actually run, whatever their origin)
                keep = rng.sample(sorted(diff), min(len(diff), rng.randint(1, self.max_knobs)))
                diff = {k: diff[k] for k in keep}
                config = {**best, **diff}
            bad = (not diff or leases.near_duplicate(config, tried)
                   or (self.validate is not None and self.validate(config) is not None))
            if not bad:
                return diff
            study.tell(trial, state=TrialState.FAIL)
        return None

    def suggestions(self, ctx: Context, k: int = 3) -> list[dict[str, Any]]:
        """The optimizer's next `k` diffs (for the agent's digest), without publishing anything."""
        best = evidence.best_config(ctx)
        study, space = self.study(ctx, best, node_seed(ctx.me, "digest"))
        out = []
        for _ in range(k):
            diff = self._ask(study, space, best, [])
            if diff is not None:
                out.append(diff)
        return out


class Portfolio:
    """Asks its proposers in an order drawn from their records (Thompson sampling + a floor)."""

    def __init__(self, proposers: dict[str, Proposer], explore: float = 0.1,
                 prior_gain_sd: float = 1.0, prior_runs: float = 30.0,
                 floor: tuple[str, ...] = ()) -> None:
        self.proposers, self.explore, self.floor = proposers, explore, floor
        self.prior_gain_sd, self.prior_runs = prior_gain_sd, prior_runs
        self.asked: dict[str, int] = {}

    def order(self, ctx: Context) -> list[str]:
        """Proposer names, most promising first, drawn from their records in the memory."""
        return self.draw(ctx.rng, search_evidence.source_records(ctx))

    def draw(self, rng: Any, records: dict[str, search_evidence.SourceRecord]) -> list[str]:
        """One Thompson draw: each source's gain per run ~ Gamma(prior + gain sd) / (prior + runs)
        (a Gamma-Poisson posterior), best first, the `floor` sources after the others whatever
        their record; with probability `explore`, a uniform order over all of them."""
        names = sorted(self.proposers)
        if rng.random() < self.explore:
            rng.shuffle(names)
            return names
        drawn = [n for n in names if n not in self.floor]
        draws = {}
        for name in drawn:
            rec = records.get(name, search_evidence.SourceRecord())
            draws[name] = rng.gammavariate(self.prior_gain_sd + rec.gain_sd, 1.0) / (
                self.prior_runs + rec.runs)
        return sorted(drawn, key=lambda n: -draws[n]) + [n for n in names if n in self.floor]

    def propose(self, ctx: Context) -> Proposal | None:
        """The first proposal in the drawn order (a proposer without one passes its turn)."""
        for name in self.order(ctx):
            proposal = self.proposers[name].propose(ctx)
            if proposal is not None:
                self.asked[name] = self.asked.get(name, 0) + 1
                ctx.count(f"proposals_{name}")
                return proposal
        return None


def make_portfolio(validate: Validate | None = None, agent: Proposer | None = None,
                   knobs: dict[str, Knob] | None = None,
                   extra: dict[str, Callable[[], Proposer]] | None = None,
                   gp: bool = False) -> Portfolio:
    """TPE, the response surface (`rsm`), random search (the exploration floor), (with a key)
    the Claude agent and (`gp`) optuna's GPSampler: off by default, each of its asks costs
    seconds of CPU where TPE's cost milliseconds."""
    proposers: dict[str, Proposer] = {"tpe": OptunaProposer("tpe", validate, knobs),
                                      "random": OptunaProposer("random", validate, knobs),
                                      "rsm": SurfaceProposer(validate, knobs)}
    if gp:
        proposers["gp"] = OptunaProposer("gp", validate, knobs)
    if agent is not None:
        proposers["agent"] = agent
    for name, make in (extra or {}).items():
        proposers[name] = make()
    return Portfolio(proposers, floor=("random",))
