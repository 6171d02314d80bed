"""`swarm bench trust`: honest nodes running the real roles against hostile keys, per attack.

A simulated swarm over a real store (one DuckDB file all nodes share: replication is assumed
perfect here; `swarm bench network` measures it). Honest nodes run the real loop (role choice, then
the role's `work`: experimenter with the offline strategy, statistician, verifier, meta-analyst);
training is replaced by a response surface (true knob effects + deterministic seed noise, metrics
as the harness reports them for the budget). Each honest node pins the first honest node (what
`swarm join --bootstrap` does on a first join). Between honest steps the hostile keys act:

- fabricate: a claim on six fake runs 25 noise sds better than the truth, a `supported`
  assessment and a `confirmed` verification (with fake fresh runs) by two other keys, and fake
  replays by which the keys vouch for each other;
- refute: for every honest claim, a contradicting replay, a refuting verification and a
  `not_supported` assessment;
- poison: baseline runs of the best config at a plausible but false value (25 sds worse);
- ghost: claims citing runs that do not exist, and leases until 2^53-1 on every honest claim.

Reported per scenario and number of hostile keys: false verified findings shown on honest nodes
(trusted, verified claims whose true effect is not an improvement, or by a hostile key), honest
verified findings lost (honest claims confirmed by honest fresh seeds that an honest node does not
show verified), the share of honest runs spent on replays, and the replays of a fabricator's runs
until an honest node distrusts it. Self-contained: `swarm bench search` simulates alike for its
own questions. Time is simulated (`SimClock`) and every draw seeded, so the same command and seed
give the same records (`memory_digest`) and figures on every run.
"""
from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from memory import canonical, codec, records as R, synthetic
from memory.crypto import Keypair
from memory.stats import GateParams
from memory.store import Store
from swarm.bench.simclock import SimClock, memory_digest
from swarm.output import fail, print_json, print_table

SD = 0.002
BUDGET = 1_024_000
SCENARIOS = ("fabricate", "refute", "poison", "ghost")
# True effects on val_bpb (in noise sds) of some knob settings over the harness's base config.
EFFECTS: dict[tuple[str, Any], float] = {
    ("lr", 0.006): -6.0, ("pos_encoding", "rope"): -4.0, ("activation", "swiglu"): -3.0,
    ("norm", "rmsnorm"): -2.0, ("n_layer", 4): 2.0, ("lr", 0.0015): 3.0}
PARAMS = GateParams(min_baseline=6, confirm_max=4, min_confirm=3, verify_seeds=3)


class SurfaceRunner:
    """val_bpb = 1 + true effects + seed noise; tokens and steps as the harness gives them."""

    def __init__(self) -> None:
        self.calls = 0

    @staticmethod
    def true_bpb(config: Mapping[str, Any]) -> float:
        """The noise-free val_bpb of a config."""
        return 1.0 + SD * sum(EFFECTS.get((k, v), 0.0) for k, v in config.items())

    def __call__(self, config: Mapping[str, Any], seed: int, purpose: str,
                 ref: str | None) -> R.RunBody:
        from node.harness.config import build_config

        self.calls += 1
        key = hashlib.blake2b(f"{canonical.config_hash(dict(config))}:{seed}".encode()).digest()
        value = round(self.true_bpb(config) + random.Random(key).gauss(0.0, SD), 6)
        per_step = build_config({}, dict(config)).tokens_per_step
        return _body(dict(config), seed, value, purpose, ref, steps=BUDGET // per_step,
                     per_step=per_step)


def _body(config: dict[str, Any], seed: int, value: float, purpose: str, ref: str | None,
          steps: int = 1000, per_step: int = 1024, track: str = "bench-trust") -> R.RunBody:
    body = synthetic.run_body(track, config, seed, value, purpose=purpose, ref=ref)
    return body.model_copy(update={"metrics": body.metrics.model_copy(
        update={"tokens": steps * per_step, "steps": steps})})


class Hostile:
    """Keys that sign whatever serves the scenario (real signatures, into the real store)."""

    def __init__(self, store: Store, n: int, scenario: str, seed: int, clock: SimClock) -> None:
        rng = random.Random(seed)
        self.store, self.scenario, self.rng, self.clock = store, scenario, rng, clock
        self.keys = [Keypair(rng.randbytes(32)) for _ in range(n)]
        self.seqs = {k.peer_id: 0 for k in self.keys}
        self.turn = 0
        self.fabricators: set[str] = set()
        self.refuted: set[str] = set()

    def _sign(self, key: Keypair, kind: str, body: R.Body) -> R.Record:
        self.seqs[key.peer_id] += 1
        return codec.sign(key, kind, self.seqs[key.peer_id], body, ts=self.clock.stamp())

    def _next(self) -> int:
        self.turn += 1
        return self.turn

    def _key(self) -> Keypair:
        return self.keys[self._next() % len(self.keys)]

    def act(self, base: dict[str, Any]) -> None:
        """One hostile turn of the scenario against the memory as it stands."""
        records = getattr(self, self.scenario)(base)
        if records:
            self.store.add(records)

    def fabricate(self, base: dict[str, Any]) -> list[R.Record]:
        a, b, c = (self.keys[i % len(self.keys)] for i in
                   (self.rng.randrange(len(self.keys)), self._next(), self._next()))
        self.fabricators.add(a.peer_id)
        diff = {"lr": round(self.rng.uniform(0.0031, 0.0059), 6)}
        config = {**base, **diff}
        fake = SurfaceRunner.true_bpb(config) - 25 * SD
        runs = [self._sign(a, "run", _body(config, self.rng.randrange(2**31), fake, "confirm",
                                           None)) for _ in range(6)]
        base_ids = _ids(self.store, "SELECT id FROM runs WHERE purpose = 'baseline' AND "
                        "config_hash = ? ORDER BY ts LIMIT 64", [canonical.config_hash(base)])
        claim = self._sign(a, "claim", R.ClaimBody(
            track="bench-trust", baseline_hash=canonical.config_hash(base),
            candidate_hash=canonical.config_hash(config), diff=diff, baseline_runs=base_ids,
            candidate_runs=[r.id for r in runs], effect=-25 * SD, summary="fabricated"))
        fresh = [self._sign(c, "run", _body(config, self.rng.randrange(2**31), fake, "verify",
                                            claim.id)) for _ in range(3)]
        vouch = [self._sign(k, "run", _body(config, r.body.seed, fake, "replay", r.id))
                 for k, r in ((b, runs[0]), (c, runs[1]))]
        return runs + [claim] + fresh + vouch + [
            self._sign(b, "assessment", R.AssessmentBody(
                claim=claim.id, verdict="supported", test="sequential", p_value=1e-9,
                q_value=1e-9, effect=-25 * SD, noise_floor=SD, n=6, reason="fabricated")),
            self._sign(c, "verification", R.VerificationBody(
                claim=claim.id, outcome="confirmed", replay_run=vouch[1].id, replay_match=True,
                runs=[r.id for r in fresh], effect=-25 * SD, reason="fabricated"))]

    def refute(self, base: dict[str, Any]) -> list[R.Record]:
        out = []
        for claim_id, run_id, config, seed in self.store.query(
                "SELECT c.id, r.id, r.config, r.seed FROM claims c JOIN runs r ON "
                "r.id = c.candidate_runs->>0 ORDER BY c.ts, c.id", []).rows:
            if claim_id in self.refuted or self.seqs.get(_author(self.store, claim_id)) is not None:
                continue
            self.refuted.add(claim_id)
            k = self._key()
            cfg = json.loads(config)
            bad = self._sign(k, "run", _body(cfg, seed, SurfaceRunner.true_bpb(cfg) + 25 * SD,
                                             "replay", run_id))
            out += [bad, self._sign(k, "verification", R.VerificationBody(
                claim=claim_id, outcome="refuted", replay_run=bad.id, replay_match=False, runs=[],
                effect=None, reason="does not reproduce")),
                self._sign(self._key(), "assessment", R.AssessmentBody(
                    claim=claim_id, verdict="not_supported", test="welch", p_value=0.9,
                    q_value=0.9, effect=0.0, noise_floor=SD, n=3, reason="no"))]
        return out

    def poison(self, base: dict[str, Any]) -> list[R.Record]:
        value = SurfaceRunner.true_bpb(base) + 25 * SD
        return [self._sign(self._key(), "run", _body(base, self.rng.randrange(2**31), value,
                                                     "baseline", None)) for _ in range(20)]

    def ghost(self, base: dict[str, Any]) -> list[R.Record]:
        out = [self._sign(self._key(), "claim", R.ClaimBody(
            track="bench-trust", baseline_hash=canonical.config_hash(base),
            candidate_hash=canonical.config_hash({**base, "lr": 0.001 * (i + 1)}),
            diff={"lr": 0.001 * (i + 1)}, baseline_runs=[self.rng.randbytes(32).hex()],
            candidate_runs=[self.rng.randbytes(32).hex()], effect=-0.01, summary="ghost"))
            for i in range(5)]
        for (claim_id,) in self.store.query("SELECT id FROM claims ORDER BY ts, id", []).rows:
            for work in ("assess", "verify"):
                out.append(self._sign(self._key(), "claim_lease", R.ClaimLeaseBody(
                    track="bench-trust", work=work, config_hash=None, target=claim_id,
                    expires_ts=2**53 - 1)))
        return out[:200]


def _ids(store: Store, sql: str, params: list[Any]) -> list[str]:
    return [r[0] for r in store.query(sql, params).rows]


def _author(store: Store, record_id: str) -> str | None:
    rows = store.query("SELECT author FROM records WHERE id = ?", [record_id]).rows
    return rows[0][0] if rows else None


def _honest_nodes(store: Store, n: int, seed: int, clock: SimClock) -> list[Any]:
    from roles.context import Context, StorePublisher
    from node.harness.config import Config

    keys = synthetic.keypairs(n, seed=1000 + seed)
    first = frozenset({keys[0].peer_id})
    runner = SurfaceRunner()
    return [Context(store=store, me=k.peer_id, publish=StorePublisher(store, k, clock.stamp),
                    track="bench-trust", base_config=Config().model_dump(), run=runner,
                    params=PARAMS, rng=random.Random(seed * 100 + i), clock=clock.seconds,
                    pinned=first - {k.peer_id},
                    budget_tokens=BUDGET) for i, k in enumerate(keys)]


def _step(ctx: Any) -> None:
    from roles import choice
    from roles.experimenter import Experimenter
    from roles.meta_analyst import MetaAnalyst
    from roles.statistician import Statistician
    from roles.strategy import Strategy
    from roles.verifier import Verifier

    roles = {"experimenter": Experimenter(Strategy()), "statistician": Statistician(),
             "verifier": Verifier(), "meta_analyst": MetaAnalyst()}
    picked = choice.choose(ctx).role
    ctx.count(f"role_{picked}")
    if roles[picked].work(ctx) is None and picked != "experimenter":
        roles["experimenter"].work(ctx)          # a node never idles while it can experiment


def simulate(scenario: str, keys: int, honest: int = 3, rounds: int = 12, seed: int = 0,
             folder: Path | None = None) -> dict[str, Any]:
    """One scenario; the figures of the module docstring, and `memory_digest`: a hash of every
    record id stored (the same command and seed give the same digest, or the run is not
    reproducible)."""
    from roles import evidence

    with tempfile.TemporaryDirectory(dir=folder) as tmp, Store(Path(tmp) / "m.duckdb") as store:
        clock = SimClock()
        nodes = _honest_nodes(store, honest, seed, clock)
        bad = Hostile(store, keys, scenario, seed, clock)
        t0 = time.perf_counter()
        first_distrust: dict[str, int] = {}
        for _ in range(rounds):
            for ctx in nodes:
                clock.step()
                _step(ctx)
                bad.act(evidence.best_config(nodes[0]))
                _note_distrust(store, nodes, bad, first_distrust)
        return {"scenario": scenario, "hostile_keys": keys, "honest_nodes": honest,
                **_figures(store, nodes, bad, first_distrust), "memory_digest": memory_digest(store),
                "seconds": round(time.perf_counter() - t0, 1)}


def _note_distrust(store: Store, nodes: list[Any], bad: Hostile, seen: dict[str, int]) -> None:
    from roles import evidence

    for author in bad.fabricators - set(seen):
        if any(evidence.verdicts_of(ctx).trust.distrusted(author) for ctx in nodes):
            seen[author] = store.query(
                "SELECT count(*) FROM runs r JOIN runs t ON t.id = r.ref WHERE r.purpose = "
                "'replay' AND t.author = ? AND r.author IN (SELECT unnest(?))",
                [author, [c.me for c in nodes]]).rows[0][0]


def _figures(store: Store, nodes: list[Any], bad: Hostile, distrusted: dict[str, int]) -> dict:
    from roles import evidence

    honest = {c.me for c in nodes}
    false_verified = lost = 0
    confirmed = _confirmed_by_honest(store, honest)
    for ctx in nodes:
        shown = {c["id"]: c for c in evidence.claims(ctx)}
        for c in shown.values():
            if c["trusted"] and c["status"] == "verified":
                cfg = evidence.verdicts_of(ctx).runs[c["candidate_runs"][0]]["config"]
                cfg = cfg if isinstance(cfg, dict) else json.loads(cfg)
                true_gain = SurfaceRunner.true_bpb(cfg) < SurfaceRunner.true_bpb(ctx.base_config)
                false_verified += int(c["author"] not in honest or not true_gain)
        lost += sum(1 for cid in confirmed if shown.get(cid, {}).get("status") != "verified")
    runs = store.query("SELECT purpose, count(*) FROM runs WHERE author IN (SELECT unnest(?)) "
                       "GROUP BY purpose", [sorted(honest)]).rows
    total = sum(n for _, n in runs)
    replays = sum(n for p, n in runs if p == "replay")
    spot = sum(c.counters.get("spot_checks", 0) for c in nodes)
    caught = sorted(distrusted.values())
    picks = {r: sum(c.counters.get(f"role_{r}", 0) for c in nodes)
             for r in ("experimenter", "statistician", "verifier", "meta_analyst")}
    return {"roles": picks,"false_verified": false_verified, "honest_verified_lost": lost,
            "honest_verified": len(confirmed), "honest_runs": total,
            "replay_share": round(replays / total, 4) if total else 0.0,
            "spot_check_share": round(spot / total, 4) if total else 0.0,
            "fabricators": len(bad.fabricators), "fabricators_distrusted": len(caught),
            "replays_to_distrust_max": caught[-1] if caught else None}


def _confirmed_by_honest(store: Store, honest: set[str]) -> list[str]:
    """Honest claims that honest verifiers confirmed (a `confirmed` verification)."""
    rows = store.query("SELECT DISTINCT v.claim FROM verifications v JOIN claims c ON "
                       "c.id = v.claim WHERE v.outcome = 'confirmed' AND v.author IN "
                       "(SELECT unnest(?)) AND c.author IN (SELECT unnest(?)) ORDER BY 1",
                       [sorted(honest), sorted(honest)]).rows
    return [r[0] for r in rows]


def bench(scenario: list[str] = typer.Option(list(SCENARIOS), "--scenario",
                                             help="Attack(s) to run (repeatable)."),
          keys: list[int] = typer.Option([1, 10, 1000], "--keys", help="Hostile keys (repeatable)."),
          honest: int = typer.Option(3, "--honest", min=1, help="Honest nodes."),
          rounds: int = typer.Option(12, "--rounds", min=1, help="Steps per honest node."),
          seed: int = typer.Option(0, "--seed", help="Random seed of the simulation."),
          json_out: bool = typer.Option(False, "--json", help="JSON instead of a table.")) -> None:
    """Honest nodes (the real roles) against hostile keys.

    Reports false verified findings (target 0), honest findings lost (0), replay share of runs
    (<= 10%), replays until a fabricator is distrusted (<= 3)."""
    unknown = sorted(set(scenario) - set(SCENARIOS))
    if unknown:
        fail(f"--scenario must be one of {', '.join(SCENARIOS)}, not {', '.join(unknown)}")
    if min(keys, default=1) < 1:
        fail("--keys must be at least 1")
    rows = [simulate(s, k, honest, rounds, seed) for s in scenario for k in keys]
    if json_out:
        return print_json(rows)
    print_table("bench trust (targets: false 0, lost 0, replays <= 10%, caught in <= 3)",
                ["attack", "keys", "false", "lost", "verified", "replays", "caught", "runs"],
                [(r["scenario"], r["hostile_keys"], r["false_verified"], r["honest_verified_lost"],
                  r["honest_verified"], f"{100 * r['replay_share']:.1f}%",
                  f"{r['fabricators_distrusted']}/{r['fabricators']}"
                  + (f" in {r['replays_to_distrust_max']}" if r["fabricators_distrusted"] else ""),
                  r["honest_runs"]) for r in rows])
