"""A gossip subscriber that never reads (docs/TRUST.md, "Gossip back-pressure")."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import trio
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.rpc_queue import RpcQueue

from node import gossip
from node.gossip import (OUTBOUND_BYTES, OUTBOUND_FLOOR_BYTES, OUTBOUND_TOTAL_BYTES, queued_bytes,
                         widen_outbound_queues)
from swarm.bench import stucksub


def _record_rpc(i: int, size: int) -> rpc_pb2.RPC:
    return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=i.to_bytes(4, "big") + b"\0" * (size - 4),
                                                topicIDs=[stucksub.TOPIC])])


def _stuck_queues(peers: int, records: int) -> tuple[dict[str, Any], Any]:
    """`peers` queues, never drained, each offered `records` RPCs of 60 KiB; with their pubsub."""
    queues = {f"stuck{i}": RpcQueue() for i in range(peers)}
    pubsub = SimpleNamespace(peer_queues=queues)
    widen_outbound_queues(pubsub)
    for i in range(records):
        for queue in queues.values():
            queue.push(_record_rpc(i, 60 * 1024))
    return queues, pubsub


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
    queues, pubsub = _stuck_queues(40, 100)
    bound = OUTBOUND_TOTAL_BYTES + len(queues) * OUTBOUND_FLOOR_BYTES
    assert OUTBOUND_TOTAL_BYTES - 2 * 61 * 1024 <= queued_bytes(pubsub) <= bound
    queues["reader"] = RpcQueue()
    widen_outbound_queues(pubsub)
    assert queues["reader"].push(_record_rpc(0, 60 * 1024))
    del queues["stuck0"], queues["stuck1"]             # peers gone: their bytes no longer count
    widen_outbound_queues(pubsub)
    assert queues["stuck2"].push(_record_rpc(0, 60 * 1024))


def test_stuck_queues_lose_their_share_when_the_pool_is_full(monkeypatch: Any) -> None:
    """40 queues never drained fill the 32 MiB; a peer that is only briefly behind (its queue
    new since they stopped) then took 128 KiB at most (two records) and lost the rest. Now, once
    the pool is full, queues that sent nothing for STUCK_S are emptied and held to the floor
    until they send again, and the slow peer's queue takes all 20 records."""
    monkeypatch.setattr(gossip, "SHED_EVERY_S", 0.0)
    queues, pubsub = _stuck_queues(40, 100)              # none stuck while filled, however slow
    assert queued_bytes(pubsub) >= OUTBOUND_TOTAL_BYTES - 2 * 61 * 1024
    monkeypatch.setattr(gossip, "STUCK_S", 0.2)          # the figure, not the rule, shortened
    time.sleep(0.3)                                       # they have sent nothing since
    queues["slow"] = RpcQueue()
    widen_outbound_queues(pubsub)
    assert all(queues["slow"].push(_record_rpc(i, 60 * 1024)) for i in range(20))
    pool = gossip._pool_of(pubsub)
    assert pool.shed_queues == 40 and queued_bytes(pubsub) < OUTBOUND_TOTAL_BYTES
    stuck = queues["stuck3"]
    taken = [stuck.push(_record_rpc(i, 60 * 1024)) for i in range(10)]
    assert taken[:2] == [True, True] and not any(taken[2:])   # held to the floor
    stuck._queue.pop()                                        # it reads again: no longer held
    assert all(stuck.push(_record_rpc(i, 60 * 1024)) for i in range(10))


def test_a_stuck_queue_keeps_its_share_while_the_pool_has_room(monkeypatch: Any) -> None:
    """Shedding is for a full pool only: one stuck peer alone keeps its 4 MiB."""
    monkeypatch.setattr(gossip, "STUCK_S", 0.0)
    monkeypatch.setattr(gossip, "SHED_EVERY_S", 0.0)
    queue = RpcQueue()
    pubsub = SimpleNamespace(peer_queues={"stuck": queue})
    widen_outbound_queues(pubsub)
    for i in range(100):
        queue.push(_record_rpc(i, 60 * 1024))
    assert queued_bytes(pubsub) > OUTBOUND_BYTES - 61 * 1024
    assert gossip._pool_of(pubsub).shed_queues == 0


def test_a_node_answers_a_large_iwant_in_rpcs_its_peers_accept() -> None:
    """Real py-libp2p on loopback: a peer asks by IWANT for 17 records of 60 KiB. py-libp2p put
    them in RPCs of up to 1 MiB, over the 256 KiB the node reads from a peer (MAX_RPC_BYTES):
    the asking node reset the stream and dropped the answering peer from its pubsub. Now each
    RPC is at most MAX_RPC_BYTES and all 17 records come."""
    sizes, got = trio.run(stucksub.iwant_sizes, 17, 60 * 1024)
    assert got == 17, (got, sizes)
    assert max(sizes) <= gossip.MAX_RPC_BYTES, sizes
