"""Shared bits of the wire-audit scripts: a real node on loopback, a hostile host, measurements.

Run each script from the repository root: `.venv/bin/python scripts/wire_audit/NAME.py ARGS`.
Every script starts one `swarm join --no-work` node (tests/network/launcher.py), attacks it from
a bare py-libp2p host in this process and prints the node's RSS (MB) and process CPU-s (psutil)
and how long its API takes to answer `/status`.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

sys.path.insert(0, os.getcwd())

import multiaddr  # noqa: E402
import psutil  # noqa: E402
import trio  # noqa: E402
from libp2p import new_host  # noqa: E402
from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402
from libp2p.tools.anyio_service import background_trio_service  # noqa: E402

from tests.network.launcher import kill_all, launch  # noqa: E402

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


def measure(node: Any) -> dict[str, float]:
    """The node process's RSS (MB) and CPU seconds so far."""
    p = psutil.Process(node.proc.pid)
    t = p.cpu_times()
    return {"rss_mb": round(p.memory_info().rss / 2**20, 1), "cpu_s": round(t.user + t.system, 2)}


def api_ok(node: Any) -> float | str:
    """Seconds the node's API took to answer /status (or the error)."""
    try:
        t0 = time.monotonic()
        node.status()
        return round(time.monotonic() - t0, 2)
    except Exception as e:  # noqa: BLE001
        return f"ERR {type(e).__name__}"


@asynccontextmanager
async def attacker(node: Any) -> AsyncIterator[tuple[Any, Any]]:
    """A fresh host connected to `node`: (host, the node's peer info)."""
    host = new_host()
    async with host.run(LOOPBACK):
        target = info_from_p2p_addr(multiaddr.Multiaddr(node.addr))
        await host.connect(target)
        yield host, target


@asynccontextmanager
async def publisher(node: Any) -> AsyncIterator[tuple[Any, str]]:
    """A fresh gossiping host connected to `node`, once the node subscribes it to its topic:
    (its pubsub, the topic); it signs as the node's StrictSign wants."""
    from node import gossip
    host = new_host()
    router, pubsub = gossip.make_router_and_pubsub(host)
    topic = gossip.topic_for("wa")
    async with host.run(LOOPBACK), background_trio_service(pubsub), \
            background_trio_service(router):
        await pubsub.wait_until_ready()
        target = info_from_p2p_addr(multiaddr.Multiaddr(node.addr))
        await host.connect(target)
        with trio.fail_after(30):
            await pubsub.wait_for_subscription(target.peer_id, topic)
        yield pubsub, topic


async def flood(node: Any, write: Callable[[], Awaitable[int]], seconds: float = 30.0) -> None:
    """Call `write` (it returns the bytes it wrote) for `seconds`; print the node's CPU-s per
    second over that time, the bytes written and the API's answer time."""
    sent, t0, m0 = 0, time.monotonic(), measure(node)
    while time.monotonic() - t0 < seconds:
        with trio.move_on_after(1):
            sent += await write()
    await trio.sleep(2)
    m1, elapsed = measure(node), time.monotonic() - t0
    print("MB written", round(sent / 1e6, 2), "node cpu-s/s",
          round((m1["cpu_s"] - m0["cpu_s"]) / elapsed, 3), "rss", m1["rss_mb"], "api", api_ok(node),
          flush=True)


def main(attack: Callable[[Any], Awaitable[None]], extra: tuple[str, ...] = ()) -> None:
    """Start a node, run `attack(node)` under trio, report whether the node is still alive."""
    node = launch(Path(tempfile.mkdtemp(prefix="wire-audit-")) / "n", "wa", extra=list(extra))
    try:
        trio.run(attack, node)
        print("alive", node.proc.poll() is None, measure(node), "api", api_ok(node))
    finally:
        kill_all()
