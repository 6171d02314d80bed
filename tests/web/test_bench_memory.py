"""The fast generator of the benchmarks' memory (swarm/bench/memory_gen.py): the same signed
records as memory.synthetic.runs, byte for byte, and the same tables as a node ingesting them."""
from __future__ import annotations

from memory import synthetic
from memory.store import Store
from swarm.bench import memory_gen

TS = 1_700_000_000_000


def test_generated_records_are_synthetic_runs_byte_for_byte() -> None:
    keys = synthetic.keypairs(5)
    slow = [r.raw for r in synthetic.runs(keys, 300, configs=40, seed=3, ts=TS)]
    fast = list(memory_gen.signed_runs(keys, 300, configs=40, seed=3, ts=TS))
    assert [r.raw for r in fast] == slow
    assert [r.id for r in fast] == [r.id for r in synthetic.runs(keys, 300, configs=40, seed=3,
                                                                  ts=TS)]


def _tables(store: Store) -> dict[str, list[tuple]]:
    return {sql: store.query(sql).rows for sql in (
        "SELECT * FROM records ORDER BY id", "SELECT * FROM runs ORDER BY id",
        "SELECT * FROM seed_stats ORDER BY config_hash")}


def test_bulk_load_writes_what_ingest_writes(tmp_path) -> None:
    keys = synthetic.keypairs(4)
    rows = list(memory_gen.signed_runs(keys, 400, configs=30, seed=5, ts=TS))
    with Store(tmp_path / "bulk.duckdb", helpers=0) as bulk, \
            Store(tmp_path / "node.duckdb", helpers=0) as node:
        assert memory_gen.bulk_load(bulk, iter(rows), batch=150) == 400
        report = node.ingest([r.raw for r in rows])          # every check a node makes
        assert report.accepted == 400 and not report.rejected
        assert _tables(bulk) == _tables(node)
        assert bulk.ingest([r.raw for r in rows[:50]]).duplicate == 50    # known to the store


def test_cached_memory_is_built_once(tmp_path) -> None:
    first = memory_gen.cached_memory(tmp_path, 120, authors=3)
    made = first.stat().st_mtime_ns
    assert memory_gen.cached_memory(tmp_path, 120, authors=3) == first
    assert first.stat().st_mtime_ns == made
    with Store(first, helpers=0) as store:
        assert store.query("SELECT count(*) FROM valid_runs").rows[0][0] == 120
