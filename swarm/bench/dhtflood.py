"""What one DHT peer's ADD_PROVIDER messages cost a node (docs/TRUST.md, "Dialing").

Real py-libp2p on loopback, one process: a peer sends `--messages` ADD_PROVIDER messages (py-libp2p
lets one peer id send 10 each 10 s), each for a fresh key and naming itself at `--addrs`
addresses (400,000 fit py-libp2p's 4 MiB message), to a victim whose DHT is the node's
(`discovery.make_dht`) or, with `--bare`, py-libp2p's own KadDHT as main ran it. Prints one
JSON line: the provider keys and addresses the victim keeps, and its process's RSS growth.

    python -m swarm.bench.dhtflood [--bare] [--messages 10] [--addrs 400000]
"""
from __future__ import annotations

import argparse
import gc
import json
from typing import Any

import multiaddr
import psutil
import trio
import varint

from node import discovery

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


async def add_providers(liar: Any, victim: Any, keys: list[bytes], claimed: list[bytes]) -> int:
    """`liar` (a connected host) sends `victim` one ADD_PROVIDER per key of `keys`, naming itself
    at the `claimed` addresses (bytes); how many the victim answered (it resets a stream on a
    message it refuses; the next goes on a fresh one)."""
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.kad_dht import PROTOCOL_ID
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.utils import read_varint_prefixed_bytes

    answered = 0
    stream = await liar.new_stream(victim.get_id(), [TProtocol(PROTOCOL_ID)])
    for key in keys:
        message = Message(type=Message.MessageType.ADD_PROVIDER, key=key)
        provider = message.providerPeers.add()
        provider.id = liar.get_id().to_bytes()
        provider.addrs.extend(claimed)
        raw = message.SerializeToString()
        try:
            await stream.write(varint.encode(len(raw)) + raw)
            await read_varint_prefixed_bytes(stream)          # the echo: handled
        except Exception:  # noqa: BLE001 - reset: refused
            stream = await liar.new_stream(victim.get_id(), [TProtocol(PROTOCOL_ID)])
            continue
        answered += 1
    await stream.close()
    return answered


async def main(messages: int, addrs: int, bare: bool) -> dict[str, Any]:
    from libp2p import new_host
    from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
    from libp2p.peer.peerinfo import info_from_p2p_addr

    victim, liar = new_host(), new_host()
    dht = KadDHT(victim, DHTMode.SERVER) if bare else discovery.make_dht(victim, "flood")
    claimed = [multiaddr.Multiaddr(f"/ip4/10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/tcp/1")
               .to_bytes() for i in range(addrs)]
    process = psutil.Process()
    async with victim.run(LOOPBACK), liar.run(LOOPBACK):
        target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
        await liar.connect(info_from_p2p_addr(target))
        gc.collect()
        before = process.memory_info().rss
        keys = [i.to_bytes(32, "big") for i in range(messages)]
        answered = await add_providers(liar, victim, keys, claimed)
        gc.collect()
        kept = dht.provider_store.providers
        return {"bare": bare, "messages": messages, "addrs": addrs, "answered": answered,
                "keys_kept": len(kept),
                "addrs_kept": sum(len(r.provider_info.addrs) for p in kept.values()
                                  for r in p.values()),
                "rss_growth_mib": round((process.memory_info().rss - before) / 2**20, 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--addrs", type=int, default=400_000)
    parser.add_argument("--bare", action="store_true", help="py-libp2p's KadDHT, unguarded")
    args = parser.parse_args()
    print(json.dumps(trio.run(main, args.messages, args.addrs, args.bare)))
