"""Records written by every format version must stay readable, with the same ids and view answers."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from memory import canonical, codec, records as R, stream, synthetic
from memory.store import Store
from tests.golden.make_golden import VIEW_QUERIES
from tests.helpers import BASE, run

GOLDEN = Path(__file__).parents[1] / "golden"


def _golden(version: int) -> tuple[dict, list[bytes]]:
    expected = json.loads((GOLDEN / f"expected-v{version}.json").read_text())
    with open(GOLDEN / f"records-v{version}.swarm", "rb") as f:
        return expected, list(stream.read(f))


@pytest.mark.parametrize("version", sorted(R.BODIES_BY_VERSION))
def test_golden_records_still_decode_and_ingest(version: int) -> None:
    expected, raws = _golden(version)
    decoded = [codec.decode(raw) for raw in raws]
    assert [{"id": r.id, "kind": r.kind, "author": r.author, "seq": r.seq, "ts": r.ts}
            for r in decoded] == expected["records"]
    assert {r.v for r in decoded} == {version}
    assert {r.kind for r in decoded} == set(R.BODIES_BY_VERSION[version])   # every kind is covered
    with Store(":memory:") as store:
        assert store.ingest(raws).accepted == len(raws)
        for name, want in expected["views"].items():
            rows = [list(row) for row in store.query(VIEW_QUERIES[name]).rows]
            assert rows == want, name     # views are exact: floats included


def test_versions_mix_in_one_memory() -> None:
    """v1 runs (no curve) and v2 runs rank together; the v1 rows hold NULL for v2's columns."""
    _, v1 = _golden(1)
    (author,) = synthetic.keypairs(1, seed=7)       # not a golden author: no equivocation
    v2 = [run(author, seq, BASE, seq, 1.26, extras=True).raw for seq in (1, 2)]
    with Store(":memory:") as store:
        assert store.ingest(v1 + v2).accepted == len(v1) + len(v2)
        rows = store.query("SELECT count(*) FILTER (WHERE curve IS NULL), "
                           "count(*) FILTER (WHERE json_array_length(curve) = 8) FROM runs").rows
        assert [list(r) for r in rows] == [[5, 2]]
        rows = store.query("SELECT n FROM leaderboard WHERE config_hash = ?",
                           [canonical.config_hash(BASE)]).rows
        assert rows[0][0] == 4            # two v1 runs and two v2 runs of the base config


def test_a_file_of_an_older_version_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Store(path):
        pass
    con = duckdb.connect(str(path))       # make it look like version 1 wrote it
    for view in ("dead_ends", "seed_stats", "config_support", "leaderboard", "valid_runs"):
        con.execute(f"DROP VIEW IF EXISTS {view} CASCADE")
    for column in ("curve", "samples", "quality"):
        con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    con.execute("DROP TABLE judgements")
    con.close()
    _, v2 = _golden(2)
    with Store(path) as store:
        assert store.ingest(v2).accepted == len(v2)
        assert store.query("SELECT count(*) FROM runs WHERE quality IS NOT NULL").rows[0][0] == 3
