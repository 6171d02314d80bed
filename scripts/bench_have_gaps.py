"""CPU seconds a node spends answering one `/swarm/sync/1.0.0` have-summary full of gaps.

    PYTHONPATH=. .venv/bin/python scripts/bench_have_gaps.py [--records 2000] [--runs 3] 1000 10000

Builds a memory of `--records` records by one author, then, for each gap count, times (process
CPU, every thread: DuckDB's too) `Store.missing_for` on two hostile summaries for that author:
`overlap` (every gap [1, records]: the join of records x gaps grew as their product) and
`disjoint` (gaps [1,1], [3,3], ... sorted and disjoint, as an honest summary's are, claiming a
max seq of 2 x gaps + 1). Prints one JSON line per (shape, gaps): the median of `--runs`, the runs,
and what the store did (records sent, or the refusal). Runs with whatever code is on PYTHONPATH,
so the same command measures main and a branch side by side.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from memory.crypto import Keypair
from memory.store import Store
from tests.network.launcher import make_records

KEY = Keypair(b"\x07" * 32)


def summary(shape: str, gaps: int, records: int) -> dict[str, list[Any]]:
    """A hostile have-summary for KEY's author with `gaps` gaps of `shape`."""
    if shape == "overlap":
        return {KEY.peer_id: [records + 1, [[1, records]] * gaps, 0]}
    return {KEY.peer_id: [2 * gaps + 1, [[2 * k + 1, 2 * k + 1] for k in range(gaps)], 0]}


def once(store: Store, have: dict[str, list[Any]]) -> tuple[float, str]:
    """CPU seconds of one answer, and its outcome."""
    started = time.process_time()
    try:
        sent = sum(len(batch) for batch in store.missing_for(have))
        outcome = f"sent {sent}"
    except ValueError as exc:
        outcome = f"refused: {exc}"
    return time.process_time() - started, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gaps", type=int, nargs="+")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shapes", default="overlap,disjoint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.duckdb") as store:
        assert store.ingest(make_records(args.records, KEY, ts=1_700_000_000_000)).accepted
        for shape in args.shapes.split(","):
            for gaps in args.gaps:
                have = summary(shape, gaps, args.records)
                runs = [once(store, have) for _ in range(args.runs)]
                cpu = [round(c, 3) for c, _ in runs]
                print(json.dumps({"shape": shape, "gaps": gaps, "records": args.records,
                                  "cpu_s_median": statistics.median(cpu), "cpu_s": cpu,
                                  "outcome": runs[0][1][:100]}), flush=True)


if __name__ == "__main__":
    main()
