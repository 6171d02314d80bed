"""Helpers for the trust tests: honest nodes on the simulated track with a real budget, and
hostile keys that sign whatever they like (real signatures, real store)."""
from __future__ import annotations

import os
from typing import Any

from memory import canonical, codec, records as R, synthetic
from memory.crypto import Keypair
from memory.store import Store
from roles import evidence
from roles.context import Context
from roles.experimenter import Experimenter
from roles.verifier import Verifier
from roles.base import Proposal
from node.harness.config import Config
from tests.roles.simulated import BASE as SIM_BASE, SD, TRACK, SimRunner, context

# With a budget the node checks that a config is spelled as the harness writes it: in full.
BASE: dict[str, Any] = {**Config().model_dump(), **SIM_BASE}
BUDGET = 1_024_000            # 1000 whole steps of 8 x 128 tokens (the harness defaults)
STEPS = 1000


class Runner(SimRunner):
    """SimRunner whose metrics are what the harness would report for BUDGET, and which, as the
    harness does, trains a config whose `decay_frac` changed under a schedule other than wsd
    exactly as the config itself (the harness reads `decay_frac` for wsd only: another config
    hash, bit-identical weights; likewise attn_window, attn_pattern "LL" for "L", muon_lr,
    ngram_weight where unused, measured in the trust audit of 2026-12-02)."""

    def noise(self, config: Any, seed: int) -> float:
        if config.get("schedule") != "wsd" and "decay_frac" in config:
            config = {**config, "decay_frac": BASE["decay_frac"]}
        return super().noise(config, seed)

    def __call__(self, config: Any, seed: int, purpose: str, ref: str | None) -> R.RunBody:
        body = super().__call__(config, seed, purpose, ref)
        return body.model_copy(update={"metrics": body.metrics.model_copy(
            update={"tokens": BUDGET, "steps": STEPS})})


class Fixed:
    """A proposer of one diff."""

    def __init__(self, diff: dict[str, Any]) -> None:
        self.diff = diff

    def propose(self, ctx: Any) -> Proposal:
        return Proposal(self.diff, "test", "human")


def node(store: Store, key: Keypair, runner: SimRunner | None, seed: int = 0, **kw: Any) -> Context:
    """An honest node's role context with the track's budget known."""
    return context(store, key, runner, seed, budget_tokens=BUDGET, base_config=dict(BASE), **kw)


def baseline_ready(ctx: Context) -> None:
    """Run baseline seeds until the gate's minimum."""
    exp = Experimenter(Fixed({"lr": 0.006}))
    while len(evidence.baseline(ctx).values) < ctx.params.min_baseline:
        exp._top_up(ctx, evidence.baseline(ctx))       # baseline only (screening starts earlier)


def hostile(n: int) -> list[Keypair]:
    """`n` fresh keys (free: that is the point)."""
    return [Keypair(os.urandom(32)) for _ in range(n)]


def sign(store: Store, key: Keypair, kind: str, body: R.Body, ts: int | None = None) -> R.Record:
    """Sign `body` as `key`'s next record and add it to `store`."""
    record = codec.sign(key, kind, store.next_seq(key.peer_id), body, ts=ts)
    report = store.add([record])
    assert not report.rejected, report.rejected
    return record


def sign_many(store: Store, items: list[tuple[Keypair, str, R.Body]]) -> list[R.Record]:
    """Sign many bodies (each as its key's next record) and add them in one batch."""
    seqs: dict[str, int] = {}
    records = []
    for key, kind, body in items:
        seq = seqs.get(key.peer_id) or store.next_seq(key.peer_id)
        seqs[key.peer_id] = seq + 1
        records.append(codec.sign(key, kind, seq, body))
    report = store.add(records)
    assert not report.rejected, report.rejected
    return records


class EarnedWorld:
    """The trust audit's world (scripts/audit_earned_key.py): an honest node `h` (a root) with
    its baseline; an honest newcomer `n` with 4 runs of a better config, vouched for by `h`'s spot
    check; a hostile key `s` trusted (0.5) for one real baseline run `h` matched bit for bit."""

    def __init__(self, store: Store, keys: list[Keypair]) -> None:
        self.store, self.runner = store, Runner({("lr", 0.006): -5 * SD})
        self.better = {**BASE, "lr": 0.006}
        self.h, self.n = node(store, keys[0], self.runner, 1), node(store, keys[1], self.runner, 2)
        baseline_ready(self.h)
        self.nruns = [self.n.publish("run", self.runner(self.better, s, "baseline", None)).id
                      for s in range(4)]
        self.s = hostile(1)[0]
        node(store, self.s, self.runner, 3).publish("run", self.runner(BASE, 777, "baseline", None))
        for seed in range(200, 214):    # runs of h enough for its replay share to allow these
            self.h.publish("run", self.runner(BASE, seed, "baseline", None))
        for _ in range(6):
            Verifier().work(self.h)

    def mint(self, seed: int) -> Keypair:
        """A free key vouched for by `s`: an exact "replay" of a fabricated run of it."""
        key = hostile(1)[0]
        fake = sign(self.store, key, "run", run_body(BASE, seed, 1.02, "baseline"))
        sign(self.store, self.s, "run", run_body(BASE, seed, 1.02, "replay", fake.id))
        return key

    def by_h(self) -> set[str]:
        """The runs `h` replayed."""
        return {r.target for r in evidence.verdicts_of(self.h).trust.replays
                if r.replayer == self.h.me}

    def newcomer_run(self, replayed_by_h: bool) -> str:
        """One of `n`'s runs that `h` replayed (or did not)."""
        return next(i for i in sorted(self.nruns) if (i in self.by_h()) == replayed_by_h)

    def poison(self, value: float, device_name: str | None = None, n: int = 40,
               gpu: bool = False) -> None:
        """`s` signs `n` baseline runs of the base config at `value` (the truth is 1.0), trained
        nowhere; under `device_name` when given (another CPU model than this node's), or named
        as run on a GPU (`on_gpu`) when `gpu`."""
        for seed in range(9000, 9000 + n):
            body = run_body(BASE, seed, value, "baseline")
            body = other_cpu(body, device_name) if device_name else body
            sign(self.store, self.s, "run", on_gpu(body) if gpu else body)

    def claim(self, config: dict[str, Any], seeds: int = 6, cite: list[str] = ()) -> str:
        """`n` runs `seeds` fresh seeds of `config` and claims it beats `h`'s baseline, citing
        `cite` (runs of `config` it holds) and them: the claim's id."""
        ids = list(cite) + [self.n.publish("run", self.runner(config, s, "confirm", None)).id
                            for s in range(10, 10 + seeds)]
        base = evidence.baseline(self.h)
        diff = {k: v for k, v in config.items() if BASE.get(k) != v}
        return self.n.publish("claim", claim_body(base.hash, config, diff, base.run_ids, ids)).id

    def contradict(self, key: Keypair, run_id: str, off: float = 0.05) -> R.Record:
        """`key` "replays" `n`'s run `run_id` on `n`'s hardware, `off` worse: a contradiction."""
        seed = self.store.query("SELECT seed FROM runs WHERE id = ?", [run_id]).rows[0][0]
        value = self.runner(self.better, seed, "manual", None).metrics.val_bpb
        return sign(self.store, key, "run", run_body(self.better, seed, value + off, "replay",
                                                     run_id))


def run_body(config: dict[str, Any], seed: int, bpb: float | None, purpose: str = "confirm",
             ref: str | None = None, status: str = "ok", **metrics: Any) -> R.RunBody:
    """A run body on the simulated track with harness-consistent metrics unless overridden."""
    body = synthetic.run_body(TRACK, dict(config), seed, bpb, status=status, purpose=purpose, ref=ref)
    update = {"tokens": BUDGET, "steps": STEPS, **metrics}
    return body.model_copy(update={"metrics": body.metrics.model_copy(update=update)})


def other_cpu(body: R.RunBody, device_name: str = "another cpu") -> R.RunBody:
    """`body` as run on another CPU model than the simulated nodes' (`synthetic.HARDWARE`): what a
    replay on this node's hardware can only compare across hardware."""
    return body.model_copy(update={"hardware": body.hardware.model_copy(
        update={"device_name": device_name})})


def on_gpu(body: R.RunBody) -> R.RunBody:
    """`body` named as run on another accelerator kind than the simulated nodes' CPU: `cuda`,
    "NVIDIA H200" (no replay on their hardware compares with it: roles/trust.py `judge`)."""
    return body.model_copy(update={"hardware": body.hardware.model_copy(
        update={"accelerator": "cuda", "device_name": "NVIDIA H200"})})


def claim_body(base_hash: str, config: dict[str, Any], diff: dict[str, Any], base_ids: list[str],
               ids: list[str], effect: float = -0.01) -> R.ClaimBody:
    """A claim that `config` beats the baseline."""
    return R.ClaimBody(track=TRACK, baseline_hash=base_hash, candidate_hash=canonical.config_hash(config),
                       diff=diff, baseline_runs=base_ids[-512:], candidate_runs=ids, effect=effect,
                       summary="claimed")


def fabricated_claim(store: Store, claimant: Keypair, verifier: Keypair, ctx: Context,
                     config: dict[str, Any], value: float = 0.90) -> str:
    """`claimant` claims `config` (a diff from BASE) over `ctx`'s baseline with 6 runs at `value`
    it never trained; `verifier` signs 3 fresh "verify" seeds at the same value. The claim's id."""
    base = evidence.baseline(ctx)
    ids = [sign(store, claimant, "run", run_body(config, n, value)).id for n in range(6)]
    diff = {k: v for k, v in config.items() if BASE.get(k) != v}
    claim = sign(store, claimant, "claim", claim_body(base.hash, config, diff, base.run_ids, ids,
                                                      effect=-0.1)).id
    for n in range(3):
        sign(store, verifier, "run", run_body(config, 100 + n, value, "verify", claim))
    return claim


__all__ = ["BASE", "SD", "TRACK", "BUDGET", "Runner", "Fixed", "node", "baseline_ready", "hostile",
           "sign", "sign_many", "run_body", "other_cpu", "claim_body", "fabricated_claim",
           "EarnedWorld"]
