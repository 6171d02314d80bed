"""A stats-level simulation of the gate: the committed decisions of memory/stats.py, no roles.

One candidate at a time, in units of the baseline's noise sd: the baseline has `min_baseline`
seeds N(0, 1); the candidate's runs are N(-effect, noise). The candidate goes through the same
functions the roles call: `promotes` / `screen_again` (screening), `keep_confirming` / `confirm_cap`
(sequential confirmation), `worth_claiming` (the experimenter's bar), `decide` (the statistician,
no family: a single claim), then `verify_runs` fresh seeds and `verification_outcome`, once more
(pooled, as roles/verdicts.py pools every verifier's fresh seeds) while inconclusive, up to
`verifiers` verifications. It is fast (thousands of candidates a second), so it measures the
rules' power and false-accept rate with many draws; `swarm bench search --mode gate` measures the
same through the product's roles (fewer draws, slower).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from memory import stats


@dataclass
class SimResult:
    """Counts over `draws` candidates of one kind (effect, noise)."""

    draws: int = 0
    promoted: int = 0
    claimed: int = 0
    supported: int = 0
    verified: int = 0
    runs: int = 0
    lost: dict[str, int] = field(default_factory=dict)

    def rate(self) -> float:
        """Share of candidates verified (power for real effects, false-accept rate for nulls)."""
        return self.verified / self.draws if self.draws else 0.0


def _lose(res: SimResult, stage: str) -> None:
    res.lost[stage] = res.lost.get(stage, 0) + 1


def _screen(draw, floor: stats.NoiseFloor, params: stats.GateParams, res: SimResult) -> bool:
    for _ in range(params.screen_max):
        value = draw()
        res.runs += 1
        if stats.promotes(value, floor, params):
            return True
        if not stats.screen_again(value, floor, params):
            return False
    return False


def one(rng: random.Random, effect: float, noise: float, params: stats.GateParams,
        verifiers: int, res: SimResult) -> None:
    """One candidate through screen, confirmation, assessment and verification."""
    res.draws += 1
    base = [rng.gauss(0.0, 1.0) for _ in range(params.min_baseline)]
    floor = stats.noise_floor(base)
    draw = lambda: rng.gauss(-effect, noise)  # noqa: E731 - one line, read once
    if not _screen(draw, floor, params, res):
        return _lose(res, "screen")
    res.promoted += 1
    confirm: list[float] = []
    while stats.keep_confirming(confirm, floor, params, base):
        confirm.append(draw())
    res.runs += len(confirm)
    if not stats.worth_claiming(confirm, base, params):
        return _lose(res, "confirm")
    res.claimed += 1
    result = stats.claim_test(confirm, base, params)
    if not stats.decide([result], floor.std, params)[0].supported:
        return _lose(res, "assess")
    res.supported += 1
    fresh: list[float] = []
    for _ in range(verifiers):
        k = stats.verify_runs(confirm, base, params)
        fresh += [draw() for _ in range(k)]
        res.runs += k
        if stats.verification_outcome(None, fresh, base, params)[0] == "confirmed":
            res.verified += 1
            return None
    return _lose(res, "verify")


def simulate(effect: float, noise: float, draws: int, params: stats.GateParams = stats.GateParams(),
             verifiers: int = 2, seed: int = 0) -> SimResult:
    """`draws` candidates of one kind through the gate."""
    rng, res = random.Random(seed), SimResult()
    for _ in range(draws):
        one(rng, effect, noise, params, verifiers, res)
    return res
