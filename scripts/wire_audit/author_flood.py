"""A peer publishes RATE valid records a second for 30 s, all by one fresh author (whose quota is
20 records at once, 1 a second: nearly all are over it), signatures intact or (MODE forged) each
flipped; the node's CPU-s per second and its refusals by reason.
`python scripts/wire_audit/author_flood.py 150 valid`"""
import sys

from common import flood, main, publisher

import msgpack
import trio

from memory.crypto import Keypair
from tests.network.launcher import make_records

RATE = int(sys.argv[1]) if len(sys.argv) > 1 else 150
MODE = sys.argv[2] if len(sys.argv) > 2 else "valid"
SECONDS = 30


def forged(raw: bytes) -> bytes:
    """`raw` with one bit of its signature flipped."""
    payload, signature = msgpack.unpackb(raw)
    return msgpack.packb([payload, bytes([signature[0] ^ 1]) + signature[1:]])


async def attack(node):
    records = make_records(RATE * (SECONDS + 5), Keypair.generate())
    if MODE == "forged":        # the first 20 honest (the author's quota spent), the rest forged
        records = records[:20] + [forged(raw) for raw in records[20:]]
    async with publisher(node) as (pubsub, topic):
        queue = iter(records)

        async def write() -> int:
            sent = 0
            for raw in [next(queue) for _ in range(RATE // 10)]:
                await pubsub.publish(topic, raw)
                sent += len(raw)
            await trio.sleep(0.1)
            return sent

        await flood(node, write, SECONDS)
        await trio.sleep(3)     # the tally reaches the store
        print({k: v for k, v in node.status().items() if "reject" in k}, flush=True)


main(attack)
