"""`swarm bench network`: propagation latency, delivery, partition healing, catch-up, CPU and memory;
with `--sync-records`, catch-up and repair through sync 2.1.0 at scale (swarm/bench/syncbench.py).

N real node processes on loopback (swarm/bench/nodes.py), each with its own home. Records are signed
here and handed to random nodes through their local API (`POST /ingest`, which stores and announces
them); every node reports when it stored each record (`GET /arrivals`), so latency is measured on one
clock. A script, not a timed test: the figures go into the issue.
"""
from __future__ import annotations

import random
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from swarm.bench import procstat, syncbench
from swarm.bench.nodes import Node, check_room, kill_all, launch, launch_swarm, wait_for
from swarm.commands import MAX_RATE, MAX_SECONDS
from swarm.output import check_folder, err_console, print_json, print_table


def _records(n: int, authors: int = 20, seed: int = 0) -> list[bytes]:
    from memory import synthetic

    return [r.raw for r in synthetic.runs(synthetic.keypairs(authors, seed), n,
                                          configs=max(20, n // 20), seed=seed)]


def _ids(raws: list[bytes]) -> list[str]:
    from memory.codec import peek_id

    return [peek_id(raw) or "" for raw in raws]


def _usage(node: Node) -> tuple[float, float]:
    """(CPU seconds used so far, resident memory in MB) of a node process."""
    return procstat.cpu_seconds(node.proc.pid), procstat.rss_mb(node.proc.pid)


def _cpu_share(nodes: list[Node], seconds: float, during: Any = None) -> dict[str, float]:
    """Per-node CPU (% of one core) and RSS over `seconds` (while `during()` runs, if given)."""
    before = [_usage(n)[0] for n in nodes]
    start = time.monotonic()
    result = during() if during is not None else time.sleep(seconds)
    elapsed = time.monotonic() - start
    after = [_usage(n) for n in nodes]
    cpu = [100 * (a[0] - b) / elapsed for a, b in zip(after, before)]
    rss = [a[1] for a in after]
    return {"cpu_pct_median": statistics.median(cpu), "cpu_pct_max": max(cpu),
            "rss_mb_median": statistics.median(rss), "rss_mb_max": max(rss), "_result": result}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _publish_steady(nodes: list[Node], raws: list[bytes], rate: float) -> dict[str, float]:
    """Hand `raws` to random nodes at `rate` per second; return {record id: origin node index}."""
    origin: dict[str, int] = {}
    start = time.monotonic()
    for i, (raw, rid) in enumerate(zip(raws, _ids(raws))):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        k = random.randrange(len(nodes))
        nodes[k].ingest([raw])
        origin[rid] = k
    return origin


def _propagation(nodes: list[Node], origin: dict[str, int], since_ms: int,
                 settle_s: float) -> dict[str, Any]:
    """Latency from stored-at-origin to stored-at-each-other-node; delivery within 1 s and settle_s."""
    time.sleep(settle_s)
    arrived = [dict(map(tuple, n.request(f"/arrivals?since={since_ms}"))) for n in nodes]
    latencies, on_time, total, late = [], 0, 0, 0
    for rid, k in origin.items():
        t0 = arrived[k].get(rid)
        for j, seen in enumerate(arrived):
            if j == k or t0 is None:
                continue
            total += 1
            if rid in seen:
                latencies.append(max(0, seen[rid] - t0))
                on_time += seen[rid] - t0 <= 1000
            else:
                late += 1
    return {"records": len(origin), "pairs": total,
            "latency_ms_median": statistics.median(latencies) if latencies else None,
            "latency_ms_p99": _percentile(latencies, 0.99),
            "delivered_within_1s_pct": 100 * on_time / max(total, 1),
            f"delivered_within_{settle_s:.0f}s_pct": 100 * (total - late) / max(total, 1)}


def _partition(nodes: list[Node], root: Path, network: str, per_side: int,
               sync_interval: float) -> dict[str, Any]:
    """Stop a third of the nodes, add records on both sides, restart, time until digests agree."""
    from memory.store import Store
    from node.home import memory_path

    cut = nodes[-max(1, len(nodes) // 3):]
    stay = nodes[:len(nodes) - len(cut)]
    for node in cut:
        node.stop(signal.SIGTERM)
    raws = _records(2 * per_side, seed=11)
    for i, raw in enumerate(raws[:per_side]):              # the side that stayed up
        stay[i % len(stay)].ingest([raw])
    for i, node in enumerate(cut):                         # records made while cut off
        with Store(memory_path(node.home)) as store:
            store.ingest(raws[per_side + i::len(cut)])
    start = time.monotonic()
    bootstrap = [stay[0].addr]
    restarted = [launch(n.home, network, bootstrap, wait=False, sync_interval=sync_interval)
                 for n in cut]
    from swarm.bench.nodes import wait_until_serving
    for node in restarted:
        wait_until_serving(node)
    ready = time.monotonic() - start
    everyone = stay + restarted
    wait_for(lambda: len({n.status()["digest"] for n in everyone}) == 1, 120, "convergence", 0.05)
    converged = time.monotonic() - start
    nodes[len(stay):] = restarted
    return {"nodes_cut": len(cut), "records_per_side": per_side,
            "restart_to_serving_s": round(ready, 2), "heal_to_identical_s": round(converged - ready, 2)}


def _catch_up(root: Path, network: str, count: int, sync_interval: float) -> dict[str, Any]:
    """A node holding `count` records, then a new node joining it: time until it holds them all."""
    from memory.store import Store
    from node.home import memory_path

    seed_home = root / "catchup-seed"
    seed_home.mkdir(parents=True)
    raws = _records(count, authors=50, seed=5)
    with Store(memory_path(seed_home)) as store:
        for i in range(0, count, 20_000):
            store.ingest(raws[i:i + 20_000])
    seed = launch(seed_home, network + "-catchup", sync_interval=sync_interval)
    want = seed.status()["records"]
    start = time.monotonic()
    new = launch(root / "catchup-new", network + "-catchup", [seed.addr],
                 sync_interval=sync_interval)
    serving = time.monotonic() - start
    wait_for(lambda: new.status()["records"] >= want, 600, "catch-up", 0.2)
    total = time.monotonic() - start
    return {"records": want, "start_to_serving_s": round(serving, 2),
            "catch_up_s": round(total - serving, 2), "records_per_s": round(want / (total - serving))}


def bench(nodes: int = typer.Option(10, "--nodes", min=2, help="Node processes on loopback."),
          rate: float = typer.Option(10.0, min=0.1, max=MAX_RATE, help="Records per second across the swarm."),
          seconds: float = typer.Option(20.0, min=1.0, max=MAX_SECONDS, help="Length of the sustained-rate phase."),
          catch_up: int = typer.Option(100_000, "--catch-up", min=0, help="Records for the catch-up "
                                       "phase (0 skips it)."),
          sync_interval: float = typer.Option(1.0, "--sync-interval", min=0.05, max=MAX_SECONDS,
                                              help="Seconds between repair syncs (swarm join's "
                                              "default: what users run)."),
          flood: bool = typer.Option(False, "--flood", help="Instead: honest propagation across "
                                     "5 nodes while one hostile peer floods fresh keys."),
          fuzz: float = typer.Option(0.0, "--fuzz", min=0.0, max=MAX_SECONDS, help="Instead: fuzz a node for this "
                                     "many seconds; frames sent, restarts, honest records lost."),
          sync_records: int = typer.Option(0, "--sync-records", min=0, help="Catch-up and repair "
                                           "through sync 2.1.0 against a memory of this many "
                                           "records (0 skips it; the issue's figure: 1000000)."),
          sync_authors: int = typer.Option(100_000, "--sync-authors", min=1,
                                           help="Authors of those."),
          sync_only: bool = typer.Option(False, "--sync-only", help="Only the sync 2.1.0 part."),
          sync_phase: list[str] = typer.Option(
              list(syncbench.PHASES), "--sync-phase", help="Which sync pulls to measure "
              "(repeatable): catch_up, repair_scattered_1pct, repair_newest_1pct."),
          cache: Path = typer.Option(Path(".bench"), "--cache", help="Where the signed records "
                                     "and memories of the sync part are kept between runs."),
          json_out: bool = typer.Option(False, "--json", help="JSON instead of tables.")) -> None:
    """Measure propagation, delivery, partition healing, catch-up, and CPU/memory per node."""
    check_folder(cache, "--cache")
    if not (flood or fuzz or sync_only):
        check_room(nodes)
    network = f"bench-{uuid.uuid4().hex[:6]}"
    if flood or fuzz:
        return _show(_hostile(network, flood, fuzz, rate, seconds), json_out)
    results: dict[str, Any] = {"nodes": nodes, "sync_interval_s": sync_interval}
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        root = Path(tmp)
        try:
            if sync_records:
                results.update(syncbench.run(root, network, sync_records, sync_authors, cache,
                                             sync_phase))
            if sync_only:
                return _show({k: v for k, v in results.items() if isinstance(v, dict)}, json_out)
            err_console.print(f"starting {nodes} nodes ...")          # stdout stays JSON
            swarm = launch_swarm(root, nodes, network, sync_interval=sync_interval)
            wait_for(lambda: all(n.status()["mesh_peers"] >= 1 for n in swarm), 60, "meshes")
            time.sleep(3)                                   # let the gossip mesh settle
            results["idle"] = _strip(_cpu_share(swarm, 10.0))
            raws = _records(int(rate * seconds), seed=1)
            since = int(time.time() * 1000)
            load = _cpu_share(swarm, seconds, lambda: _publish_steady(swarm, raws, rate))
            results["load"] = _strip(load)
            results["propagation"] = _propagation(swarm, load["_result"], since, 5.0)
            results["partition"] = _partition(swarm, root, network, 200, sync_interval)
            kill_all()
            if catch_up:
                err_console.print(f"catch-up of {catch_up} records ...")
                results["catch_up"] = _catch_up(root, network, catch_up, sync_interval)
        finally:
            kill_all()
    _show(results, json_out)


def _hostile(network: str, flood: bool, fuzz: float, rate: float, seconds: float) -> dict[str, Any]:
    """The hostile-peer phases (swarm/bench/hostile_bench.py)."""
    from swarm.bench import hostile_bench

    results: dict[str, Any] = {"nodes": 5 if flood else 2}
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp:
        try:
            if flood:
                err_console.print("flood: 5 nodes, one hostile peer at its full rate ...")
                honest = _records(20 + 2 * int(rate * seconds), seed=21)   # warm, calm, flood
                results["flood"] = hostile_bench.flood(Path(tmp), network, honest, rate, 2000, 10,
                                                       _publish_steady, _propagation)
                kill_all()
            if fuzz:
                err_console.print(f"fuzz: {fuzz:.0f} s on every protocol ...")
                results["fuzz"] = hostile_bench.fuzz(Path(tmp), network,
                                                     _records(40, seed=22), fuzz)
        finally:
            kill_all()
    return results


def _strip(usage: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in usage.items() if not k.startswith("_")}


def _show(results: dict[str, Any], json_out: bool) -> None:
    if json_out:
        return print_json(results)
    rows = [(section, key, value) for section, values in results.items()
            if isinstance(values, dict) for key, value in values.items()]
    nodes = f"{results['nodes']} nodes" if "nodes" in results else "one node and this process"
    print_table(f"network benchmark, {nodes} on loopback",
                ["phase", "measure", "value"], rows)
