"""Shared test helpers: one valid body of every kind, and signing of arbitrary (even invalid) envelopes."""
from __future__ import annotations

from typing import Any

from memory import canonical, codec, records as R, synthetic
from memory.crypto import Keypair

TRACK = "test-track"
BASE = {"depth": 3, "lr": 0.003}
CANDIDATE = {"depth": 4, "lr": 0.003}
ZERO_ID = "0" * 64


def bodies(claim_id: str = ZERO_ID, run_id: str = ZERO_ID) -> dict[str, R.Body]:
    """One valid body per kind."""
    hw = synthetic.HARDWARE
    return {
        "node": R.NodeBody(name="n1", hardware=hw, software={"swarm": "0.1.0"},
                           addrs=["/ip4/127.0.0.1/tcp/4001"], capabilities=["tinystories-cpu"]),
        "role": R.RoleBody(role="verifier", reason="2 unverified claims", scores={"verifier": 2.0}),
        "hypothesis": R.HypothesisBody(track=TRACK, diff={"depth": 4}, rationale="deeper",
                                       source="strategy"),
        "claim_lease": R.ClaimLeaseBody(track=TRACK, work="experiment",
                                        config_hash=canonical.config_hash(CANDIDATE), target=None,
                                        expires_ts=codec.now_ms() + 60_000),
        "run": synthetic.run_body(TRACK, BASE, seed=1, val_bpb=1.25, extras=True),
        "claim": R.ClaimBody(track=TRACK, baseline_hash=canonical.config_hash(BASE),
                             candidate_hash=canonical.config_hash(CANDIDATE), diff={"depth": 4},
                             baseline_runs=[run_id], candidate_runs=[run_id], effect=-0.01,
                             summary="depth 4 helps"),
        "verification": R.VerificationBody(claim=claim_id, outcome="confirmed", replay_run=run_id,
                                           replay_match=True, runs=[run_id], effect=-0.009,
                                           reason="replay matched; fresh seeds agree"),
        "assessment": R.AssessmentBody(claim=claim_id, verdict="supported", test="welch",
                                       p_value=0.001, q_value=0.004, effect=-0.01,
                                       noise_floor=0.002, n=3, reason="p < q"),
        "finding": R.FindingBody(track=TRACK, title="depth helps", text="Depth 4 beats 3.",
                                 effects=[R.KnobEffect(knob="depth", value=4, effect=-0.01,
                                                       stderr=0.002, n=6)], refs=[claim_id]),
        "noise_floor": R.NoiseFloorBody(track=TRACK, config_hash=canonical.config_hash(BASE), n=5,
                                        mean=1.25, std=0.002, runs=[run_id]),
        "judgement": R.JudgementBody(run=run_id, judge="claude-test", rubric="stories-v1",
                                     scores={"coherence": 3.0, "grammar": 4.0, "on_story": 3.0},
                                     reason="simple but coherent"),
    }


def envelope(keypair: Keypair, kind: str, seq: int, body: Any, ts: int | None = None,
             v: int = R.SCHEMA_VERSION) -> dict[str, Any]:
    """An envelope dict (not validated)."""
    if isinstance(body, R.Body):
        body = body.model_dump(mode="python")
    return {"v": v, "kind": kind, "author": keypair.peer_id, "seq": seq,
            "ts": codec.now_ms() if ts is None else ts, "body": body}


def sign_raw(keypair: Keypair, env: dict[str, Any]) -> bytes:
    """Sign an arbitrary envelope correctly, so only its content can be wrong."""
    payload = canonical.pack(env)
    return canonical.pack([payload, keypair.sign(payload)])


def run(keypair: Keypair, seq: int, config: dict[str, Any], seed: int, bpb: float | None,
        status: str = "ok", ts: int | None = None, extras: bool = False) -> R.Record:
    """A signed run record (`extras`: with a curve, a sample and quality measures)."""
    body = synthetic.run_body(TRACK, config, seed, bpb, status, extras=extras)
    return codec.sign(keypair, "run", seq, body, ts=ts)
