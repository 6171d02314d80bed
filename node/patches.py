"""Narrow fixes to py-libp2p 0.8.1 for bytes a remote peer controls, applied before the host is built.

`apply()` is called by node/host.py (and by anything else that builds a pubsub service, e.g. the
fuzzing peer) before `Pubsub(...)` is constructed; it is idempotent. `contain_streams(host)` then wraps
the host's one inbound-stream entry point so that whatever any protocol handler raises costs that
stream only, never the host. Each patch says which upstream behaviour it works around; drop it once
the pinned py-libp2p has the fix (tests/network/test_hostile_frames.py fails without them).

Why patches and not a restart of the host after the fact: a restart drops every connection and the
mesh, so one hostile peer could still keep a node off the network by sending one frame a second.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

_APPLIED = False


def apply() -> None:
    """Install the py-libp2p patches (once per process)."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_pubsub_stream_handler()
    _patch_signature_validator()
    _patch_push_msg()
    _patch_score_gate()
    _patch_score_thresholds()
    _patch_teardown_race()
    _patch_identify_bounds()
    _patch_message_cache_ids()
    _patch_gossip_retransmission()
    _patch_ihave_bounds()
    _patch_gossip_gate()            # after the two above: a gated ask costs none of their budget
    _APPLIED = True


# GossipSub v1.1's bounds on gossip a peer can make this node do (libp2p/specs
# pubsub/gossipsub/gossipsub-v1.1.md, "Parameters"; go-libp2p-pubsub's defaults)
GOSSIP_RETRANSMISSION = 3       # times one peer is sent one cached message by IWANT
MAX_IHAVE_LENGTH = 5000         # message ids taken from one peer's IHAVEs per heartbeat
MAX_IHAVE_MESSAGES = 10         # IHAVE messages taken from one peer per heartbeat


def _patch_gossip_retransmission() -> None:
    """Answer an IWANT for a message at most GOSSIP_RETRANSMISSION times per peer.

    py-libp2p 0.8.1's `GossipSub.handle_iwant` answers every cached id each time it is asked (the
    same id listed twice in one IWANT: twice); its only bound is 10 IWANTs a second per peer, each
    naming any number of ids. 10 peers asking 4 times a second for the newest 70 records made the
    node copy 60,211 records (3.5 GiB) into answers while it published 400; now 12,000
    (swarm/bench/stucksub.py `--iwant 10 --iwant-reads`). GossipSub v1.1's message cache counts
    the times each message was sent to each peer by IWANT and ignores the asks past
    GossipSubGossipRetransmission (3). Here the ids past it, and those not cached (nothing to
    answer), leave the IWANT before py-libp2p's handler sees it; a message's counts leave the
    cache with it (`MessageCache.shift`).
    An ask that py-libp2p's own rate limit then drops still counts: only a peer past 10 IWANTs a
    second loses a retransmission, never an honest one.
    """
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.mcache import MessageCache
    from libp2p.pubsub.pb import rpc_pb2

    original_iwant, original_shift = GossipSub.handle_iwant, MessageCache.shift

    async def handle_iwant(self: Any, iwant_msg: Any, sender_peer_id: Any) -> None:
        asked = list(iwant_msg.messageIDs)
        kept, over = _ration_iwant(self.mcache, asked, sender_peer_id)
        if over:
            log.warning("gossip: %s asked by IWANT for cached records it was sent %d times "
                        "already; %d ask(s) ignored", sender_peer_id, GOSSIP_RETRANSMISSION, over)
        if kept:
            await original_iwant(self, rpc_pb2.ControlIWant(messageIDs=kept), sender_peer_id)

    def shift(self: Any) -> None:
        served = getattr(self, "served", None)
        if served:
            for entry in self.history[-1]:
                served.pop(entry.mid, None)
        original_shift(self)

    handle_iwant.__doc__ = original_iwant.__doc__
    shift.__doc__ = original_shift.__doc__
    GossipSub.handle_iwant = handle_iwant   # type: ignore[method-assign]
    MessageCache.shift = shift              # type: ignore[method-assign]


def _ration_iwant(mcache: Any, asked: list[Any], peer: Any) -> tuple[list[Any], int]:
    """The ids of `asked` (wire form) to answer `peer`, each counted as sent once more; and how
    many asks of cached messages were over GOSSIP_RETRANSMISSION."""
    from libp2p.pubsub.utils import safe_bytes_from_hex

    served: dict[bytes, dict[Any, int]] = mcache.__dict__.setdefault("served", {})
    kept, over = [], 0
    for wire in asked:
        mid = safe_bytes_from_hex(wire)
        if mid is None or mid not in mcache.msgs:
            continue                    # unreadable or not cached: nothing to answer
        counts = served.setdefault(mid, {})
        if counts.get(peer, 0) >= GOSSIP_RETRANSMISSION:
            over += 1
            continue
        counts[peer] = counts.get(peer, 0) + 1
        kept.append(wire)
    return kept, over


def _patch_ihave_bounds() -> None:
    """Take at most MAX_IHAVE_MESSAGES IHAVEs and MAX_IHAVE_LENGTH message ids from a peer per
    heartbeat, as GossipSub v1.1 says; the rest are ignored.

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
            return
        if len(ihave_msg.messageIDs) > room:
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
    (and the bounds above) see them, and counted per kind in the router's `gossip_gated`. The
    score is the whole score over this node's topics, as in `_patch_score_thresholds`.
    """
    from collections import Counter

    from libp2p.pubsub.gossipsub import GossipSub

    original_ihave, original_iwant = GossipSub.handle_ihave, GossipSub.handle_iwant

    def gated(self: Any, peer: Any, kind: str) -> bool:
        scorer = self.scorer
        if scorer is None or scorer.score(peer, list(self.mesh)) >= scorer.params.gossip_threshold:
            return False
        self.__dict__.setdefault("gossip_gated", Counter())[kind] += 1
        log.warning("gossip: %s is below the gossip threshold; its %s ignored", peer, kind.upper())
        return True

    async def handle_ihave(self: Any, ihave_msg: Any, sender_peer_id: Any) -> None:
        if not gated(self, sender_peer_id, "ihave"):
            await original_ihave(self, ihave_msg, sender_peer_id)

    async def handle_iwant(self: Any, iwant_msg: Any, sender_peer_id: Any) -> None:
        if not gated(self, sender_peer_id, "iwant"):
            await original_iwant(self, iwant_msg, sender_peer_id)

    handle_ihave.__doc__ = original_ihave.__doc__
    handle_iwant.__doc__ = original_iwant.__doc__
    GossipSub.handle_ihave = handle_ihave   # type: ignore[method-assign]
    GossipSub.handle_iwant = handle_iwant   # type: ignore[method-assign]


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


MAX_IDENTIFY_PROTOCOLS = 64     # a peer's protocols kept from its identify (ours first)
MAX_IDENTIFY_ADDRS = 32         # a peer's listen addresses kept from its identify
KNOWN_PREFIXES = ("/swarm/", "/meshsub/", "/libp2p/", "/ipfs/")


def _patch_identify_bounds() -> None:
    """Keep a few of the protocols and addresses a peer's identify lists, not all it sends.

    py-libp2p 0.8.1 stores every protocol of an identify (or identify push) message, up to its
    1 MiB, and up to 1000 listen addresses, in the peerstore, which keeps them after the peer
    leaves. Peer ids are free: 30 fresh ids each listing 15,000 protocols grew a host by 103 MiB,
    kept (measured; tests/network/test_identify_bounds.py). This node reads only a few protocols
    of a peer (sync, pubsub, relay hop, ...): those under KNOWN_PREFIXES come first, then the
    rest in the peer's order, MAX_IDENTIFY_PROTOCOLS in all; MAX_IDENTIFY_ADDRS addresses (a
    peer listing more loses its signed peer record, which would add them all back).
    """
    import libp2p.host.basic_host as basic_host
    import libp2p.identity.identify_push.identify_push as identify_push
    from libp2p.identity import update

    original = update.update_peerstore_from_identify

    async def bounded(peerstore: Any, peer_id: Any, identify_msg: Any) -> None:
        if len(identify_msg.protocols) > MAX_IDENTIFY_PROTOCOLS:
            kept = sorted(identify_msg.protocols, key=lambda p: not p.startswith(KNOWN_PREFIXES))
            del identify_msg.protocols[:]
            identify_msg.protocols.extend(kept[:MAX_IDENTIFY_PROTOCOLS])
        if len(identify_msg.listen_addrs) > MAX_IDENTIFY_ADDRS:
            del identify_msg.listen_addrs[MAX_IDENTIFY_ADDRS:]
            # its signed peer record lists them all again, and a signature cannot be trimmed
            identify_msg.ClearField("signedPeerRecord")
        await original(peerstore, peer_id, identify_msg)

    bounded.__doc__ = original.__doc__
    basic_host.update_peerstore_from_identify = bounded         # type: ignore[assignment]
    identify_push.update_peerstore_from_identify = bounded      # type: ignore[assignment]


def _patch_teardown_race() -> None:
    """Banning a peer while it disconnects must not end the pubsub service.

    py-libp2p 0.8.1's `Pubsub._teardown_if_connected` (run when a peer is blacklisted, i.e. when
    node/host.py bans it) awaits `stream.reset()` and then does `del self.peers[peer_id]`; if the
    peer's own disconnect (`_handle_dead_peer`) removed it during that await, the `KeyError` ends the
    service's task group and the trio thread (seen in the fuzzing test: one host restart). The
    patched version removes the peer only if it is still there. Same family as libp2p/py-libp2p#416;
    no upstream report of this race was found.
    """
    from libp2p.pubsub.pubsub import Pubsub

    async def _teardown_if_connected(self: Any, peer_id: Any) -> None:
        stream = self.peers.get(peer_id)
        if stream is not None:
            await reset(stream)
            if self.peers.get(peer_id) is stream:
                del self.peers[peer_id]
        self._forget_all_subscriptions(peer_id)

    _teardown_if_connected.__doc__ = Pubsub._teardown_if_connected.__doc__
    Pubsub._teardown_if_connected = _teardown_if_connected   # type: ignore[method-assign]


def _patch_pubsub_stream_handler() -> None:
    """One invalid protobuf RPC on `/meshsub/1.1.0` must cost the stream, not the host.

    py-libp2p 0.8.1's `Pubsub.stream_handler` catches only StreamError, ParseError and
    IncompleteReadError around `continuously_read_stream`, whose `RPC.ParseFromString` raises
    `google.protobuf.message.DecodeError` for 8-33 bytes of invalid protobuf; the error escapes into
    the connection's nursery and ends the whole trio run (reproduced: the node shut down within 1-4 s).
    Same family as upstream libp2p/py-libp2p#1120 (pubsub's write path caught StreamClosed but not
    StreamReset and crashed the service) and #416 ("any individual peer failure should not disrupt the
    function of the host"); no upstream report of the read-side DecodeError was found. The patched
    handler treats it like the handled errors (reset the stream, drop the peer from pubsub) and
    reports it through `pubsub.on_invalid_rpc(peer_id)` (set by node/host.py) as a strike.
    """
    from google.protobuf.message import DecodeError
    from libp2p.pubsub.pubsub import Pubsub

    original = Pubsub.stream_handler

    async def stream_handler(self: Any, stream: Any) -> None:
        try:
            await original(self, stream)
        except DecodeError as exc:
            peer_id = stream.muxed_conn.peer_id
            log.debug("invalid pubsub RPC from %s: %s", peer_id, exc)
            hook = getattr(self, "on_invalid_rpc", None)
            if hook is not None:
                hook(str(peer_id))
            await reset(stream)
            self._handle_dead_peer(peer_id)

    stream_handler.__doc__ = original.__doc__
    Pubsub.stream_handler = stream_handler   # type: ignore[method-assign]


def _patch_signature_validator() -> None:
    """A pubsub message whose `key` field is not a protobuf PublicKey is invalid, not fatal.

    py-libp2p 0.8.1's `pubsub.validators.signature_validator` re-raises the DecodeError of
    `deserialize_public_key(msg.key)`; it runs inside `Pubsub.push_msg`, a task of the Pubsub service,
    whose failure ends the service and then the host (found by swarm/bench/fuzzpeer.py: a valid RPC
    whose message has a non-Ed25519 `from` and 38 random bytes of `key`). Same family as upstream
    libp2p/py-libp2p#1120. Here any exception while checking the signature means "invalid" (False).
    """
    import libp2p.pubsub.pubsub as pubsub_module

    original = pubsub_module.signature_validator

    def signature_validator(msg: Any) -> bool:
        try:
            return bool(original(msg))
        except Exception as exc:  # noqa: BLE001 - unparseable key or signature: invalid
            log.debug("pubsub message with an unreadable key: %r", exc)
            return False

    pubsub_module.signature_validator = signature_validator


def _patch_push_msg() -> None:
    """Whatever one received message makes `Pubsub.push_msg` raise costs that message only.

    In py-libp2p 0.8.1 `push_msg` runs as a task of the Pubsub service (`manager.run_task`), and an
    exception in any such task stops the service, which ends the host: the failure mode of upstream
    libp2p/py-libp2p#1120 and #910 (there on the write path and on peer negotiation). The patched
    task logs and drops the message instead. No strike: the failure may be this node's own.
    """
    from libp2p.pubsub.pubsub import Pubsub

    original = Pubsub.push_msg

    async def push_msg(self: Any, msg_forwarder: Any, msg: Any) -> None:
        try:
            await original(self, msg_forwarder, msg)
        except Exception as exc:  # noqa: BLE001 - one message, not the service
            log.debug("dropped a pubsub message from %s: %r", msg_forwarder, exc)

    push_msg.__doc__ = original.__doc__
    Pubsub.push_msg = push_msg   # type: ignore[method-assign]


def _patch_score_gate() -> None:
    """Report each message dropped by GossipSub's publish score gate to `pubsub.on_score_gate`.

    Not a fix: py-libp2p 0.8.1's `Pubsub.push_msg` drops a message from a peer whose score is below
    the publish threshold with a DEBUG line only, so those drops were missing from `rejections`.
    This runs the same checks, in the same order (blacklists, already seen, then the gate), before
    the original; a gated message is reported (node/host.py counts it as `score_gate`) and dropped
    exactly as the original would have dropped it.
    """
    from libp2p.pubsub.pubsub import Pubsub

    original = Pubsub.push_msg

    async def push_msg(self: Any, msg_forwarder: Any, msg: Any) -> None:
        hook = getattr(self, "on_score_gate", None)
        if hook is not None and _below_publish_gate(self, msg_forwarder, msg):
            hook(str(msg_forwarder))
            return
        await original(self, msg_forwarder, msg)

    push_msg.__doc__ = original.__doc__
    Pubsub.push_msg = push_msg   # type: ignore[method-assign]


def _patch_score_thresholds() -> None:
    """The publish and gossip thresholds compare a peer's whole score, as GossipSub v1.1 says.

    py-libp2p 0.8.1's `PeerScorer.allow_publish` and `allow_gossip`, for a message of one topic
    (all of ours), compare only that topic's score (P1-P4) plus P5 with the threshold, leaving out
    the application score (P6) and IP colocation (P7): this node's strikes never brought a peer
    below the publish threshold (found by tests/network/test_hostile_score_gate.py). The spec's
    thresholds apply to the score (libp2p/specs pubsub/gossipsub/gossipsub-v1.1.md, "Score
    Thresholds"), which `PeerScorer.score` computes; `is_graylisted` already uses it. No upstream
    report was found.
    """
    from libp2p.pubsub.score import PeerScorer

    def allow_publish(self: Any, peer: Any, topics: list[str]) -> bool:
        return bool(topics) and self.score(peer, topics) >= self.params.publish_threshold

    def allow_gossip(self: Any, peer: Any, topics: list[str]) -> bool:
        return bool(topics) and self.score(peer, topics) >= self.params.gossip_threshold

    allow_publish.__doc__ = PeerScorer.allow_publish.__doc__
    allow_gossip.__doc__ = PeerScorer.allow_gossip.__doc__
    PeerScorer.allow_publish = allow_publish   # type: ignore[method-assign]
    PeerScorer.allow_gossip = allow_gossip     # type: ignore[method-assign]


def _below_publish_gate(pubsub: Any, forwarder: Any, msg: Any) -> bool:
    """Whether `Pubsub.push_msg` would drop `msg` at its score gate (False when unsure)."""
    from libp2p.peer.id import ID

    try:
        scorer = getattr(pubsub.router, "scorer", None)
        if (scorer is None or pubsub.is_peer_blacklisted(forwarder)
                or pubsub.is_peer_blacklisted(ID(msg.from_id)) or pubsub._is_msg_seen(msg)):
            return False
        return not scorer.allow_publish(forwarder, list(msg.topicIDs))
    except Exception:  # noqa: BLE001 - let the original decide
        return False


def contain_streams(host: Any, on_error: Callable[[str, str, BaseException], None]) -> None:
    """Wrap the host's inbound-stream handler: a handler's exception resets that stream only.

    py-libp2p runs every inbound stream's protocol handler inside its connection's nursery
    (`SwarmConn._handle_muxed_stream`), so any exception a handler lets escape ends the host. This
    catches `Exception` (never trio's Cancelled, a BaseException) after the handler, resets the stream
    and reports `(peer id, protocol, error)` to `on_error`, which must not raise. Uses the network's
    public `set_stream_handler`, so nothing in the library is replaced.
    """
    network = host.get_network()
    inner: Callable[[Any], Awaitable[None]] = network.common_stream_handler

    async def contained(stream: Any) -> None:
        try:
            await inner(stream)
        except Exception as exc:  # noqa: BLE001 - the point: a stream's failure stays its own
            peer = str(getattr(stream.muxed_conn, "peer_id", "?"))
            protocol = str(stream.get_protocol() or "(negotiating)")
            on_error(peer, protocol, exc)
            await reset(stream)

    network.set_stream_handler(contained)


async def reset(stream: Any) -> None:
    """Reset `stream`, ignoring every failure (it may already be gone)."""
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001
        pass

