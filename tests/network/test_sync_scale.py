"""Sync at the size that broke `/swarm/sync/1.0.0`: 20,000 authors, two memories 1% apart."""
from __future__ import annotations

import shutil
from pathlib import Path

import msgpack

from memory import codec
from memory.crypto import Keypair
from memory.records import HypothesisBody
from memory.store import Store
from node.framing import MAX_FRAME_BYTES
from node.home import memory_path
from tests.network.launcher import launch, wait_for

AUTHORS = 20_000


def _records() -> list[bytes]:
    """One small signed record by each of 20,000 authors (deterministic keys)."""
    body = HypothesisBody(track="net-test", diff={"depth": 3}, rationale="scale", source="human")
    stamp = codec.now_ms() - AUTHORS
    return [codec.sign(Keypair(i.to_bytes(32, "big")), "hypothesis", 1, body, ts=stamp + i).raw
            for i in range(1, AUTHORS + 1)]


def _fill(homes: list[Path], shared: list[bytes], own: list[list[bytes]]) -> int:
    """Memories for `homes`: `shared` in all (stored once, the file copied), then each its `own`.
    Returns the size of the first one's 1.0.0 `have` frame."""
    with Store(memory_path(homes[0])) as store:
        store.ingest(shared)
    for home in homes[1:]:
        memory_path(home).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(memory_path(homes[0]), memory_path(home))
    for home, records in zip(homes, own):
        with Store(memory_path(home)) as store:
            store.ingest(records)
            if home == homes[0]:
                size = len(msgpack.packb({"t": "have", "h": store.have()}))
    return size


def test_two_memories_of_20000_authors_1pct_apart_converge_without_strikes(
        tmp_path: Path, network: str) -> None:
    raws = _records()
    have = _fill([tmp_path / "a", tmp_path / "b"], raws[::2],
                 [raws[1::2][:9900], raws[1::2][100:]])              # 100 records apart each way
    assert have > MAX_FRAME_BYTES                # what 1.0.0 could not send: every pull failed
    a = launch(tmp_path / "a", network)
    b = launch(tmp_path / "b", network, [a.addr])
    # each daemon also adds records of its own (its `node` record): equal digests, not counts
    wait_for(lambda: a.status()["digest"] == b.status()["digest"], 200, "equal memories")
    assert a.status()["records"] > AUTHORS
    for node in (a, b):
        peers = node.request("/peers")
        assert peers and all(p["rejected"] == 0 and p["banned_until"] is None for p in peers)
