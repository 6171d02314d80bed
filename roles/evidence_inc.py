"""The verdicts' aggregates over every run of a track, kept up to date as runs arrive.

In a live swarm a record arrives every few seconds, so the first request after a write is the
usual one, not the exception. Recomputing the leaderboard's ranking (first counted run per seed
and their mean, for every config), the baseline tally, the screened configs and the newest runs
over a million runs takes seconds; a new run changes only its own config's row of them.

`Aggregates` holds them for one track as of a mark: the runs whose rowid is below it (the `runs`
table is insert-only, so rowids count up in arrival order). `advance` makes the aggregates of a
later state from an earlier one by reading only the runs that arrived in between: a config's row
holds exact decimal sums, so a new run adds its value (a trusted run only when it is its seed's
first by ts and id: one query per new seed, which DuckDB filters while scanning, finds the first
run held); the baseline tally adds counts; the ranking's sorted order moves the touched configs
by bisection. No step reads a column of every run (`config_hash IN (...)` would). It falls back
to a full computation when the inputs every row depends on changed: the
trusted authors (trust follows replays), the equivocating authors, or the track's facts. Each
part is computed on first use, so a view that needs no ranking pays for none.
tests/roles/test_verdicts_sql.py checks advanced aggregates against fresh ones and against the
Python reference (roles/verdicts_ref.py).
"""
from __future__ import annotations

import bisect
import threading
from decimal import Decimal
from typing import Any

from memory import views
from roles import evidence_sql, sanity

MAX_ADVANCE = 200_000        # more new runs than this: a full computation is as cheap
MAX_SEEDS = 16               # more new trusted seeds than this: re-read the touched configs
_FULL = """
    SELECT config_hash,
           sum(CAST(val_bpb AS DECIMAL(18, 12))) FILTER (WHERE t) AS t_sum,
           count(*) FILTER (WHERE t) AS t_n,
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
# A range's sane finished runs, each with the value the sums add and whether it is trusted.
_NEW = """
    SELECT config_hash, seed, ts, id, CAST(val_bpb AS DECIMAL(18, 12)), {author} AS t
    FROM {src} WHERE sane AND status = 'ok'"""
# Sane finished runs of one seed (an integer literal: DuckDB filters the scan by it) of some
# configs, by any author.
_FIRST = """
    SELECT config_hash, seed, ts, id, author, CAST(val_bpb AS DECIMAL(18, 12)) FROM {src}
    WHERE seed = {seed} AND sane AND status = 'ok'"""
# Sane finished runs, by any author, whose (config, seed) hash occurs more than once (a superset
# of the repeated seeds: Python settles them exactly). Trust does not enter: kept across changes.
_REPEATS = """
    SELECT config_hash, seed, ts, id, author, CAST(val_bpb AS DECIMAL(18, 12)) FROM {src}
    WHERE sane AND status = 'ok' AND hash(config_hash, seed) IN (
        SELECT k FROM (SELECT hash(config_hash, seed) AS k FROM {src}
                       WHERE sane AND status = 'ok' GROUP BY k HAVING count(*) > 1))"""
# A change of trust: per config, the sums of the sane finished runs of the authors whose trust
# changed (the source holds only theirs), apart for those trusted now (`gained`).
_DELTA = """
    SELECT config_hash, {author} AS gained, sum(CAST(val_bpb AS DECIMAL(18, 12))) AS s, count(*)
    FROM {src} WHERE sane AND status = 'ok' GROUP BY ALL"""
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
_NEWEST = """
    SELECT ts, id, val_bpb, purpose, (sane AND {author}) AS counts FROM {src}
    WHERE status = 'ok' AND val_bpb IS NOT NULL AND ts >= ?
    ORDER BY ts DESC, id DESC LIMIT ?"""
Row = tuple[Decimal | None, int, Decimal | None, int]     # t_sum, t_n, u_sum, u_n
Run = tuple[int, str, str, Decimal]                      # ts, id, author, val_bpb
Repeats = dict[tuple[str, int], list[Run]]               # (config, seed) -> its runs, oldest first


class _Table:
    """The per-config rows as of a mark, with what a change of trust needs to move them on
    without a full computation: every (config, seed) held by two or more sane finished runs
    (by any author), with those runs (few: replays, reruns of a seed)."""

    def __init__(self, rows: dict[str, Row], repeats: Repeats) -> None:
        self.rows, self.repeats = rows, repeats


def _first(runs: list[Run], trusted: set[str]) -> Run | None:
    """The seed's counted run: the oldest (ts, id) by a trusted author."""
    return next((r for r in runs if r[2] in trusted), None)


def _plus(total: Decimal | None, value: Decimal | None, sign: int) -> Decimal | None:
    return total if value is None else (total or 0) + sign * value


def _normal(row: tuple[Any, int, Any, int]) -> Row:
    """A row as a full computation gives it: no sum where nothing is counted."""
    ts, tn, us, un = row
    return (ts if tn else None, tn, us if un else None, un)


mark, equivocations = views.runs_mark, views.equivocation_count


class _PerConfig:
    """A value over every config, computed on first use: in full, or (moved on) from an earlier
    state's value and the configs touched since. States nobody asked about pass their touched
    configs on, so one step catches up over several records."""

    def __init__(self) -> None:
        self.value: Any = None
        self.base: Any = None
        self.since = 0                     # the mark of the state `base` is the value of
        self.touched: set[str] = set()
        self.prep: Any = None              # prep(base, since): base as the later state counts it

    def get(self, full: Any, step: Any) -> Any:
        """The value: `full()` computes it all, `step(base, hashes, since)` moves `base` on."""
        if self.value is None:
            if self.base is None:
                self.value = full()
            else:
                base = self.base if self.prep is None else self.prep(self.base, self.since)
                self.value = step(base, sorted(self.touched), self.since)
            self.base, self.touched, self.prep = None, set(), None
        return self.value

    def moved(self, touched: list[str], mark: int, prep: Any = None) -> _PerConfig:
        """This value for a later state, in which `touched` configs got runs (`mark`: this
        value's state's); `prep(base, since)`, when given, turns a base value into the one the
        later state would have had at `since` (a change of trust), before the step."""
        out = _PerConfig()
        if self.value is not None:
            out.base, out.touched, out.since, out.prep = self.value, set(touched), mark, prep
        elif self.base is not None:
            out.base, out.touched, out.since = self.base, self.touched | set(touched), self.since
            out.prep = _then(self.prep, prep)
        return out


def _then(first: Any, second: Any) -> Any:
    """Two preparations, one after the other (either may be None)."""
    if first is None or second is None:
        return first or second
    return lambda base, since: second(first(base, since), since)


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
    runs, (untrusted mean, hash) for those with untrusted sane runs only. Kept sorted as rows
    change, so a new run costs a bisection, not a pass over every config."""

    def __init__(self, trusted: list[tuple[Any, str]], others: list[tuple[Any, str]],
                 keys: dict[str, tuple[bool, Any]], rows: dict[str, Row] | None = None) -> None:
        self.trusted, self.others, self.keys = trusted, others, keys
        self.rows = rows                   # the rows ordered (never changed: each state copies)

    @staticmethod
    def _key(row: Row) -> tuple[bool, Any] | None:
        ts, tn, us, un = row
        return (True, ts / tn) if tn else (False, us / un) if un else None

    @classmethod
    def of(cls, rows: dict[str, Row], earlier: _Ranked | None = None) -> _Ranked:
        """The order of these configs' rows; from `earlier`'s order when given (after a change
        of trust): its rows that are still the same objects keep their place, only the others
        are keyed and sorted, and the two sorted runs are merged (Timsort merges two runs in a
        pass)."""
        if earlier is None or earlier.rows is None:
            keys = {h: k for h, r in rows.items() if (k := cls._key(r)) is not None}
            return cls(sorted((m, h) for h, (t, m) in keys.items() if t),
                       sorted((m, h) for h, (t, m) in keys.items() if not t), keys, rows)
        held = earlier.rows
        changed = {h for h, r in rows.items() if held.get(h) is not r} | (held.keys() - rows)
        keys = dict(earlier.keys)          # a copy in C, then the changed ones replaced
        for h in changed:
            keys.pop(h, None)
        new = {h: k for h in changed if h in rows and (k := cls._key(rows[h])) is not None}
        keys.update(new)
        trusted = [x for x in earlier.trusted if x[1] not in changed]
        others = [x for x in earlier.others if x[1] not in changed]
        return cls(sorted(trusted + sorted((m, h) for h, (t, m) in new.items() if t)),
                   sorted(others + sorted((m, h) for h, (t, m) in new.items() if not t)),
                   keys, rows)

    def moved(self, rows: dict[str, Row], hashes: list[str]) -> _Ranked:
        """The order once these configs' rows are as in `rows`."""
        out = _Ranked(list(self.trusted), list(self.others), dict(self.keys), rows)
        for h in hashes:
            if (old := out.keys.pop(h, None)) is not None:
                listed = out.trusted if old[0] else out.others
                del listed[bisect.bisect_left(listed, (old[1], h))]
            if h in rows and (new := self._key(rows[h])) is not None:
                out.keys[h] = new
                bisect.insort(out.trusted if new[0] else out.others, (new[1], h))
        return out


class Aggregates:
    """A track's run aggregates as of `mark`, with `trusted` as the authors whose runs count."""

    def __init__(self, reader: Any, track: str, facts: sanity.TrackFacts, trusted: list[str],
                 upto: int, equivocated: int) -> None:
        self.reader, self.track, self.facts, self.trusted = reader, track, facts, list(trusted)
        self.mark, self.equivocated = upto, equivocated
        self._lock = threading.RLock()
        self._configs, self._tally, self._ranked = _PerConfig(), _PerConfig(), _PerConfig()
        self._screened: dict[str, tuple[int, str]] | None = None
        self._newest: dict[int, list[dict[str, Any]]] = {}
        self._earlier: _Ranked | None = None   # an earlier state's order (a change of trust)
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
        return self._table().rows

    def _table(self) -> _Table:
        with self._lock:
            return self._configs.get(self._all_configs, self._step_configs)

    def _all_configs(self) -> _Table:
        src = self._src(_COLUMNS)
        repeats = self._repeated(src)
        sql = _FULL.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        rows = {h: tuple(row) for h, *row in self.reader.query(sql, [self.trusted,
                                                                     *src.params]).rows}
        # The trusted sums hold every trusted run: take off those that repeat a seed of their
        # config and are not its first counted run (by ts, id). Exact decimals, in Python: an
        # `id NOT IN (...)` filter over every run costs more.
        trusted = set(self.trusted)
        for (chash, _), runs in repeats.items():
            first = _first(runs, trusted)
            for run in runs:
                if run[2] in trusted and run is not first:
                    t_sum, t_n, u_sum, u_n = rows[chash]
                    rows[chash] = _normal((t_sum - run[3], t_n - 1, u_sum, u_n))
        return _Table(rows, repeats)

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
        return _groups(self.reader.query(
            f"SELECT config_hash, seed, ts, id, author, CAST(val_bpb AS DECIMAL(18, 12)) FROM "
            f"{src.source} WHERE sane AND status = 'ok'", src.params).rows)

    def _step_configs(self, base: _Table, hashes: list[str], since: int) -> _Table:
        """`base`, the table as of `since`, updated with the sane finished runs stored since:
        sums of exact decimals, so the rows are those a full computation gives. A new trusted run
        counts when it is its seed's first (by ts, id), in place of the one that was."""
        new = self._sane_since(since)
        seeds = sorted({seed for _, seed, *_ in new if seed is not None})
        if len(seeds) > MAX_SEEDS or any(seed is None for _, seed, *_ in new):
            # One query per seed: past a few, re-read the touched configs.
            repeats = {k: v for k, v in base.repeats.items() if k[0] not in set(hashes)}
            repeats.update(self._some_repeats(hashes) if hashes else {})
            return _Table(_rows_step(self._some_configs)(base.rows, hashes), repeats)
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
            t_sum, t_n, u_sum, u_n = value.get(chash, (None, 0, None, 0))
            if author not in trusted:
                value[chash] = (t_sum, t_n, bpb + (u_sum or 0), u_n + 1)
            elif old is None:
                value[chash] = (bpb + (t_sum or 0), t_n + 1, u_sum, u_n)
            elif (ts, run_id) < old[:2]:   # an older run arrived late: it is the seed's first
                value[chash] = (t_sum + bpb - old[3], t_n, u_sum, u_n)
        return _Table(value, repeats)

    def _sane_since(self, since: int) -> list[tuple[Any, ...]]:
        """The sane finished runs stored in [since, mark): config, seed, ts, id, author,
        val_bpb (as the sums take it)."""
        src = self._src(_COLUMNS, (since, self.mark))
        return self.reader.query(
            f"SELECT config_hash, seed, ts, id, author, CAST(val_bpb AS DECIMAL(18, 12)) FROM "
            f"{src.source} WHERE sane AND status = 'ok'", src.params).rows

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

    def _retrust(self, table: _Table, since: int, old: list[str], new: list[str]) -> _Table:
        """`table`, as of `since` with `old` as the trusted authors, as `new` would have it: the
        runs of the authors whose trust changed move between the sums (one grouped query over
        their runs); the repeated seeds that hold one of them get their first counted run again."""
        gained, changed = set(new) - set(old), set(new) ^ set(old)
        if not changed:
            return table
        src = evidence_sql.sane_runs(self.reader, self.facts, self.track, _COLUMNS, (0, since),
                                     authors=sorted(changed))
        sql = _DELTA.format(src=src.source, author=evidence_sql.AUTHOR_IN)
        # Their runs in repeated seeds are not in the trusted sums as such: settled below.
        repeated: dict[tuple[str, bool], tuple[Decimal, int]] = {}
        for (chash, _), runs in table.repeats.items():
            for _, _, author, bpb in runs:
                if author in changed:
                    s, n = repeated.get((chash, author in gained), (Decimal(0), 0))
                    repeated[(chash, author in gained)] = (s + bpb, n + 1)
        rows = dict(table.rows)
        for chash, plus, s, n in self.reader.query(sql, [sorted(gained), *src.params]).rows:
            sign = 1 if plus else -1
            rs, rn = repeated.get((chash, bool(plus)), (Decimal(0), 0))
            t_sum, t_n, u_sum, u_n = rows.get(chash, (None, 0, None, 0))
            rows[chash] = _normal((_plus(t_sum, s - rs, sign), t_n + sign * (n - rn),
                                   _plus(u_sum, s, -sign), u_n - sign * n))
        before, after = set(old), set(new)
        for (chash, _), runs in table.repeats.items():
            if changed.isdisjoint(r[2] for r in runs):
                continue
            was, now = _first(runs, before), _first(runs, after)
            t_sum, t_n, u_sum, u_n = rows[chash]
            if was is not None:
                t_sum, t_n = t_sum - was[3], t_n - 1
            if now is not None:
                t_sum, t_n = (t_sum or 0) + now[3], t_n + 1
            rows[chash] = _normal((t_sum, t_n, u_sum, u_n))
        return _Table(rows, table.repeats)

    def ranking(self, limit: int) -> tuple[list[str], list[str]]:
        """The `limit` best configs by trusted mean (ties by hash), and the `limit` best of those
        with untrusted sane runs only (by their mean)."""
        with self._lock:
            ranked = self._ranked.get(lambda: _Ranked.of(self.configs(), self._earlier),
                                      lambda base, hashes, _: base.moved(self.configs(), hashes))
        return [h for _, h in ranked.trusted[:limit]], [h for _, h in ranked.others[:limit]]

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
        if equivocated != self.equivocated or not self.mark <= upto <= self.mark + MAX_ADVANCE:
            return fresh
        with self._lock:
            fresh.arrived = self._arrived(upto) if upto > self.mark else []
            touched = sorted({h for _, h, _ in fresh.arrived})
            if list(trusted) != self.trusted:
                # Trust moved: the per-config table moves on by the runs of the authors whose
                # trust changed; the rest (a few small queries, a sort) is computed anew.
                old = list(self.trusted)
                fresh._configs = self._configs.moved(
                    touched, self.mark, lambda table, since: fresh._retrust(table, since, old,
                                                                            fresh.trusted))
                fresh._earlier = self._ranked.value or self._earlier
                return fresh
            # The per-config tables catch up when first asked for (a claim page needs neither).
            fresh._configs = self._configs.moved(touched, self.mark)
            fresh._tally = self._tally.moved(touched, self.mark)
            fresh._ranked = self._ranked.moved(touched, self.mark)
            if not touched:
                fresh._screened, fresh._newest = self._screened, dict(self._newest)
                return fresh
            if self._screened is not None:
                src = fresh._plain("r.config_hash, r.author, r.purpose, r.ts, r.id",
                                   (self.mark, upto))
                fresh._screened = _first_screens(self._screened, fresh._query(_SCREENED, src))
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


_LIST = "SELECT unnest(?::VARCHAR[])"
_COLUMNS = "r.config_hash, r.seed, r.author, r.val_bpb, r.ts, r.id, r.status, r.purpose"
