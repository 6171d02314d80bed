"""Pings are answered at a rate (node/rpc_rate.py, PING_RATE_PER_PEER).

py-libp2p answered every 32-byte ping at once: one peer pinging without pause kept a node at 0.70
CPU-s per second (docs/PROTOCOL.md, "Hostile peers"). Real py-libp2p on loopback: a victim host
with the node's patches, and a peer that writes 3,000 pings at once and counts the answers.
"""
from __future__ import annotations

import time
from typing import Any

import multiaddr
import trio

from node import patches, rpc_rate

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
PINGS = 3000


async def _answered_after(wait_s: float) -> tuple[int, float]:
    """Pings the victim answered within `wait_s` s of a peer writing PINGS, and the seconds."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    patches.apply()
    victim, peer = new_host(), new_host()
    async with victim.run(LOOPBACK), peer.run(LOOPBACK):
        await peer.connect(info_from_p2p_addr(
            multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")))
        stream: Any = await peer.new_stream(victim.get_id(), [TProtocol("/ipfs/ping/1.0.0")])
        started, echoed = time.monotonic(), 0
        with trio.fail_after(60):                              # 96 KB: within the window
            await stream.write(bytes(32 * PINGS))
        with trio.move_on_after(wait_s):
            while echoed < 32 * PINGS:
                echoed += len(await stream.read(65536))
        return echoed // 32, time.monotonic() - started


def test_a_peer_pinging_without_pause_is_answered_at_its_rate() -> None:
    answered, elapsed = trio.run(_answered_after, 3.0)
    assert answered >= 1
    assert answered <= (rpc_rate.PING_BURST_PER_PEER + rpc_rate.PING_RATE_PER_PEER * elapsed
                        + 2)                              # was all 3,000 within the 3 s
