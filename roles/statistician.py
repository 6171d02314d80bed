"""Statistician: publish the track's noise floor and assess claims.

The statistics are this node's own (roles/verdicts.py): a claim's candidate evidence is its listed
runs minus any screening run (selected, so biased) and any run that does not count here; its
baseline evidence is every unselected trusted run of the baseline config in the memory made
before the claim (the claimant cannot pick a flattering subset). LOND over the family of every
candidate trusted authors screened controls the false-discovery rate, claim by claim in (ts, id)
order, so a verdict does not change as later screens and claims arrive. The published
assessment is advice to others: every node re-derives it.
"""
from __future__ import annotations

import logging
import math

from memory import records as R
from roles import evidence, evidence_sql, leases, verdicts
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
        # the newest trusted floor, chosen in SQL: a window of newest floors filtered afterwards
        # was filled by free keys' floors stamped ahead, and every step published the floor again
        trusted = list(evidence.verdicts_of(ctx).trusted_authors)
        rows = ctx.rows(f"SELECT config_hash, n FROM noise_floors WHERE track = ? AND "
                        f"{evidence_sql.AUTHOR_IN} ORDER BY ts DESC, id DESC LIMIT 1",
                        [ctx.track, trusted])
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

    @staticmethod
    def awaiting(ctx: Context) -> list[verdicts.ClaimView]:
        """Claims by trusted authors that this node can test and no trusted author has assessed
        (nor is assessing). Claims citing unknown runs await nothing anyone can do; claims by
        untrusted authors go to the verifiers' spot checks (a flood of them from free keys
        must not keep the statisticians busy)."""
        v = evidence.verdicts_of(ctx)
        assessed = {r["claim"] for r in ctx.rows(
            "SELECT a.claim, a.author FROM assessments a JOIN valid_claims c ON c.id = a.claim "
            "WHERE c.track = ?", [ctx.track]) if v.trust.trusted(r["author"])}
        return [c for c in v.claims if c.trusted and c.test is not None and c.verdict is not None
                and c.id not in assessed and not leases.held_by_other(ctx, "assess", target=c.id)]

    def _assess(self, ctx: Context) -> str | None:
        published = 0
        for claim in self.awaiting(ctx):
            (result, floor), verdict = claim.test, claim.verdict
            ctx.publish("assessment", R.AssessmentBody(
                claim=claim.id, verdict="supported" if verdict.supported else "not_supported",
                test=result.test, p_value=_finite(result.p), q_value=_finite(verdict.q),
                effect=_finite(result.effect), noise_floor=_finite(floor.std), n=result.n,
                reason=verdict.reason[:400]))
            published += 1
        return f"assessed {published} claim(s)" if published else None


def _finite(x: float | None) -> float | None:
    """A number a record can carry (records refuse inf and nan)."""
    return x if x is not None and math.isfinite(x) else None
