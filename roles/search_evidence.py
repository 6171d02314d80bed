"""What the search reads out of the memory: outcomes per config, configs leased (running) by
others, the family of screened candidates, and each proposer's record.

Outcomes come from the `seed_stats` view over `valid_runs`: when the trust work narrows those to
trusted runs, the optimizer's study follows without a change here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from memory.canonical import config_hash
from roles.context import Context


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Outcome:
    """One config's finished runs on the track: mean val_bpb over n seeds."""

    hash: str
    config: dict[str, Any]
    mean: float
    n: int


def outcomes(ctx: Context) -> list[Outcome]:
    """Every config of the track with finished runs, in config-hash order (order-free rebuilds)."""
    rows = ctx.rows("SELECT config_hash, config, mean, n FROM seed_stats WHERE track = ? "
                    "ORDER BY config_hash", [ctx.track])
    return [Outcome(r["config_hash"], dict(_json(r["config"])), float(r["mean"]), int(r["n"]))
            for r in rows]


def pending(ctx: Context, best: dict[str, Any]) -> list[dict[str, Any]]:
    """Configs other nodes hold an unexpired experiment lease on and that have no outcome yet."""
    rows = ctx.rows(
        "SELECT DISTINCT l.config_hash, h.diff FROM claim_leases l JOIN hypotheses h "
        "ON h.id = l.target WHERE l.track = ? AND l.work = 'experiment' AND l.expires_ts > ? "
        "AND l.author <> ? AND l.config_hash NOT IN (SELECT config_hash FROM seed_stats "
        "WHERE track = ?) ORDER BY l.config_hash", [ctx.track, ctx.now_ms(), ctx.me, ctx.track])
    out = []
    for row in rows:
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
    """Per proposer: screen and confirm runs spent, and the verified improvement they bought
    (in the noise sds of the claim's assessment; `noise_sd` where it has none)."""
    out: dict[str, SourceRecord] = {}
    for row in ctx.rows(
            "SELECT h.source, h.rationale, count(r.id) AS runs FROM hypotheses h "
            "LEFT JOIN valid_runs r ON r.ref = h.id AND r.track = h.track WHERE h.track = ? "
            "GROUP BY h.id, h.source, h.rationale", [ctx.track]):
        rec = out.setdefault(source_of(row["source"], row["rationale"] or ""), SourceRecord())
        rec.runs += int(row["runs"])
    for row in ctx.rows(
            "SELECT s.claim, any_value(s.effect) AS effect, any_value(h.source) AS source, "
            "any_value(h.rationale) AS rationale, any_value(a.noise_floor) AS sd "
            "FROM claim_status s JOIN valid_runs r ON r.track = s.track "
            "AND r.config_hash = s.candidate_hash AND r.purpose = 'screen' "
            "JOIN hypotheses h ON h.id = r.ref LEFT JOIN latest_assessments a ON a.claim = s.claim "
            "WHERE s.track = ? AND s.status = 'verified' GROUP BY s.claim", [ctx.track]):
        rec = out.setdefault(source_of(row["source"], row["rationale"] or ""), SourceRecord())
        rec.verified += 1
        sd = float(row["sd"]) if row["sd"] else noise_sd
        rec.gain_sd += max(0.0, -float(row["effect"] or 0.0)) / max(sd, 1e-12)
    return out
