"""Experimenter: top up the baseline's seeds, then screen one hypothesis and confirm it sequentially.

Screening runs one seed, and another while the last lands in the gray zone around the baseline
mean (from 0.5 sd better to 1.5 sd worse: `stats.screen_again`, up to `screen_max`). Screening
starts once the baseline has `min_start` seeds; until it has `min_baseline`, every
experiment unit also adds one baseline seed (the test accounts for the baseline's few df).
Every run is published as it finishes (crashes too). A crashed confirmation run is replaced by
another seed, up to `stats.crashes_allowed` times (4, one more per 8 finished runs); crashed runs
stay listed in the claim's evidence and counted in its summary, never silently dropped. A candidate that fails screening or
confirmation stays in the memory as a dead end (`dead_ends` view); one that passes the
statistician's own bar is published as a `claim` with its confirmation runs as evidence (the
screening run is not evidence: it was selected for being good).
"""
from __future__ import annotations

import logging
from typing import Any

from memory import records as R, stats
from memory.canonical import config_hash
from roles import evidence, leases
from roles.base import Proposal, Proposer
from roles.context import Context

log = logging.getLogger(__name__)
BASELINE_PER_UNIT = 3          # baseline seeds per unit of work, so roles get re-chosen often


class Experimenter:
    """Runs experiments proposed by `proposer` (agent or strategy) or taken from open hypotheses."""

    name = "experimenter"

    def __init__(self, proposer: Proposer) -> None:
        self.proposer = proposer

    def work(self, ctx: Context) -> str | None:
        """Top up the baseline, or run one experiment."""
        if ctx.run is None:
            return None
        base = evidence.baseline(ctx)
        if len(base.values) < min(ctx.params.min_start, ctx.params.min_baseline):
            return self._top_up(ctx, base)
        if len(base.values) < ctx.params.min_baseline:
            self._run(ctx, base.config, ctx.rng.randrange(2**31), "baseline", None)
            base = evidence.baseline(ctx)
        picked = self._hypothesis(ctx, base)
        if picked is None:
            return None
        hyp_id, diff = picked
        return self._experiment(ctx, base, hyp_id, diff)

    # ---- steps -------------------------------------------------------------------------------

    def _run(self, ctx: Context, config: dict[str, Any], seed: int, purpose: str,
             ref: str | None) -> tuple[str, float | None]:
        body = ctx.run(config, seed, purpose, ref)
        record = ctx.publish("run", body)
        ctx.count("runs")
        if body.status != "ok":
            ctx.count(f"runs_{body.status}")
        return record.id, body.metrics.val_bpb if body.status == "ok" else None

    def _top_up(self, ctx: Context, base: evidence.Baseline) -> str:
        # Up to BASELINE_PER_UNIT seeds, re-reading the baseline after each: nodes that start
        # together stop as soon as their seeds together reach the minimum (not 3 each).
        ran = 0
        while ran < BASELINE_PER_UNIT and len(base.values) < ctx.params.min_baseline:
            self._run(ctx, base.config, ctx.rng.randrange(2**31), "baseline", None)
            ran += 1
            base = evidence.baseline(ctx)
        return f"ran {ran} baseline seed(s) of {base.hash[:8]}"

    def _hypothesis(self, ctx: Context, base: evidence.Baseline) -> tuple[str, dict] | None:
        tried = evidence.tried_configs(ctx)
        for hyp in evidence.open_hypotheses(ctx):
            config = {**base.config, **hyp["diff"]}
            if not leases.held_by_other(ctx, "experiment", config_hash(config), hyp["id"]) \
                    and not leases.near_duplicate(config, tried):
                return hyp["id"], hyp["diff"]
        proposal = self.proposer.propose(ctx)
        if proposal is None:
            return None
        return self._publish_hypothesis(ctx, proposal), proposal.diff

    @staticmethod
    def _publish_hypothesis(ctx: Context, proposal: Proposal) -> str:
        body = R.HypothesisBody(track=ctx.track, diff=proposal.diff,
                                rationale=proposal.rationale[:8000], source=proposal.source)
        return ctx.publish("hypothesis", body).id

    def _seeds(self, ctx: Context, base: evidence.Baseline) -> list[int]:
        # The baseline's own seeds first, so candidate and baseline runs pair up by seed.
        seeds = list(dict.fromkeys(base.seeds))
        ctx.rng.shuffle(seeds)
        most = max(ctx.params.confirm_max, ctx.params.confirm_cap)
        extra = most + stats.crashes_allowed(most, ctx.params) + ctx.params.screen_max + 1
        return seeds + [ctx.rng.randrange(2**31) for _ in range(extra)]

    def _experiment(self, ctx: Context, base: evidence.Baseline, hyp_id: str, diff: dict) -> str:
        candidate = {**base.config, **diff}
        chash = config_hash(candidate)
        if not leases.take(ctx, "experiment", chash, hyp_id):
            return f"backed off {chash[:8]}: leased by another node"
        floor = base.floor()
        seeds = iter(self._seeds(ctx, base))
        screens = self._screen(ctx, candidate, seeds, floor, hyp_id)
        if screens[-1] is None or not stats.promotes(screens[-1], floor, ctx.params):
            return f"dead end {diff}: screen {screens} vs baseline {floor.mean:.4f}"
        # The p its claim will need in the family (LOND): confirm until it is reached.
        bar = evidence.verdicts_of(ctx).claim_bar(chash)
        ids, values, crashes = self._confirm(ctx, candidate, seeds, base, hyp_id, bar)
        if not stats.worth_claiming(values, base.values, ctx.params, bar):
            return (f"dead end {diff}: confirmation {values} vs baseline {floor.mean:.4f}"
                    + (f" ({crashes} crashed)" if crashes else ""))
        effect = sum(values) / len(values) - floor.mean
        claim = R.ClaimBody(
            track=ctx.track, baseline_hash=base.hash, candidate_hash=chash, diff=diff,
            baseline_runs=base.run_ids[-512:], candidate_runs=ids, effect=effect,
            summary=f"{diff} improves val_bpb by {-effect:.4g} over {len(values)} confirmation "
                    f"seeds (baseline {floor.mean:.4f} +- {floor.std:.2g}, n={floor.n})"
                    + (f"; {crashes} crashed confirmation run(s) replaced" if crashes else ""))
        claim_id = ctx.publish("claim", claim).id
        ctx.count("claims")
        return f"claimed {diff}: effect {effect:+.4g} ({claim_id[:8]})"

    def _screen(self, ctx: Context, candidate: dict, seeds: Any, floor: stats.NoiseFloor,
                hyp_id: str) -> list[float | None]:
        """Screening runs: one, and another while the last lands in the gray zone
        (`stats.screen_again`), up to `screen_max`; the last decides. One crashed screening run
        is replaced by another seed (at 5% crashes, a crash as a dead end cost 6% of power); a
        second crash is a dead end."""
        values: list[float | None] = []
        while len(values) < max(1, ctx.params.screen_max) + values.count(None):
            values.append(self._run(ctx, candidate, next(seeds), "screen", hyp_id)[1])
            if values[-1] is None:
                if values.count(None) > 1:
                    break
                ctx.count("screen_crashes")
            elif not stats.screen_again(values[-1], floor, ctx.params):
                break
        return values

    def _confirm(self, ctx: Context, candidate: dict, seeds: Any, base: evidence.Baseline,
                 hyp_id: str, bar: float = 1.0) -> tuple[list[str], list[float], int]:
        """Confirmation runs (ids of all, values of the finished ones) and how many crashed."""
        ids: list[str] = []
        values: list[float] = []
        crashes = 0
        floor = base.floor()
        while stats.keep_confirming(values, floor, ctx.params, base.values, bar):
            run_id, value = self._run(ctx, candidate, next(seeds), "confirm", hyp_id)
            ids.append(run_id)                  # crashed runs stay in the evidence list
            if value is None:
                crashes += 1
                ctx.count("confirm_crashes")
                if crashes > stats.crashes_allowed(len(values), ctx.params):
                    log.info("%d crashed confirmation runs: giving up on %s", crashes, hyp_id[:8])
                    return ids, [], crashes
                continue                        # replaced by the next seed
            values.append(value)
        return ids, values, crashes
