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
  kept a newcomer unserved for good: their queued pull was always older than its latest try);
- a pull that opts in (`stall_s`: sync pulls, node/host.py) and whose requester is stalled, that
  is, this node has spent `stall_s` waiting on it (for its next request, or for room to write)
  while it moved under STALL_BYTES, ends when a pull from an address being served nothing waits,
  and its slot passes to that pull (the one stalled longest first; it ends quietly, as a stall
  at the requester timeout did). Time this node spends on its own work is not counted, nor is a
  requester that moves STALL_BYTES: k addresses each holding one slot idle make a newcomer wait
  `stall_s` at most, no longer until their pulls reach the requester timeout (120 s).
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from node.quota import address_key

SERVE_TOTAL = 8             # pulls served at once, all peers together
SERVE_PER_PEER = 2          # ... per peer id
SERVE_PER_ADDRESS = 4       # ... per remote address, waiting ones included
SERVED_REMEMBERED = 4096    # addresses whose last service end is remembered (oldest forgotten)
# A requester this node has waited on for STALL_S while it moved under STALL_BYTES is stalled
# (docs/PROTOCOL.md, sync limits, "a stalled requester": why a slow honest requester is not).
STALL_S = 45.0
STALL_BYTES = 16 * 1024
STALL_POLL_S = 1.0          # how often a waiting newcomer looks for a stalled pull


@dataclass(eq=False)
class Serve:
    """One pull being served: `scope` (the body runs inside it), `heir` (the newcomer its slot
    passes to once it ends), and how long this node has waited on its requester since it last
    moved STALL_BYTES (`waiting` / `moved`, reported by `Watched`)."""

    scope: trio.CancelScope
    stall_s: float | None = None            # None: never ended as stalled
    heir: trio.Event | None = None
    _waited: float = 0.0                    # seconds waited on the requester since the mark
    _moved: int = 0                         # bytes moved since the mark
    _since: float | None = None             # when the wait in progress began

    def waiting(self) -> None:
        """This node starts waiting on the requester (a read or a write)."""
        self._since = trio.current_time()

    def moved(self, nbytes: int) -> None:
        """The wait ends with `nbytes` moved; STALL_BYTES since the mark make a new mark."""
        if self._since is not None:
            self._waited += trio.current_time() - self._since
            self._since = None
        self._moved += nbytes
        if self._moved >= STALL_BYTES:
            self._waited, self._moved = 0.0, 0

    def stalled_for(self, now: float) -> float:
        """Seconds waited on the requester since the mark (0 if it never counts as stalled)."""
        if self.stall_s is None or self.heir is not None:
            return 0.0
        return self._waited + (now - self._since if self._since is not None else 0.0)


class Watched:
    """A stream whose reads and writes report to a `Serve` (writes in pieces of WRITE_PIECE,
    so that a slow reader shows progress as it reads); everything else is the stream's."""

    WRITE_PIECE = 64 * 1024

    def __init__(self, stream: Any, serve: Serve) -> None:
        self._stream, self._serve = stream, serve

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        """The stream's read, timed as a wait on the requester."""
        self._serve.waiting()
        data = b""
        try:
            data = await self._stream.read(n)
        finally:
            self._serve.moved(len(data))
        return data

    async def write(self, data: bytes) -> None:
        """The stream's write, in pieces, each timed as a wait on the requester."""
        view = memoryview(data)
        for at in range(0, len(data), self.WRITE_PIECE):
            piece = bytes(view[at:at + self.WRITE_PIECE])
            self._serve.waiting()
            moved = 0
            try:
                await self._stream.write(piece)
                moved = len(piece)
            finally:
                self._serve.moved(moved)


class ServeSlots:
    """Admission and slots for serving pulls (trio side). A slot a newcomer took from another
    address passes to that newcomer itself, ahead of the pulls waiting in turn."""

    def __init__(self, total: int = SERVE_TOTAL, per_peer: int = SERVE_PER_PEER,
                 per_address: int = SERVE_PER_ADDRESS) -> None:
        self.total, self.per_peer, self.per_address = total, per_peer, per_address
        self.busy = 0                                          # slots held now
        self.preempted = 0
        self.cut_stalled = 0                                   # of those, stalled pulls
        self._waiting: deque[tuple[trio.Event, str]] = deque()  # waiting pulls, their address
        self._peers: dict[str, int] = {}
        self._addresses: dict[str, int] = {}
        self._active: dict[str, list[Serve]] = {}             # address -> its serving pulls
        self._served: dict[str, float] = {}                    # address -> its last pull's end

    def admits(self, peer: str, address: str | None) -> bool:
        """Whether a pull from `peer` at remote IP `address` fits the per-peer and per-address
        caps."""
        return (self._peers.get(peer, 0) < self.per_peer
                and self._addresses.get(address_key(address), 0) < self.per_address)

    @asynccontextmanager
    async def serving(self, peer: str, address: str | None, seconds: float,
                      stall_s: float | None = None) -> AsyncIterator[Serve]:
        """Wait for a slot, then serve inside the yielded Serve's scope: cancelled after
        `seconds`, or when a newcomer address takes the slot (then the body just ends). With
        `stall_s`, report the requester's reads and writes to the Serve (through `Watched`): a
        requester stalled `stall_s` gives its slot to a waiting newcomer address."""
        key = address_key(address)
        _add(self._peers, peer, 1)
        _add(self._addresses, key, 1)
        try:
            await self._take(key)
            serve = Serve(trio.CancelScope(deadline=trio.current_time() + seconds), stall_s)
            self._active.setdefault(key, []).append(serve)
            try:
                with serve.scope:
                    yield serve
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
        """Hold a slot: a free one, else the one a newcomer address takes, else the next in turn
        (a newcomer address that waits takes a stalled pull's slot once there is one)."""
        if self.busy < self.total:
            self.busy += 1
            return
        turn = trio.Event()
        victim = None if key in self._active else self._victim()
        if victim is not None:
            self._hand(victim, turn)
        else:
            self._waiting.append((turn, key))
        try:
            while not turn.is_set():
                if victim is None and key not in self._active:
                    victim = self._stalled()
                    if victim is not None:
                        self._waiting.remove((turn, key))
                        self._hand(victim, turn)
                        self.cut_stalled += 1
                with trio.move_on_after(STALL_POLL_S if victim is None else math.inf):
                    await turn.wait()
        except BaseException:
            if turn.is_set():                  # handed a slot just as this wait was cancelled
                self._pass_on()
            elif victim is not None and victim.heir is turn:
                victim.heir = None             # its slot goes the usual way
            elif (turn, key) in self._waiting:
                self._waiting.remove((turn, key))
            raise

    def _hand(self, victim: Serve, turn: trio.Event) -> None:
        """End `victim`; its slot passes to whoever waits on `turn`."""
        victim.heir = turn
        victim.scope.cancel()
        self.preempted += 1

    def _stalled(self) -> Serve | None:
        """The pull whose requester has been stalled longest, if one has been for its stall_s."""
        now = trio.current_time()
        serves = [s for serves in self._active.values() for s in serves]
        stalled = [s for s in serves if s.stall_s is not None and s.stalled_for(now) >= s.stall_s]
        return max(stalled, key=lambda s: s.stalled_for(now), default=None)

    def _victim(self) -> Serve | None:
        """The oldest pull of the address holding the most slots, if it holds two or more
        (pulls already taken by a newcomer not counted)."""
        serving = [[s for s in serves if s.heir is None] for serves in self._active.values()]
        heaviest = max(serving, key=len, default=[])
        return heaviest[0] if len(heaviest) >= 2 else None

    def _give(self, serve: Serve) -> None:
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
