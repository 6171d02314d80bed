"""The node daemon behind `swarm join`: the memory, the libp2p host and the local API in one process.

The application runs on asyncio (uvloop); the libp2p host runs under trio in its own thread
(node/bridge.py). Gossip arrives through the bridge into a batcher (at most one ingest per ~100 ms);
sync ingests batch by batch on the trio side (the store is thread-safe). SIGINT/SIGTERM/SIGHUP: the services are
stopped (bounded), the current batch is committed, the host stopped, every thread joined, the home
lock released.

Services are work that runs beside the daemon in threads of their own (the research worker: swarm/
starts it through `on_started`, so node/ never imports the roles layer).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from memory.codec import peek_id, sign
from memory.records import Body, NodeBody, Record
from memory.store import DiskFull, IngestReport, Store, StoreError, check_file
from node import machine
from node.api_routes import DEFAULT_QUERY_TIMEOUT_S, routes
from node.api_server import ApiServer
from node.batcher import Arrivals, GossipBatcher
from node.bridge import BridgeClosed, TrioThread, post
from node.home import ensure_home, memory_path
from node.host import NetConfig, NetHost
from node.identity import load_or_create
from node.peers import PeerBook, load_saved_addrs
from node.pidlock import Held, PidLock

log = logging.getLogger(__name__)
T = TypeVar("T")

LOCK_FILE = "daemon.lock"
SAVE_PEERS_S = 30.0
RELAYS_SQL = ("SELECT arg_max(addrs, ts), arg_max(capabilities, ts) FROM nodes GROUP BY author "
              "ORDER BY max(ts) DESC LIMIT 200")        # each author's newest node record
MAX_ANNOUNCE = 1000        # an import larger than this spreads by sync, not a gossip flood
SERVICE_STOP_S = 30.0      # how long shutdown waits for each service's thread
HOST_CHECK_S = 1.0         # how often the libp2p thread is checked (and gossip refusals saved)
IDLE_WORK = "keeping the memory in sync (no work loop)"


class Service(Protocol):
    """Work beside the daemon, in its own thread: stopped (and joined) first at shutdown."""

    def stop(self) -> None:
        """Ask the service to stop soon (from the event loop's thread)."""

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` s for it to end; False when it is still running."""

    def status(self) -> dict[str, Any]:
        """What `swarm status` shows about it (JSON-able)."""


# (the running daemon, its event loop) -> the services it started; called once the node record
# is published, on the event loop's thread.
StartServices = Callable[["Daemon", asyncio.AbstractEventLoop], list[Service]]


class AlreadyRunning(RuntimeError):
    """Another daemon holds this home."""


def already_running(home: Path, pid: object) -> str:
    """The one line for a home that another live node holds."""
    return (f"a swarm node (pid {pid}) is already running on {home}; stop it first, or use "
            "another --home")


@dataclass
class DaemonConfig:
    """Everything `swarm join` passes to the daemon."""

    home: Path
    net: NetConfig = field(default_factory=NetConfig)
    duration_s: float | None = None
    query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S      # the local API's default time limit


class HomeLock:
    """An exclusive flock on HOME/daemon.lock: one daemon per home (node/pidlock.py)."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._lock = PidLock(self.path)

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning naming the holder."""
        try:
            self._lock.acquire()
        except Held as exc:
            raise AlreadyRunning(already_running(self.path.parent, exc.pid)) from None

    def release(self) -> None:
        """Release the lock (the file stays; its lock is what counts)."""
        self._lock.release()


class PublishError(RuntimeError):
    """This node's own record could not be stored."""


class Daemon:
    """One node: run() until stop() (or a signal, or --duration)."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.home = ensure_home(config.home)
        self.peers = PeerBook()
        self.arrivals = Arrivals()
        self.rejected: dict[str, int] = {}
        self.started = time.time()
        self.host_restarts = 0
        self.failure: str | None = None        # why the node stopped on its own (a full disk)
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.services: list[Service] = []
        self._ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="ingest")
        # Everything this node signs goes through publish(), one at a time: two signers reading
        # the same "next seq" would publish two records under one seq, and every peer would then
        # flag this node as equivocating.
        self._publish_lock = asyncio.Lock()
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="api-read")
        self.store: Store
        self.net: NetHost
        self.bridge: TrioThread
        self.api: ApiServer
        self._on_gossip: Callable[[str, bytes], Any]

    def stop(self) -> None:
        """Ask run() to shut down (safe from a signal handler)."""
        self._stop.set()

    def stop_threadsafe(self) -> None:
        """Ask run() to shut down from another thread (a service that finished its work)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self, on_ready: Callable[[dict[str, Any]], None] | None = None,
                  on_started: StartServices | None = None) -> None:
        """Start everything, serve until stopped, then shut down cleanly."""
        # a memory file that cannot be one fails here, before the lock file or a key is made
        check_file(memory_path(self.home))
        lock = HomeLock(self.home)
        lock.acquire()
        try:
            self.keypair = load_or_create(self.home)
            self.store = Store(memory_path(self.home))
            self.store.on_disk_full = self.disk_full
            try:
                await self._serve(on_ready, on_started)
            finally:
                self.store.close()
        finally:
            self._ingest_pool.shutdown()
            self._read_pool.shutdown()
            lock.release()

    async def _serve(self, on_ready: Callable[[dict[str, Any]], None] | None,
                     on_started: StartServices | None) -> None:
        loop = self._loop = asyncio.get_running_loop()
        # SIGHUP: the terminal `swarm join` ran in was closed, the usual way a laptop's node
        # ends; it killed the node mid-batch. Unless ignored (nohup): then it must stay ignored.
        hangup = [] if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN else [signal.SIGHUP]
        for sig in (signal.SIGINT, signal.SIGTERM, *hangup):
            loop.add_signal_handler(sig, self.stop)
        batcher = GossipBatcher(self.store, self._ingest_pool, self._on_gossip_ingested)
        self._on_gossip = lambda peer, raw: post(loop, batcher.add, peer, raw)
        await self._start_host()
        self.api = ApiServer(self.home, routes(self, self.config.query_timeout_s))
        tasks: list[asyncio.Task[Any]] = []
        try:
            # The node record first: once api.json exists, a reader sees this node's own record
            # (a test under load once read 0 records from a freshly serving node).
            await self._publish_node_record()
            url = await self.api.start()
            tasks = [asyncio.create_task(batcher.run()), asyncio.create_task(self._housekeeping()),
                     asyncio.create_task(self._watch_host())]
            if on_started is not None:
                self.services = on_started(self, loop)
            if on_ready is not None:
                on_ready({**await self.bridge.call(self.net.info), "api": url})
            await self._wait_for_stop()
        finally:
            await self._stop_services()                 # they publish through the host: first
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await batcher.flush()                   # the current batch is committed
                await self._save_refusals()
            except StoreError as exc:                   # a full disk: the rest must still stop
                log.warning("last batch not stored: %s", exc)
            await self.api.stop()
            if not await asyncio.to_thread(self.bridge.stop, 15.0):
                log.warning("libp2p thread did not stop in time")
            self._save_peers()

    def disk_full(self, exc: DiskFull) -> None:
        """The disk is full (the memory cannot take another record, or the work its data): stop
        the node with that one line, instead of failing every sync and losing every run trained
        from now on. Safe from any thread."""
        self.stop_on(str(exc))

    def stop_on(self, reason: str) -> None:
        """Stop the node on its own, `reason` (one line) saying why: `swarm join` prints it and
        exits non-zero. The first reason stays. Safe from any thread."""
        if self.failure is None:
            self.failure = reason
        self.stop_threadsafe()

    def _save_peers(self) -> None:
        try:
            self.peers.save(self.home)
        except OSError as exc:          # e.g. a full disk: the last saved list stays
            log.warning("cannot save %s: %s", self.home / "peers.json", exc.strerror or exc)

    async def _stop_services(self) -> None:
        for service in self.services:
            service.stop()
        for service in self.services:
            if not await asyncio.to_thread(service.join, SERVICE_STOP_S):
                log.warning("%s did not stop within %.0f s", type(service).__name__, SERVICE_STOP_S)

    def _net_config(self) -> NetConfig:
        return dataclasses.replace(self.config.net, seed=self.keypair.seed,
                                   saved=load_saved_addrs(self.home))

    async def _wait_for_stop(self) -> None:
        timeout = self.config.duration_s
        try:
            await asyncio.wait_for(self._stop.wait(), timeout)
        except asyncio.TimeoutError:
            log.info("--duration reached; stopping")

    async def _start_host(self, previous: NetHost | None = None) -> None:
        """Build the libp2p host and start its thread (again, after a crash: same store, peers,
        quotas; the memory stays open)."""
        self.net = NetHost(self._net_config(), self.store, self.peers, on_gossip=self._on_gossip)
        if previous is not None:
            self.net.quotas, self.net.tally = previous.quotas, previous.tally
            self.net.sync_quotas = previous.sync_quotas
        self.net.on_synced = self.arrivals.add
        self.bridge = TrioThread(self.net.main, name="libp2p")
        await asyncio.to_thread(self.bridge.start)

    async def _watch_host(self) -> None:
        """Restart the libp2p host if its thread ever ends on its own; count gossip refusals."""
        while True:
            await asyncio.sleep(HOST_CHECK_S)
            await self._save_refusals()
            if self.bridge.alive or self._stop.is_set():
                continue
            log.warning("libp2p thread died (%r); restarting the host", self.bridge.error)
            await asyncio.to_thread(self.bridge.stop, 5.0)
            try:
                await self._start_host(previous=self.net)
                self.host_restarts += 1
            except Exception as exc:  # noqa: BLE001 - try again at the next check
                log.warning("libp2p host restart failed: %r", exc)

    async def _save_refusals(self) -> None:
        counts = self.net.tally.take()
        if counts:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._ingest_pool, self.store.count_rejections, counts)
            self._count_reasons(counts)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(SAVE_PEERS_S)
            try:
                await asyncio.to_thread(self._save_peers)
                await self._learn_relays()
                await self._publish_node_record()   # e.g. a relayed address, once reserved
            except BridgeClosed as exc:
                # the libp2p thread died meanwhile (_watch_host restarts it): the next round
                # republishes the new host's addresses. Letting this end the loop stopped every
                # later round for good.
                log.info("housekeeping round skipped: %s", exc)
            except Exception as exc:  # noqa: BLE001 - an ended task is silent: say it, go on
                log.warning("housekeeping round failed: %r", exc)

    # ---- records ----

    def _on_gossip_ingested(self, per_peer: dict[str, int], report: IngestReport) -> None:
        for peer_id, count in per_peer.items():
            self.peers.received(peer_id, count)
        self._count(report)
        self.arrivals.add(report.accepted_ids)

    def _count(self, report: IngestReport) -> None:
        self._count_reasons(report.rejected)

    def _count_reasons(self, counts: dict[str, int]) -> None:
        for reason, count in counts.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + count

    async def in_reader(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store read in the API's worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, fn, *args)

    async def ingest_and_announce(self, raws: list[bytes]) -> IngestReport:
        """Store records handed to this node (import, own work) and gossip the new ones."""
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(self._ingest_pool, self.store.ingest, raws)
        self._count(report)
        self.arrivals.add(report.accepted_ids)
        if 0 < report.accepted <= MAX_ANNOUNCE:
            accepted = set(report.accepted_ids)
            for raw in raws:
                if peek_id(raw) in accepted:
                    await self.bridge.call(self.net.publish, raw)
        return report

    async def publish(self, kind: str, body: Body) -> Record:
        """Sign `body` as this node's next record, store it and gossip it (the node's only signer)."""
        async with self._publish_lock:
            record = sign(self.keypair, kind, await self._next_seq(), body)
            report = await self.ingest_and_announce([record.raw])
        if report.accepted != 1:
            raise PublishError(f"own {kind} record was not stored: {report.as_dict()}")
        return record

    async def _publish_node_record(self) -> None:
        info = await self.bridge.call(self.net.info)
        body = NodeBody(name=machine.name(), hardware=machine.hardware(),
                        software=machine.software(), addrs=info["addrs"][:32],
                        capabilities=["gossip", "sync"] + (["relay"] if self.config.net.relay else []))
        if machine.unchanged(self.home, body):
            return                                      # republished on change only
        await self.publish("node", body)
        machine.remember(self.home, body)

    async def _learn_relays(self) -> None:
        """Hand the addresses of relays named in `node` records (capability `relay`) to the host:
        a node behind NAT without a relay dials one of them (node/nat.py)."""
        found = await self.in_reader(self.store.query, RELAYS_SQL)
        await self.bridge.call(self.net.nat.learn_relays, relay_addrs(found.rows))

    async def _next_seq(self) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._ingest_pool, self.store.next_seq,
                                          self.keypair.peer_id)

    # ---- status ----

    async def peer_table(self) -> list[dict[str, Any]]:
        """What `swarm peers` shows: the peer table, with how each connected peer is linked."""
        links = await self.bridge.call(self.net.links)
        return [{**p, "link": links.get(p["peer_id"], "")} for p in self.peers.snapshot()]

    async def status(self) -> dict[str, Any]:
        """What `swarm status` shows."""
        info = await self.bridge.call(self.net.info)
        count = await self.in_reader(self.store.query, "SELECT count(*) FROM records")
        digest = await self.in_reader(self.store.digest)
        last = self.net.last_sync
        return {
            **info, "network": self.config.net.network, "api": f"http://127.0.0.1:{self.api.port}",
            "pid": os.getpid(), "uptime_s": round(time.time() - self.started, 1),
            "peers": self.peers.connected_count(), "known_peers": len(self.peers.snapshot()),
            "records": count.rows[0][0], "digest": digest.hex(),
            "last_sync": None if last is None else int(last * 1000),     # epoch ms, as in --json
            "current_work": [s.status() for s in self.services] or IDLE_WORK,
            "rejected": {"invalid_from_peers": sum(p["rejected"] for p in self.peers.snapshot()),
                         **self.rejected},
            "host_restarts": self.host_restarts, "stream_failures": self.net.stream_failures,
        }


def relay_addrs(rows: list[Any]) -> list[str]:
    """The addresses of the nodes whose newest record says `relay` (rows of RELAYS_SQL)."""
    return [a for row in rows if "relay" in _json_list(row[1]) for a in _json_list(row[0])]


def _json_list(text: Any) -> list[str]:
    """A JSON list of strings from a query cell ([] for anything else)."""
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
