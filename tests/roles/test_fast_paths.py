"""The cheaper paths of the verdicts at a million runs against the plain ones they replace: the
repeated seeds found in numpy (roles/repeats.py), the 1e-12 units by a guarded double product,
the per-config rows from Arrow arrays, runs read by id from their records and by narrow scans
(roles/run_rows.py), the replays' targets read at an earlier mark. Real stores, real DuckDB."""
from __future__ import annotations

import math
import random
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from memory import stats
from memory.store import Store
from roles import config_rows, evidence_inc, replays_inc, repeats, run_rows, sanity, trust, verdicts
from roles.config_rows import Rows
from roles.verdicts import Verdicts
from tests.roles.test_verdicts_sql import BUDGET, HARNESS, SIM, _fill, _more, _same_verdicts


def _brute(keys: list[int], rowids: list[int]) -> list[int]:
    counts: dict[int, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return sorted(r for k, r in zip(keys, rowids) if counts[k] > 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repeated_hashes_found_in_numpy_equal_a_count(seed: int) -> None:
    """Every row whose hash occurs twice, and no other, whatever the low bits (the bitmap's
    index) share: hashes equal in their low 20 bits only, in their high bits only, repeated
    three times, and none repeated at all."""
    rng = random.Random(seed)
    base = [rng.getrandbits(64) for _ in range(3000)]
    keys = base + [base[i] for i in rng.sample(range(3000), 40)]          # repeats
    keys += [base[i] for i in rng.sample(range(3000), 5)] * 2             # three or more
    keys += [(base[i] & ~0xFFFFF) | rng.getrandbits(20) for i in range(50)]   # same high bits
    keys += [(rng.getrandbits(44) << 20) | (base[i] & 0xFFFFF) for i in range(50)]  # same low
    keys += [2**64 - 1, 0, 2**64 - 1]
    rowids = rng.sample(range(10**6), len(keys))
    table = pa.table({"rid": pa.array(rowids, pa.int64()), "k": pa.array(keys, pa.uint64())})
    assert repeats.candidates(table) == _brute(keys, rowids)
    unique = pa.table({"rid": pa.array(range(3000), pa.int64()),
                       "k": pa.array(base, pa.uint64())})
    assert repeats.candidates(unique) == _brute(base, list(range(3000)))
    assert repeats.candidates(unique.slice(0, 1)) == []


def test_the_guarded_double_product_is_the_decimal_cast() -> None:
    """The 1e-12 units of a val_bpb: the double product where it is not near a half, the cast to
    DECIMAL(18, 12) near one: equal to the cast for every value, ties at 1e-12 (where the
    plain double product rounds differently) and their neighbours included."""
    rng = random.Random(7)
    values = [rng.uniform(0, 8) for _ in range(20000)]
    values += [round(rng.uniform(0, 8), 6) for _ in range(20000)]
    values += [rng.randrange(1, 8 * 10**12) / 1e12 for _ in range(20000)]
    ties = [(rng.randrange(1, 8 * 10**12) + 0.5) / 1e12 for _ in range(20000)]
    values += ties + [math.nextafter(x, 0) for x in ties] + [math.nextafter(x, 9) for x in ties]
    values += [8.0, 1e-12, 5e-13, 2.5e-12, 7.9999999999995, 1.0000000000005]
    con = duckdb.connect()
    con.execute("CREATE TABLE v AS SELECT unnest(?::DOUBLE[]) AS val_bpb", [values])
    fast, exact = evidence_inc._PICO, evidence_inc._DECIMAL_PICO
    differ = con.execute(f"SELECT count(*) FILTER (WHERE {fast} <> {exact}), "
                         f"count(*) FILTER (WHERE CAST(val_bpb * 1e12 AS BIGINT) <> {exact}) "
                         "FROM v").fetchone()
    assert differ[0] == 0
    assert differ[1] > 0             # the guard is needed: the plain product differs on ties


def _table(rows: dict[str, tuple[int, int, int, int]]) -> pa.Table:
    hashes = sorted(rows)
    return pa.table({"h": pa.array(hashes, pa.string())} | {
        name: pa.array([rows[h][i] for h in hashes], pa.decimal128(38, 0) if i % 2 == 0
                       else pa.int64())
        for i, name in enumerate(("t_sum", "t_n", "u_sum", "u_n"))})


def test_rows_from_arrow_arrays_equal_rows_from_tuples() -> None:
    """Rows from the per-config query's Arrow table equal `Rows.of` on the same tuples, as int64
    and, past config_rows.SAFE_N runs in a config, as Python integers."""
    rng = random.Random(3)
    small = {f"{i:032x}": (rng.randrange(10**14), rng.randrange(1, 20), rng.randrange(10**14),
                           rng.randrange(20)) for i in range(500)}
    n = config_rows.SAFE_N + 5
    big = dict(small, **{"f" * 32: (n * 8 * 10**12, n, 0, 0)})
    for rows in (small, big, {}):
        bound = max((r[1] + r[3] for r in rows.values()), default=0)
        arrays, tuples = Rows.of_table(_table(rows)), Rows.of(rows, bound)
        assert arrays.as_dict() == tuples.as_dict() and arrays.bound == tuples.bound
        assert arrays.values.dtype == tuples.values.dtype
        assert arrays.index.hashes == tuples.index.hashes
        if rows:
            assert arrays.top(7) == tuples.top(7)


class _RowsOnly:
    """The store as a reader that answers with rows only (no `query_arrow`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def query(self, sql: str, params: Any = ()) -> Any:
        return self.store.query(sql, params)


def test_aggregates_without_arrow_equal_those_with_it(tmp_path) -> None:
    """The per-config rows and repeated seeds of a reader without `query_arrow` (one GROUP BY
    query each) equal the Arrow and numpy path's, repeated seeds included."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, 6)
        facts, params = sanity.TrackFacts({HARNESS: BUDGET, SIM: None}), stats.GateParams()
        for track in (HARNESS, SIM):
            arrow = Verdicts(store, track, roots, facts, params)
            plain = Verdicts(_RowsOnly(store), track, roots, facts, params)
            assert arrow.agg._table().repeats == plain.agg._table().repeats
            assert arrow.agg._table().repeats                  # seeds repeat in this world
            assert arrow.agg.configs() == plain.agg.configs()
            _same_verdicts(arrow, plain)


def test_runs_by_id_and_by_narrow_scans_equal_the_runs_table(tmp_path) -> None:
    """Runs read by id from their records, and by config, ref or id through narrow scans, equal
    their `valid_runs` rows; ids of claims, unknown ids and other tracks' runs are left out."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, _ = _fill(store, 7)
        names = [c.strip() for c in verdicts._RUN_COLUMNS.split(",")]
        found = store.query(f"SELECT {verdicts._RUN_COLUMNS} FROM valid_runs ORDER BY ts, id")
        every = {r[0]: dict(zip(found.columns, r)) for r in found.rows}
        ids = [r.id for r in world.runs[::3]] + [c.id for c in world.claims] + ["ab" * 32]
        rows = run_rows.by_ids(store, ids, names)
        assert sorted(rows, key=lambda r: r["id"]) == sorted(
            (every[i] for i in set(ids) if i in every), key=lambda r: r["id"])
        assert len(rows) > 20
        for track in (HARNESS, SIM):
            chash = next(r.body.config_hash for r in world.runs if r.body.track == track)
            claim = next(c.id for c in world.claims if c.body.track == track)
            cited = [r.id for r in world.runs[:30]]
            match = {"config_hash": [chash], "ref": [claim], "id": cited}
            want = [r for r in every.values() if r["track"] == track and (
                r["config_hash"] == chash or r["ref"] == claim or r["id"] in cited)]
            assert verdicts._load_runs(store, track, match) == want
            assert verdicts._load_runs(store, track, {"id": []}) == []


def test_replays_read_at_an_earlier_mark_leave_later_targets_out(tmp_path) -> None:
    """A full read of the replays as of a mark leaves out the targets stored at or past it (their
    records are found by key whatever the mark), and moving on to the present adds them: then
    equal to `trust.load_replays`."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, roots = _fill(store, 8)
        _more(world, 0)
        _more(world, 1)            # a replay stored one round before its target
        _more(world, 2)
        facts = sanity.TrackFacts({HARNESS: BUDGET, SIM: None})
        late = world.late[0].id
        at = store.query("SELECT rowid FROM runs WHERE id = ?", [late]).rows[0][0]
        equivocated = evidence_inc.equivocations(store)
        early = replays_inc.Replays.read(store, at, equivocated)
        assert late not in early.targets
        assert any(r["ref"] == late for r in early.replays.values())
        now = replays_inc.Replays.read(store, evidence_inc.mark(store), equivocated)
        assert late in now.targets
        moved = early.moved(store, evidence_inc.mark(store))
        assert moved.targets == now.targets
        assert moved.load(facts) == now.load(facts) == trust.load_replays(store, facts)
        assert np.array_equal(sorted(now.replays), sorted(moved.replays))


def test_many_targets_by_a_scan_and_ids_in_chunks_read_the_same(tmp_path, monkeypatch) -> None:
    """Past run_rows.BY_KEY_MAX targets the replays read them by one scan of the ids; by key,
    the ids go in chunks: the same targets, rows and trust either way."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        world, _ = _fill(store, 9)
        facts = sanity.TrackFacts({HARNESS: BUDGET, SIM: None})
        upto, equivocated = evidence_inc.mark(store), evidence_inc.equivocations(store)
        by_key = replays_inc.Replays.read(store, upto, equivocated)
        names = [c.strip() for c in verdicts._RUN_COLUMNS.split(",")]
        ids = [r.id for r in world.runs]
        whole = run_rows.by_ids(store, ids, names)
        monkeypatch.setattr(run_rows, "_BY_KEY", 7)
        assert run_rows.by_ids(store, ids, names) == whole
        monkeypatch.setattr(run_rows, "BY_KEY_MAX", 3)
        scanned = replays_inc.Replays.read(store, upto, equivocated)
        assert len(by_key.targets) > 3
        assert scanned.targets == by_key.targets
        assert scanned.load(facts) == by_key.load(facts) == trust.load_replays(store, facts)
