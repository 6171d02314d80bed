"""The verdicts' aggregates over every run of a track, kept up to date as runs arrive.

In a live swarm a record arrives every few seconds, so the first request after a write is the
usual one, not the exception. Recomputing the leaderboard's ranking (first counted run per seed
and their mean, for every config), the baseline tally, the screened configs and the newest runs
over a million runs takes seconds; a new run changes only its own config's row of them.

`Aggregates` holds them for one track as of a mark: the runs whose rowid is below it (the `runs`
table is insert-only, so rowids count up in arrival order). `advance` makes the aggregates of a
later state from an earlier one by reading only the runs that arrived in between: a config's row
holds exact integer sums (val_bpb in units of 1e-12), so a new run adds its value (a trusted run
only when it is its seed's first by ts and id: one query per new seed, which DuckDB filters while
scanning, finds the first run held); the baseline tally adds counts; the ranking
picks its best few from the rows' arrays (roles/config_rows.py: a partition of the float means,
then an exact sort of the candidates). No step reads a column of every run (`config_hash IN
(...)` would). A change of the trusted authors (trust follows replays and pins) moves the rows by
the runs of the authors whose trust changed (`_retrust`), in one step however many changes
happened since the last computed state: a vectorised add of those authors' per-config sums, kept
in memory once grouped (roles/author_sums.py: every author's by the dashboard's warm-up, else in
the background from the first change that found them missing, which groups its changed authors'
runs meanwhile). An equivocation or a change of the track's facts
means a full computation. Each part is computed on first use, so a view that needs no ranking
pays for none. tests/roles/test_verdicts_sql.py checks advanced aggregates against fresh ones and against the
Python reference (roles/verdicts_ref.py).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from memory import views
from roles import author_sums, config_rows, evidence_sql, repeats as repeated_seeds, sanity
from roles.trust import RUN_KEY_SQL

log = logging.getLogger(__name__)

MAX_ADVANCE = 200_000        # more new runs than this: a full computation is as cheap
MAX_SEEDS = 16               # more new trusted seeds than this: re-read the touched configs
# Values are exact integers: val_bpb as DECIMAL(18, 12) (rounded to 1e-12 once, so sums do not
# depend on the order DuckDB adds them in) counted in units of 1e-12; a group's sum is a HUGEINT
# (Python ints, no Decimal objects). The DOUBLE times 1e12, rounded to the nearest integer, is
# that decimal's integer unless the product lies within 0.01 of a half (the decimal cast rounds
# the value's decimal digits, the product's rounding error is under 0.002): only such values
# (about 2% of arbitrary doubles, none of six-decimal ones) take the decimal cast, whose
# DECIMAL(37, 12) product per run made the per-config sums cost ~190 ms of CPU at a million runs
# (~167 ms so; tests/roles/test_fast_paths.py compares the two on ties and their neighbours).
_DECIMAL_PICO = "CAST(CAST(val_bpb AS DECIMAL(18, 12)) * 1000000000000 AS BIGINT)"
_PICO = ("(CASE WHEN abs(val_bpb * 1e12 - floor(val_bpb * 1e12) - 0.5) > 0.01 "
         f"THEN CAST(val_bpb * 1e12 AS BIGINT) ELSE {_DECIMAL_PICO} END)")
_SUM = "CAST(coalesce(sum(" + _PICO + ") FILTER (WHERE {where}), 0) AS HUGEINT)"
_FULL = f"""
    SELECT config_hash, {_SUM.format(where="t")} AS t_sum, count(*) FILTER (WHERE t) AS t_n,
           {_SUM.format(where="NOT t")} AS u_sum, count(*) FILTER (WHERE NOT t) AS u_n
    FROM (SELECT *, {{author}} AS t FROM {{src}} WHERE sane AND status = 'ok') GROUP BY ALL"""
# A few configs' rows: the first counted run per seed by a window (cheap over their runs only).
_SOME = f"""
    SELECT config_hash, {_SUM.format(where="t AND k = 1")} AS t_sum,
           count(*) FILTER (WHERE t AND k = 1) AS t_n,
           {_SUM.format(where="NOT t")} AS u_sum, count(*) FILTER (WHERE NOT t) AS u_n
    FROM (SELECT *, row_number() OVER (PARTITION BY config_hash, seed, t ORDER BY ts, id) AS k
          FROM (SELECT *, {{author}} AS t FROM {{src}} WHERE sane AND status = 'ok'))
    GROUP BY ALL"""
# Sane finished runs (config, seed, ts, id, author, value) of some source.
_RUNS = f"""
    SELECT config_hash, seed, ts, id, author, {_PICO} FROM {{src}} WHERE sane AND status = 'ok'"""
# Sane finished runs of one seed (an integer literal: DuckDB filters the scan by it) of some
# configs, by any author.
_FIRST = _RUNS + " AND seed = {seed}"
# Sane finished runs, by any author, whose (config, seed) hash occurs more than once (a superset
# of the repeated seeds: Python settles them exactly). Trust does not enter: kept across changes.
_REPEATS = _RUNS + """ AND hash(config_hash, seed) IN (
        SELECT k FROM (SELECT hash(config_hash, seed) AS k FROM {src}
                       WHERE sane AND status = 'ok' GROUP BY k HAVING count(*) > 1))"""
# The same superset found in numpy (roles/repeats.py), for a reader that answers with Arrow
# arrays: each sane finished run's rowid and hash; then the candidates' rows, by rowid.
_KEYS = "SELECT rid, hash(config_hash, seed) FROM {src} WHERE sane AND status = 'ok'"
_BY_ROWID = f"""
    SELECT config_hash, seed, ts, id, {RUN_KEY_SQL} AS author, {_PICO} FROM runs r
    WHERE rowid IN (SELECT unnest(?::BIGINT[]))"""
# A change of trust: per author and config, the sums of the sane finished runs (of every author
# once, as lists per author, roles/author_sums.py, or of the changed authors not grouped yet); then
# per config, those of the changed authors' runs stored since (a rowid range).
# `{sum}`: _SUM, or the same exact sum as a BIGINT (_SMALL_SUM) where no config holds more than
# config_rows.SAFE_N runs: lists of HUGEINTs are slower to fetch (every author's runs at a million
# runs: ~0.95 s of CPU for the query with HUGEINTs, ~0.75 s with BIGINTs, both with the decimal
# units; ~0.32 s as Arrow with the double product's units).
_BY_AUTHOR = """
    SELECT author, list(config_hash), list(s), list(n) FROM (
        SELECT author, config_hash, {sum} AS s, count(*) AS n FROM {src}
        WHERE sane AND status = 'ok' GROUP BY ALL)
    GROUP BY author"""
# The same pairs one per row, for a reader that answers with Arrow arrays (`query_arrow`).
_PAIRS = """
    SELECT author, config_hash, {sum} AS s, count(*) AS n FROM {src}
    WHERE sane AND status = 'ok' GROUP BY ALL"""
# Each value rounded to 1e-12 and counted in those units (exact), then summed: _SUM's integer.
_SMALL_SUM = f"CAST(sum({_PICO}) AS BIGINT)"
_TALLY = """
    SELECT config_hash, count(*) FROM {src}
    WHERE sane AND status = 'ok' AND purpose = 'baseline' AND {author} GROUP BY config_hash"""
# Each config's first screen (by ts, id) by a trusted author: its place in the FDR family.
_SCREENED = """
    SELECT config_hash, ts, id FROM (
        SELECT config_hash, ts, id,
               row_number() OVER (PARTITION BY config_hash ORDER BY ts, id) AS k
        FROM {src} WHERE purpose = 'screen' AND {author})
    WHERE k = 1"""
# The newest finished runs: a ts cut-off first, then a constant filter on it (DuckDB skips the
# older row groups by their min/max) and the sanity bounds for the rows above it.
_CUT = """
    SELECT coalesce(min(ts), 0) FROM (
        SELECT ts FROM {src} WHERE status = 'ok' AND val_bpb IS NOT NULL
        ORDER BY ts DESC LIMIT ?)"""
# Trust does not enter (a run counts when `sane` and its author is trusted): kept across changes.
_NEWEST = """
    SELECT ts, id, val_bpb, purpose, author, sane FROM {src}
    WHERE status = 'ok' AND val_bpb IS NOT NULL AND ts >= ?
    ORDER BY ts DESC, id DESC LIMIT ?"""
# The newest runs that count here: trust enters, so kept only while it does not change.
# Sanity is the costly part at a million runs: it is computed only from the ts of the newest
# `window` finished runs of trusted authors on (exact once that window holds `limit` counted runs).
_CUT_TRUSTED = """
    SELECT coalesce(min(ts), 0), count(*) FROM (
        SELECT ts FROM {src} WHERE status = 'ok' AND val_bpb IS NOT NULL AND {author}
        ORDER BY ts DESC LIMIT ?)"""
_NEWEST_COUNTED = """
    SELECT ts, id, val_bpb, purpose, author, sane FROM {src}
    WHERE status = 'ok' AND val_bpb IS NOT NULL AND sane AND {author} AND ts >= ?
    ORDER BY ts DESC, id DESC LIMIT ?"""
Row = config_rows.Row                     # t_sum, t_n, u_sum, u_n (sums in 1e-12 units)
Run = tuple[int, str, str, int]           # ts, id, author, val_bpb (in 1e-12 units)
Repeats = dict[tuple[str, int], list[Run]]               # (config, seed) -> its runs, oldest first


class _Table:
    """The per-config rows as of a mark, with what a change of trust needs to move them on
    without a full computation: every (config, seed) held by two or more sane finished runs
    (by any author), with those runs (few: replays, reruns of a seed); `trusted`: the authors
    whose runs the rows count."""

    def __init__(self, rows: config_rows.Rows, repeats: Repeats, trusted: list[str]) -> None:
        self.rows, self.repeats, self.trusted = rows, repeats, trusted


def _first(runs: list[Run], trusted: set[str]) -> Run | None:
    """The seed's counted run: the oldest (ts, id) by a trusted author."""
    return next((r for r in runs if r[2] in trusted), None)


mark, equivocations = views.runs_mark, views.equivocation_count
_EMPTY: Row = (0, 0, 0, 0)


class _PerConfig:
    """A value over every config, computed on first use: in full, or (moved on) from an earlier
    state's value and the configs touched since. States nobody asked about pass their touched
    configs on, so one step catches up over several records."""

    def __init__(self) -> None:
        self.value: Any = None
        self.base: Any = None
        self.since = 0                     # the mark of the state `base` is the value of
        self.touched: set[str] = set()

    def get(self, full: Any, step: Any, prep: Any = None) -> Any:
        """The value: `full()` computes it all, `step(base, hashes, since)` moves `base` on;
        `prep(base, since)`, when given, first turns `base` into the value this state would
        have had at `since` (a change of trust: one step over any number of changes)."""
        if self.value is None:
            if self.base is None:
                self.value = full()
            else:
                base = self.base if prep is None else prep(self.base, self.since)
                self.value = step(base, sorted(self.touched), self.since)
            self.base, self.touched = None, set()
        return self.value

    def moved(self, touched: list[str], mark: int) -> _PerConfig:
        """This value for a later state, in which `touched` configs got runs (`mark`: this
        value's state's)."""
        out = _PerConfig()
        if self.value is not None:
            out.base, out.touched, out.since = self.value, set(touched), mark
        elif self.base is not None:
            out.base, out.touched, out.since = self.base, self.touched | set(touched), self.since
        return out


def _rows_step(base: config_rows.Rows, found: dict[str, Row], hashes: list[str],
               more_runs: int) -> config_rows.Rows:
    """`base` with the touched configs' rows as `found` recomputed them (absent: no runs)."""
    value = base.copy(more_runs)
    for h in hashes:
        value.set(h, found.get(h, _EMPTY))
    return value


class _Grouped:
    """The holder of the authors' runs grouped by config (roles/author_sums.py), shared by a
    line of states: every author's (grouped by the dashboard's warm-up, or in the background
    from the first change of trust that found them missing), else those of the authors whose
    trust changed, added as changes name them."""

    def __init__(self) -> None:
        self.sums: author_sums.AuthorSums | None = None
        self.thread: threading.Thread | None = None       # every author's being grouped
        self.lock = threading.Lock()

    def usable(self, since: int, index: config_rows.Index) -> author_sums.AuthorSums | None:
        """The held sums, if made for this index and near `since`."""
        with self.lock:
            held = self.sums
        if held is None or held.index is not index or abs(since - held.mark) > MAX_ADVANCE:
            return None
        return held

    def keep(self, sums: author_sums.AuthorSums) -> None:
        """Hold `sums`, unless they cover some authors only and every author's are held for
        the same index."""
        with self.lock:
            held = self.sums
            if sums.covered is None or held is None or held.covered is not None \
                    or held.index is not sums.index:
                self.sums = sums

    def start(self, group: Callable[[], author_sums.AuthorSums]) -> None:
        """Have `group()` (every author's runs) run in a background thread, unless one is under
        way; its sums are held when done (a failure leaves the held ones: a later change
        retries)."""
        def run() -> None:
            try:
                self.keep(group())
            except Exception:              # e.g. the memory closed meanwhile
                log.debug("grouping every author's runs failed", exc_info=True)
            finally:
                with self.lock:
                    self.thread = None
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=run, name="group-author-runs",
                                               daemon=True)
                self.thread.start()

    def wait(self) -> None:
        """Wait for the grouping under way, if any."""
        with self.lock:
            thread = self.thread
        if thread is not None:
            thread.join()


def _sum_of(bound: int) -> str:
    """The _BY_AUTHOR sum for groups of runs of configs that hold at most `bound` runs each: a
    BIGINT while that is at most config_rows.SAFE_N (then so is one author's share of it)."""
    return _SMALL_SUM if bound <= config_rows.SAFE_N else _SUM.format(where="true")


class Aggregates:
    """A track's run aggregates as of `mark`, with `trusted` as the authors whose runs count."""

    def __init__(self, reader: Any, track: str, facts: sanity.TrackFacts, trusted: list[str],
                 upto: int, equivocated: int) -> None:
        self.reader, self.track, self.facts, self.trusted = reader, track, facts, list(trusted)
        self.mark, self.equivocated = upto, equivocated
        self._lock = threading.RLock()
        self._configs, self._tally = _PerConfig(), _PerConfig()
        # Every author's runs grouped by config, once a change of trust needed them: one holder
        # shared by every state moved on from this one (`advance`), whenever it is filled.
        self._grouped_runs = _Grouped()
        self._screened: dict[str, tuple[int, str]] | None = None
        self._newest: dict[int, list[tuple[Any, ...]]] = {}   # limit -> its _NEWEST rows
        self._counted: dict[int, list[tuple[Any, ...]]] = {}  # limit -> its _NEWEST_COUNTED rows
        # Moved on from an earlier state: the track's runs stored since it (id, config, ref).
        self.arrived: list[tuple[str, str, str | None]] | None = None

    # ---- queries ---------------------------------------------------------------------------------

    def _src(self, columns: str, rows: tuple[int, int] | None = None,
             configs: list[str] | None = None) -> evidence_sql.Sane:
        bounds = (0, self.mark) if rows is None else rows
        return evidence_sql.sane_runs(self.reader, self.facts, self.track, columns, bounds, configs,
                                      keyed=True)

    def _plain(self, columns: str, rows: tuple[int, int] | None = None) -> evidence_sql.Sane:
        return evidence_sql.plain_runs(self.track, columns, (0, self.mark) if rows is None else rows,
                                       keyed=True)

    def _query(self, template: str, src: evidence_sql.Sane, params: list[Any] | None = None,
               repeat: int = 1, **fmt: str) -> list[tuple[Any, ...]]:
        sql = template.format(src=src.source, author=evidence_sql.AUTHOR_IN, **fmt)
        return self.reader.query(sql, [*src.params, self.trusted] * repeat + (params or [])).rows

    # ---- the ranking -----------------------------------------------------------------------------

    def configs(self) -> dict[str, Row]:
        """Config hash -> (sum and count of its first counted run per seed by trusted authors,
        sum and count of its sane finished runs by the others)."""
        return self._table().rows.as_dict()

    def _table(self) -> _Table:
        with self._lock:
            return self._configs.get(self._all_configs, self._step_configs, self._retrust)

    def _all_configs(self) -> _Table:
        src = self._src(_COLUMNS)
        repeats = self._repeated(src)
        sql = _FULL.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        params = [self.trusted, *src.params]
        if hasattr(self.reader, "query_arrow"):
            # As Arrow arrays, straight into the rows' array: no Python tuple per config (~60 ms
            # of CPU at 50,000 configs, where fetching them cost ~55 ms more than the arrays).
            rows = config_rows.Rows.of_table(self.reader.query_arrow(sql + " ORDER BY 1", params))
        else:
            found = {h: tuple(row) for h, *row in self.reader.query(sql, params).rows}
            # Before the repeats come off: every sane finished run of the config.
            rows = config_rows.Rows.of(found, max((r[1] + r[3] for r in found.values()),
                                                  default=0))
        # The trusted sums hold every trusted run: take off those that repeat a seed of their
        # config and are not its first counted run (by ts, id). Exact integers, in Python: an
        # `id NOT IN (...)` filter over every run costs more.
        trusted = set(self.trusted)
        for (chash, _), runs in repeats.items():
            first = _first(runs, trusted)
            for run in runs:
                if run[2] in trusted and run is not first:
                    t_sum, t_n, u_sum, u_n = rows.get(chash)
                    rows.set(chash, (t_sum - run[3], t_n - 1, u_sum, u_n))
        return _Table(rows, repeats, self.trusted)

    def _repeated(self, src: evidence_sql.Sane) -> Repeats:
        """Every (config, seed) held by two or more sane finished runs, with those runs: a 64-bit
        hash of (config, seed) finds the candidates (in numpy where the reader answers with
        Arrow arrays), Python settles them exactly."""
        if not hasattr(self.reader, "query_arrow"):
            return _groups(self.reader.query(_REPEATS.format(src=src.source),
                                             src.params * 2).rows)
        keyed = self._src("r.rowid AS rid, r.config_hash, r.seed, r.status")
        found = repeated_seeds.candidates(
            self.reader.query_arrow(_KEYS.format(src=keyed.source), keyed.params))
        # The rowids are of sane finished runs of the track below the mark: read as they are.
        return _groups(self.reader.query(_BY_ROWID, [found]).rows) if found else {}

    def _some_configs(self, hashes: list[str]) -> dict[str, Row]:
        src = self._src(_COLUMNS, configs=hashes)
        sql = _SOME.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        return {h: tuple(row) for h, *row in self.reader.query(sql, [self.trusted, *src.params]).rows}

    def _some_repeats(self, hashes: list[str]) -> Repeats:
        """The repeated seeds of these configs (their sane finished runs read whole)."""
        src = self._src(_COLUMNS, configs=hashes)
        return _groups(self.reader.query(_RUNS.format(src=src.source), src.params).rows)

    def _step_configs(self, base: _Table, hashes: list[str], since: int) -> _Table:
        """`base`, the table as of `since`, updated with the sane finished runs stored since:
        sums of exact integers, so the rows are those a full computation gives. A new trusted run
        counts when it is its seed's first (by ts, id), in place of the one that was."""
        new = self._sane_since(since)
        seeds = sorted({seed for _, seed, *_ in new if seed is not None})
        if len(seeds) > MAX_SEEDS or any(seed is None for _, seed, *_ in new):
            # One query per seed: past a few, re-read the touched configs.
            repeats = {k: v for k, v in base.repeats.items() if k[0] not in set(hashes)}
            repeats.update(self._some_repeats(hashes) if hashes else {})
            found = self._some_configs(hashes) if hashes else {}
            return _Table(_rows_step(base.rows, found, hashes, self.mark - since), repeats,
                          self.trusted)
        held = self._held_runs(since, seeds, sorted({h for h, *_ in new}), base.repeats)
        trusted = set(self.trusted)
        value, repeats = base.rows.copy(self.mark - since), dict(base.repeats)
        for chash, seed, ts, run_id, author, bpb in sorted(new, key=lambda r: (r[2], r[3])):
            runs = held.setdefault((chash, seed), [])
            old = _first(runs, trusted)
            runs.append((ts, run_id, author, bpb))
            runs.sort()
            if len(runs) > 1:
                repeats[(chash, seed)] = list(runs)
            t_sum, t_n, u_sum, u_n = value.get(chash)
            if author not in trusted:
                value.set(chash, (t_sum, t_n, u_sum + bpb, u_n + 1))
            elif old is None:
                value.set(chash, (t_sum + bpb, t_n + 1, u_sum, u_n))
            elif (ts, run_id) < old[:2]:   # an older run arrived late: it is the seed's first
                value.set(chash, (t_sum + bpb - old[3], t_n, u_sum, u_n))
        return _Table(value, repeats, self.trusted)

    def _sane_since(self, since: int) -> list[tuple[Any, ...]]:
        """The sane finished runs stored in [since, mark): config, seed, ts, id, author,
        val_bpb (as the sums take it)."""
        src = self._src(_COLUMNS, (since, self.mark))
        return self.reader.query(_RUNS.format(src=src.source), src.params).rows

    def _held_runs(self, since: int, seeds: list[int], hashes: list[str],
                   repeats: Repeats) -> Repeats:
        """(config, seed) -> the sane finished runs (oldest first) of these seeds of these configs
        stored below `since`, by any author. One query per seed (an equality on `seed` is a
        filter DuckDB applies while scanning, so only that seed's runs are read further), unless
        `repeats` (as of `since`) holds the seed's runs already."""
        out: Repeats = {}
        wanted = set(hashes)
        for (chash, seed), runs in repeats.items():
            if chash in wanted and seed in seeds:
                out[(chash, seed)] = list(runs)
        if not seeds:
            return out
        accepted = evidence_sql.accepted_configs(self.reader, self.track, hashes,
                                                 (since, self.mark))
        for seed in seeds:
            src = evidence_sql.sane_runs(self.reader, self.facts, self.track, _COLUMNS,
                                         (0, since), hashes, accepted, keyed=True)
            rows = self.reader.query(_FIRST.format(src=src.source, seed=int(seed)), src.params).rows
            for key, runs in _groups(rows, at_least=1).items():
                out.setdefault(key, runs)  # a repeated seed's runs are those held already
        return out

    def _retrust(self, table: _Table, since: int) -> _Table:
        """`table`, as of `since` with `table.trusted` as the trusted authors, as this state's
        trusted authors would have it: the runs of the authors whose trust changed move between
        the sums (their per-config sums, `_runs_of`, added to one side and taken off the other);
        the repeated seeds that hold one of them get their first counted run again. Integer
        sums, so any number of changes in between make one step, from the table's trust to
        this state's."""
        old, new = table.trusted, self.trusted
        gained, changed = set(new) - set(old), set(new) ^ set(old)
        if not changed:
            return table
        rows = table.rows.copy()
        moved = self._runs_of(sorted(changed), since, table.rows)
        for author, (positions, sums, counts) in moved.items():
            rows.move(positions, sums, counts, author in gained)
        # Their runs in repeated seeds are not in the trusted sums as such: settled here.
        repeated: dict[tuple[str, bool], tuple[int, int]] = {}
        for (chash, _), runs in table.repeats.items():
            for _, _, author, bpb in runs:
                if author in changed:
                    s, n = repeated.get((chash, author in gained), (0, 0))
                    repeated[(chash, author in gained)] = (s + bpb, n + 1)
        for (chash, plus), (s, n) in repeated.items():     # not moved into the trusted sums
            t_sum, t_n, u_sum, u_n = rows.get(chash)
            rows.set(chash, (t_sum - s, t_n - n, u_sum, u_n) if plus else (t_sum + s, t_n + n,
                                                                            u_sum, u_n))
        before, after = set(old), set(new)
        for (chash, _), runs in table.repeats.items():
            if changed.isdisjoint(r[2] for r in runs):
                continue
            was, now = _first(runs, before), _first(runs, after)
            t_sum, t_n, u_sum, u_n = rows.get(chash)
            if was is not None:
                t_sum, t_n = t_sum - was[3], t_n - 1
            if now is not None:
                t_sum, t_n = t_sum + now[3], t_n + 1
            rows.set(chash, (t_sum, t_n, u_sum, u_n))
        return _Table(rows, table.repeats, self.trusted)

    def _runs_of(self, authors: list[str], since: int,
                 rows: config_rows.Rows) -> dict[str, author_sums.Sums]:
        """Each author's sane finished runs stored below `since`, grouped by config: from the
        held grouped runs (grouped as of their mark, for these rows' index) and the authors'
        runs stored between that mark and `since` (a rowid range). Authors the held sums do not
        cover are grouped now (one query for them: ~50-75 ms of CPU for 50,000 runs) and kept, and
        every author's are grouped in the background (~0.3 s of CPU at a million
        runs, off the request's path; the dashboard's warm-up groups them as it starts)."""
        holder = self._grouped_runs
        held = holder.usable(since, rows.index)
        if held is None or held.missing(authors):
            holder.start(lambda: self._grouped(since, rows))
            if held is None:
                held = self._grouped(since, rows, authors)
            else:
                held = held.merged(self._grouped(held.mark, rows, held.missing(authors),
                                                 abs(since - held.mark)))
            holder.keep(held)
        lo, hi = sorted((held.mark, since))
        late: dict[str, list[tuple[Any, ...]]] = {}
        if lo < hi:
            src = evidence_sql.sane_runs(self.reader, self.facts, self.track, _COLUMNS, (lo, hi),
                                         authors=authors, keyed=True)
            # Between two marks a config gains at most hi - lo runs.
            sql = _BY_AUTHOR.format(src=src.source, sum=_sum_of(rows.bound + hi - lo))
            for author, *lists in self.reader.query(sql, src.params).rows:
                late[author] = list(zip(*lists))
        sign = 1 if since >= held.mark else -1
        return {a: held.at(a, late.get(a, []), sign) for a in authors}

    def _grouped(self, since: int, rows: config_rows.Rows, authors: list[str] | None = None,
                 more_runs: int = 0) -> author_sums.AuthorSums:
        """Every author's (or these authors') sane finished runs below `since`, grouped by config
        (one query, lists per author: a tuple per (author, config) costs twice as much to fetch);
        `rows`: the per-config rows (their index; their bound, plus `more_runs`, for the sums'
        type) as of `since`, or as of a mark `more_runs` runs away from it."""
        src = evidence_sql.sane_runs(self.reader, self.facts, self.track, _COLUMNS, (0, since),
                                     authors=authors, keyed=True)
        covered = None if authors is None else frozenset(authors)
        total = _sum_of(rows.bound + more_runs)
        if total == _SMALL_SUM and hasattr(self.reader, "query_arrow"):
            # As Arrow arrays: no Python object per pair, so grouping every author's runs in
            # the background no longer holds the GIL for most of a second (requests wait on it).
            table = self.reader.query_arrow(_PAIRS.format(src=src.source, sum=total), src.params)
            return author_sums.AuthorSums.of_table(table, since, rows.index, covered)
        found = self.reader.query(_BY_AUTHOR.format(src=src.source, sum=total), src.params).rows
        return author_sums.AuthorSums.of(found, since, rows.index, covered)

    def group_authors(self) -> None:
        """Group every author's runs now (~0.3 s of CPU at a million runs), so that no change
        of trust along this line of states groups any: the dashboard's warm-up does it."""
        with self._lock:
            rows = self._table().rows
        held = self._grouped_runs.usable(self.mark, rows.index)
        if held is None or held.covered is not None:
            self._grouped_runs.keep(self._grouped(self.mark, rows))

    def ranking(self, limit: int) -> tuple[list[str], list[str]]:
        """The `limit` best configs by trusted mean (ties by hash), and the `limit` best of those
        with untrusted sane runs only (by their mean)."""
        with self._lock:
            return self._table().rows.top(limit)

    # ---- the other aggregates --------------------------------------------------------------------

    def tally(self) -> dict[str, int]:
        """Counted runs of purpose `baseline` per config."""
        def tally(rows: tuple[int, int] | None = None) -> dict[str, int]:
            return dict(self._query(_TALLY, self._src("r.config_hash, r.author, r.status, "
                                                      "r.purpose", rows)))

        def step(base: dict[str, int], _: list[str], since: int) -> dict[str, int]:
            value = dict(base)             # counts only grow: add those of the runs since
            for chash, n in tally((since, self.mark)).items():
                value[chash] = value.get(chash, 0) + n
            return value
        with self._lock:
            return self._tally.get(tally, step)

    def screened(self) -> dict[str, tuple[int, str]]:
        """Configs screened by trusted authors (the FDR family), each with the (ts, id) of its
        first such screen."""
        with self._lock:
            if self._screened is None:
                src = self._plain("r.config_hash, r.author, r.purpose, r.ts, r.id")
                self._screened = _first_screens({}, self._query(_SCREENED, src))
            return self._screened

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` finished runs, newest first: ts, id, val_bpb, purpose, counts."""
        with self._lock:
            if limit not in self._newest:
                self._newest[limit] = self._newest_in(None, limit)
            found = self._newest[limit]
        trusted = set(self.trusted)
        return [{"ts": ts, "id": i, "val_bpb": v, "purpose": p,
                 "counts": bool(sane) and a in trusted} for ts, i, v, p, a, sane in found]

    def newest_counted(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` runs that count here (sane, by a trusted author), newest first, in
        `newest`'s form: a flood of strangers' runs cannot push them out of a chart."""
        with self._lock:
            if limit not in self._counted:
                self._counted[limit] = self._counted_in(None, limit)
            found = self._counted[limit]
        return [{"ts": ts, "id": i, "val_bpb": v, "purpose": p, "counts": True}
                for ts, i, v, p, _, _ in found]

    def _counted_in(self, rows: tuple[int, int] | None, limit: int,
                    configs: list[str] | None = None) -> list[tuple[Any, ...]]:
        plain = self._plain("r.ts, r.status, r.val_bpb, r.author", rows)
        src = self._src("r.ts, r.id, r.val_bpb, r.purpose, r.author, r.status", rows, configs)
        for window in (2 * limit, 16 * limit, None):
            cut, held = (0, 0) if window is None else self._query(_CUT_TRUSTED, plain, [window])[0]
            found = [tuple(r) for r in self._query(_NEWEST_COUNTED, src, [cut, limit])]
            # exact when the window held every trusted run, or `limit` counted runs: any counted
            # run outside it is older than all of those
            if window is None or held < window or len(found) >= limit:
                return found
        return found

    def _newest_in(self, rows: tuple[int, int] | None, limit: int,
                   configs: list[str] | None = None) -> list[tuple[Any, ...]]:
        src = self._src("r.ts, r.id, r.val_bpb, r.purpose, r.author, r.status", rows, configs)
        plain = self._plain("r.ts, r.status, r.val_bpb", rows)
        cut = self.reader.query(_CUT.format(src=plain.source), [*plain.params, limit]).rows[0][0]
        sql = _NEWEST.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        return [tuple(r) for r in self.reader.query(sql, [*src.params, cut, limit]).rows]

    # ---- moving on -------------------------------------------------------------------------------

    def advance(self, upto: int, trusted: list[str], equivocated: int) -> Aggregates:
        """These aggregates as of `upto`, from the runs stored since `self.mark` (a fresh,
        lazily computed set when what every row depends on has changed)."""
        fresh = Aggregates(self.reader, self.track, self.facts, trusted, upto, equivocated)
        if equivocated != self.equivocated or not self.mark <= upto <= self.mark + MAX_ADVANCE:
            return fresh
        with self._lock:
            fresh.arrived = self._arrived(upto) if upto > self.mark else []
            touched = sorted({h for _, h, _ in fresh.arrived})
            # The per-config table catches up when first asked for (a claim page needs none);
            # across a change of trust it first moves by the changed authors' runs (_retrust).
            fresh._configs = self._configs.moved(touched, self.mark)
            same = list(trusted) == self.trusted
            fresh._grouped_runs = self._grouped_runs
            if same:                       # else computed anew (a few small queries)
                fresh._tally = self._tally.moved(touched, self.mark)
                fresh._screened = self._screened
            if not touched:
                fresh._newest = dict(self._newest)
                fresh._counted = dict(self._counted) if same else {}
                return fresh
            if same and self._screened is not None:
                src = fresh._plain("r.config_hash, r.author, r.purpose, r.ts, r.id",
                                   (self.mark, upto))
                fresh._screened = _first_screens(self._screened, fresh._query(_SCREENED, src))
            for limit, old in self._newest.items():      # trust does not enter: kept
                new = fresh._newest_in((self.mark, upto), limit, touched)
                fresh._newest[limit] = _newest_first(old + new)[:limit]
            for limit, old in (self._counted.items() if same else ()):
                new = fresh._counted_in((self.mark, upto), limit, touched)
                fresh._counted[limit] = _newest_first(old + new)[:limit]
        return fresh

    def _arrived(self, upto: int) -> list[tuple[str, str, str | None]]:
        """The track's runs stored in [mark, upto): id, config hash, ref."""
        return [tuple(r) for r in self.reader.query(
            "SELECT id, config_hash, ref FROM runs WHERE track = ? AND rowid >= ? AND rowid < ?",
            [self.track, self.mark, upto]).rows]


def _newest_first(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda r: (r[0], r[1]), reverse=True)


def _first_screens(known: dict[str, tuple[int, str]],
                   rows: list[tuple[Any, ...]]) -> dict[str, tuple[int, str]]:
    """`known` with (config, ts, id) rows merged in: each config keeps its smallest (ts, id)."""
    out = dict(known)
    for chash, ts, rid in rows:
        key = (int(ts), str(rid))
        if chash not in out or key < out[chash]:
            out[chash] = key
    return out


def _groups(rows: list[tuple[Any, ...]], at_least: int = 2) -> Repeats:
    """(config, seed, ts, id, author, val_bpb) rows as (config, seed) -> runs, oldest first; the
    groups of `at_least` runs only."""
    out: Repeats = {}
    for chash, seed, ts, run_id, author, bpb in rows:
        out.setdefault((chash, seed), []).append((ts, run_id, author, bpb))
    return {k: sorted(v) for k, v in out.items() if len(v) >= at_least}


_COLUMNS = "r.config_hash, r.seed, r.author, r.val_bpb, r.ts, r.id, r.status, r.purpose"
