"""Strangers' testimony in number against the dashboard and `swarm report` (web audit of
2026-12-02; docs/ARCHITECTURE.md, "The dashboard and the report").

    PYTHONPATH=. .venv/bin/python scripts/audit_dashboard_flood.py [--records 20000]

Writes a home (in a temporary folder) holding the synthetic swarm's history, its authors pinned,
and RECORDS records of free keys (1,000 per key) around its verified claim: a quarter fresh seeds
of the claim (untrusted seeds of its config too), a quarter assessments of it, a quarter
judgements of one run, a quarter claims of their own. Prints each JSON view's size and time,
then the report's. Keys are free, so each view must stay bounded whatever RECORDS is.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient                 # noqa: E402

from memory import canonical, codec, records as R, synthetic  # noqa: E402
from memory.store import ReadOnlyMemory, Store              # noqa: E402
from node.home import memory_path                           # noqa: E402
from roles import trust                                     # noqa: E402
from swarm.reader import open_reader                        # noqa: E402
from swarm.web.app import dashboard_app                     # noqa: E402
from swarm.web.report import render                         # noqa: E402

BASE = canonical.config_hash(synthetic.HISTORY_BASE)


def flood(n: int, claim: R.Record, run: R.Record, after: int) -> list[R.Record]:
    """`n` strangers' records about `claim` and `run`, 1,000 per key."""
    keys = synthetic.keypairs(n // 1000 + 1, seed=77)
    best = {**synthetic.HISTORY_BASE, **claim.body.diff}
    out = []
    for i in range(n):
        key, seq, ts = keys[i // 1000], i % 1000 + 1, after + i
        if i % 4 == 0:
            body: R.Body = synthetic.run_body(synthetic.HISTORY_TRACK, best, seed=10_000 + i,
                                              val_bpb=1.9, purpose="verify", ref=claim.id)
            kind = "run"
        elif i % 4 == 1:
            kind, body = "assessment", R.AssessmentBody(
                claim=claim.id, verdict="not_supported", test="welch", p_value=0.5, q_value=0.5,
                effect=0.0, noise_floor=0.01, n=2, reason="x" * 300)
        elif i % 4 == 2:
            kind, body = "judgement", R.JudgementBody(run=run.id, judge="j", rubric="r",
                                                      scores={"a": 1.0}, reason="y" * 300)
        else:
            diff = {"init_scale": 3.0 + i}
            kind, body = "claim", R.ClaimBody(
                track=synthetic.HISTORY_TRACK, baseline_hash=BASE, diff=diff,
                candidate_hash=canonical.config_hash({**synthetic.HISTORY_BASE, **diff}),
                baseline_runs=[], candidate_runs=[], effect=-0.5, summary="z" * 300)
        out.append(codec.sign(key, kind, seq, body, ts=ts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swarm-flood-") as tmp:
        audit(Path(tmp) / "home", args.records)


def audit(home: Path, n: int) -> None:
    """Write the flooded home and print what each view and the report cost."""
    history = synthetic.history(confirms=6)
    claim = next(r for r in history if r.kind == "claim" and r.body.diff == {"init_scale": 2.0})
    run = next(r for r in history if r.kind == "run")
    records = history + flood(n, claim, run, max(r.ts for r in history))
    with Store(memory_path(home), helpers=0) as store:
        print(f"{store.add(records).accepted} records")
    for author in sorted({r.author for r in history}):
        trust.pin(home, author)
    memory = ReadOnlyMemory(memory_path(home))
    try:
        with TestClient(dashboard_app(memory, home), base_url="http://127.0.0.1") as client:
            for path in ("overview", "leaderboard", "claims", f"claims/{claim.id}",
                         f"runs/{run.id}", "runs", "trust", "knobs"):
                start = time.perf_counter()
                answer = client.get(f"/json/{path}")
                print(f"/json/{path[:20]:<20} {answer.status_code} {len(answer.content):>10,} bytes "
                      f"{time.perf_counter() - start:6.2f} s")
    finally:
        memory.close()
    start = time.perf_counter()
    with open_reader(home) as reader:
        size = len(render(reader, home, None).encode())
    print(f"swarm report {size:>19,} bytes {time.perf_counter() - start:6.2f} s")


if __name__ == "__main__":
    main()
