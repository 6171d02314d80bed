"""`swarm bench network --flood / --fuzz`: honest propagation under a flood, and a fuzzing run.

Flood: 5 nodes on loopback; one hostile peer (swarm/bench/floodpeer.py) gossips valid records from
many fresh keys to node 0 at its full rate while honest records are handed to random nodes at a
steady rate. Reports p99 propagation of the honest records (target < 1 s) and how much of the flood
was stored (target: the hostile peer's quota, node/quota.py `flood_bound`).

Fuzz: 2 nodes; the fuzzing peer (swarm/bench/fuzzpeer.py) on node 0 while honest records are handed
to both. Reports frames sent, node restarts (host restarts plus exits; target 0) and honest records
lost (not on both nodes 30 s after the run; target 0).
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from swarm.bench.nodes import STARTED, Node, launch_swarm, wait_for

FLOOD_TRACK = "flood"


def _spawn(module: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    STARTED.append(proc)            # type: ignore[arg-type]
    return proc


def _report(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{proc.args[2]} failed: {err[-500:]}")
    return json.loads(lines[-1])


def _in_background(fn: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn(*args)), daemon=True)
    thread.start()
    return thread, box


def flood(root: Path, network: str, honest: list[bytes], rate: float, authors: int,
          per_author: int, publish: Any, propagation: Any) -> dict[str, Any]:
    """The flood phase (see the module docstring). `publish(nodes, raws, rate)` and
    `propagation(nodes, origin, since_ms, settle_s)` are swarm/bench/network.py's."""
    from node.quota import QuotaConfig, flood_bound

    nodes = launch_swarm(root / "flood", 5, network + "-flood")
    wait_for(lambda: all(n.status()["mesh_peers"] >= 1 for n in nodes), 60, "meshes")
    time.sleep(3)
    warm, steady = _first_per_author(honest)
    for i, raw in enumerate(warm):              # honest authors are known, as in a live swarm
        nodes[i % len(nodes)].ingest([raw])
    time.sleep(3)
    calm, steady = steady[:len(steady) // 2], steady[len(steady) // 2:]
    since = int(time.time() * 1000)             # the same swarm and load, without the flood
    before = propagation(nodes, publish(nodes, calm, rate), since, 5.0)
    start = time.monotonic()
    hostile = _spawn("swarm.bench.floodpeer", nodes[0].addr, "--network", network + "-flood",
                     "--authors", str(authors), "--per-author", str(per_author))
    time.sleep(2)                               # the flood is under way
    since = int(time.time() * 1000)
    origin = publish(nodes, steady, rate)
    sent = _report(hostile, 600)
    figures = propagation(nodes, origin, since, 5.0)
    elapsed = time.monotonic() - start
    stored = [_count(n, f"SELECT count(*) FROM hypotheses WHERE track = '{FLOOD_TRACK}'")
              for n in nodes]
    return {"hostile_sent": sent["sent"], "hostile_rate_per_s": sent["rate"],
            "hostile_stored_max": max(stored),
            "hostile_quota": flood_bound(QuotaConfig(), elapsed, per_author),
            "hostile_stored_share_pct": round(100 * max(stored) / max(sent["sent"], 1), 2),
            "honest_records": figures["records"],
            "honest_p99_ms": figures["latency_ms_p99"],
            "honest_median_ms": figures["latency_ms_median"],
            "honest_within_1s_pct": round(figures["delivered_within_1s_pct"], 2),
            "no_flood_p99_ms": before["latency_ms_p99"],
            "no_flood_median_ms": before["latency_ms_median"],
            "host_restarts": sum(n.status()["host_restarts"] for n in nodes)}


def fuzz(root: Path, network: str, honest: list[bytes], seconds: float) -> dict[str, Any]:
    """The fuzz phase (see the module docstring)."""
    nodes = launch_swarm(root / "fuzz", 2, network + "-fuzz")
    wait_for(lambda: all(n.status()["mesh_peers"] >= 1 for n in nodes), 60, "meshes")
    pids = [n.proc.pid for n in nodes]
    fuzzer = _spawn("swarm.bench.fuzzpeer", nodes[0].addr, "--seconds", str(seconds),
                    "--network", network + "-fuzz")
    thread, _ = _in_background(_trickle, nodes, honest, seconds)
    report = _report(fuzzer, seconds + 300)
    thread.join()
    exits = sum(n.proc.poll() is not None for n in nodes)
    ids = _ids(honest)
    try:
        wait_for(lambda: all(n.has_all(ids) for n in nodes), 30, "honest records", 0.5)
    except AssertionError:
        pass
    held = [n.record_ids() for n in nodes]
    return {"seconds": report["seconds"], "frames_sent": report["frames"],
            "streams_opened": report["streams"], "fresh_keys": report["keys"],
            "node_streams_answered": report["answered"],
            "node_restarts": exits + sum(n.status()["host_restarts"] for n in nodes),
            "same_processes": [n.proc.pid for n in nodes] == pids,
            "honest_records": len(ids),
            "honest_records_lost": sum(1 for i in ids if not all(i in h for h in held))}


def _trickle(nodes: list[Node], raws: list[bytes], seconds: float) -> None:
    """Hand `raws` to random nodes, spread evenly over `seconds`."""
    start = time.monotonic()
    for i, raw in enumerate(raws):
        delay = start + i * seconds / len(raws) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        random.choice(nodes).ingest([raw])


def _first_per_author(raws: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(each author's first record, the rest)."""
    from memory.codec import decode

    seen: set[str] = set()
    first, rest = [], []
    for raw in raws:
        author = decode(raw).author
        (rest if author in seen else first).append(raw)
        seen.add(author)
    return first, rest


def _ids(raws: list[bytes]) -> set[str]:
    from memory.codec import peek_id

    return {peek_id(raw) or "" for raw in raws}


def _count(node: Node, sql: str) -> int:
    return int(node.query(sql)["rows"][0][0])
