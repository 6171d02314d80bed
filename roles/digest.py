"""A compact digest of the memory for the research agent: what is known about one track.

Bounded in size (a few KB) whatever the memory holds: the best config, the baseline's noise,
verified and refuted claims, dead ends, knob effects, open hypotheses, newest first, and the
optimizer's next suggestions (so the agent adds ideas rather than repeating the optimizer).
"""
from __future__ import annotations

import json
from typing import Any

from roles import evidence, evidence_sql
from roles.context import Context
from roles.meta_analyst import estimate

LIMIT = 20
# What the agent should not repeat: configs trusted authors screened (promoted or not) that no
# trusted author claimed; the dead_ends and failed_confirmations views together, but over trusted
# keys only, so a stranger can neither fill the list nor push honest dead ends out of it.
_DEAD = f"""
    SELECT min(r.config) AS config, count(*) FILTER (WHERE r.status = 'ok') AS ok_runs,
           max(r.ts) AS last_ts
    FROM valid_runs r
    WHERE r.track = ? AND r.purpose IN ('screen', 'confirm') AND {evidence_sql.RUN_IN}
      AND NOT EXISTS (SELECT 1 FROM valid_claims c WHERE c.track = r.track
                      AND c.candidate_hash = r.config_hash AND c.{evidence_sql.AUTHOR_IN})
    GROUP BY r.config_hash ORDER BY last_ts DESC, r.config_hash LIMIT ?"""


def _diff(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def digest(ctx: Context, suggestions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The digest as a JSON-able dict (`suggestions`: the optimizer's next diffs, if any)."""
    base = evidence.baseline(ctx)
    floor = base.floor()
    best = base.config
    claims = [c for c in evidence.claims(ctx) if c["trusted"]]   # untrusted claims are no news
    trusted = list(evidence.verdicts_of(ctx).trusted_authors)
    dead = ctx.rows(_DEAD, [ctx.track, trusted, trusted, LIMIT])
    return {
        "track": ctx.track,
        "best_config": best,
        "baseline": None if floor is None else {"mean_val_bpb": round(floor.mean, 5),
                                                "noise_sd": round(floor.std, 5), "n": floor.n},
        "verified": [{"diff": c["diff"], "effect": c["effect"]}
                     for c in claims if c["status"] == "verified"][-LIMIT:],
        "refuted_or_not_supported": [{"diff": c["diff"], "status": c["status"]} for c in claims
                                     if c["status"] in ("refuted", "not_supported")][-LIMIT:],
        "dead_ends": [{k: v for k, v in _diff(d["config"]).items() if best.get(k) != v}
                      for d in dead],
        "knob_effects": [{"knob": e.knob, "value": e.value, "effect": round(e.effect, 5),
                          "stderr": None if e.stderr is None else round(e.stderr, 5), "n": e.n}
                         for e in estimate(ctx)[:LIMIT]],
        "open_hypotheses": [h["diff"] for h in evidence.open_hypotheses(ctx)][:LIMIT],
        "optimizer_suggestions": list(suggestions or [])[:LIMIT],
    }

