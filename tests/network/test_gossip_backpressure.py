"""A gossip subscriber that never reads (docs/TRUST.md, "Gossip back-pressure")."""
from __future__ import annotations

from types import SimpleNamespace

import trio
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.rpc_queue import RpcQueue

from node.gossip import (OUTBOUND_BYTES, OUTBOUND_FLOOR_BYTES, OUTBOUND_TOTAL_BYTES, queued_bytes,
                         widen_outbound_queues)
from swarm.bench import stucksub


def _record_rpc(i: int, size: int) -> rpc_pb2.RPC:
    return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=i.to_bytes(4, "big") + b"\0" * (size - 4),
                                                topicIDs=[stucksub.TOPIC])])


def test_a_peer_queue_that_is_never_drained_stops_at_its_byte_budget() -> None:
    """py-libp2p's own per-peer queue, as the node widens it, with no consumer at all (the peer
    never reads): it kept up to 1024 RPCs of 60 KiB (60 MiB); now it stops at OUTBOUND_BYTES."""
    queue = RpcQueue()
    pubsub = SimpleNamespace(peer_queues={"stuck": queue})
    widen_outbound_queues(pubsub)
    taken = [queue.push(_record_rpc(i, 60 * 1024)) for i in range(200)]
    assert taken[0] and not taken[-1]                       # the budget is hit, then refusals
    assert 0 < queued_bytes(pubsub) <= OUTBOUND_BYTES
    assert queue.push(_record_rpc(0, 60 * 1024)) is False   # full stays full until drained


def test_a_subscriber_that_never_reads_leaves_the_node_a_bounded_queue() -> None:
    """Real py-libp2p on loopback (swarm/bench/stucksub.py): a peer subscribed and grafted to the
    node's topic that accepts its stream and never reads it, while the node publishes 200 records
    of 60 KiB. How much is still queued at the end depends on timing (in one process, py-libp2p's
    stream buffers of the stuck peer may take it all); the bound holds either way."""
    out = trio.run(stucksub.main, 1, 200, 60 * 1024)
    assert out["in_mesh"] == 1, out
    assert out["queued_bytes"] <= OUTBOUND_BYTES, out


def test_many_stuck_peers_share_one_byte_budget() -> None:
    """40 peers' queues, never drained (peers outside the mesh can fill theirs by IWANT): each
    stopped at 4 MiB, 160 MiB in all; now all of them together stop at OUTBOUND_TOTAL_BYTES plus
    OUTBOUND_FLOOR_BYTES each, and a peer that reads (an empty queue) still gets a record."""
    queues = {f"stuck{i}": RpcQueue() for i in range(40)}
    pubsub = SimpleNamespace(peer_queues=queues)
    widen_outbound_queues(pubsub)
    for i in range(100):
        for queue in queues.values():
            queue.push(_record_rpc(i, 60 * 1024))
    bound = OUTBOUND_TOTAL_BYTES + len(queues) * OUTBOUND_FLOOR_BYTES
    assert OUTBOUND_TOTAL_BYTES - 2 * 61 * 1024 <= queued_bytes(pubsub) <= bound
    queues["reader"] = RpcQueue()
    widen_outbound_queues(pubsub)
    assert queues["reader"].push(_record_rpc(0, 60 * 1024))
    del queues["stuck0"], queues["stuck1"]             # peers gone: their bytes no longer count
    widen_outbound_queues(pubsub)
    assert queues["stuck2"].push(_record_rpc(0, 60 * 1024))
