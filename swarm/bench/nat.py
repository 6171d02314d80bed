"""`swarm bench nat`: two nodes behind their own NATs, a relay on the public side (namespaces).

Builds the swarm/bench/netns.py set-up, starts a relay (`--relay`, on a swarm network of its own, so
that records between the two homes can only travel over their own link, relayed or hole-punched) and
one node per home, and measures record propagation between the two homes: first with hole punching
off (every record crosses the relay), then with it on, once the link is upgraded (when it is),
and, as the baseline under the same machine load, between two public nodes without NAT.
tests/network/test_nat.py uses `start_lab` too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from swarm.bench import nodes
from swarm.bench.netns import PUBLIC_IP, NatLab, NsNode
from swarm.commands import MAX_RATE

PORT = 7400


@dataclass
class NatSwarm:
    """The relay and the two homes' nodes of one lab."""

    relay: NsNode
    homes: list[NsNode]
    network: str


def launch_in(lab: NatLab, where: str, home: Path, ip: str, network: str,
              extra: list[str], env: dict[str, str] | None = None, wait: bool = True,
              port: int = PORT) -> NsNode:
    """`swarm join --no-work` inside namespace `where`, listening on ip:port."""
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", "from swarm.cli import main; main()",
            os.environ.get("SWARM_NODE_LOG", "-v"), "join", "--home", str(home),
            "--listen", f"/ip4/{ip}/tcp/{port}", "--no-mdns", "--no-dht", "--no-work",
            "--network", network, *extra]
    log = open(home / "node.log", "ab")
    proc = lab.popen(where, argv, stdout=log, stderr=subprocess.STDOUT,
                     env={**os.environ, **(env or {})}, start_new_session=True)
    nodes.STARTED.append(proc)
    node = NsNode(home, proc)
    node.ns = lab.ns(where)
    if wait:
        nodes.wait_until_serving(node)
    return node


def start_lab(lab: NatLab, root: Path, hole_punch: bool = True,
              relay_caps: dict[str, int] | None = None) -> NatSwarm:
    """The relay in `wan` (with `relay_caps` instead of the defaults), then one node in each home
    bootstrapping from it."""
    env = {} if hole_punch else {"SWARM_TEST_NO_HOLE_PUNCH": "1"}
    network = f"nat-{uuid.uuid4().hex[:6]}"
    relay_env = {**env, "SWARM_TEST_RELAY_CAPS": json.dumps(relay_caps or {})}
    relay = launch_in(lab, "wan", root / "relay", PUBLIC_IP, f"{network}-relay", ["--relay"],
                      relay_env)
    boot = ["--bootstrap", f"/ip4/{PUBLIC_IP}/tcp/{PORT}/p2p/{relay.status()['peer_id']}"]
    homes = [launch_in(lab, f"h{i}", root / f"home{i}", lab.private_ip(i), network, boot, env,
                       wait=False) for i in (1, 2)]
    for node in homes:
        nodes.wait_until_serving(node)
    return NatSwarm(relay, homes, network)


def link_between(a: NsNode, b: NsNode) -> str:
    """How `a` is connected to `b` now: direct / relayed / hole-punched, '' when not."""
    peer = b.status()["peer_id"]
    for row in a.request("/peers"):
        if row["peer_id"] == peer and row.get("connected"):
            return row.get("link") or ""
    return ""


def propagation(a: NsNode, b: NsNode, count: int, rate: float) -> dict[str, Any]:
    """Records handed alternately to a and b at `rate`/s; latency from stored at the origin to
    stored at the other node (each node's own arrival clock is the same machine's)."""
    from swarm.bench.network import _propagation, _publish_steady, _records

    since = int(time.time() * 1000) - 1000
    origin = _publish_steady([a, b], _records(count, seed=int(time.time())), rate)
    return _propagation([a, b], origin, since, 5.0)


def bench(
    records: int = typer.Option(40, "--records", min=1, help="Records per phase."),
    rate: float = typer.Option(4.0, "--rate", min=0.1, max=MAX_RATE,
                               help="Records per second, alternating origins."),
    out: Path = typer.Option(None, "--out", help="Also write the results as JSON here."),
    json_out: bool = typer.Option(False, "--json", help="JSON instead of a table."),
) -> None:
    """Propagation between two nodes behind NATs: relayed, then hole-punched (needs root)."""
    from swarm.bench.netns import unavailable
    from swarm.output import check_out_file, err_console, fail, print_json, write_out_file

    check_out_file(out)
    reason = unavailable()
    if reason:
        fail(f"cannot build namespaces: {reason}")
    results: dict[str, Any] = {}
    for phase, measure in PHASES:
        if not json_out:
            err_console.print(f"[dim]{phase}: {records} records at {rate:g}/s...[/]")
        results[phase] = measure(records, rate)
    if out:
        write_out_file(out, json.dumps(results, indent=2))
    if json_out:
        return print_json(results)
    print_results(results)


def print_results(results: dict[str, Any]) -> None:
    """One row per phase: the link it measured, when it came up, propagation p50 / p99."""
    from swarm.output import print_table

    def number(value: Any, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    rows = []
    for phase, result in results.items():
        prop = result.get("propagation") or {}
        rows.append((phase, result.get("link") or "none", number(result.get("link_after_s"), 1),
                     number(prop.get("latency_ms_median"), 0), number(prop.get("latency_ms_p99"), 0),
                     number(prop.get("delivered_within_1s_pct"), 1)))
    print_table("NAT propagation (stored at one home to stored at the other)",
                ["phase", "link", "up after s", "p50 ms", "p99 ms", "in 1 s %"], rows)


def _phase(hole_punch: bool, records: int, rate: float) -> dict[str, Any]:
    lab = NatLab().build()
    try:
        with tempfile.TemporaryDirectory(prefix="swarm-nat-") as root:
            swarm = start_lab(lab, Path(root), hole_punch)
            a, b = swarm.homes
            started = time.monotonic()
            link = nodes.wait_for(lambda: link_between(a, b), 60, "a link between the homes", 0.5)
            result: dict[str, Any] = {"link_after_s": round(time.monotonic() - started, 1)}
            if hole_punch:
                _wait_quietly(lambda: link_between(a, b) == "hole-punched", 30)
                link = link_between(a, b)
            result["link"] = link
            result["propagation"] = propagation(a, b, records, rate)
            result["relay"] = swarm.relay.status().get("relay")
            return result
    finally:
        nodes.kill_all()
        lab.destroy()


def _baseline(records: int, rate: float) -> dict[str, Any]:
    """The same measurement between two public nodes (both on the WAN segment, no NAT, no relay),
    under the same machine load: what the relayed and hole-punched figures compare with."""
    lab = NatLab(homes=0).build()
    try:
        with tempfile.TemporaryDirectory(prefix="swarm-nat-") as root:
            network = f"nat-{uuid.uuid4().hex[:6]}"
            a = launch_in(lab, "wan", Path(root) / "a", PUBLIC_IP, network, [])
            boot = ["--bootstrap", f"/ip4/{PUBLIC_IP}/tcp/{PORT}/p2p/{a.status()['peer_id']}"]
            b = launch_in(lab, "wan", Path(root) / "b", PUBLIC_IP, network, boot, port=PORT + 1)
            nodes.wait_for(lambda: link_between(a, b), 60, "a link between the nodes", 0.5)
            return {"link": link_between(a, b), "propagation": propagation(a, b, records, rate)}
    finally:
        nodes.kill_all()
        lab.destroy()


PHASES = (("public_baseline", _baseline),
          ("relayed", lambda records, rate: _phase(False, records, rate)),
          ("hole_punch", lambda records, rate: _phase(True, records, rate)))


def _wait_quietly(condition: Any, timeout: float) -> bool:
    try:
        nodes.wait_for(condition, timeout, "", 0.5)
        return True
    except AssertionError:
        return False
