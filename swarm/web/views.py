"""What each dashboard view shows, as JSON-able dicts: this node's own conclusions.

Every view takes a `Conclusions` (swarm/conclusions.py: the memory's reader and the home's trust
roots) made for its request, so statuses, ranks, baselines and the verified best are the ones this
node derives from trusted, sane runs (docs/TRUST.md), exactly as the CLI shows them: the
leaderboard's `rows` are `swarm leaderboard --json`, `claims`/`untrusted_claims` are
`swarm findings --json`'s, the trust view's `authors` are `swarm trust --json`. Other keys' records
(assessments, verifications, noise floors, findings) are shown as testimony, never as the verdict.
Every time is epoch milliseconds (UTC), as in the CLI's `--json`.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from memory import codec
from memory import records as R
from memory.leaderboard import base_configs, config_diff
from memory.schema import BODY_COLUMNS
from memory.store import Reader
from memory.views import VALID_RANGE as _VALID, moving, track_runs
from swarm.conclusions import Conclusions, few_strangers, track_base
from swarm.output import peer_labels, track_labels

MAX_MARKS = 2000         # runs drawn on the overview chart (the newest)
MAX_RUNS = 500           # rows of the runs table
MAX_AUTHORS = 500        # rows of the trust table


def _rows(reader: Reader, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    result = reader.query(sql, params or [])
    return [{c: _clean(v, c) for c, v in zip(result.columns, row)} for row in result.rows]


# The columns that hold JSON text (configs, lists, maps); every other string is an author's text,
# shown as it is even when it looks like JSON (a name "[{...}]" parsed stopped pages drawing).
_JSON_COLUMNS = frozenset(c.name for columns in BODY_COLUMNS.values() for c in columns
                          if c.sql_type == "JSON")


def _clean(value: Any, column: str | None = None) -> Any:
    """JSON text columns parsed; NaN/inf as null (browsers refuse them in JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and column in _JSON_COLUMNS and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def tracks(reader: Reader) -> list[dict[str, Any]]:
    """Every track with runs, most runs first, with a short label (the name where unique)."""
    # Kept per reader and moved on as runs arrive (memory.views.track_runs): no scan per request.
    counts = track_runs(reader).items()
    found = [{"track": t, "runs": n, "last_ts": ts}
             for t, (n, ts) in sorted(counts, key=lambda x: (-x[1][0], x[0]))]
    labels = track_labels([t["track"] for t in found])
    for t in found:
        t["label"] = labels[t["track"]]
    return found


def pick_track(reader: Reader, track: str | None, found: list[dict[str, Any]] | None = None,
               trusted: list[str] | None = None) -> str | None:
    """The track id for `track` (an id, or a name: its busiest id), else the busiest track; with
    `trusted` authors, the busiest track any of them ran (else the busiest): keys are free, and a
    stranger's made-up track with more runs than the real one became every node's home page."""
    found = tracks(reader) if found is None else found
    if track is None and trusted:
        theirs = _tracks_of(reader, trusted)
        found = [t for t in found if t["track"] in theirs] or found
    for t in found:
        if track is None or track in (t["track"], t["track"].split(":", 1)[0]):
            return t["track"]
    return None


def _tracks_of(reader: Reader, authors: list[str]) -> frozenset[str]:
    """The tracks `authors` have valid runs on; kept per reader and moved on as runs arrive
    (memory.views.moving: a scan of a million runs took 40-80 ms, each request)."""
    def found(lo: int, hi: int) -> frozenset[str]:
        return frozenset(t for (t,) in reader.query(
            f"SELECT DISTINCT track FROM runs WHERE list_contains(?, author) AND {_VALID}",
            [authors, lo, hi]).rows)
    name = "tracks_of:" + hashlib.sha256(",".join(authors).encode()).hexdigest()
    return moving(reader, name, lambda hi: found(0, hi), lambda old, lo, hi: old | found(lo, hi))


def trusted_authors(c: Conclusions) -> list[str]:
    """The roots and the authors trusted here (`pick_track`'s `trusted`)."""
    state = c.trust_state()
    return sorted(state.roots | {a for a in state.authors if state.trusted(a)})


def _cut(reader: Reader, where: str, params: list[Any], limit: int) -> int:
    """The ts of the `limit`-th newest row matching `where`: a query that then filters on
    `ts >= ?` (a constant) lets DuckDB skip the older row groups by their min/max, instead of
    carrying every row's text through a top-N."""
    return reader.query(f"SELECT coalesce(min(ts), 0) FROM (SELECT ts FROM valid_runs WHERE "
                        f"{where} ORDER BY ts DESC LIMIT {int(limit)})", params).rows[0][0]


def baseline(v: Any) -> dict[str, Any] | None:
    """The track's noise floor as derived here: the base config's unselected runs that count
    (one per seed): {config_hash, n, mean, std, ts}; None before two such runs exist."""
    if v is None:
        return None
    tally = v.baseline_tally()
    if not tally:
        return None
    chash = min(tally, key=lambda h: (-tally[h], h))       # the most-run base config, ties by hash
    runs = v.baseline_runs(chash)
    if len(runs) < 2:
        return None
    values = [float(r["val_bpb"]) for r in runs]
    mean = sum(values) / len(values)
    std = (sum((x - mean) ** 2 for x in values) / (len(values) - 1)) ** 0.5
    return {"config_hash": chash, "n": len(runs), "mean": mean, "std": std,
            "ts": max(r["ts"] for r in runs)}


def overview(c: Conclusions, track: str | None, node: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """Running best over time with marks, runs per hour per node, role mix, peers, counts."""
    reader = c.reader
    found = tracks(reader)
    chosen = pick_track(reader, track, found, trusted_authors(c))
    out: dict[str, Any] = {"track": chosen, "tracks": found, "node": node}
    v = c.track(chosen) if chosen is not None else None
    if v is None:
        return {**out, "best": [], "marks": [], "claims": [], "runs_per_hour": [], "role_mix": [],
                "peers": _peers(c), "counts": {}, "baseline": None}
    rows = c.claim_rows(v.track)
    claims, omitted = few_strangers(rows, lambda r: r["trusted"])
    claims = _claim_marks(v, claims)
    floor = baseline(v)
    marks = _marks(v)
    # The chart's time axis starts at the first run that counts here: a stranger's run or claim
    # stamped in 1970 (ts is the author's word; only the future is bounded) would squeeze every
    # real point into a sliver of a 56-year axis.
    since = min((m["ts"] for m in marks if m["counts"]), default=None)
    return {**out, "baseline": floor, "best": best_over_time(v, floor), "marks": marks,
            "since": since, "claims": claims, "runs_per_hour": _per_hour(c, chosen),
            "role_mix": _role_mix(reader), "peers": _peers(c),
            "untrusted_claims_omitted": omitted,
            "counts": {"runs": next(t["runs"] for t in found if t["track"] == chosen),
                       "claims": _tally(x["status"] for x in rows if x["trusted"]),
                       "untrusted_claims": _tally(x["status"] for x in rows if not x["trusted"])}}


def _tally(statuses: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for status in statuses:
        out[status] = out.get(status, 0) + 1
    return out


def best_over_time(v: Any, floor: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The verified best as steps: the baseline's mean, then each claim that became the best
    (`Verdicts.best_steps`: the rule the nodes use, at the claim's evidence mean, which stops
    moving once it is verified), at the time its last counted fresh seed arrived."""
    steps = [] if floor is None else [{"ts": floor["ts"], "val_bpb": floor["mean"],
                                       "what": "baseline"}]
    for claim, mean, _ in v.best_steps():
        steps.append({"ts": _verified_ts(v, claim), "val_bpb": mean, "what": _diff_text(claim.diff)})
    return steps


def _verified_ts(v: Any, claim: Any) -> int:
    fresh = [r["ts"] for r in v.refs(claim.id)
             if r["purpose"] == "verify" and r["author"] != claim.author and v.counts(r)]
    return max(fresh, default=claim.ts)


def _diff_text(diff: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in (diff or {}).items()) or "(base)"


def _marks(v: Any) -> list[dict[str, Any]]:
    # The newest runs that count here (sane, by a trusted author), then the newest of the rest
    # up to a quarter as many: a flood of strangers' runs cannot push the counted ones off the
    # chart. No ids or authors: their text would triple the payload.
    counted = v.newest_counted(MAX_MARKS)
    others = [r for r in v.newest_finished(MAX_MARKS) if not r["counts"]][:MAX_MARKS // 4]
    runs = sorted(counted + others, key=lambda r: (r["ts"], r["id"]), reverse=True)
    return [{"ts": r["ts"], "val_bpb": _clean(r["val_bpb"]), "purpose": r["purpose"],
             "counts": bool(r["counts"])} for r in runs]


def _claim_marks(v: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims of `rows` (newest first, as `Conclusions.claim_rows` gives them) oldest first,
    each at its config's mean (trusted runs; an untrusted claim's at its author's own runs, as its
    provisional status is computed)."""
    out = []
    for row in reversed(rows):
        admit = frozenset() if row["trusted"] else frozenset({row["author"]})
        mean = v.mean(row["candidate_hash"], admit)
        out.append({"claim": row["claim"], "ts": row["ts"], "status": row["status"],
                    "trusted": row["trusted"], "diff": row["diff"], "effect": row["effect"],
                    "val_bpb": None if mean is None else mean[0]})
    return out


def _per_hour(c: Conclusions, track: str) -> list[dict[str, Any]]:
    """Runs per hour per author trusted here over the track's last 48 hours (of its newest run's
    ts); every other author's runs together under author None. Keys are free: 3,000 strangers'
    runs gave 3,000 colours, the trusted nodes' bars lost among them, the legend cut off."""
    reader = c.reader
    def counted(lo: int, hi: int) -> dict[tuple[int, str], int]:
        return {(h, a): n for h, a, n in reader.query(
            "SELECT (ts // 3600000) * 3600000, author, count(*) FROM runs WHERE track = ? AND "
            f"{_VALID} GROUP BY ALL", [track, lo, hi]).rows}

    def step(old: dict[tuple[int, str], int], lo: int, hi: int) -> dict[tuple[int, str], int]:
        out = dict(old)
        for key, n in counted(lo, hi).items():
            out[key] = out.get(key, 0) + n
        return out
    # Every hour's counts, kept per reader and moved on as runs arrive (memory.views.moving):
    # a million runs are not grouped again for each request.
    hours = moving(reader, f"per_hour:{track}", lambda hi: counted(0, hi), step)
    start = max((h for h, _ in hours), default=0) - 48 * 3_600_000
    state = c.trust_state()
    out: dict[tuple[int, str | None], int] = {}
    for (h, a), n in hours.items():
        if h >= start:
            key = (h, a if state.trusted(a) else None)
            out[key] = out.get(key, 0) + n
    return [{"hour": h, "author": a, "runs": n}
            for (h, a), n in sorted(out.items(), key=lambda x: (x[0][0], x[0][1] or ""))]


def _role_mix(reader: Reader) -> list[dict[str, Any]]:
    return _rows(reader, """
        SELECT (ts // 3600000) * 3600000 AS hour, role, count(*) AS n FROM roles
        WHERE ts >= (SELECT max(ts) FROM roles) - 48 * 3600000 GROUP BY ALL ORDER BY hour, role""")


def _peers(c: Conclusions) -> list[dict[str, Any]]:
    """The newest 200 nodes: name, `label` (the name, or name:…tail where another node's name
    looks like it, a trusted node's among them: swarm/output.py `peer_labels`) and `trust`."""
    rows = _rows(c.reader, """
        SELECT author, arg_max(name, ts) AS name, arg_max(accelerator, ts) AS accelerator,
               max(ts) AS ts FROM nodes GROUP BY author ORDER BY ts DESC LIMIT 200""")
    state = c.trust_state()
    # trusted nodes' names count even when their node records are older than the 200 listed
    trusted = trusted_authors(c)
    names = {r["author"]: r["name"] for r in _rows(c.reader, """
        SELECT author, arg_max(name, ts) AS name FROM nodes WHERE list_contains(?, author)
        GROUP BY author""", [trusted])} if trusted else {}
    labels = peer_labels(names | {r["author"]: r["name"] for r in rows})
    return [{**r, "label": labels[r["author"]], "trust": state.standing(r["author"]).status}
            for r in rows]


def leaderboard(c: Conclusions, track: str | None, limit: int = 20) -> dict[str, Any]:
    """`swarm leaderboard --json`'s rows for the track, every seed of theirs (those that count
    here, and untrusted ones marked `counts: false`) and the baseline's noise band."""
    chosen = pick_track(c.reader, track, trusted=trusted_authors(c))
    v = c.track(chosen) if chosen is not None else None
    if v is None:
        return {"track": chosen, "rows": [], "seeds": [], "baseline": None}
    rows = [{k: _clean(x, k) for k, x in r.items()} for r in c.leaderboard_rows(chosen, limit)]
    seeds, omitted = [], 0
    for row in rows:
        counted = v.config_runs(row["config_hash"]) if row["trusted"] else []
        strangers, left = few_strangers(v.untrusted_runs(row["config_hash"]), lambda r: False)
        omitted += left
        for run, counts in [(r, True) for r in counted] + [(r, False) for r in strangers]:
            seeds.append({"config_hash": row["config_hash"], "seed": run["seed"],
                          "val_bpb": _clean(run["val_bpb"]), "id": run["id"],
                          "author": run["author"], "counts": counts})
    return {"track": chosen, "rows": rows, "seeds": seeds, "baseline": baseline(v),
            "untrusted_seeds_omitted": omitted}


def claims(c: Conclusions, track: str | None) -> dict[str, Any]:
    """`swarm findings --json`'s claims of the track: trusted and untrusted apart."""
    chosen = pick_track(c.reader, track, trusted=trusted_authors(c))
    rows = c.claim_rows(chosen) if chosen is not None else []
    others, omitted = few_strangers([r for r in rows if not r["trusted"]], lambda r: False)
    return {"track": chosen, "claims": [r for r in rows if r["trusted"]],
            "untrusted_claims": others, "untrusted_claims_omitted": omitted}


def full_id(c: Conclusions, kind: str, wanted: str) -> str | None:
    """The id of the one `kind` record whose id begins with `wanted`: a prefix of 4+ hex chars,
    as the tables show ids (`swarm show` takes the same); None when none or several match."""
    wanted = wanted.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,64}", wanted):
        return None
    if len(wanted) == 64:
        return wanted               # the records table's key finds it at once (below)
    rows = c.reader.query("SELECT id FROM records WHERE kind = ? AND starts_with(id, ?) "
                          "ORDER BY id LIMIT 2", [kind, wanted]).rows
    return rows[0][0] if len(rows) == 1 else None


def claim(c: Conclusions, claim_id: str) -> dict[str, Any] | None:
    """A claim as derived here: its status and why, which runs counted and which did not (and
    why), the test against the trusted baseline; others' assessments and verifications as advice.
    `claim_id` may be a unique prefix."""
    claim_id = full_id(c, "claim", claim_id) or ""
    found = _rows(c.reader, "SELECT track, summary FROM valid_claims WHERE id = ?", [claim_id])
    v = c.track(found[0]["track"]) if found else None
    view = next((x for x in v.claims if x.id == claim_id), None) if v is not None else None
    if view is None:
        return None
    row = next(r for r in c.claim_rows(v.track) if r["claim"] == claim_id)
    test, floor = view.test if view.test is not None else (None, None)
    standing = c.trust_state()
    evidence, omitted = few_strangers(_evidence(v, view), lambda r: r["side"] != "verify"
                                      or r["trusted"])
    assessments, left_a = few_strangers(_advice(c, "assessments", claim_id, standing), _vouched)
    verifications, left_v = few_strangers(_advice(c, "verifications", claim_id, standing), _vouched)
    return {"claim": row, "summary": found[0]["summary"], "evidence": evidence,
            "baseline": None if floor is None else {"n": floor.n, "mean": floor.mean,
                                                    "std": floor.std},
            "measured_effect": None if test is None else test.effect,
            "effect_in_sd": None if test is None or not floor.std else test.effect / floor.std,
            "assessments": assessments, "verifications": verifications,
            "omitted": {"verify_runs": omitted, "assessments": left_a, "verifications": left_v},
            "why": _why(row)}


def _vouched(row: dict[str, Any]) -> bool:
    return row["author_status"] in ("root", "trusted")


def _evidence(v: Any, view: Any) -> list[dict[str, Any]]:
    """Cited candidate runs (counted or why not), the baseline runs that counted (or cited and
    why not), and fresh verification seeds."""
    admit = frozenset({view.author})
    out = [_run_row(v, i, "candidate", view.excluded.get(i)) for i in view.candidate_runs]
    counted = v.baseline_runs(view.baseline_hash, admit)
    used = {r["id"] for r in counted}
    out += [_run_row(v, r["id"], "baseline", None) for r in counted]
    out += [_run_row(v, i, "baseline", v.why_not(i, admit) or "not an unselected run of the "
                     "baseline config (screens and repeated seeds are set aside)")
            for i in view.baseline_runs if i not in used]
    for run in v.refs(view.id):
        if run["purpose"] == "verify":
            why = "by the claimant" if run["author"] == view.author else v.why_not(run["id"])
            out.append({**_run_row(v, run["id"], "verify", why),
                        "trusted": v.trust.counts(run)})
    return out


def _run_row(v: Any, run_id: str, side: str, why_not: str | None) -> dict[str, Any]:
    run = v.run(run_id) or {}
    return {"id": run_id, "side": side, "seed": run.get("seed"),
            "val_bpb": _clean(run.get("val_bpb")), "author": run.get("author"), "ts": run.get("ts"), "counts": why_not is None,
            "why_not": why_not if run else "not in this replica"}


def _advice(c: Conclusions, table: str, claim_id: str, standing: Any) -> list[dict[str, Any]]:
    rows = _rows(c.reader, f"SELECT * FROM {table} WHERE claim = ? ORDER BY ts, id", [claim_id])
    for row in rows:
        row["author_status"] = standing.standing(row["author"]).status
    return rows


def _why(row: dict[str, Any]) -> str:
    reasons = {
        "pending": "not testable here yet",
        "stale": "its cited runs are still unknown here after the grace period",
        "not_supported": "the test here does not support it",
        "supported": "the test here supports it; no trusted fresh seeds confirm it yet",
        "verified": "supported here, and trusted fresh seeds by others confirm it",
        "inconclusive": "supported here, but trusted fresh seeds did not confirm it",
        "disputed": "trusted replays of a cited run disagree",
        "refuted": "a trusted replay contradicts a cited run"}
    text = reasons.get(row["status"], row["status"])
    text += f" ({row['reason']})" if row["reason"] else ""
    if not row["trusted"]:
        text = "provisional (its author is not trusted here): " + text
    return text


def knobs(c: Conclusions, track: str | None) -> dict[str, Any]:
    """The newest finding's knob effects (± 2 se) and the base config's knobs never varied; the
    finding is its author's testimony (as in `swarm findings`: the newest by a trusted author,
    else the newest, marked), with the author's standing here."""
    reader = c.reader
    chosen = pick_track(reader, track, trusted=trusted_authors(c))
    found = c.newest_findings("track = ?", [chosen]) if chosen else []
    finding = found[0] if found else None
    if finding is not None:
        del finding["refs"], finding["track"]
        finding["author_status"] = c.trust_state().standing(finding["author"]).status
    effects = []
    for e in (finding or {}).get("effects", []):
        # Effects are the finding author's numbers: finite, yet their sums may overflow to inf.
        se = e.get("stderr")
        # A joint effect (docs/ROLES.md "Aliased knobs") is shown as its settings, a=1 & b=2.
        settings = R.effect_settings(e["knob"], e["value"])
        effects.append({**e, "lo": None if se is None else _clean(e["effect"] - 2 * se),
                        "hi": None if se is None else _clean(e["effect"] + 2 * se),
                        "settings": settings if len(settings) > 1 else None})
    base = track_base(base_configs(reader), chosen or "") or {}
    tried = {k for e in effects for k in (e["settings"] or {e["knob"]: None})}
    return {"track": chosen, "finding": finding, "effects": effects,
            "never_tried": sorted(k for k in base if k not in tried)}


def runs(c: Conclusions, track: str | None = None, status: str | None = None,
         purpose: str | None = None, author: str | None = None, limit: int = MAX_RUNS) -> dict[str, Any]:
    """The newest runs (filtered), each with its config's diff from the track's base config and
    its author's standing here (`author_status`: root, trusted, untrusted, distrusted)."""
    reader = c.reader
    # Only the filters asked for: DuckDB then scans just their columns.
    wanted = [("(track = ? OR split_part(track, ':', 1) = ?)", [track, track], track),
              ("status = ?", [status], status), ("purpose = ?", [purpose], purpose),
              ("author = ?", [author], author)]
    match = " AND ".join([sql for sql, _, value in wanted if value is not None] or ["true"])
    filters = [p for _, params, value in wanted if value is not None for p in params]
    limit = min(limit, MAX_RUNS)
    found = _rows(reader, f"""
        SELECT id, author, ts, track, config_hash, seed, status, val_bpb, train_loss, wall_s,
               purpose, config FROM valid_runs WHERE {match} AND ts >= ?
        ORDER BY ts DESC, id LIMIT ?""", [*filters, _cut(reader, match, filters, limit), limit])
    bases = base_configs(reader)
    standing = c.trust_state()
    for row in found:
        row["diff"] = config_diff(row.pop("config"), track_base(bases, row["track"]))
        row["author_status"] = standing.standing(row["author"]).status
    return {"runs": found}


def run(c: Conclusions, run_id: str) -> dict[str, Any] | None:
    """One run in full: its body (with `curve` and `samples` when the harness stored them),
    `here`: whether it counts as evidence here, and why not (`swarm show --json`'s `here`), and
    its `judgements`, each judge trusted here or not (`swarm show --json`'s `judgements`).
    `run_id` may be a unique prefix."""
    run_id = full_id(c, "run", run_id) or ""
    reader = c.reader
    # The records table's key finds it at once; `runs` has no index and would be scanned.
    # `id = ?` alone: DuckDB uses the key's index only for a lone equality filter.
    found = reader.query("SELECT raw, kind FROM records WHERE id = ?", [run_id]).rows
    if not found or found[0][1] != "run":
        return None
    raw = found[0][0] if isinstance(found[0][0], bytes) else bytes.fromhex(found[0][0])
    record = codec.decode(raw, now=2**52)       # stored records were checked; skip the clock check
    body = record.body.model_dump(mode="json")
    base = track_base(base_configs(reader), record.body.track)
    return {"id": record.id, "author": record.author, "ts": record.ts, "body": body,
            "diff": config_diff(body.get("config"), base), "curve": body.get("curve"),
            "samples": body.get("samples"), "here": c.explain(record),
            "judgements": c.judgements(record.id)}


def trust(c: Conclusions) -> dict[str, Any]:
    """Who is trusted here and why: `swarm trust --json`'s first MAX_AUTHORS rows (roots and
    trusted first, then by runs: keys are free, so a flood of them is a long tail), how many
    there are, and the roots' own key."""
    from swarm.conclusions import own_peer_id

    rows = c.authors()
    return {"authors": rows[:MAX_AUTHORS], "total": len(rows), "own": own_peer_id(c.home)}
