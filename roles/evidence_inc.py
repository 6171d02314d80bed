"""The verdicts' aggregates over every run of a track, kept up to date as runs arrive.

In a live swarm a record arrives every few seconds, so the first request after a write is the
usual one, not the exception. Recomputing the leaderboard's ranking (first counted run per seed
and their mean, for every config), the baseline tally, the screened configs and the newest runs
over a million runs takes seconds; a new run changes only its own config's row of them.

`Aggregates` holds them for one track as of a mark: the runs whose rowid is below it (the `runs`
table is insert-only, so rowids count up in arrival order). `advance` makes the aggregates of a
later state from an earlier one by reading only the runs that arrived in between and recomputing
the rows of the configs they touched (exactly: a config's row is always computed from all of its
runs). It falls back to a full computation when the inputs every row depends on changed: the
trusted authors (trust follows replays), the equivocating authors, or the track's facts. Each
part is computed on first use, so a view that needs no ranking pays for none.
tests/roles/test_verdicts_sql.py checks advanced aggregates against fresh ones and against the
Python reference (roles/verdicts_ref.py).
"""
from __future__ import annotations

import heapq
import threading
from decimal import Decimal
from typing import Any

from memory import views
from roles import evidence_sql, sanity

MAX_ADVANCE = 200_000        # more new runs than this: a full computation is as cheap
_FULL = """
    SELECT config_hash,
           sum(CAST(val_bpb AS DECIMAL(18, 12))) FILTER (WHERE t {skip}) AS t_sum,
           count(*) FILTER (WHERE t {skip}) AS t_n,
           sum(CAST(val_bpb AS DECIMAL(18, 12))) FILTER (WHERE NOT t) AS u_sum,
           count(*) FILTER (WHERE NOT t) AS u_n
    FROM (SELECT *, {author} AS t FROM {src} WHERE sane AND status = 'ok') GROUP BY ALL"""
# A few configs' rows: the first counted run per seed by a window (cheap over their runs only).
_SOME = """
    SELECT config_hash,
           sum(CAST(val_bpb AS DECIMAL(18, 12))) FILTER (WHERE t AND k = 1) AS t_sum,
           count(*) FILTER (WHERE t AND k = 1) AS t_n,
           sum(CAST(val_bpb AS DECIMAL(18, 12))) FILTER (WHERE NOT t) AS u_sum,
           count(*) FILTER (WHERE NOT t) AS u_n
    FROM (SELECT *, row_number() OVER (PARTITION BY config_hash, seed, t ORDER BY ts, id) AS k
          FROM (SELECT *, {author} AS t FROM {src} WHERE sane AND status = 'ok'))
    GROUP BY ALL"""
# Counted runs whose (config, seed) hash occurs more than once (a superset of the repeated seeds).
_REPEATS = """
    SELECT config_hash, seed, ts, id FROM {src}
    WHERE sane AND status = 'ok' AND {author} AND hash(config_hash, seed) IN (
        SELECT k FROM (SELECT hash(config_hash, seed) AS k FROM {src}
                       WHERE sane AND status = 'ok' AND {author} GROUP BY k HAVING count(*) > 1))"""
_TALLY = """
    SELECT config_hash, count(*) FROM {src}
    WHERE sane AND status = 'ok' AND purpose = 'baseline' AND {author} GROUP BY config_hash"""
_SCREENED = "SELECT DISTINCT config_hash FROM {src} WHERE purpose = 'screen' AND {author}"
# The newest finished runs: a ts cut-off first, then a constant filter on it (DuckDB skips the
# older row groups by their min/max) and the sanity bounds for the rows above it.
_CUT = """
    SELECT coalesce(min(ts), 0) FROM (
        SELECT ts FROM {src} WHERE status = 'ok' AND val_bpb IS NOT NULL
        ORDER BY ts DESC LIMIT ?)"""
_NEWEST = """
    SELECT ts, id, val_bpb, purpose, (sane AND {author}) AS counts FROM {src}
    WHERE status = 'ok' AND val_bpb IS NOT NULL AND ts >= ?
    ORDER BY ts DESC, id DESC LIMIT ?"""
Row = tuple[Decimal | None, int, Decimal | None, int]     # t_sum, t_n, u_sum, u_n


mark, equivocations = views.runs_mark, views.equivocation_count


class _PerConfig:
    """A table keyed by config hash, computed on first use: in full, or (moved on) from an
    earlier state's table with the rows of the configs touched since recomputed. States nobody
    asked about pass their touched configs on, so one query catches up over several records."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.base: dict[str, Any] | None = None
        self.touched: set[str] = set()

    def get(self, full: Any, some: Any) -> dict[str, Any]:
        """The table: `full()` computes it all, `some(hashes)` the rows of those configs."""
        if self.value is None:
            if self.base is None:
                self.value = full()
            else:
                hashes = sorted(self.touched)
                self.value = {h: r for h, r in self.base.items() if h not in self.touched}
                self.value.update(some(hashes) if hashes else {})
            self.base, self.touched = None, set()
        return self.value

    def moved(self, touched: list[str]) -> _PerConfig:
        """This table for a later state, in which `touched` configs got runs."""
        out = _PerConfig()
        if self.value is not None:
            out.base, out.touched = self.value, set(touched)
        elif self.base is not None:
            out.base, out.touched = self.base, self.touched | set(touched)
        return out


class Aggregates:
    """A track's run aggregates as of `mark`, with `trusted` as the authors whose runs count."""

    def __init__(self, reader: Any, track: str, facts: sanity.TrackFacts, trusted: list[str],
                 upto: int, equivocated: int) -> None:
        self.reader, self.track, self.facts, self.trusted = reader, track, facts, list(trusted)
        self.mark, self.equivocated = upto, equivocated
        self._lock = threading.RLock()
        self._configs, self._tally = _PerConfig(), _PerConfig()
        self._screened: set[str] | None = None
        self._newest: dict[int, list[dict[str, Any]]] = {}
        # Moved on from an earlier state: the track's runs stored since it (id, config, ref).
        self.arrived: list[tuple[str, str, str | None]] | None = None

    # ---- queries ---------------------------------------------------------------------------------

    def _src(self, columns: str, rows: tuple[int, int] | None = None,
             configs: list[str] | None = None) -> evidence_sql.Sane:
        bounds = (0, self.mark) if rows is None else rows
        return evidence_sql.sane_runs(self.reader, self.facts, self.track, columns, bounds, configs)

    def _plain(self, columns: str, rows: tuple[int, int] | None = None) -> evidence_sql.Sane:
        return evidence_sql.plain_runs(self.track, columns, (0, self.mark) if rows is None else rows)

    def _query(self, template: str, src: evidence_sql.Sane, params: list[Any] | None = None,
               repeat: int = 1, **fmt: str) -> list[tuple[Any, ...]]:
        sql = template.format(src=src.source, author=evidence_sql.AUTHOR_IN, **fmt)
        return self.reader.query(sql, [*src.params, self.trusted] * repeat + (params or [])).rows

    # ---- the ranking -----------------------------------------------------------------------------

    def configs(self) -> dict[str, Row]:
        """Config hash -> (sum and count of its first counted run per seed by trusted authors,
        sum and count of its sane finished runs by the others)."""
        with self._lock:
            return self._configs.get(self._all_configs, self._some_configs)

    def _all_configs(self) -> dict[str, Row]:
        src = self._src(_COLUMNS)
        later = self._repeated(src)
        skip = f"AND id NOT IN ({_LIST})" if later else ""
        sql = _FULL.format(src=src.source, author=evidence_sql.AUTHOR_IN, skip=skip)
        params = [*([later] * 2 if later else []), self.trusted, *src.params]
        return {h: tuple(row) for h, *row in self.reader.query(sql, params).rows}

    def _repeated(self, src: evidence_sql.Sane) -> list[str]:
        """Counted runs that repeat a seed of their config (not its first counted run by ts, id):
        a 64-bit hash of (config, seed) finds the candidates, Python settles them exactly."""
        groups: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for chash, seed, ts, run_id in self._query(_REPEATS, src, repeat=2):
            groups.setdefault((chash, seed), []).append((ts, run_id))
        return sorted(i for runs in groups.values() for _, i in sorted(runs)[1:])

    def _some_configs(self, hashes: list[str]) -> dict[str, Row]:
        src = self._src(_COLUMNS, configs=hashes)
        sql = _SOME.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        return {h: tuple(row) for h, *row in self.reader.query(sql, [self.trusted, *src.params]).rows}

    def ranking(self, limit: int) -> tuple[list[str], list[str]]:
        """The `limit` best configs by trusted mean (ties by hash), and the `limit` best of those
        with untrusted sane runs only (by their mean)."""
        rows = self.configs()
        trusted = ((ts / tn, h) for h, (ts, tn, _, _) in rows.items() if tn)
        others = ((us / un, h) for h, (_, tn, us, un) in rows.items() if not tn and un)
        return ([h for _, h in heapq.nsmallest(limit, trusted)],
                [h for _, h in heapq.nsmallest(limit, others)])

    # ---- the other aggregates --------------------------------------------------------------------

    def tally(self) -> dict[str, int]:
        """Counted runs of purpose `baseline` per config."""
        def tally(hashes: list[str] | None = None) -> dict[str, int]:
            src = self._src("r.config_hash, r.author, r.status, r.purpose", configs=hashes)
            return dict(self._query(_TALLY, src))
        with self._lock:
            return self._tally.get(tally, tally)

    def screened(self) -> set[str]:
        """Configs screened by trusted authors (the FDR family)."""
        with self._lock:
            if self._screened is None:
                src = self._plain("r.config_hash, r.author, r.purpose")
                self._screened = {h for (h,) in self._query(_SCREENED, src)}
            return self._screened

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` finished runs, newest first: ts, id, val_bpb, purpose, counts."""
        with self._lock:
            if limit not in self._newest:
                self._newest[limit] = self._newest_in(None, limit)
            return self._newest[limit]

    def _newest_in(self, rows: tuple[int, int] | None, limit: int,
                   configs: list[str] | None = None) -> list[dict[str, Any]]:
        src = self._src("r.ts, r.id, r.val_bpb, r.purpose, r.author, r.status", rows, configs)
        plain = self._plain("r.ts, r.status, r.val_bpb", rows)
        cut = self.reader.query(_CUT.format(src=plain.source), [*plain.params, limit]).rows[0][0]
        sql = _NEWEST.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        found = self.reader.query(sql, [self.trusted, *src.params, cut, limit]).rows
        return [{"ts": ts, "id": i, "val_bpb": v, "purpose": p, "counts": bool(c)}
                for ts, i, v, p, c in found]

    # ---- moving on -------------------------------------------------------------------------------

    def advance(self, upto: int, trusted: list[str], equivocated: int) -> Aggregates:
        """These aggregates as of `upto`, from the runs stored since `self.mark` (a fresh,
        lazily computed set when what every row depends on has changed)."""
        fresh = Aggregates(self.reader, self.track, self.facts, trusted, upto, equivocated)
        if (list(trusted) != self.trusted or equivocated != self.equivocated
                or not self.mark <= upto <= self.mark + MAX_ADVANCE):
            return fresh
        with self._lock:
            fresh.arrived = self._arrived(upto) if upto > self.mark else []
            touched = sorted({h for _, h, _ in fresh.arrived})
            # The per-config tables catch up when first asked for (a claim page needs neither).
            fresh._configs, fresh._tally = self._configs.moved(touched), self._tally.moved(touched)
            if not touched:
                fresh._screened, fresh._newest = self._screened, dict(self._newest)
                return fresh
            if self._screened is not None:
                src = fresh._plain("r.config_hash, r.author, r.purpose", (self.mark, upto))
                fresh._screened = self._screened | {h for (h,) in fresh._query(_SCREENED, src)}
            for limit, old in self._newest.items():
                new = fresh._newest_in((self.mark, upto), limit, touched)
                merged = sorted(old + new, key=lambda r: (r["ts"], r["id"]), reverse=True)
                fresh._newest[limit] = merged[:limit]
        return fresh

    def _arrived(self, upto: int) -> list[tuple[str, str, str | None]]:
        """The track's runs stored in [mark, upto): id, config hash, ref."""
        return [tuple(r) for r in self.reader.query(
            "SELECT id, config_hash, ref FROM runs WHERE track = ? AND rowid >= ? AND rowid < ?",
            [self.track, self.mark, upto]).rows]


_LIST = "SELECT unnest(?::VARCHAR[])"
_COLUMNS = "r.config_hash, r.seed, r.author, r.val_bpb, r.ts, r.id, r.status, r.purpose"
