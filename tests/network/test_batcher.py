"""The gossip batcher: a record after a quiet spell is stored at once, a busy node batches."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from memory import synthetic
from memory.keyset import KeySet
from memory.store import Store
from node import batcher
from node.batcher import GossipBatcher


async def _until(condition: Any, timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


def test_a_lone_record_is_ingested_at_once_and_a_burst_waits_for_the_spacing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # one transaction per 60 s at most: only the first record may skip the wait
    monkeypatch.setattr(batcher, "FLUSH_S", 60.0)
    raws = [r.raw for r in synthetic.runs(synthetic.keypairs(3, seed=4), 3, configs=3, seed=4)]
    batches: list[int] = []

    async def main() -> None:
        with Store(":memory:") as store, ThreadPoolExecutor(1) as pool:
            gossip = GossipBatcher(store, pool, lambda per_peer, report: batches.append(
                report.accepted))
            task = asyncio.create_task(gossip.run())
            gossip.add("peer", raws[0])
            await _until(lambda: batches == [1])         # well before FLUSH_S
            gossip.add("peer", raws[1])
            gossip.add("peer", raws[2])
            await asyncio.sleep(0.5)
            assert batches == [1]                        # within FLUSH_S of the last: waits
            await gossip.flush()                         # what the daemon does at shutdown
            assert batches == [1, 2] and store.count() == 3
            task.cancel()

    asyncio.run(main())


def test_many_small_additions_keep_a_keyset_to_a_few_arrays() -> None:
    keys = KeySet(np.arange(10, dtype=np.uint64))
    for k in range(1000, 3000):                          # gossip: one record per batch
        keys.add(np.array([k], dtype=np.uint64))
    assert len(keys._recent) <= 17
    probe = np.array([5, 1500, 2999, 3000, 999], dtype=np.uint64)
    assert keys.contains(probe).tolist() == [True, True, True, False, False]
