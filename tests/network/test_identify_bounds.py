"""A peer's identify is testimony of bounded size here (node/patches.py, `_patch_identify_bounds`).

py-libp2p kept every protocol (up to its 1 MiB message) and up to 1000 listen addresses a peer's
identify listed, after the peer left: 40 fresh ids listing 15,000 protocols each grew a host by
63 MiB, for good (docs/TRUST.md, "Peers' claims"). Real py-libp2p on loopback: a liar host that
speaks 2,000 made-up protocols and claims 100 addresses identifies to a victim host.
"""
from __future__ import annotations

import multiaddr
import trio

from node import patches

PROTOCOLS, ADDRS = 2000, 100


async def _what_the_victim_keeps() -> tuple[list[str], int]:
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    async def handler(stream: object) -> None:
        pass

    victim = new_host()
    claims = [multiaddr.Multiaddr(f"/ip4/203.0.113.{i % 250}/tcp/{1000 + i}") for i in range(ADDRS)]
    liar = new_host(addrs_factory=lambda own: list(own) + claims)
    for i in range(PROTOCOLS):
        liar.set_stream_handler(TProtocol(f"/made-up/{i:05d}"), handler)
    loopback = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with victim.run(loopback), liar.run(loopback):
        target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
        await liar.connect(info_from_p2p_addr(target))
        store, pid = victim.get_peerstore(), liar.get_id()
        with trio.fail_after(60):                           # until the victim's identify landed
            while not _protocols(store, pid):
                await trio.sleep(0.05)
        return _protocols(store, pid), len(store.addrs(pid))


def _protocols(store: object, pid: object) -> list[str]:
    try:
        return [str(p) for p in store.get_protocols(pid)]     # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - identify not done yet
        return []


def test_a_peer_listing_thousands_of_protocols_and_addresses_leaves_a_few() -> None:
    patches.apply()
    protocols, addrs = trio.run(_what_the_victim_keeps)
    assert len(protocols) <= patches.MAX_IDENTIFY_PROTOCOLS
    assert "/ipfs/id/1.0.0" in protocols                    # the ones this node reads come first
    assert addrs <= patches.MAX_IDENTIFY_ADDRS
