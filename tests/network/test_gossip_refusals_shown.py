"""Gossip a node ignores is shown per peer: `swarm peers` (`GET /peers`: the peer book's rows)
and `rejections` count, by reason, the IHAVE / IWANT ids of a peer that node/gossip_requests.py
ignored (they were only logged).

Real py-libp2p on loopback: a node (NetHost, as `swarm join` runs it, in one trio run) and a raw
peer that writes RPCs to the node's pubsub stream: one IWANT naming a cached record 4 times
(GossipSub's retransmission bound: 3), 11 IHAVEs in one heartbeat (the cap: 10); then, once the
node holds three strikes against it (below the gossip threshold), one IHAVE and one IWANT. And a
`swarm join` process, read through `swarm peers` and `swarm status`, with a peer sending 11
IHAVEs (the cached record of an IWANT lasts 5 heartbeats: too short to rely on across processes).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import trio
import varint
from libp2p.pubsub.pb import rpc_pb2

from memory.crypto import Keypair
from memory.store import Store
from node import gossip, gossip_requests
from node.host import NetConfig, NetHost
from node.peers import PeerBook
from swarm.bench import stucksub
from swarm.commands.network import _rejected_cell
from tests.network.launcher import launch, make_records, wait_for

WAIT_S = 60.0
CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]


async def _until(condition: Any) -> None:
    with trio.fail_after(WAIT_S):
        while not condition():
            await trio.sleep(0.05)


async def _write(stream: Any, rpc: Any) -> None:
    raw = rpc.SerializeToString()
    await stream.write(varint.encode(len(raw)) + raw)


def _unseen_ids(n: int) -> list[bytes]:
    return [os.urandom(20).hex().encode() for _ in range(n)]


async def _scenario(store: Store) -> tuple[dict[str, Any], dict[str, Any], Counter[str]]:
    """The raw peer's row in the node's peer book after its over-bound gossip, and after its
    gossip while gated; with what the node's tally counted."""
    node = NetHost(NetConfig(seed=Keypair.generate().seed, listen=["/ip4/127.0.0.1/tcp/0"],
                             mdns=False, dht=False, network="shown"),
                   store, PeerBook(), lambda peer, raw: None)
    counts: Counter[str] = Counter()

    def row(peer: Any) -> dict[str, Any]:
        counts.update(node.tally.take())
        return next((p for p in node.peers.snapshot() if p["peer_id"] == str(peer)), {})

    async with trio.open_nursery() as nursery:
        await nursery.start(node.main)
        host, stream = await stucksub._subscriber(node.host, nursery, graft=False,
                                                  handler=stucksub._discard, subscribe=False)
        await _until(lambda: host.get_id() in node.pubsub.peer_queues)
        record = make_records(1)[0]
        await node.pubsub.publish(node.topic, record)
        wire = gossip.message_id(rpc_pb2.Message(data=record)).hex().encode()
        rpc = rpc_pb2.RPC()
        rpc.control.iwant.add(messageIDs=[wire] * (gossip_requests.GOSSIP_RETRANSMISSION + 1))
        for t in range(gossip_requests.MAX_IHAVE_MESSAGES + 1):   # py-libp2p: 10/s per topic
            rpc.control.ihave.add(topicID=f"/t{t}/1", messageIDs=_unseen_ids(1))
        await _write(stream, rpc)
        await _until(lambda: len(row(host.get_id()).get("gossip_ignored", {})) == 2)
        bounded = row(host.get_id())
        node.peers.invalid(str(host.get_id()), 3)         # -30: below the gossip threshold
        rpc = rpc_pb2.RPC()
        rpc.control.ihave.add(topicID=node.topic, messageIDs=_unseen_ids(2))
        rpc.control.iwant.add(messageIDs=[wire])
        await _write(stream, rpc)
        await _until(lambda: gossip_requests.GATED in row(host.get_id())["gossip_ignored"] and
                     row(host.get_id())["gossip_ignored"][gossip_requests.GATED] >= 3)
        gated = row(host.get_id())
        node.pubsub.seen_messages.stop()
        nursery.cancel_scope.cancel()
    return bounded, gated, counts


def test_ignored_gossip_is_counted_per_peer_and_reason() -> None:
    """Both kinds of over-bound gossip, then the gated gossip, show in the peer's row (not as
    strikes: only the 3 given) and in `rejections`; the `swarm peers` table says why."""
    with Store(":memory:") as store:
        bounded, gated, counts = trio.run(_scenario, store)
    assert bounded["gossip_ignored"] == {gossip_requests.RETRANSMITTED: 1,
                                         gossip_requests.IHAVE_CAPPED: 1}, bounded
    assert bounded["rejected"] == 0, bounded
    assert gated["gossip_ignored"] == {gossip_requests.RETRANSMITTED: 1,
                                       gossip_requests.IHAVE_CAPPED: 1,
                                       gossip_requests.GATED: 3}, gated     # 2 IHAVE ids, 1 IWANT
    assert gated["rejected"] == 3, gated
    assert counts == gated["gossip_ignored"], counts
    assert _rejected_cell(gated) == f"8 {gossip_requests.GATED}"


async def _send_ihaves(target: str, count: int, until: Any) -> None:
    """Connect to the node at multiaddr `target`, send it `count` IHAVEs (one unseen id each, on
    topics of their own) in one RPC, and stay until `until()` holds (polled in a thread)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    host = new_host()
    host.set_stream_handler(TProtocol(gossip.GOSSIP_PROTOCOL), stucksub._discard)
    async with trio.open_nursery() as nursery:
        await nursery.start(stucksub._run, host)
        info = info_from_p2p_addr(multiaddr.Multiaddr(target))
        await host.connect(info)
        stream = await host.new_stream(info.peer_id, [TProtocol(gossip.GOSSIP_PROTOCOL)])
        rpc = rpc_pb2.RPC()
        for t in range(count):
            rpc.control.ihave.add(topicID=f"/t{t}/1", messageIDs=_unseen_ids(1))
        await _write(stream, rpc)
        with trio.fail_after(WAIT_S):
            while not await trio.to_thread.run_sync(until):
                await trio.sleep(0.2)
        nursery.cancel_scope.cancel()


def test_swarm_peers_json_shows_the_ihaves_a_running_node_ignored(tmp_path: Path,
                                                                  network: str) -> None:
    """A `swarm join` node, and a real py-libp2p peer sending it 11 IHAVEs in one heartbeat:
    `swarm peers --json` shows the one ignored (its one id) against that peer, no strike, and
    the table's `rej` says why; `swarm status` counts it in `rejected`."""
    node = launch(tmp_path / "a", network)

    def shown() -> bool:
        return any(p.get("gossip_ignored") for p in node.request("/peers"))

    trio.run(_send_ihaves, node.addr, gossip_requests.MAX_IHAVE_MESSAGES + 1, shown)
    out = subprocess.run([*CLI, "peers", "--json", "--home", str(node.home)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    row = next(p for p in json.loads(out.stdout) if p.get("gossip_ignored"))
    assert row["gossip_ignored"] == {gossip_requests.IHAVE_CAPPED: 1} and row["rejected"] == 0
    table = subprocess.run([*CLI, "peers", "--home", str(node.home)], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "COLUMNS": "100"})
    assert f"1 {gossip_requests.IHAVE_CAPPED}" in table.stdout, table.stdout
    wait_for(lambda: node.status()["rejected"].get(gossip_requests.IHAVE_CAPPED) == 1, WAIT_S,
             "the ignored IHAVE id in swarm status")
