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
import threading
import time
from collections.abc import Callable
from typing import Any

from memory import crypto
from memory.codec import MAX_RECORD_BYTES, Reason, Rejected, now_ms, parse_unsigned
from node.peers import PeerBook
from node.quota import Quotas

log = logging.getLogger(__name__)

GOSSIP_PROTOCOL = "/meshsub/1.1.0"
SUBSCRIPTION_QUEUE = 4096       # libp2p's default 32 drops silently under a burst
OUTBOUND_QUEUE = 1024           # per peer; libp2p's default is 32
OUTBOUND_BYTES = 4 * 1024 * 1024  # per peer: 64 records of the largest size (~6,000 of ~680 B)
# All peers' queues together: past OUTBOUND_TOTAL_BYTES a queue takes an RPC only while it holds
# under OUTBOUND_FLOOR_BYTES (two records of the largest size, ~190 of ~680 B), so the node holds
# at most 32 MiB + 128 KiB per peer (~70 MiB at py-libp2p's 300 connections), not 4 MiB per peer.
OUTBOUND_TOTAL_BYTES = 32 * 1024 * 1024
OUTBOUND_FLOOR_BYTES = 128 * 1024
# While the total is reached, a queue that has sent nothing for STUCK_S (its peer reads nothing)
# loses what it holds and is held to OUTBOUND_FLOOR_BYTES until it sends again: stuck peers no
# longer keep the 32 MiB from an honest peer that is only briefly slow (under STUCK_S).
STUCK_S = 10.0
SHED_EVERY_S = 1.0              # the pool looks for stuck queues at most this often
# The largest RPC read from a peer, and so the largest sent to one: py-libp2p splits outbound RPCs
# at 1 MiB, and an IWANT answered with 17 records of 60 KiB in one RPC made the asking node (same
# code, reading at most 256 KiB) reset the stream and drop the answering peer from its pubsub.
MAX_RPC_BYTES = 4 * MAX_RECORD_BYTES
# Subscription entries one RPC may carry (py-libp2p: 5,000); an RPC with more has them all
# ignored. A node subscribes to one topic; 5,000 entries cost ~15 ms to handle however few changed.
MAX_SUBSCRIPTIONS_PER_RPC = 100
PUBLISH_THRESHOLD = -50.0       # below: a peer's messages are dropped before validation
GOSSIP_THRESHOLD = -20.0        # below: its IHAVE / IWANT ignored (node/patches.py)
GRAYLIST_THRESHOLD = -100.0     # below: its RPCs are ignored altogether
# Peer exchange is never accepted: a PRUNE may carry 16 signed records of peers to dial, each
# made with a free key and naming any address (a fresh peer's score is 0, and py-libp2p accepted
# PX at 0: 16 dials per PRUNE, LAN and loopback included). Nodes never send PX (GossipSub's
# do_px is off); they find each other by bootstrap, saved peers, mDNS and the DHT.
ACCEPT_PX_THRESHOLD = 1e12


def topic_for(network: str) -> str:
    """The GossipSub topic on which a swarm network announces records."""
    return f"/swarm/{network}/records/1"


def message_id(msg: Any) -> bytes:
    """Content address of a pubsub message (the same record is the same message)."""
    return hashlib.blake2b(msg.data, digest_size=20).digest()


def score_params(app_score: Callable[[str], float] | None = None) -> Any:
    """GossipSub v1.1 peer-scoring parameters (docs/PROTOCOL.md, "Hostile peers").

    py-libp2p 0.8.1 decays every counter once per heartbeat (1 s here). Invalid messages (P4, which
    includes records dropped over quota) and this node's own strikes (P6, `app_score(peer_id)`, <= 0)
    pull a peer's score down; below the publish threshold its messages are dropped before
    validation, below the graylist threshold its RPCs are ignored. First deliveries (P2) earn a
    little back. IP colocation (P7) weighs almost nothing: volunteers share home routers and NATs.
    """
    from libp2p.pubsub.score import ScoreParams, TopicScoreParams

    def app(peer: Any) -> float:
        return app_score(str(peer)) if app_score is not None else 0.0

    return ScoreParams(
        p2_first_message_deliveries=TopicScoreParams(weight=0.05, cap=200.0, decay=0.999),
        p4_invalid_messages=TopicScoreParams(weight=0.2, cap=10_000.0, decay=0.99),
        p5_behavior_penalty_weight=1.0, p5_behavior_penalty_decay=0.99,
        p5_behavior_penalty_threshold=10.0,
        p6_appl_slack_weight=1.0, p6_appl_slack_decay=1.0,
        p7_ip_colocation_weight=0.001, p7_ip_colocation_threshold=50,
        publish_threshold=PUBLISH_THRESHOLD, gossip_threshold=GOSSIP_THRESHOLD,
        graylist_threshold=GRAYLIST_THRESHOLD, accept_px_threshold=ACCEPT_PX_THRESHOLD,
        app_specific_score_fn=app)


def make_router_and_pubsub(host: Any, app_score: Callable[[str], float] | None = None
                           ) -> tuple[Any, Any]:
    """A GossipSub router and Pubsub service for `host`, configured as above, with peer scoring
    (`app_score(peer_id)`: this node's own opinion of a peer, <= 0) and node/patches.py applied."""
    import libp2p.pubsub.pubsub as pubsub_module
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    from node import patches

    patches.apply()                 # before Pubsub() registers its stream handler
    # read at subscribe() time; the default 32-slot channel drops messages when we fall behind
    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_QUEUE
    router = GossipSub(
        protocols=[GOSSIP_PROTOCOL], degree=6, degree_low=4, degree_high=12,
        heartbeat_initial_delay=0.1, heartbeat_interval=1, time_to_live=30,
        gossip_window=3, gossip_history=5,
        spam_protection_enabled=False, eclipse_protection_enabled=False,
        score_params=score_params(app_score),
    )
    pubsub = Pubsub(host, router, msg_id_constructor=message_id, cache_size=4096,
                    max_inbound_rpc_size=MAX_RPC_BYTES,
                    max_subscriptions_per_rpc=MAX_SUBSCRIPTIONS_PER_RPC)
    pubsub.peer_queues = _BoundedQueues(_pool_of(pubsub))
    return router, pubsub


def widen_outbound_queues(pubsub: Any) -> int:
    """Give every per-peer outbound queue OUTBOUND_QUEUE slots and OUTBOUND_BYTES, sharing the
    pubsub's OUTBOUND_TOTAL_BYTES; recount that total from the live queues; return the fullest
    queue's length.

    libp2p creates each queue with 32 slots and drops RPCs silently when it is full. Queues of a
    pubsub made by make_router_and_pubsub are bounded as they are made; the watcher in
    node/host.py calls this every second, which also forgets the queues of peers gone.
    """
    pool, queues = _pool_of(pubsub), list(pubsub.peer_queues.values())
    for queue in queues:
        _bound(queue, pool)
    pool.recount([q._queue for q in queues if hasattr(q, "_queue")])
    return max((len(q) for q in queues), default=0)


def queued_bytes(pubsub: Any) -> int:
    """The bytes of RPCs waiting in all per-peer outbound queues."""
    return sum(q._queue.nbytes if isinstance(q._queue, _ByteBounded) else
               sum(r.ByteSize() for r in [*q._queue._priority, *q._queue._non_priority])
               for q in list(pubsub.peer_queues.values()) if hasattr(q, "_queue"))


def _pool_of(pubsub: Any) -> _Pool:
    """The byte total shared by `pubsub`'s outbound queues (made on first use)."""
    pool = getattr(pubsub, "_swarm_outbound_pool", None)
    if pool is None:
        pool = _Pool()
        pubsub._swarm_outbound_pool = pool
    return pool


def _bound(queue: Any, pool: _Pool) -> None:
    """Swap py-libp2p's PriorityQueue inside `queue` (an RpcQueue) for a `_ByteBounded` one, and
    split what it sends at MAX_RPC_BYTES."""
    if getattr(queue, "max_message_size", 0) > MAX_RPC_BYTES:
        queue.max_message_size = MAX_RPC_BYTES
    inner = getattr(queue, "_queue", None)
    if inner is not None and not isinstance(inner, _ByteBounded):
        queue._queue = _bounded_copy(inner, pool)


class _BoundedQueues(dict):  # type: ignore[type-arg]
    """pubsub.peer_queues, whose queues are bounded (`_ByteBounded`) as py-libp2p adds them: a
    fresh peer's queue otherwise takes 32 RPCs of up to 1 MiB until the next watcher pass."""

    def __init__(self, pool: _Pool) -> None:
        super().__init__()
        self.pool = pool

    def __setitem__(self, peer_id: Any, queue: Any) -> None:
        _bound(queue, self.pool)
        if isinstance(getattr(queue, "_queue", None), _ByteBounded):
            queue._queue.peer = str(peer_id)          # named in the log when it is shed
        super().__setitem__(peer_id, queue)


class _Pool:
    """Bytes queued to all peers of one pubsub, against OUTBOUND_TOTAL_BYTES."""

    def __init__(self, max_bytes: int = OUTBOUND_TOTAL_BYTES) -> None:
        self.max_bytes, self.nbytes = max_bytes, 0
        self.queues: list[_ByteBounded] = []
        self.shed_queues = self.shed_bytes = 0        # stuck queues emptied, bytes dropped
        self._looked = float("-inf")

    def full(self, size: int) -> bool:
        """Whether `size` more bytes pass the total; if so, shed stuck queues first (at most
        every SHED_EVERY_S)."""
        if self.nbytes + size <= self.max_bytes:
            return False
        now = time.monotonic()
        if now - self._looked >= SHED_EVERY_S:
            self._looked = now
            self._shed(now)
        return self.nbytes + size > self.max_bytes

    def _shed(self, now: float) -> None:
        """Empty every queue that has sent nothing for STUCK_S and hold it to the floor."""
        stuck = [q for q in self.queues if q.stuck(now)]
        dropped = sum(q.shed() for q in stuck)
        if stuck:
            self.shed_queues, self.shed_bytes = self.shed_queues + len(stuck), \
                self.shed_bytes + dropped
            log.info("gossip: outbound pool full; %d peer queue(s) that sent nothing for %.0f s "
                     "emptied (%d KiB) and held to %d KiB until they send: %s",
                     len(stuck), STUCK_S, dropped // 1024, OUTBOUND_FLOOR_BYTES // 1024,
                     ", ".join(q.peer[-8:] for q in stuck[:5]) + (" ..." if len(stuck) > 5 else ""))

    def recount(self, live: list[Any]) -> None:
        """Count only the queues in `live`: a gone peer's queue no longer counts (nor takes)."""
        keep = {id(q) for q in live}
        for queue in self.queues:
            if id(queue) not in keep:
                queue.pool = None
        self.queues = [q for q in live if isinstance(q, _ByteBounded) and q.pool is self]
        self.nbytes = sum(q.nbytes for q in self.queues)


def _bounded_copy(inner: Any, pool: _Pool | None = None) -> Any:
    """A `_ByteBounded` queue holding what `inner` (py-libp2p's PriorityQueue) holds, in order."""
    bounded = _ByteBounded(pool=pool)
    for rpc in inner._priority:
        bounded.push(rpc, priority=True, force=True)
    for rpc in inner._non_priority:
        bounded.push(rpc, force=True)
    return bounded


class _ByteBounded:
    """py-libp2p 0.8.1's per-peer PriorityQueue (the same push / pop / len) bounded in bytes as well
    as in RPCs: a subscriber that never reads held up to 1024 RPCs of up to 64 KiB each (64 MiB a
    peer); now OUTBOUND_BYTES, past which pushes are refused as when full (py-libp2p drops the
    RPC; sync repairs it for a peer that reads again). One RPC is always admitted to an empty
    queue, whatever its size, unless the `pool` (all queues of the pubsub) is over its total; then
    a queue takes RPCs only up to OUTBOUND_FLOOR_BYTES (so a peer that reads keeps its gossip)."""

    def __init__(self, max_size: int = OUTBOUND_QUEUE, max_bytes: int = OUTBOUND_BYTES,
                 pool: _Pool | None = None) -> None:
        from collections import deque

        self.max_size, self.max_bytes, self.nbytes = max_size, max_bytes, 0
        self.pool, self.peer = pool, "?"
        self.since = time.monotonic()       # the last pop, or when it last turned non-empty
        self.held = False                   # shed: takes only up to the floor until it pops
        if pool is not None:
            pool.queues.append(self)
        self._priority: Any = deque()
        self._non_priority: Any = deque()

    def __len__(self) -> int:
        return len(self._priority) + len(self._non_priority)

    def push(self, rpc: Any, priority: bool = False, force: bool = False) -> bool:
        """Enqueue `rpc` unless full (in RPCs or bytes); False when refused."""
        size = rpc.ByteSize()
        if not force and (self._over_own(size) or self._over_pool(size)):
            return False
        if not len(self):
            self.since = time.monotonic()
        (self._priority if priority else self._non_priority).append((rpc, size))
        self._count(size)
        return True

    def _over_own(self, size: int) -> bool:
        return bool(len(self)) and (len(self) >= self.max_size
                                    or self.nbytes + size > self.max_bytes)

    def _over_pool(self, size: int) -> bool:
        if self.nbytes + size <= OUTBOUND_FLOOR_BYTES:
            return False
        return self.held or (self.pool is not None and self.pool.full(size))

    def stuck(self, now: float) -> bool:
        """Whether it holds more than the floor and has sent nothing for STUCK_S."""
        return (not self.held and self.nbytes > OUTBOUND_FLOOR_BYTES
                and now - self.since >= STUCK_S)

    def shed(self) -> int:
        """Drop every RPC it holds and take only up to the floor until it pops; the bytes."""
        dropped = self.nbytes
        self._priority.clear()
        self._non_priority.clear()
        self._count(-dropped)
        self.held = True
        return dropped

    def _count(self, size: int) -> None:
        self.nbytes += size
        if self.pool is not None:
            self.pool.nbytes += size

    def pop(self) -> Any:
        """The oldest RPC, control first; None when empty."""
        side = self._priority or self._non_priority
        if not side:
            return None
        rpc, size = side.popleft()
        self._count(-size)
        self.since, self.held = time.monotonic(), False
        return rpc


class Tally:
    """Thread-safe counts by reason of records refused before ingest, gossip and sync quota drops
    (drained into `rejections`)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, reason: str, n: int = 1) -> None:
        """Count `n` refusals for `reason`."""
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + n

    def take(self) -> dict[str, int]:
        """The counts since the last call (and reset them)."""
        with self._lock:
            counts, self._counts = self._counts, {}
            return counts


def make_validator(peers: PeerBook, quotas: Quotas, tally: Tally, own_id: str,
                   on_ban: Callable[[str], None],
                   address_of: Callable[[Any], str | None] = lambda peer: None
                   ) -> Callable[[Any, Any], bool]:
    """The topic validator: size, encoding, schema and time of the record (memory.codec), the
    forwarding peer's and its address's quotas (`address_of(forwarder)`: the remote IP of its
    connection, None if unknown) and the claimed author's (node/quota.py `screen`), the record's
    signature, then all of them again, charged (`admit`): a source or an author past its quota
    costs no signature check, and an author's quota is spent by the verified author only.

    A refused message is not forwarded and its reason is counted in `tally`. An invalid one (a
    cheap check or the signature failed) is a strike against the peer that sent it and is charged
    to its and its address's records and bytes buckets (`Quotas.charge_invalid`): a source sending
    invalid records runs out of quota as one sending valid ones does, whatever its peer ids. Over
    quota, every QuotaConfig.strike_every-th refusal is a strike. When a peer passes the strike
    limit, `on_ban(peer_id)` is called (it must not raise). This node's own
    publishes are checked, never rationed: they were stored already.
    """
    def validate(forwarder: Any, msg: Any) -> bool:
        peer_id, size = str(forwarder), len(msg.data)
        own = peer_id == own_id          # checked, never rationed: stored already
        address = None if own else address_of(forwarder)
        try:
            record, payload = parse_unsigned(msg.data, now_ms())
        except Rejected as exc:
            log.debug("invalid gossip from %s: %s", peer_id, exc)
            tally.add(exc.reason.value)
            return _invalid(peer_id, size, address)
        # every bucket before the signature, charging none: a source or a claimed author past
        # its quota costs no verification (only a verified author's records spend its quota)
        if not own and not _admitted(peer_id,
                                     *quotas.screen(peer_id, record.author, size, address)):
            return False
        if not crypto.verify(record.author, payload, record.signature):
            log.debug("invalid gossip from %s: bad signature", peer_id)
            tally.add(Reason.BAD_SIGNATURE.value)
            return _invalid(peer_id, size, address)
        return own or _admitted(peer_id, *quotas.admit(peer_id, record.author, size, address))

    def _invalid(peer_id: str, size: int, address: str | None) -> bool:
        """An invalid record (its reason counted): charged to the forwarder's and its address's
        records and bytes buckets (our own never: never rationed), a strike against the
        forwarder; False."""
        if peer_id != own_id:
            quotas.charge_invalid(peer_id, size, address)
        return _strike(peer_id)

    def _admitted(peer_id: str, reason: str | None, strike: bool) -> bool:
        """True if the quotas let the record through; else its refusal counted (and struck)."""
        if reason is None:
            return True
        tally.add(reason)
        return _strike(peer_id) if strike else False

    def _strike(peer_id: str) -> bool:
        if peers.invalid(peer_id):
            on_ban(peer_id)
        return False

    return validate
