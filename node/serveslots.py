"""Whom this node serves at once (sync pulls; blob transfers, node/blob.py, alike): slots shared
fairly among remote addresses.

A pull holds a slot for as long as its requester reads (a slow requester is no violation, so a
stalled one keeps it for minutes; a blob transfer's reader, 30 s a chunk). Peer ids cost nothing, so a cap per peer id alone let one host
hold every slot with a few fresh keys that open pulls and never read, and honest requesters
queued behind them. Here:

- at most `total` pulls are served at once, `per_peer` per peer id and `per_address` per remote
  address (the connection's IP, an IPv6 one by its /64; waiting pulls count): past a cap, the
  stream is reset unread;
- a pull from an address that is being served nothing, arriving while every slot is taken,
  ends the oldest pull of the address holding the most slots (if it holds two or more): k
  addresses holding one slot each are what it takes to make a newcomer wait.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from node.quota import address_key

SERVE_TOTAL = 8             # pulls served at once, all peers together
SERVE_PER_PEER = 2          # ... per peer id
SERVE_PER_ADDRESS = 4       # ... per remote address, waiting ones included


class ServeSlots:
    """Admission and slots for serving pulls (trio side)."""

    def __init__(self, total: int = SERVE_TOTAL, per_peer: int = SERVE_PER_PEER,
                 per_address: int = SERVE_PER_ADDRESS) -> None:
        self.per_peer, self.per_address = per_peer, per_address
        self._limit = trio.CapacityLimiter(total)
        self._peers: dict[str, int] = {}
        self._addresses: dict[str, int] = {}
        self._active: dict[str, list[trio.CancelScope]] = {}     # address -> its serving pulls
        self.preempted = 0

    @property
    def busy(self) -> int:
        """Slots held now."""
        return int(self._limit.borrowed_tokens)

    def admits(self, peer: str, address: str | None) -> bool:
        """Whether a pull from `peer` at remote IP `address` fits the per-peer and per-address caps."""
        return (self._peers.get(peer, 0) < self.per_peer
                and self._addresses.get(address_key(address), 0) < self.per_address)

    @asynccontextmanager
    async def serving(self, peer: str, address: str | None, seconds: float
                      ) -> AsyncIterator[trio.CancelScope]:
        """Wait for a slot, then serve inside the yielded scope: cancelled after `seconds`, or
        when a newcomer address takes the slot (then the body just ends)."""
        key = address_key(address)
        _add(self._peers, peer, 1)
        _add(self._addresses, key, 1)
        try:
            if not self._limit.available_tokens and key not in self._active:
                self._preempt()
            async with self._limit:
                scope = trio.CancelScope(deadline=trio.current_time() + seconds)
                self._active.setdefault(key, []).append(scope)
                try:
                    with scope:
                        yield scope
                finally:
                    self._active[key].remove(scope)
                    if not self._active[key]:
                        del self._active[key]
        finally:
            _add(self._peers, peer, -1)
            _add(self._addresses, key, -1)

    def _preempt(self) -> None:
        """End the oldest pull of the address holding the most slots, if it holds two or more."""
        heaviest = max(self._active.values(), key=len, default=[])
        if len(heaviest) >= 2:
            heaviest[0].cancel()
            self.preempted += 1


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n
    if not counts[key]:
        del counts[key]
