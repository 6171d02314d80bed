"""`swarm bench trust`'s fabricate scenario with fabricators that name other software or hardware.

    PYTHONPATH=. .venv/bin/python scripts/bench_trust_disguise.py [--rounds 30] [--keys 1000] \
        none code device

Per disguise, runs the fabricate scenario (swarm/bench/trust.py, seed 0, 3 honest nodes) with
every hostile run record changed: `none` as the bench writes it (the honest nodes' synthetic CPU
and software), `code` with `software.code` = "other" (another harness build, by its own word),
`device` with `hardware.device_name` = "other cpu". Prints one JSON line per disguise: the
bench's figures and the gaps |replay - run| of the honest nodes' replays of hostile runs (a
replay on the same CPU and software contradicts beyond 0.005, on other hardware a run 0.5
better than itself: roles/trust.py). Runs with whatever code is on PYTHONPATH, so the same command measures main and
a branch side by side.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from memory import records as R
from memory.store import Store
from roles import evidence
from swarm.bench import trust as B
from swarm.bench.simclock import SimClock

_FIGURES = ("false_verified", "honest_verified_lost", "honest_verified", "honest_runs",
            "replay_share", "fabricators", "fabricators_distrusted", "replays_to_distrust_max")


def _disguised(disguise: str) -> Any:
    """The bench's `_body`, with the disguise applied to what it returns."""
    plain = B._body

    def body(*args: Any, **kwargs: Any) -> R.RunBody:
        out = plain(*args, **kwargs)
        if disguise == "code":
            return out.model_copy(update={"software": {**out.software, "code": "other"}})
        if disguise == "device":
            return out.model_copy(update={"hardware": out.hardware.model_copy(
                update={"device_name": "other cpu"})})
        return out
    return body


def _gaps(store: Store, honest: list[str]) -> list[float]:
    rows = store.query("SELECT abs(r.val_bpb - t.val_bpb) FROM runs r JOIN runs t ON t.id = r.ref "
                       "WHERE r.purpose = 'replay' AND r.author IN (SELECT unnest(?)) AND "
                       "t.author NOT IN (SELECT unnest(?))", [honest, honest]).rows
    return sorted(round(g, 6) for (g,) in rows)


def measure(disguise: str, keys: int, rounds: int) -> dict[str, Any]:
    """One fabricate simulation (the bench's loop) whose hostile runs carry `disguise`."""
    plain, disguised = B._body, _disguised(disguise)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "m.duckdb") as store:
        clock = SimClock()
        nodes = B._honest_nodes(store, 3, 0, clock)
        bad = B.Hostile(store, keys, "fabricate", 0, clock)
        seen: dict[str, int] = {}
        for _ in range(rounds):
            for ctx in nodes:
                clock.step()
                B._step(ctx)
                B._body = disguised          # only the hostile turn writes disguised runs
                try:
                    bad.act(evidence.best_config(nodes[0]))
                finally:
                    B._body = plain
                B._note_distrust(store, nodes, bad, seen)
        figures = B._figures(store, nodes, bad, seen)
        gaps = _gaps(store, sorted(c.me for c in nodes))
    return {"disguise": disguise, **{k: figures[k] for k in _FIGURES},
            "hostile_replayed": len(gaps), "gap_min": gaps[0] if gaps else None,
            "gap_max": gaps[-1] if gaps else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("disguise", nargs="+", choices=("none", "code", "device"))
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    for disguise in args.disguise:
        print(json.dumps(measure(disguise, args.keys, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
