"""Messages dropped by GossipSub's publish score gate are counted by reason (`score_gate`).

Real py-libp2p hosts on loopback in one trio run: a node (NetHost, as `swarm join` runs it) and a
plain GossipSub peer. The peer's first record goes through; once the node holds enough recent strikes
against the peer (its application score, below the publish threshold, short of a ban), the peer's
records are dropped before validation and each drop is counted, and is a strike. The peer writes its records to the
node's pubsub stream itself, as a hostile peer ignoring the node's PRUNE would (an honest GossipSub
peer stops sending once the node prunes it from its mesh).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import multiaddr
import trio

from memory.crypto import Keypair
from memory.store import Store
from node import gossip, peers
from node.host import NetConfig, NetHost
from node.peers import PeerBook
from tests.network.launcher import make_records

WAIT_S = 30.0


async def _until(condition: Any) -> None:
    with trio.fail_after(WAIT_S):
        while not condition():
            await trio.sleep(0.05)


async def _scenario(store: Store) -> tuple[dict[str, int], list[bytes], float]:
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service import background_trio_service

    received: list[bytes] = []
    node = NetHost(NetConfig(seed=Keypair.generate().seed, listen=["/ip4/127.0.0.1/tcp/0"],
                             mdns=False, dht=False, network="gate"),
                   store, PeerBook(), lambda peer, raw: received.append(raw))
    other = new_host(key_pair=create_new_key_pair(Keypair.generate().seed), muxer_preference="YAMUX")
    router, pubsub = gossip.make_router_and_pubsub(other)
    topic, records = gossip.topic_for("gate"), make_records(4)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.main)
        addr = f"{node.host.get_addrs()[0]}"
        async with other.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                await pubsub.subscribe(topic)
                await other.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))
                await _until(lambda: node.host.get_id() in router.mesh.get(topic, set()))
                await pubsub.publish(topic, records[0])
                await _until(lambda: received)                   # an honest record passes
                # strikes short of a ban: the application score is below the publish threshold
                strikes = int(-gossip.PUBLISH_THRESHOLD // peers.STRIKE_SCORE) + 1
                assert strikes < peers.INVALID_LIMIT
                node.peers.invalid(str(other.get_id()), strikes)
                for raw in records[1:]:
                    await _push(pubsub, node.host.get_id(), topic, raw)
                counts: Counter[str] = Counter()
                await _until(lambda: counts.update(node.tally.take()) or
                             counts["score_gate"] >= len(records) - 1)
                await trio.sleep(0.5)                            # nothing more comes
                counts.update(node.tally.take())
                score = node.peers.app_score(str(other.get_id()))
                pubsub.seen_messages.stop()
        nursery.cancel_scope.cancel()
    return dict(counts), received, score


async def _push(pubsub: Any, to: Any, topic: str, raw: bytes) -> None:
    """Sign `raw` as pubsub's publish does and write it to peer `to`, mesh or not."""
    from libp2p.pubsub.pb import rpc_pb2

    signed: list[Any] = []

    async def capture(forwarder: Any, msg: Any) -> None:
        signed.append(msg)

    pubsub.push_msg = capture                   # this instance only: keep the signed message
    await pubsub.publish(topic, raw)
    await pubsub.write_msg(pubsub.peers[to], rpc_pb2.RPC(publish=signed))


def test_records_dropped_by_the_score_gate_are_counted() -> None:
    with Store(":memory:") as store:
        counts, received, score = trio.run(_scenario, store)
    assert counts == {"score_gate": 3}            # every later record, by that reason only
    assert len(received) == 1                     # none reached the node's ingest
    strikes = int(-gossip.PUBLISH_THRESHOLD // peers.STRIKE_SCORE) + 1
    assert score == -peers.STRIKE_SCORE * (strikes + 3)      # each drop was a strike
