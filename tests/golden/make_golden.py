"""Write the golden record file (run once per record format version; never by the tests).

    python -m tests.golden.make_golden

Records of every kind, signed by fixed keys at fixed times. Later versions must still read them:
tests/memory/test_golden.py checks ids, fields and view results against expected-v1.json.
"""
from __future__ import annotations

import json
from pathlib import Path

from memory import codec, stream, synthetic
from memory.store import Store
from tests.helpers import BASE, CANDIDATE, bodies, run

HERE = Path(__file__).parent
TS = 1_790_000_000_000          # 2026-09-21, fixed so the file never changes


def golden_records() -> list:
    a, b, c = synthetic.keypairs(3, seed=2026)
    runs = [run(a, 1, BASE, 1, 1.25, ts=TS), run(a, 2, BASE, 2, 1.27, ts=TS + 1),
            run(a, 3, CANDIDATE, 1, 1.21, ts=TS + 2), run(a, 4, CANDIDATE, 2, 1.22, ts=TS + 3),
            run(b, 1, CANDIDATE, 3, None, status="crash", ts=TS + 4)]
    claim = codec.sign(a, "claim", 5, bodies(run_id=runs[2].id)["claim"], ts=TS + 5)
    rest = bodies(claim_id=claim.id, run_id=runs[2].id)
    rest["claim_lease"] = rest["claim_lease"].model_copy(update={"expires_ts": TS + 60_000})
    others = [codec.sign(c, kind, seq, rest[kind], ts=TS + 10 + seq)
              for seq, kind in enumerate(["node", "role", "hypothesis", "claim_lease",
                                          "assessment", "finding", "noise_floor"], start=1)]
    others.append(codec.sign(b, "verification", 2, rest["verification"], ts=TS + 30))
    return runs + [claim] + others


def main() -> None:
    records = golden_records()
    with open(HERE / "records-v1.swarm", "wb") as out:
        stream.write(out, (r.raw for r in records))
    store = Store(":memory:")
    store.add(records)
    views = {name: [list(row) for row in store.query(sql).rows] for name, sql in VIEW_QUERIES.items()}
    expected = {"records": [{"id": r.id, "kind": r.kind, "author": r.author, "seq": r.seq, "ts": r.ts}
                            for r in records], "views": views}
    (HERE / "expected-v1.json").write_text(json.dumps(expected, indent=1) + "\n")


VIEW_QUERIES = {
    "leaderboard": "SELECT rank, config_hash, mean, std, n, verified FROM leaderboard ORDER BY rank",
    "claim_status": "SELECT claim, status, confirmed FROM claim_status",
    "noise_floor": "SELECT track, std, n FROM noise_floor",
}

if __name__ == "__main__":
    main()
