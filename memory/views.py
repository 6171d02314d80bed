"""Derived state as SQL views over the records: every replica computes the same answer from the same set.

Determinism rules: val_bpb is aggregated as exact integers (micro-bpb, far below seed noise of
~2e-3; squares fit in BIGINT, sums are exact HUGEINT) and converted to floating point once at the
end, so summation order cannot change a digit; every ranking breaks ties
by an id. Authors who equivocated (two records under one seq) are excluded from runs and claims.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

# val_bpb at or above this is a diverged run, not a result to rank (and keeps squares of micro-bpb
# inside BIGINT: (1e9)^2 < 9.2e18).
MAX_RANKED_BPB = 1000

def _newest(table: str, per: str) -> str:
    """The newest record of `table` for each value of `per` (ties broken by id), flagged authors out."""
    return f"""
        SELECT * EXCLUDE (rn) FROM (
            SELECT t.*, row_number() OVER (PARTITION BY {per} ORDER BY ts DESC, id DESC) AS rn
            FROM {table} t WHERE author NOT IN (SELECT author FROM equivocations))
        WHERE rn = 1"""


def _unclaimed(promoted: bool) -> str:
    """Configs screened (and, if `promoted`, confirmed) that produced no claim on their track, one
    row each over their screen and confirm runs."""
    return f"""
        SELECT r.track, r.config_hash, min(r.config) AS config, count(*) AS runs,
               count(*) FILTER (WHERE r.status = 'ok') AS ok_runs, min(r.ref) AS ref,
               max(r.ts) AS last_ts
        FROM valid_runs r
        WHERE r.purpose IN ('screen', 'confirm') AND NOT EXISTS (
            SELECT 1 FROM valid_claims c
            WHERE c.track = r.track AND c.candidate_hash = r.config_hash)
        GROUP BY r.track, r.config_hash
        HAVING {'' if promoted else 'NOT '}bool_or(r.purpose = 'confirm')"""


VIEWS: dict[str, str] = {
    "flagged_authors": """
        SELECT author, count(*) AS equivocated_seqs, min(seq) AS first_seq
        FROM equivocations GROUP BY author""",
    "valid_runs": """
        SELECT * FROM runs WHERE author NOT IN (SELECT author FROM equivocations)""",
    "valid_claims": """
        SELECT * FROM claims WHERE author NOT IN (SELECT author FROM equivocations)""",
    # Per (track, config): seed statistics from exact integer sums. Distinct seed and author counts
    # are in `config_support`: counting distinct values per group costs more than everything else
    # here together at a million runs, and ranking does not need them.
    "seed_stats": f"""
        WITH r AS (
            SELECT track, config_hash, config, CAST(round(val_bpb * 1e6) AS BIGINT) AS x
            FROM valid_runs
            WHERE status = 'ok' AND val_bpb IS NOT NULL AND val_bpb >= 0
              AND val_bpb < {MAX_RANKED_BPB}),
        g AS (
            -- any_value(config) is exact: every run of one config_hash holds the same config
            -- (the codec checks the hash), and its JSON text is written canonically.
            SELECT track, config_hash, any_value(config) AS config, count(*) AS n,
                   sum(x) AS sx, sum(x * x) AS sxx, min(x) AS lo, max(x) AS hi
            FROM r GROUP BY track, config_hash)
        SELECT track, config_hash, config, n,
               CAST(sx AS DOUBLE) / n / 1e6 AS mean,
               CASE WHEN n > 1 THEN sqrt(CAST(n * sxx - sx * sx AS DOUBLE) / (n * (n - 1))) / 1e6
                    END AS std,
               CAST(lo AS DOUBLE) / 1e6 AS best, CAST(hi AS DOUBLE) / 1e6 AS worst
        FROM g""",
    "config_support": """
        SELECT track, config_hash, count(DISTINCT seed) AS seeds, count(DISTINCT author) AS authors
        FROM valid_runs WHERE status = 'ok' AND val_bpb IS NOT NULL GROUP BY track, config_hash""",
    "latest_assessments": _newest("assessments", per="claim"),
    # Only verifications by someone other than the claim's author count.
    "independent_verifications": """
        SELECT v.* FROM verifications v JOIN claims c ON c.id = v.claim
        WHERE v.author <> c.author AND v.author NOT IN (SELECT author FROM equivocations)""",
    "claim_status": """
        WITH ver AS (
            SELECT claim, count(*) FILTER (WHERE outcome = 'confirmed') AS confirmed,
                   count(*) FILTER (WHERE outcome = 'refuted') AS refuted,
                   count(*) FILTER (WHERE outcome = 'inconclusive') AS inconclusive
            FROM independent_verifications GROUP BY claim)
        SELECT c.id AS claim, c.track, c.author, c.ts, c.candidate_hash, c.baseline_hash, c.diff,
               c.effect, a.verdict, a.p_value, a.q_value,
               coalesce(v.confirmed, 0) AS confirmed, coalesce(v.refuted, 0) AS refuted,
               coalesce(v.inconclusive, 0) AS inconclusive,
               CASE WHEN coalesce(v.refuted, 0) > 0 THEN 'refuted'
                    WHEN a.verdict IS NULL THEN 'pending'
                    WHEN a.verdict = 'not_supported' THEN 'not_supported'
                    WHEN coalesce(v.confirmed, 0) > 0 THEN 'verified'
                    WHEN coalesce(v.inconclusive, 0) > 0 THEN 'inconclusive'
                    ELSE 'supported' END AS status
        FROM valid_claims c
        LEFT JOIN latest_assessments a ON a.claim = c.id
        LEFT JOIN ver v ON v.claim = c.id""",
    # No config text here: carrying it through the ranking costs a third of the query at a million
    # runs. memory.leaderboard.top() adds config, seeds and authors for the rows it returns.
    "leaderboard": """
        WITH verified AS (
            SELECT DISTINCT track, candidate_hash FROM claim_status WHERE status = 'verified')
        SELECT row_number() OVER (PARTITION BY s.track ORDER BY s.mean, s.config_hash) AS rank,
               s.track, s.config_hash, s.mean, s.std, s.n, s.best,
               (v.candidate_hash IS NOT NULL) AS verified
        FROM seed_stats s
        LEFT JOIN verified v ON v.track = s.track AND v.candidate_hash = s.config_hash""",
    "noise_floor": _newest("noise_floors", per="track"),
    # Authors whose claim failed an independent replay: the number they reported is not what
    # their own seed gives.
    "suspect_authors": """
        SELECT c.author, count(DISTINCT v.claim) AS failed_replays, min(v.claim) AS first_claim
        FROM independent_verifications v JOIN valid_claims c ON c.id = v.claim
        WHERE v.replay_match = false GROUP BY c.author""",
    # Screened configs that were never promoted (no confirmation run) and produced no claim:
    # tried, not worth repeating. A config that was promoted and then failed its confirmation is
    # not a dead end (it looked promising on its screen): `failed_confirmations` holds those.
    "dead_ends": _unclaimed(promoted=False),
    "failed_confirmations": _unclaimed(promoted=True),
    # Which roles each node took, how often, and when last: the swarm's role mix.
    "role_mix": """
        SELECT author, role, count(*) AS times, max(ts) AS last_ts
        FROM roles WHERE author NOT IN (SELECT author FROM equivocations)
        GROUP BY author, role""",
}


def ddl() -> list[str]:
    """CREATE OR REPLACE VIEW statements, in dependency order."""
    return [f"CREATE OR REPLACE VIEW {name} AS {sql.strip()}" for name, sql in VIEWS.items()]


# ---- values over every run, moved on as runs arrive ----------------------------------------------
# The `runs` table is insert-only: its rowids count up in the order runs were stored, so the runs
# stored between two looks are a rowid range. A value over every run that only grows with them
# (runs per track, the tracks' base configs) is kept per reader and updated from that range,
# instead of a scan of every run per dashboard request. Equivocations remove an author's runs from
# `valid_runs`: a new one means a full recomputation.

_MOVING: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, int, Any]]] = \
    weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


_COUNTS: weakref.WeakKeyDictionary[Any, dict[str, tuple[int, int]]] = weakref.WeakKeyDictionary()


def _count(reader: Any, sql: str) -> int:
    """One integer the memory's writes alone change: kept per reader until a Store's write
    counter moves (a request asks for the mark several times; each is a query otherwise)."""
    version = getattr(reader, "_version", None)
    try:
        held = _COUNTS.setdefault(reader, {}) if version is not None else None
    except TypeError:                      # a reader that cannot be weakly referenced
        held = None
    hit = held.get(sql) if held is not None else None
    if hit is not None and hit[0] == version:
        return hit[1]
    value = int(reader.query(sql, []).rows[0][0])
    if held is not None:
        held[sql] = (version, value)       # read after `version`: at least as new as it
    return value


def runs_mark(reader: Any) -> int:
    """One past the highest rowid of `runs`: the runs stored so far are those below it."""
    return _count(reader, "SELECT coalesce(max(rowid), -1) + 1 FROM runs")


def equivocation_count(reader: Any) -> int:
    """How many (author, seq) pairs are held twice (grows when an author is caught)."""
    return _count(reader, "SELECT count(*) FROM equivocations")


def moving(reader: Any, name: str, full: Callable[[int], Any],
           step: Callable[[Any, int, int], Any]) -> Any:
    """`full(upto)`: the value over the runs below `upto`; `step(value, lo, hi)`: it updated
    with the runs in [lo, hi). Kept per reader (recomputed for one that cannot be weakly
    referenced, e.g. a daemon's API client)."""
    upto, caught = runs_mark(reader), equivocation_count(reader)
    with _LOCK:
        try:
            held = _MOVING.setdefault(reader, {})
        except TypeError:
            return full(upto)
        found = held.get(name)
    if found is None or found[1] != caught or found[0] > upto:
        value = full(upto)
    else:
        value = found[2] if found[0] == upto else step(found[2], found[0], upto)
    with _LOCK:
        held[name] = (upto, caught, value)
    return value


VALID_RANGE = _VALID = "author NOT IN (SELECT author FROM equivocations) AND rowid >= ? AND rowid < ?"


# (VALID_RANGE: valid runs stored in a rowid range [?, ?).)


def track_runs(reader: Any) -> dict[str, tuple[int, int]]:
    """Track -> (valid runs, newest ts), over every run."""
    def counted(lo: int, hi: int) -> dict[str, tuple[int, int]]:
        return {t: (n, ts) for t, n, ts in reader.query(
            f"SELECT track, count(*), max(ts) FROM runs WHERE {_VALID} GROUP BY track",
            [lo, hi]).rows}

    def step(old: dict[str, tuple[int, int]], lo: int, hi: int) -> dict[str, tuple[int, int]]:
        out = dict(old)
        for t, (n, ts) in counted(lo, hi).items():
            n0, ts0 = out.get(t, (0, ts))
            out[t] = (n0 + n, max(ts0, ts))
        return out
    return dict(moving(reader, "track_runs", lambda hi: counted(0, hi), step))


def run_tracks(reader: Any) -> set[str]:
    """Every track with a run (valid or not)."""
    def tracks(lo: int, hi: int) -> set[str]:
        return {t for (t,) in reader.query("SELECT DISTINCT track FROM runs WHERE rowid >= ? AND "
                                           "rowid < ?", [lo, hi]).rows}
    return set(moving(reader, "run_tracks", lambda hi: tracks(0, hi),
                      lambda old, lo, hi: old | tracks(lo, hi)))


def base_config_texts(reader: Any) -> dict[str, Any]:
    """Track -> the config of one of its baseline runs (JSON text), over every run; recomputed
    only when a baseline run arrives."""
    def full(hi: int) -> dict[str, Any]:
        return dict(reader.query(f"SELECT track, any_value(config) FROM runs WHERE {_VALID} AND "
                                 "purpose = 'baseline' GROUP BY track", [0, hi]).rows)

    def step(old: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
        new = reader.query(f"SELECT count(*) FROM runs WHERE {_VALID} AND purpose = 'baseline'",
                           [lo, hi]).rows[0][0]
        return full(hi) if new else old
    return dict(moving(reader, "base_configs", full, step))
