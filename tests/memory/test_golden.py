"""Records written by format version 1 must stay readable, with the same ids and view answers."""
from __future__ import annotations

import json
from pathlib import Path

from memory import codec, stream
from memory.store import Store
from tests.golden.make_golden import VIEW_QUERIES

GOLDEN = Path(__file__).parents[1] / "golden"


def test_golden_records_still_decode_and_ingest() -> None:
    expected = json.loads((GOLDEN / "expected-v1.json").read_text())
    with open(GOLDEN / "records-v1.swarm", "rb") as f:
        raws = list(stream.read(f))
    decoded = [codec.decode(raw) for raw in raws]
    assert [{"id": r.id, "kind": r.kind, "author": r.author, "seq": r.seq, "ts": r.ts}
            for r in decoded] == expected["records"]
    assert {r.kind for r in decoded} == set(codec.BODIES)          # every kind is covered
    with Store(":memory:") as store:
        assert store.ingest(raws).accepted == len(raws)
        for name, sql in VIEW_QUERIES.items():
            rows = [list(row) for row in store.query(sql).rows]
            assert rows == expected["views"][name], name     # views are exact: floats included
