"""Reachability behind NAT: dial-back check, relay reservations, relayed dials, hole punching.

Every node runs py-libp2p 0.8.1's circuit relay v2 STOP side (it accepts relayed connections) and its
DCUtR service (`/libp2p/dcutr`: a relayed connection is upgraded to a direct one by TCP hole punching;
the library drives it by itself every 2 s). Whether this node can be dialed is decided by
`--reachability`: `public` / `private` as told, or `auto` (the default): it asks up to three peers
connected directly to dial its listen port back at the IP they see it from (`/swarm/dialback/1.0.0`,
our own: AutoNAT v1 in 0.8.1 needs 4 confirming peers, more than a small swarm has). One yes makes
it `public`; only noes make it `private`. Peers reached at a LAN address (RFC 1918, CGNAT,
link-local, loopback) are not asked: a neighbour behind the same home router can always dial us
back, which says nothing about the internet (it made two nodes behind one router think themselves
public).

A private node reserves a slot on up to MAX_RELAYS relays among its direct peers (a bootstrap peer,
or any peer whose identify lists the hop protocol, e.g. one learned from the DHT or a `node` record
with the `relay` capability), advertises `/.../p2p/RELAY/p2p-circuit/p2p/SELF` (in `swarm status`
and its `node` record), and asks each relay which other nodes of its swarm network hold slots there
(node/relay.py), dialing them through the relay. Peers are shown as `direct`, `relayed` or
`hole-punched` (a direct connection to a peer first reached through a relay).
"""
from __future__ import annotations

import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any

import trio

from node import relay as relay_mod
from node.framing import ProtocolError, read_frame, write_frame

if TYPE_CHECKING:
    from node.host import NetHost

log = logging.getLogger(__name__)

DIALBACK_PROTOCOL = "/swarm/dialback/1.0.0"
HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop"
MODES = ("auto", "public", "private")
LOOP_S = 3.0
RECHECK_S = 600.0             # how long a dial-back verdict holds
DIALBACK_TIMEOUT_S = 5.0
DIALBACK_PEER_GAP_S = 30.0    # one dial-back per peer per this many seconds (we serve)
MAX_SERVED = 4096             # askers remembered for the gap; past this, those outside it go
DIALBACK_ASK = 3              # peers asked per check
MAX_RELAYS = 2
MAX_KNOWN_RELAYS = 32
MAX_RELAYED_DIALS = 16        # peers we keep connected through relays
RELAYED_DIAL_S = 15.0         # one dial through a relay
# Failed dials per relay per round: a relay naming peers it cannot reach (MAX_LISTED of them,
# fresh each round) would otherwise hold the loop for 64 x 15 s a round.
RELAYED_DIAL_FAILS = 4
MAX_EVER_RELAYED = 4096       # peers remembered as met through a relay; past it, connected ones
RESERVE_REFRESH = 0.5         # renew a reservation after this share of its TTL


class Nat:
    """The reachability side of a NetHost (trio; built and started by NetHost._start)."""

    def __init__(self, net: NetHost, mode: str = "auto", caps: relay_mod.RelayCaps | None = None,
                 hole_punch: bool = True):
        if mode not in MODES:
            raise ValueError(f"reachability must be one of {', '.join(MODES)}, not {mode!r}")
        self.net = net
        self.mode = mode
        self.caps = caps                       # None: not a relay
        self.hole_punch = hole_punch           # False: stay relayed (benchmarks compare both)
        self.verdict = {"public": "public", "private": "private"}.get(mode, "unknown")
        self.checked_at = 0.0
        self.relay: Any = None                 # CappedRelay when --relay
        self.circuit: Any = None               # the STOP side (the relay's own when --relay)
        self.transport: Any = None
        self.dcutr: Any = None
        self.reservations: dict[str, tuple[float, list[str]]] = {}   # relay -> (expiry, addrs)
        self.ever_relayed: set[str] = set()
        self.known_relays: list[str] = []      # from `node` records with the `relay` capability
        self._tried: dict[str, float] = {}
        self._served: dict[str, float] = {}
        self._dialback_limit = trio.CapacityLimiter(4)

    # ---- start ----

    async def start(self, nursery: trio.Nursery) -> None:
        """Register the protocols and start the relay, DCUtR and the reachability loop."""
        from libp2p.custom_types import TProtocol
        from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
        from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
        from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
        from libp2p.relay.circuit_v2.transport import CircuitV2Transport

        host = self.net.host
        if self.caps is not None:
            self.relay = self.circuit = relay_mod.make_relay(host, self.caps)
            host.set_stream_handler(TProtocol(relay_mod.PEERS_PROTOCOL),
                                    lambda s: relay_mod.serve_peers(self.relay, s))
        else:
            self.circuit = CircuitV2Protocol(host, allow_hop=False)
        # STOP only: a relayed dial must not also make a reservation (we reserve ourselves)
        self.transport = CircuitV2Transport(host, self.circuit, RelayConfig(roles=RelayRole.STOP))
        self.dcutr = DCUtRProtocol(host) if self.hole_punch else None
        host.set_stream_handler(TProtocol(DIALBACK_PROTOCOL), self._serve_dialback)
        await nursery.start(self._run_services)
        nursery.start_soon(self._loop)
        nursery.start_soon(self._watch_links)

    async def _run_services(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from libp2p.tools.anyio_service import background_trio_service

        async with background_trio_service(self.circuit):
            if self.dcutr is None:
                task_status.started()
                await trio.sleep_forever()
            async with background_trio_service(self.dcutr):
                task_status.started()
                await trio.sleep_forever()

    # ---- the loop ----

    async def _loop(self) -> None:
        await trio.sleep(1.0)
        while True:
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - one round's failure is not the node's
                log.debug("nat round failed: %r", exc)
            await trio.sleep(LOOP_S)

    async def step(self) -> None:
        """One round: check reachability if due, hold reservations, dial relayed peers."""
        if self.mode == "auto" and time.time() - self.checked_at > (
                RECHECK_S if self.verdict != "unknown" else 0):
            await self.check_reachability()
        if self.verdict == "private":
            await self._seek_relay()
            await self._hold_reservations()
            await self._dial_relayed_peers()

    async def _watch_links(self) -> None:
        """Remember peers met over a relay, so that a later direct link counts as hole-punched."""
        while True:
            links = self._links()
            self.ever_relayed.update(p for p, link in links.items() if link == "relayed")
            if len(self.ever_relayed) > MAX_EVER_RELAYED:       # fresh ids, each relayed once
                self.ever_relayed &= set(links)
            await trio.sleep(0.5)

    # ---- reachability (dial-back) ----

    async def check_reachability(self) -> str:
        """Ask up to DIALBACK_ASK directly connected peers to dial our port back; set verdict."""
        port = self._listen_port()
        peers = [p for p, link in self._links().items()
                 if link != "relayed" and not self._on_lan(p)][:DIALBACK_ASK]
        if port is None or not peers:
            return self.verdict
        answers = []
        for peer_id in peers:
            answer = await self._ask_dialback(peer_id, port)
            if answer is not None:
                answers.append(answer)
        if answers:
            self.verdict = "public" if any(answers) else "private"
            self.checked_at = time.time()
            log.info("reachability: %s (dial-back answers %s)", self.verdict, answers)
        return self.verdict

    def _on_lan(self, peer_id: str) -> bool:
        """Whether every direct connection to `peer_id` is to a LAN address (or there is none)."""
        return all(lan_address(addr) for addr in self._direct_addrs(peer_id))

    def _listen_port(self) -> int | None:
        for addr in self.net.host.get_addrs():
            try:
                return int(addr.value_for_protocol("tcp"))
            except Exception:  # noqa: BLE001 - not a TCP address
                continue
        return None

    async def _ask_dialback(self, peer_id: str, port: int) -> bool | None:
        from libp2p.custom_types import TProtocol

        stream = None
        try:
            with trio.fail_after(DIALBACK_TIMEOUT_S + 5):
                stream = await self.net.host.new_stream(_pid(peer_id), [TProtocol(DIALBACK_PROTOCOL)])
                await write_frame(stream, {"port": port})
                answer = await read_frame(stream, max_bytes=256)
            ok = answer.get("ok") if isinstance(answer, dict) else None
            return ok if isinstance(ok, bool) else None
        except Exception as exc:  # noqa: BLE001 - an old peer, a refusal, a timeout: no answer
            log.debug("dial-back via %s: %r", peer_id, exc)
            return None
        finally:
            if stream is not None:
                await relay_mod._close(stream)

    async def _serve_dialback(self, stream: Any) -> None:
        """Dial the asker's port back at the IP its connection comes from (never another IP),
        once per peer per DIALBACK_PEER_GAP_S; answer whether a TCP connection opened."""
        peer_id = str(stream.muxed_conn.peer_id)
        ip = relay_mod.remote_ip(stream)
        try:
            request = await read_frame(stream, max_bytes=256, timeout=DIALBACK_TIMEOUT_S)
            port = request.get("port") if isinstance(request, dict) else None
            if not isinstance(port, int) or not 0 < port < 65536 or ip == "?":
                raise ProtocolError("dial-back: bad request")
            now = time.monotonic()
            if now - self._served.get(peer_id, -1e9) < DIALBACK_PEER_GAP_S:
                raise ProtocolError("dial-back: asked too often")
            if len(self._served) >= MAX_SERVED:    # peer ids are free: keep only the gap's askers
                self._served = {p: t for p, t in self._served.items()
                                if now - t < DIALBACK_PEER_GAP_S}
            self._served[peer_id] = now
            async with self._dialback_limit:
                ok = await tcp_reachable(ip, port)
            await write_frame(stream, {"ok": ok})
        except ProtocolError as exc:
            log.debug("dial-back for %s: %s", peer_id, exc)
        finally:
            await relay_mod._close(stream)

    # ---- reservations ----

    def relay_candidates(self) -> list[str]:
        """Directly connected peers that speak the relay hop protocol (from identify)."""
        store = self.net.host.get_peerstore()
        out = []
        for peer_id, link in self._links().items():
            try:
                protocols = store.get_protocols(_pid(peer_id))
            except Exception:  # noqa: BLE001 - identify not done yet
                continue
            if link != "relayed" and HOP_PROTOCOL in [str(p) for p in protocols]:
                out.append(peer_id)
        return out

    async def learn_relays(self, addrs: list[str]) -> None:
        """Relay addresses from `node` records (newest first); direct `.../p2p/ID` ones, 32 kept.
        Never a loopback or LAN address: a record is anyone's testimony, and a private node seeks
        its relays across the internet (LAN peers are found by mDNS and need none), so such an
        address would only make every private node dial a port of its own machine or LAN."""
        self.known_relays = [a for a in dict.fromkeys(addrs) if "/p2p/" in a
                             and "/p2p-circuit" not in a and not lan_address(a)][:MAX_KNOWN_RELAYS]

    async def _seek_relay(self) -> None:
        """Without a relay among our peers, dial one relay named in `node` records (one address
        per round, each retried after RECHECK_S: records are not proof that it exists)."""
        if len(self.reservations) >= MAX_RELAYS or self.relay_candidates():
            return
        connected = set(self.net.connected_peers())
        for addr in self.known_relays:
            if addr.rsplit("/p2p/", 1)[-1] in connected or (
                    time.time() - self._tried.get(addr, 0.0) < RECHECK_S):
                continue
            self._tried[addr] = time.time()
            try:
                await self.net.connect(addr)
                log.info("dialed relay %s from a node record", addr)
            except Exception as exc:  # noqa: BLE001 - gone, or never was
                log.debug("relay %s from a node record: %r", addr, exc)
            return

    async def _hold_reservations(self) -> None:
        now = time.time()
        for relay in list(self.reservations):
            if relay not in self.net.connected_peers() or self.reservations[relay][0] < now:
                del self.reservations[relay]
        for relay in self.relay_candidates():
            held = self.reservations.get(relay)
            if held is None and len(self.reservations) >= MAX_RELAYS:
                continue
            if held is not None and held[0] - now > self._refresh_margin(held[0]):
                continue
            await self._reserve(relay)

    def _refresh_margin(self, expiry: float) -> float:
        return RESERVE_REFRESH * max(expiry - time.time(), 60.0)

    async def _reserve(self, relay: str) -> bool:
        from libp2p.custom_types import TProtocol

        pid = _pid(relay)
        stream = await self.net.host.new_stream(pid, [TProtocol(HOP_PROTOCOL)])
        try:
            ok = await self.transport._make_reservation(stream, pid)
        finally:
            await relay_mod._close(stream)
        if not ok:
            log.info("relay %s refused a reservation", relay)
            return False
        expiry = float(self.transport._reservations.get(pid, 0)) or time.time() + 600
        addrs = [f"{a}/p2p/{relay}/p2p-circuit/p2p/{self.net.host.get_id()}"
                 for a in self._direct_addrs(relay)]
        self.reservations[relay] = (expiry, addrs)
        log.info("reserved a slot on relay %s until %s", relay, time.ctime(expiry))
        return True

    def _direct_addrs(self, peer_id: str) -> list[str]:
        """The transport addresses of our direct connections to `peer_id` (no /p2p)."""
        out = []
        for conn in self._conns(peer_id):
            for addr in _transport_addrs(conn):
                if "/p2p-circuit" not in addr:
                    out.append(addr.split("/p2p/", 1)[0])
        return list(dict.fromkeys(out))

    # ---- relayed dials ----

    async def _dial_relayed_peers(self) -> None:
        connected = set(self.net.connected_peers())
        relayed = sum(1 for link in self._links().values() if link == "relayed")
        for relay, (_, addrs) in list(self.reservations.items()):
            try:
                listed = await relay_mod.ask_peers(self.net.host, _pid(relay),
                                                   self.net.config.network)
            except Exception as exc:  # noqa: BLE001 - an old relay or a dropped link
                log.debug("relay %s peers: %r", relay, exc)
                continue
            failed = 0
            for peer_id in listed:
                if (peer_id in connected or relayed >= MAX_RELAYED_DIALS
                        or self.net.peers.is_banned(peer_id) or not addrs):
                    continue
                if await self.dial_via(addrs[0].split("/p2p-circuit", 1)[0], peer_id):
                    connected.add(peer_id)
                    relayed += 1
                elif (failed := failed + 1) >= RELAYED_DIAL_FAILS:
                    break                      # this relay's list waits for the next round

    async def dial_via(self, relay_addr: str, peer_id: str) -> bool:
        """Connect to `peer_id` through the relay at `relay_addr` (`.../p2p/RELAY`)."""
        import multiaddr

        target = multiaddr.Multiaddr(f"{relay_addr}/p2p-circuit/p2p/{peer_id}")
        try:
            with trio.fail_after(RELAYED_DIAL_S):
                await self.transport.dial(target)
            log.info("connected to %s through relay", peer_id)
            return True
        except Exception as exc:  # noqa: BLE001 - the peer left, the relay refused: retried
            log.debug("relayed dial %s failed: %r", target, exc)
            return False

    # ---- links and status ----

    def _conns(self, peer_id: str) -> list[Any]:
        conns = self.net.host.get_network().connections.get(_pid(peer_id)) or []
        return conns if isinstance(conns, list) else [conns]

    def _links(self) -> dict[str, str]:
        network = self.net.host.get_network()
        return {str(pid): classify(conns if isinstance(conns, list) else [conns],
                                   str(pid) in self.ever_relayed)
                for pid, conns in list(network.connections.items()) if conns}

    def met_through_relay(self, peer_id: str) -> bool:
        """Whether `peer_id` was (or is) reached through a relay, whose caps may cut the link."""
        return peer_id in self.ever_relayed

    def links(self) -> dict[str, str]:
        """How each connected peer is reached: direct, relayed or hole-punched."""
        return self._links()

    def relayed_addrs(self) -> list[str]:
        """Our circuit addresses, one per relay address we hold a reservation on."""
        return [a for _, addrs in self.reservations.values() for a in addrs]

    def reachability(self) -> str:
        """One line: direct / relayed via X / hole-punched / unknown."""
        if self.verdict == "public":
            return "direct"
        if self.verdict == "unknown":
            return "unknown"
        punched = sum(1 for link in self._links().values() if link == "hole-punched")
        parts = []
        if self.reservations:
            parts.append("relayed via " + ", ".join("…" + r[-8:] for r in self.reservations))
        if punched:
            parts.append(f"hole-punched to {punched} peer{'s' if punched > 1 else ''}")
        return "; ".join(parts) or "private, no relay yet"

    def info(self) -> dict[str, Any]:
        """What `swarm status` shows about reachability."""
        out: dict[str, Any] = {"reachability": self.reachability(),
                               "nat": {"mode": self.mode, "dialback": self.verdict,
                                       "relays": sorted(self.reservations),
                                       "relayed_addrs": self.relayed_addrs(),
                                       "links": _count(self._links().values())}}
        if self.relay is not None:
            out["relay"] = self.relay.info()
        return out


def classify(conns: list[Any], was_relayed: bool) -> str:
    """direct / relayed / hole-punched, from a peer's connections (a direct connection to a peer
    first met through a relay is hole-punched; a relayed one is kept a while after the upgrade)."""
    relayed = [any("/p2p-circuit" in a for a in _transport_addrs(c)) for c in conns]
    if not all(relayed):
        return "hole-punched" if was_relayed else "direct"
    return "relayed"


def _transport_addrs(conn: Any) -> list[str]:
    try:
        return [str(a) for a in conn.get_transport_addresses() or []]
    except Exception:  # noqa: BLE001 - a closing connection
        return []


LAN_NETS = [ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128")]


def ip_of(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of multiaddr `addr`, None when it starts with no IP protocol; ValueError when that
    protocol holds no IP."""
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return None
    return ipaddress.ip_address(parts[2])


def lan_address(addr: str) -> bool:
    """Whether multiaddr `addr` is at a LAN / loopback IP, one not reachable across the internet
    (False for one without an IP)."""
    try:
        ip = ip_of(addr)
    except ValueError:
        return False
    return ip is not None and any(ip in net for net in LAN_NETS if net.version == ip.version)


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


async def tcp_reachable(ip: str, port: int) -> bool:
    """Whether a TCP connection to ip:port opens within DIALBACK_TIMEOUT_S (then closed)."""
    try:
        with trio.fail_after(DIALBACK_TIMEOUT_S):
            sock = await trio.open_tcp_stream(ip, port)
        await sock.aclose()
        return True
    except (OSError, trio.TooSlowError):
        return False


def _pid(text: str) -> Any:
    from libp2p.peer.id import ID

    return ID.from_base58(text)
