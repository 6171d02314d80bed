"""Addresses only hearsay names are dialed within a budget per target IP (node/dialbudget.py).

A real py-libp2p host with this node's peerstore guard (node/hearsay.py); the DHT peer speaking
is set as the code that handles its answers sets it. The dial itself is not under test and must
not leave loopback: the swarm's single dial attempt is replaced by a recorder before the guard
wraps it, so what is counted is which dials the guard lets through.
"""
from __future__ import annotations

from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID

from node import hearsay
from node.dialbudget import HEARSAY_DIALS_PER_IP

VICTIM = "/ip4/203.0.113.7/tcp/4001"          # a third party's public address (TEST-NET-3)


def _fresh_id() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def _guarded() -> tuple[Any, list[str]]:
    host, dialed = new_host(), []

    async def recorder(addr: Any, peer_id: Any, *args: Any, **kwargs: Any) -> None:
        dialed.append(f"{addr} {peer_id}")

    host.get_network()._dial_addr_single_attempt = recorder
    hearsay.guard(host)
    return host, dialed


async def _dial_each(host: Any, peers: list[ID], addr: str) -> int:
    refused = 0
    for peer in peers:
        try:
            await host.get_network()._dial_addr_single_attempt(multiaddr.Multiaddr(addr), peer)
        except SwarmException:
            refused += 1
    return refused


def test_fifty_ids_named_at_one_third_party_address_are_dialed_within_its_budget() -> None:
    """A DHT liar names 50 fresh ids at a third party's address; before, the node dialed it for
    each of them (the auto-connector and lookups, a few a cycle); now HEARSAY_DIALS_PER_IP."""
    host, dialed = _guarded()
    named = [_fresh_id() for _ in range(50)]
    token = hearsay._NAMER.set(_fresh_id())              # a DHT peer's answer is being read
    try:
        for peer in named:
            host.get_peerstore().add_addrs(peer, [multiaddr.Multiaddr(VICTIM)], 3600)
    finally:
        hearsay._NAMER.reset(token)
    assert all(host.get_peerstore().addrs(p) for p in named)   # kept: it may be a real peer
    refused = trio.run(_dial_each, host, named, VICTIM)
    assert len(dialed) == HEARSAY_DIALS_PER_IP and refused == 50 - HEARSAY_DIALS_PER_IP


@pytest.mark.parametrize("addr", [VICTIM, "/ip4/127.0.0.1/tcp/4001"])
def test_own_claims_and_loopback_are_never_rationed(addr: str) -> None:
    """A peer's own claim (identify: no DHT peer speaking) and this node's own writes are dialed
    whatever the count, at a public address or on loopback."""
    host, dialed = _guarded()
    peers = [_fresh_id() for _ in range(10)]
    for peer in peers:
        host.get_peerstore().add_addrs(peer, [multiaddr.Multiaddr(addr)], 3600)
    assert trio.run(_dial_each, host, peers, addr) == 0 and len(dialed) == 10


def test_dht_providers_this_node_dials_stay_rationed() -> None:
    """Before, the node's own connect to a DHT provider wrote its addresses as its own (a claim):
    a provider record naming a third party was dialed every round. Repeated hearsay stays
    hearsay."""
    host, dialed = _guarded()
    peers = [_fresh_id() for _ in range(10)]
    with hearsay.repeating():
        for peer in peers:
            host.get_peerstore().add_addrs(peer, [multiaddr.Multiaddr(VICTIM)], 3600)
    assert trio.run(_dial_each, host, peers, VICTIM) == 10 - HEARSAY_DIALS_PER_IP
