"""Sync strikes counted per address as well as per peer id: an address whose peers keep violating
the sync protocol is barred from sync for a while, whatever ids they take.

A peer id costs nothing to make: one that took a fresh id before its tenth strike (node/peers.py
bans at 10 within 60 s) was never banned, and each of its invalid batches cost this node a
batch's signature checks. Here every sync strike (a pull's invalid batch or malformed answer, a
served requester's malformed request: node/host.py) is also counted against the remote IP it came
from (an IPv6 one by its /64, as the quotas key it: `quota.address_key`); ADDRESS_FACTOR times a
peer id's limit within the same window bars that address from sync both ways for BAN_S: no pull
from its peers, their sync streams reset unread. A household behind one NAT shares an IP, so
the bar needs four peers' worth of strikes, and it stops sync only: its honest peers still
gossip, and sync with everyone else.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from node.peers import BAN_S, INVALID_LIMIT, INVALID_WINDOW_S
from node.quota import address_key, lru_get

ADDRESS_FACTOR = 4              # all peer ids at one address together: 4 peers' worth of strikes
MAX_ADDRESSES = 4096            # addresses remembered (least recently struck forgotten first)
UNKNOWN = address_key(None)     # the key of an address not known


@dataclass
class _Address:
    recent: deque[float] = field(default_factory=deque)
    barred_until: float = 0.0


class AddressStrikes:
    """Sync strikes per address (the module docstring); the trio thread's only."""

    def __init__(self, limit: int = ADDRESS_FACTOR * INVALID_LIMIT,
                 window_s: float = INVALID_WINDOW_S, bar_s: float = BAN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.bar_s, self.clock = limit, window_s, bar_s, clock
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def strike(self, address: str | None) -> bool:
        """Count a sync strike from remote IP `address`; True when it bars the address now. An
        unknown address (None, or "?": a relayed link) is not counted: the peers behind every
        relay would share it."""
        key = address_key(address)
        if key == UNKNOWN:
            return False
        now = self.clock()
        state = lru_get(self._addresses, key, _Address, MAX_ADDRESSES)
        while state.recent and now - state.recent[0] >= self.window_s:
            state.recent.popleft()
        state.recent.append(now)
        if len(state.recent) < self.limit or state.barred_until > now:
            return False
        state.barred_until = now + self.bar_s
        state.recent.clear()
        return True

    def barred(self, address: str | None) -> bool:
        """Whether sync with peers at remote IP `address` is barred now."""
        state = self._addresses.get(address_key(address))
        return state is not None and state.barred_until > self.clock()
