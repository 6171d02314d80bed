"""A hostile peer for tests.

`python -m tests.network.hostile attack TARGET_MULTIADDR NETWORK` connects to an honest node and
sends nothing at all (a stall), garbage and an absurd frame length on the sync protocol, then gossip
with bad signatures, oversize payloads and garbage.
`python -m tests.network.hostile have:GAPS:TOP TARGET NETWORK` pulls by `/swarm/sync/1.0.0` with a
have-summary of GAPS overlapping gaps (see `hostile_have`).
`python -m tests.network.hostile serve - NETWORK` waits for honest nodes to pull from it and answers
each pull with the next misbehaviour: an endless stream of duplicates, silence, an absurd frame
length, invalid records, garbage.
Either way it answers pulls like that, and prints one JSON line per event: {"attack", "outcome"}.
"""
from __future__ import annotations

import itertools
import json
import struct
import sys
import time
from typing import Any

import trio

from memory.crypto import Keypair
from node import gossip, sync
from node.framing import pack, read_frame
from tests.network.launcher import make_records

RESPONSES = itertools.cycle(["endless", "stall", "oversize", "invalid", "garbage"])


def report(attack: str, outcome: Any) -> None:
    print(json.dumps({"attack": attack, "outcome": outcome}), flush=True)


def bad_signature_records(n: int) -> list[bytes]:
    """Well-formed records whose signature bytes are flipped (still canonical msgpack)."""
    out = []
    for raw in make_records(n):
        out.append(raw[:-10] + bytes(b ^ 0xFF for b in raw[-10:]))
    return out


async def respond(stream: Any) -> None:
    """Answer an honest node's pull with the next kind of misbehaviour."""
    mode = next(RESPONSES)
    try:
        await read_frame(stream, timeout=10)
        await stream.write(pack({"t": "differ"}))
        await read_frame(stream, max_bytes=sync.MAX_HAVE_BYTES, timeout=10)
        if mode == "invalid":
            await stream.write(pack({"t": "batch", "r": bad_signature_records(5)}))
        elif mode == "garbage":
            await stream.write(b"\x00\x00\x00\x10" + b"\xc1" * 16)
        elif mode == "oversize":
            await stream.write(struct.pack(">I", 0xFFFFFFF0) + b"x" * 1000)
        elif mode == "endless":
            dupes = make_records(3, Keypair(b"\x01" * 32), ts=1_700_000_000_000)
            with trio.move_on_after(60):             # endless, until the node hangs up
                while True:
                    await stream.write(pack({"t": "batch", "r": dupes}))
        else:                                    # say nothing; notice when the node hangs up
            with trio.move_on_after(60):
                while await stream.read(1024):
                    pass
        report(f"respond-{mode}", "sent")
    except Exception as exc:  # noqa: BLE001 - the honest node cutting us off is the point
        report(f"respond-{mode}", f"cut off: {type(exc).__name__}")


async def attack_sync(host: Any, peer: Any) -> None:
    from libp2p.custom_types import TProtocol

    proto = [TProtocol(sync.PROTOCOL_ID)]
    for name, payload in (("sync-stall", b""),
                          ("sync-garbage", b"\x00\x00\x00\x20" + b"\xff" * 32),
                          ("sync-huge-length", struct.pack(">I", 0xFFFFFFFF) + b"A" * 4096)):
        started = None
        ended = "timeout"
        try:
            stream = await host.new_stream(peer, proto)
            if payload:
                await stream.write(payload)
            # the clock starts once the node has the stream: opening it on a loaded machine is
            # not the node's reaction time
            started = time.monotonic()
            with trio.move_on_after(60):
                while await stream.read(1024):
                    pass
                ended = "closed"
        except Exception as exc:  # noqa: BLE001 - EOF or reset: the node hung up on us
            ended = type(exc).__name__
        took = None if started is None else round(time.monotonic() - started, 1)
        report(name, {"closed_after_s": took, "how": ended})


HAVE_KEY = Keypair(b"\x02" * 32)          # whose records the node under attack holds (the test's)


def hostile_have(gaps: int, top: int) -> dict[str, list[Any]]:
    """A 1.0.0 have-summary claiming HAVE_KEY's seqs up to `top` with `gaps` gaps, each the whole
    range [1, top - 1]: overlapping gaps made the responder's join grow as records x gaps."""
    return {HAVE_KEY.peer_id: [top, [[1, top - 1]] * gaps, 0]}


async def attack_have(host: Any, peer: Any, network: str, gaps: int, top: int) -> None:
    """Pull by `/swarm/sync/1.0.0` with `hostile_have`; report how the node answered."""
    from libp2p.custom_types import TProtocol

    from node import sync_v1

    how: Any = "timeout"
    try:
        stream = await host.new_stream(peer, [TProtocol(sync_v1.PROTOCOL_ID)])
        await stream.write(pack({"t": "digest", "d": b"\0" * 16, "n": network}))
        assert (await read_frame(stream, timeout=30))["t"] == "differ"
        await stream.write(pack({"t": "have", "h": hostile_have(gaps, top)}))
        with trio.move_on_after(60):
            frames = []
            while True:
                frames.append((await read_frame(stream, timeout=60)).get("t"))
                if frames[-1] == "end":
                    how = {"answered": frames}
                    break
    except Exception as exc:  # noqa: BLE001 - EOF or reset: the node hung up on us
        how = type(exc).__name__
    report("sync-have-gaps", how)


async def attack_gossip(pubsub: Any, topic: str) -> None:
    payloads = ([("bad-signature", raw) for raw in bad_signature_records(4)]
                + [("oversize", b"\x92" + b"\x00" * 70_000)] * 3
                + [("garbage", b"\xc1garbage")] * 3)
    for name, data in payloads:
        try:
            await pubsub.publish(topic, data)
            report(f"gossip-{name}", "published")
        except Exception as exc:  # noqa: BLE001
            report(f"gossip-{name}", f"failed: {type(exc).__name__}")
        await trio.sleep(0.05)


async def main(mode: str, target: str, network: str) -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.tools.anyio_service import background_trio_service

    host = new_host(key_pair=create_new_key_pair(Keypair.generate().seed))
    router, pubsub = gossip.make_router_and_pubsub(host)
    host.set_stream_handler(TProtocol(sync.PROTOCOL_ID), respond)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            topic = gossip.topic_for(network)
            await pubsub.subscribe(topic)
            if mode.startswith("have:"):          # have:GAPS:TOP, the 1.0.0 summary attack
                _, gaps, top = mode.split(":")
                peer = await _connected(host, target)
                await attack_have(host, peer, network, int(gaps), int(top))
                report("done", True)
            elif mode == "serve":
                report("listening", str(host.get_addrs()[0]))
                await trio.sleep(120)                # killed by the test when it has seen enough
            else:
                await attack(host, pubsub, topic, target)
            pubsub.seen_messages.stop()


async def _connected(host: Any, target: str) -> Any:
    """Connect to `target`, report our peer id, and return its."""
    import multiaddr
    from libp2p.peer.peerinfo import info_from_p2p_addr

    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    await host.connect(info)
    report("connect", str(host.get_id()))
    return info.peer_id


async def attack(host: Any, pubsub: Any, topic: str, target: str) -> None:
    peer = await _connected(host, target)
    await trio.sleep(2)                              # let the mesh form
    await attack_sync(host, peer)
    await attack_gossip(pubsub, topic)
    await trio.sleep(2)
    report("done", True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
