"""Gossip subscribers that never read: their cost to a node (TRUST.md, "Gossip back-pressure").

Real py-libp2p on loopback, one process: a victim host with the node's GossipSub (node/gossip.py,
its outbound queues widened every second as node/host.py does) publishes `--records` records of
`--size` bytes; `--stuck` peers subscribed and grafted to its topic accept its stream and never
read it. Prints one JSON line: the victim's queued RPC bytes and the process's RSS growth.
With `--iwant K`, K more peers subscribe without grafting (outside the mesh unless the victim
grafts them), stop reading their connection altogether (their muxer's reads block, so the
victim's TCP and muxer buffers fill and its queue holds the rest), and ask by IWANT for every
record published (the newest 70), 4 times a second (py-libp2p answers at most 10 IWANTs a second per peer).
Used by tests/network/test_gossip_backpressure.py. Run as a file from a checkout's root to
measure that checkout's node/ (another checkout's side by side):

    swarm bench stucksub --stuck 1 --records 1500      # this checkout
    cd CHECKOUT && python /path/to/swarm/bench/stucksub.py --stuck 1 --records 1500
    cd CHECKOUT && python /path/to/swarm/bench/stucksub.py --stuck 0 --iwant 40 --records 400 \
        --interval 0.05
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

import multiaddr
import psutil
import trio
import varint

if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())         # the node/ of the checkout it runs from

from node import gossip  # noqa: E402

TOPIC = "/swarm/stuck/records/1"
LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


def queued(pubsub: Any) -> tuple[int, int]:
    """(RPCs, bytes) waiting in all the victim's per-peer outbound queues."""
    rpcs = size = 0
    for queue in list(pubsub.peer_queues.values()):
        inner = queue._queue
        for item in [*inner._priority, *inner._non_priority]:
            rpc = item[0] if isinstance(item, tuple) else item
            rpcs, size = rpcs + 1, size + rpc.ByteSize()
    return rpcs, size


async def stuck_peer(victim: Any, nursery: trio.Nursery) -> Any:
    """A host that subscribes and grafts to TOPIC at `victim`, and never reads what it is sent."""
    return (await _subscriber(victim, nursery, graft=True))[0]


async def _subscriber(victim: Any, nursery: trio.Nursery, graft: bool) -> tuple[Any, Any]:
    """A host subscribed (and grafted) to TOPIC at `victim` that never reads its gossip stream;
    with its outbound stream."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.pubsub.pb import rpc_pb2

    host = new_host()

    async def never_read(stream: Any) -> None:
        await trio.sleep_forever()

    host.set_stream_handler(TProtocol(gossip.GOSSIP_PROTOCOL), never_read)
    await nursery.start(_run, host)
    target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
    await host.connect(info_from_p2p_addr(target))
    stream = await host.new_stream(victim.get_id(), [TProtocol(gossip.GOSSIP_PROTOCOL)])
    rpc = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=TOPIC)])
    if graft:
        rpc.control.graft.add(topicID=TOPIC)
    raw = rpc.SerializeToString()
    await stream.write(varint.encode(len(raw)) + raw)
    return host, stream


async def iwant_peer(victim: Any, pubsub: Any, nursery: trio.Nursery, ids: list[bytes]) -> Any:
    """A host that subscribes to TOPIC at `victim` without grafting, stops reading its connection,
    and sends an IWANT for every id in `ids` (filled by the caller as it publishes) every 0.25 s (the newest 70: its
    writes stop once the victim's muxer window, never updated, is spent)."""
    from libp2p.pubsub.pb import rpc_pb2

    host, stream = await _subscriber(victim, nursery, graft=False)
    with trio.fail_after(60):                   # the victim's stream to it is open
        while host.get_id() not in pubsub.peer_queues:
            await trio.sleep(0.05)
    conn = host.get_network().connections[victim.get_id()]
    conn = conn[0] if isinstance(conn, list) else conn
    conn.muxed_conn.secured_conn.read = _block_forever     # never reads a byte more

    async def ask() -> None:
        while True:
            rpc = rpc_pb2.RPC()
            rpc.control.iwant.add(messageIDs=[i.hex().encode() for i in ids[-70:]])
            raw = rpc.SerializeToString()
            await stream.write(varint.encode(len(raw)) + raw)
            await trio.sleep(0.25)

    nursery.start_soon(ask)
    return host


async def _block_forever(*_: Any) -> bytes:
    await trio.sleep_forever()
    return b""


async def _run(host: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with host.run(LOOPBACK):
        task_status.started()
        await trio.sleep_forever()


async def main(stuck: int, records: int, size: int, iwant: int = 0,
               interval: float = 0.0) -> dict[str, Any]:
    from libp2p import new_host
    from libp2p.tools.anyio_service import background_trio_service

    victim = new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    process = psutil.Process()
    async with victim.run(LOOPBACK), background_trio_service(pubsub), \
            background_trio_service(router), trio.open_nursery() as nursery:
        await pubsub.wait_until_ready()
        await pubsub.subscribe(TOPIC)
        peers = [await stuck_peer(victim, nursery) for _ in range(stuck)]
        ids: list[bytes] = []
        askers = [await iwant_peer(victim, pubsub, nursery, ids) for _ in range(iwant)]
        with trio.fail_after(60):               # grafted, and its outbound queue made
            while not all(p.get_id() in pubsub.peer_queues for p in askers) or not all(
                    p.get_id() in router.mesh.get(TOPIC, ()) and
                    p.get_id() in pubsub.peer_queues for p in peers):
                await trio.sleep(0.1)
        gc.collect()
        before = process.memory_info().rss
        for i in range(records):
            data = i.to_bytes(4, "big") + os.urandom(size - 4)
            await pubsub.publish(TOPIC, data)
            ids.append(gossip.message_id(SimpleNamespace(data=data)))
            if i % 50 == 0:
                gossip.widen_outbound_queues(pubsub)   # node/host.py's watcher, each second
                await trio.sleep(0)
            await trio.sleep(interval)
        await trio.sleep(3)
        gossip.widen_outbound_queues(pubsub)
        gc.collect()
        rpcs, nbytes = queued(pubsub)
        mesh = router.mesh.get(TOPIC, ())
        out = {"stuck": stuck, "iwant": iwant, "records": records, "size": size,
               "in_mesh": sum(p.get_id() in mesh for p in peers),
               "askers_in_mesh": sum(p.get_id() in mesh for p in askers),
               "queued_rpcs": rpcs, "queued_bytes": nbytes,
               "queued_mib": round(nbytes / 2**20, 1),
               "rss_growth_mib": round((process.memory_info().rss - before) / 2**20, 1)}
        nursery.cancel_scope.cancel()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stuck", type=int, default=1)
    parser.add_argument("--iwant", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds between publishes (a live network for --iwant)")
    parser.add_argument("--records", type=int, default=1500)
    parser.add_argument("--size", type=int, default=60 * 1024)
    args = parser.parse_args()
    print(json.dumps(trio.run(main, args.stuck, args.records, args.size,
                                args.iwant, args.interval)))
