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
scanning, finds the first run held); the baseline tally adds counts; the ranking's sorted order
moves the touched configs by bisection. No step reads a column of every run (`config_hash IN
(...)` would). A change of the trusted authors (trust follows replays and pins) moves the rows by
the runs of the authors whose trust changed (`_retrust`), in one step however many changes
happened since the last ranked state; the ranking then picks its best few in one pass. An
equivocation or a change of the track's facts means a full computation. Each part is computed
on first use, so a view that needs no ranking pays for none.
tests/roles/test_verdicts_sql.py checks advanced aggregates against fresh ones and against the
Python reference (roles/verdicts_ref.py).
"""
from __future__ import annotations

import bisect
import heapq
import threading
from typing import Any

from memory import views
from roles import evidence_sql, sanity

MAX_ADVANCE = 200_000        # more new runs than this: a full computation is as cheap
MAX_SEEDS = 16               # more new trusted seeds than this: re-read the touched configs
# Values are exact integers: val_bpb as DECIMAL(18, 12) (rounded to 1e-12 once, so sums do not
# depend on the order DuckDB adds them in) counted in units of 1e-12. A row's value converts the
# decimal, a group's sum converts the decimal sum (HUGEINT: Python ints, no Decimal objects).
_PICO = "CAST(CAST(val_bpb AS DECIMAL(18, 12)) * 1000000000000 AS BIGINT)"
_SUM = "CAST(coalesce(sum(CAST(val_bpb AS DECIMAL(18, 12))) FILTER (WHERE {where}), 0) " \
       "* 1000000000000 AS HUGEINT)"
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
# A change of trust: per config, the sums of the sane finished runs of the authors whose trust
# changed (the source holds only theirs), apart for those trusted now (`gained`).
_DELTA = f"""
    SELECT config_hash, {{author}} AS gained, {_SUM.format(where="true")} AS s, count(*)
    FROM {{src}} WHERE sane AND status = 'ok' GROUP BY ALL"""
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
Row = tuple[int, int, int, int]           # t_sum, t_n, u_sum, u_n (sums in 1e-12 units)
Run = tuple[int, str, str, int]           # ts, id, author, val_bpb (in 1e-12 units)
Repeats = dict[tuple[str, int], list[Run]]               # (config, seed) -> its runs, oldest first


class _Table:
    """The per-config rows as of a mark, with what a change of trust needs to move them on
    without a full computation: every (config, seed) held by two or more sane finished runs
    (by any author), with those runs (few: replays, reruns of a seed); `trusted`: the authors
    whose runs the rows count."""

    def __init__(self, rows: dict[str, Row], repeats: Repeats, trusted: list[str]) -> None:
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


def _rows_step(some: Any) -> Any:
    """A step for a table keyed by config: the touched configs' rows recomputed by `some`."""
    def step(base: dict[str, Any], hashes: list[str], since: int = 0) -> dict[str, Any]:
        value = dict(base)                 # a dict copy: far cheaper than a comprehension
        for h in hashes:
            value.pop(h, None)
        value.update(some(hashes) if hashes else {})
        return value
    return step


class _Ranked:
    """Every config in order of its ranking key: (trusted mean, hash) for configs with counted
    runs, (untrusted mean, hash) for those with untrusted sane runs only. A mean's key is the
    integer floor(sum * 2**64 / n): exact (two different means of fewer than 2**32 runs each
    differ by at least 2**-64), and integers compare fast.

    After a change of trust (most rows moved) it only picks the best few (one pass,
    `heapq.nsmallest`); the sorted order of every config is made when a later state moves on from
    it (with a full computation of the rows, at once), and kept sorted as rows change from then on, so a
    new run costs a bisection, not a pass over every config."""

    def __init__(self, rows: dict[str, Row],
                 order: tuple[list[tuple[int, str]], list[tuple[int, str]]] | None = None) -> None:
        self.rows = rows                   # the rows ordered (never changed: each state copies)
        self._order = order                # (trusted, others) sorted, once made
        self._tops: dict[int, tuple[list[str], list[str]]] = {}

    @staticmethod
    def _key(row: Row | None) -> tuple[bool, int] | None:
        if row is None:
            return None
        ts, tn, us, un = row
        return (True, (ts << 64) // tn) if tn else (False, (us << 64) // un) if un else None

    def _keys(self, trusted: bool) -> list[tuple[int, str]]:
        # A list comprehension, row fields by index: the fastest pass over every row here.
        if trusted:
            return [((r[0] << 64) // r[1], h) for h, r in self.rows.items() if r[1]]
        return [((r[2] << 64) // r[3], h) for h, r in self.rows.items() if r[3] and not r[1]]

    def order(self) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """Every keyed config, sorted: (trusted, others)."""
        if self._order is None:
            self._order = (sorted(self._keys(True)), sorted(self._keys(False)))
        return self._order

    def top(self, limit: int) -> tuple[list[str], list[str]]:
        """The first `limit` hashes of each order."""
        if limit not in self._tops:
            if self._order is not None:
                best = (self._order[0][:limit], self._order[1][:limit])
            else:
                best = (heapq.nsmallest(limit, self._keys(True)),
                        heapq.nsmallest(limit, self._keys(False)))
            self._tops[limit] = ([h for _, h in best[0]], [h for _, h in best[1]])
        return self._tops[limit]

    def moved(self, rows: dict[str, Row], hashes: list[str]) -> _Ranked:
        """The order once these configs' rows are as in `rows`."""
        trusted, others = (list(x) for x in self.order())
        for h in hashes:
            if (old := self._key(self.rows.get(h))) is not None:
                listed = trusted if old[0] else others
                del listed[bisect.bisect_left(listed, (old[1], h))]
            if (new := self._key(rows.get(h))) is not None:
                bisect.insort(trusted if new[0] else others, (new[1], h))
        return _Ranked(rows, (trusted, others))


class Aggregates:
    """A track's run aggregates as of `mark`, with `trusted` as the authors whose runs count."""

    def __init__(self, reader: Any, track: str, facts: sanity.TrackFacts, trusted: list[str],
                 upto: int, equivocated: int) -> None:
        self.reader, self.track, self.facts, self.trusted = reader, track, facts, list(trusted)
        self.mark, self.equivocated = upto, equivocated
        self._lock = threading.RLock()
        self._configs, self._tally, self._ranked = _PerConfig(), _PerConfig(), _PerConfig()
        self._screened: dict[str, tuple[int, str]] | None = None
        self._newest: dict[int, list[tuple[Any, ...]]] = {}   # limit -> its _NEWEST rows
        # Moved on from an earlier state: the track's runs stored since it (id, config, ref).
        self.arrived: list[tuple[str, str, str | None]] | None = None
        self._full = False                 # this state computed the per-config rows in full

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
        return self._table().rows

    def _table(self) -> _Table:
        with self._lock:
            return self._configs.get(self._all_configs, self._step_configs, self._retrust)

    def _all_configs(self) -> _Table:
        self._full = True
        src = self._src(_COLUMNS)
        repeats = self._repeated(src)
        sql = _FULL.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        rows = {h: tuple(row) for h, *row in self.reader.query(sql, [self.trusted,
                                                                     *src.params]).rows}
        # The trusted sums hold every trusted run: take off those that repeat a seed of their
        # config and are not its first counted run (by ts, id). Exact integers, in Python: an
        # `id NOT IN (...)` filter over every run costs more.
        trusted = set(self.trusted)
        for (chash, _), runs in repeats.items():
            first = _first(runs, trusted)
            for run in runs:
                if run[2] in trusted and run is not first:
                    t_sum, t_n, u_sum, u_n = rows[chash]
                    rows[chash] = (t_sum - run[3], t_n - 1, u_sum, u_n)
        return _Table(rows, repeats, self.trusted)

    def _repeated(self, src: evidence_sql.Sane) -> Repeats:
        """Every (config, seed) held by two or more sane finished runs, with those runs: a 64-bit
        hash of (config, seed) finds the candidates, Python settles them exactly."""
        return _groups(self.reader.query(_REPEATS.format(src=src.source), src.params * 2).rows)

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
            return _Table(_rows_step(self._some_configs)(base.rows, hashes), repeats,
                          self.trusted)
        held = self._held_runs(since, seeds, sorted({h for h, *_ in new}), base.repeats)
        trusted = set(self.trusted)
        value, repeats = dict(base.rows), dict(base.repeats)
        for chash, seed, ts, run_id, author, bpb in sorted(new, key=lambda r: (r[2], r[3])):
            runs = held.setdefault((chash, seed), [])
            old = _first(runs, trusted)
            runs.append((ts, run_id, author, bpb))
            runs.sort()
            if len(runs) > 1:
                repeats[(chash, seed)] = list(runs)
            t_sum, t_n, u_sum, u_n = value.get(chash, _EMPTY)
            if author not in trusted:
                value[chash] = (t_sum, t_n, u_sum + bpb, u_n + 1)
            elif old is None:
                value[chash] = (t_sum + bpb, t_n + 1, u_sum, u_n)
            elif (ts, run_id) < old[:2]:   # an older run arrived late: it is the seed's first
                value[chash] = (t_sum + bpb - old[3], t_n, u_sum, u_n)
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
                                         (0, since), hashes, accepted)
            rows = self.reader.query(_FIRST.format(src=src.source, seed=int(seed)), src.params).rows
            for key, runs in _groups(rows, at_least=1).items():
                out.setdefault(key, runs)  # a repeated seed's runs are those held already
        return out

    def _retrust(self, table: _Table, since: int) -> _Table:
        """`table`, as of `since` with `table.trusted` as the trusted authors, as this state's
        trusted authors would have it: the runs of the authors whose trust changed move between
        the sums (one grouped query over their runs); the repeated seeds that hold one of them
        get their first counted run again. Integer sums, so any number of changes in between
        make one step, from the table's trust to this state's."""
        old, new = table.trusted, self.trusted
        gained, changed = set(new) - set(old), set(new) ^ set(old)
        if not changed:
            return table
        src = evidence_sql.sane_runs(self.reader, self.facts, self.track, _COLUMNS, (0, since),
                                     authors=sorted(changed))
        sql = _DELTA.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        # Their runs in repeated seeds are not in the trusted sums as such: settled below.
        repeated: dict[tuple[str, bool], tuple[int, int]] = {}
        for (chash, _), runs in table.repeats.items():
            for _, _, author, bpb in runs:
                if author in changed:
                    s, n = repeated.get((chash, author in gained), (0, 0))
                    repeated[(chash, author in gained)] = (s + bpb, n + 1)
        rows = dict(table.rows)
        for chash, plus, s, n in self.reader.query(sql, [sorted(gained), *src.params]).rows:
            t_sum, t_n, u_sum, u_n = rows[chash]
            rows[chash] = ((t_sum + s, t_n + n, u_sum - s, u_n - n) if plus else
                           (t_sum - s, t_n - n, u_sum + s, u_n + n))
        for (chash, plus), (s, n) in repeated.items():     # not moved into the trusted sums
            t_sum, t_n, u_sum, u_n = rows[chash]
            rows[chash] = (t_sum - s, t_n - n, u_sum, u_n) if plus else (t_sum + s, t_n + n,
                                                                          u_sum, u_n)
        before, after = set(old), set(new)
        for (chash, _), runs in table.repeats.items():
            if changed.isdisjoint(r[2] for r in runs):
                continue
            was, now = _first(runs, before), _first(runs, after)
            t_sum, t_n, u_sum, u_n = rows[chash]
            if was is not None:
                t_sum, t_n = t_sum - was[3], t_n - 1
            if now is not None:
                t_sum, t_n = t_sum + now[3], t_n + 1
            rows[chash] = (t_sum, t_n, u_sum, u_n)
        return _Table(rows, table.repeats, self.trusted)

    def ranking(self, limit: int) -> tuple[list[str], list[str]]:
        """The `limit` best configs by trusted mean (ties by hash), and the `limit` best of those
        with untrusted sane runs only (by their mean)."""
        with self._lock:
            ranked = self._ranked.get(self._all_ranked,
                                      lambda base, hashes, _: base.moved(self.configs(), hashes))
            return ranked.top(limit)

    def _all_ranked(self) -> _Ranked:
        ranked = _Ranked(self.configs())
        if self._full:                     # with a full computation (seconds): sorted at once,
            ranked.order()                 # so the next record's request does not sort
        return ranked

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
            if same:                       # else computed anew (a few small queries, a sort)
                fresh._tally = self._tally.moved(touched, self.mark)
                fresh._ranked = self._ranked.moved(touched, self.mark)
                fresh._screened = self._screened
            if not touched:
                fresh._newest = dict(self._newest)
                return fresh
            if same and self._screened is not None:
                src = fresh._plain("r.config_hash, r.author, r.purpose, r.ts, r.id",
                                   (self.mark, upto))
                fresh._screened = _first_screens(self._screened, fresh._query(_SCREENED, src))
            for limit, old in self._newest.items():      # trust does not enter: kept
                new = fresh._newest_in((self.mark, upto), limit, touched)
                merged = sorted(old + new, key=lambda r: (r[0], r[1]), reverse=True)
                fresh._newest[limit] = merged[:limit]
        return fresh

    def _arrived(self, upto: int) -> list[tuple[str, str, str | None]]:
        """The track's runs stored in [mark, upto): id, config hash, ref."""
        return [tuple(r) for r in self.reader.query(
            "SELECT id, config_hash, ref FROM runs WHERE track = ? AND rowid >= ? AND rowid < ?",
            [self.track, self.mark, upto]).rows]


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
