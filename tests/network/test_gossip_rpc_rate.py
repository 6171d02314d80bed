"""Pubsub RPCs read from one peer are rationed (node/rpc_rate.py).

py-libp2p read a peer's RPCs as fast as they came, each ~150-400 CPU-us however small: one peer
writing 26-byte empty IHAVEs kept a node at 0.86 CPU-s per second (docs/PROTOCOL.md, "Hostile
peers"). Real py-libp2p on loopback: the node's own GossipSub, and a raw peer that writes 3,000
RPCs at once; its budget is cut to 100 at once and 10 a second so that a few seconds show it.
"""
from __future__ import annotations

import time
from typing import Any

import pytest
import trio
import varint
from libp2p.pubsub.pb import rpc_pb2

from node import gossip, rpc_rate
from swarm.bench import stucksub

RPCS, BURST, RATE = 3000, 100.0, 10.0


async def _handled_after(wait_s: float) -> tuple[int, float]:
    """RPCs the node handled `wait_s` seconds after a peer wrote RPCS of them, and the seconds
    since the first was written."""
    from libp2p import new_host
    from libp2p.tools.anyio_service import background_trio_service

    victim = new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    handled = [0]
    inner = router.handle_rpc

    async def counting(rpc: Any, sender: Any) -> None:
        handled[0] += 1
        await inner(rpc, sender)

    router.handle_rpc = counting
    rpc = rpc_pb2.RPC()
    rpc.control.ihave.add(topicID=stucksub.TOPIC)           # an empty IHAVE: 26 bytes
    raw = rpc.SerializeToString()
    async with victim.run(stucksub.LOOPBACK), background_trio_service(pubsub), \
            background_trio_service(router), trio.open_nursery() as nursery:
        await pubsub.wait_until_ready()
        host, stream = await stucksub._subscriber(victim, nursery, graft=False, subscribe=False)
        started = time.monotonic()
        with trio.fail_after(60):                             # 78 KB: within the window
            await stream.write((varint.encode(len(raw)) + raw) * RPCS)
        await trio.sleep(wait_s)
        nursery.cancel_scope.cancel()
        return handled[0], time.monotonic() - started


def test_a_peer_writing_rpcs_without_pause_is_read_at_its_rate(monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.setattr(rpc_rate, "BURST_PER_PEER", BURST)
    monkeypatch.setattr(rpc_rate, "RATE_PER_PEER", RATE)
    handled, elapsed = trio.run(_handled_after, 3.0)
    assert handled >= 1                                       # the peer is heard
    assert handled <= BURST + RATE * elapsed + 2              # was all 3,000 within the 3 s
