"""Whom this node serves at once (sync pulls; blob transfers, node/blob.py, alike): slots shared
fairly among remote addresses.

A pull holds a slot for as long as its requester reads (a slow requester is no violation, so a
stalled one keeps it for up to 120 s; a blob transfer likewise while its reader keeps up). Peer
ids cost nothing, so a cap per peer id alone let one host hold every slot with a few fresh keys
that open pulls and never read, and honest requesters queued behind them. Here:

- at most `total` pulls are served at once, `per_peer` per peer id and `per_address` per remote
  address (the connection's IP, an IPv6 one by its /64; waiting pulls count): past a cap, the
  stream is reset unread;
- a pull from an address that is being served nothing, arriving while every slot is taken,
  ends the oldest pull of the address holding the most slots (if it holds two or more) and
  takes that slot itself, ahead of the pulls waiting in turn: k addresses holding one slot each
  are what it takes to make a newcomer wait;
- a slot that ends goes to the waiting pull whose address is served least, then whose address
  was last served longest ago (never first), then the oldest: so addresses that hold slots and
  queue more pulls behind them never wait ahead of a newcomer address, nor does the address
  whose slot just ended (8 addresses holding one slot each with one more pull queued behind it
  kept a newcomer unserved for good: their queued pull was always older than its latest try).
"""
from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from node.quota import address_key

SERVE_TOTAL = 8             # pulls served at once, all peers together
SERVE_PER_PEER = 2          # ... per peer id
SERVE_PER_ADDRESS = 4       # ... per remote address, waiting ones included
SERVED_REMEMBERED = 4096    # addresses whose last service end is remembered (oldest forgotten)


@dataclass(eq=False)
class _Serve:
    """One pull being served; `heir`: the newcomer its slot passes to once it ends."""

    scope: trio.CancelScope
    heir: trio.Event | None = None


class ServeSlots:
    """Admission and slots for serving pulls (trio side). A slot a newcomer took from another
    address passes to that newcomer itself, ahead of the pulls waiting in turn."""

    def __init__(self, total: int = SERVE_TOTAL, per_peer: int = SERVE_PER_PEER,
                 per_address: int = SERVE_PER_ADDRESS) -> None:
        self.total, self.per_peer, self.per_address = total, per_peer, per_address
        self.busy = 0                                          # slots held now
        self.preempted = 0
        self._waiting: deque[tuple[trio.Event, str]] = deque()  # waiting pulls, their address
        self._peers: dict[str, int] = {}
        self._addresses: dict[str, int] = {}
        self._active: dict[str, list[_Serve]] = {}             # address -> its serving pulls
        self._served: dict[str, float] = {}                    # address -> its last pull's end

    def admits(self, peer: str, address: str | None) -> bool:
        """Whether a pull from `peer` at remote IP `address` fits the per-peer and per-address
        caps."""
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
            await self._take(key)
            serve = _Serve(trio.CancelScope(deadline=trio.current_time() + seconds))
            self._active.setdefault(key, []).append(serve)
            try:
                with serve.scope:
                    yield serve.scope
            finally:
                self._active[key].remove(serve)
                if not self._active[key]:
                    del self._active[key]
                self._ended(key)
                self._give(serve)
        finally:
            _add(self._peers, peer, -1)
            _add(self._addresses, key, -1)

    async def _take(self, key: str) -> None:
        """Hold a slot: a free one, else the one a newcomer address takes, else the next in turn."""
        if self.busy < self.total:
            self.busy += 1
            return
        turn = trio.Event()
        victim = None if key in self._active else self._victim()
        if victim is not None:
            victim.heir = turn
            victim.scope.cancel()
            self.preempted += 1
        else:
            self._waiting.append((turn, key))
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():                  # handed a slot just as this wait was cancelled
                self._pass_on()
            elif victim is not None and victim.heir is turn:
                victim.heir = None             # its slot goes the usual way
            elif (turn, key) in self._waiting:
                self._waiting.remove((turn, key))
            raise

    def _victim(self) -> _Serve | None:
        """The oldest pull of the address holding the most slots, if it holds two or more
        (pulls already taken by a newcomer not counted)."""
        serving = [[s for s in serves if s.heir is None] for serves in self._active.values()]
        heaviest = max(serving, key=len, default=[])
        return heaviest[0] if len(heaviest) >= 2 else None

    def _give(self, serve: _Serve) -> None:
        if serve.heir is not None:
            serve.heir.set()                   # the slot passes to the newcomer
        else:
            self._pass_on()

    def _ended(self, key: str) -> None:
        """Remember that a pull of address `key` ended now (the newest entry)."""
        self._served.pop(key, None)
        self._served[key] = trio.current_time()
        if len(self._served) > SERVED_REMEMBERED:
            del self._served[next(iter(self._served))]

    def _pass_on(self) -> None:
        """A freed slot goes to the waiting pull whose address is served least, then was served
        longest ago, then the oldest: in arrival order alone, addresses that each hold a slot
        and queue pulls behind it took every freed slot ahead of a newcomer address."""
        if not self._waiting:
            self.busy -= 1
            return
        turn = min(self._waiting, key=lambda waiter: (len(self._active.get(waiter[1], ())),
                                                       self._served.get(waiter[1], float("-inf"))))
        self._waiting.remove(turn)
        turn[0].set()


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n
    if not counts[key]:
        del counts[key]
