"""Reading the evidence roles need out of the memory: the track's best config, its baseline runs,
claims by status, what was tried. Every answer comes from records and this node's trust roots
(roles/verdicts.py: sane runs by trusted authors only), never from other local state."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from memory import stats
from memory.canonical import config_hash
from roles import sanity, verdicts
from roles.context import Context


@dataclass(frozen=True)
class Baseline:
    """The config experiments are measured against, with its finished runs."""

    config: dict[str, Any]
    hash: str
    run_ids: list[str]
    seeds: list[int]
    values: list[float]

    def floor(self) -> stats.NoiseFloor | None:
        """Its noise floor, once it has two runs."""
        return stats.noise_floor(self.values) if len(self.values) >= 2 else None


def _config(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def facts(ctx: Context) -> sanity.TrackFacts:
    """What this node knows of its track (for the sanity bounds)."""
    return sanity.TrackFacts({ctx.track: ctx.budget_tokens})


def verdicts_of(ctx: Context) -> verdicts.Verdicts:
    """This node's conclusions on its track, from trusted, sane evidence (cached)."""
    return verdicts.get(ctx.store, ctx.track, ctx.roots, facts(ctx), ctx.params)


def best_config(ctx: Context) -> dict[str, Any]:
    """The track's best verified config by a trusted author (`Verdicts.best`), else the base."""
    best = verdicts_of(ctx).best()
    return best[1] if best is not None else dict(ctx.base_config)


def ok_runs(ctx: Context, chash: str) -> list[dict[str, Any]]:
    """Unselected runs of one config that count here (sane, trusted, baseline/verify/replay
    purpose, one per seed), oldest first."""
    return [{k: r[k] for k in ("id", "seed", "val_bpb", "purpose")}
            for r in verdicts_of(ctx).baseline_runs(chash)]


def baseline(ctx: Context, config: dict[str, Any] | None = None) -> Baseline:
    """The baseline (default: the best config) and its unselected, trusted runs."""
    config = best_config(ctx) if config is None else config
    chash = config_hash(config)
    runs = ok_runs(ctx, chash)
    return Baseline(config, chash, [r["id"] for r in runs], [r["seed"] for r in runs],
                    [r["val_bpb"] for r in runs])


def claim_tally(ctx: Context) -> dict[str, int]:
    """How many claims by trusted authors have each status, as this node derives them."""
    tally: dict[str, int] = {}
    for claim in verdicts_of(ctx).claims:
        if claim.trusted:
            tally[claim.status] = tally.get(claim.status, 0) + 1
    return dict(sorted(tally.items()))


def claims(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    """Claims on the track as this node judges them (optionally of one status), oldest first;
    each row says whether its author is trusted here."""
    rows = [c.as_row() for c in verdicts_of(ctx).claims]
    return [r for r in rows if status is None or r["status"] == status]


def tried_configs(ctx: Context) -> list[dict[str, Any]]:
    """Every config that a trusted author screened, confirmed or claimed on the track (to skip
    repeats; untrusted keys cannot fence configs off)."""
    v = verdicts_of(ctx)
    seen: dict[str, dict[str, Any]] = {}
    for run in v.runs.values():
        if run["purpose"] in ("screen", "confirm", "candidate") and v.trust.counts(run):
            seen.setdefault(run["config_hash"], _config(run["config"]))
    return list(seen.values())


def open_hypotheses(ctx: Context) -> list[dict[str, Any]]:
    """Hypotheses on the track whose config (over the current best) nobody has tried yet: first
    those no trusted author has screened over any best config (oldest first), then those that
    passed screening over an earlier best (newest first: a later proposal knew more, and was
    tested nearer the current best). One a trusted screen turned down over an earlier best stays
    closed: on a smooth surface a diff that lost there loses here too, and re-running every old
    hypothesis after each verified claim took 12-16% of a gated search's runs, two thirds of them
    on diffs no better than the new best (docs/ROLES.md, "Measured")."""
    best = best_config(ctx)
    tried = {config_hash(c) for c in tried_configs(ctx)}
    fresh: list[dict[str, Any]] = []
    again: list[dict[str, Any]] = []
    v = verdicts_of(ctx)
    trusted = v.trust.trusted
    for row in ctx.rows("SELECT id, author, diff, rationale, source FROM hypotheses "
                        "WHERE track = ? ORDER BY ts, id", [ctx.track]):
        if not trusted(row.pop("author")):
            continue                   # a flood of hypotheses from free keys costs no runs
        why = sanity.diff_reason(best, row["diff"])
        if why is not None:            # e.g. a knob this harness lacks: refused, counted once
            ctx.refuse(row["id"], why)
            continue
        diff = _config(row["diff"])
        if config_hash({**best, **diff}) in tried or {**best, **diff} == best:
            continue
        tests = {r["purpose"] for r in v.by_ref.get(row["id"], [])
                 if r["purpose"] in ("screen", "confirm") and v.trust.counts(r)}
        if not tests:
            fresh.append({**row, "diff": diff})
        elif "confirm" in tests:
            again.append({**row, "diff": diff})
    return fresh + again[::-1]
