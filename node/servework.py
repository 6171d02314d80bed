"""CPU this node spends answering one remote address's sync requests: a budget in CPU-seconds.

A sync request frame is small and its answer can cost much more: a split answer computes 16
fingerprints and bounds per request (2,048 requests a frame, ~0.07 CPU-s for 43 KB), a sketch a
pass over every key in its range (~15 ms per 150-byte frame at 200,000 keys), and nothing rates
the frames a requester sends (scripts/bench_hostile_cpu.py; docs/TRUST.md, "CPU per byte"): one
requester asking without pause kept a core busy. Here the CPU of the thread that computes each
answer (the same for a 1.0.0 have frame's parse, and for the thread that reads the records an
exchange sends, its store query included: node/syncwire.py `send_records`) is charged to the
requester's address (all peer ids at one IP together, an IPv6 one by its /64: node/quota.py
`address_key`); once the address has spent its burst, the exchange waits before it reads that
requester's next request (and before each record batch it writes), until the budget is back at
zero. So an address gets `WORK_RATE` of a core on average, whatever it asks.
Addresses are not scarce (an IPv6 /48 holds 65,536 /64s), so all of them together have a budget
too, `TOTAL_RATE`: while it is spent, every exchange waits until it is back at zero (the 8 serve
slots bound how many exchanges there are). Whole honest exchanges cost the responder less than
the burst (the costliest measured at 200,000 keys, a requester holding a random half: 1.4 CPU-s,
`--honest`) and do not wait unless the node is under such an attack; a wait is at most
`MAX_WAIT_S`, and all the waits before one frame of ours end within MAX_WAIT_S of the frame the
requester waits from (`Work.mark`), under its 15 s frame deadline; they are this node's own time
(node/serveslots.py does not count them as the requester's stall). DuckDB's own worker threads,
which help a store query, are seen by no thread clock here and are not charged.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import trio

from node.quota import TokenBucket, address_key

WORK_RATE = 0.25          # CPU-seconds per second one address's requests may cost, on average
WORK_BURST = 5.0          # CPU-seconds it may spend before it waits
TOTAL_RATE = 1.0          # ... all addresses together: half of a 2-core laptop
TOTAL_BURST = 10.0
MAX_WAIT_S = 10.0         # one wait at most: under the requester's 15 s frame deadline
MAX_ADDRESSES = 4096      # addresses remembered (the least recently charged forgotten)
T = TypeVar("T")


class ServeWork:
    """The CPU budgets of the addresses this node answers. `spend` may be called from any
    thread; `clock` is monotonic seconds (tests pass their own)."""

    def __init__(self, rate: float = WORK_RATE, burst: float = WORK_BURST,
                 clock: Callable[[], float] = time.monotonic, total_rate: float = TOTAL_RATE,
                 total_burst: float = TOTAL_BURST) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._total = TokenBucket(total_rate, total_burst, clock())
        self._lock = threading.Lock()
        self.waited_s = 0.0                  # all waits so far

    def spend(self, address: str | None, cpu_s: float) -> float:
        """Charge `cpu_s` to `address` (and to all addresses' budget); return the address's
        budget left (below zero: it must wait)."""
        return self._spend(address, cpu_s)[0]

    def _spend(self, address: str | None, cpu_s: float) -> tuple[float, float]:
        """Charge `cpu_s`; the address's budget left and all addresses' budget left."""
        key = address_key(address)
        with self._lock:
            now = self.clock()
            bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_ADDRESSES:
                self._buckets.popitem(last=False)
            bucket.tokens = bucket.refill(now) - cpu_s
            self._total.tokens = self._total.refill(now) - cpu_s
            return bucket.tokens, self._total.tokens

    def left(self, address: str | None) -> float:
        """CPU-seconds `address` may spend now before it waits (the burst if never charged)."""
        return self.spend(address, 0.0)

    def total_left(self) -> float:
        """CPU-seconds all addresses together may spend now before they wait."""
        with self._lock:
            return self._total.refill(self.clock())

    async def wait(self, address: str | None, longest: float = MAX_WAIT_S) -> None:
        """Wait while `address`, or all addresses together, are below zero: until that budget
        is back at zero, or `longest` seconds (at most MAX_WAIT_S)."""
        left, total = self._spend(address, 0.0)
        pause = max(-left / self.rate, -total / self._total.rate)
        if pause > 0 and longest > 0:
            pause = min(pause, longest, MAX_WAIT_S)
            self.waited_s += pause
            await trio.sleep(pause)

    def bound(self, address: str | None) -> Work:
        """This budget as one requester's exchange sees it."""
        return Work(self, address)


class Work:
    """One exchange's requester's budget: `run` a piece of work on a thread, charged; `wait`."""

    def __init__(self, budgets: ServeWork, address: str | None) -> None:
        self.budgets, self.address = budgets, address
        self.anchor: float | None = None      # since when the requester may be waiting on us

    def mark(self) -> None:
        """The requester may wait on a frame of ours from now on (trio time): waits until the
        next `mark` end within MAX_WAIT_S of it, so that all of them together stay under its
        frame deadline."""
        self.anchor = trio.current_time()

    async def run(self, job: Callable[[], T]) -> T:
        """`job()` in a worker thread, its thread's CPU charged to the address (when it raises too)."""
        def timed() -> T:
            started = time.thread_time()
            try:
                return job()
            finally:
                self.charge(time.thread_time() - started)
        return await trio.to_thread.run_sync(timed)

    def charge(self, cpu_s: float) -> None:
        """Charge `cpu_s` to the address (from any thread): work timed by its caller."""
        self.budgets.spend(self.address, cpu_s)

    async def wait(self) -> None:
        """Wait until the address's budget is back at zero (at once if it is not below), or
        until MAX_WAIT_S after the last `mark`."""
        longest = MAX_WAIT_S
        if self.anchor is not None:
            longest = self.anchor + MAX_WAIT_S - trio.current_time()
        await self.budgets.wait(self.address, longest)


async def charged(work: Work | None, job: Callable[[], T]) -> T:
    """`job()` in a worker thread, charged to `work` (None: to no one)."""
    return await (work.run(job) if work is not None else trio.to_thread.run_sync(job))


async def settle(work: Work | None) -> None:
    """Wait while `work`'s address is over its budget (None: never)."""
    if work is not None:
        await work.wait()


def mark(work: Work | None) -> None:
    """A frame read or written: the requester may wait on us from now (`Work.mark`)."""
    if work is not None:
        work.mark()
