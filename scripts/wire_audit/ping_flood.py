"""One ping stream: 32-byte pings written without pause (echoes read) for 30 s; node CPU-s/s.
`python scripts/wire_audit/ping_flood.py`"""
from common import attacker, flood, main

import trio
from libp2p.custom_types import TProtocol


async def attack(node):
    async with attacker(node) as (host, target):
        stream = await host.new_stream(target.peer_id, [TProtocol("/ipfs/ping/1.0.0")])

        async def drain() -> None:
            while await stream.read(65536):
                pass

        async def write() -> int:
            await stream.write(b"\x01" * 32000)
            return 32000

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            try:
                await flood(node, write)
            finally:
                nursery.cancel_scope.cancel()


main(attack)
