"""Many fresh peer ids connecting to a node: does it keep working (TRUST.md, "A crowd of ids")?

A real `swarm join` node A on loopback, and an honest node B bootstrapped from it. Then `--ids`
fresh py-libp2p hosts (a new key each: keys are free) connect to A, `--batch` at a time, each
staying `--hold` seconds and then closing its connection. Afterwards: does a late host's identify of A answer (A's own key still in
its peerstore), do 20 records ingested at A reach B, and how did A's RSS, stream failures and host
restarts move. Prints one JSON line.

    swarm bench crowd --ids 1200
    cd CHECKOUT && python /path/to/swarm/bench/crowd.py --ids 1200   # another checkout's node
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import multiaddr
import trio

if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())         # the checkout it runs from: its nodes are launched

from swarm.bench.nodes import Node, kill_all, launch, wait_for  # noqa: E402
from swarm.bench.procstat import rss_mb  # noqa: E402

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


async def _visit(addr: str, hold: float) -> bool:
    """A fresh host connects to `addr`, stays `hold` seconds, and closes its connection (leaving
    the host's run does not close it); True if it connected."""
    from libp2p import new_host
    from libp2p.peer.peerinfo import info_from_p2p_addr

    host, info = new_host(), info_from_p2p_addr(multiaddr.Multiaddr(addr))
    async with host.run(LOOPBACK):
        try:
            with trio.fail_after(30):
                await host.connect(info)
        except Exception:  # noqa: BLE001 - refused or timed out: counted as not connected
            return False
        await trio.sleep(hold)
        await host.disconnect(info.peer_id)
    return True


async def crowd(addr: str, ids: int, batch: int, hold: float) -> int:
    """`ids` fresh hosts visit `addr`, `batch` at a time; how many connected."""
    connected = 0

    async def one() -> None:
        nonlocal connected
        ok = await _visit(addr, hold)        # read `connected` only after the await
        connected += ok

    for start in range(0, ids, batch):
        async with trio.open_nursery() as nursery:
            for _ in range(min(batch, ids - start)):
                nursery.start_soon(one)
    return connected


async def identify(addr: str) -> int:
    """A late host's identify of `addr`: the number of protocols it answered (0: it failed; -1:
    the host could not even connect)."""
    from libp2p import new_host
    from libp2p.identity.identify.identify import ID, parse_identify_response
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.utils.varint import read_varint_prefixed_bytes

    host, info = new_host(), info_from_p2p_addr(multiaddr.Multiaddr(addr))
    async with host.run(LOOPBACK):
        with trio.fail_after(60):
            try:
                await host.connect(info)
            except Exception:  # noqa: BLE001 - no connection: what we measure
                return -1
            try:
                stream = await host.new_stream(info.peer_id, [ID])
                answer = parse_identify_response(await read_varint_prefixed_bytes(stream))
            except Exception:  # noqa: BLE001 - the identify failed: what we measure
                return 0
    return len(answer.protocols)


def _reaches(a: Node, b: Node, timeout: float) -> float | None:
    """Seconds for 20 records ingested at `a` to reach `b` (None: not within `timeout`)."""
    from memory import codec
    from memory.crypto import Keypair
    from memory.records import HypothesisBody

    key = Keypair.generate()
    raws = [codec.sign(key, "hypothesis", seq, HypothesisBody(
        track="crowd", diff={"depth": seq}, rationale="crowd", source="human")).raw
        for seq in range(1, 21)]
    ids = {codec.decode(raw).id for raw in raws}
    start = time.monotonic()
    a.ingest(raws)
    try:
        wait_for(lambda: b.has_all(ids), timeout, "records at B")
    except AssertionError:
        return None
    return round(time.monotonic() - start, 1)


def run(ids: int, batch: int = 50, hold: float = 1.0, root: Path | None = None) -> dict[str, Any]:
    """Launch A and B, send the crowd at A, and measure (see the module doc)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = root or Path(tmp)
        try:
            a = launch(base / "a", "crowd")
            b = launch(base / "b", "crowd", bootstrap=[a.addr])
            before = rss_mb(a.proc.pid)
            start = time.monotonic()
            connected = trio.run(crowd, a.addr, ids, batch, hold)
            seconds = round(time.monotonic() - start, 1)
            protocols = trio.run(identify, a.addr)
            reach = _reaches(a, b, 120)
            status = a.status()
            return {"ids": ids, "batch": batch, "connected": connected, "seconds": seconds,
                    "identify_protocols": protocols, "records_reached_b_s": reach,
                    "rss_before_mb": round(before, 1),
                    "rss_growth_mb": round(rss_mb(a.proc.pid) - before, 1),
                    "stream_failures": status.get("stream_failures"),
                    "host_restarts": status.get("host_restarts"),
                    "alive": a.proc.poll() is None}
        finally:
            kill_all()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--hold", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(run(args.ids, args.batch, args.hold)))
