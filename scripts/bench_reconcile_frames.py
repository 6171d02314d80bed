"""CPU seconds a 2.x sync responder spends answering one frame of have/want requests.

    PYTHONPATH=. .venv/bin/python scripts/bench_reconcile_frames.py [--keys 100000] [--runs 3]

A frame of MAX_REQUESTS (2,048) requests of one kind, over a snapshot of `--keys` keys (700-byte
records), in two shapes: `overlap` (every request the whole range: each cost a pass over the
memory) and `disjoint` (the range cut into 2,048 pieces, as an honest requester's are). Prints one
JSON line per (kind, shape): the median process CPU of `--runs`, the runs, and the outcome.
Runs with whatever code is on PYTHONPATH, so the same command measures main and a branch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np

from memory import reconcile


def frame(snapshot: reconcile.Snapshot, kind: str, shape: str) -> list[list[Any]]:
    """MAX_REQUESTS requests of `kind` ("h" or "w", listing no keys) in `shape`."""
    k = reconcile.MAX_REQUESTS
    if shape == "overlap":
        cuts = [reconcile.START, reconcile.END] * k
    else:
        inner = [snapshot.bound_at(len(snapshot) * i // k) for i in range(1, k)]
        cuts = [b for pair in zip([reconcile.START, *inner], [*inner, reconcile.END]) for b in pair]
    return [[kind, reconcile.encode_bound(lo), reconcile.encode_bound(hi), b""]
            for lo, hi in zip(cuts[::2], cuts[1::2])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    snapshot = reconcile.Snapshot.build(rng.integers(1, 2**40, args.keys),
                                        rng.integers(0, 2**63, args.keys, dtype=np.uint64),
                                        np.full(args.keys, 700))
    for kind in ("h", "w"):
        for shape in ("overlap", "disjoint"):
            requests, cpu, outcome = frame(snapshot, kind, shape), [], ""
            for _ in range(args.runs):
                started = time.process_time()
                try:
                    replies, at = reconcile.answer_at(snapshot, requests)
                    outcome = f"answered, {at.size} records to send"
                except ValueError as exc:
                    outcome = f"refused: {exc}"
                cpu.append(round(time.process_time() - started, 3))
            print(json.dumps({"kind": kind, "shape": shape, "keys": args.keys,
                              "requests": len(requests), "cpu_s_median": statistics.median(cpu),
                              "cpu_s": cpu, "outcome": outcome[:100]}), flush=True)


if __name__ == "__main__":
    main()
