"""Gossip budgets per address (node/quota.py): fresh peer ids from one remote IP share that
address's budget (`address_factor` times a peer's), so minting ids does not multiply the burst.

Real py-libp2p on loopback, in one process: the victim is a host with this node's GossipSub settings
and topic validator (real quotas, the forwarder's address read from its real connection, as
`NetHost` does); each flooder is `swarm.bench.floodpeer.flood`, a host with a fresh key publishing
records by fresh authors. Every flooder connects from 127.0.0.1.
"""
from __future__ import annotations

import time
import trio

from node import gossip
from node.peers import PeerBook
from node.quota import QuotaConfig, Quotas
from node.relay import connection_ip
from swarm.bench.floodpeer import flood, flood_records

NETWORK = "addr-quota"
PER_PEER = 5                # never-seen authors one peer id may introduce (burst; the rate is tiny)
FLOODERS = 4                # peer ids, each introducing PER_PEER fresh authors (its own budget)
CONFIG = QuotaConfig(peer_new_burst=PER_PEER, peer_new_rate=0.01, address_factor=2.0)


async def _flood_victim() -> tuple[Quotas, dict[str, int], int]:
    """Run the victim and the flooders; return its quotas, the drops by reason and what it sent."""
    import multiaddr
    from libp2p import new_host
    from libp2p.tools.anyio_service import background_trio_service

    host = new_host()
    router, pubsub = gossip.make_router_and_pubsub(host)
    quotas, tally, drops = Quotas(CONFIG), gossip.Tally(), {}
    validator = gossip.make_validator(PeerBook(), quotas, tally, str(host.get_id()),
                                      lambda peer: None, lambda pid: connection_ip(host, pid))
    topic = gossip.topic_for(NETWORK)
    sent = 0
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            pubsub.set_topic_validator(topic, validator, False)
            await pubsub.subscribe(topic)
            target = f"{host.get_addrs()[0]}"
            target += "" if "/p2p/" in target else f"/p2p/{host.get_id()}"
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    for _ in range(FLOODERS):
                        nursery.start_soon(_one_flooder, target)
                sent = FLOODERS * PER_PEER
                # every record has reached the validator: stored (a known author) or dropped
                while quotas.known_authors() + sum(drops.values()) < sent:
                    for reason, n in tally.take().items():
                        drops[reason] = drops.get(reason, 0) + n
                    await trio.sleep(0.05)
            pubsub.seen_messages.stop()
    return quotas, drops, sent


async def _one_flooder(target: str) -> None:
    figures = await flood(target, NETWORK, flood_records(PER_PEER, 1))
    assert figures.get("sent") == PER_PEER, figures


def test_fresh_peer_ids_from_one_address_share_its_gossip_budget() -> None:
    start = time.monotonic()
    quotas, drops, sent = trio.run(_flood_victim)
    elapsed = time.monotonic() - start
    address_budget = CONFIG.address_factor * (CONFIG.peer_new_burst
                                              + CONFIG.peer_new_rate * elapsed)
    accepted = quotas.known_authors()
    # each peer id alone was within its own budget: only the address's stopped the flood
    assert PER_PEER * CONFIG.address_factor <= accepted <= address_budget < sent
    assert drops == {"quota_address_new_authors": sent - accepted}
