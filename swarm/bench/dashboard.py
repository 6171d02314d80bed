"""`swarm bench dashboard`: latency of each dashboard JSON view on a big memory.

The memory: `records` synthetic runs (the `swarm bench memory` generator, swarm/bench/memory_gen.py:
20 authors, n/20 configs; built once into a cache directory and reused) plus a small swarm's
history (claims, verifications, a finding) on the same track and replays that make 15 of the
synthetic authors trusted, one distrusted. The bench works on a copy, held by a `Store` as a
running node holds its memory. Each view is requested through Starlette's TestClient (routing, the
DuckDB queries, JSON encoding); targets (issue 13): under 300 ms for the overview and the
leaderboard, under 1 s for any page. Three cases per view:

- warm: the memory does not change between requests (the verdicts are cached);
- after a new record: a new signed run (a trusted author's, of a held config) is ingested through
  `Store.ingest` before every request: a live swarm's usual case, records arrive every few seconds;
- recomputed: every cached verdict dropped before every request (a node's first request);
- trust_pin: before every request a new run is ingested and one of the five untrusted authors
  (1/20 of the runs each) is pinned or unpinned in the home: its roots, so who is trusted,
  change to a set not met before (Gray code over the five); overview and leaderboard, 15 each
  at most;
- trust_replay: before every request a root's replay contradicts a run of a trusted author, who
  is then distrusted (1/20 of the runs stop counting): overview and leaderboard, 7 requests each
  at most (the memory has 15 trusted authors to distrust).

Wall time is what the targets are about; CPU time (this process, DuckDB's threads included)
barely depends on what else the machine runs, and the load average is reported with each case.
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from swarm.commands import MAX_ROWS
from swarm.output import check_folder, console, print_json, print_table

TRACK = "synthetic-track"


REPLAYERS = 4            # keys that replay synthetic runs (pinned by the bench's home)
REPLAYS = 400            # replays of synthetic runs: those of one author contradict them


def _replays(n_runs: int, raw: Any) -> list[Any]:
    """Replays by `REPLAYERS` keys of runs of the first 16 synthetic authors: 15 of them earn
    trust (matching replays by a root), the 16th loses it (its replays contradict its runs)."""
    from memory import codec, synthetic

    keys = synthetic.keypairs(REPLAYERS, seed=99)
    seqs = [0] * REPLAYERS
    out = []
    for n, i in enumerate(_targets(n_runs)):
        target = codec.decode(raw(i), now=2**52)         # `raw(i)`: the i-th generated run
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


def _build(path: Path, records: int, cache: Path) -> None:
    """The bench's memory at `path`: the cached generated runs, the history and the replays."""
    from memory import synthetic
    from memory.store import Store
    from swarm.bench import memory_gen

    runs = memory_gen.cached_memory(cache, records)
    shutil.copyfile(runs, path)
    with Store(path, helpers=0) as store:
        store.add(synthetic.history(track=TRACK))
        store.add(_replays(records, lambda i: _raw(store, i)))
        store._con.execute("CHECKPOINT")


def _raw(store: Any, i: int) -> bytes:
    """The `i`-th generated run: synthetic author i % 20's (i // 20 + 1)-th record."""
    from memory import synthetic

    author = synthetic.keypairs(20)[i % 20].peer_id
    return store.query("SELECT raw FROM records WHERE author = ? AND seq = ?",
                       [author, i // 20 + 1]).rows[0][0]


class _Arrivals:
    """New runs of held configs by trusted synthetic authors, signed as they would be."""

    def __init__(self, store: Any) -> None:
        from memory import synthetic

        self.store, self.keys = store, synthetic.keypairs(20)[:15]
        self.configs = [c for (c,) in store.query(
            "SELECT DISTINCT config FROM runs WHERE track = ? LIMIT 200", [TRACK]).rows]
        self.n = 0

    def one(self) -> None:
        """Ingest one more run (through `Store.ingest`, every check made)."""
        import json

        from memory import codec, synthetic

        self.n += 1
        key = self.keys[self.n % len(self.keys)]
        body = synthetic.run_body(TRACK, json.loads(self.configs[self.n % len(self.configs)]),
                                  seed=10**9 + self.n, val_bpb=round(1.0 + self.n % 7 * 0.001, 6))
        record = codec.sign(key, "run", self.store.next_seq(key.peer_id), body)
        assert self.store.ingest([record.raw]).accepted == 1

    def pin_step(self, home: Path) -> None:
        """Ingest one more run, then pin or unpin one of the five synthetic authors that are not
        trusted (50,000 runs each): the home's roots step through the subsets of those five in
        Gray code order, so every request meets a set of roots it has not met before, one author
        (1/20 of the runs) away from the last."""
        from memory import synthetic
        from roles import trust

        self.one()
        self.pins = getattr(self, "pins", 0) + 1
        assert self.pins < 32, "five authors: 31 new sets of roots"
        flipped = (self.pins ^ self.pins >> 1) ^ ((self.pins - 1) ^ (self.pins - 1) >> 1)
        peer = synthetic.keypairs(20)[15 + flipped.bit_length() - 1].peer_id
        if not trust.unpin(home, peer):
            trust.pin(home, peer, note="bench step")

    def distrust(self) -> None:
        """Ingest a root's replay that contradicts a run of the next trusted synthetic author:
        that author's runs (1/20 of the memory) stop counting, so who is trusted changes."""
        from memory import codec, synthetic

        author = self.distrusted = getattr(self, "distrusted", -1) + 1
        assert author < 15, "only 15 synthetic authors are trusted"
        target = codec.decode(_raw(self.store, 20 * 7 + author), now=2**52)
        body = target.body
        replay = synthetic.run_body(body.track, body.config, body.seed,
                                    round(body.metrics.val_bpb + 0.01, 6), purpose="replay",
                                    ref=target.id)
        key = synthetic.keypairs(REPLAYERS, seed=99)[0]
        record = codec.sign(key, "run", self.store.next_seq(key.peer_id), replay,
                            ts=target.ts + 1)
        assert self.store.ingest([record.raw]).accepted == 1


def _latency(client: Any, path: str, repeats: int, before: Any = None) -> dict[str, float]:
    times, cpu = [], []
    for _ in range(repeats):
        if before is not None:
            before()
        start, cpu_start = time.perf_counter(), time.process_time()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - cpu_start) * 1000)
        assert response.status_code == 200, (path, response.text[:200])
    times.sort()
    cpu.sort()
    return {"median_ms": statistics.median(times),
            "p90_ms": times[min(len(times) - 1, len(times) * 9 // 10)],
            "cpu_median_ms": statistics.median(cpu),
            "cpu_p90_ms": cpu[min(len(cpu) - 1, len(cpu) * 9 // 10)]}


def _home(path: Path) -> Path:
    """A home that pins the bench's roots (no key of its own): 15 synthetic authors earn trust
    by matching replays, one is distrusted, the last four stay untrusted."""
    from roles import trust

    for peer in roots():
        trust.pin(path, peer, note="bench root")
    return path


def _case(client: Any, views: dict[str, str], repeats: int, before: Any = None) -> dict[str, Any]:
    load = os.getloadavg()[0]
    return {"load_average": load,
            "views": {name: _latency(client, url, repeats, before) for name, url in views.items()}}


def bench(records: int = typer.Option(1_000_000, min=1000, max=MAX_ROWS,
                                      help="Synthetic runs in the memory."),
          repeats: int = typer.Option(10, min=1, help="Requests per view and case."),
          cache: Path = typer.Option(Path.home() / ".cache" / "swarm-bench", help="Where the "
                                     "generated memories are kept between runs."),
          json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Median and p90 latency of every dashboard JSON view: warm, after a new record,
    recomputed, after a change of trust (a pin, a replay)."""
    from starlette.testclient import TestClient

    from memory.store import Store
    from roles import verdicts
    from swarm.web.app import dashboard_app

    check_folder(cache, "--cache")
    full = cache / f"dashboard-{records}.duckdb"
    if not full.exists():
        _build(full.with_suffix(".partial"), records, cache)
        full.with_suffix(".partial").rename(full)
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        path = Path(tmp) / "memory.duckdb"
        shutil.copyfile(full, path)           # the new records go into a copy
        with Store(path, helpers=0) as store:
            runs = store.query("SELECT count(*) FROM valid_runs").rows[0][0]
            claim = store.query("SELECT claim FROM claim_status WHERE status = 'verified'").rows[0][0]
            run = store.query("SELECT id FROM runs ORDER BY ts DESC LIMIT 1").rows[0][0]
            client = TestClient(dashboard_app(store, _home(Path(tmp) / "home")),
                                base_url="http://127.0.0.1")
            views = {"overview": "/json/overview", "leaderboard": "/json/leaderboard",
                     "claims": "/json/claims", "knobs": "/json/knobs", "runs": "/json/runs",
                     "claim": f"/json/claims/{claim}", "run": f"/json/runs/{run}",
                     "trust": "/json/trust"}
            arrivals = _Arrivals(store)
            main = {k: views[k] for k in ("overview", "leaderboard")}
            for url in views.values():        # the node's first look, not part of any case
                client.get(url)
            result = {"runs": runs, "cases": {
                "warm": _case(client, views, repeats),
                "new_record": _case(client, views, repeats, arrivals.one),
                "recomputed": _case(client, views, max(1, repeats // 2), verdicts.forget),
                "trust_pin": _case(client, main, min(repeats, 15),
                                   lambda: arrivals.pin_step(Path(tmp) / "home")),
                "trust_replay": _case(client, main, min(repeats, 7), arrivals.distrust)}}
    if json_out:
        return print_json(result)
    _print(result)


SHORT_CASES = {"new_record": "new rec", "recomputed": "recomp", "trust_pin": "pin",
               "trust_replay": "replay"}     # headers that leave the table 80 columns wide


def _print(result: dict[str, Any]) -> None:
    cases = result["cases"]
    title = f"dashboard JSON latency, {result['runs']:,} runs (ms: median/p90 (CPU median))"
    print_table(title, ["view", *(SHORT_CASES.get(k, k) for k in cases)], [
        (name, *(f"{c['views'][name]['median_ms']:.0f}/{c['views'][name]['p90_ms']:.0f} "
                 f"({c['views'][name]['cpu_median_ms']:.0f})" if name in c["views"] else "-"
                 for c in cases.values()))
        for name in cases["warm"]["views"]])
    console.print("load average: " + ", ".join(f"{k} {c['load_average']:.1f}"
                                               for k, c in cases.items()), highlight=False)
