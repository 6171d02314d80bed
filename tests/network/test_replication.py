"""Replication across real node processes: gossip, catch-up, partitions, gossip loss."""
from __future__ import annotations

from pathlib import Path

from tests.network.launcher import (
    ids_of, launch, launch_swarm, make_records, wait_for)


def test_record_published_on_one_node_appears_on_the_others(tmp_path: Path, network: str) -> None:
    nodes = launch_swarm(tmp_path, 3, network)
    wait_for(lambda: all(n.status()["peers"] >= 1 for n in nodes), 20, "connections")
    raws = make_records(3)
    assert nodes[1].ingest(raws)["accepted"] == 3
    wait_for(lambda: all(n.has_all(ids_of(raws)) for n in nodes), 15, "records on every node")


def test_late_joiner_catches_up(tmp_path: Path, network: str) -> None:
    first = launch(tmp_path / "a", network)
    raws = make_records(300)
    first.ingest(raws)
    late = launch(tmp_path / "late", network, [first.addr])
    wait_for(lambda: late.has_all(ids_of(raws)), 20, "the late joiner to catch up")
    assert late.status()["digest"] == first.status()["digest"]
