"""Write the golden record file of the current format version (once per version; never by the tests).

    python -m tests.golden.make_golden

Records of every kind, signed by fixed keys at fixed times, written to `records-vN.swarm` with the
ids, fields and view answers in `expected-vN.json`. Later versions must still read them
(tests/memory/test_golden.py). An existing version's files are never rewritten: this refuses.
"""
from __future__ import annotations

import json
from pathlib import Path

from memory import codec, records as R, stream, synthetic
from memory.store import Store
from tests.helpers import BASE, CANDIDATE, bodies, run

HERE = Path(__file__).parent
TS = 1_790_000_000_000          # 2026-09-21, fixed so the file never changes


def golden_records() -> list:
    """Records of every kind of the current version (v2: runs carry curves, samples, quality)."""
    a, b, c = synthetic.keypairs(3, seed=2026)
    runs = [run(a, 1, BASE, 1, 1.25, ts=TS, extras=True), run(a, 2, BASE, 2, 1.27, ts=TS + 1),
            run(a, 3, CANDIDATE, 1, 1.21, ts=TS + 2, extras=True),
            run(a, 4, CANDIDATE, 2, 1.22, ts=TS + 3, extras=True),
            run(b, 1, CANDIDATE, 3, None, status="crash", ts=TS + 4)]
    claim = codec.sign(a, "claim", 5, bodies(run_id=runs[2].id)["claim"], ts=TS + 5)
    rest = bodies(claim_id=claim.id, run_id=runs[2].id)
    rest["claim_lease"] = rest["claim_lease"].model_copy(update={"expires_ts": TS + 60_000})
    others = [codec.sign(c, kind, seq, rest[kind], ts=TS + 10 + seq)
              for seq, kind in enumerate(["node", "role", "hypothesis", "claim_lease",
                                          "assessment", "finding", "noise_floor", "judgement"],
                                         start=1)]
    others.append(codec.sign(b, "verification", 2, rest["verification"], ts=TS + 30))
    return runs + [claim] + others


def main() -> None:
    v = R.SCHEMA_VERSION
    out_path, expected_path = HERE / f"records-v{v}.swarm", HERE / f"expected-v{v}.json"
    if out_path.exists() or expected_path.exists():
        raise SystemExit(f"{out_path.name} exists: a version's golden files are never rewritten")
    records = golden_records()
    with open(out_path, "wb") as out:
        stream.write(out, (r.raw for r in records))
    store = Store(":memory:")
    store.add(records)
    views = {name: [list(row) for row in store.query(sql).rows] for name, sql in VIEW_QUERIES.items()}
    expected = {"records": [{"id": r.id, "kind": r.kind, "author": r.author, "seq": r.seq, "ts": r.ts}
                            for r in records], "views": views}
    expected_path.write_text(json.dumps(expected, indent=1) + "\n")


VIEW_QUERIES = {      # expected-vN.json holds the answers of the queries that existed at version N
    "leaderboard": "SELECT rank, config_hash, mean, std, n, verified FROM leaderboard ORDER BY rank",
    "claim_status": "SELECT claim, status, confirmed FROM claim_status",
    "noise_floor": "SELECT track, std, n FROM noise_floor",
    "run_readable": "SELECT id, curve, samples, quality FROM runs ORDER BY id",
    "judgements": "SELECT run, judge, rubric, scores, reason FROM judgements ORDER BY id",
}

if __name__ == "__main__":
    main()
