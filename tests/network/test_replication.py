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


def test_partition_heals_through_sync(tmp_path: Path, network: str) -> None:
    a, b, c = launch_swarm(tmp_path, 3, network)
    wait_for(lambda: c.status()["peers"] >= 1, 20, "c connected")
    assert c.stop() == 0                           # c goes offline
    raws = make_records(50)
    a.ingest(raws[:25])
    b.ingest(raws[25:])
    c = launch(c.home, network, [a.addr])          # same home: same identity, same memory
    wait_for(lambda: c.has_all(ids_of(raws)), 15, "the restarted node to catch up")
    wait_for(lambda: len({n.status()["digest"] for n in (a, b, c)}) == 1, 15, "equal digests")


def test_gossip_loss_is_repaired_by_sync(tmp_path: Path, network: str) -> None:
    # every node drops 60% of the gossip it receives; periodic sync must fill the gaps
    nodes = launch_swarm(tmp_path, 3, network, env={"SWARM_TEST_GOSSIP_DROP": "0.6"})
    wait_for(lambda: all(n.status()["peers"] >= 1 for n in nodes), 20, "connections")
    raws = make_records(40)
    for i in range(0, 40, 5):
        nodes[0].ingest(raws[i:i + 5])
    wait_for(lambda: all(n.has_all(ids_of(raws)) for n in nodes), 20, "every record everywhere")

