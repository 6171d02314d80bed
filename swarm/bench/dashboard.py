"""`swarm bench dashboard`: latency of each dashboard JSON view on a big memory.

The memory: `records` synthetic runs (the `swarm bench memory` generator: 20 authors, n/20
configs) plus a small swarm's history (claims, verifications, a finding) on the same track. Each
view is requested through Starlette's TestClient (routing, the DuckDB queries, JSON encoding);
targets (issue 13): under 300 ms for the overview and the leaderboard, under 1 s for any page.
The home pins the replayers and the history's nodes, so verdicts weigh trusted, untrusted and
distrusted authors. Each view is measured twice: with the verdicts' cache kept (the memory does
not change between requests) and cold, the cache dropped before every request (as after a record
arrives: what a live swarm's dashboard pays).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from swarm.output import print_json, print_table

TRACK = "synthetic-track"


REPLAYERS = 4            # keys that replay synthetic runs (pinned by the bench's home)
REPLAYS = 400            # replays of synthetic runs: those of one author contradict them


def _replays(raws: list[bytes]) -> list[Any]:
    """Replays by `REPLAYERS` keys of runs of the first 16 synthetic authors: 15 of them earn
    trust (matching replays by a root), the 16th loses it (its replays contradict its runs)."""
    from memory import codec, synthetic

    keys = synthetic.keypairs(REPLAYERS, seed=99)
    seqs = [0] * REPLAYERS
    out = []
    for n, i in enumerate(_targets(len(raws))):
        target = codec.decode(raws[i], now=2**52)
        body = target.body
        off = 0.01 if i % 20 == 15 else 0.0
        seqs[n % REPLAYERS] += 1
        replay = synthetic.run_body(body.track, body.config, body.seed,
                                    round(body.metrics.val_bpb + off, 6), purpose="replay",
                                    ref=target.id)
        out.append(codec.sign(keys[n % REPLAYERS], "run", seqs[n % REPLAYERS], replay,
                              ts=target.ts + 1))
    return out


def _targets(n: int) -> list[int]:
    """Indexes of the runs replayed: spread over the memory, authors 0-15 in turn (run i is by
    synthetic author i % 20)."""
    step = max(20, n // REPLAYS)
    return [k * step - k * step % 20 + k % 16 for k in range(min(REPLAYS, n // step))]


def roots() -> list[str]:
    """The keys the bench's home pins: the replayers and the synthetic history's nodes."""
    from memory import synthetic

    return [k.peer_id for k in synthetic.keypairs(REPLAYERS, seed=99)
            + synthetic.keypairs(3, seed=100)]


def _build(path: Path, records: int) -> None:
    from memory import synthetic
    from memory.store import Store
    from swarm.bench.memory import _make_records

    raws = _make_records(records, 20)
    with Store(path) as store:
        for i in range(0, len(raws), 20000):
            store.ingest(raws[i:i + 20000])
        store.add(synthetic.history(track=TRACK))
        store.add(_replays(raws))
        store._con.execute("CHECKPOINT")


def _latency(client: Any, path: str, repeats: int, cold: bool) -> dict[str, float]:
    from roles import verdicts

    times, cpu = [], []
    for _ in range(repeats):
        if cold:
            verdicts.forget()         # as after a record arrives: every verdict recomputed
        start, cpu_start = time.perf_counter(), time.process_time()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - cpu_start) * 1000)
        assert response.status_code == 200, (path, response.text[:200])
    times.sort()
    # CPU time (this process, DuckDB's threads included) barely depends on what else the machine
    # runs; wall time on a busy shared machine does.
    return {"median_ms": statistics.median(times),
            "p90_ms": times[min(len(times) - 1, len(times) * 9 // 10)],
            "cpu_median_ms": statistics.median(cpu)}


def _home(path: Path) -> Path:
    """A home that pins the bench's roots (no key of its own): 15 synthetic authors earn trust
    by matching replays, one is distrusted, the last four stay untrusted."""
    from roles import trust

    for peer in roots():
        trust.pin(path, peer, note="bench root")
    return path


def bench(records: int = typer.Option(1_000_000, help="Synthetic runs in the memory."),
          repeats: int = typer.Option(10, help="Requests per view."),
          keep: Path = typer.Option(None, "--memory", help="Reuse (or create) this memory file "
                                    "instead of a temporary one."),
          json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Median and p90 latency of every dashboard JSON view."""
    from starlette.testclient import TestClient

    from memory.store import ReadOnlyMemory
    from swarm.web.app import dashboard_app

    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        path = keep or Path(tmp) / "memory.duckdb"
        if not path.exists():
            _build(path, records)
        memory = ReadOnlyMemory(path)
        runs = memory.query("SELECT count(*) FROM valid_runs").rows[0][0]
        claim = memory.query("SELECT claim FROM claim_status WHERE status = 'verified'").rows[0][0]
        run = memory.query("SELECT id FROM runs ORDER BY ts DESC LIMIT 1").rows[0][0]
        client = TestClient(dashboard_app(memory, _home(Path(tmp) / "home")),
                            base_url="http://127.0.0.1")
        views = {"overview": "/json/overview", "leaderboard": "/json/leaderboard",
                 "claims": "/json/claims", "knobs": "/json/knobs", "runs": "/json/runs",
                 "claim": f"/json/claims/{claim}", "run": f"/json/runs/{run}",
                 "trust": "/json/trust"}
        result = {"runs": runs, "load_average": os.getloadavg()[0],
                  "views": {name: _latency(client, url, repeats, False)
                            for name, url in views.items()},
                  "cold": {name: _latency(client, url, max(1, repeats // 2), True)
                           for name, url in views.items()}}
        memory.close()
    if json_out:
        return print_json(result)
    print_table(f"dashboard JSON latency: {result['runs']:,} runs (load average "
                f"{result['load_average']:.1f}); cold: verdicts recomputed per request",
                ["view", "median", "p90", "CPU median", "cold median", "cold p90"],
                [(name, f"{v['median_ms']:.0f} ms", f"{v['p90_ms']:.0f} ms",
                  f"{v['cpu_median_ms']:.0f} ms", f"{result['cold'][name]['median_ms']:.0f} ms",
                  f"{result['cold'][name]['p90_ms']:.0f} ms")
                 for name, v in result["views"].items()])
