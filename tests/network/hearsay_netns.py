"""A liar across the internet, for tests/network/test_hearsay.py: run inside a fresh network
namespace (`unshare -n`) whose loopback also holds the public 203.0.113.5, where the liar listens.
The victim (a host with the node's peerstore guard and DHT) dials it there, so its connection
comes from an internet IP, never a LAN one. The liar's identify claims loopback and LAN addresses
besides its own, and its Kademlia answers name a peer at such addresses. Prints one JSON line:
what the victim's peerstore keeps of the liar and of the named peer.
"""
from __future__ import annotations

import json
import subprocess
from typing import Any

import multiaddr
import trio

from node import discovery, hearsay
from tests.network.test_hearsay import _fake_peer, _lie

PUBLIC = "203.0.113.5"
CLAIMS = ["/ip4/127.0.0.1/tcp/22", "/ip4/192.168.1.1/tcp/80", "/ip4/10.0.0.1/tcp/445",
          "/ip4/198.51.100.9/tcp/4001"]


async def main() -> dict[str, Any]:
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.kad_dht import PROTOCOL_ID
    from libp2p.peer.peerinfo import info_from_p2p_addr

    victim = new_host()
    liar = new_host(addrs_factory=lambda own: list(own) + [multiaddr.Multiaddr(c) for c in CLAIMS])
    fake = _fake_peer()

    async def handler(stream: Any) -> None:
        await _lie(stream, fake, CLAIMS)

    liar.set_stream_handler(TProtocol(PROTOCOL_ID), handler)
    hearsay.guard(victim)                       # what NetHost.main does with its host
    dht = discovery.make_dht(victim, "hearsay")
    async with victim.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]), \
            liar.run([multiaddr.Multiaddr(f"/ip4/{PUBLIC}/tcp/0")]):
        target = multiaddr.Multiaddr(f"{liar.get_addrs()[0]}/p2p/{liar.get_id()}")
        with trio.fail_after(120):
            await victim.connect(info_from_p2p_addr(target))
            while len(victim.get_peerstore().addrs(liar.get_id())) < 2:   # identify landed
                await trio.sleep(0.05)
            await dht.add_peer(liar.get_id())
            await dht.peer_routing.find_closest_peers_network(b"k" * 32)
        store = victim.get_peerstore()
        named = store.addrs(fake) if fake in store.peer_ids() else []
        return {"liar": [str(a) for a in store.addrs(liar.get_id())],
                "named": [str(a) for a in named]}


def prepare() -> None:
    """Loopback up, with the public address on it too (inside the namespace only)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{PUBLIC}/32", "dev", "lo"], check=True)


if __name__ == "__main__":
    prepare()
    print(json.dumps(trio.run(main)))
