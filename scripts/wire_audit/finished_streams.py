"""A peer asks for N blobs the node does not hold (8 at a time), keeps each answered stream open
and, keeping to the window, writes FILL bytes on it. Watched for 30 s.
`python scripts/wire_audit/finished_streams.py 2000 250000`"""
import sys
import time

from common import api_ok, attacker, main, measure

import trio
from libp2p.custom_types import TProtocol

from node.framing import pack, read_frame

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
FILL = int(sys.argv[2]) if len(sys.argv) > 2 else 250_000


async def attack(node):
    async with attacker(node) as (host, target):
        host.get_network().get_connections(target.peer_id)[0].muxed_conn \
            .stream_backlog_semaphore = trio.Semaphore(10**9)
        print("before", measure(node), flush=True)
        held, failed, limit, t0 = [], [0], trio.CapacityLimiter(8), time.monotonic()

        async def one() -> None:
            async with limit:
                try:
                    stream = await host.new_stream(target.peer_id,
                                                   [TProtocol("/swarm/blob/1.0.0")])
                    await stream.write(pack({"sha256": "a" * 64, "from": 0}))
                    await read_frame(stream, timeout=30)
                    if FILL:
                        await stream.write(bytes(FILL))
                    held.append(stream)
                except Exception:  # noqa: BLE001 - refused past the serving slots
                    failed[0] += 1

        async with trio.open_nursery() as nursery:
            for _ in range(N):
                nursery.start_soon(one)
        print("held", len(held), "refused", failed[0], "in", round(time.monotonic() - t0, 1), "s",
              measure(node), flush=True)
        for k in range(3):
            await trio.sleep(10)
            print(f"+{10 * (k + 1)}s", measure(node), "api", api_ok(node), flush=True)


main(attack)
