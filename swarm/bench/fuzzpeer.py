"""A fuzzing peer: for a bounded time, random and mutated frames on every protocol a node speaks.

`python -m swarm.bench.fuzzpeer TARGET_MULTIADDR --seconds S [--seed N] [--network NAME]` prints one
JSON report: frames sent, streams opened, per protocol. Used by tests/network/test_hostile_fuzz.py and
`swarm bench network --fuzz`.

What it sends, on the protocols the node lists in identify plus the ones every node speaks (pubsub,
sync, identify, identify push, ping, Kademlia): random bytes, truncated varints, absurd lengths,
protobuf with random fields and wrong wire types, pubsub RPCs shaped right but typed wrong, valid
pubsub RPCs carrying a real record with garbage signature/key/from fields, msgpack frames of the
wrong shape for sync, mutations (bit flips, truncation, splices) of all of these, bursts of many
concurrent streams, and garbage on a bare TCP connection. Its own handlers answer the node's
outbound streams (identify, Kademlia queries, sync pulls, pubsub) with the same. Every few seconds,
or once the node bans it, it starts over with a fresh key.
"""
from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

PUBSUB = "/meshsub/1.1.0"
SYNC = "/swarm/sync/1.0.0"
KNOWN = [PUBSUB, "/meshsub/1.0.0", SYNC, "/swarm/sync/2.0.0", "/swarm/sync/2.1.0",
         "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/kad/1.0.0"]
ROTATE_S = 4.0           # a fresh key this often (a ban on the old one does not end the run)
BURST = 32               # concurrent streams in a "many streams" shot
STREAM_WAIT_S = 0.2      # how long a shot listens for the node's answer


@dataclass
class FuzzReport:
    """What the fuzzer did."""

    seconds: float = 0.0
    frames: int = 0
    streams: int = 0
    refused: int = 0                 # stream opens that failed (protocol refused, banned, reset)
    keys: int = 0                    # fresh identities used
    answered: int = 0                # the node's own outbound streams answered with garbage
    by_protocol: dict[str, int] = field(default_factory=dict)

    def count(self, protocol: str, frames: int) -> None:
        """Note `frames` frames sent on `protocol`."""
        self.frames += frames
        self.by_protocol[protocol] = self.by_protocol.get(protocol, 0) + frames


# ---- frames ----

def uvarint(n: int) -> bytes:
    """Unsigned LEB128, as libp2p prefixes its protobuf frames."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(0, 64))


def truncated_varint(rng: random.Random) -> bytes:
    return bytes(0x80 | rng.randrange(128) for _ in range(rng.randint(1, 10)))


def huge_length(rng: random.Random) -> bytes:
    head = rng.choice([uvarint(2 ** rng.randint(20, 63)), b"\xff" * 9 + b"\x01", b"\xff" * 12,
                       struct.pack(">I", rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0x01000000]))])
    return head + rng.randbytes(rng.randint(0, 32))


def protobuf_junk(rng: random.Random, depth: int = 0) -> bytes:
    """Fields 1-12 with random (often wrong, sometimes invalid) wire types; nested, lengths lying."""
    out = bytearray()
    for _ in range(rng.randint(1, 6)):
        number, wire = rng.randint(1, 12), rng.choice([0, 0, 1, 2, 2, 2, 3, 4, 5, 6, 7])
        out += uvarint(number << 3 | wire)
        if wire == 0:
            out += uvarint(rng.getrandbits(rng.choice([1, 7, 32, 64])))
        elif wire == 1:
            out += rng.randbytes(8)
        elif wire == 5:
            out += rng.randbytes(4)
        elif wire == 2:
            body = protobuf_junk(rng, depth + 1) if depth < 3 and rng.random() < 0.5 else (
                rng.randbytes(rng.randint(0, 24)))
            lie = rng.random() < 0.2
            out += uvarint(len(body) + (rng.randint(1, 1000) if lie else 0)) + body
    return bytes(out)


def wrong_types_rpc(rng: random.Random, topic: str) -> bytes:
    """A pubsub RPC whose fields have the right numbers and the wrong types or contents."""
    sub = uvarint(1 << 3 | rng.choice([0, 2])) + (uvarint(1) if rng.random() < 0.5 else b"\x02\xff\xfe")
    msg = (uvarint(1 << 3 | 0) + uvarint(12345)                       # from: varint, not bytes
           + uvarint(4 << 3 | 2) + uvarint(3) + b"\xc3\x28\xa0"       # topic: invalid UTF-8
           + uvarint(2 << 3 | 5) + rng.randbytes(4))                  # data: fixed32
    control = uvarint(1 << 3 | 2) + uvarint(6) + protobuf_junk(rng)[:6].ljust(6, b"\x00")
    parts = [uvarint(1 << 3 | 2) + uvarint(len(sub)) + sub,
             uvarint(2 << 3 | 2) + uvarint(len(msg)) + msg,
             uvarint(3 << 3 | 2) + uvarint(len(control)) + control,
             uvarint(2 << 3 | 0) + uvarint(7),
             uvarint(1 << 3 | 2) + uvarint(len(topic) + 2) + b"\x08\x01" + topic.encode()]
    rng.shuffle(parts)
    return b"".join(parts[:rng.randint(1, len(parts))])


def valid_rpc(rng: random.Random, topic: str, record: bytes) -> bytes:
    """A well-formed RPC: subscribe, then publish `record` with garbage from/seqno/signature/key."""
    from libp2p.pubsub.pb import rpc_pb2

    message = rpc_pb2.Message(data=record, topicIDs=[topic], seqno=rng.randbytes(8))
    for name in ("from_id", "signature", "key"):
        if rng.random() < 0.7:
            setattr(message, name, rng.randbytes(rng.choice([0, 1, 32, 38, 64])))
    rpc = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic)],
                      publish=[message])
    if rng.random() < 0.3:
        rpc.control.ihave.add(topicID=topic, messageIDs=[rng.randbytes(20)] * rng.randint(1, 50))
        rpc.control.iwant.add(messageIDs=[rng.randbytes(20)])
        rpc.control.graft.add(topicID=topic)
    return rpc.SerializeToString()


def sync_junk(rng: random.Random) -> bytes:
    """Frames in the sync framing (4-byte length + msgpack) with the wrong shapes."""
    import msgpack

    shapes: list[Any] = [{"t": rng.choice(["digest", "have", "batch", "differ", "done", 7])},
                         {"t": "have", "h": rng.choice(["x", [1, 2], {"a": -1}, {b"k": None}])},
                         {"t": "batch", "r": [rng.randbytes(rng.randint(0, 40))] * 3},
                         [None, 1.5, "x"], rng.getrandbits(64), {"t": "digest", "d": 5}]
    body = msgpack.packb(rng.choice(shapes), use_bin_type=True)
    if rng.random() < 0.3:
        body = rng.randbytes(rng.randint(1, 40))
    return struct.pack(">I", len(body)) + body


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """Flip bits, truncate, duplicate or splice `frame`."""
    data = bytearray(frame or b"\x00")
    choice = rng.randrange(4)
    if choice == 0:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del data[rng.randrange(len(data)):]
    elif choice == 2:
        data.extend(bytes(data))
    else:
        data[rng.randrange(len(data)):] = rng.randbytes(rng.randint(1, 16))
    return bytes(data)


def frame_for(rng: random.Random, protocol: str, topic: str, records: list[bytes]) -> bytes:
    """One hostile frame for `protocol`."""
    family = rng.random()
    if family < 0.12:
        return random_bytes(rng)
    if family < 0.2:
        return truncated_varint(rng)
    if family < 0.28:
        return huge_length(rng)
    if "sync" in protocol:
        frame = sync_junk(rng)
    elif "meshsub" in protocol:
        body = (valid_rpc(rng, topic, rng.choice(records)) if rng.random() < 0.4
                else wrong_types_rpc(rng, topic) if rng.random() < 0.5 else protobuf_junk(rng))
        frame = uvarint(len(body)) + body
    elif "ping" in protocol:
        frame = rng.randbytes(rng.choice([1, 31, 32, 33, 64]))
    else:
        body = protobuf_junk(rng)
        frame = uvarint(len(body)) + body
    return mutate(rng, frame) if rng.random() < 0.3 else frame


# ---- the peer ----

class Fuzzer:
    """Fuzz one target node for `seconds` (see the module docstring)."""

    def __init__(self, target: str, seconds: float, seed: int, network: str) -> None:
        self.target = target
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.topic = f"/swarm/{network}/records/1"
        self.report = FuzzReport()
        self.records = _records(self.rng)
        self._turn = 0

    async def run(self) -> FuzzReport:
        """Fuzz until the time is up; return what was sent."""
        start = time.monotonic()
        deadline = start + self.seconds
        while time.monotonic() < deadline:
            with trio.move_on_after(min(ROTATE_S, max(0.1, deadline - time.monotonic()))):
                await self._one_identity()
            await self._tcp_garbage()
        self.report.seconds = round(time.monotonic() - start, 1)
        return self.report

    async def _one_identity(self) -> None:
        import multiaddr
        from libp2p import new_host
        from libp2p.crypto.ed25519 import create_new_key_pair
        from libp2p.custom_types import TProtocol
        from libp2p.peer.peerinfo import info_from_p2p_addr

        host = new_host(key_pair=create_new_key_pair(self.rng.randbytes(32)),
                        muxer_preference="YAMUX")
        for protocol in KNOWN:
            host.set_stream_handler(TProtocol(protocol), self._answer)
        self.report.keys += 1
        info = info_from_p2p_addr(multiaddr.Multiaddr(self.target))
        async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            try:
                with trio.fail_after(5):
                    await host.connect(info)
            except Exception:  # noqa: BLE001 - banned, or the node is busy: next identity
                self.report.refused += 1
                return
            await trio.sleep(0.3)                       # identify: learn what the node speaks
            protocols = _protocols(host, info.peer_id)
            while True:
                await self._shot(host, info.peer_id, protocols)

    async def _shot(self, host: Any, peer: Any, protocols: list[str]) -> None:
        protocol = protocols[self._turn % len(protocols)]      # every protocol in turn
        self._turn += 1
        if self.rng.random() < 0.05:
            async with trio.open_nursery() as nursery:
                for _ in range(BURST):
                    nursery.start_soon(self._stream, host, peer, protocol)
        else:
            await self._stream(host, peer, protocol)

    async def _stream(self, host: Any, peer: Any, protocol: str) -> None:
        from libp2p.custom_types import TProtocol

        try:
            with trio.fail_after(3):
                stream = await host.new_stream(peer, [TProtocol(protocol)])
        except Exception:  # noqa: BLE001 - refused or reset: part of the game
            self.report.refused += 1
            await trio.sleep(0.05)
            return
        self.report.streams += 1
        try:
            await self._send(stream, protocol)
        except Exception:  # noqa: BLE001 - the node hung up on us: expected
            pass
        finally:
            await _drop(stream, self.rng)

    async def _send(self, stream: Any, protocol: str) -> None:
        frames = self.rng.randint(1, 3)
        for _ in range(frames):
            await stream.write(frame_for(self.rng, protocol, self.topic, self.records))
        self.report.count(protocol, frames)
        with trio.move_on_after(STREAM_WAIT_S):
            await stream.read(4096)

    async def _answer(self, stream: Any) -> None:
        """The node opened a stream to us (identify, a DHT query, a sync pull, pubsub): garbage."""
        protocol = str(stream.get_protocol())
        self.report.answered += 1
        try:
            with trio.move_on_after(1):
                await self._send(stream, protocol)
        except Exception:  # noqa: BLE001
            pass
        finally:
            await _drop(stream, self.rng)

    async def _tcp_garbage(self) -> None:
        """A bare TCP connection to the node's port: random bytes, then hang up."""
        host, port = _tcp_endpoint(self.target)
        try:
            with trio.fail_after(2):
                conn = await trio.open_tcp_stream(host, port)
                async with conn:
                    await conn.send_all(self.rng.choice([random_bytes(self.rng), huge_length(
                        self.rng), b"\x13/multistream/1.0.0\n" + random_bytes(self.rng)]))
            self.report.count("tcp", 1)
        except Exception:  # noqa: BLE001 - closed on us: fine
            pass


MDNS_GROUP = ("224.0.0.251", 5353)


def mdns_garbage(rng: random.Random, packets: int) -> int:
    """Send `packets` malformed mDNS packets (a DNS header claiming records that are not there, or
    mutated queries for libp2p's service) to the mDNS group; return how many were sent."""
    import socket

    query = (b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00"
             b"\x04_p2p\x04_udp\x05local\x00\x00\x0c\x00\x01")
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        for _ in range(packets):
            packet = mutate(rng, query) if rng.random() < 0.7 else (
                query[:4] + rng.randbytes(8) + random_bytes(rng))
            try:
                sock.sendto(packet, MDNS_GROUP)
                sent += 1
            except OSError:
                break
    return sent


def _records(rng: random.Random) -> list[bytes]:
    """A few real signed records (valid payloads for the pubsub frames)."""
    from memory import codec
    from memory.crypto import Keypair
    from memory.records import HypothesisBody

    key = Keypair(rng.randbytes(32))
    return [codec.sign(key, "hypothesis", seq, HypothesisBody(
        track="fuzz", diff={"depth": seq}, rationale="fuzz", source="human")).raw
        for seq in range(1, 6)]


def _protocols(host: Any, peer: Any) -> list[str]:
    try:
        spoken = [str(p) for p in host.get_peerstore().get_protocols(peer)]
    except Exception:  # noqa: BLE001 - identify not done: the known list alone
        spoken = []
    return sorted(set(KNOWN) | set(spoken))


def _tcp_endpoint(addr: str) -> tuple[str, int]:
    parts = addr.split("/")
    return parts[2], int(parts[4])


async def _drop(stream: Any, rng: random.Random) -> None:
    try:
        if rng.random() < 0.5:
            await stream.reset()
        else:
            with trio.move_on_after(1):
                await stream.close()
    except Exception:  # noqa: BLE001
        pass


async def send_frames(target: str, protocol: str, frames: list[bytes], linger_s: float = 3.0) -> None:
    """With a fresh key: connect to `target`, write `frames` on one `protocol` stream, stay
    connected `linger_s` (the node's sync pull finds we do not speak its protocol)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from memory.crypto import Keypair

    host = new_host(key_pair=create_new_key_pair(Keypair.generate().seed), muxer_preference="YAMUX")
    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        await host.connect(info)
        stream = await host.new_stream(info.peer_id, [TProtocol(protocol)])
        for frame in frames:
            await stream.write(frame)
        await trio.sleep(linger_s)


def fuzz(target: str, seconds: float, seed: int = 0, network: str = "main") -> FuzzReport:
    """Fuzz the node at `target` for `seconds` in this thread (runs its own trio loop)."""
    import logging

    import libp2p  # noqa: F401 - its import configures its logger; quiet it afterwards

    logging.getLogger("libp2p").setLevel(logging.CRITICAL)      # our own failures are the point
    return trio.run(Fuzzer(target, seconds, seed, network).run)


def main(argv: list[str] | None = None) -> None:
    """CLI: fuzz a node and print the report as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--network", default="main")
    parser.add_argument("--mdns", type=int, default=0,
                        help="also send this many malformed mDNS packets to the LAN's mDNS group")
    args = parser.parse_args(argv)
    report = fuzz(args.target, args.seconds, args.seed, args.network)
    if args.mdns:
        report.count("mdns", mdns_garbage(random.Random(args.seed), args.mdns))
    print(json.dumps(asdict(report)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
