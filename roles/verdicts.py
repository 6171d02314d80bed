"""Verdicts derived locally (docs/TRUST.md): claim status, baselines, the leaderboard and the best
config of one track, from sane runs by trusted authors only.

The SQL views (memory/views.py) say what the records *testify*; this layer says what this node
*concludes*, given its trust roots. Another author's assessment or verification is advice: the
statistics are re-derived from runs. A claim by an author this node does not trust yet gets a
provisional status (its author's own runs admitted for it alone) so verifiers can spot-check it;
it is marked untrusted and never moves the best config or the leaderboard top.

Everything is recomputed when the memory's runs or claims change (a cache keyed by the store's
write counter, else by their counts), in a fixed order with ties broken by id, so two nodes with
the same records and roots agree. The recomputation never walks every run in Python: trust reads
the replays only, claims read the runs they cite and their configs' runs, and the aggregates over
all runs (the leaderboard's ranking, the newest marks) are SQL with the sanity bounds and the
trusted authors as predicates (roles/evidence_sql.py). roles/verdicts_ref.py computes the same
verdicts by a Python pass over every run: the reference the SQL path is tested against.
"""
from __future__ import annotations

import bisect
import functools
import json
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from memory import stats, views
from roles import (evidence_inc, evidence_sql, replays_inc, root_runs_inc, run_rows, sanity,
                   trust)

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


def trusted_authors(roots: frozenset[str], state: Any) -> list[str]:
    """The run keys whose runs count, sorted (roles/trust.py `run_key`): the roots and the
    authors `state` (a TrustState) trusts, each also as `author#kind` where its runs of that
    accelerator kind count. Roots are never distrusted."""
    return sorted(set(roots) | set(state.keys()))


class Verdicts:
    """This node's conclusions on one track.

    Aggregates over every run (the leaderboard's ranking, the overview's marks) are SQL over the
    sane runs by trusted authors (roles/evidence_sql.py); runs are read into Python only for the
    configs, claims and ids asked about. `runs`, `by_config`, `by_ref` and `insane` still hold
    every run of the track, read on first use (roles that walk all runs)."""

    def __init__(self, reader: Any, track: str, roots: frozenset[str], facts: sanity.TrackFacts,
                 params: stats.GateParams, base: Verdicts | None = None) -> None:
        """The verdicts as the memory stands; `base`, the same track's verdicts at an earlier
        state, lets the aggregates over every run move on from it (roles/evidence_inc.py)."""
        self.reader, self.track, self.roots, self.facts, self.params = (
            reader, track, roots, facts, params)
        # The mark first: the aggregates count the runs below it, whatever arrives meanwhile.
        upto, equivocated = evidence_inc.mark(reader), evidence_inc.equivocations(reader)
        self.trust = trust_state(reader, roots, facts)
        self.trusted_authors = trusted_authors(roots, self.trust)
        self.agg = (base.agg.advance(upto, self.trusted_authors, equivocated) if base is not None
                    else evidence_inc.Aggregates(reader, track, facts, self.trusted_authors, upto,
                                                 equivocated))
        self._lock = threading.RLock()
        self._why: dict[str, str | None] = {}
        self._run_cache: dict[str, dict[str, Any] | None] = {}
        self._config_cache: dict[str, list[dict[str, Any]]] = {}
        self._ref_cache: dict[str, list[dict[str, Any]]] = {}
        self._boards: dict[int, list[dict[str, Any]]] = {}
        self._memo: dict[tuple, Any] = {}
        if base is not None and self.agg.arrived is not None:
            self._carry(base, self.agg.arrived)
        self._claim_rows = _rows(
            reader, "SELECT id, author, ts, track, baseline_hash, candidate_hash, diff, "
                    "baseline_runs, candidate_runs, effect FROM valid_claims "
                    "WHERE track = ? ORDER BY ts, id", [track])
        # The claims are judged on first use (`claims`, `screened`, `discoveries`): a leaderboard
        # asked first reads its board's configs and the claims' in one scan.
        self._judgement: tuple[list[ClaimView], dict[str, tuple[int, str]], int] | None = None

    # ---- claims, judged on first use -------------------------------------------------------------

    @property
    def claims(self) -> list[ClaimView]:
        """The track's valid claims as this node judges them, in (ts, id) order."""
        return self._judged()[0]

    @property
    def screened(self) -> dict[str, tuple[int, str]]:
        """The FDR family: every candidate trusted authors screened (claimed or not), each with
        the (ts, id) of its first trusted screen; screens by untrusted keys stay out, or a flood
        of them would push honest claims to later slots with smaller shares of the error
        budget."""
        return self._judged()[1]

    @property
    def discoveries(self) -> int:
        """How many trusted claims LOND found supported."""
        return self._judged()[2]

    def _judged(self) -> tuple[list[ClaimView], dict[str, tuple[int, str]], int]:
        with self._lock:
            if self._judgement is None:
                self._preload(self._claim_rows)
                screened = self._screened()
                claims = [self._claim(c) for c in self._claim_rows]
                self._judgement = (claims, screened, self._judge_claims(claims, screened))
            return self._judgement

    # ---- reading runs ----------------------------------------------------------------------------

    def _load(self, **match: list[str]) -> list[dict[str, Any]]:
        rows = _load_runs(self.reader, self.track, match)
        with self._lock:
            for row in rows:
                self._run_cache[row["id"]] = row
        return rows

    def _carry(self, base: Verdicts, arrived: list[tuple[str, str, str | None]]) -> None:
        """Keep what `base` read of runs that the runs arrived since (id, config, ref) leave
        as they were: rows never change, a config's or a ref's list only grows."""
        ids = {i for i, _, _ in arrived}
        hashes = {h for _, h, _ in arrived}
        refs = {r for _, _, r in arrived}
        with base._lock:
            self._why.update(base._why)
            self._run_cache.update((i, r) for i, r in base._run_cache.items() if i not in ids)
            self._config_cache.update(
                (h, rows) for h, rows in base._config_cache.items() if h not in hashes)
            self._ref_cache.update((r, rows) for r, rows in base._ref_cache.items() if r not in refs)

    def _preload(self, claims: list[dict[str, Any]]) -> None:
        """Every run the claims' verdicts read and this object does not hold yet, in one query:
        cited runs, the runs of their baseline and candidate configs, fresh seeds citing them."""
        ids = sorted({i for c in claims for k in ("baseline_runs", "candidate_runs")
                      for i in _ids(c[k])} - set(self._run_cache))
        hashes = sorted({c[k] for c in claims for k in ("baseline_hash", "candidate_hash")}
                        - set(self._config_cache))
        refs = sorted({c["id"] for c in claims} - set(self._ref_cache))
        if not (ids or hashes or refs):
            return
        rows = self._load(config_hash=hashes, ref=refs, id=ids)
        self._group(self._config_cache, hashes, rows, "config_hash")
        self._group(self._ref_cache, refs, rows, "ref")
        for i in ids:
            self._run_cache.setdefault(i, None)

    @staticmethod
    def _group(cache: dict[str, list[dict[str, Any]]], keys: list[str],
               rows: list[dict[str, Any]], column: str) -> None:
        wanted = set(keys)
        grouped: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        for row in rows:
            if row[column] in wanted:
                grouped[row[column]].append(row)
        cache.update(grouped)

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run of the track (None when this replica has no such run on this track)."""
        full = self.__dict__.get("runs")
        if full is not None:
            return full.get(run_id)
        if run_id not in self._run_cache:
            row = _run_row(self.reader, run_id)
            with self._lock:
                self._run_cache[run_id] = row if row is not None and row["track"] == self.track \
                    else None
        return self._run_cache.get(run_id)

    def config_rows(self, chash: str) -> list[dict[str, Any]]:
        """Every run of a config on the track, oldest first."""
        if chash not in self._config_cache:
            self.load_configs([chash])
        return self._config_cache[chash]

    def load_configs(self, hashes: list[str]) -> None:
        """Read the runs of these configs in one query (for `config_rows`)."""
        need = sorted({h for h in hashes if h not in self._config_cache})
        if need:
            rows = self._load(config_hash=need)
            with self._lock:
                self._group(self._config_cache, need, rows, "config_hash")

    def refs(self, ref: str) -> list[dict[str, Any]]:
        """The track's runs whose `ref` is this id (fresh seeds of a claim, replays of a run)."""
        if ref not in self._ref_cache:
            rows = self._load(ref=[ref])
            with self._lock:
                self._ref_cache[ref] = rows
        return self._ref_cache[ref]

    @functools.cached_property
    def runs(self) -> dict[str, dict[str, Any]]:
        """Every run of the track by id, oldest first (read on first use)."""
        rows = _rows(self.reader, f"SELECT {_RUN_COLUMNS} FROM valid_runs WHERE track = ? "
                                  "ORDER BY ts, id", [self.track])
        return {r["id"]: r for r in rows}

    @functools.cached_property
    def by_config(self) -> dict[str, list[dict[str, Any]]]:
        """Every run of the track by config hash, oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs.values():
            out.setdefault(run["config_hash"], []).append(run)
        return out

    @functools.cached_property
    def by_ref(self) -> dict[str, list[dict[str, Any]]]:
        """Every run of the track by its `ref`, oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs.values():
            out.setdefault(run["ref"], []).append(run)
        return out

    @functools.cached_property
    def insane(self) -> dict[str, str]:
        """Run id -> why it is impossible, for every insane run of the track."""
        return {i: why for i, r in self.runs.items() if (why := self.insanity(r))}

    def insanity(self, run: dict[str, Any]) -> str | None:
        """Why this run breaks the sanity bounds (None when it is sane); memoised per run."""
        if run["id"] not in self._why:
            self._why[run["id"]] = sanity.reason(run, self.facts)
        return self._why[run["id"]]

    def _screened(self) -> dict[str, tuple[int, str]]:
        """Config hash -> (ts, id) of its first screen by a trusted author."""
        return dict(self.agg.screened())

    # ---- evidence --------------------------------------------------------------------------------

    def counts(self, run: dict[str, Any], admit: frozenset[str] = frozenset()) -> bool:
        """Is this run evidence here (sane, finished, by a trusted or admitted author)?"""
        return (run["status"] == "ok" and self.insanity(run) is None
                and (self.trust.counts(run) or run["author"] in admit)
                and not self.trust.distrusted(run["author"]))

    def why_not(self, run_id: str, admit: frozenset[str] = frozenset()) -> str | None:
        """Why a run does not count (None when it does)."""
        run = self.run(run_id)
        if run is None:
            return "not in this replica (or not on this track)"
        if (why := self.insanity(run)) is not None:
            return why
        if run["status"] != "ok":
            return f"status {run['status']}"
        if self.trust.distrusted(run["author"]):
            return "author distrusted: " + self.trust.standing(run["author"]).why
        if not (self.trust.counts(run) or run["author"] in admit):
            if self.trust.trusted(run["author"]):
                return (f"author not trusted on {run['accelerator']} yet (no run of its there "
                        "reproduced)")
            return "author not trusted yet"
        return None

    def baseline_runs(self, chash: str, admit: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Unselected runs of a config that count, one per seed (the oldest), oldest first."""
        seen: set[int] = set()
        out = []
        for run in self.config_rows(chash):
            if (run["purpose"] in BASELINE_PURPOSES
                    and run["seed"] not in seen and self.counts(run, admit)):
                seen.add(run["seed"])
                out.append(run)
        return out

    def config_runs(self, chash: str, admit: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Every counted run of a config, one per seed (for its mean on the leaderboard)."""
        seen: set[int] = set()
        out = []
        for run in self.config_rows(chash):
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
        missing = [i for i in claim.candidate_runs if self.run(i) is None]
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
        values = [float(self.run(i)["val_bpb"]) for i in claim.counted]
        base = self._frozen_baseline(claim)
        if not values or len(base) < 2:
            claim.reason = f"{len(values)} candidate and {len(base)} baseline runs count"
            return
        claim.test = (stats.claim_test(values, base, self.params), stats.noise_floor(base))

    def _frozen_baseline(self, claim: ClaimView) -> list[float]:
        """The claim's baseline evidence: the unselected counted runs of its baseline config that
        come before it in (ts, id) order. Runs made after the claim do not move its p-value, so
        its verdict stays as the baseline gathers seeds (the claimant still cannot pick: every
        such run counts, whoever made it)."""
        key = (claim.ts, claim.id)
        return [float(r["val_bpb"]) for r in self.baseline_runs(claim.baseline_hash,
                                                                 frozenset({claim.author}))
                if (r["ts"], r["id"]) < key]

    def _candidate_problem(self, claim: ClaimView, run_id: str) -> str | None:
        run = self.run(run_id)
        if run["purpose"] == "screen":
            return "a screening run (selected for being good)"
        if run["config_hash"] != claim.candidate_hash:
            return "not a run of the candidate config"
        return None

    def _judge_claims(self, claims: list[ClaimView], screened: dict[str, tuple[int, str]]) -> int:
        """LOND over the screened family (memory/stats.py): the trusted claims in (ts, id)
        order, each in its family slot, after the discoveries among the trusted claims before it.
        A verdict reads nothing that comes after its claim, so later screens and claims leave it
        as it is. A claim by an untrusted author is judged provisionally, in the slot its key
        would take, and is never a discovery for the others. Returns the discoveries."""
        trusted = [c for c in claims if c.trusted]
        keys, slot_of = self._slots(trusted, screened)
        verdicts: dict[str, stats.Verdict] = {}
        found: list[tuple[int, str]] = []          # keys of the discoveries so far, in order
        for claim in trusted:
            if claim.test is not None:
                verdict = self._decide(claim, slot_of[claim.id], len(found))
                verdicts[claim.id] = verdict
                if verdict.supported:
                    found.append((claim.ts, claim.id))
        for claim in claims:
            if not claim.trusted and claim.test is not None:
                key = (claim.ts, claim.id)
                verdicts[claim.id] = self._decide(claim, bisect.bisect_left(keys, key) + 1,
                                                  bisect.bisect_left(found, key))
        for claim in claims:
            self._status(claim, verdicts.get(claim.id))
        return len(found)

    def _slots(self, trusted: list[ClaimView], screened: dict[str, tuple[int, str]]
               ) -> tuple[list[tuple[int, str]], dict[str, int]]:
        """The family's keys in order, and each trusted claim's slot (1-based). A claim takes
        its candidate's slot (the first trusted screen's key) when that screen comes before it
        and no earlier trusted claim took it; otherwise its own, at its key (an unscreened
        candidate, a claim repeated)."""
        taken: set[str] = set()
        own: list[tuple[int, str]] = []
        key_of: dict[str, tuple[int, str]] = {}
        for claim in trusted:
            key, first = (claim.ts, claim.id), screened.get(claim.candidate_hash)
            if first is not None and first < key and claim.candidate_hash not in taken:
                taken.add(claim.candidate_hash)
                key_of[claim.id] = first
            else:
                own.append(key)
                key_of[claim.id] = key
        keys = sorted(set(screened.values()) | set(own))
        return keys, {cid: bisect.bisect_left(keys, k) + 1 for cid, k in key_of.items()}

    def claim_bar(self, candidate_hash: str) -> float:
        """The p a claim on this candidate published now needs (`stats.claim_bar`): its screen's
        slot (the family's end when unscreened) after the discoveries so far. Discoveries only
        add up, so the bar a claim meets later is at least this one."""
        trusted = [c for c in self.claims if c.trusted]
        keys, _ = self._slots(trusted, self.screened)
        first = self.screened.get(candidate_hash)
        taken = any(c.candidate_hash == candidate_hash for c in trusted)
        slot = bisect.bisect_left(keys, first) + 1 if first is not None and not taken \
            else len(keys) + 1
        return stats.claim_bar(slot, self.discoveries, self.params)

    def _decide(self, claim: ClaimView, slot: int, discoveries: int) -> stats.Verdict:
        result, floor = claim.test
        return stats.decide(result, floor.std, self.params, slot, discoveries)

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
        fresh = [float(r["val_bpb"]) for r in self.refs(claim.id)
                 if r["purpose"] == "verify"
                 and r["config_hash"] == claim.candidate_hash and r["author"] != claim.author
                 and self.counts(r)]
        claim.status, claim.reason = "supported", verdict.reason
        if not fresh:
            return
        outcome, _, why = stats.verification_outcome(None, fresh, self._frozen_baseline(claim),
                                                     self.params)
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
        """The best verified config: (hash, config), or None before the first verified claim.

        Verified claims are walked in claim order (ts, id). One tested against the current best
        (its baseline is that config), or the first one, becomes the best: the gate compared
        them. One tested against another config (an older best, claims made concurrently)
        displaces the current best only when its evidence mean beats the current best's by
        `min_effect_sd` noise sds. The evidence mean is that of the claim's counted confirmation
        runs and its verifiers' fresh seeds, which stop arriving once the claim is verified:
        the best moves when a claim is verified, never with the noise of later runs (ranking by
        trusted means did: the best config's own baseline seeds pulled its mean back up and the
        best flipped to an older config; docs/ROLES.md)."""
        steps = self.best_steps()
        return None if not steps else (steps[-1][0].candidate_hash, dict(steps[-1][2]))

    def best_steps(self) -> list[tuple[ClaimView, float, dict[str, Any]]]:
        """Each verified claim that became the best (`best`'s walk), in order, with its evidence
        mean and config: the best's history, as the dashboard draws it."""
        return list(self._once(("best_steps",), self._best_steps))

    def _best_steps(self) -> list[tuple[ClaimView, float, dict[str, Any]]]:
        steps: list[tuple[ClaimView, float, dict[str, Any]]] = []
        for claim in sorted(self.verified(), key=lambda c: (c.ts, c.id)):
            found = self._evidence_mean(claim)
            if found is None:
                continue
            mean, config = found
            if not steps or claim.baseline_hash == steps[-1][0].candidate_hash \
                    or mean < steps[-1][1] - self.params.min_effect_sd * claim.test[1].std:
                steps.append((claim, mean, config))
        return steps

    def _evidence_mean(self, claim: ClaimView) -> tuple[float, dict[str, Any]] | None:
        """The mean of a verified claim's counted runs and trusted fresh seeds, and its config."""
        runs = [self.run(i) for i in claim.counted]
        runs += [r for r in self.refs(claim.id) if r["purpose"] == "verify"
                 and r["config_hash"] == claim.candidate_hash and r["author"] != claim.author
                 and self.counts(r)]
        runs = [r for r in runs if r is not None]
        if not runs or claim.test is None:
            return None
        config = runs[0]["config"]
        config = json.loads(config) if isinstance(config, str) else dict(config)
        return sum(float(r["val_bpb"]) for r in runs) / len(runs), config

    def leaderboard(self, limit: int = 20) -> list[dict[str, Any]]:
        """Configs ranked by trusted mean; untrusted configs follow, marked, never ranked.

        SQL picks the `limit` best of each kind over every run; their means are then computed
        from their runs exactly as `mean` does (ranks: means to 1e-12, ties by hash)."""
        with self._lock:
            if limit not in self._boards:
                self._boards[limit] = self._leaderboard(limit)
            return [dict(r) for r in self._boards[limit]]

    def _leaderboard(self, limit: int) -> list[dict[str, Any]]:
        ranked, untrusted = self._ranking(limit)
        # The claims' configs with the board's, in one scan, unless the claims are judged.
        claimed = [] if self._judgement is not None else [
            c[k] for c in self._claim_rows for k in ("baseline_hash", "candidate_hash")]
        self.load_configs(ranked + untrusted + claimed)
        verified = {c.candidate_hash for c in self.verified()}
        rows = []
        for chash in ranked:
            m = self.mean(chash)
            if m is not None:
                rows.append({"config_hash": chash, "mean": m[0], "n": m[1], "trusted": True,
                             "verified": chash in verified})
        rows.sort(key=lambda r: (r["mean"], r["config_hash"]))
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        return rows + self._untrusted_rows(untrusted, limit)

    def _ranking(self, limit: int) -> tuple[list[str], list[str]]:
        """The `limit` best configs by trusted mean (first counted run per seed), and the `limit`
        best of those with untrusted sane runs only."""
        return self.agg.ranking(limit)

    def untrusted_runs(self, chash: str) -> list[dict[str, Any]]:
        """A config's sane finished runs by authors not trusted here (shown, marked, never counted)."""
        return [r for r in self.config_rows(chash) if r["status"] == "ok"
                and self.insanity(r) is None and not self.trust.counts(r)]

    def _untrusted_rows(self, hashes: list[str], limit: int) -> list[dict]:
        out = []
        for chash in hashes:
            values = [float(r["val_bpb"]) for r in self.untrusted_runs(chash)]
            if values:
                out.append({"config_hash": chash, "mean": sum(values) / len(values),
                            "n": len(values), "trusted": False, "verified": False, "rank": None})
        out.sort(key=lambda r: (r["mean"], r["config_hash"]))
        return out[:limit]

    def baseline_tally(self) -> dict[str, int]:
        """Counted runs of purpose `baseline` per config (which config is the base one)."""
        return dict(self._once(("tally",), self._baseline_tally))

    def _once(self, key: tuple, compute: Any) -> Any:
        """Computed once per `Verdicts` (they stand for one state of the memory)."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def _baseline_tally(self) -> dict[str, int]:
        return dict(self.agg.tally())

    def newest_finished(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` finished runs with a val_bpb, newest first: ts, id, val_bpb,
        purpose and `counts` (evidence here)."""
        return [dict(r) for r in self._once(("newest", limit), lambda: self._newest(limit))]

    def _newest(self, limit: int) -> list[dict[str, Any]]:
        return self.agg.newest(limit)

    def newest_counted(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` runs that count here (sane, by trusted authors), newest first."""
        return [dict(r) for r in self._once(("counted", limit),
                                            lambda: self._newest_counted(limit))]

    def _newest_counted(self, limit: int) -> list[dict[str, Any]]:
        return self.agg.newest_counted(limit)


_NAMES = [c.strip() for c in _RUN_COLUMNS.split(",")]


def _load_runs(reader: Any, track: str, match: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The valid runs of the track (`_RUN_COLUMNS`), oldest first, whose column (`config_hash`,
    `ref`, `id`) is one of its values in `match` (roles/run_rows.py: a narrow scan per column,
    then the rows by rowid); the ids only where the other columns' runs do not hold them (a
    claim cites runs of its own configs)."""
    keys: dict[int, str] = {}                  # rowid -> config hash
    ids: set[str] = set()
    for column in run_rows.COLUMNS:
        values = sorted(set(match.get(column) or []) - (ids if column == "id" else set()))
        for rowid, (chash, rid) in run_rows.matching(reader, column, values).items():
            keys[rowid] = chash
            ids.add(rid)
    return run_rows.read(reader, keys, _NAMES, "track = ?", [track])


def _run_row(reader: Any, run_id: str) -> dict[str, Any] | None:
    """One valid run's `_RUN_COLUMNS` by id, from its record (the `records` table's key finds it
    at once, where `runs` would be scanned), built as the store builds its `runs` row."""
    found = run_rows.by_ids(reader, [run_id], _NAMES)
    return found[0] if found else None


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
        hit = cache[key] = Verdicts(reader, track, roots, facts, params,
                                    base=_earlier(cache, track, roots, facts, params))
    cache.move_to_end(key)
    if version is not None:
        cache[quick] = hit
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return hit


def _earlier(cache: OrderedDict[tuple, Any], track: str, roots: frozenset[str],
             facts: sanity.TrackFacts, params: stats.GateParams) -> Verdicts | None:
    """The newest cached verdicts of the same question at an earlier state (their aggregates
    over every run move on to the new state instead of being recomputed); else those of the
    same track with other roots: the aggregates move across a change of the trusted authors by
    those authors' runs, far cheaper than a full computation."""
    same = [h for h in reversed(cache.values()) if isinstance(h, Verdicts) and h.track == track
            and h.facts == facts and h.params == params]
    return next((h for h in same if h.roots == roots), same[0] if same else None)


_REPLAYS: weakref.WeakKeyDictionary[Any, replays_inc.Replays] = weakref.WeakKeyDictionary()
@dataclass
class _Trust:
    """Trust kept for one (roots, facts) at one state of the replays, with what it was made of."""

    version: int                                   # of the replays (`replays_inc.Replays`)
    compared: list[trust.Compared]
    configs: list[tuple[str, str]]                 # those whose bound a comparison awaits
    bounds: dict[tuple[str, str], float]
    state: trust.TrustState


_TRUST: weakref.WeakKeyDictionary[Any, dict[tuple, _Trust]] = weakref.WeakKeyDictionary()
_ROOT_RUNS: weakref.WeakKeyDictionary[Any, dict[tuple, root_runs_inc.RootRuns]] = \
    weakref.WeakKeyDictionary()


def _replays(reader: Any) -> replays_inc.Replays:
    """The memory's replays and their targets, moved on to its current state (under _LOCK)."""
    upto, equivocated = evidence_inc.mark(reader), evidence_inc.equivocations(reader)
    held = _REPLAYS.get(reader)
    if held is None or held.equivocated != equivocated or upto < held.mark:
        held = replays_inc.Replays.read(reader, upto, equivocated)
    elif upto > held.mark:
        held = held.moved(reader, upto)
    _REPLAYS[reader] = held
    return held


def _bounds(reader: Any, configs: list[tuple[str, str]], roots: frozenset[str],
            facts: sanity.TrackFacts) -> dict[tuple[str, str], float]:
    """`trust.cross_bounds` of `configs`, from these roots' runs of them kept per reader and
    moved on to its current state (under _LOCK)."""
    if not configs:
        return {}
    upto, equivocated = evidence_inc.mark(reader), evidence_inc.equivocations(reader)
    held = _ROOT_RUNS.setdefault(reader, {})
    key = (tuple(sorted(roots)), repr(facts))
    runs = held.setdefault(key, root_runs_inc.RootRuns(key[0], facts))
    runs.move(reader, {h for _, h in configs}, upto, equivocated)
    return runs.bounds(configs)


def trust_state(reader: Any, roots: frozenset[str], facts: sanity.TrackFacts) -> trust.TrustState:
    """Trust over every replay in the memory with these roots (kept until a replay, or a run that
    a replay names, arrives, or the roots' runs move a cross-hardware bound: `trust.cross_bounds`;
    the replays themselves are read once and moved on)."""
    with _LOCK:
        try:
            held = _TRUST.setdefault(reader, {})
        except TypeError:                  # a reader that cannot be weakly referenced: no cache
            return trust.compute(trust.load_replays(reader, facts, roots), roots)
        replays = _replays(reader)
        key = (tuple(sorted(roots)), repr(facts))
        found = held.get(key)
        if found is None or found.version != replays.version:
            compared = replays.compared(facts)
            configs = trust.open_configs(compared, roots)
        else:
            compared, configs = found.compared, found.configs
        bounds = _bounds(reader, configs, roots, facts)
        if found is None or found.version != replays.version or found.bounds != bounds:
            found = held[key] = _Trust(replays.version, compared, configs, bounds,
                                       trust.compute(trust.settle(compared, bounds), roots))
        return found.state


def forget() -> None:
    """Drop every cached verdict (benchmarks measure the computation itself)."""
    with _LOCK:
        _CACHE.clear()
        _TRUST.clear()
        _REPLAYS.clear()
        _ROOT_RUNS.clear()


def cli_facts(reader: Any) -> sanity.TrackFacts:
    """Track facts for browsing every track in the memory: the shipped tracks' budgets where a
    track id is one of theirs (other budgets are other ids: their token checks are skipped)."""
    from node.harness.tracks import TRACKS

    shipped = {t.id: t.budget.tokens for t in TRACKS.values() if t.data.pinned}
    tracks = sorted(views.run_tracks(reader))       # kept per reader, moved on as runs arrive
    return sanity.TrackFacts({t: shipped.get(t) for t in tracks})


def all_tracks(reader: Any, roots: frozenset[str], track: str | None = None,
               params: stats.GateParams | None = None) -> dict[str, Verdicts]:
    """This node's verdicts on every track of the memory (or one), for browsing."""
    facts = cli_facts(reader)
    names = [t for t in facts.budgets if track is None or track in (t, t.split(":")[0])]
    return {t: get(reader, t, roots, facts, params or stats.GateParams()) for t in names}
