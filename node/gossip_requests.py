"""Patches to py-libp2p 0.8.1's GossipSub for the gossip a peer can make a node do: IHAVE and IWANT.

GossipSub v1.1 bounds them (libp2p/specs pubsub/gossipsub/gossipsub-v1.1.md); py-libp2p 0.8.1 has
only a rate of 10 a second per peer (per topic, for IHAVE). Applied by node/patches.apply() with
the other patches; the limits are listed in docs/PROTOCOL.md, "Gossip: new records". The ids a
peer sends past them, and those py-libp2p's own rate limits drop, are counted by reason
(`_refused`): node/host.py adds them to `rejections` and to the peer's row of `swarm peers`
(`gossip_ignored`). IWANT answers are rationed per remote address, not per peer id (a key is
free, an address is not), as the gossip and sync quotas are (node/quota.py, node/syncquota.py).
"""
from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from typing import Any

from node.quota import address_key, bound_lru

log = logging.getLogger(__name__)

# GossipSub v1.1's bounds on gossip a peer can make this node do (libp2p/specs
# pubsub/gossipsub/gossipsub-v1.1.md, "Parameters"; go-libp2p-pubsub's defaults)
GOSSIP_RETRANSMISSION = 3       # times one address is sent one cached message by IWANT
MAX_IHAVE_LENGTH = 5000         # message ids taken from one peer's IHAVEs per heartbeat
MAX_IHAVE_MESSAGES = 10         # IHAVE messages taken from one peer per heartbeat
# Bytes of IWANT answers one address may get past the bytes this node caches (publishes or
# forwards): a few re-asks of lost answers (4 RPCs at gossip.MAX_RPC_BYTES); see `_iwant_credit`
IWANT_ALLOWANCE_BYTES = 1 << 20
# Addresses whose IWANT credit is kept (least recently asking forgotten past it, as node/quota.py
# bounds its per-address buckets): ~150 bytes each
MAX_CREDIT_ADDRESSES = 4096

# Why a peer's gossip was ignored: the reasons counted in `rejections` and in its row of
# `swarm peers` (`gossip_ignored`); each counts the message ids ignored
GATED = "gossip_gate"             # IHAVE / IWANT from a peer below the gossip threshold
RETRANSMITTED = "iwant_retransmit"  # IWANT asks of a message sent GOSSIP_RETRANSMISSION times
OVER_BUDGET = "iwant_budget"      # IWANT asks past its address's byte credit (`_iwant_credit`)
IHAVE_CAPPED = "ihave_cap"        # IHAVE ids past MAX_IHAVE_MESSAGES / MAX_IHAVE_LENGTH
IWANT_RATE = "iwant_rate"         # IWANT ids dropped by py-libp2p's 10 IWANTs a second per peer
IHAVE_RATE = "ihave_rate"         # IHAVE ids dropped by py-libp2p's 10 IHAVEs a second per topic


def _refused(router: Any, peer: Any, reason: str, ids: int) -> None:
    """Count `ids` message ids of `peer`'s gossip ignored for `reason`: in the router's
    `gossip_refused` and through `router.on_gossip_refused(peer_id, reason, ids)` when set
    (node/host.py: the peer's row and `rejections`; it must not raise)."""
    router.__dict__.setdefault("gossip_refused", Counter())[reason] += ids
    hook = getattr(router, "on_gossip_refused", None)
    if hook is not None:
        hook(str(peer), reason, ids)


def _patch_gossip_retransmission() -> None:
    """Answer an IWANT for a message at most GOSSIP_RETRANSMISSION times per remote address, and
    with at most the address's byte credit (`_iwant_credit`).

    py-libp2p 0.8.1's `GossipSub.handle_iwant` answers every cached id each time it is asked (the
    same id listed twice in one IWANT: twice); its only bound is 10 IWANTs a second per peer, each
    naming any number of ids. 10 peers asking 4 times a second for the newest 70 records made the
    node copy 60,211 records (3.5 GiB) into answers while it published 400; 12,000 with the
    retransmission bound alone, 3 times the publish rate per peer; 4,170 (1.04 times per peer)
    with a credit per peer id; 417 now, the 10 peers being at one address (swarm/bench/stucksub.py
    `--iwant 10 --iwant-reads`; docs/TRUST.md has `--churn`, fresh keys in turn). GossipSub
    v1.1's message cache counts the times each message was sent to each peer by IWANT and ignores
    the asks past GossipSubGossipRetransmission (3); the credit is this node's own
    (docs/PROTOCOL.md, "Gossip: new records"). Both are kept per remote address (an IPv6 one by
    its /64, `quota.address_key`), shared by its peer ids and kept when they disconnect: a peer id
    costs nothing to make, so per id each fresh key (or the same one reconnecting) got the whole
    cache again. Here the ids past either bound, and those not cached (nothing to answer), leave
    the IWANT before py-libp2p's handler sees it, the ignored ones counted (`_refused`); a
    message's counts leave the cache with it (`MessageCache.shift`), and the credits of the
    addresses that asked least recently past MAX_CREDIT_ADDRESSES.
    An ask that py-libp2p's own rate limit then drops still counts (and is counted as
    `iwant_rate`): only a peer past 10 IWANTs a second loses a retransmission, never an honest one.
    """
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.mcache import MessageCache
    from libp2p.pubsub.pb import rpc_pb2

    from node.relay import connection_ip     # here: node/relay.py imports node/patches.py

    original_iwant = GossipSub.handle_iwant
    original_put, original_shift = MessageCache.put, MessageCache.shift

    async def handle_iwant(self: Any, iwant_msg: Any, sender_peer_id: Any) -> None:
        asked = list(iwant_msg.messageIDs)
        host = getattr(self.pubsub, "host", None)
        address = address_key(None if host is None else connection_ip(host, sender_peer_id))
        kept, over, poor = _ration_iwant(self.mcache, asked, address)
        if over:
            log.warning("gossip: %s asked by IWANT for cached records its address %s was sent %d "
                        "times already; %d ask(s) ignored", sender_peer_id, address,
                        GOSSIP_RETRANSMISSION, over)
            _refused(self, sender_peer_id, RETRANSMITTED, over)
        if poor:
            log.warning("gossip: %s asked by IWANT for more bytes than this node cached since "
                        "its address %s last asked; %d ask(s) ignored", sender_peer_id, address,
                        poor)
            _refused(self, sender_peer_id, OVER_BUDGET, poor)
        if kept:
            await original_iwant(self, rpc_pb2.ControlIWant(messageIDs=kept), sender_peer_id)

    def put(self: Any, msg: Any) -> None:
        held = len(self.msgs)
        original_put(self, msg)
        if len(self.msgs) > held:               # new to the cache (a repeat is not stored)
            _count_cached(self, msg.ByteSize())

    def shift(self: Any) -> None:
        served = self.__dict__.get("served", {})
        for entry in self.history[-1]:
            served.pop(entry.mid, None)
            msg = self.msgs.get(entry.mid)
            if msg is not None:
                self.__dict__["nbytes"] = self.__dict__.get("nbytes", 0) - msg.ByteSize()
        original_shift(self)

    for new, old in ((handle_iwant, original_iwant), (put, original_put),
                     (shift, original_shift)):
        new.__doc__ = old.__doc__
    GossipSub.handle_iwant = handle_iwant   # type: ignore[method-assign]
    MessageCache.put = put                  # type: ignore[method-assign]
    MessageCache.shift = shift              # type: ignore[method-assign]


def _count_cached(mcache: Any, size: int) -> None:
    """Note `size` more bytes in `mcache`: those it holds (`nbytes`) and all it ever took
    (`cached`, which `_iwant_credit` compares)."""
    mcache.__dict__["nbytes"] = mcache.__dict__.get("nbytes", 0) + size
    mcache.__dict__["cached"] = mcache.__dict__.get("cached", 0) + size


def _iwant_credit(mcache: Any, address: str) -> int:
    """The bytes of cached messages the peers at `address` (a `quota.address_key`) may be sent
    by IWANT now, all together.

    A token bucket filled by what the node caches: an address's credit grows by the bytes of
    every message put into `mcache` (published or forwarded) since it last asked, up to the bytes
    the cache holds plus IWANT_ALLOWANCE_BYTES, where an address not seen before (or forgotten:
    `_ration_iwant`) starts. So a peer that asks for every cached message once gets it (honest
    catch-up), and over any stretch the peers at one address are sent at most the bytes cached
    in it plus the cap, however many peer ids they use and however often they reconnect.
    """
    cached = mcache.__dict__.get("cached", 0)
    cap = mcache.__dict__.get("nbytes", 0) + IWANT_ALLOWANCE_BYTES
    tokens, mark = mcache.__dict__.get("credit", {}).get(address, (cap, cached))
    return min(cap, tokens + cached - mark)


def _ration_iwant(mcache: Any, asked: list[Any], address: str) -> tuple[list[Any], int, int]:
    """The ids of `asked` (wire form) to answer a peer at `address` (a `quota.address_key`),
    each counted as sent there once more and paid from the address's credit (`_iwant_credit`);
    how many asks of cached messages were over GOSSIP_RETRANSMISSION; and how many were past
    the credit. The credits of MAX_CREDIT_ADDRESSES addresses are kept, the least recently
    asking forgotten first (by then most likely full again, as a new one starts)."""
    from libp2p.pubsub.utils import safe_bytes_from_hex

    served: dict[bytes, dict[str, int]] = mcache.__dict__.setdefault("served", {})
    credit = _iwant_credit(mcache, address)
    kept, over, poor = [], 0, 0
    for wire in asked:
        mid = safe_bytes_from_hex(wire)
        msg = None if mid is None else mcache.msgs.get(mid)
        if msg is None:
            continue                    # unreadable or not cached: nothing to answer
        counts = served.setdefault(mid, {})
        if counts.get(address, 0) >= GOSSIP_RETRANSMISSION:
            over += 1
        elif msg.ByteSize() > credit:
            poor += 1
        else:
            credit -= msg.ByteSize()
            counts[address] = counts.get(address, 0) + 1
            kept.append(wire)
    credits: OrderedDict[str, tuple[int, int]] = mcache.__dict__.setdefault("credit",
                                                                              OrderedDict())
    credits[address] = (credit, mcache.__dict__.get("cached", 0))
    credits.move_to_end(address)
    bound_lru(credits, MAX_CREDIT_ADDRESSES)
    return kept, over, poor


def _patch_rate_limits() -> None:
    """Count the ids of the IWANTs and IHAVEs py-libp2p's own rate limits drop (10 IWANTs a second
    per peer, 10 IHAVEs a second per peer and topic) as `iwant_rate` / `ihave_rate` (`_refused`):
    py-libp2p only logged them. Its checks are wrapped, not copied: each handler notes the ids of
    the message it is handling for the check to count (the check is the handler's first step,
    before it awaits anything). Applied first, so that the other patches' handlers call these."""
    from libp2p.pubsub.gossipsub import GossipSub

    for check_name, handler_name, reason in (
            ("_check_iwant_rate_limit", "handle_iwant", IWANT_RATE),
            ("_check_ihave_rate_limit", "handle_ihave", IHAVE_RATE)):
        check, handler = _counting_rate_limit(getattr(GossipSub, check_name),
                                              getattr(GossipSub, handler_name), reason)
        setattr(GossipSub, check_name, check)
        setattr(GossipSub, handler_name, handler)


def _counting_rate_limit(original_check: Any, original_handler: Any, reason: str
                         ) -> tuple[Any, Any]:
    """A rate-limit check that counts its drops as `reason`, and the handler that tells it how
    many ids the dropped message named (per sender, in the router's `<reason>_ids`)."""
    def check(self: Any, peer_id: Any, *topic: Any) -> bool:
        within = original_check(self, peer_id, *topic)
        if not within:
            naming = self.__dict__.get(f"{reason}_ids", {})
            _refused(self, peer_id, reason, naming.get(peer_id, 1))
        return within

    async def handler(self: Any, msg: Any, sender_peer_id: Any) -> None:
        naming = self.__dict__.setdefault(f"{reason}_ids", {})
        naming[sender_peer_id] = len(msg.messageIDs)
        try:
            await original_handler(self, msg, sender_peer_id)
        finally:
            naming.pop(sender_peer_id, None)

    check.__doc__, handler.__doc__ = original_check.__doc__, original_handler.__doc__
    return check, handler


def _patch_ihave_bounds() -> None:
    """Take at most MAX_IHAVE_MESSAGES IHAVEs and MAX_IHAVE_LENGTH message ids from a peer per
    heartbeat, as GossipSub v1.1 says; the ids of the rest are ignored and counted (`_refused`).

    py-libp2p 0.8.1 takes 10 IHAVEs a second per peer *per topic* (a peer naming many topics gets
    10 for each) and any number of ids in each: every id is looked up among the ids seen, and
    those unseen are asked for by an IWANT of the same size back to the peer. The counts start
    again at each heartbeat (`GossipSub.gossip_heartbeat`, once per heartbeat).
    """
    from libp2p.pubsub.gossipsub import GossipSub

    original_ihave, original_gossip = GossipSub.handle_ihave, GossipSub.gossip_heartbeat

    async def handle_ihave(self: Any, ihave_msg: Any, sender_peer_id: Any) -> None:
        taken = self.__dict__.setdefault("ihave_taken", {})
        messages, ids = taken.get(sender_peer_id, (0, 0))
        room = MAX_IHAVE_LENGTH - ids
        if messages >= MAX_IHAVE_MESSAGES or room <= 0:
            log.warning("gossip: %s sent over %d IHAVEs or %d ids in a heartbeat; ignored",
                        sender_peer_id, MAX_IHAVE_MESSAGES, MAX_IHAVE_LENGTH)
            _refused(self, sender_peer_id, IHAVE_CAPPED, len(ihave_msg.messageIDs))
            return
        if len(ihave_msg.messageIDs) > room:
            _refused(self, sender_peer_id, IHAVE_CAPPED, len(ihave_msg.messageIDs) - room)
            del ihave_msg.messageIDs[room:]
        taken[sender_peer_id] = (messages + 1, ids + len(ihave_msg.messageIDs))
        await original_ihave(self, ihave_msg, sender_peer_id)

    def gossip_heartbeat(self: Any) -> Any:
        self.__dict__.get("ihave_taken", {}).clear()
        return original_gossip(self)

    handle_ihave.__doc__ = original_ihave.__doc__
    gossip_heartbeat.__doc__ = original_gossip.__doc__
    GossipSub.handle_ihave = handle_ihave           # type: ignore[method-assign]
    GossipSub.gossip_heartbeat = gossip_heartbeat   # type: ignore[method-assign]


def _patch_gossip_gate() -> None:
    """Ignore IHAVE and IWANT from a peer whose score is below the gossip threshold.

    GossipSub v1.1 (libp2p/specs pubsub/gossipsub/gossipsub-v1.1.md, "Score Thresholds") and
    go-libp2p ignore gossip from such a peer; py-libp2p 0.8.1's `handle_ihave` and `handle_iwant`
    check no score, so a peer struck below it (-20: three strikes within 60 s) still got its
    IWANTs answered and its IHAVEs asked for. Here they are dropped before py-libp2p's handlers
    (and the bounds above) see them, and counted per kind in the router's `gossip_gated` (their
    ids as GATED by `_refused`); nor
    does the heartbeat send such a peer IHAVE (`ihave_to`: its choice of recipients checked no
    score either). The score is the whole score over this node's topics, as in
    `_patch_score_thresholds`.
    """
    from libp2p.pubsub.gossipsub import GossipSub

    original_ihave, original_iwant = GossipSub.handle_ihave, GossipSub.handle_iwant
    original_gossip = GossipSub.gossip_heartbeat

    def below(self: Any, peer: Any) -> bool:
        scorer = self.scorer
        return scorer is not None and \
            scorer.score(peer, list(self.mesh)) < scorer.params.gossip_threshold

    def gated(self: Any, peer: Any, kind: str, ids: int) -> bool:
        if not below(self, peer):
            return False
        self.__dict__.setdefault("gossip_gated", Counter())[kind] += 1
        log.warning("gossip: %s is below the gossip threshold; its %s ignored", peer, kind.upper())
        _refused(self, peer, GATED, ids)
        return True

    def gossip_heartbeat(self: Any) -> Any:
        chosen = original_gossip(self)
        for peer in [p for p in chosen if below(self, p)]:
            del chosen[peer]                    # no IHAVE to it (counted; not logged: every heartbeat)
            self.__dict__.setdefault("gossip_gated", Counter())["ihave_to"] += 1
        return chosen

    async def handle_ihave(self: Any, ihave_msg: Any, sender_peer_id: Any) -> None:
        if not gated(self, sender_peer_id, "ihave", len(ihave_msg.messageIDs)):
            await original_ihave(self, ihave_msg, sender_peer_id)

    async def handle_iwant(self: Any, iwant_msg: Any, sender_peer_id: Any) -> None:
        if not gated(self, sender_peer_id, "iwant", len(iwant_msg.messageIDs)):
            await original_iwant(self, iwant_msg, sender_peer_id)

    handle_ihave.__doc__ = original_ihave.__doc__
    handle_iwant.__doc__ = original_iwant.__doc__
    gossip_heartbeat.__doc__ = original_gossip.__doc__
    GossipSub.handle_ihave = handle_ihave   # type: ignore[method-assign]
    GossipSub.handle_iwant = handle_iwant   # type: ignore[method-assign]
    GossipSub.gossip_heartbeat = gossip_heartbeat   # type: ignore[method-assign]


def _patch_message_cache_ids() -> None:
    """Key GossipSub's message cache by the pubsub's message id (node/gossip.py: the content
    address), not by py-libp2p's `from + seqno`.

    py-libp2p 0.8.1's MessageCache ignores the pubsub's `msg_id_constructor`: IHAVE advertised
    `from + seqno` ids, which the receiving node looked up in its seen cache (content ids) and never
    found, so it asked by IWANT for every record advertised to it, ones it held included (each
    answer up to 1 MiB), and an IWANT by the content id (docs/PROTOCOL.md) was never answered.
    Peers on the old keys still interoperate: their IHAVE ids are asked for and answered as
    before, and ours are content ids, which their seen cache knows.
    """
    import libp2p.pubsub.mcache as mcache

    from node.gossip import message_id

    mcache.default_msg_id_fn = message_id


def apply() -> None:
    """Install the patches (node/patches.apply() calls this once)."""
    _patch_message_cache_ids()
    _patch_rate_limits()            # first: the handlers below call its (py-libp2p's drops counted)
    _patch_gossip_retransmission()
    _patch_ihave_bounds()
    _patch_gossip_gate()            # after the two above: a gated ask costs none of their budget
