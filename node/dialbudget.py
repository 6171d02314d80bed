"""Dials to addresses that only hearsay names: a budget per target IP, whoever named them.

A DHT peer may name any public address for any peer id (node/hearsay.py keeps at most 8 per
naming, only believable ones), and py-libp2p's lookups and auto-connector dial them: a set of
peers naming a third party's address under many fresh ids had this node dial it a few times per
cycle each, a connection flood by proxy. So a dial to a public address is rationed unless the
(peer, address) pair was claimed: written into the peerstore by this node's own code (bootstrap,
saved peers, `swarm peers --connect`, node records' relays) or by the peer itself outside a DHT
exchange (identify, a signed peer record, DCUtR). Everything else (what DHT messages name, even
a peer about itself, and this node's own dials of DHT providers, `hearsay.repeating`) is dialed
at most HEARSAY_DIALS_PER_IP times per WINDOW_S per target IP (or DNS name), across all namers
and peer ids; past that the dial fails at once, as an unreachable one would. Loopback and LAN
targets are not rationed: hearsay names them only when the namer is itself on the LAN or
loopback (`discovery.believable_addrs`).
"""
from __future__ import annotations

import functools
import time
from collections import OrderedDict
from typing import Any, Callable

from node.nat import ip_of, lan_address

HEARSAY_DIALS_PER_IP = 4
WINDOW_S = 60.0
MAX_CLAIMED = 65536     # (peer, address) pairs remembered as claimed: more than the peerstore
                        # holds of claims (1,000 peers + those connected, 32 addresses each)
MAX_TARGETS = 4096      # target IPs whose recent dials are counted


class DialBudget:
    """The (peer, address) pairs claimed by their owner or written by this node, and the dials
    spent on each target IP for all other (hearsay) addresses."""

    def __init__(self, per_ip: int = HEARSAY_DIALS_PER_IP, window: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_ip, self.window, self.clock = per_ip, window, clock
        self.refused = 0
        self._claimed: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._dials: OrderedDict[str, list[float]] = OrderedDict()

    def claimed(self, peer_id: str, addrs: list[str]) -> None:
        """`peer_id` claimed `addrs` itself, or this node's own code added them: not hearsay.
        Past MAX_CLAIMED pairs the oldest is forgotten (its address is then rationed: a flood of
        claims can slow this node's dials, never free a victim's address from its budget)."""
        for addr in addrs:
            key = (peer_id, _bare(addr))
            self._claimed[key] = None
            self._claimed.move_to_end(key)
            if len(self._claimed) > MAX_CLAIMED:
                self._claimed.popitem(last=False)

    def allow(self, peer_id: str, addr: str) -> bool:
        """Whether this node may dial `addr` for `peer_id` now (a rationed dial allowed is
        counted)."""
        if (peer_id, _bare(addr)) in self._claimed or lan_address(addr):
            return True
        target, now = _target(addr), self.clock()
        recent = [t for t in self._dials.pop(target, []) if now - t < self.window]
        allowed = len(recent) < self.per_ip
        if allowed:
            recent.append(now)
        else:
            self.refused += 1
        self._dials[target] = recent
        if len(self._dials) > MAX_TARGETS:
            self._dials.popitem(last=False)
        return allowed


def _bare(addr: str) -> str:
    """`addr` without a trailing `/p2p/ID` (the peerstore keeps it either way)."""
    head, sep, tail = addr.rpartition("/p2p/")
    return head if sep and "/" not in tail else addr


def _target(addr: str) -> str:
    """The IP (or DNS name) a dial of multiaddr `addr` reaches first."""
    try:
        ip = ip_of(addr)
    except ValueError:
        ip = None
    parts = addr.split("/")
    return str(ip) if ip is not None else (parts[2] if len(parts) > 2 else addr)


def ration_dials(host: Any, budget: DialBudget) -> None:
    """Make every dial attempt of `host`'s swarm ask `budget` first (a refused one raises
    SwarmException, as a failed dial does)."""
    from libp2p.network.exceptions import SwarmException

    network = host.get_network()
    original = network._dial_addr_single_attempt

    @functools.wraps(original)
    async def attempt(addr: Any, peer_id: Any, *args: Any, **kwargs: Any) -> Any:
        if not budget.allow(str(peer_id), str(addr)):
            raise SwarmException(f"hearsay dial budget of {_target(str(addr))} spent")
        return await original(addr, peer_id, *args, **kwargs)

    network._dial_addr_single_attempt = attempt
