"""Verdicts derived locally (docs/TRUST.md): claim status, baselines, the leaderboard and the best
config of one track, from sane runs by trusted authors only.

The SQL views (memory/views.py) say what the records *testify*; this layer says what this node
*concludes*, given its trust roots. Another author's assessment or verification is advice: the
statistics are re-derived from runs. A claim by an author this node does not trust yet gets a
provisional status (its author's own runs admitted for it alone) so verifiers can spot-check it;
it is marked untrusted and never moves the best config or the leaderboard top.

Everything is recomputed when the memory's runs or claims change (a cache keyed by their counts),
in a fixed order with ties broken by id, so two nodes with the same records and roots agree.
"""
from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from memory import stats
from roles import sanity, trust

# Runs that estimate a baseline without selection bias: the baseline's own seeds, fresh seeds of a
# verification, replays (one value per seed: a replay repeats its target's seed).
BASELINE_PURPOSES = ("baseline", "verify", "replay")
GRACE_MS = 3_600_000          # a claim whose cited runs are still unknown after this is stale
_RUN_COLUMNS = ("id, author, ts, track, config_hash, config, seed, status, val_bpb, tokens, steps, "
                "mfu, purpose, ref, accelerator, device_name, cores")
_CACHE: weakref.WeakKeyDictionary[Any, OrderedDict[tuple, Verdicts]] = weakref.WeakKeyDictionary()
_LOCK = threading.RLock()
_CACHE_SIZE = 16          # entries kept per reader (a few tracks and roots, two keys each)


def _rows(reader: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    result = reader.query(sql, params)
    return [dict(zip(result.columns, r)) for r in result.rows]


def _ids(value: Any) -> list[str]:
    try:
        out = json.loads(value) if isinstance(value, str) else list(value or [])
    except (TypeError, ValueError):
        return []
    return [x for x in out if isinstance(x, str)]


@dataclass
class ClaimView:
    """One claim as this node judges it."""

    id: str
    author: str
    ts: int
    track: str
    baseline_hash: str
    candidate_hash: str
    diff: dict[str, Any]
    baseline_runs: list[str]
    candidate_runs: list[str]
    effect: float
    trusted: bool                      # its author's runs count here
    status: str = "pending"            # pending | stale | not_supported | supported | verified |
    #                                    inconclusive | disputed | refuted
    reason: str = ""
    p: float | None = None
    q: float | None = None
    n: int = 0
    counted: list[str] = field(default_factory=list)           # candidate runs that counted
    excluded: dict[str, str] = field(default_factory=dict)      # run id -> why it did not
    test: Any = None                   # (stats.TestResult, stats.NoiseFloor) once testable
    verdict: stats.Verdict | None = None   # the statistics' verdict, before verification

    def as_row(self) -> dict[str, Any]:
        """The shape `evidence.claims` hands to roles and the CLI."""
        return {"id": self.id, "author": self.author, "ts": self.ts, "status": self.status,
                "trusted": self.trusted, "effect": self.effect, "diff": self.diff,
                "baseline_hash": self.baseline_hash, "candidate_hash": self.candidate_hash,
                "baseline_runs": self.baseline_runs, "candidate_runs": self.candidate_runs,
                "reason": self.reason, "p_value": self.p, "q_value": self.q}


class Verdicts:
    """This node's conclusions on one track."""

    def __init__(self, reader: Any, track: str, roots: frozenset[str], facts: sanity.TrackFacts,
                 params: stats.GateParams) -> None:
        self.track, self.roots, self.facts, self.params = track, roots, facts, params
        self.trust = trust.compute(trust.load_replays(reader, facts), roots)
        runs = _rows(reader, f"SELECT {_RUN_COLUMNS} FROM valid_runs WHERE track = ? "
                             "ORDER BY ts, id", [track])
        self.runs = {r["id"]: r for r in runs}
        self.by_config: dict[str, list[dict[str, Any]]] = {}
        self.by_ref: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            self.by_config.setdefault(run["config_hash"], []).append(run)
            self.by_ref.setdefault(run["ref"], []).append(run)
        self.insane = {r["id"]: why for r in runs if (why := sanity.reason(r, facts))}
        # The FDR family: every candidate trusted authors screened (claimed or not); screens by
        # untrusted keys stay out, or a flood of them would dilute honest claims' q-values.
        self.screened = len({r["config_hash"] for r in runs if r["purpose"] == "screen"
                             and self.trust.trusted(r["author"])})
        self.claims = [self._claim(c) for c in _rows(
            reader, "SELECT id, author, ts, track, baseline_hash, candidate_hash, diff, "
                    "baseline_runs, candidate_runs, effect FROM valid_claims WHERE track = ? "
                    "ORDER BY ts, id", [track])]
        self._judge_claims()

    # ---- evidence --------------------------------------------------------------------------------

    def counts(self, run: dict[str, Any], admit: frozenset[str] = frozenset()) -> bool:
        """Is this run evidence here (sane, finished, by a trusted or admitted author)?"""
        return (run["status"] == "ok" and run["id"] not in self.insane
                and (self.trust.trusted(run["author"]) or run["author"] in admit)
                and not self.trust.distrusted(run["author"]))

    def why_not(self, run_id: str, admit: frozenset[str] = frozenset()) -> str | None:
        """Why a run does not count (None when it does)."""
        run = self.runs.get(run_id)
        if run is None:
            return "not in this replica (or not on this track)"
        if run_id in self.insane:
            return self.insane[run_id]
        if run["status"] != "ok":
            return f"status {run['status']}"
        if self.trust.distrusted(run["author"]):
            return "author distrusted: " + self.trust.standing(run["author"]).why
        if not (self.trust.trusted(run["author"]) or run["author"] in admit):
            return "author not trusted yet"
        return None

    def baseline_runs(self, chash: str, admit: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Unselected runs of a config that count, one per seed (the oldest), oldest first."""
        seen: set[int] = set()
        out = []
        for run in self.by_config.get(chash, []):
            if (run["purpose"] in BASELINE_PURPOSES
                    and run["seed"] not in seen and self.counts(run, admit)):
                seen.add(run["seed"])
                out.append(run)
        return out

    def config_runs(self, chash: str, admit: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Every counted run of a config, one per seed (for its mean on the leaderboard)."""
        seen: set[int] = set()
        out = []
        for run in self.by_config.get(chash, []):
            if run["seed"] not in seen and self.counts(run, admit):
                seen.add(run["seed"])
                out.append(run)
        return out

    # ---- claims ----------------------------------------------------------------------------------

    def _claim(self, row: dict[str, Any]) -> ClaimView:
        diff = row["diff"]
        claim = ClaimView(
            id=row["id"], author=row["author"], ts=row["ts"], track=row["track"],
            baseline_hash=row["baseline_hash"], candidate_hash=row["candidate_hash"],
            diff=json.loads(diff) if isinstance(diff, str) else dict(diff),
            baseline_runs=_ids(row["baseline_runs"]), candidate_runs=_ids(row["candidate_runs"]),
            effect=float(row["effect"]), trusted=self.trust.trusted(row["author"]))
        self._evidence(claim)
        return claim

    def _evidence(self, claim: ClaimView) -> None:
        admit = frozenset({claim.author})
        missing = [i for i in claim.candidate_runs if i not in self.runs]
        for run_id in claim.candidate_runs:
            why = self.why_not(run_id, admit) or self._candidate_problem(claim, run_id)
            if why:
                claim.excluded[run_id] = why
            else:
                claim.counted.append(run_id)
        if missing:
            claim.reason = f"{len(missing)} cited run(s) not in this replica"
            return
        if (why := sanity.diff_reason({}, claim.diff)) is not None:
            claim.reason = f"refused: {why}"       # no work for anyone: never tested
            return
        values = [float(self.runs[i]["val_bpb"]) for i in claim.counted]
        base = [float(r["val_bpb"]) for r in self.baseline_runs(claim.baseline_hash, admit)]
        if not values or len(base) < 2:
            claim.reason = f"{len(values)} candidate and {len(base)} baseline runs count"
            return
        claim.test = (stats.claim_test(values, base, self.params), stats.noise_floor(base))

    def _candidate_problem(self, claim: ClaimView, run_id: str) -> str | None:
        run = self.runs[run_id]
        if run["purpose"] == "screen":
            return "a screening run (selected for being good)"
        if run["config_hash"] != claim.candidate_hash:
            return "not a run of the candidate config"
        return None

    def _judge_claims(self) -> None:
        tested = [c for c in self.claims if c.test is not None]
        family = [c for c in tested if c.trusted]
        verdicts = dict(zip((c.id for c in family), self._decide(family)))
        for claim in tested:
            if claim.id not in verdicts:   # provisional: judged within the trusted family
                verdicts[claim.id] = self._decide(family + [claim])[-1]
        for claim in self.claims:
            self._status(claim, verdicts.get(claim.id))

    def _decide(self, claims: list[ClaimView]) -> list[stats.Verdict]:
        if not claims:
            return []
        return stats.decide([c.test[0] for c in claims], [c.test[1].std for c in claims],
                            self.params, family=max(self.screened, len(claims)))

    def _status(self, claim: ClaimView, verdict: stats.Verdict | None) -> None:
        outcomes = {self.trust.run_outcome.get(i) for i in claim.candidate_runs}
        if "refuted" in outcomes:
            claim.status, claim.reason = "refuted", "a trusted replay contradicts a cited run"
            return
        if verdict is None:
            return                         # pending; the reason says what is missing
        result = claim.test[0]
        claim.p, claim.q, claim.n, claim.verdict = result.p, verdict.q, result.n, verdict
        if not verdict.supported:
            claim.status, claim.reason = "not_supported", verdict.reason
        elif "disputed" in outcomes:
            claim.status, claim.reason = "disputed", "trusted replays of a cited run disagree"
        else:
            self._verification(claim, verdict)

    def _verification(self, claim: ClaimView, verdict: stats.Verdict) -> None:
        fresh = [float(r["val_bpb"]) for r in self.by_ref.get(claim.id, [])
                 if r["purpose"] == "verify"
                 and r["config_hash"] == claim.candidate_hash and r["author"] != claim.author
                 and self.counts(r)]
        claim.status, claim.reason = "supported", verdict.reason
        if not fresh:
            return
        base = [float(r["val_bpb"]) for r in self.baseline_runs(claim.baseline_hash,
                                                                 frozenset({claim.author}))]
        outcome, _, why = stats.verification_outcome(None, fresh, base, self.params)
        # Fresh seeds that are not better leave the claim inconclusive, never refuted: only a
        # trusted replay that disagrees refutes (anyone can fail to reproduce an effect).
        claim.status = "verified" if outcome == "confirmed" else "inconclusive"
        claim.reason = f"{len(fresh)} trusted fresh seed(s): {why}"

    def stale(self, claim: ClaimView, now_ms: int) -> bool:
        """Cited runs still unknown after the grace period: nothing anyone can do about it."""
        return claim.status == "pending" and claim.reason.endswith("not in this replica") \
            and now_ms - claim.ts > GRACE_MS

    # ---- conclusions -----------------------------------------------------------------------------

    def verified(self) -> list[ClaimView]:
        """Verified claims by trusted authors."""
        return [c for c in self.claims if c.trusted and c.status == "verified"]

    def mean(self, chash: str, admit: frozenset[str] = frozenset()) -> tuple[float, int] | None:
        """Mean val_bpb of a config over its counted runs, and their number."""
        values = [float(r["val_bpb"]) for r in self.config_runs(chash, admit)]
        return (sum(values) / len(values), len(values)) if values else None

    def best(self) -> tuple[str, dict[str, Any]] | None:
        """The best verified config (lowest trusted mean, ties by hash): (hash, config)."""
        ranked = []
        for claim in self.verified():
            m = self.mean(claim.candidate_hash)
            run = next((self.runs[i] for i in claim.counted), None)
            if m is not None and run is not None:
                ranked.append((m[0], claim.candidate_hash, run["config"]))
        if not ranked:
            return None
        _, chash, config = min(ranked)
        return chash, json.loads(config) if isinstance(config, str) else dict(config)

    def leaderboard(self, limit: int = 20) -> list[dict[str, Any]]:
        """Configs ranked by trusted mean; untrusted configs follow, marked, never ranked."""
        verified = {c.candidate_hash for c in self.verified()}
        hashes = sorted(self.by_config)
        rows = []
        for chash in hashes:
            m = self.mean(chash)
            if m is not None:
                rows.append({"config_hash": chash, "mean": m[0], "n": m[1], "trusted": True,
                             "verified": chash in verified})
        rows.sort(key=lambda r: (r["mean"], r["config_hash"]))
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        return rows[:limit] + self._untrusted_rows(hashes, {r["config_hash"] for r in rows}, limit)

    def untrusted_runs(self, chash: str) -> list[dict[str, Any]]:
        """A config's sane finished runs by authors not trusted here (shown, marked, never counted)."""
        return [r for r in self.by_config.get(chash, []) if r["status"] == "ok"
                and r["id"] not in self.insane and not self.trust.trusted(r["author"])]

    def _untrusted_rows(self, hashes: list[str], ranked: set[str], limit: int) -> list[dict]:
        out = []
        for chash in hashes:
            values = [float(r["val_bpb"]) for r in self.untrusted_runs(chash)]
            if values and chash not in ranked:
                out.append({"config_hash": chash, "mean": sum(values) / len(values),
                            "n": len(values), "trusted": False, "verified": False, "rank": None})
        out.sort(key=lambda r: (r["mean"], r["config_hash"]))
        return out[:limit]


def _key(reader: Any, track: str, roots: frozenset[str], facts: sanity.TrackFacts,
         params: stats.GateParams) -> tuple:
    counts = reader.query("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM claims)",
                          []).rows[0]
    budgets = tuple(sorted(facts.budgets.items()))
    return (tuple(counts), track, tuple(sorted(roots)), budgets, repr(params))


def get(reader: Any, track: str, roots: frozenset[str], facts: sanity.TrackFacts,
        params: stats.GateParams) -> Verdicts:
    """The verdicts for this memory state (cached until runs or claims change).

    One at a time: the dashboard's request threads and the roles share a reader, and a second
    caller then waits for the first computation instead of repeating it."""
    with _LOCK:
        return _get(reader, track, roots, facts, params)


def _get(reader: Any, track: str, roots: frozenset[str], facts: sanity.TrackFacts,
         params: stats.GateParams) -> Verdicts:
    try:
        cache = _CACHE.setdefault(reader, OrderedDict())
    except TypeError:                      # a reader that cannot be weakly referenced: no cache
        return Verdicts(reader, track, roots, facts, params)
    # A Store counts its writes: an unchanged count answers without a query.
    version = getattr(reader, "_version", None)
    quick = ("version", version, track, tuple(sorted(roots)), repr(facts), repr(params))
    if version is not None and quick in cache:
        return cache[quick]
    key = _key(reader, track, roots, facts, params)
    hit = cache.get(key)
    if hit is None:
        hit = cache[key] = Verdicts(reader, track, roots, facts, params)
    cache.move_to_end(key)
    if version is not None:
        cache[quick] = hit
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return hit


def cli_facts(reader: Any) -> sanity.TrackFacts:
    """Track facts for browsing every track in the memory: the shipped tracks' budgets where a
    track id is one of theirs (other budgets are other ids: their token checks are skipped)."""
    from node.harness.tracks import TRACKS

    shipped = {t.id: t.budget.tokens for t in TRACKS.values() if t.data.pinned}
    tracks = [r[0] for r in reader.query("SELECT DISTINCT track FROM runs ORDER BY track", []).rows]
    return sanity.TrackFacts({t: shipped.get(t) for t in tracks})


def all_tracks(reader: Any, roots: frozenset[str], track: str | None = None,
               params: stats.GateParams | None = None) -> dict[str, Verdicts]:
    """This node's verdicts on every track of the memory (or one), for browsing."""
    facts = cli_facts(reader)
    names = [t for t in facts.budgets if track is None or track in (t, t.split(":")[0])]
    return {t: get(reader, t, roots, facts, params or stats.GateParams()) for t in names}
