"""`swarm bench blob`: /swarm/blob/1.0.0 throughput between two real py-libp2p hosts on loopback.

Both hosts run in this process on one trio loop (as in tests/network/test_blob.py), so the figure
includes both ends' CPU on one core's worth of Python. A fresh node's fetch of the tinystories-cpu
files is `fetch` of both splits into an empty folder, chunk checks and whole-file sha256 included.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import typer

from swarm.output import print_json, print_table


def _new_host() -> Any:
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair

    return new_host(key_pair=create_new_key_pair(), muxer_preference="YAMUX")


def with_two_hosts(body: Callable[[Any, Any], Awaitable[None]], timeout: float = 600) -> None:
    """Run `body(server, client)`: two connected loopback hosts, each with a `BlobService`."""
    import multiaddr
    import trio
    from libp2p.peer.peerinfo import PeerInfo

    from node.blob import BlobService

    async def main() -> None:
        a, b = _new_host(), _new_host()
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        async with a.run(listen_addrs=listen), b.run(listen_addrs=listen):
            server, client = BlobService(a), BlobService(b)
            server.register()
            client.register()                 # the client's fetch is the one data.py uses
            with trio.fail_after(10):
                await b.connect(PeerInfo(a.get_id(), a.get_addrs()))
            try:
                with trio.fail_after(timeout):
                    await body(server, client)
            finally:
                client.close()

    trio.run(main)


def _measure(rounds: int, root: Path) -> dict[str, Any]:
    from node.harness.data import resolve_data
    from node.harness.tracks import TRACKS

    spec = TRACKS["tinystories-cpu"].data
    resolve_data(spec, root / "server")               # the server holds the verified files
    times: list[float] = []

    async def body(server: Any, client: Any) -> None:
        for i in range(rounds):
            started = time.perf_counter()
            for split in ("train", "valid"):
                sha, size = spec.pin(split)
                await client.fetch(sha, size, root / f"r{i}" / f"{split}.txt")
            times.append(time.perf_counter() - started)

    for i in range(rounds):
        (root / f"r{i}").mkdir()
    with_two_hosts(body)
    mb = (spec.train_bytes + spec.valid_bytes) / 1e6
    return {"bytes": spec.train_bytes + spec.valid_bytes, "rounds": rounds,
            "fetch_s_median": statistics.median(times), "fetch_s_min": min(times),
            "fetch_s_max": max(times), "mb_per_s_median": mb / statistics.median(times)}


def bench(rounds: int = typer.Option(5, "--rounds", min=1,
                                     help="Fresh fetches of the track's files."),
          json_out: bool = typer.Option(False, "--json", help="JSON instead of a table.")) -> None:
    """Time a fresh node's fetch of the tinystories-cpu files from a peer (MB/s, seconds)."""
    with tempfile.TemporaryDirectory(prefix="swarm-bench-blob-") as tmp:
        result = _measure(rounds, Path(tmp))
    if json_out:
        return print_json(result)
    print_table("blob transfer (tinystories-cpu, 2 hosts on loopback)", ["measure", "value"],
                [("bytes", f"{result['bytes']:,}"), ("rounds", result["rounds"]),
                 ("fetch s (median)", f"{result['fetch_s_median']:.2f}"),
                 ("fetch s (min .. max)", f"{result['fetch_s_min']:.2f} .. "
                                          f"{result['fetch_s_max']:.2f}"),
                 ("MB/s (median)", f"{result['mb_per_s_median']:.1f}")])
