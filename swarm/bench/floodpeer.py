"""A flooding peer: one connection gossiping valid records from many fresh keys, as fast as it can.

`python -m swarm.bench.floodpeer TARGET_MULTIADDR --network NAME [--authors A] [--per-author R]`
connects to one node, joins the swarm topic and publishes A x R valid hypothesis records (track
`flood`), then prints one JSON report {sent, seconds, rate}. Used by tests/network/test_hostile_flood.py
and `swarm bench network --flood`; the node's quotas (node/quota.py) decide how much of it is stored.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import trio

TRACK = "flood"
MESH_WAIT_S = 15.0


def flood_records(authors: int, per_author: int) -> list[bytes]:
    """`authors` fresh keys, `per_author` valid records each, interleaved (round robin)."""
    from memory import codec
    from memory.crypto import Keypair
    from memory.records import HypothesisBody

    keys = [Keypair.generate() for _ in range(authors)]
    return [codec.sign(key, "hypothesis", seq, HypothesisBody(
        track=TRACK, diff={"depth": seq}, rationale="flood", source="human")).raw
        for seq in range(1, per_author + 1) for key in keys]


async def flood(target: str, network: str, records: list[bytes]) -> dict[str, Any]:
    """Connect to `target`, wait until it is in our mesh, publish every record; return figures."""
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.tools.anyio_service import background_trio_service

    from memory.crypto import Keypair
    from node import gossip

    host = new_host(key_pair=create_new_key_pair(Keypair.generate().seed), muxer_preference="YAMUX")
    router, pubsub = gossip.make_router_and_pubsub(host)
    topic = gossip.topic_for(network)
    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    figures: dict[str, Any] = {}
    try:
        async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                await pubsub.subscribe(topic)
                await host.connect(info)
                with trio.move_on_after(MESH_WAIT_S):
                    while info.peer_id not in router.mesh.get(topic, set()):
                        await trio.sleep(0.1)
                sent, seconds = await _publish_all(pubsub, topic, records)
                figures = {"sent": sent, "seconds": round(seconds, 2),
                           "rate": round(sent / max(seconds, 1e-6))}
                await trio.sleep(1)                       # let the last RPCs leave
                pubsub.seen_messages.stop()
    except Exception:  # noqa: BLE001 - libp2p's teardown after the node cut us off
        if not figures:
            raise
    return figures


async def _publish_all(pubsub: Any, topic: str, records: list[bytes]) -> tuple[int, float]:
    from node import gossip

    start = time.monotonic()
    sent = 0
    for i, raw in enumerate(records):
        try:
            await pubsub.publish(topic, raw)
            sent += 1
        except Exception:  # noqa: BLE001 - the node cut us off
            break
        if i % 50 == 0:
            gossip.widen_outbound_queues(pubsub)      # 32 slots otherwise: we want to hit the node
            await trio.sleep(0)
    return sent, time.monotonic() - start


def main(argv: list[str] | None = None) -> None:
    """CLI: flood a node and print the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--network", default="main")
    parser.add_argument("--authors", type=int, default=200)
    parser.add_argument("--per-author", type=int, default=10)
    args = parser.parse_args(argv)
    import logging

    import libp2p  # noqa: F401 - its import configures its logger; quiet it afterwards

    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    records = flood_records(args.authors, args.per_author)
    print(json.dumps(trio.run(flood, args.target, args.network, records)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
