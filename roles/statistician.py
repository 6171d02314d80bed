"""Statistician: publish the track's noise floor and assess pending claims.

A claim's candidate evidence is its listed runs minus any screening run (selected, so biased);
its baseline evidence is every finished run of the baseline config in the memory (the claimant
cannot pick a flattering subset). All claims of the track are tested together so Benjamini-
Hochberg controls the false-discovery rate across them.
"""
from __future__ import annotations

import logging
from typing import Any

from memory import records as R, stats
from roles import evidence, leases, search_evidence
from roles.context import Context

log = logging.getLogger(__name__)


class Statistician:
    """Noise floors and assessments."""

    name = "statistician"

    def work(self, ctx: Context) -> str | None:
        """Publish a fresh noise floor and/or assess the pending claims."""
        done = [msg for msg in (self._noise_floor(ctx), self._assess(ctx)) if msg]
        return "; ".join(done) or None

    @staticmethod
    def floor_is_stale(ctx: Context) -> bool:
        """Is the published noise floor missing or behind the baseline's runs?"""
        base = evidence.baseline(ctx)
        if len(base.values) < 2:
            return False
        rows = ctx.rows("SELECT config_hash, n FROM noise_floor WHERE track = ?", [ctx.track])
        return not rows or (rows[0]["config_hash"], rows[0]["n"]) != (base.hash, len(base.values))

    def _noise_floor(self, ctx: Context) -> str | None:
        if not self.floor_is_stale(ctx):
            return None
        base = evidence.baseline(ctx)
        floor = base.floor()
        ctx.publish("noise_floor", R.NoiseFloorBody(
            track=ctx.track, config_hash=base.hash, n=floor.n, mean=floor.mean, std=floor.std,
            runs=base.run_ids[-512:]))
        return f"noise floor {floor.std:.3g} (n={floor.n})"

    def _assess(self, ctx: Context) -> str | None:
        pending = [c for c in evidence.claims(ctx, "pending")
                   if not leases.held_by_other(ctx, "assess", target=c["id"])]
        if not pending:
            return None
        tested = {c["id"]: t for c in evidence.claims(ctx) if (t := self._test(ctx, c)) is not None}
        family = list(tested)
        verdicts = dict(zip(family, stats.decide([tested[i][0] for i in family],
                                                 [tested[i][1].std for i in family], ctx.params,
                                                 family=search_evidence.screened_family(ctx))))
        published = 0
        for claim in pending:
            if claim["id"] not in tested:
                continue                   # its evidence has not reached this replica yet
            (result, floor), verdict = tested[claim["id"]], verdicts[claim["id"]]
            ctx.publish("assessment", R.AssessmentBody(
                claim=claim["id"], verdict="supported" if verdict.supported else "not_supported",
                test=result.test, p_value=result.p, q_value=verdict.q, effect=result.effect,
                noise_floor=floor.std, n=result.n, reason=verdict.reason[:400]))
            published += 1
        return f"assessed {published} claim(s)" if published else None

    @staticmethod
    def _test(ctx: Context, claim: dict[str, Any]) -> tuple[stats.TestResult, stats.NoiseFloor] | None:
        runs = evidence.runs_by_id(ctx, claim["candidate_runs"])
        if len(runs) < len(claim["candidate_runs"]):
            return None
        values = [r["val_bpb"] for r in runs
                  if r["status"] == "ok" and r["purpose"] != "screen" and r["val_bpb"] is not None
                  and r["config_hash"] == claim["candidate_hash"] and r["track"] == ctx.track]
        base = [r["val_bpb"] for r in evidence.ok_runs(ctx, claim["baseline_hash"])]
        if not values or len(base) < 2:
            return None
        return stats.claim_test(values, base, ctx.params), stats.noise_floor(base)
