"""What a peer's claimed addresses can make this node dial (docs/TRUST.md, "Dialing").

A peer's identify lists whatever addresses it likes (py-libp2p keeps up to 1000); the node keeps a
few in its peer table, saves them in peers.json and redials them after a restart. Real py-libp2p
on loopback: the liar is a host whose identify claims 42 addresses besides its own, among them
the wildcard and a multicast address; the victim is a host with this node's connection notifee
and peer table.
"""
from __future__ import annotations

import multiaddr
import trio

from node.discovery import MAX_CLAIMED_ADDRS, ConnectionEvents, believable_addrs
from node.peers import PeerBook

CLAIMS = (["/ip4/0.0.0.0/tcp/7400", "/ip4/224.0.0.251/tcp/5353"]
          + [f"/ip4/203.0.113.{i}/tcp/80" for i in range(40)])


class _Net:
    """The part of NetHost that ConnectionEvents reads: the peer table (no syncs started)."""

    nursery = None

    def __init__(self) -> None:
        self.peers = PeerBook()


async def _claimed_by_a_liar() -> list[str]:
    from libp2p import new_host
    from libp2p.peer.peerinfo import info_from_p2p_addr

    victim = new_host()
    liar = new_host(addrs_factory=lambda own: list(own) + [multiaddr.Multiaddr(c) for c in CLAIMS])
    net = _Net()
    victim.get_network().register_notifee(ConnectionEvents(net))
    loopback = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with victim.run(loopback), liar.run(loopback):
        target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
        with trio.fail_after(60):
            # identify lands in the peerstore during the first connection; the second reads it
            for _ in range(2):
                await liar.connect(info_from_p2p_addr(target))
                while not (net.peers.snapshot() and net.peers.snapshot()[0]["connected"]):
                    await trio.sleep(0.05)
                if len(net.peers.snapshot()[0]["addrs"]) > 1:
                    break
                await trio.sleep(1.0)                   # identify's round trip, on a slow machine
                await liar.disconnect(victim.get_id())
                while net.peers.snapshot()[0]["connected"]:
                    await trio.sleep(0.05)
        return net.peers.snapshot()[0]["addrs"]


def test_a_peer_claiming_many_addresses_gets_a_few_saved_never_the_wildcard() -> None:
    saved = trio.run(_claimed_by_a_liar)
    assert 1 < len(saved) <= MAX_CLAIMED_ADDRS, saved
    assert saved[0].startswith("/ip4/127.0.0.1/")       # where its connection came from, first
    assert not any(a.startswith(("/ip4/0.0.0.0/", "/ip4/224.")) for a in saved), saved


def test_a_peer_across_the_internet_cannot_point_at_loopback_or_the_lan() -> None:
    claims = [f"/ip4/{ip}/tcp/{port}/p2p/X" for ip, port in [
        ("127.0.0.1", 22), ("192.168.1.1", 80), ("10.0.0.5", 7400), ("169.254.169.254", 80),
        ("198.51.100.7", 7400), ("198.51.100.8", 7400)]] + ["/ip6/::1/tcp/22/p2p/X"]
    assert believable_addrs(claims, "198.51.100.7") == claims[4:6]
    assert believable_addrs(claims, None) == claims[4:6]        # relayed: its IP is unknown
    assert believable_addrs(claims, "192.168.1.9") == claims       # a LAN peer may be on the LAN


def test_relays_from_node_records_are_never_loopback_or_lan() -> None:
    from node.nat import Nat

    relays = ["/ip4/127.0.0.1/tcp/22/p2p/R1", "/ip4/192.168.1.1/tcp/80/p2p/R2",
              "/ip4/203.0.113.1/tcp/7400/p2p/R3"]
    nat = Nat(None)                       # type: ignore[arg-type] - learn_relays needs no host
    trio.run(nat.learn_relays, relays)
    assert nat.known_relays == relays[2:]


def test_mdns_spoofing_many_peers_at_one_address_or_off_the_lan_dials_little() -> None:
    import ipaddress

    from node.discovery import MDNS_REDIAL_S, MdnsGate

    gate = MdnsGate([ipaddress.ip_network("192.168.1.0/24")])
    lan = "/ip4/192.168.1.20/tcp/7400"
    # 200 fresh peer ids announced at one LAN address: one dial, until MDNS_REDIAL_S passed
    assert sum(len(gate.admit([lan], now=1.0 + i / 100)) for i in range(200)) == 1
    assert gate.admit([lan], now=1.0 + MDNS_REDIAL_S) == [lan]
    # an announcement naming an internet victim, another LAN, or loopback: none
    assert gate.admit(["/ip4/198.51.100.7/tcp/80", "/ip4/10.0.0.1/tcp/22",
                       "/ip4/127.0.0.1/tcp/22"], now=2.0) == []


def test_this_machines_loopback_is_never_an_mdns_subnet() -> None:
    from node.discovery import local_subnets

    assert not any(net.is_loopback for net in local_subnets())


async def _kept_after_one_inbound_connection() -> tuple[list[str], str]:
    from libp2p import new_host
    from libp2p.peer.peerinfo import info_from_p2p_addr

    node, caller = new_host(), new_host()
    net = _Net()
    net.pull_from = _no_sync                            # type: ignore[attr-defined]
    node.get_network().register_notifee(ConnectionEvents(net))
    loopback = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with node.run(loopback), caller.run(loopback), trio.open_nursery() as nursery:
        net.nursery = nursery                           # type: ignore[assignment]
        target = multiaddr.Multiaddr(f"{node.get_addrs()[0]}/p2p/{node.get_id()}")
        await caller.connect(info_from_p2p_addr(target))
        with trio.move_on_after(60):                    # generous: identify on a loaded machine
            while not (net.peers.snapshot() and net.peers.snapshot()[0]["addrs"]):
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    return net.peers.snapshot()[0]["addrs"], str(caller.get_addrs()[0])     # with its /p2p/ID


async def _no_sync(peer_id: str) -> None:
    pass


def test_a_peer_that_dials_in_once_has_its_listen_address_kept() -> None:
    """The first machine of a swarm is dialed by every other one and dials none of them: their
    addresses came only from a second connection, so its peers.json stayed empty."""
    kept, listening = trio.run(_kept_after_one_inbound_connection)
    assert listening in kept, (kept, listening)
