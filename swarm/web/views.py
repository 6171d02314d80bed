"""What each dashboard view shows, as JSON-able dicts read from the memory (any `Reader`).

Every time is epoch milliseconds (UTC), as in the CLI's `--json`. The leaderboard's `rows` are
exactly `swarm leaderboard --json`; `findings`/`claims` are `swarm findings --json`'s shapes.
Queries stay bounded at a million runs: filters on track and config hash, LIMITs on what is listed.
"""
from __future__ import annotations

import json
import math
from typing import Any

from memory import codec
from memory.leaderboard import base_configs, config_diff, top
from memory.store import Reader

MAX_MARKS = 2000         # runs drawn on the overview chart (the newest)
MAX_RUNS = 500           # rows of the runs table


def _rows(reader: Reader, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    result = reader.query(sql, params or [])
    return [{c: _clean(v) for c, v in zip(result.columns, row)} for row in result.rows]


def _clean(value: Any) -> Any:
    """JSON text columns parsed; NaN/inf as null (browsers refuse them in JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def tracks(reader: Reader) -> list[dict[str, Any]]:
    """Every track with runs, most runs first, with a short label (the name where unique)."""
    found = _rows(reader, "SELECT track, count(*) AS runs, max(ts) AS last_ts FROM valid_runs "
                          "GROUP BY track ORDER BY runs DESC, track")
    names = [t["track"].split(":", 1)[0] for t in found]
    for t, name in zip(found, names):
        t["label"] = name if names.count(name) == 1 else f"{name}:{t['track'].split(':', 1)[-1][:8]}"
    return found


def pick_track(reader: Reader, track: str | None,
               found: list[dict[str, Any]] | None = None) -> str | None:
    """The track id for `track` (an id, or a name: its busiest id), else the busiest track."""
    for t in tracks(reader) if found is None else found:
        if track is None or track in (t["track"], t["track"].split(":", 1)[0]):
            return t["track"]
    return None


def _newest(track_filter: str, limit: int) -> str:
    # The newest `limit` rows by ts, read through a ts cut-off first: DuckDB then skips the older
    # row groups by their min/max, instead of carrying every row's text through a top-N.
    return f"""
        WITH cut AS (SELECT coalesce(min(ts), 0) AS ts FROM (
            SELECT ts FROM valid_runs WHERE {track_filter} ORDER BY ts DESC LIMIT {int(limit)}))
        SELECT * FROM valid_runs WHERE {track_filter} AND ts >= (SELECT ts FROM cut)"""


def means(reader: Reader, track: str, hashes: list[str]) -> dict[str, float]:
    """`seed_stats` means of these configs (filtered before aggregating: fast at a million runs)."""
    if not hashes:
        return {}
    found = reader.query(f"SELECT config_hash, mean FROM seed_stats WHERE track = ? AND config_hash "
                         f"IN ({', '.join('?' for _ in hashes)})", [track, *hashes])
    return dict(found.rows)


def baseline(reader: Reader, track: str) -> dict[str, Any] | None:
    """The track's newest noise floor: {config_hash, n, mean, std, ts}."""
    found = _rows(reader, "SELECT config_hash, n, mean, std, ts FROM noise_floor WHERE track = ?",
                  [track])
    return found[0] if found else None


def overview(reader: Reader, track: str | None, node: dict[str, Any] | None = None) -> dict[str, Any]:
    """Running best over time with marks, runs per hour per node, role mix, peers, counts."""
    found = tracks(reader)
    chosen = pick_track(reader, track, found)
    out: dict[str, Any] = {"track": chosen, "tracks": found, "node": node}
    if chosen is None:
        return {**out, "best": [], "marks": [], "claims": [], "runs_per_hour": [], "role_mix": [],
                "peers": _peers(reader), "counts": {}, "baseline": None}
    claims = _claim_marks(reader, chosen)          # claim_status once: best, marks and counts
    statuses: dict[str, int] = {}
    for c in claims:
        statuses[c["status"]] = statuses.get(c["status"], 0) + 1
    return {**out, "baseline": baseline(reader, chosen),
            "best": best_over_time(reader, chosen, claims), "marks": _marks(reader, chosen),
            "claims": claims, "runs_per_hour": _per_hour(reader, chosen),
            "role_mix": _role_mix(reader), "peers": _peers(reader),
            "counts": {"runs": next(t["runs"] for t in found if t["track"] == chosen),
                       "claims": statuses}}


def best_over_time(reader: Reader, track: str,
                   claims: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The verified best as steps: the baseline's mean, then each verified claim that beat it
    (at the time of its first confirming independent verification)."""
    floor = baseline(reader, track)
    steps = [] if floor is None else [{"ts": floor["ts"], "val_bpb": floor["mean"],
                                       "what": "baseline"}]
    verified = [c for c in (_claim_marks(reader, track) if claims is None else claims)
                if c["status"] == "verified" and c["val_bpb"] is not None]
    confirmed = dict(reader.query(
        f"SELECT claim, min(ts) FROM independent_verifications WHERE outcome = 'confirmed' AND "
        f"claim IN ({', '.join('?' for _ in verified)}) GROUP BY claim",
        [c["claim"] for c in verified]).rows) if verified else {}
    for c in sorted(verified, key=lambda c: confirmed.get(c["claim"], c["ts"])):
        if not steps or c["val_bpb"] < steps[-1]["val_bpb"]:
            steps.append({"ts": confirmed.get(c["claim"], c["ts"]), "val_bpb": c["val_bpb"],
                          "what": _diff_text(c["diff"])})
    return steps


def _diff_text(diff: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in (diff or {}).items()) or "(base)"


def _marks(reader: Reader, track: str) -> list[dict[str, Any]]:
    # No ids or authors: 2,000 points are drawn, and their text would triple the payload.
    return _rows(reader, f"""
        SELECT ts, val_bpb, purpose FROM ({_newest("track = ?", MAX_MARKS)})
        WHERE status = 'ok' AND val_bpb IS NOT NULL ORDER BY ts DESC LIMIT ?""",
        [track, track, MAX_MARKS])


def _claim_marks(reader: Reader, track: str) -> list[dict[str, Any]]:
    found = _rows(reader, """
        SELECT claim, ts, status, diff, effect, candidate_hash FROM claim_status
        WHERE track = ? ORDER BY ts""", [track])
    mean = means(reader, track, sorted({c["candidate_hash"] for c in found}))
    return [{**c, "val_bpb": mean.get(c.pop("candidate_hash"))} for c in found]


def _per_hour(reader: Reader, track: str) -> list[dict[str, Any]]:
    return _rows(reader, """
        SELECT (ts // 3600000) * 3600000 AS hour, author, count(*) AS runs FROM valid_runs
        WHERE track = ? AND ts >= (SELECT max(ts) FROM valid_runs WHERE track = ?) - 48 * 3600000
        GROUP BY ALL ORDER BY hour, author""", [track, track])


def _role_mix(reader: Reader) -> list[dict[str, Any]]:
    return _rows(reader, """
        SELECT (ts // 3600000) * 3600000 AS hour, role, count(*) AS n FROM roles
        WHERE ts >= (SELECT max(ts) FROM roles) - 48 * 3600000 GROUP BY ALL ORDER BY hour, role""")


def _peers(reader: Reader) -> list[dict[str, Any]]:
    return _rows(reader, """
        SELECT author, arg_max(name, ts) AS name, arg_max(accelerator, ts) AS accelerator,
               max(ts) AS ts FROM nodes GROUP BY author ORDER BY ts DESC LIMIT 200""")


def leaderboard(reader: Reader, track: str | None, limit: int = 20) -> dict[str, Any]:
    """`swarm leaderboard --json`'s rows for the track, with every seed's value and the baseline."""
    chosen = pick_track(reader, track)
    if chosen is None:
        return {"track": None, "rows": [], "seeds": [], "baseline": None}
    rows = [{k: _clean(v) for k, v in r.items()} for r in top(reader, chosen, limit)]
    hashes = [r["config_hash"] for r in rows]
    seeds = _rows(reader, f"""
        SELECT config_hash, seed, val_bpb, id FROM valid_runs
        WHERE track = ? AND status = 'ok' AND val_bpb IS NOT NULL
          AND config_hash IN ({', '.join('?' for _ in hashes)})""", [chosen, *hashes]) if hashes else []
    return {"track": chosen, "rows": rows, "seeds": seeds, "baseline": baseline(reader, chosen)}


def claim(reader: Reader, claim_id: str) -> dict[str, Any] | None:
    """A claim: its status and why, the evidence against the baseline, assessments, verifications."""
    found = _rows(reader, "SELECT * FROM claim_status WHERE claim = ?", [claim_id])
    if not found:
        return None
    body = _rows(reader, "SELECT baseline_runs, candidate_runs, summary FROM claims WHERE id = ?",
                 [claim_id])[0]
    ids = body["baseline_runs"] + body["candidate_runs"]
    evidence = _rows(reader, f"SELECT id, seed, val_bpb, author, ts FROM valid_runs WHERE id IN "
                             f"({', '.join('?' for _ in ids)})", ids) if ids else []
    for run in evidence:
        run["side"] = "candidate" if run["id"] in body["candidate_runs"] else "baseline"
    floor = baseline(reader, found[0]["track"])
    status = found[0]
    sd = floor["std"] if floor else None
    return {"claim": status, "summary": body["summary"], "evidence": evidence, "baseline": floor,
            "effect_in_sd": None if not sd or status["effect"] is None else status["effect"] / sd,
            "assessments": _rows(reader, "SELECT * FROM assessments WHERE claim = ? ORDER BY ts",
                                 [claim_id]),
            "verifications": _rows(reader, "SELECT * FROM verifications WHERE claim = ? ORDER BY ts",
                                   [claim_id]),
            "why": _why(status)}


def _why(status: dict[str, Any]) -> str:
    reasons = {
        "pending": "no statistician has assessed it yet",
        "not_supported": f"the test did not support it (p={status['p_value']}, q={status['q_value']})",
        "supported": "the test supports it; no independent verification yet",
        "verified": f"supported, and confirmed by {status['confirmed']} independent re-run(s)",
        "refuted": f"an independent re-run refuted it ({status['refuted']})",
        "inconclusive": "independent re-runs were inconclusive"}
    return reasons.get(status["status"], status["status"])


def knobs(reader: Reader, track: str | None) -> dict[str, Any]:
    """The newest finding's knob effects (± 2 se) and the base config's knobs never varied."""
    chosen = pick_track(reader, track)
    found = _rows(reader, "SELECT id, ts, title, text, effects FROM findings WHERE track = ? "
                          "ORDER BY ts DESC, id LIMIT 1", [chosen]) if chosen else []
    finding = found[0] if found else None
    effects = []
    for e in (finding or {}).get("effects", []):
        se = e.get("stderr")
        effects.append({**e, "lo": None if se is None else e["effect"] - 2 * se,
                        "hi": None if se is None else e["effect"] + 2 * se})
    base = base_configs(reader).get(chosen or "", {})
    tried = {e["knob"] for e in effects}
    return {"track": chosen, "finding": finding, "effects": effects,
            "never_tried": sorted(k for k in base if k not in tried)}


def runs(reader: Reader, track: str | None = None, status: str | None = None,
         purpose: str | None = None, author: str | None = None, limit: int = MAX_RUNS) -> dict[str, Any]:
    """The newest runs (filtered), each with its config's diff from the track's base config."""
    match = ("(? IS NULL OR track = ? OR split_part(track, ':', 1) = ?) AND (? IS NULL OR "
             "status = ?) AND (? IS NULL OR purpose = ?) AND (? IS NULL OR author = ?)")
    filters = [track, track, track, status, status, purpose, purpose, author, author]
    found = _rows(reader, f"""
        SELECT id, author, ts, track, config_hash, seed, status, val_bpb, train_loss, wall_s,
               purpose, config FROM ({_newest(match, min(limit, MAX_RUNS))})
        ORDER BY ts DESC, id LIMIT ?""", [*filters, *filters, min(limit, MAX_RUNS)])
    bases = base_configs(reader)
    for row in found:
        row["diff"] = config_diff(row.pop("config"), bases.get(row["track"]))
    return {"runs": found}


def run(reader: Reader, run_id: str) -> dict[str, Any] | None:
    """One run in full: its body (with `curve` and `samples` when the harness stored them)."""
    found = reader.query("SELECT raw, track FROM records r JOIN runs USING (id) WHERE r.id = ?",
                         [run_id]).rows
    if not found:
        return None
    raw = found[0][0] if isinstance(found[0][0], bytes) else bytes.fromhex(found[0][0])
    record = codec.decode(raw, now=2**52)       # stored records were checked; skip the clock check
    body = record.body.model_dump(mode="json")
    base = base_configs(reader).get(found[0][1])
    return {"id": record.id, "author": record.author, "ts": record.ts, "body": body,
            "diff": config_diff(body.get("config"), base), "curve": body.get("curve"),
            "samples": body.get("samples")}
