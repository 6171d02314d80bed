"""GossipSub for record announcements: the router settings, the topic, and the topic validator.

Settings measured with py-libp2p 0.8.1 (../shared/DESIGN.md, "Network"): pin `/meshsub/1.1.0` (v1.2 is
2-50x slower), heartbeat 1 s, and switch off the 10 msg/s per-topic rate limit, which also drops this
node's own publishes. Eclipse protection is off too: it wants 3+ distinct IPs in the mesh and churns it
when volunteers share a NAT (and on loopback). Messages are content-addressed, so the same record
announced by two peers is one message.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from memory.codec import MAX_RECORD_BYTES, Rejected, decode
from node.peers import PeerBook

log = logging.getLogger(__name__)

GOSSIP_PROTOCOL = "/meshsub/1.1.0"
SUBSCRIPTION_QUEUE = 4096       # libp2p's default 32 drops silently under a burst
OUTBOUND_QUEUE = 1024           # per peer; libp2p's default is 32


def topic_for(network: str) -> str:
    """The GossipSub topic on which a swarm network announces records."""
    return f"/swarm/{network}/records/1"


def message_id(msg: Any) -> bytes:
    """Content address of a pubsub message (the same record is the same message)."""
    return hashlib.blake2b(msg.data, digest_size=20).digest()


def make_router_and_pubsub(host: Any) -> tuple[Any, Any]:
    """A GossipSub router and Pubsub service for `host`, configured as above."""
    import libp2p.pubsub.pubsub as pubsub_module
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    # read at subscribe() time; the default 32-slot channel drops messages when we fall behind
    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_QUEUE
    router = GossipSub(
        protocols=[GOSSIP_PROTOCOL], degree=6, degree_low=4, degree_high=12,
        heartbeat_initial_delay=0.1, heartbeat_interval=1, time_to_live=30,
        gossip_window=3, gossip_history=5,
        spam_protection_enabled=False, eclipse_protection_enabled=False,
    )
    pubsub = Pubsub(host, router, msg_id_constructor=message_id, cache_size=4096,
                    max_inbound_rpc_size=4 * MAX_RECORD_BYTES)
    return router, pubsub


def widen_outbound_queues(pubsub: Any) -> int:
    """Raise every per-peer outbound queue to OUTBOUND_QUEUE slots; return the fullest queue's length.

    libp2p creates each queue with 32 slots and drops RPCs silently when it is full; the watcher in
    node/host.py calls this every second (a burst before that is repaired by sync).
    """
    deepest = 0
    for queue in list(pubsub.peer_queues.values()):
        inner = getattr(queue, "_queue", None)
        if inner is not None and getattr(inner, "max_size", OUTBOUND_QUEUE) < OUTBOUND_QUEUE:
            inner.max_size = OUTBOUND_QUEUE
        deepest = max(deepest, len(queue))
    return deepest


def make_validator(peers: PeerBook, on_ban: Callable[[str], None]) -> Callable[[Any, Any], bool]:
    """The topic validator: size, encoding, schema, time and signature of the record (memory.codec).

    An invalid message is dropped before it is forwarded and counted against the peer that sent it;
    when a peer passes the limit, `on_ban(peer_id)` is called (it must not raise).
    """
    def validate(forwarder: Any, msg: Any) -> bool:
        try:
            decode(msg.data)
            return True
        except Rejected as exc:
            peer_id = str(forwarder)
            log.debug("invalid gossip from %s: %s", peer_id, exc)
            if peers.invalid(peer_id):
                on_ban(peer_id)
            return False

    return validate
