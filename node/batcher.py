"""Collect records that arrive by gossip and ingest them in batches, at most one transaction per 100 ms.

DuckDB commits are the expensive part of ingest, so a busy node never stores records one per
transaction: what arrives while a batch is being ingested, or within FLUSH_S of the last one's start,
waits and goes in together. A record that arrives after a quiet spell is ingested at once (waiting
FLUSH_S for company was a fixed 100 ms on every hop of honest gossip). Runs on the asyncio side; the
store call itself runs in a worker thread.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from memory.codec import peek_id
from memory.store import StoreError

log = logging.getLogger(__name__)

FLUSH_S = 0.1                         # at most one ingest transaction per this many seconds
MAX_BATCH = 2000
MAX_PENDING = 50_000                  # beyond this, gossip is dropped (sync repairs it) not buffered


class Arrivals:
    """When each record was stored here (ms since the epoch); bounded, thread-safe. For benchmarks."""

    def __init__(self, size: int = 200_000) -> None:
        self._items: deque[tuple[str, int]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, ids: list[str]) -> None:
        """Note that `ids` were stored just now."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            self._items.extend((i, now) for i in ids)

    def since(self, ms: int) -> list[tuple[str, int]]:
        """Arrivals at or after `ms`."""
        with self._lock:
            return [item for item in self._items if item[1] >= ms]


class GossipBatcher:
    """Buffer (peer, raw) pairs and ingest them in batches; count new records per sending peer."""

    def __init__(self, store: Any, executor: Executor,
                 on_ingested: Callable[[dict[str, int], Any], None]) -> None:
        self.store = store
        self.executor = executor
        self.on_ingested = on_ingested
        self.dropped = 0
        self._pending: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()            # a full batch is waiting
        self._first = asyncio.Event()           # something is waiting
        self._last = -FLUSH_S                   # when the last ingest started (monotonic)

    def add(self, peer_id: str, raw: bytes) -> None:
        """Queue one record (called on the asyncio loop, from the bridge)."""
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append((peer_id, raw))
        self._first.set()
        if len(self._pending) >= MAX_BATCH:
            self._wake.set()

    async def run(self) -> None:
        """Sleep until a record arrives; ingest what waits once FLUSH_S have passed since the last
        ingest started (at once after a quiet spell; sooner if a batch fills); repeat."""
        while True:
            await self._first.wait()              # idle: no timer wakes an idle node
            wait = self._last + FLUSH_S - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            self._first.clear()
            self._wake.clear()
            self._last = time.monotonic()
            try:
                await self.flush()
            except StoreError as exc:       # e.g. a full disk (the daemon stops): one line
                log.warning("gossip ingest failed; its batch is dropped: %s", exc)
            except Exception:  # noqa: BLE001 - a batch the store could not take (a store bug)
                # must cost that batch, never the node's gossip ingest: this task would end.
                log.warning("gossip ingest failed; its batch is dropped", exc_info=True)

    async def flush(self) -> None:
        """Ingest everything queued now, in one transaction."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            raws = [raw for _, raw in batch]
            loop = asyncio.get_running_loop()
            report = await loop.run_in_executor(self.executor, self.store.ingest, raws)
            accepted = set(report.accepted_ids)
            per_peer: dict[str, int] = {}
            for peer_id, raw in batch:
                if peek_id(raw) in accepted:
                    per_peer[peer_id] = per_peer.get(peer_id, 0) + 1
            self.on_ingested(per_peer, report)
