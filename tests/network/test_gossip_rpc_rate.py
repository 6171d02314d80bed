"""What a peer's pubsub RPCs may cost: they are rationed (node/rpc_rate.py), and a message naming
topics the node does not subscribe to is dropped (node/patches.py, `_patch_foreign_topics`).

py-libp2p read a peer's RPCs as fast as they came, each ~150-400 CPU-us however small: one peer
writing 26-byte empty IHAVEs kept a node at 0.86 CPU-s per second; and it kept state for every
topic a message named (docs/PROTOCOL.md, "Hostile peers"). Real py-libp2p on loopback: the node's
own GossipSub, and a raw peer that writes 3,000 RPCs at once (its budget cut to 100 at once and 10
a second so that a few seconds show it), or a peer publishing with its own GossipSub.
"""
from __future__ import annotations

import time
from typing import Any

import multiaddr
import pytest
import trio
import varint
from libp2p.pubsub.pb import rpc_pb2

from node import gossip, rpc_rate
from swarm.bench import stucksub

RPCS, BURST, RATE = 3000, 100.0, 10.0


async def _raw_rpcs(rpc: Any, copies: int, wait_s: float, counted: str) -> tuple[int, float]:
    """A peer writes `copies` of `rpc` at once to a node subscribed to TOPIC: how many times the
    node's router ran its method `counted` within `wait_s` seconds, and the seconds since the
    first was written."""
    from libp2p import new_host
    from libp2p.tools.anyio_service import background_trio_service

    victim = new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    calls = [0]
    inner = getattr(router, counted)

    async def counting(*args: Any) -> None:
        calls[0] += 1
        await inner(*args)

    setattr(router, counted, counting)
    raw = rpc.SerializeToString()
    async with victim.run(stucksub.LOOPBACK), background_trio_service(pubsub), \
            background_trio_service(router), trio.open_nursery() as nursery:
        await pubsub.wait_until_ready()
        await pubsub.subscribe(stucksub.TOPIC)
        host, stream = await stucksub._subscriber(victim, nursery, graft=False, subscribe=False)
        started = time.monotonic()
        with trio.fail_after(60):                             # within the window
            await stream.write((varint.encode(len(raw)) + raw) * copies)
        await trio.sleep(wait_s)
        nursery.cancel_scope.cancel()
        return calls[0], time.monotonic() - started


def test_a_peer_writing_rpcs_without_pause_is_read_at_its_rate(monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setattr(rpc_rate, "BURST_PER_PEER", BURST)
    monkeypatch.setattr(rpc_rate, "RATE_PER_PEER", RATE)
    rpc = rpc_pb2.RPC()
    rpc.control.ihave.add(topicID=stucksub.TOPIC)           # an empty IHAVE: 26 bytes
    handled, elapsed = trio.run(_raw_rpcs, rpc, RPCS, 3.0, "handle_rpc")
    assert handled >= 1                                       # the peer is heard
    assert handled <= BURST + RATE * elapsed + 2              # was all 3,000 within the 3 s


async def _junk_topics(topics: int) -> tuple[list[bytes], int]:
    """A peer publishes one message on TOPIC and `topics` made-up topics, then one on TOPIC
    alone; what the node's subscription got, and how many topics its router keeps state for."""
    from libp2p import new_host
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service import background_trio_service

    victim, peer = new_host(), new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    peer_router, peer_pubsub = gossip.make_router_and_pubsub(peer)
    async with victim.run(stucksub.LOOPBACK), peer.run(stucksub.LOOPBACK), \
            background_trio_service(pubsub), background_trio_service(router), \
            background_trio_service(peer_pubsub), background_trio_service(peer_router):
        await pubsub.wait_until_ready()
        await peer_pubsub.wait_until_ready()
        subscription = await pubsub.subscribe(stucksub.TOPIC)
        await peer.connect(info_from_p2p_addr(
            multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")))
        with trio.fail_after(60):
            await peer_pubsub.wait_for_subscription(victim.get_id(), stucksub.TOPIC)
        await peer_pubsub.publish([stucksub.TOPIC] + [f"/junk/{i}" for i in range(topics)],
                                  b"junk")
        await peer_pubsub.publish(stucksub.TOPIC, b"sentinel")
        got = []
        with trio.fail_after(60):
            while not got or got[-1] != b"sentinel":
                got.append((await subscription.get()).data)
        scored = router.scorer.first_message_deliveries.get(peer.get_id(), {})
        return got, len(set(router.fanout) | set(scored))


def test_a_message_naming_topics_the_node_does_not_subscribe_to_is_dropped() -> None:
    got, kept = trio.run(_junk_topics, 2000)
    assert got == [b"sentinel"]                 # was [b"junk", b"sentinel"]
    assert kept <= 1                            # TOPIC's (was 2,001: a counter per topic)


def test_a_peer_churning_its_subscriptions_has_few_taken() -> None:
    rpc = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=i % 2 == 0,
                                                         topicid=stucksub.TOPIC)
                                     for i in range(100)])       # 50 subscribes, alternating
    taken, elapsed = trio.run(_raw_rpcs, rpc, 20, 2.0, "on_peer_subscribed")
    assert taken >= 1
    assert taken <= 1 + 20 + 1.0 * elapsed + 1     # first, burst, rate (was all 1,000)
