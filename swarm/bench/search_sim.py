"""A stats-level simulation of the gate: the committed decisions of memory/stats.py, no roles.

A repetition is one track's family: `candidates` candidates screened one after another against one
baseline of `min_baseline` seeds N(0, 1) (in units of the baseline's noise sd); a candidate's runs
are N(-effect, noise), and a share `crash` of runs crash. Each candidate goes through the same
functions the roles call: `promotes` / `screen_again` (screening), `keep_confirming` with the
claim's family bar (sequential confirmation; a crashed run is replaced up to `crash_max`),
`worth_claiming` (the experimenter's bar), `decide` (the statistician: LOND, the candidate's slot
is its place in the family, the discoveries are the supported claims before it), then
`verify_runs` fresh seeds and `verification_outcome`, once more (pooled, as roles/verdicts.py
pools every verifier's fresh seeds) while inconclusive, up to `verifiers` verifications. It is
fast (thousands of candidates a second), so it measures the rules' power and false discoveries
with many draws; `swarm bench search --mode gate` measures the same through the product's roles
(fewer draws, slower).
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


@dataclass
class FamilyResult:
    """Real and no-effect candidates over the repetitions, and the false discovery proportions."""

    real: SimResult = field(default_factory=SimResult)
    null: SimResult = field(default_factory=SimResult)
    fdp_supported: list[float] = field(default_factory=list)   # per repetition: false / supported
    fdp_verified: list[float] = field(default_factory=list)    # per repetition: false / verified

    @staticmethod
    def _mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else 0.0

    def fdr(self) -> tuple[float, float]:
        """The FDR of the statistician's discoveries and of the verified findings (E[V / R])."""
        return self._mean(self.fdp_supported), self._mean(self.fdp_verified)


@dataclass
class _Track:
    rng: random.Random
    base: list[float]
    floor: stats.NoiseFloor
    params: stats.GateParams
    crash: float
    verifiers: int
    slot: int = 0
    discoveries: int = 0


def _lose(res: SimResult, stage: str) -> str:
    res.lost[stage] = res.lost.get(stage, 0) + 1
    return stage


def _draw(track: _Track, effect: float, noise: float, res: SimResult) -> float | None:
    res.runs += 1
    if track.rng.random() < track.crash:
        return None
    return track.rng.gauss(-effect, noise)


def _screen(track: _Track, effect: float, noise: float, res: SimResult) -> bool:
    done = crashed = 0
    while done < track.params.screen_max:
        value = _draw(track, effect, noise, res)
        if value is None:
            crashed += 1                     # as the experimenter: one crashed screen is
            if crashed > 1:                  # replaced by another seed, a second is a dead end
                return False
            continue
        done += 1
        if stats.promotes(value, track.floor, track.params):
            return True
        if not stats.screen_again(value, track.floor, track.params):
            return False
    return False


def _confirm(track: _Track, effect: float, noise: float, res: SimResult, bar: float) -> list[float]:
    values: list[float] = []
    crashes = 0
    while stats.keep_confirming(values, track.floor, track.params, track.base, bar):
        value = _draw(track, effect, noise, res)
        if value is None:
            crashes += 1
            if crashes > stats.crashes_allowed(len(values), track.params):
                return []
            continue
        values.append(value)
    return values


def _candidate(track: _Track, effect: float, noise: float, res: SimResult) -> str:
    """One candidate through screen, confirmation, assessment and verification: its last stage."""
    res.draws += 1
    track.slot += 1
    params = track.params
    if not _screen(track, effect, noise, res):
        return _lose(res, "screen")
    res.promoted += 1
    bar = stats.claim_bar(track.slot, track.discoveries, params)
    confirm = _confirm(track, effect, noise, res, bar)
    if not stats.worth_claiming(confirm, track.base, params, bar):
        return _lose(res, "confirm")
    res.claimed += 1
    result = stats.claim_test(confirm, track.base, params)
    if not stats.decide(result, track.floor.std, params, track.slot, track.discoveries).supported:
        return _lose(res, "assess")
    res.supported += 1
    track.discoveries += 1
    fresh: list[float] = []
    for _ in range(track.verifiers):
        k = stats.verify_runs(confirm, track.base, params)
        fresh += [v for v in (_draw(track, effect, noise, res) for _ in range(k)) if v is not None]
        if stats.verification_outcome(None, fresh, track.base, params)[0] == "confirmed":
            res.verified += 1
            return "verified"
    _lose(res, "verify")
    return "supported"


def _new_track(rng: random.Random, params: stats.GateParams, crash: float,
               verifiers: int) -> _Track:
    base = [rng.gauss(0.0, 1.0) for _ in range(params.min_baseline)]
    return _Track(rng, base, stats.noise_floor(base), params, crash, verifiers)


def simulate(effect: float, noise: float, draws: int, params: stats.GateParams = stats.GateParams(),
             verifiers: int = 2, seed: int = 0) -> SimResult:
    """`draws` candidates of one kind, each alone in its track's family (slot 1)."""
    rng, res = random.Random(seed), SimResult()
    for _ in range(draws):
        _candidate(_new_track(rng, params, 0.0, verifiers), effect, noise, res)
    return res


def family(candidates: int, reps: int, null_share: float, effect: float, noise: float,
           crash: float = 0.0, params: stats.GateParams = stats.GateParams(), verifiers: int = 2,
           seed: int = 0) -> FamilyResult:
    """`reps` tracks of `candidates` candidates each (a share `null_share` without effect, the
    others `effect` sds better, all with `noise` times the baseline's sd), screened in order
    against one baseline per track: power, and the false discovery proportion per track."""
    rng, out = random.Random(seed), FamilyResult()
    for _ in range(reps):
        track = _new_track(rng, params, crash, verifiers)
        stages = {"real": [0, 0], "null": [0, 0]}          # supported, verified
        for _ in range(candidates):
            real = rng.random() >= null_share
            stage = _candidate(track, effect if real else 0.0, noise,
                               out.real if real else out.null)
            tally = stages["real" if real else "null"]
            tally[0] += stage in ("supported", "verified")
            tally[1] += stage == "verified"
        for i, fdp in ((0, out.fdp_supported), (1, out.fdp_verified)):
            found = stages["real"][i] + stages["null"][i]
            fdp.append(stages["null"][i] / found if found else 0.0)
    return out


def null_claim_ratio(bar: float, noise: float, draws: int,
                     params: stats.GateParams = stats.GateParams(), seed: int = 0) -> float:
    """P(a no-effect candidate is promoted and claimed at p <= bar) / bar, with the experimenter
    confirming until p <= bar: what `GateParams.null_claim` must bound."""
    rng, res, hits = random.Random(seed), SimResult(), 0
    for _ in range(draws):
        track = _new_track(rng, params, 0.0, 1)
        if _screen(track, 0.0, noise, res):
            confirm = _confirm(track, 0.0, noise, res, bar)
            hits += stats.worth_claiming(confirm, track.base, params, bar)
    return hits / draws / bar
