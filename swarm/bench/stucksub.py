"""Gossip subscribers that never read: their cost to a node (TRUST.md, "Gossip back-pressure").

Real py-libp2p on loopback, one process: a victim host with the node's GossipSub (node/gossip.py,
its outbound queues widened every second as node/host.py does) publishes `--records` records of
`--size` bytes; `--stuck` peers subscribed and grafted to its topic accept its stream and never
read it. Prints one JSON line: the victim's queued RPC bytes and the process's RSS growth.
With `--iwant K`, K more peers subscribe without grafting (outside the mesh unless the victim
grafts them), stop reading their connection altogether (their muxer's reads block, so the
victim's TCP and muxer buffers fill and its queue holds the rest), and ask by IWANT for every
record published (the newest 70), 4 times a second (py-libp2p answers at most 10 IWANTs a second
per peer); with `--iwant-reads` they read and discard what they are sent instead (so the node
keeps reading their IWANTs: the same records asked for again and again).
With `--churn S`, peers at one address (127.0.0.1) connect in turn, each a fresh peer id, read
what they are sent, ask as the `--iwant-reads` peers do for S seconds and leave (with
`--churn-same-key`, one key reconnecting): `churn_visits` counts them, and their answers count
in `iwant_records` / `iwant_mib`; `iwant_per_published` is the bytes of all IWANT answers over
the bytes published (`published_mib`). The `--iwant` peers connect from 127.0.0.1 too: one
address.
With `--honest-pause S`, one honest peer (the node's own GossipSub) joins the victim's mesh and
stops reading its connection for S seconds once 60% of the records are published (a peer that
is briefly slow), then reads again; `honest_got` counts the records it received by gossip.
The cost of the askers: `iwant_records` and `iwant_mib`, the records (and their bytes) the node
put into RPCs answering their IWANTs (copied whether or not their queue then takes them), and
`cpu_s`, the process's CPU seconds while publishing (victim and peers: one process).
Used by tests/network/test_gossip_backpressure.py. Run as a file from a checkout's root to
measure that checkout's node/ (another checkout's side by side):

    swarm bench stucksub --stuck 1 --records 1500      # this checkout
    cd CHECKOUT && python /path/to/swarm/bench/stucksub.py --stuck 1 --records 1500
    cd CHECKOUT && python /path/to/swarm/bench/stucksub.py --stuck 0 --iwant 40 --records 400 \
        --interval 0.05
    swarm bench stucksub --stuck 0 --iwant 40 --records 400 --interval 0.05 --honest-pause 3
    cd CHECKOUT && python /path/to/swarm/bench/stucksub.py --stuck 0 --records 400 \
        --interval 0.05 --churn 1
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


async def _subscriber(victim: Any, nursery: trio.Nursery, graft: bool, handler: Any = None,
                      subscribe: bool = True, key_pair: Any = None,
                      source: str | None = None) -> tuple[Any, Any]:
    """A host subscribed (and grafted) to TOPIC at `victim` (or not: `subscribe`) that never
    reads its gossip stream (or hands it to `handler`); with its outbound stream. It has the key
    `key_pair` (None: a fresh one) and dials from IP `source` (None: the system's choice)."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.pubsub.pb import rpc_pb2

    host = new_host(key_pair=key_pair)

    async def never_read(stream: Any) -> None:
        await trio.sleep_forever()

    host.set_stream_handler(TProtocol(gossip.GOSSIP_PROTOCOL), handler or never_read)
    await nursery.start(_run, host)
    target = info_from_p2p_addr(
        multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}"))
    if source is None:
        await host.connect(target)
    else:
        await host.get_network().dial_addr(target.addrs[0], target.peer_id, source=(source, 0))
    stream = await host.new_stream(victim.get_id(), [TProtocol(gossip.GOSSIP_PROTOCOL)])
    rpc = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=TOPIC)]
                      if subscribe else [])
    if graft:
        rpc.control.graft.add(topicID=TOPIC)
    raw = rpc.SerializeToString()
    await stream.write(varint.encode(len(raw)) + raw)
    return host, stream


async def iwant_peer(victim: Any, pubsub: Any, nursery: trio.Nursery, ids: list[bytes],
                     reads: bool = False) -> Any:
    """A host that subscribes to TOPIC at `victim` without grafting, stops reading its connection
    (or, with `reads`, reads and discards all it is sent), and sends an IWANT for every id in
    `ids` (filled by the caller as it publishes) every 0.25 s (the newest 70; if it stops reading,
    its writes stop once the victim's muxer window, never updated, is spent)."""
    host, stream = await _subscriber(victim, nursery, graft=False,
                                     handler=_discard if reads else None)
    with trio.fail_after(60):                   # the victim's stream to it is open
        while host.get_id() not in pubsub.peer_queues:
            await trio.sleep(0.05)
    if not reads:
        conn = host.get_network().connections[victim.get_id()]
        conn = conn[0] if isinstance(conn, list) else conn
        conn.muxed_conn.secured_conn.read = _block_forever     # never reads a byte more

    nursery.start_soon(_ask, stream, ids)
    return host


async def _ask(stream: Any, ids: list[bytes]) -> None:
    """Send an IWANT for the newest 70 of `ids` every 0.25 s."""
    from libp2p.pubsub.pb import rpc_pb2

    while True:
        rpc = rpc_pb2.RPC()
        rpc.control.iwant.add(messageIDs=[i.hex().encode() for i in ids[-70:]])
        raw = rpc.SerializeToString()
        await stream.write(varint.encode(len(raw)) + raw)
        await trio.sleep(0.25)


async def churn(victim: Any, pubsub: Any, ids: list[bytes], to: set[Any], visits: list[int],
                stay: float, same_key: bool) -> None:
    """Peers at one address (127.0.0.1) that connect in turn, until cancelled: each subscribes
    without grafting, reads and discards what it is sent, asks by IWANT for the newest 70 of
    `ids` every 0.25 s for `stay` s, and disconnects; the next one is a fresh peer id (or, with
    `same_key`, the same key reconnecting, once the victim has dropped the last connection).
    Each one's id is added to `to` (the peers `_count_sent` counts), each visit to `visits[0]`."""
    from libp2p.crypto.ed25519 import create_new_key_pair

    key = create_new_key_pair()
    while True:
        async with trio.open_nursery() as visit:
            host, stream = await _subscriber(victim, visit, graft=False, handler=_discard,
                                             key_pair=key)
            with trio.fail_after(60):           # the victim's stream to it is open
                while host.get_id() not in pubsub.peer_queues:
                    await trio.sleep(0.05)
            to.add(host.get_id())
            visits[0] += 1
            with trio.move_on_after(stay):
                await _ask(stream, ids)
            await host.disconnect(victim.get_id())     # stopping its host would not
            visit.cancel_scope.cancel()
        with trio.fail_after(60):               # the victim saw it leave
            while host.get_id() in pubsub.peer_queues:
                await trio.sleep(0.05)
        if not same_key:
            key = create_new_key_pair()


class HonestPeer:
    """A node's own GossipSub subscribed to TOPIC at the victim; counts the records it gets, and
    can stop reading its connection for a while (`pause`)."""

    def __init__(self) -> None:
        self.got: set[bytes] = set()
        self.host: Any = None
        self._gate: trio.Event | None = None

    async def start(self, victim: Any, nursery: trio.Nursery) -> None:
        """Run it, connect it to `victim` and subscribe."""
        from libp2p import new_host
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from libp2p.tools.anyio_service import background_trio_service

        self.host = new_host()
        router, pubsub = gossip.make_router_and_pubsub(self.host)

        async def run(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            async with self.host.run(LOOPBACK), background_trio_service(pubsub), \
                    background_trio_service(router):
                await pubsub.wait_until_ready()
                sub = await pubsub.subscribe(TOPIC)
                task_status.started()
                async for msg in sub:
                    self.got.add(msg.data[:4])

        await nursery.start(run)
        target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
        await self.host.connect(info_from_p2p_addr(target))

    def gate_reads(self, victim: Any) -> None:
        """Make its connection's reads wait while paused."""
        conn = self.host.get_network().connections[victim.get_id()]
        conn = conn[0] if isinstance(conn, list) else conn
        secured = conn.muxed_conn.secured_conn
        inner = secured.read

        async def read(*args: Any) -> bytes:
            while self._gate is not None:
                await self._gate.wait()
            return await inner(*args)

        secured.read = read

    async def pause(self, seconds: float) -> None:
        """Stop reading for `seconds`, then read again."""
        self._gate = trio.Event()
        await trio.sleep(seconds)
        gate, self._gate = self._gate, None
        gate.set()


async def iwant_sizes(count: int, size: int) -> tuple[list[int], int]:
    """A victim publishes `count` records of `size` bytes; a peer that then connects (and does
    not subscribe: the victim replays recent records to a new subscriber one by one) asks for
    them all by one IWANT. The sizes of the RPCs it is sent, and how many of
    the records came (within 30 s)."""
    from libp2p import new_host
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.tools.anyio_service import background_trio_service

    victim = new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    sizes: list[int] = []
    got: set[bytes] = set()
    async with victim.run(LOOPBACK), background_trio_service(pubsub), \
            background_trio_service(router), trio.open_nursery() as nursery:
        await pubsub.wait_until_ready()
        await pubsub.subscribe(TOPIC)

        async def read_all(stream: Any) -> None:
            while True:
                raw = await _read_exactly(stream, await _read_varint(stream))
                sizes.append(len(raw))
                got.update(m.data[:4] for m in rpc_pb2.RPC.FromString(raw).publish)

        host, stream = await _subscriber(victim, nursery, graft=False, handler=read_all,
                                         subscribe=False)
        with trio.fail_after(30):
            while host.get_id() not in pubsub.peer_queues:
                await trio.sleep(0.05)
        ids = []
        for i in range(count):
            data = i.to_bytes(4, "big") + os.urandom(size - 4)
            await pubsub.publish(TOPIC, data)
            ids.append(gossip.message_id(SimpleNamespace(data=data)))
        rpc = rpc_pb2.RPC()
        rpc.control.iwant.add(messageIDs=[i.hex().encode() for i in ids])
        raw = rpc.SerializeToString()
        await stream.write(varint.encode(len(raw)) + raw)
        with trio.move_on_after(30):
            while len(got) < count:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    return sizes, len(got)


def _count_sent(router: Any, to: set[Any]) -> list[int]:
    """[records, bytes] the router puts into RPCs answering IWANTs of the peers in `to` from now
    on (counted as `send_rpc` is called from `handle_iwant`: what the node copied, whether or not
    the peer's queue then takes it; records the mesh pushes to them are not counted)."""
    sent, answering = [0, 0], [False]
    inner_send, inner_iwant = router.send_rpc, router.handle_iwant

    def send_rpc(peer_id: Any, rpc: Any, priority: bool = False) -> None:
        if answering[0] and peer_id in to:
            sent[0] += len(rpc.publish)
            sent[1] += sum(m.ByteSize() for m in rpc.publish)
        inner_send(peer_id, rpc, priority)

    async def handle_iwant(iwant_msg: Any, sender_peer_id: Any) -> None:
        answering[0] = True
        try:
            await inner_iwant(iwant_msg, sender_peer_id)
        finally:
            answering[0] = False

    router.send_rpc, router.handle_iwant = send_rpc, handle_iwant
    return sent


async def _read_varint(stream: Any) -> int:
    value = shift = 0
    while True:
        byte = (await _read_exactly(stream, 1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


async def _read_exactly(stream: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.read(n - len(data))
        if not chunk:
            raise EOFError("stream ended")
        data += chunk
    return data


async def _discard(stream: Any) -> None:
    while await stream.read(65536):
        pass


async def _block_forever(*_: Any) -> bytes:
    await trio.sleep_forever()
    return b""


async def _run(host: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with host.run(LOOPBACK):
        task_status.started()
        await trio.sleep_forever()


async def main(stuck: int, records: int, size: int, iwant: int = 0,
               interval: float = 0.0, honest_pause: float | None = None,
               reads: bool = False, churn_stay: float | None = None,
               same_key: bool = False) -> dict[str, Any]:
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
        askers = [await iwant_peer(victim, pubsub, nursery, ids, reads) for _ in range(iwant)]
        honest = HonestPeer() if honest_pause is not None else None
        if honest is not None:
            await honest.start(victim, nursery)
            peers.append(honest.host)
        with trio.fail_after(60):               # grafted, and its outbound queue made
            while not all(p.get_id() in pubsub.peer_queues for p in askers) or not all(
                    p.get_id() in router.mesh.get(TOPIC, ()) and
                    p.get_id() in pubsub.peer_queues for p in peers):
                await trio.sleep(0.1)
        if honest is not None:
            honest.gate_reads(victim)
        targets = {p.get_id() for p in askers}      # `churn` adds its peers
        sent, visits = _count_sent(router, targets), [0]
        if churn_stay is not None:
            nursery.start_soon(churn, victim, pubsub, ids, targets, visits, churn_stay, same_key)
        gc.collect()
        before = process.memory_info().rss
        cpu = sum(process.cpu_times()[:2])
        for i in range(records):
            data = i.to_bytes(4, "big") + os.urandom(size - 4)
            await pubsub.publish(TOPIC, data)
            ids.append(gossip.message_id(SimpleNamespace(data=data)))
            if honest is not None and i == int(records * 0.6):
                nursery.start_soon(honest.pause, honest_pause)
            if i % 50 == 0:
                gossip.widen_outbound_queues(pubsub)   # node/host.py's watcher, each second
                await trio.sleep(0)
            await trio.sleep(interval)
        await trio.sleep(3 + (honest_pause or 0))
        cpu = sum(process.cpu_times()[:2]) - cpu
        gossip.widen_outbound_queues(pubsub)
        gc.collect()
        rpcs, nbytes = queued(pubsub)
        mesh = router.mesh.get(TOPIC, ())
        out = {"stuck": stuck, "iwant": iwant, "records": records, "size": size,
               "in_mesh": sum(p.get_id() in mesh for p in peers),
               "askers_in_mesh": sum(p.get_id() in mesh for p in askers),
               "queued_rpcs": rpcs, "queued_bytes": nbytes,
               "queued_mib": round(nbytes / 2**20, 1),
               "rss_growth_mib": round((process.memory_info().rss - before) / 2**20, 1),
               "iwant_records": sent[0], "iwant_mib": round(sent[1] / 2**20, 1),
               "published_mib": round(records * size / 2**20, 1),
               "iwant_per_published": round(sent[1] / (records * size), 2),
               "cpu_s": round(cpu, 1)}
        if churn_stay is not None:
            out.update(churn_stay_s=churn_stay, churn_same_key=same_key,
                       churn_visits=visits[0])
        if honest is not None:
            pool = gossip._pool_of(pubsub)
            out.update(honest_pause_s=honest_pause, honest_got=len(honest.got),
                       shed_queues=getattr(pool, "shed_queues", None))
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
    parser.add_argument("--honest-pause", type=float, default=None,
                        help="seconds an honest mesh peer stops reading (60%% in)")
    parser.add_argument("--iwant-reads", action="store_true",
                        help="the --iwant peers read (and discard) what they are sent")
    parser.add_argument("--churn", type=float, default=None, metavar="STAY",
                        help="peers at one address ask by IWANT in turn, STAY s each, "
                             "a fresh peer id each time")
    parser.add_argument("--churn-same-key", action="store_true",
                        help="the --churn peers are one key reconnecting")
    args = parser.parse_args()
    print(json.dumps(trio.run(main, args.stuck, args.records, args.size, args.iwant,
                              args.interval, args.honest_pause, args.iwant_reads, args.churn,
                              args.churn_same_key)))
