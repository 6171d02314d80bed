"""What the search reads out of the memory: outcomes per config, configs leased (running) by
others, the family of screened candidates, and each proposer's record.

Everything here is evidence this node trusts (docs/TRUST.md): outcomes are the sane runs of
trusted authors, as the leaderboard's means are, and a proposer's record counts trusted runs and the
claims verified here. A key nobody trusts can neither steer the optimizer's study with invented
outcomes nor make the bandit favour or starve a proposer with invented "verified" claims.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from memory.canonical import config_hash
from roles import evidence, evidence_sql, leases
from roles.context import Context
from roles.leases import MAX_LEASE_S


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Outcome:
    """One config's finished runs on the track: mean val_bpb over n seeds."""

    hash: str
    config: dict[str, Any]
    mean: float
    n: int


# Per config: trusted, sane, finished runs; sums of micro-bpb integers, so the mean is the same
# whatever order DuckDB adds them in (the study is rebuilt the same way on every node).
_OUTCOMES = """
    SELECT config_hash, any_value(config) AS config, count(*) AS n,
           sum(CAST(round(val_bpb * 1e6) AS BIGINT)) AS sx
    FROM {source} WHERE sane AND status = 'ok' AND {author_in}
    GROUP BY config_hash ORDER BY config_hash"""


def outcomes(ctx: Context) -> list[Outcome]:
    """Every config of the track with trusted finished runs, in config-hash order (order-free
    rebuilds); the mean is over every such run."""
    v = evidence.verdicts_of(ctx)
    src = evidence_sql.sane_runs(v.reader, v.facts, ctx.track,
                                 "r.config_hash, r.config, r.val_bpb, r.status, r.author", keyed=True)
    rows = ctx.rows(_OUTCOMES.format(source=src.source, author_in=evidence_sql.AUTHOR_IN),
                    [*src.params, list(v.trusted_authors)])
    return [Outcome(r["config_hash"], dict(_json(r["config"])), int(r["sx"]) / r["n"] / 1e6,
                    int(r["n"])) for r in rows]


def pending(ctx: Context, best: dict[str, Any]) -> list[dict[str, Any]]:
    """Configs that other trusted authors hold an experiment lease on (one that holds:
    `leases.active`) and that have no outcome yet: the study's running trials. A stranger's
    lease is none: its outcome would not count here, and one free key's lease of a config at the
    harness's bounds, expiring in ten years, stretched every knob's window to them (lr to 1.0,
    n_layer to 48) and sent 40 of 40 asks outside the window for as long (docs/TRUST.md)."""
    now, most = ctx.now_ms(), MAX_LEASE_S * 1000
    trusted = evidence.verdicts_of(ctx).trusted_authors
    rows = ctx.rows(
        "SELECT DISTINCT l.config_hash, h.diff FROM claim_leases l JOIN hypotheses h "
        "ON h.id = l.target WHERE l.track = ? AND l.work = 'experiment' AND l.expires_ts > ? "
        "AND l.expires_ts <= ? AND l.expires_ts - l.ts <= ? AND l.author <> ? "
        f"AND l.{evidence_sql.AUTHOR_IN} AND l.config_hash NOT IN (SELECT config_hash "
        "FROM seed_stats WHERE track = ?) ORDER BY l.config_hash",
        [ctx.track, now, now + most, most, ctx.me, list(trusted), ctx.track])
    # a chain of renewals past one lease's length holds nothing (`leases.active`): an earned
    # key's renewed lease would otherwise be a running trial for good
    counted = set(trusted)
    held = {r["config_hash"] for r in leases.active(ctx, "experiment") if r["author"] in counted}
    out = []
    for row in (r for r in rows if r["config_hash"] in held):
        config = {**best, **_json(row["diff"])}
        if config_hash(config) == row["config_hash"]:     # else it was over another best config
            out.append(config)
    return out


def source_of(source: str, rationale: str) -> str:
    """A hypothesis's proposer: the agent, else the `name:` its rationale starts with."""
    head = rationale.split(":", 1)[0].strip()
    if source != "strategy" or not head or " " in head or len(head) > 24:
        return source
    return head


@dataclass
class SourceRecord:
    """One proposer's record on the track: runs spent on its hypotheses, verified gain in noise sds."""

    runs: int = 0
    gain_sd: float = 0.0
    verified: int = 0


def source_records(ctx: Context, noise_sd: float = 1.0) -> dict[str, SourceRecord]:
    """Per proposer: screen and confirm runs by trusted authors spent on its hypotheses, and the
    improvement bought by the claims verified here (in the noise sds of this node's own test of
    the claim; `noise_sd` where it has none)."""
    v = evidence.verdicts_of(ctx)
    out: dict[str, SourceRecord] = {}
    for row in ctx.rows(
            "SELECT h.source, h.rationale, count(r.id) AS runs FROM hypotheses h "
            "LEFT JOIN valid_runs r ON r.ref = h.id AND r.track = h.track "
            f"AND {evidence_sql.RUN_IN} WHERE h.track = ? "
            "GROUP BY h.id, h.source, h.rationale", [list(v.trusted_authors), ctx.track]):
        rec = out.setdefault(source_of(row["source"], row["rationale"] or ""), SourceRecord())
        rec.runs += int(row["runs"])
    for claim in v.verified():
        hyp = _screened_by(ctx, claim.candidate_hash, v.trusted_authors)
        if hyp is None:
            continue
        rec = out.setdefault(source_of(hyp["source"], hyp["rationale"] or ""), SourceRecord())
        rec.verified += 1
        effect, sd = claim.effect, noise_sd
        if claim.test is not None:
            effect, sd = claim.test[0].effect, claim.test[1].std or noise_sd
        rec.gain_sd += max(0.0, -float(effect)) / max(sd, 1e-12)
    return out


def _screened_by(ctx: Context, chash: str, trusted: list[str]) -> dict[str, Any] | None:
    """The hypothesis whose screen (by a trusted author) first tried this config on the track."""
    rows = ctx.rows(
        "SELECT h.source, h.rationale FROM valid_runs r JOIN hypotheses h ON h.id = r.ref "
        "WHERE r.track = ? AND r.config_hash = ? AND r.purpose = 'screen' "
        f"AND {evidence_sql.RUN_IN} "
        "ORDER BY r.ts, r.id LIMIT 1", [ctx.track, chash, list(trusted)])
    return rows[0] if rows else None
