"""An independent swarm peer written from the documentation alone.

It exists to prove that docs/PROTOCOL.md, docs/RECORDS.md, docs/schema/ and docs/vectors/ are
complete enough for an outsider to build a peer: it imports nothing of the project (`swarm`,
`memory`, `node`, `roles`; tests/outsider/test_outsider_peer.py checks this), only py-libp2p,
PyNaCl and msgpack, and everything swarm-specific here (the record encoding, the signature, the
peer id, the sync frames, fingerprints, sketches, the blob protocol) was written from those
documents.

What it does (each step is an async function over a running py-libp2p host):

- `Identity`, `encode_record`, `check_record` (records.py): keys, canonical msgpack, signatures,
  ids and every check of RECORDS.md's "Rules for writing a peer".
- reconcile.py: sync's bounds, fingerprints, sketches, the requester's rules, the responder's answers.
- `pull`: a requester (R) of `/swarm/sync/2.1.0` (PROTOCOL.md, "Sync"), with fingerprints, splits,
  have/want and paging; every record received is checked here before it is kept.
- `make_pubsub`, `gossip_topic`: GossipSub 1.1 with StrictSign and the documented message id;
  publishing a record is `pubsub.publish(gossip_topic(network), raw)`.
- `serve_sync`: the responder (S) side, so a node's own pulls take this peer's records.
- `fetch_blob`: `/swarm/blob/1.0.0`, chunk by chunk, each chunk and the whole checked.
- `send_malformed_sync`: a frame that is not msgpack, on the sync protocol.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import multiaddr
import trio
from libp2p import new_host
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from .records import Identity, Memory, Record
from .reconcile import (MAX_REQUESTS, TOP, ProtocolError, _ask, answer, decode_bound,
                        next_requests)

# docs/PROTOCOL.md
SYNC_PROTOCOL = "/swarm/sync/2.1.0"
BLOB_PROTOCOL = "/swarm/blob/1.0.0"
GOSSIP_PROTOCOL = "/meshsub/1.1.0"
FRAME_LIMIT = 1024 * 1024  # any frame but a "have" of 1.0.0
FRAME_DEADLINE_S = 15.0


def frame(obj: Any) -> bytes:
    """A 4-byte big-endian length and that many bytes of msgpack."""
    data = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(data)) + data


async def read_exactly(stream, n: int) -> bytes:
    """`n` bytes from `stream`; ProtocolError if it ends first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            raise ProtocolError("stream ended mid-frame")
        buf += chunk
    return bytes(buf)


async def read_frame(stream, limit: int = FRAME_LIMIT, deadline: float = FRAME_DEADLINE_S) -> Any:
    """One frame, refused before reading when its announced length is over `limit`."""
    with trio.fail_after(deadline):
        (length,) = struct.unpack(">I", await read_exactly(stream, 4))
        if length > limit:
            raise ProtocolError(f"frame of {length} bytes announced")
        return msgpack.unpackb(await read_exactly(stream, length), raw=False)


@dataclass
class PullStats:
    """What one pull did."""

    rounds: int = 0
    received: int = 0
    new: int = 0
    requests: list[list] = field(default_factory=list)  # every request sent, by round
    answers: list[Any] = field(default_factory=list)


async def pull(host, peer: ID, network: str, mem: Memory) -> PullStats:
    """One sync 2.1.0 exchange as requester: learn what `peer` holds that `mem` lacks."""
    stats = PullStats()
    stream = await host.new_stream(peer, [SYNC_PROTOCOL])
    try:
        pending = [_ask(mem.in_range, (0, 0), (TOP, 0))]
        await stream.write(frame({"t": "open", "n": network, "q": pending}))
        while pending:
            stats.requests.append(pending)
            received_before = stats.received
            answers = await _read_round(stream, mem, stats)
            if answers is None:
                raise ProtocolError("other_network")
            if len(answers) != len(pending):
                raise ProtocolError(f"{len(answers)} answers to {len(pending)} requests")
            stats.answers.append(answers)
            promised = sum(_records_promised(a) for a in answers)
            if promised != stats.received - received_before:
                raise ProtocolError(f"{promised} records promised, "
                                    f"{stats.received - received_before} sent")
            follow = [r for q, a in zip(pending, answers)
                      for r in next_requests(mem.in_range, q, a)]
            pending = follow[:MAX_REQUESTS]
            stats.rounds += 1
            if pending:
                await stream.write(frame({"t": "q", "q": pending}))
        await stream.write(frame({"t": "done"}))
    finally:
        await stream.close()
    return stats


def _records_promised(answer: Any) -> int:
    """How many records an answer says S sent this round: a count, or `sent` of an "m"."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    if isinstance(answer, list) and answer and answer[0] == "m":
        return answer[1]
    return 0


async def _read_round(stream, mem: Memory, stats: PullStats) -> list | None:
    """Batches until the "a" frame; every record is checked as it arrives."""
    while True:
        msg = await read_frame(stream)
        t = msg.get("t") if isinstance(msg, dict) else None
        if t == "other_network":
            return None
        if t == "a":
            return msg["a"]
        if t != "batch":
            raise ProtocolError(f"frame {t!r} in a round")
        for raw in msg["r"]:
            stats.received += 1
            before = len(mem.records)
            mem.add(raw)
            stats.new += len(mem.records) - before


BATCH_BYTES = 256 * 1024


async def serve(stream, mem: Memory, network: str) -> int:
    """Answer one pull (S's side of sync 2.1.0) from `mem`; returns the records sent.

    Paging is left out: this peer's memory is far below a round's 8 MiB."""
    sent = 0
    opening = await read_frame(stream)
    if not isinstance(opening, dict) or opening.get("t") != "open":
        raise ProtocolError("no opening frame")
    if opening.get("n") != network:
        await stream.write(frame({"t": "other_network"}))
        return 0
    requests = opening.get("q")
    while True:
        if not isinstance(requests, list) or len(requests) > MAX_REQUESTS:
            raise ProtocolError("bad request list")
        replies, records = [], []
        for req in requests:
            reply, send = answer(mem, req)
            replies.append(reply)
            records += send
        for batch in _batches(records):
            await stream.write(frame({"t": "batch", "r": batch}))
        await stream.write(frame({"t": "a", "a": replies}))
        sent += len(records)
        msg = await read_frame(stream, deadline=120.0)
        if isinstance(msg, dict) and msg.get("t") == "done":
            return sent
        if not isinstance(msg, dict) or msg.get("t") != "q":
            raise ProtocolError("expected q or done")
        requests = msg.get("q")


def _batches(records: list[Record]) -> Iterable[list[bytes]]:
    batch, size = [], 0
    for rec in records:
        if batch and size + len(rec.raw) > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(rec.raw)
        size += len(rec.raw)
    if batch:
        yield batch


def serve_sync(host, mem: Memory, network: str, served: list[int]) -> None:
    """Serve /swarm/sync/2.1.0 from `mem`; each pull's record count is appended to `served`."""

    async def handler(stream) -> None:
        try:
            served.append(await serve(stream, mem, network))
        except (ProtocolError, StreamError, trio.TooSlowError):
            await stream.reset()
            return
        await stream.close()

    host.set_stream_handler(SYNC_PROTOCOL, handler)


def gossip_topic(network: str) -> str:
    return f"/swarm/{network}/records/1"


def message_id(msg) -> bytes:
    """blake2b-160 of the message data (the raw record), as every swarm node computes it."""
    return hashlib.blake2b(msg.data, digest_size=20).digest()


def make_pubsub(host) -> tuple[Pubsub, GossipSub]:
    """GossipSub pinned to /meshsub/1.1.0, D=6 (4..12), 1-s heartbeat, StrictSign."""
    router = GossipSub(protocols=[GOSSIP_PROTOCOL], degree=6, degree_low=4, degree_high=12,
                       heartbeat_interval=1)
    pubsub = Pubsub(host, router, strict_signing=True, msg_id_constructor=message_id)
    return pubsub, router


async def fetch_blob(host, peer: ID, sha256_hex: str) -> bytes | None:
    """A whole blob by its sha256 over /swarm/blob/1.0.0; None when the peer does not hold it."""
    stream = await host.new_stream(peer, [BLOB_PROTOCOL])
    try:
        await stream.write(frame({"sha256": sha256_hex, "from": 0}))
        manifest = await read_frame(stream, deadline=30.0)
        if "error" in manifest:
            return None
        size, chunk, hashes = manifest["size"], manifest["chunk"], manifest["hashes"]
        if len(hashes) != -(-size // chunk):
            raise ProtocolError("manifest: chunk count does not match size")
        data = bytearray()
        while len(data) < size:
            msg = await read_frame(stream, deadline=30.0)
            i, d = msg["i"], msg["d"]
            if i != len(data) // chunk or hashlib.sha256(d).digest() != hashes[i]:
                raise ProtocolError(f"chunk {i} out of order or not as the manifest says")
            data += d
    finally:
        await stream.close()
    if hashlib.sha256(data).hexdigest() != sha256_hex:
        raise ProtocolError("blob does not hash to what was asked")
    return bytes(data)


async def send_malformed_sync(host, peer: ID) -> str:
    """A sync opening frame whose body is not msgpack; returns how the stream ended."""
    stream = await host.new_stream(peer, [SYNC_PROTOCOL])
    junk = b"\xc1" * 16  # 0xc1 is never used by msgpack
    await stream.write(struct.pack(">I", len(junk)) + junk)
    try:
        with trio.fail_after(120):      # generous: a loaded machine; ends when the node answers
            data = await stream.read(1)
        return "closed" if not data else "answered"
    except StreamError as err:
        return type(err).__name__
    finally:
        await stream.close()


async def connect(host, addr: str) -> ID:
    """Dial a node at its /ip4/.../tcp/.../p2p/ID multiaddr; returns its peer id."""
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    await host.connect(info)
    return info.peer_id


def make_host(identity: Identity):
    """A py-libp2p host (TCP, Noise, Yamux) with this identity's key."""
    return new_host(key_pair=identity.key_pair(), muxer_preference="YAMUX")


async def run_with_host(identity: Identity, body: Callable, serve_from: Memory | None = None,
                        network: str = "main", served: list[int] | None = None) -> Any:
    """Start a host and pubsub on 127.0.0.1, run `await body(host, pubsub)`, stop everything.

    With `serve_from`, the host also answers sync pulls from that memory for `network`."""
    host = make_host(identity)
    if serve_from is not None:
        serve_sync(host, serve_from, network, served if served is not None else [])
    pubsub, router = make_pubsub(host)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            return await body(host, pubsub)
