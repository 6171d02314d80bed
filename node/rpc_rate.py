"""Pubsub RPCs read from peers are rationed: every RPC costs this node CPU, however few its bytes.

py-libp2p 0.8.1 reads a peer's `/meshsub/1.1.0` RPCs as fast as they arrive and handles each on the
libp2p thread (varint prefix read byte by byte through Yamux, protobuf parse, signed peer record,
control handling): measured on a node, 155 CPU-us for an empty RPC (1 byte on the wire), 320 for an
unsubscribe (8 bytes), 390 for an empty IHAVE (26 bytes): 15-155 CPU-s per MB, so one peer sending
~50 KB/s of empty IHAVEs kept a node at 0.86 CPU-s per second, and nothing rated RPCs. Here the
read loop takes one token per RPC, before reading it, from the peer id's bucket (RATE_PER_PEER, BURST_PER_PEER) and from its address's
(all peer ids at one remote IP, an IPv6 one by its /64: `quota.address_key`; ADDRESS_FACTOR times
a peer's); an RPC past either waits until the bucket has refilled: the stream is not read meanwhile,
so the peer's Yamux window fills and its writes wait (nothing is dropped, nothing is a strike).
An honest peer sends about one RPC per record it forwards, and the gossip quotas refuse a peer's
records past 200 a second (burst 2,000): these budgets are well above that. Subscription changes
(`SubscriptionRation`, below) and pings answered (PING_RATE_PER_PEER) are rationed too.
Applied by node/patches.py `apply()`.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from node.quota import TokenBucket, address_key, lru_get

log = logging.getLogger(__name__)

RATE_PER_PEER = 200.0           # pubsub RPCs a second read from one peer id (its records' quota)
BURST_PER_PEER = 5000.0         # ... at once (a bulk import's 1,000 records gossiped at once fit)
ADDRESS_FACTOR = 4              # all peer ids at one address together: 4 peers' worth
MAX_KEYS = 4096                 # peer ids and addresses remembered, each (least recently used go)
# Subscription changes (a subscribe to a topic the peer was not in, an unsubscribe from one it
# was) taken from a peer id: each makes py-libp2p spawn three tasks, and a subscribe to this
# node's topic replays its recent messages to the peer. An honest peer subscribes once.
SUB_RATE_PER_PEER = 1.0
SUB_BURST_PER_PEER = 20.0
# Pings answered per peer id (py-libp2p answers every 32-byte ping at once, 2 streams per peer:
# one peer pinging without pause kept a node at 0.70 CPU-s per second); a ping past the rate waits.
PING_RATE_PER_PEER = 10.0
PING_BURST_PER_PEER = 100.0
REFILL_S = 0.1                  # a waiting reader sleeps until this much rate has accrued: one
                                # wake-up per 20 RPCs, not one each (each cost ~100 CPU-us)


class Ration:
    """Token buckets per peer id and per address (ADDRESS_FACTOR times a peer's); `rates()` gives
    a peer's (rate per second, burst), read as each bucket is made."""

    def __init__(self, rates: Callable[[], tuple[float, float]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rates, self.clock = rates, clock
        self.peers: OrderedDict[str, TokenBucket] = OrderedDict()
        self.addresses: OrderedDict[str, TokenBucket] = OrderedDict()

    def buckets(self, peer: str, ip: str | None, now: float) -> tuple[TokenBucket, TokenBucket]:
        """`peer`'s bucket and its address's, refilled to `now`."""
        rate, burst = self.rates()
        pair = (lru_get(self.peers, peer, lambda: TokenBucket(rate, burst, now), MAX_KEYS),
                lru_get(self.addresses, address_key(ip),
                        lambda: TokenBucket(rate * ADDRESS_FACTOR, burst * ADDRESS_FACTOR, now),
                        MAX_KEYS))
        for bucket in pair:
            bucket.refill(now)
        return pair


class RpcRation(Ration):
    """`delay` says how long to wait before reading the next message (an RPC, a ping)."""

    def delay(self, peer: str, ip: str | None) -> float:
        """Take one message from `peer`'s bucket and its address's; the seconds to wait before
        reading it (0: none). Buckets go into debt, so a peer that keeps sending waits its turn."""
        wait = 0.0
        for bucket in self.buckets(peer, ip, self.clock()):
            bucket.tokens -= 1
            if bucket.tokens < 0:
                wait = max(wait, -bucket.tokens / bucket.rate + REFILL_S)
        return wait


class SubscriptionRation(Ration):
    """`admits` says whether a subscription change is taken."""

    def admits(self, peer: str, ip: str | None) -> bool:
        """Whether `peer` (at `ip`) may change a subscription now; takes one change if so. A peer
        id's first change is free of its address's budget: every peer behind one NAT subscribes
        once, and a subscribe ignored is never sent again."""
        now = self.clock()
        first = peer not in self.peers
        buckets = self.buckets(peer, ip, now)
        if first:
            return True
        if not all(bucket.tokens >= 1 for bucket in buckets):
            return False
        for bucket in buckets:
            bucket.tokens -= 1
        return True


def apply() -> RpcRation:
    """Ration the RPCs pubsub reads (py-libp2p reads each through the module-level
    `read_varint_prefixed_bytes_limited`), the pings answered (`libp2p.host.ping.read_exactly`)
    and the subscription changes pubsub takes (`Pubsub.handle_subscription`); return the RPC
    ration."""
    import libp2p.host.ping as ping_module
    import libp2p.pubsub.pubsub as pubsub_module

    _ration_subscriptions(pubsub_module.Pubsub)
    ration = RpcRation(lambda: (RATE_PER_PEER, BURST_PER_PEER))
    pubsub_module.read_varint_prefixed_bytes_limited = _rationed(   # type: ignore[assignment]
        pubsub_module.read_varint_prefixed_bytes_limited, ration, "pubsub RPCs")
    ping_module.read_exactly = _rationed(                           # type: ignore[assignment]
        ping_module.read_exactly, RpcRation(lambda: (PING_RATE_PER_PEER, PING_BURST_PER_PEER)),
        "pings")
    return ration


def _rationed(read: Callable[..., Awaitable[bytes]], ration: RpcRation, what: str
              ) -> Callable[..., Awaitable[bytes]]:
    """`read(stream, ...)` that first waits out `ration`'s delay for the stream's peer."""
    import trio

    from node.relay import remote_ip      # here: node.relay imports node.patches, which imports us

    async def rationed(reader: Any, *args: Any) -> bytes:
        conn = getattr(reader, "muxed_conn", None)
        wait = ration.delay(str(getattr(conn, "peer_id", "?")), remote_ip(reader))
        if wait:
            log.debug("%s from %s past their rate: waiting %.2f s", what,
                      getattr(conn, "peer_id", "?"), wait)
            await trio.sleep(wait)
        return await read(reader, *args)

    return rationed


def _ration_subscriptions(pubsub_class: Any) -> SubscriptionRation:
    """Ignore a peer's subscription changes past its budget (SubscriptionRation).

    py-libp2p 0.8.1 caps a peer's topics (100) and the entries of one RPC (5,000), not how often
    they change: an RPC of 5,000 alternating subscribes and unsubscribes (35 KB) cost a node ~3
    CPU-s (three tasks spawned per subscribe; on this node's own topic, a replay of its recent
    messages to the peer each time), and 8 such RPCs left its API answering after 16 s.
    """
    from node.relay import connection_ip   # here: node.relay imports node.patches, which imports us

    ration = SubscriptionRation(lambda: (SUB_RATE_PER_PEER, SUB_BURST_PER_PEER))
    original = pubsub_class.handle_subscription

    def handle_subscription(self: Any, origin_id: Any, sub_message: Any) -> None:
        held = origin_id in self.peer_topics.get(sub_message.topicid, ())
        if held != bool(sub_message.subscribe):          # a change, not a repeat
            if not ration.admits(str(origin_id), connection_ip(self.host, origin_id)):
                log.debug("subscription changes from %s past their rate: ignored", origin_id)
                return
        original(self, origin_id, sub_message)

    handle_subscription.__doc__ = original.__doc__
    pubsub_class.handle_subscription = handle_subscription
    return ration
