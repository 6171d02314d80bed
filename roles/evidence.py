"""Reading the evidence roles need out of the memory: the track's best config, its baseline runs,
claims by status, what was tried. Every answer comes from records and views, never local state."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from memory import stats
from memory.canonical import config_hash
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


def best_config(ctx: Context) -> dict[str, Any]:
    """The track's best verified config (lowest mean), else its base config."""
    rows = ctx.rows(
        "SELECT s.config FROM claim_status c JOIN seed_stats s "
        "  ON s.track = c.track AND s.config_hash = c.candidate_hash "
        "WHERE c.track = ? AND c.status = 'verified' AND c.author NOT IN "
        "  (SELECT author FROM suspect_authors) ORDER BY s.mean, s.config_hash LIMIT 1",
        [ctx.track])
    return _config(rows[0]["config"]) if rows else dict(ctx.base_config)


def ok_runs(ctx: Context, chash: str) -> list[dict[str, Any]]:
    """Finished runs of one config on the track, oldest first."""
    return ctx.rows("SELECT id, seed, val_bpb, purpose FROM valid_runs WHERE track = ? AND "
                    "config_hash = ? AND status = 'ok' AND val_bpb IS NOT NULL ORDER BY ts, id",
                    [ctx.track, chash])


def baseline(ctx: Context, config: dict[str, Any] | None = None) -> Baseline:
    """The baseline (default: the best config) and its runs, excluding candidate-purpose runs."""
    config = best_config(ctx) if config is None else config
    chash = config_hash(config)
    runs = ok_runs(ctx, chash)
    return Baseline(config, chash, [r["id"] for r in runs], [r["seed"] for r in runs],
                    [r["val_bpb"] for r in runs])


def runs_by_id(ctx: Context, ids: list[str]) -> list[dict[str, Any]]:
    """The listed runs that this replica holds (any status), with what a replay needs."""
    if not ids:
        return []
    return ctx.rows("SELECT id, author, track, config, config_hash, seed, status, val_bpb, purpose, "
                    "accelerator, device_name, cores FROM valid_runs WHERE id IN "
                    f"({', '.join('?' * len(ids))}) ORDER BY ts, id", list(ids))


def claims(ctx: Context, status: str | None = None) -> list[dict[str, Any]]:
    """Claims on the track (optionally of one status) with their evidence lists, oldest first."""
    sql = ("SELECT s.claim AS id, s.author, s.status, s.effect, s.diff, c.baseline_hash, "
           "c.candidate_hash, c.baseline_runs, c.candidate_runs FROM claim_status s "
           "JOIN claims c ON c.id = s.claim WHERE s.track = ?")
    args: list[Any] = [ctx.track]
    if status is not None:
        sql += " AND s.status = ?"
        args.append(status)
    rows = ctx.rows(sql + " ORDER BY s.ts, s.claim", args)
    for row in rows:
        for key in ("diff", "baseline_runs", "candidate_runs"):
            row[key] = json.loads(row[key]) if isinstance(row[key], str) else row[key]
    return rows


def tried_configs(ctx: Context) -> list[dict[str, Any]]:
    """Every config that was screened, confirmed or claimed on the track (to skip repeats)."""
    rows = ctx.rows("SELECT DISTINCT config FROM valid_runs WHERE track = ? AND purpose IN "
                    "('screen', 'confirm', 'candidate')", [ctx.track])
    return [_config(r["config"]) for r in rows]


def open_hypotheses(ctx: Context) -> list[dict[str, Any]]:
    """Hypotheses on the track whose config (over the current best) nobody has tried yet."""
    best = best_config(ctx)
    tried = {config_hash(c) for c in tried_configs(ctx)}
    out = []
    for row in ctx.rows("SELECT id, diff, rationale, source FROM hypotheses WHERE track = ? "
                        "ORDER BY ts, id", [ctx.track]):
        diff = _config(row["diff"])
        if config_hash({**best, **diff}) not in tried and {**best, **diff} != best:
            out.append({**row, "diff": diff})
    return out
