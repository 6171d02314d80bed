"""A gossip subscriber that never reads (docs/TRUST.md, "Gossip back-pressure"): real py-libp2p on
loopback (swarm/bench/stucksub.py), a peer subscribed and grafted to the node's topic that accepts
its stream and never reads it, while the node publishes 200 records of 60 KiB."""
from __future__ import annotations

import trio

from node.gossip import OUTBOUND_BYTES
from swarm.bench import stucksub


def test_a_subscriber_that_never_reads_holds_a_bounded_queue() -> None:
    out = trio.run(stucksub.main, 1, 200, 60 * 1024)
    assert out["in_mesh"] == 1 and out["queued_rpcs"] > 1, out     # it did get stuck
    # py-libp2p kept up to 1024 such RPCs (64 MiB); one more than the budget is never queued
    assert out["queued_bytes"] <= OUTBOUND_BYTES, out
