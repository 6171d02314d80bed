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

from node import gossip_requests, rpc_rate

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
    _patch_yamux_buffers()
    _patch_yamux_window()
    _patch_stream_refusal()
    _patch_foreign_topics()
    rpc_rate.apply()
    gossip_requests.apply()
    _APPLIED = True


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


# What a peer may send on a stream beyond the receive window this node granted it (256 KiB, more
# as the reader reads, at most MAX_RECEIVE_WINDOW): room for a sender's rounding, never reached by
# one that keeps to the window.
UNREAD_SLACK = 256 * 1024


class WindowExceeded(Exception):
    """Raised inside py-libp2p's Yamux reader when a peer overruns a stream's receive window;
    `_patch_yamux_buffers` turns it into the library's own "close this connection" path."""


def _patch_yamux_buffers() -> None:
    """A Yamux stream's unread bytes stay within the window this node granted, and a stream this
    node is done with (`discard_unread`) buffers nothing more.

    py-libp2p 0.8.1's `Yamux.handle_incoming` appends every DATA frame to its stream's buffer and,
    when the peer sends past the stream's receive window, only logs "peer exceeded receive window"
    (go-yamux closes the session: ErrRecvWindowExceeded). A peer that ignores flow control on a
    stream whose handler no longer reads (a blob request answered `unknown`) grew a node by 300 MB
    in 4 s, kept (measured; tests/network/test_yamux_buffers.py). Here each stream's buffer checks
    what arrives against the window granted: past the window plus UNREAD_SLACK the connection is
    closed.
    The check raises a subclass of trio.TooSlowError, which every branch of `handle_incoming`
    passes up to its handler for a stalled frame body: log, close the connection, stop reading.
    No upstream report of the missing check was found (same family as libp2p/py-libp2p#416).
    """
    import trio
    from libp2p.stream_muxer.yamux.yamux import Yamux

    class Overrun(WindowExceeded, trio.TooSlowError):
        """WindowExceeded as the Yamux reader's connection-closing error."""

    class Buffer(bytearray):
        """One stream's unread bytes: bounded by its window, or dropped once discarding."""

        def __init__(self, conn: Any, stream_id: int, initial: bytes = b"") -> None:
            super().__init__(initial)
            self.conn, self.stream_id, self.discarding = conn, stream_id, False
            self.overrun = 0        # bytes received past the window, all frames together

        def extend(self, data: Any) -> None:
            if self.discarding:
                return
            # the library subtracts each frame from `recv_window` after this and clamps it at
            # 0, so the overrun is summed here: one frame a little past the window at a time
            # must not add up to an unbounded buffer
            stream = self.conn.streams.get(self.stream_id)
            window = max(0, getattr(stream, "recv_window", 0))
            self.overrun += max(0, len(data) - window)
            if self.overrun > UNREAD_SLACK:
                log.warning("peer %s sent %d bytes past stream %d's receive window; closing "
                            "its connection", self.conn.peer_id, self.overrun, self.stream_id)
                raise Overrun(f"stream {self.stream_id}: receive window exceeded")
            super().extend(data)

    class Buffers(dict):  # type: ignore[type-arg]
        """`Yamux.stream_buffers`, whose buffers are `Buffer`s."""

        def __init__(self, conn: Any) -> None:
            super().__init__()
            self.conn = conn

        def __setitem__(self, stream_id: int, value: Any) -> None:
            if not isinstance(value, Buffer):
                value = Buffer(self.conn, stream_id, value)
            super().__setitem__(stream_id, value)

    original_init = Yamux.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.stream_buffers = Buffers(self)

    Yamux.__init__ = __init__   # type: ignore[method-assign]


# The most a Yamux stream's receive window grows to (py-libp2p 0.8.1: 16 MiB, go-yamux's). What a
# peer sends waits in the window until read, so a stream read quickly a while, then slowly, held
# 16 MiB (measured; tests/network/test_yamux_buffers.py). Sync reads ahead 4 batches of 256 KiB
# (node/syncwire.py) and is bound by its ingest (~1-3 MB/s a catch-up on a loaded 2-core machine;
# the same with 256 KiB, 1 MiB or 16 MiB: docs/PROTOCOL.md, "Hostile peers"); 1 MiB still carries
# 10 MB/s at a 100 ms round trip, where 256 KiB (py-libp2p's first window) would carry 2.6.
MAX_RECEIVE_WINDOW = 1024 * 1024


def _patch_yamux_window() -> None:
    """A Yamux stream's receive window grows to MAX_RECEIVE_WINDOW at most.

    py-libp2p 0.8.1 doubles a stream's window (from 256 KiB) while it is read quickly, up to the
    module's MAX_WINDOW_SIZE (16 MiB), which its reader also takes as the largest DATA frame a peer
    may send: a peer never needs a frame above the window this node granted.
    """
    import libp2p.stream_muxer.yamux.yamux as yamux_module

    yamux_module.MAX_WINDOW_SIZE = MAX_RECEIVE_WINDOW


def _patch_stream_refusal() -> None:
    """A connection's inbound stream past MAX_INBOUND_STREAMS is refused at its Yamux SYN frame.

    `contain_streams` resets such a stream as its handler starts; by then py-libp2p 0.8.1 has
    built it, acknowledged it (ACK) and passed it through the connection's and the network's tasks:
    0.4-0.7 ms of CPU per refused stream; now 0.12 (scripts/wire_audit/stream_flood.py). Here the
    reader sees each frame header as `handle_incoming` reads it (through the module's
    `read_exactly`; a frame's body is read through `_read_data_body`, told apart); a SYN on a
    connection already at the bound makes its stream table say the id is taken, once, so the
    library answers with its own reset (RST, as for an id in use) and builds nothing.
    """
    import contextvars
    import struct

    import libp2p.stream_muxer.yamux.yamux as yamux_module
    from libp2p.stream_muxer.yamux.yamux import Yamux

    reading: contextvars.ContextVar[Any] = contextvars.ContextVar("yamux_reading", default=None)
    read, read_body = yamux_module.read_exactly, Yamux._read_data_body
    handle_incoming, original_init = Yamux.handle_incoming, Yamux.__init__
    opening = (yamux_module.TYPE_DATA, yamux_module.TYPE_WINDOW_UPDATE)

    class Streams(dict):  # type: ignore[type-arg]
        """`Yamux.streams`, which can say once that one id is taken (`refused`)."""

        refused: int | None = None

        def __contains__(self, stream_id: object) -> bool:
            if stream_id == self.refused:
                self.refused = None
                return True
            return super().__contains__(stream_id)

    async def read_exactly(conn: Any, n: int) -> bytes:
        data = await read(conn, n)
        muxer = reading.get()
        if muxer is not None and len(data) == yamux_module.HEADER_SIZE:
            _, kind, flags, stream_id, _ = struct.unpack(yamux_module.YAMUX_HEADER_FORMAT, data)
            if (kind in opening and flags & yamux_module.FLAG_SYN
                    and inbound_streams(muxer) >= MAX_INBOUND_STREAMS):
                log.debug("peer %s opened more than %d streams at once; refusing stream %d",
                          muxer.peer_id, MAX_INBOUND_STREAMS, stream_id)
                muxer.streams.refused = stream_id
        return data

    async def _handle_incoming(self: Any) -> None:
        reading.set(self)           # this task's header reads are this connection's
        await handle_incoming(self)

    async def _read_data_body(self: Any, length: int) -> bytes:
        token = reading.set(None)   # a frame's body, not a header
        try:
            return await read_body(self, length)
        finally:
            reading.reset(token)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.streams = Streams()

    yamux_module.read_exactly = read_exactly
    Yamux.handle_incoming = _handle_incoming            # type: ignore[method-assign]
    Yamux._read_data_body = _read_data_body             # type: ignore[method-assign]
    Yamux.__init__ = __init__                           # type: ignore[method-assign]


# Inbound streams one connection may have negotiating or handled at once. An honest peer uses a
# few (pubsub, sync, blob, identify, Kademlia, a relay's circuits: 16 a reservation); py-libp2p
# had no bound: one connection's 10,000 silent streams cost a node 10 CPU-s, mostly while each
# waited out its 30 s negotiation deadline.
MAX_INBOUND_STREAMS = 64

# Protocols whose handler hands its stream on when it returns (a relayed connection runs on it).
HANDED_ON = ("/libp2p/circuit/",)


def discard_unread(stream: Any) -> None:
    """Drop what `stream` holds unread and whatever its peer sends on it later: this node will
    never read it again (its handler returned, or the node closed it after use). Without this a
    peer could leave a window's worth (256 KiB) in each of any number of finished streams, and
    keep it there: 1,059 answered blob requests each followed by 250 KB grew a node by 253 MB
    (measured). A no-op for streams that are not Yamux's."""
    muxed = getattr(stream, "muxed_stream", stream)
    buffers = getattr(getattr(muxed, "conn", None), "stream_buffers", None)
    buffer = buffers.get(getattr(muxed, "stream_id", None)) if isinstance(buffers, dict) else None
    if buffer is not None and hasattr(buffer, "discarding"):
        buffer.discarding = True
        buffer.clear()


def _patch_foreign_topics() -> None:
    """A pubsub message is taken only if every topic it names is one this node subscribes to.

    py-libp2p 0.8.1 takes a message that names any subscribed topic (`Pubsub._is_subscribed_to_msg`)
    and then keeps state for every topic it names: peer-score counters per topic, fanout and
    publish times for forwarding. A swarm node publishes each record on its network's one topic,
    but a peer may add thousands of others to a valid record's message (the signature covers
    them, so they cannot be stripped): 100 such messages naming 5,000 made-up topics each grew a
    node by 195 MB, kept, and cost it 5.8 CPU-s (measured; tests/network/test_gossip_rpc_rate.py).
    Such a message is now dropped before its signature is checked, as one on no subscribed topic
    already was (no strike: it is not a record this node refused).
    """
    from libp2p.pubsub.pubsub import Pubsub

    def _is_subscribed_to_msg(self: Any, msg: Any) -> bool:
        topics = msg.topicIDs
        return bool(topics) and all(topic in self.topic_ids for topic in topics)

    _is_subscribed_to_msg.__doc__ = Pubsub._is_subscribed_to_msg.__doc__
    Pubsub._is_subscribed_to_msg = _is_subscribed_to_msg   # type: ignore[method-assign]


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
    and reports `(peer id, protocol, error)` to `on_error`, which must not raise. Once the handler
    has returned, the stream's unread bytes are dropped (`discard_unread`; but on a stream handed
    on, HANDED_ON). A connection holding MAX_INBOUND_STREAMS inbound streams (negotiating or
    handled) has its next one reset at once (a Yamux one is refused at its SYN already,
    `_patch_stream_refusal`; this catches other muxers' and any opened while the count was
    lower). Uses the network's public `set_stream_handler`, so nothing in the library is
    replaced.
    """
    network = host.get_network()
    inner: Callable[[Any], Awaitable[None]] = network.common_stream_handler

    async def contained(stream: Any) -> None:
        conn = stream.muxed_conn
        if inbound_streams(conn) >= MAX_INBOUND_STREAMS:
            log.debug("peer %s opened more than %d streams at once; resetting the next",
                      getattr(conn, "peer_id", "?"), MAX_INBOUND_STREAMS)
            await reset(stream)
            return
        _count_inbound(conn, 1)
        try:
            await _handle(inner, stream, on_error)
        finally:
            _count_inbound(conn, -1)

    network.set_stream_handler(contained)


def inbound_streams(conn: Any) -> int:
    """Inbound streams of muxed connection `conn` negotiating or handled now (`contain_streams`)."""
    return getattr(conn, "swarm_inbound_streams", 0)


def _count_inbound(conn: Any, change: int) -> None:
    """Add `change` to `conn`'s inbound streams (kept on the connection: gone with it)."""
    conn.swarm_inbound_streams = inbound_streams(conn) + change


async def _handle(inner: Callable[[Any], Awaitable[None]], stream: Any,
                  on_error: Callable[[str, str, BaseException], None]) -> None:
    """Negotiate and handle one inbound stream (`contain_streams`)."""
    try:
        await inner(stream)
    except Exception as exc:  # noqa: BLE001 - the point: a stream's failure stays its own
        peer = str(getattr(stream.muxed_conn, "peer_id", "?"))
        protocol = str(stream.get_protocol() or "(negotiating)")
        on_error(peer, protocol, exc)
        await reset(stream)
    if not str(stream.get_protocol() or "").startswith(HANDED_ON):
        discard_unread(stream)          # its handler is done: nothing will read it again


async def reset(stream: Any) -> None:
    """Reset `stream`, ignoring every failure (it may already be gone)."""
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001
        pass

