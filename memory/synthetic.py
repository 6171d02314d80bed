"""Realistic signed records made on demand, for tests, benchmarks and demos.

A synthetic swarm: a few authors running configs of one track with seed noise, some claims,
assessments and verifications. Deterministic for a given random seed (signatures included:
Ed25519 is deterministic), except timestamps, which callers may pin with `ts`.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

from memory import canonical, codec, records as R
from memory.crypto import Keypair

HARDWARE = R.Hardware(accelerator="cpu", device_name="synthetic cpu", cores=2, memory_gb=24.0,
                      platform="linux-x86_64")
SOFTWARE = {"python": "3.11", "torch": "2.13.0", "swarm": "0.1.0", "harness": "1",
            "code": "synthetic", "cpu": "DEFAULT", "precision": "fp32", "compile": "false"}


def keypairs(n: int, seed: int = 0) -> list[Keypair]:
    """`n` deterministic keypairs."""
    rng = random.Random(seed)
    return [Keypair(rng.randbytes(32)) for _ in range(n)]


def readable(val_bpb: float) -> dict:
    """A short loss curve, one sample and quality measures: what a v2 run adds for people."""
    curve = [R.CurvePoint(step=100 * i, train_loss=round(val_bpb * (0.7 + 2.0 / i), 6))
             for i in range(1, 9)]
    samples = [R.Sample(prompt="once upon a time", text=" there was a little dog named max.")]
    quality = {"repetition": 0.0, "distinct_1": 0.9, "distinct_2": 1.0, "ends_sentence": 1.0,
               "unknown_words": 0.0}
    return {"curve": curve, "samples": samples, "quality": quality}


def run_body(track: str, config: dict, seed: int, val_bpb: float | None,
             status: str = "ok", purpose: str = "manual", ref: str | None = None,
             extras: bool = False) -> R.RunBody:
    """A run body with plausible metrics around `val_bpb`; `extras` adds `readable`'s fields."""
    metrics = R.RunMetrics(
        val_bpb=val_bpb, train_loss=None if val_bpb is None else val_bpb * 0.7, tokens=1_000_000,
        steps=1000, wall_s=180.0, tokens_per_s=5555.5, mfu=0.05, peak_mem_mb=512.0, params=850_000)
    return R.RunBody(track=track, config=config, config_hash=canonical.config_hash(config),
                     seed=seed, status=status, metrics=metrics, hardware=HARDWARE,
                     software=SOFTWARE, purpose=purpose, ref=ref,
                     error=None if status == "ok" else "synthetic failure",
                     **(readable(val_bpb) if extras and val_bpb is not None else {}))


def run_config(c: int, configs: int) -> dict:
    """The `c`-th of `configs` distinct synthetic configs."""
    return {"depth": 2 + c % 4, "width": 64 * (1 + c % 3), "lr": round(0.001 * (1 + c % 7), 4),
            "activation": ["gelu", "relu2", "swiglu"][c % 3], "init_scale": round(0.5 + c / configs, 6)}


def true_bpb(c: int) -> float:
    """The synthetic config `c`'s true val_bpb (its runs scatter around it with sd 0.002)."""
    return 1.0 + 0.01 * ((c * 7919) % 23) / 23


def runs(authors: list[Keypair], n: int, track: str = "synthetic-track", configs: int = 50,
         seed: int = 0, ts: int | None = None) -> Iterator[R.Record]:
    """`n` signed run records spread over `authors` and `configs` configs, seq numbers in order."""
    rng = random.Random(seed)
    seqs = {a.peer_id: 0 for a in authors}
    # Timestamps count up to now (or to `ts`): never ahead of the clock, however many records.
    stamp = (codec.now_ms() if ts is None else ts) - n
    for i in range(n):
        author = authors[i % len(authors)]
        c = rng.randrange(configs)
        seqs[author.peer_id] += 1
        body = run_body(track, run_config(c, configs), seed=rng.randrange(2**31),
                        val_bpb=round(true_bpb(c) + rng.gauss(0, 0.002), 6))
        yield codec.sign(author, "run", seqs[author.peer_id], body, ts=stamp + i)


HISTORY_TRACK = "tinystories-cpu:" + "5" * 16
HISTORY_BASE = {"n_layer": 4, "n_embd": 128, "lr": 0.003, "init_scale": 1.0, "activation": "gelu"}
# (diff, true effect on val_bpb): one real improvement, one too small to confirm, the rest nothing
# or worse; as a swarm finds them.
HISTORY_TRIES = [({"init_scale": 2.0}, -0.08), ({"n_layer": 6}, -0.004), ({"lr": 0.01}, 0.05),
                 ({"activation": "swiglu"}, 0.0), ({"n_embd": 256}, 0.001), ({"lr": 0.001}, 0.03)]


class _Author:
    """One synthetic node: signs its records with increasing seqs and timestamps."""

    def __init__(self, keypair: Keypair) -> None:
        self.keypair, self.seq = keypair, 0

    def sign(self, kind: str, body: R.Body, ts: int) -> R.Record:
        self.seq += 1
        return codec.sign(self.keypair, kind, self.seq, body, ts=ts)


def history(nodes: int = 3, baseline: int = 16, seed: int = 0, end_ts: int | None = None,
            track: str = HISTORY_TRACK, confirms: int = 2) -> list[R.Record]:
    """A small swarm's history on one track, in time order: node and role records, a baseline of
    `baseline` seeds, screens of `HISTORY_TRIES`, confirmations, claims, assessments, independent
    verifications, a noise floor and a finding. One claim (`init_scale=2.0`) ends verified as the
    records testify; a node re-deriving it (roles/verdicts.py, which sets screens aside) needs
    `confirms` >= `GateParams.min_confirm` (6) confirmation runs to agree."""
    rng = random.Random(seed)
    people = [_Author(k) for k in keypairs(nodes, seed=seed + 100)]
    clock = [(codec.now_ms() if end_ts is None else end_ts) - 6 * 3_600_000]
    out: list[R.Record] = []

    def tick(ms: int = 240_000) -> int:
        clock[0] += rng.randrange(ms // 2, ms)
        return clock[0]

    def emit(who: _Author, kind: str, body: R.Body) -> R.Record:
        out.append(who.sign(kind, body, tick()))
        return out[-1]

    def trained(who: _Author, config: dict, mean: float, purpose: str, ref: str | None) -> R.Record:
        body = run_body(track, config, rng.randrange(2**31), round(mean + rng.gauss(0, 0.01), 6),
                        purpose=purpose, ref=ref)
        return emit(who, "run", body)

    for i, who in enumerate(people):
        emit(who, "node", R.NodeBody(name=f"node-{i}", hardware=HARDWARE, software=SOFTWARE,
                                     addrs=[f"/ip4/127.0.0.1/tcp/{7400 + i}"], capabilities=["gossip"]))
        emit(who, "role", R.RoleBody(role="experimenter", reason="baseline runs needed",
                                     scores={"experimenter": 1.0}))
    base_runs = [trained(people[i % nodes], HISTORY_BASE, 1.74, "baseline", None)
                 for i in range(baseline)]
    base_hash = canonical.config_hash(HISTORY_BASE)
    values = [r.body.metrics.val_bpb for r in base_runs]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    emit(people[-1], "noise_floor", R.NoiseFloorBody(track=track, config_hash=base_hash,
                                                     n=len(values), mean=round(mean, 6),
                                                     std=round(std, 6), runs=[r.id for r in base_runs]))
    effects = []
    for n, (diff, effect) in enumerate(HISTORY_TRIES):
        who = people[n % nodes]
        config = {**HISTORY_BASE, **diff}
        hyp = emit(who, "hypothesis", R.HypothesisBody(track=track, diff=diff, source="strategy",
                                                       rationale=f"try {diff}"))
        screen = [trained(who, config, 1.74 + effect, "screen", hyp.id) for _ in range(2)]
        effects.append(R.KnobEffect(knob=next(iter(diff)), value=next(iter(diff.values())),
                                    effect=effect, stderr=0.01, n=len(screen)))
        if effect > -0.003:
            continue                                    # a dead end: never promoted
        confirm = screen + [trained(who, config, 1.74 + effect, "confirm", hyp.id)
                            for _ in range(confirms)]
        _claim_round(emit, people, n, track, base_hash, config, diff, base_runs, confirm, effect,
                     lambda c: trained(people[(n + 2) % nodes], config, 1.74 + effect, "verify", c))
    emit(people[-1], "role", R.RoleBody(role="meta_analyst", reason="6 new outcomes",
                                        scores={"meta_analyst": 0.6}))
    emit(people[-1], "finding", R.FindingBody(
        track=track, title="init_scale=2.0 helps", text="init_scale=2.0 lowers val_bpb by about "
        "0.08 over the baseline (verified); depth=6 is within noise; lr=0.01 hurts.",
        effects=effects, refs=[]))
    return out


def _claim_round(emit, people, n, track, base_hash, config, diff, base_runs, confirm, effect,
                 replay) -> None:
    """A claim for `config`, the statistician's verdict and, when supported, a verification."""
    nodes = len(people)
    claim = emit(people[n % nodes], "claim", R.ClaimBody(
        track=track, baseline_hash=base_hash, candidate_hash=canonical.config_hash(config),
        diff=diff, baseline_runs=[r.id for r in base_runs], candidate_runs=[r.id for r in confirm],
        effect=effect, summary=f"{diff} beats the baseline"))
    supported = effect < -0.02
    emit(people[(n + 1) % nodes], "role", R.RoleBody(role="statistician", reason="1 pending claim",
                                                     scores={"statistician": 1.0}))
    emit(people[(n + 1) % nodes], "assessment", R.AssessmentBody(
        claim=claim.id, verdict="supported" if supported else "not_supported", test="welch",
        p_value=0.0004 if supported else 0.31, q_value=0.0012 if supported else 0.31,
        effect=effect, noise_floor=0.01, n=len(confirm),
        reason="p < q threshold" if supported else "within seed noise"))
    if not supported:
        return
    emit(people[(n + 2) % nodes], "role", R.RoleBody(role="verifier", reason="1 unverified claim",
                                                     scores={"verifier": 1.0}))
    runs = [replay(claim.id) for _ in range(2)]
    emit(people[(n + 2) % nodes], "verification", R.VerificationBody(
        claim=claim.id, outcome="confirmed", replay_run=runs[0].id, replay_match=True,
        runs=[r.id for r in runs], effect=effect, reason="replay matched; fresh seeds agree"))
