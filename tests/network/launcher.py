"""Test helpers on top of swarm/bench/nodes.py: launching nodes, and records to feed them."""
from __future__ import annotations

from memory import codec
from memory.crypto import Keypair
from memory.records import HypothesisBody
from swarm.bench.nodes import (  # noqa: F401 - re-exported for the tests
    STARTED, Node, kill_all, launch, launch_swarm, log_tail, wait_for, wait_until_serving)


def make_records(n: int, keypair: Keypair | None = None, first_seq: int = 1,
                 track: str = "net-test", ts: int | None = None) -> list[bytes]:
    """`n` valid signed hypothesis records by `keypair` (a fresh key by default).

    With `keypair` and `ts` fixed, every process makes the same records (Ed25519 is deterministic).
    """
    keypair = keypair or Keypair.generate()
    return [codec.sign(keypair, "hypothesis", seq,
                       HypothesisBody(track=track, diff={"depth": seq}, rationale=f"test {seq}",
                                      source="human"), ts=ts).raw
            for seq in range(first_seq, first_seq + n)]


def ids_of(raws: list[bytes]) -> set[str]:
    """Record ids of raw records."""
    return {codec.decode(raw).id for raw in raws}
