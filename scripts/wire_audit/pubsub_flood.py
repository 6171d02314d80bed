"""One peer writes pubsub RPCs of one KIND without pause for 30 s; the node's CPU-s per second.

KIND: ihave0 (an empty IHAVE, 26 bytes), empty (1 byte), churn_x / churn_ours (5,000 alternating
subscribes and unsubscribes to a made-up topic / the node's topic), graft_ours, prune_ours,
graft_junk (5,000 GRAFTs or PRUNEs). `python scripts/wire_audit/pubsub_flood.py ihave0`
"""
import sys

from common import attacker, flood, main

from libp2p.custom_types import TProtocol
from libp2p.pubsub.pb import rpc_pb2
from libp2p.utils.varint import encode_uvarint

KIND = sys.argv[1] if len(sys.argv) > 1 else "ihave0"
OURS = "/swarm/wa/records/1"


def rpc_of(kind: str) -> bytes:
    """One RPC of `kind`, varint-prefixed."""
    rpc = rpc_pb2.RPC()
    if kind == "ihave0":
        rpc.control.ihave.add(topicID=OURS)
    elif kind.startswith("churn"):
        topic = OURS if kind.endswith("ours") else "x"
        for i in range(4999):
            rpc.subscriptions.add(subscribe=i % 2 == 0, topicid=topic)
    elif kind != "empty":
        for i in range(5000):
            topic = OURS if kind.endswith("ours") else f"/j/{i}"
            (rpc.control.graft if kind.startswith("graft") else rpc.control.prune).add(topicID=topic)
    body = rpc.SerializeToString()
    return encode_uvarint(len(body)) + body


async def attack(node):
    async with attacker(node) as (host, target):
        stream = await host.new_stream(target.peer_id, [TProtocol("/meshsub/1.1.0")])
        frame = rpc_of(KIND)
        batch = frame * max(1, 2600 // len(frame))

        async def write() -> int:
            await stream.write(batch)
            return len(batch)

        print(KIND, "bytes per RPC", len(frame))
        await flood(node, write)


main(attack)
