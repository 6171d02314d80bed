"""Finding peers: bootstrap addresses and saved peers (redialed with backoff), mDNS on the LAN, and
provider records in the Kademlia DHT under the swarm network's key, so nodes learn of peers beyond the
one they bootstrapped from. Also the connection notifee that starts a sync with every new peer.

Runs on the trio side, inside NetHost.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from node.host import NetHost

log = logging.getLogger(__name__)

REDIAL_MIN_S = 5.0
REDIAL_MAX_S = 300.0
DHT_INTERVAL_S = 15.0
MAX_DHT_DIALS = 20              # connections we seek through the DHT (bootstrap peers come on top)
# Addresses a peer claims for itself (identify) that this node keeps in its peer table, saves in
# peers.json and so redials after a restart. A claim is testimony: py-libp2p keeps up to 1000, and
# any of them may be a third party's (a victim to flood with dials) or this node's own LAN or
# loopback (a port scan of 127.0.0.1:22 or 192.168.x.y by proxy).
MAX_CLAIMED_ADDRS = 8
# Seconds between looks for a peer's identify in the peerstore after it dialed in (~32 s in all)
IDENTIFY_LOOKS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


async def start(net: NetHost, nursery: trio.Nursery) -> None:
    """Start every discovery mechanism that `net.config` enables."""
    nursery.start_soon(_dial_loop, net, list(dict.fromkeys(net.config.bootstrap + net.config.saved)))
    if net.config.mdns:
        await _start_mdns(net, nursery)
    if net.config.dht:
        await nursery.start(_run_dht, net)


# ---- bootstrap and saved peers ----

async def _dial_loop(net: NetHost, addrs: list[str]) -> None:
    """Keep dialing each address until connected; back off exponentially while it fails."""
    due = {addr: 0.0 for addr in addrs}
    delay = {addr: REDIAL_MIN_S for addr in addrs}
    while due:
        now = time.monotonic()
        for addr in [a for a, at in due.items() if at <= now]:
            if _connected_to(net, addr):
                due[addr] = now + REDIAL_MIN_S          # check again soon: it may drop
                continue
            try:
                await net.connect(addr)
                log.info("connected to %s", addr)
                delay[addr] = REDIAL_MIN_S
            except Exception as exc:  # noqa: BLE001 - dial failures are expected
                log.debug("dial %s failed: %r", addr, exc)
                delay[addr] = min(delay[addr] * 2, REDIAL_MAX_S)
            due[addr] = time.monotonic() + delay[addr]
        await trio.sleep(1.0)


def _connected_to(net: NetHost, addr: str) -> bool:
    peer = addr.rsplit("/p2p/", 1)[-1]
    return peer in net.connected_peers()


# ---- mDNS ----

async def _start_mdns(net: NetHost, nursery: trio.Nursery) -> None:
    from libp2p.discovery.events.peerDiscovery import peerDiscovery
    from libp2p.discovery.mdns.mdns import create_mdns_discovery

    fingerprint = mdns_fingerprint(net.config.network)
    try:
        # our own addresses, not the host: py-libp2p would announce the wildcard 0.0.0.0, which a
        # LAN peer dials as itself (and then shuns us as unreachable); loopback is for this machine
        lan = [a for a in map(str, net.host.get_addrs()) if not a.startswith("/ip4/127.")]
        mdns = create_mdns_discovery(net.host.get_network(), listen_addrs=lan,
                                     private_network_fingerprint=fingerprint)
        mdns.start()
    except (OSError, RuntimeError) as exc:
        # no multicast on this machine, or no interface up at all (zeroconf raises RuntimeError:
        # it stopped a node with a traceback in a network namespace without one): carry on
        log.warning("mDNS unavailable: %s", exc)
        return
    send, receive = trio.open_memory_channel[Any](64)
    token = trio.lowlevel.current_trio_token()

    def found(info: Any) -> None:               # zeroconf's thread: hand over, never raise
        try:
            token.run_sync_soon(_offer, send, info)
        except trio.RunFinishedError:
            pass

    peerDiscovery.register_peer_discovered_handler(found)
    nursery.start_soon(_mdns_dialer, net, receive, mdns, found)


def mdns_fingerprint(network: str) -> str:
    """The mDNS service scope of a swarm network: 10 hex digits, so that py-libp2p's service name
    `p2p-<fingerprint>` fits DNS-SD's 15 bytes (16 digits made zeroconf refuse the registration,
    so no node was ever announced on the LAN)."""
    return hashlib.blake2b(network.encode(), digest_size=5).hexdigest()


def _offer(send: Any, info: Any) -> None:
    try:
        send.send_nowait(info)
    except (trio.WouldBlock, trio.ClosedResourceError):
        pass


async def _mdns_dialer(net: NetHost, receive: Any, mdns: Any, handler: Any) -> None:
    from libp2p.discovery.events.peerDiscovery import peerDiscovery

    gate = MdnsGate(local_subnets())
    try:
        async with trio.open_nursery() as nursery:
            limit = trio.CapacityLimiter(MDNS_DIALS)
            async for info in receive:
                if str(info.peer_id) in net.connected_peers() or info.peer_id == net.host.get_id():
                    continue
                addrs = gate.admit([str(a) for a in info.addrs], time.monotonic())
                if addrs:
                    info.addrs[:] = [a for a in info.addrs if str(a) in addrs]
                    token = object()                # back-pressure: the channel drops the rest
                    await limit.acquire_on_behalf_of(token)
                    nursery.start_soon(_mdns_dial, net, info, limit, token)
    finally:
        peerDiscovery.unregister_peer_discovered_handler(handler)
        mdns.stop()


async def _mdns_dial(net: NetHost, info: Any, limit: trio.CapacityLimiter, token: object) -> None:
    try:
        with trio.fail_after(10):
            await net.host.connect(info)
        log.info("mDNS: connected to %s", info.peer_id)
    except Exception as exc:  # noqa: BLE001
        log.debug("mDNS: dial %s failed: %r", info.peer_id, exc)
    finally:
        limit.release_on_behalf_of(token)


# mDNS announcements are anyone's on the LAN, and peer ids are free: a spoofer announcing many
# peers made the node dial each, one at a time (10 s each at a silent address), at any address it
# named, LAN or internet. Now only addresses on this machine's own subnets, each at most once per
# MDNS_REDIAL_S whatever peer id names it, MDNS_DIALS at a time.
MDNS_DIALS = 4
MDNS_REDIAL_S = 60.0
MAX_MDNS_REMEMBERED = 4096


class MdnsGate:
    """Which addresses of an mDNS announcement this node dials (see MDNS_REDIAL_S)."""

    def __init__(self, subnets: list[Any]) -> None:
        self.subnets = subnets
        self.dialed: dict[str, float] = {}          # IP:port -> when last dialed

    def admit(self, addrs: list[str], now: float) -> list[str]:
        """The addresses of `addrs` to dial now (remembered as dialed), [] for none."""
        if len(self.dialed) >= MAX_MDNS_REMEMBERED:
            self.dialed = {k: t for k, t in self.dialed.items() if now - t < MDNS_REDIAL_S}
        out = []
        for addr in addrs:
            parts = addr.split("/")
            if len(parts) < 5 or parts[1] not in ("ip4", "ip6") or not self._local(parts[2]):
                continue
            endpoint = f"{parts[2]}:{parts[4]}"
            if now - self.dialed.get(endpoint, -1e9) >= MDNS_REDIAL_S:
                self.dialed[endpoint] = now
                out.append(addr)
        return out

    def _local(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.subnets if net.version == address.version)


def local_subnets() -> list[Any]:
    """The subnets of this machine's up interfaces, loopback left out (a LAN peer is never at
    this machine's 127.0.0.1; an announcement naming it would make the node dial its own ports)."""
    import psutil

    try:
        up = {name for name, stats in psutil.net_if_stats().items() if stats.isup}
        found = [(a.address.split("%")[0], a.netmask) for name, addrs in psutil.net_if_addrs().items()
                 if name in up for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6)
                 and a.netmask]
    except OSError:
        return []
    out = []
    for address, mask in found:
        try:
            net = ipaddress.ip_interface(f"{address}/{mask}").network
        except ValueError:
            continue
        if not net.is_loopback:
            out.append(net)
    return out


# ---- Kademlia DHT ----

def providers_key(network: str) -> str:
    """The DHT key whose providers are the nodes of swarm network `network`."""
    return hashlib.sha256(f"/swarm/{network}/providers".encode()).hexdigest()


def make_dht(host: Any, network: str) -> Any:
    """A Kademlia DHT in server mode on `host`, whose peers' hearsay (the peers and addresses
    they name) passes node/hearsay.py before it is kept or dialed, and which keeps peers'
    provider records for `network`'s key only."""
    from libp2p.kad_dht.kad_dht import DHTMode, KadDHT, _encode_key

    from node import hearsay

    dht = KadDHT(host, DHTMode.SERVER)
    hearsay.guard_dht(host, dht, {_encode_key(providers_key(network))})
    return dht


async def _run_dht(net: NetHost, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    from libp2p.tools.anyio_service import background_trio_service

    dht = make_dht(net.host, net.config.network)
    net.dht = dht
    key = providers_key(net.config.network)
    async with background_trio_service(dht):
        task_status.started()
        while True:
            await trio.sleep(DHT_INTERVAL_S)
            await _dht_round(net, dht, key)


async def _dht_round(net: NetHost, dht: Any, key: str) -> None:
    """Add connected peers to the routing table, announce ourselves, dial providers we lack
    (hearsay: rationed per target IP, node/dialbudget.py)."""
    from node import hearsay

    try:
        with trio.move_on_after(DHT_INTERVAL_S):
            for pid in net.host.get_connected_peers():
                await dht.add_peer(pid)
            await dht.provide(key)
            providers = await dht.find_providers(key, count=MAX_DHT_DIALS)
            connected = set(net.connected_peers())
            for info in providers:
                if str(info.peer_id) in connected or info.peer_id == net.host.get_id():
                    continue
                if len(connected) >= MAX_DHT_DIALS or net.peers.is_banned(str(info.peer_id)):
                    break
                with trio.move_on_after(10), hearsay.repeating():
                    await net.host.connect(info)
                    connected.add(str(info.peer_id))
                    log.info("DHT: connected to %s", info.peer_id)
    except Exception as exc:  # noqa: BLE001 - DHT queries fail routinely on a small net
        log.debug("DHT round failed: %r", exc)


# ---- connection events ----

class ConnectionEvents:
    """libp2p notifee: track peers, refuse banned ones, and sync with every new connection."""

    def __init__(self, net: NetHost) -> None:
        self.net = net

    async def connected(self, network: Any, conn: Any) -> None:
        pid = conn.muxed_conn.peer_id
        peer_id = str(pid)
        if self.net.peers.is_banned(peer_id):
            self.net.nursery.start_soon(self.net.disconnect, pid)
            return
        addrs = _claimed_addrs(network, conn)
        self.net.peers.seen(peer_id, addrs, connected=True)
        if self.net.nursery is not None:
            self.net.nursery.start_soon(self.net.pull_from, peer_id)
            if not addrs:
                self.net.nursery.start_soon(self._addrs_after_identify, network, conn)

    async def _addrs_after_identify(self, network: Any, conn: Any) -> None:
        """Record the addresses a peer's identify claims once they land in the peerstore.

        A peer that dialed in is unknown to the peerstore when it connects; its identify comes a
        moment later. Read only at connection time, its addresses were kept from its second
        connection on: the first machine of a swarm, which every other one dials, saved none of
        them in peers.json and showed no `addr` in `swarm peers` (found across network namespaces,
        following docs/RUNNING.md). A few looks, further and further apart, then it gives up."""
        pid = conn.muxed_conn.peer_id
        for wait in IDENTIFY_LOOKS_S:
            await trio.sleep(wait)
            if not network.connections.get(pid):
                return                                  # gone: its next connection reads them
            addrs = _claimed_addrs(network, conn)
            if addrs:
                self.net.peers.seen(str(pid), addrs)
                return

    async def disconnected(self, network: Any, conn: Any) -> None:
        peer_id = str(conn.muxed_conn.peer_id)
        if not network.connections.get(conn.muxed_conn.peer_id):
            self.net.peers.seen(peer_id, connected=False)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        pass

    async def closed_stream(self, network: Any, stream: Any) -> None:
        pass

    async def listen(self, network: Any, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        pass


def _claimed_addrs(network: Any, conn: Any) -> list[str] | None:
    """The believable addresses the peerstore holds for `conn`'s peer (None: it holds none)."""
    pid = conn.muxed_conn.peer_id
    if not _has_addrs(network, pid):
        return None
    suffix = f"/p2p/{pid}"                  # identify's addresses may carry it already
    addrs = [str(a) if str(a).endswith(suffix) else f"{a}{suffix}"
             for a in network.peerstore.addrs(pid)]
    return believable_addrs(addrs, _remote_ip(conn)) or None


def _remote_ip(conn: Any) -> str | None:
    try:
        address = conn.muxed_conn.get_remote_address()
    except Exception:  # noqa: BLE001 - relayed or closing connections may not know it
        return None
    return str(address[0]) if address else None


def believable_addrs(claimed: list[str], remote_ip: str | None) -> list[str]:
    """Of the addresses a peer claims for itself, those this node may keep and redial: at most
    MAX_CLAIMED_ADDRS, never an unspecified, multicast or broadcast IP, and a loopback or LAN IP
    only from a peer whose connection comes from one (a peer across the internet cannot be at
    this node's 127.0.0.1 or 192.168.x.y; a relayed one, whose IP is unknown, counts as across).
    Addresses at the connection's own IP come first."""
    from node.nat import lan_address

    local = remote_ip is not None and lan_address(f"/ip{6 if ':' in remote_ip else 4}/{remote_ip}")
    kept = [a for a in dict.fromkeys(claimed)
            if not never_dialed(a) and (local or not lan_address(a))]
    kept.sort(key=lambda a: a.split("/")[2:3] != [remote_ip])       # stable: claim order else
    return kept[:MAX_CLAIMED_ADDRS]


def never_dialed(addr: str) -> bool:
    """Whether multiaddr `addr` is at an IP no peer can be reached at (unspecified, multicast,
    broadcast), or names an IP protocol without an IP."""
    from node.nat import ip_of

    try:
        ip = ip_of(addr)
    except ValueError:
        return True                                 # an IP protocol without an IP
    if ip is None:
        return False
    return ip.is_unspecified or ip.is_multicast or ip == ipaddress.ip_address("255.255.255.255")


def _has_addrs(network: Any, pid: Any) -> bool:
    try:
        return bool(network.peerstore.addrs(pid))
    except Exception:  # noqa: BLE001 - peerstore raises when it knows no address
        return False


# ---- addresses ----

def advertised(candidates: list[Any]) -> list[Any]:
    """The addresses the host tells peers (identify, DHT, hole punching): its listen addresses with
    the wildcard 0.0.0.0 replaced by this machine's IPv4 addresses, best guess first, loopback left
    out unless it is all there is (py-libp2p's `addrs_factory`). A peer told `/ip4/0.0.0.0/...`
    dials itself, and py-libp2p dials only the first TCP address it knows of a peer, so one such
    address made the node unreachable to it."""
    import multiaddr

    out: list[Any] = []
    for addr in candidates:
        text = str(addr)
        if text.startswith("/ip4/0.0.0.0/"):
            out += [multiaddr.Multiaddr(text.replace("/ip4/0.0.0.0/", f"/ip4/{ip}/", 1))
                    for ip in local_ipv4()]
        else:
            out.append(addr)
    # loopback only when there is nothing else: a peer told 127.0.0.1 dials itself too
    remote = [a for a in out if not str(a).startswith("/ip4/127.")]
    return list({str(a): a for a in remote or out}.values())


# never dialed, whoever names them: an old peer's wildcard listen address (it would reach this
# node itself), multicast and broadcast (hearsay from a DHT or gossip peer; node/hearsay.py)
NEVER_DIALED = ["0.0.0.0/32", "::/128", "224.0.0.0/4", "255.255.255.255/32", "ff00::/8"]


def dialable_addrs(host: Any) -> list[str]:
    """The host's addresses as peers are told them (`advertised`: never the wildcard)."""
    return list(dict.fromkeys(str(addr) for addr in host.get_addrs()))


def local_ipv4() -> list[str]:
    """This machine's IPv4 addresses: the default route's first (the one another machine most
    likely reaches), then every other up interface's, loopback last."""
    first: list[str] = []
    try:                                        # the address of the default route, sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            first.append(probe.getsockname()[0])
    except OSError:
        pass                                    # no default route (a LAN without a gateway)
    found = set(_interface_ipv4()) | {"127.0.0.1"}
    rest = sorted(found - set(first), key=lambda ip: (ipaddress.ip_address(ip).is_loopback, ip))
    return first + rest


def _interface_ipv4() -> list[str]:
    """The IPv4 addresses of the interfaces that are up (psutil reads them on every OS)."""
    import psutil

    try:
        up = {name for name, stats in psutil.net_if_stats().items() if stats.isup}
        return [a.address for name, addrs in psutil.net_if_addrs().items() if name in up
                for a in addrs if a.family == socket.AF_INET]
    except OSError:
        return []
