"""Verifier: re-run another peer's supported claim: replay one of its seeds, then fresh seeds.

The replay must land on the reported val_bpb (near-exact on the same CPU class, looser across
hardware). A replay that does not match refutes the claim, and the `suspect_authors` view then
names its author. Only verifications by someone other than the claim's author count (views.py).
"""
from __future__ import annotations

import logging
from typing import Any

from memory import records as R, stats
from roles import evidence, leases
from roles.context import Context

log = logging.getLogger(__name__)


def _hardware_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["accelerator"], row["device_name"], row["cores"]


class Verifier:
    """Independent re-runs of supported claims."""

    name = "verifier"

    @staticmethod
    def open_claims(ctx: Context) -> list[dict[str, Any]]:
        """Supported claims by others that this node has not verified and nobody else holds."""
        mine = {r["claim"] for r in ctx.rows("SELECT claim FROM verifications WHERE author = ?",
                                             [ctx.me])}
        return [c for c in evidence.claims(ctx, "supported")
                if c["author"] != ctx.me and c["id"] not in mine
                and not leases.held_by_other(ctx, "verify", target=c["id"])]

    def work(self, ctx: Context) -> str | None:
        """Verify the oldest open claim."""
        if ctx.run is None:
            return None
        for claim in self.open_claims(ctx):
            runs = [r for r in evidence.runs_by_id(ctx, claim["candidate_runs"]) if r["status"] == "ok"]
            if runs and leases.take(ctx, "verify", claim["candidate_hash"], claim["id"]):
                return self._verify(ctx, claim, runs)
        return None

    def _verify(self, ctx: Context, claim: dict[str, Any], runs: list[dict[str, Any]]) -> str:
        base = [r["val_bpb"] for r in evidence.ok_runs(ctx, claim["baseline_hash"])]
        floor_sd = stats.noise_floor(base).std if len(base) >= 2 else 0.0
        target = ctx.rng.choice(runs)
        config = evidence._config(target["config"])
        body = ctx.run(config, target["seed"], "replay", claim["id"])
        replay_id = ctx.publish("run", body).id
        match: bool | None = None
        if body.status == "ok":
            tol = stats.replay_tolerance(self._same_hardware(body, target), floor_sd)
            match = abs(body.metrics.val_bpb - target["val_bpb"]) <= tol
        fresh_ids, fresh = [], []
        if match is not False:           # a failed replay needs no fresh seeds to refute
            used = {r["seed"] for r in runs}
            for _ in range(ctx.params.verify_seeds):
                seed = ctx.rng.randrange(2**31)
                while seed in used:
                    seed = ctx.rng.randrange(2**31)
                run = ctx.run(config, seed, "verify", claim["id"])
                fresh_ids.append(ctx.publish("run", run).id)
                if run.status == "ok":
                    fresh.append(run.metrics.val_bpb)
        outcome, effect, reason = stats.verification_outcome(match, fresh, base, ctx.params)
        if match is False:
            reason = (f"replay of seed {target['seed']} gave {body.metrics.val_bpb:.6f}, "
                      f"claimed {target['val_bpb']:.6f}")
        ctx.publish("verification", R.VerificationBody(
            claim=claim["id"], outcome=outcome, replay_run=replay_id, replay_match=match,
            runs=fresh_ids, effect=effect, reason=reason[:400]))
        ctx.count(f"verified_{outcome}")
        return f"verification of {claim['id'][:8]}: {outcome} ({reason})"

    @staticmethod
    def _same_hardware(body: R.RunBody, target: dict[str, Any]) -> bool:
        hw = body.hardware
        return (hw.accelerator, hw.device_name, hw.cores) == _hardware_key(target)
