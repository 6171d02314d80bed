"""`swarm bench gate`: the swarm's gate against the greedy keep/discard rule, on a simulated track.

A track with known true knob effects: most candidate changes do nothing (`--null-share`), some help
and some hurt by `--effect` noise sds; every run's val_bpb is its true value plus seed noise
(sd 0.002 bpb, as autoresearch@home reports). Both rules see the same candidates and the same noise.

- greedy (karpathy/autoresearch): the baseline runs once; a candidate runs once and is kept when
  its val_bpb is lower.
- swarm: the baseline's noise floor from `min_baseline` seeds; screen with one run; confirm
  sequentially; the statistician's test + BH over the track's claims + minimum effect; then an
  independent verifier (one replayed seed + fresh seeds). Every decision goes through the same
  `memory.stats` functions the roles call.

Reported: false accepts (share of accepted changes that are really no better), power (share of
real improvements accepted) and runs spent per accepted real improvement.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import typer

from memory import stats
from swarm.output import console, print_json, print_table

MU = 1.0


@dataclass
class Tally:
    """Counts for one rule over all simulated candidates."""

    runs: int = 0
    accepted_real: int = 0
    accepted_false: int = 0
    real: int = 0

    def row(self) -> dict[str, Any]:
        """Summary figures."""
        accepted = self.accepted_real + self.accepted_false
        return {"false_accept_share": self.accepted_false / accepted if accepted else 0.0,
                "power": self.accepted_real / self.real if self.real else 0.0,
                "accepted": accepted, "runs": self.runs,
                "runs_per_real_accept": self.runs / self.accepted_real if self.accepted_real else None}


@dataclass
class Track:
    """One simulated track: true effects of its candidates and a seed-noise generator."""

    rng: np.random.Generator
    sd: float
    effects: np.ndarray
    tally: Tally = field(default_factory=Tally)

    def run(self, true_effect: float, n: int = 1) -> list[float]:
        """`n` runs of a config whose true val_bpb is MU + true_effect."""
        self.tally.runs += n
        return list(MU + true_effect + self.rng.normal(0.0, self.sd, n))


def _candidates(rng: np.random.Generator, n: int, null_share: float, effect_sd: float,
                sd: float) -> np.ndarray:
    kind = rng.random(n)
    harmful = (1 - null_share) / 2
    return np.where(kind < null_share, 0.0,
                    np.where(kind < null_share + harmful, effect_sd * sd, -effect_sd * sd))


def greedy(track: Track) -> None:
    """One baseline run; keep each candidate whose single run is lower."""
    base = track.run(0.0)[0]
    for eff in track.effects:
        if track.run(eff)[0] < base:
            _count(track.tally, eff)


def _count(tally: Tally, eff: float) -> None:
    if eff < 0:
        tally.accepted_real += 1
    else:
        tally.accepted_false += 1


def _confirm(track: Track, eff: float, floor: stats.NoiseFloor,
             params: stats.GateParams) -> list[float]:
    confirms: list[float] = []
    while stats.keep_confirming(confirms, floor, params):
        confirms += track.run(eff)
    return confirms


def swarm_gate(track: Track, params: stats.GateParams) -> None:
    """Screen, confirm, assess all claims together (BH), verify the supported ones."""
    baseline = track.run(0.0, params.min_baseline)
    floor = stats.noise_floor(baseline)
    claims: list[tuple[float, list[float]]] = []
    for eff in track.effects:
        if not stats.promotes(track.run(eff)[0], floor, params):
            continue
        confirms = _confirm(track, eff, floor, params)
        if stats.worth_claiming(confirms, baseline, params):
            claims.append((eff, confirms))
    results = [stats.sequential(c, baseline) for _, c in claims]
    for (eff, _), verdict in zip(claims, stats.decide(results, floor.std, params)):
        if not verdict.supported:
            continue
        track.run(eff)                              # the replayed seed (honest claimant: matches)
        fresh = track.run(eff, params.verify_seeds)
        outcome, _, _ = stats.verification_outcome(True, fresh, baseline, params)
        if outcome == "confirmed":
            _count(track.tally, eff)


def simulate(params: stats.GateParams, effect_sd: float, null_share: float, candidates: int,
             tracks: int, sd: float, seed: int) -> dict[str, dict[str, Any]]:
    """Both rules over `tracks` simulated tracks of `candidates` candidates each."""
    tallies = {"greedy": Tally(), "swarm": Tally()}
    master = np.random.default_rng(seed)
    for _ in range(tracks):
        effects = _candidates(master, candidates, null_share, effect_sd, sd)
        for name, rule in (("greedy", greedy), ("swarm", lambda t: swarm_gate(t, params))):
            track = Track(np.random.default_rng(master.integers(2**63)), sd, effects, tallies[name])
            tallies[name].real += int((effects < 0).sum())
            rule(track)
    return {name: t.row() for name, t in tallies.items()}


def bench(
    effects: list[float] = typer.Option([1.0, 2.0, 3.0], "--effect", help="True effect of the "
                                        "helpful/harmful changes, in noise sds (repeatable)."),
    null_share: float = typer.Option(0.8, help="Share of candidates with no real effect."),
    candidates: int = typer.Option(50, help="Candidates per simulated track."),
    tracks: int = typer.Option(60, help="Simulated tracks."),
    sd: float = typer.Option(0.002, help="Seed noise sd of val_bpb."),
    promote_sd: float = typer.Option(stats.GateParams.promote_sd, help="Screening threshold (sds)."),
    confirm_max: int = typer.Option(stats.GateParams.confirm_max, help="Max confirmation runs."),
    alpha: float = typer.Option(stats.GateParams.alpha, help="One-sided p a claim needs."),
    min_baseline: int = typer.Option(stats.GateParams.min_baseline, help="Baseline seeds."),
    seed: int = typer.Option(0, help="Random seed of the simulation."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable JSON."),
) -> None:
    """Simulate the swarm's gate and the greedy rule on the same candidates; report both."""
    if not 0 <= null_share < 1 or candidates < 1 or tracks < 1 or sd <= 0 or min_baseline < 2:
        raise typer.BadParameter("need 0 <= null-share < 1, candidates >= 1, tracks >= 1, sd > 0, min-baseline >= 2")
    params = dataclasses.replace(stats.GateParams(), promote_sd=promote_sd,
                                 confirm_max=confirm_max, alpha=alpha,
                                 min_baseline=min_baseline)
    out = [{"effect_sd": e, "rule": rule, **row}
           for e in effects
           for rule, row in simulate(params, e, null_share, candidates, tracks, sd, seed).items()]
    if json_out:
        return print_json({"params": dataclasses.asdict(params), "null_share": null_share,
                           "candidates": candidates * tracks, "results": out})
    console.print(f"gate {dataclasses.asdict(params)}; {candidates * tracks} candidates per "
                  f"effect size, {null_share:.0%} without effect, noise sd {sd}")
    print_table("gate vs greedy", ["effect (sd)", "rule", "false accepts", "power", "accepted",
                                   "runs", "runs / real accept"],
                [(r["effect_sd"], r["rule"], f"{r['false_accept_share']:.1%}", f"{r['power']:.1%}",
                  r["accepted"], r["runs"], r["runs_per_real_accept"]) for r in out])
