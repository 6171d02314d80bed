"""`swarm bench search`: the swarm's search and gate against random search, TPE and the greedy rule.

One pipeline: the swarm arms drive the product's own loop (`swarm.worker.Worker.step`: role choice,
experimenter with the proposers, statistician, verifier, meta-analyst) for several nodes over one
real Store, interleaved unit by unit, with the training run replaced by a simulated response surface
with a known optimum (swarm/bench/search_surface.py). Arms:

- `swarm`: the portfolio (TPE, the response surface `rsm`, random search as the floor) through
  the gate;
- `tpe_gated`, `random_gated`, `gp_gated`: one proposer alone (`gp`: optuna's GPSampler),
  through the same gate (same loop); `rsm_gated`: the response surface with random search as
  its floor (it passes until the track has outcomes);
- `tpe`, `random`: optuna ask-and-tell, one run per config, no gate; the best single run wins;
- `greedy`: karpathy/autoresearch's rule: one run per change (1-3 knobs moved from the record),
  kept when lower than the record's run, and the record moves to each kept run.
Reported per arm: the true improvement (noise sds; 5.5 is the optimum) of the best *verified*
config (ungated arms: of their best config) at checkpoints, runs to the first verified claim,
verified claims and the share of them that are really no better than their baseline, and
whether the proposals ever stalled.

`--mode gate` (also `swarm bench gate`): candidates with known effects (`--null-share` without
effect, the rest helping or hurting by `--effect` sds) go through the same roles; reports false
verified findings and power, beside the greedy rule on the same candidates.
`--mode sim`: the gate's rules alone (swarm/bench/search_sim.py): `--reps` tracks of
`--candidates` screened candidates each (`--null-share` without effect, up to 1: a global null),
the others `--effect` sds better, `--crash` of runs crashing, LOND over each track's family:
power, the false discovery proportion of supported and of verified claims; fast, so many draws;
no roles.
Swarm arms report `max_idle`: the longest stretch of worker steps without a run (a stall is 40).
"""
from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from memory import stats, synthetic
from memory.canonical import config_hash
from memory.store import Store
from swarm.bench.search_surface import NOISES, SURFACES, SurfaceRunner, Surface
from swarm.bench.simclock import SimClock, memory_digest
from swarm.commands import MAX_EFFECT_SD
from swarm.output import check_out_file, console, print_json, print_table

TRACK = "sim-search"
ARMS = ("swarm", "tpe_gated", "random_gated", "gp_gated", "rsm_gated", "tpe", "random", "greedy")
STALL_STEPS = 40           # worker steps in a row without a run: the search has stalled


@dataclass
class Cond:
    """One condition of the benchmark."""

    surface: str = "separable"
    noise: str = "normal"
    crash: float = 0.0
    nodes: int = 3
    runs: int = 500
    rep: int = 0
    checkpoints: tuple[int, ...] = (200, 500, 1000, 2000)
    params: stats.GateParams = field(default_factory=stats.GateParams)


def _base() -> dict[str, Any]:
    from node.harness.config import Config
    return Config().model_dump()


def _validator() -> Any:
    from roles.strategy import harness_validator
    return harness_validator


# ---- the swarm arms: the product's loop ------------------------------------------------------

def _workers(store: Store, cond: Cond, runner: SurfaceRunner, sources: tuple[str, ...],
             clock: SimClock, proposer: Any = None) -> list[Any]:
    from roles.context import Context, StorePublisher
    from roles.proposers import make_portfolio
    from swarm.worker import Worker

    out = []
    for i, key in enumerate(synthetic.keypairs(cond.nodes, seed=1000 + cond.rep)):
        ctx = Context(store=store, me=key.peer_id, publish=StorePublisher(store, key, clock.stamp),
                      track=TRACK, base_config=_base(), run=runner, params=cond.params,
                      rng=random.Random(cond.rep * 1009 + i), clock=clock.seconds)
        portfolio = proposer or make_portfolio(_validator(), gp="gp" in sources)
        if proposer is None:
            portfolio.proposers = {k: v for k, v in portfolio.proposers.items() if k in sources}
        out.append(Worker(ctx, portfolio))
    return out


def _configs(ctx: Any) -> dict[str, dict[str, Any]]:
    return {r["config_hash"]: json.loads(r["config"]) if isinstance(r["config"], str)
            else r["config"] for r in ctx.rows("SELECT config_hash, config FROM seed_stats "
                                               "WHERE track = ?", [TRACK])}


def verified_claims(ctx: Any) -> list[tuple[str, str]]:
    """(baseline hash, candidate hash) of every verified claim on the track."""
    return [(r["baseline_hash"], r["candidate_hash"]) for r in ctx.rows(
        "SELECT baseline_hash, candidate_hash FROM claim_status WHERE track = ? AND "
        "status = 'verified' ORDER BY ts", [TRACK])]


def swarm_arm(cond: Cond, sources: tuple[str, ...] = ("tpe", "random", "rsm")) -> dict[str, Any]:
    """Nodes running the real roles over one store until `cond.runs` runs."""
    from roles import evidence

    surface = Surface(cond.surface, _base())
    runner = SurfaceRunner(surface, TRACK, cond.noise, cond.crash, salt=cond.rep)
    out: dict[str, Any] = {"curve": {}, "first_verified_at": None, "stalled": False,
                           "max_idle": 0}
    with Store(":memory:") as store:
        clock = SimClock()
        workers = _workers(store, cond, runner, sources, clock)
        ctx, idle = workers[0].ctx, 0
        while runner.runs < cond.runs and not out["stalled"]:
            for worker in workers:
                before = runner.runs
                clock.step()
                worker.step()
                idle = 0 if runner.runs > before else idle + 1
                out["stalled"] = idle >= STALL_STEPS
                out["max_idle"] = max(out["max_idle"], idle)
                if out["first_verified_at"] is None and verified_claims(ctx):
                    out["first_verified_at"] = runner.runs
                for cp in cond.checkpoints:
                    if before < cp <= runner.runs:
                        out["curve"][cp] = surface.gain(evidence.best_config(ctx))
        out.update(_claims_truth(ctx, surface))
        out["runs"] = runner.runs
        out["final_gain"] = surface.gain(evidence.best_config(ctx))
        out["proposals"] = {k: sum(w.ctx.counters.get(f"proposals_{k}", 0) for w in workers)
                            for k in sources}
        out["memory_digest"] = memory_digest(store)
    return out


def _claims_truth(ctx: Any, surface: Surface) -> dict[str, Any]:
    configs = _configs(ctx)
    gains = [surface.gain(configs[c]) - surface.gain(configs[b])
             for b, c in verified_claims(ctx) if b in configs and c in configs]
    return {"verified": len(gains), "false_verified": sum(g <= 0 for g in gains)}


# ---- the ungated arms: optuna ask-and-tell, greedy ----------------------------------------------

def _ask_valid(space: Any, suggest: Any, validate: Any, tries: int = 50) -> dict[str, Any]:
    for _ in range(tries):
        config = suggest(space)
        if validate(config) is None:
            return config
    return dict(space.best)


def ungated_arm(cond: Cond, kind: str) -> dict[str, Any]:
    """Plain optuna (`tpe` / `random`) over a fixed space around the base, one run per config."""
    import optuna
    from optuna.trial import TrialState

    from roles.proposers import _suggest, make_sampler
    from roles.proposers_space import Space

    base, validate = _base(), _validator()
    surface = Surface(cond.surface, base)
    runner = SurfaceRunner(surface, TRACK, cond.noise, cond.crash, salt=cond.rep)
    space = Space(base, widen=1)
    study = optuna.create_study(direction="minimize", sampler=make_sampler(kind, cond.rep))
    best: tuple[float, dict[str, Any]] = (float("inf"), base)
    curve = {}
    for i in range(1, cond.runs + 1):
        trial = study.ask()
        config = space.sample(lambda n, d: _suggest(trial, n, d))
        if validate(config) is not None:
            study.tell(trial, state=TrialState.FAIL)
            continue
        value = runner.draw(config, i)
        runner.runs += 1
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)
        if value is not None and value < best[0]:
            best = (value, config)
        if i in cond.checkpoints:
            curve[i] = surface.gain(best[1])
    return {"curve": curve, "final_gain": surface.gain(best[1]), "runs": cond.runs,
            "first_verified_at": None, "verified": None, "false_verified": None, "stalled": False}


def greedy_arm(cond: Cond) -> dict[str, Any]:
    """autoresearch's rule: change 1-3 knobs of the record, run once, keep when lower; the record
    moves to each kept run (its one run stays the bar)."""
    from roles.proposers_space import Space

    base, validate = _base(), _validator()
    surface = Surface(cond.surface, base)
    runner = SurfaceRunner(surface, TRACK, cond.noise, cond.crash, salt=cond.rep)
    rng = random.Random(cond.rep)
    record, bar = base, runner.draw(base, 0)
    kept = harmful = 0
    curve = {}
    for i in range(1, cond.runs + 1):
        space = Space(record)
        full = _ask_valid(space, lambda s: s.sample(lambda n, d: _random_value(rng, d)), validate)
        knobs = [k for k in full if full[k] != record.get(k)]
        moved = {k: full[k] for k in rng.sample(knobs, min(len(knobs), rng.randint(1, 3)))}
        config = {**record, **moved}
        if validate(config) is not None:
            config = full
        value = runner.draw(config, i)
        runner.runs += 1
        if value is not None and (bar is None or value < bar):
            kept += 1
            harmful += surface.gain(config) <= surface.gain(record)
            record, bar = config, value
        if i in cond.checkpoints:
            curve[i] = surface.gain(record)
    return {"curve": curve, "final_gain": surface.gain(record), "runs": cond.runs,
            "first_verified_at": None, "verified": kept, "false_verified": harmful,
            "stalled": False}


def _random_value(rng: random.Random, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    import math
    if isinstance(dist, CategoricalDistribution):
        return rng.choice(list(dist.choices))
    if isinstance(dist, FloatDistribution):
        if dist.log:
            return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
        return rng.uniform(dist.low, dist.high)
    return rng.randint(dist.low, dist.high)


def run_arm(arm: str, cond: Cond) -> dict[str, Any]:
    """One arm on one condition."""
    if arm == "swarm":
        return swarm_arm(cond)
    if arm == "rsm_gated":                 # it passes until the track has outcomes: random
        return swarm_arm(cond, ("rsm", "random"))      # search, the floor, makes them
    if arm in ("tpe_gated", "random_gated", "gp_gated"):
        return swarm_arm(cond, (arm.split("_")[0],))
    if arm in ("tpe", "random"):
        return ungated_arm(cond, arm)
    if arm == "greedy":
        return greedy_arm(cond)
    raise ValueError(f"unknown arm {arm!r} ({', '.join(ARMS)})")


# ---- gate mode: candidates with known effects through the same roles ------------------------

class TableSurface:
    """Known effects per lr value (the candidates' id), in noise sds; the base lr has none."""

    def __init__(self, base: dict[str, Any], effects: dict[float, float]) -> None:
        self.base, self.effects = base, effects

    def loss(self, config: Any) -> float:
        return self.effects.get(config["lr"], 0.0)


class Candidates:
    """Proposes the candidates in order, each as {lr: its id}; remembers the best at the time."""

    def __init__(self, lrs: list[float]) -> None:
        self.lrs: Iterator[float] = iter(lrs)
        self.proposed: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def propose(self, ctx: Any) -> Any:
        from roles import evidence
        from roles.base import Proposal
        lr = next(self.lrs, None)
        if lr is None:
            return None
        best = evidence.best_config(ctx)
        self.proposed.append(({**best, "lr": lr}, best))
        return Proposal({"lr": lr}, "candidates: gate benchmark", "strategy")


def _effects(rng: random.Random, n: int, null_share: float, effect: float) -> dict[float, float]:
    out = {}
    for i in range(n):
        u = rng.random()
        out[round(0.003 * (1.001 + i * 1e-3), 9)] = (
            0.0 if u < null_share else (effect if u < (1 + null_share) / 2 else -effect))
    return out


def gate_arm(cond: Cond, candidates: int, null_share: float, effect: float) -> dict[str, Any]:
    """The real roles over known candidates: false verified findings and power at `effect` sds."""
    base = _base()
    table = _effects(random.Random(cond.rep), candidates, null_share, effect)
    surface = TableSurface(base, table)
    runner = SurfaceRunner(surface, TRACK, cond.noise, cond.crash, salt=cond.rep)  # type: ignore[arg-type]
    proposer = Candidates(list(table))
    with Store(":memory:") as store:
        clock = SimClock()
        workers = _workers(store, cond, runner, (), clock, proposer)
        idle = 0
        while idle < STALL_STEPS:
            for worker in workers:
                before = runner.runs
                clock.step()
                worker.step()
                idle = 0 if runner.runs > before else idle + 1
        ctx = workers[0].ctx
        verified = {c for _, c in verified_claims(ctx)}
        configs = _configs(ctx)
        rel = [surface.loss(configs[c]) - surface.loss(configs[b])
               for b, c in verified_claims(ctx) if b in configs and c in configs]
    real = [config_hash(c) for c, b in proposer.proposed
            if surface.loss(c) - surface.loss(b) <= -effect + 1e-9]
    return {"verified": len(rel), "false_verified": sum(r >= 0 for r in rel),
            "real": len(real), "real_verified": sum(h in verified for h in real),
            "runs": runner.runs, "greedy": _greedy_gate(cond, table)}


def _greedy_gate(cond: Cond, table: dict[float, float]) -> dict[str, int]:
    base = _base()
    runner = SurfaceRunner(TableSurface(base, table), TRACK, cond.noise, cond.crash,  # type: ignore[arg-type]
                           salt=cond.rep + 7)
    record, bar = 0.0, runner.draw(base, 0)
    kept = false = real = real_kept = 0
    for i, (lr, eff) in enumerate(table.items(), start=1):
        rel = eff - record
        real += rel < 0
        value = runner.draw({**base, "lr": lr}, i)
        if value is not None and (bar is None or value < bar):
            kept += 1
            false += rel >= 0
            real_kept += rel < 0
            record, bar = eff, value
    return {"kept": kept, "false_kept": false, "real": real, "real_kept": real_kept}


# ---- the command -----------------------------------------------------------------------------

def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(arm: str, results: list[dict[str, Any]], checkpoints: tuple[int, ...]) -> dict[str, Any]:
    """Medians over repetitions for one arm and condition."""
    verified = sum(r["verified"] or 0 for r in results)
    false = sum(r["false_verified"] or 0 for r in results)
    return {"arm": arm, "reps": len(results),
            **{f"gain@{cp}": _median([r["curve"].get(cp) for r in results]) for cp in checkpoints},
            "final_gain": _median([r["final_gain"] for r in results]),
            "first_verified_at": _median([r["first_verified_at"] for r in results]),
            "verified": verified, "false_share": false / verified if verified else None,
            "stalled": sum(bool(r["stalled"]) for r in results),
            "max_idle": max((r.get("max_idle") or 0 for r in results), default=0)}


def _rep(arm: str, cond: Cond, partial: str | None) -> dict[str, Any]:
    """One repetition, announced on stderr when it starts and ends (a run of the whole command
    takes hours: its table comes only at the end), its result appended to `partial`."""
    where = f"{arm} {cond.surface} {cond.noise} crash {cond.crash:g} rep {cond.rep}"
    typer.echo(f"[{time.strftime('%H:%M:%S')}] {where}: started", err=True)
    started = time.monotonic()
    result = run_arm(arm, cond)
    seconds = time.monotonic() - started
    typer.echo(f"[{time.strftime('%H:%M:%S')}] {where}: done in {seconds:.0f} s, gain "
               f"{_fmt(result['final_gain'])}, first verified at "
               f"{_fmt(result['first_verified_at'])}, verified {result['verified']} "
               f"(false {result['false_verified']})", err=True)
    if partial:
        line = {"arm": arm, "surface": cond.surface, "noise": cond.noise, "crash": cond.crash,
                "nodes": cond.nodes, "runs_asked": cond.runs, "rep": cond.rep,
                "seconds": round(seconds, 1), **result}
        with open(partial, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")
    return result


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def bench(
    mode: str = typer.Option("search", help="search (arms over surfaces), gate (known effects "
                             "through the roles) or sim (the gate's rules alone, many draws)."),
    surfaces: list[str] = typer.Option(["separable"], "--surface", help="separable, "
                                       "interactions, rugged (repeatable)."),
    noises: list[str] = typer.Option(["normal"], "--noise", help="normal, t3, hetero "
                                     "(candidates with 2x noise) (repeatable)."),
    arms: list[str] = typer.Option(["swarm", "tpe_gated", "tpe", "random", "greedy"], "--arm",
                                   help=f"Arms to run ({', '.join(ARMS)})."),
    crash: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of runs that crash."),
    runs: int = typer.Option(500, help="Runs per arm and repetition (search mode)."),
    reps: int = typer.Option(5, help="Repetitions per condition."),
    nodes: int = typer.Option(3, help="Nodes working on one store (swarm arms)."),
    candidates: int = typer.Option(40, help="Candidates per repetition (gate mode)."),
    null_share: float = typer.Option(0.8, min=0.0, max=1.0, help="Share of candidates without effect (gate mode)."),
    effect: float = typer.Option(2.0, min=-MAX_EFFECT_SD, max=MAX_EFFECT_SD, help="Effect of the others in noise sds (gate mode)."),
    min_baseline: int = typer.Option(stats.GateParams.min_baseline, help="Baseline seeds."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable JSON."),
    partial: str | None = typer.Option(None, "--partial", help="Append each repetition's "
                                       "result to this file as a JSON line as it finishes."),
) -> None:
    """Compare the swarm's search and gate with TPE, random search and the greedy rule."""
    bad = ([s for s in surfaces if s not in SURFACES] + [n for n in noises if n not in NOISES]
           + [a for a in arms if a not in ARMS])
    top = 1.0 if mode == "sim" else 0.999999           # a global null: in the simulation only
    if bad or mode not in ("search", "gate", "sim") or not 0 <= crash < 1 or not 0 <= null_share <= top \
            or runs < 1 or reps < 1 or nodes < 1 or candidates < 1 or min_baseline < 2:
        raise typer.BadParameter(f"bad option value(s): {bad or 'ranges'}")
    check_out_file(Path(partial) if partial else None, "--partial")
    params = stats.GateParams(min_baseline=min_baseline)
    if mode == "sim":
        return _sim_report(noises, effect, candidates, reps, null_share, crash, params, nodes,
                           json_out)
    if mode == "gate":
        return _gate_report(noises, crash, reps, nodes, candidates, null_share, effect, params,
                            json_out)
    cps = tuple(cp for cp in (200, 500, 1000, 2000) if cp <= runs) or (runs,)
    rows = []
    for surface in surfaces:
        for noise in noises:
            for arm in arms:
                results = [_rep(arm, Cond(surface, noise, crash, nodes, runs, rep, cps, params),
                                partial) for rep in range(reps)]
                rows.append({"surface": surface, "noise": noise, "crash": crash,
                             **summarize(arm, results, cps)})
    if json_out:
        return print_json({"runs": runs, "reps": reps, "nodes": nodes, "results": rows})
    console.print(f"{runs} runs x {reps} reps, {nodes} nodes, crash {crash:.0%}; gain in noise "
                  "sds of the best verified config (optimum 5.5); medians over reps")
    cols = ["surface", "noise", "arm", *[f"gain@{cp}" for cp in cps], "1st verified",
            "verified", "false", "stalled", "idle"]
    print_table("search", cols, [(r["surface"], r["noise"], r["arm"],
                                  *[_fmt(r[f"gain@{cp}"]) for cp in cps],
                                  _fmt(r["first_verified_at"]), r["verified"],
                                  _fmt(r["false_share"]),
                                  "yes" if r["stalled"] else "no", r["max_idle"]) for r in rows])


def _gate_report(noises: list[str], crash: float, reps: int, nodes: int, candidates: int,
                 null_share: float, effect: float, params: stats.GateParams,
                 json_out: bool) -> None:
    rows = []
    for noise in noises:
        results = [gate_arm(Cond(noise=noise, crash=crash, nodes=nodes, rep=rep, params=params),
                            candidates, null_share, effect) for rep in range(reps)]
        sw = {k: sum(r[k] for r in results) for k in ("verified", "false_verified", "real",
                                                      "real_verified", "runs")}
        gr = {k: sum(r["greedy"][k] for r in results) for k in ("kept", "false_kept", "real",
                                                                 "real_kept")}
        rows.append({"noise": noise, "crash": crash, "effect_sd": effect, "rule": "swarm",
                     "false_share": sw["false_verified"] / sw["verified"] if sw["verified"] else 0.0,
                     "power": sw["real_verified"] / sw["real"] if sw["real"] else None,
                     "accepted": sw["verified"], "runs": sw["runs"]})
        rows.append({"noise": noise, "crash": crash, "effect_sd": effect, "rule": "greedy",
                     "false_share": gr["false_kept"] / gr["kept"] if gr["kept"] else 0.0,
                     "power": gr["real_kept"] / gr["real"] if gr["real"] else None,
                     "accepted": gr["kept"], "runs": reps * (candidates + 1)})
    if json_out:
        return print_json({"params": asdict(params), "null_share": null_share,
                           "candidates": candidates * reps, "results": rows})
    console.print(f"{candidates} candidates x {reps} reps per noise, {null_share:.0%} without "
                  f"effect, others +-{effect} sd, crash {crash:.0%}, {nodes} nodes")
    print_table("gate vs greedy", ["noise", "rule", "false accepts", "power", "accepted", "runs"],
                [(r["noise"], r["rule"], f"{r['false_share']:.1%}", _fmt(r["power"]),
                  r["accepted"], r["runs"]) for r in rows])


def _sim_report(noises: list[str], effect: float, candidates: int, reps: int, null_share: float,
                crash: float, params: stats.GateParams, nodes: int, json_out: bool) -> None:
    from swarm.bench.search_sim import family

    rows = []
    for noise in noises:
        scale = 2.0 if noise == "hetero" else 1.0      # t3 is not simulated here: normal draws
        res = family(candidates, reps, null_share, effect, scale, crash, params,
                     max(1, nodes - 1), seed=len(rows))
        fdr_supported, fdr_verified = res.fdr()
        rows.append({"noise": noise, "effect_sd": effect, "null_share": null_share,
                     "crash": crash, "tracks": reps, "candidates": candidates,
                     "real": res.real.draws, "power": res.real.rate(),
                     "null": res.null.draws, "null_supported": res.null.supported,
                     "null_verified": res.null.verified,
                     "fdr_supported": fdr_supported, "fdr_verified": fdr_verified,
                     "runs_per_real": res.real.runs / max(1, res.real.draws),
                     "runs_per_null": res.null.runs / max(1, res.null.draws),
                     "lost_real": res.real.lost})
    if json_out:
        return print_json({"params": asdict(params), "results": rows})
    console.print(f"the gate's rules alone (memory/stats.py): {reps} tracks x {candidates} "
                  f"candidates, {null_share:.0%} without effect, the others {effect} sd better, "
                  f"crash {crash:.0%}; FDR = mean false share per track")
    print_table("gate rules", ["noise", "power", "FDR supported", "FDR verified",
                               "nulls verified", "runs/real", "runs/null"],
                [(r["noise"], _fmt(r["power"]), f"{r['fdr_supported']:.2%}",
                  f"{r['fdr_verified']:.2%}", f"{r['null_verified']}/{r['null']}",
                  f"{r['runs_per_real']:.1f}", f"{r['runs_per_null']:.1f}") for r in rows])


def gate_bench(
    noises: list[str] = typer.Option(["normal"], "--noise", help="normal, t3, hetero."),
    crash: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of runs that crash."),
    reps: int = typer.Option(5, help="Repetitions."),
    nodes: int = typer.Option(2, help="Nodes working on one store."),
    candidates: int = typer.Option(40, help="Candidates per repetition."),
    null_share: float = typer.Option(0.8, min=0.0, max=1.0, help="Share of candidates without effect."),
    effect: float = typer.Option(2.0, min=-MAX_EFFECT_SD, max=MAX_EFFECT_SD, help="Effect of the others in noise sds."),
    min_baseline: int = typer.Option(stats.GateParams.min_baseline, help="Baseline seeds."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable JSON."),
) -> None:
    """`swarm bench search --mode gate`: the gate on known candidates against the greedy rule."""
    if not 0 <= null_share < 1 or not 0 <= crash < 1 or reps < 1 or candidates < 1 \
            or min_baseline < 2 or any(n not in NOISES for n in noises):
        raise typer.BadParameter("need 0 <= null-share < 1, 0 <= crash < 1, reps >= 1, "
                                 "candidates >= 1, min-baseline >= 2, noise in " + ", ".join(NOISES))
    _gate_report(noises, crash, reps, nodes, candidates, null_share, effect,
                 stats.GateParams(min_baseline=min_baseline), json_out)
