"""The libp2p side of a node (trio): host, gossip, sync protocol, connections, bans.

`NetHost.main` is the trio entry point that node/bridge.py runs in its own thread. Everything else in
this class runs in that thread too; the asyncio side calls in through `TrioThread.call` and receives
gossip through the `on_gossip` callback (posted to its loop, never called directly).
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from node import (discovery, gossip, hearsay, inbound, nat, patches, quiet, quota, serveslots, sync,
                  syncquota)
from node.addrstrikes import AddressStrikes
from node.framing import PeerGone, ProtocolError
from node.peers import PeerBook
from node.relay import _close, connection_ip, remote_ip
from node.serveslots import ServeSlots
from node.servework import ServeWork

log = logging.getLogger(__name__)

SYNC_SESSION_S = 300.0          # a whole pull, however large, must finish within this
DIAL_TIMEOUT_S = 10.0
FOLLOW_UP_S = 0.5             # next periodic pull after one that brought new records
IDLE_BACKOFF = 3.0            # while in sync, pulls back off to this many sync intervals


@dataclass
class NetConfig:
    """How the host runs (the daemon fills in `seed` and `saved` from the home)."""

    seed: bytes = b""
    listen: list[str] = field(default_factory=lambda: ["/ip4/0.0.0.0/tcp/7400"])
    bootstrap: list[str] = field(default_factory=list)
    mdns: bool = True
    dht: bool = True
    network: str = "main"
    sync_interval_s: float = 1.0
    saved: list[str] = field(default_factory=list)     # addresses of peers seen in earlier runs
    gossip_drop: float = 0.0      # test hook: drop this fraction of received gossip before ingest
    reachability: str = "auto"    # auto | public | private (node/nat.py)
    relay: Any = None             # a node/relay.py RelayCaps: serve as a circuit relay (--relay)
    hole_punch: bool = True       # DCUtR; benchmarks turn it off to measure relayed links


class NetHost:
    """A py-libp2p host with GossipSub, the sync protocol, discovery and a ban policy."""

    def __init__(self, config: NetConfig, store: Any, peers: PeerBook,
                 on_gossip: Callable[[str, bytes], None]) -> None:
        self.config = config
        self.store = store
        self.peers = peers
        self.on_gossip = on_gossip
        self.topic = gossip.topic_for(config.network)
        self.host: Any = None
        self.pubsub: Any = None
        self.nursery: trio.Nursery | None = None
        self.dht: Any = None
        self.on_synced: Callable[[list[str]], None] = lambda ids: None   # thread-safe, may not raise
        self.last_sync: float | None = None
        self.queue_high_water = 0
        self.stream_failures = 0      # inbound streams whose handler raised (contained)
        self.quotas = quota.Quotas()
        self.sync_quotas = syncquota.SyncQuotas(self.quotas, syncquota.config_from_environment())
        self.tally = gossip.Tally()   # gossip refused by reason; the daemon moves it to the store
        self._pulling: set[str] = set()
        self.serve_slots = ServeSlots()      # pulls we answer: fair among addresses
        self.serve_work = ServeWork()        # ... and the CPU their answers take, per address
        self.sync_strikes = AddressStrikes()   # sync strikes per address: fresh ids share them
        self.blobs: Any = None                 # node/blob.py: track files by sha256
        # node/nat.py: reachability, relays, hole punching (started with the host)
        self.nat = nat.Nat(self, config.reachability, config.relay, config.hole_punch)

    # ---- lifecycle ----

    async def main(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the host until cancelled; report ready once listening and subscribed."""
        from libp2p.tools.anyio_service import background_trio_service

        self.host = self._make_host()
        hearsay.guard(self.host)
        patches.contain_streams(self.host, self._stream_failed)
        inbound.guard_inbound(self.host)
        router, self.pubsub = gossip.make_router_and_pubsub(self.host, self.peers.app_score)
        self.pubsub.on_invalid_rpc = self._count_invalid      # read by node/patches.py
        self.pubsub.on_score_gate = self._score_gated                # read by node/patches.py
        router.on_gossip_refused = self._gossip_refused       # read by node/gossip_requests.py
        listen = [_multiaddr(addr) for addr in self.config.listen]
        try:
            async with self.host.run(listen_addrs=listen), trio.open_nursery() as nursery:
                self.nursery = nursery
                async with background_trio_service(self.pubsub), background_trio_service(router):
                    await self.pubsub.wait_until_ready()
                    await self._start(nursery)
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self.nursery = None
            if self.blobs is not None:
                self.blobs.close()
            if self.pubsub is not None:
                self.pubsub.seen_messages.stop()   # a plain thread libp2p never stops itself

    def _make_host(self) -> Any:
        from libp2p import new_host
        from libp2p.crypto.ed25519 import create_new_key_pair
        from libp2p.network.config import ConnectionConfig

        quiet.library_logs()            # importing libp2p reset its logger to bypass ours

        # TCP + Noise + Yamux (the defaults once QUIC is off); mDNS is started by node/discovery.py
        # so that it can be scoped to this swarm network
        return new_host(key_pair=create_new_key_pair(self.config.seed), muxer_preference="YAMUX",
                        addrs_factory=discovery.advertised,
                        connection_config=ConnectionConfig(deny_list=discovery.NEVER_DIALED))

    async def _start(self, nursery: trio.Nursery) -> None:
        from libp2p.custom_types import TProtocol

        if not self.quotas.known_authors():
            known = await trio.to_thread.run_sync(quota.load_authors, self.quotas, self.store)
            log.debug("quotas: %d known authors", known)
        validator = gossip.make_validator(self.peers, self.quotas, self.tally,
                                          str(self.host.get_id()), self._ban_soon,
                                          self.address_of)
        self.pubsub.set_topic_validator(self.topic, validator, False)
        subscription = await self.pubsub.subscribe(self.topic)
        for protocol in sync.PROTOCOLS:          # 2.1.0; 2.0.0 and 1.0.0 for earlier versions
            self.host.set_stream_handler(TProtocol(protocol), self._serve_sync)
        from node.blob import BlobService
        self.blobs = BlobService(self.host, self.peers.is_banned)
        self.blobs.register()
        self.host.get_network().register_notifee(discovery.ConnectionEvents(self))
        await self.nat.start(nursery)
        nursery.start_soon(self._read_gossip, subscription)
        nursery.start_soon(self._sync_loop)
        nursery.start_soon(self._watch)
        await discovery.start(self, nursery)

    # ---- gossip ----

    async def publish(self, raw: bytes) -> None:
        """Announce one record on the swarm topic."""
        await self.pubsub.publish(self.topic, raw)

    async def _read_gossip(self, subscription: Any) -> None:
        own = self.host.get_id().to_bytes()
        while True:
            msg = await subscription.get()
            if msg.from_id == own:
                continue                      # our own publish, already stored
            if self.config.gossip_drop and random.random() < self.config.gossip_drop:
                continue                      # test hook: simulated gossip loss
            self.on_gossip(_peer_str(msg.from_id), msg.data)

    async def _watch(self) -> None:
        """Widen and watch pubsub's outbound queues; lift expired bans."""
        while True:
            self.queue_high_water = max(self.queue_high_water,
                                        gossip.widen_outbound_queues(self.pubsub))
            for peer_id in self.peers.expired_bans():
                self.pubsub.remove_from_blacklist(_peer_id(peer_id))
                log.info("ban on %s lifted", peer_id)
            await trio.sleep(1.0)

    def _stream_failed(self, peer_id: str, protocol: str, exc: BaseException) -> None:
        """A protocol handler raised on a stream from `peer_id` (patches.contain_streams).

        No strike: the failure may be this node's own. Counted, and logged at DEBUG."""
        self.stream_failures += 1
        log.debug("%s stream from %s failed: %r", protocol, peer_id, exc)

    def address_of(self, pid: Any) -> str | None:
        """The remote IP of a connection to peer `pid` (a libp2p ID), or None if none is known."""
        return connection_ip(self.host, pid)

    # ---- bans ----

    def _ban_soon(self, peer_id: str) -> None:
        """Called from the validator (sync code): disconnect the peer from a task."""
        if self.nursery is not None:
            self.nursery.start_soon(self.ban, peer_id)

    async def ban(self, peer_id: str) -> None:
        """Drop `peer_id`: no pubsub, no sync, disconnected (until the ban expires)."""
        log.warning("banning %s for %.0f s: too much invalid data", peer_id, self.peers.ban_s)
        pid = _peer_id(peer_id)
        self.pubsub.add_to_blacklist(pid)
        await self.disconnect(pid)

    async def disconnect(self, pid: Any) -> None:
        """Close all connections to `pid`, ignoring failures."""
        try:
            await self.host.disconnect(pid)
        except Exception as exc:  # noqa: BLE001 - already gone is fine
            log.debug("disconnect %s: %r", pid, exc)

    # ---- sync ----

    async def _serve_sync(self, stream: Any) -> None:
        peer_id, address = str(stream.muxed_conn.peer_id), remote_ip(stream)
        if (self.peers.is_banned(peer_id) or self.sync_strikes.barred(address)
                or not self.serve_slots.admits(peer_id, address)):
            await _reset(stream)
            return
        try:
            async with self.serve_slots.serving(peer_id, address, SYNC_SESSION_S,
                                                stall_s=serveslots.STALL_S) as serve:
                sent = await sync.serve(serveslots.Watched(stream, serve), self.store,
                                        self.config.network, self.serve_work.bound(address))
                log.debug("sync: sent %d records to %s", sent, peer_id)
        except ProtocolError as exc:
            log.debug("sync from %s failed: %s", peer_id, exc)
            self._sync_strike(peer_id, address)
            await _reset(stream)            # drop whatever else it sends, unread
        finally:
            await _close(stream)

    async def pull_from(self, peer_id: str) -> sync.PullResult | None:
        """Pull what `peer_id` has and we lack; None if it could not be done (logged, counted)."""
        from libp2p.custom_types import TProtocol

        if (peer_id in self._pulling or self.peers.is_banned(peer_id)
                or self.peers.refuses(peer_id, sync.PROTOCOL_ID)
                or not self.sync_quotas.may_pull(peer_id)
                or self.sync_strikes.barred(self.address_of(_peer_id(peer_id)))):
            return None
        self._pulling.add(peer_id)
        stream, result = None, sync.PullResult()
        ration = syncquota.SyncRation(
            self.sync_quotas, peer_id, lambda drops: self._over_quota(peer_id, drops))
        try:
            with trio.move_on_after(SYNC_SESSION_S):
                with trio.fail_after(DIAL_TIMEOUT_S):
                    stream = await self.host.new_stream(
                        _peer_id(peer_id), [TProtocol(p) for p in sync.PROTOCOLS])
                # fresh peer ids from one address share that address's budget (and pause) too
                if not ration.open(remote_ip(stream)):
                    return None
                await sync.pull(stream, self.store, self.config.network,
                                on_batch=lambda report: self._pulled(peer_id, report),
                                result=result, ration=ration)
                self.peers.synced(peer_id)
                self.last_sync = time.time()
                return result
        except ProtocolError as exc:
            log.debug("sync with %s failed: %s", peer_id, exc)
            if not _no_fault(exc, result, self.nat.met_through_relay(peer_id)):
                self._sync_strike(peer_id, ration.address)
            if stream is not None:
                await _reset(stream)        # drop whatever else it sends, unread
        except Exception as exc:  # noqa: BLE001 - dial/negotiation failures are expected
            log.debug("sync with %s not possible: %r", peer_id, exc)
            if refused_protocol(exc):
                self.peers.refused(peer_id, sync.PROTOCOL_ID)
        finally:
            ration.finish()
            self._pulling.discard(peer_id)
            if stream is not None:
                await _close(stream)
        return None

    def _pulled(self, peer_id: str, report: Any) -> None:
        self.peers.received(peer_id, report.accepted)
        self.on_synced(report.accepted_ids)

    def _over_quota(self, peer_id: str, drops: dict[str, int]) -> None:
        """A pull from `peer_id` dropped records over the sync quotas: counted, never a strike
        (node/syncquota.py: a grown honest memory is past the budget too; the pull pauses)."""
        for reason, n in drops.items():
            self.tally.add(reason, n)
        log.debug("sync from %s: dropped over quota %s", peer_id, drops)

    def _score_gated(self, peer_id: str) -> None:
        """A message from `peer_id` was dropped by the publish score gate: counted, and a strike
        (a peer below the threshold got there by strikes or invalid messages; one that keeps
        sending must still reach the ban, which the gate would otherwise spare it)."""
        self.tally.add("score_gate")
        self._count_invalid(peer_id)

    def _gossip_refused(self, peer_id: str, reason: str, ids: int) -> None:
        """`ids` message ids of `peer_id`'s IHAVE / IWANT were ignored for `reason`: counted in
        `rejections` and in its row of `swarm peers`; not a strike (node/gossip_requests.py)."""
        self.tally.add(reason, ids)
        self.peers.ignored(peer_id, reason, ids)

    def _sync_strike(self, peer_id: str, address: str | None) -> None:
        """A sync violation by `peer_id` at remote IP `address`: a strike against the peer id and
        against the address (node/addrstrikes.py: fresh peer ids from one host share its)."""
        self._count_invalid(peer_id)
        if self.sync_strikes.strike(address):
            log.warning("sync with peers at %s barred for %.0f s: too many sync violations from "
                        "there", address, self.sync_strikes.bar_s)

    def _count_invalid(self, peer_id: str) -> None:
        if self.peers.invalid(peer_id) and self.nursery is not None:
            self.nursery.start_soon(self.ban, peer_id)

    async def _sync_loop(self) -> None:
        """Pull from one random connected peer, repeatedly: repairs lost gossip and partitions.

        Adaptive: right after a pull that brought new records (the swarm is changing) pull again
        soon, so a healed partition converges in seconds; while pulls find us in sync, back off
        from `sync_interval_s` to IDLE_BACKOFF times it, so an idle node costs little CPU."""
        wait = FOLLOW_UP_S        # a node that just started has likely missed something
        while True:
            await trio.sleep(wait * random.uniform(0.7, 1.3))
            connected = [p for p in self.connected_peers()
                         if not self.peers.refuses(p, sync.PROTOCOL_ID)
                         and self.sync_quotas.may_pull(p)]
            if connected:
                result = await self.pull_from(random.choice(connected))
                wait = next_sync_wait(wait, result, self.config.sync_interval_s)

    # ---- queries (called through the bridge) ----

    def connected_peers(self) -> list[str]:
        """Peer ids of the peers connected now."""
        return [str(pid) for pid in self.host.get_connected_peers()]

    async def connect(self, addr: str) -> str:
        """Dial a `/.../p2p/ID` multiaddr; return the peer id. Raises on failure."""
        from libp2p.peer.peerinfo import info_from_p2p_addr

        info = info_from_p2p_addr(_multiaddr(addr))
        if self.peers.is_banned(str(info.peer_id)):
            raise ConnectionRefusedError(f"{info.peer_id} is banned")
        with trio.fail_after(DIAL_TIMEOUT_S):
            await self.host.connect(info)
        return str(info.peer_id)

    async def info(self) -> dict[str, Any]:
        """Peer id, dialable addresses and gossip health, JSON-able."""
        return {"peer_id": str(self.host.get_id()),
                "addrs": discovery.dialable_addrs(self.host) + self.nat.relayed_addrs(),
                "connected": len(self.host.get_connected_peers()),
                "mesh_peers": len(self.pubsub.router.mesh.get(self.topic, ())),
                "outbound_queue_high_water": self.queue_high_water, **self.nat.info()}

    async def links(self) -> dict[str, str]:
        """How each connected peer is reached: direct, relayed or hole-punched."""
        return self.nat.links()


def _multiaddr(text: str) -> Any:
    import multiaddr

    return multiaddr.Multiaddr(text)


def _peer_id(text: str) -> Any:
    from libp2p.peer.id import ID

    return ID.from_base58(text)


def next_sync_wait(wait: float, result: sync.PullResult | None, base: float) -> float:
    """Seconds until the next periodic pull, given the last one's outcome: soon after news,
    backing off only while pulls find the two memories identical."""
    if result is not None and result.accepted > 0:
        return FOLLOW_UP_S
    if result is not None and result.in_sync:
        return min(max(2 * wait, base), IDLE_BACKOFF * base)
    return base           # failed, or the memories differ but the peer had nothing new for us


def refused_protocol(exc: BaseException) -> bool:
    """Whether opening a stream failed because the peer does not speak the protocol (it answered
    multistream-select with `na`), as opposed to a network failure."""
    cause = exc.__cause__ or exc
    return "not supported" in str(cause)


def _peer_str(raw: bytes) -> str:
    from libp2p.peer.id import ID

    return str(ID(raw))


def _no_fault(exc: ProtocolError, result: sync.PullResult, relayed: bool) -> bool:
    """A pull that ended without the responder's fault: the stream gone before it sent a byte
    (an honest node out of serving slots resets unread: node/serveslots.py; peers behind one
    router share an address's slots), or gone on a relayed link (a relay's byte or time cap)."""
    return isinstance(exc, PeerGone) and (relayed or result.bytes_read == 0)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001
        pass
