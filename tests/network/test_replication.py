"""Replication across real node processes: gossip, catch-up, partitions, gossip loss."""
from __future__ import annotations

from pathlib import Path

from tests.network.launcher import (
    ids_of, launch, launch_swarm, make_records, wait_for)

WAIT_S = 120          # generous: a loaded 2-core machine; each wait ends when its condition holds


def test_record_published_on_one_node_appears_on_the_others(tmp_path: Path, network: str) -> None:
    nodes = launch_swarm(tmp_path, 3, network)
    wait_for(lambda: all(n.status()["peers"] >= 1 for n in nodes), WAIT_S, "connections")
    raws = make_records(3)
    assert nodes[1].ingest(raws)["accepted"] == 3
    wait_for(lambda: all(n.has_all(ids_of(raws)) for n in nodes), WAIT_S, "records on every node")


def test_late_joiner_catches_up(tmp_path: Path, network: str) -> None:
    first = launch(tmp_path / "a", network)
    raws = make_records(300)
    first.ingest(raws)
    late = launch(tmp_path / "late", network, [first.addr])
    wait_for(lambda: late.has_all(ids_of(raws)), WAIT_S, "the late joiner to catch up")
    # equal memories need the late node's own record on the first one too: it arrives by the
    # first node's next pull (its pull on connect may come before that record is stored)
    wait_for(lambda: late.status()["digest"] == first.status()["digest"], WAIT_S, "equal digests")


def test_partition_heals_through_sync(tmp_path: Path, network: str) -> None:
    a, b, c = launch_swarm(tmp_path, 3, network)
    wait_for(lambda: c.status()["peers"] >= 1, WAIT_S, "c connected")
    assert c.stop() == 0                           # c goes offline
    raws = make_records(50)
    a.ingest(raws[:25])
    b.ingest(raws[25:])
    c = launch(c.home, network, [a.addr])          # same home: same identity, same memory
    wait_for(lambda: c.has_all(ids_of(raws)), WAIT_S, "the restarted node to catch up")
    wait_for(lambda: len({n.status()["digest"] for n in (a, b, c)}) == 1, WAIT_S, "equal digests")


def test_gossip_loss_is_repaired_by_sync(tmp_path: Path, network: str) -> None:
    # every node drops 60% of the gossip it receives; periodic sync must fill the gaps
    nodes = launch_swarm(tmp_path, 3, network, env={"SWARM_TEST_GOSSIP_DROP": "0.6"})
    wait_for(lambda: all(n.status()["peers"] >= 1 for n in nodes), WAIT_S, "connections")
    raws = make_records(40)
    for i in range(0, 40, 5):
        nodes[0].ingest(raws[i:i + 5])
    wait_for(lambda: all(n.has_all(ids_of(raws)) for n in nodes), WAIT_S, "every record everywhere")

