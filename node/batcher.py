"""Collect records that arrive by gossip and ingest them in one transaction every ~100 ms.

DuckDB commits are the expensive part of ingest, so records are never stored one per transaction.
Runs on the asyncio side; the store call itself runs in a worker thread.
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

log = logging.getLogger(__name__)

FLUSH_S = 0.1
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
        """Sleep until a record arrives, collect for FLUSH_S (less if a batch fills), ingest; repeat."""
        while True:
            await self._first.wait()              # idle: no timer wakes an idle node
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            except asyncio.TimeoutError:
                pass
            self._first.clear()
            self._wake.clear()
            await self.flush()

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
