"""`/swarm/sync/1.0.0`, kept so that nodes of earlier versions can still pull from us (and we
from them while our memory is small). Its `have` summary grows with the number of authors (~66
bytes each), so past ~15,900 authors the requester cannot build it; see docs/PROTOCOL.md.

    R -> S  {"t": "digest", "d": <16 bytes>, "n": <swarm network name>}
    S -> R  {"t": "in_sync"} | {"t": "other_network"} | {"t": "differ"}
    R -> S  {"t": "have", "h": store.have()}        per-author max seq, gaps, xor
    S -> R  {"t": "batch", "r": [raw, ...]} ...     ~256 KB each, every one ingested (verified) by R
    S -> R  {"t": "end", "n": <records sent>}
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from memory import antientropy
from memory.gcpause import gc_paused
from node.framing import ProtocolError, read_body, read_frame, unpack, write_frame
from node.servework import Work, charged, mark, settle
from node.syncwire import (BATCH_BYTES, FRAME_TIMEOUT, PullResult, Ration, check_batch, expect,
                           read_and_ingest, send_records)

PROTOCOL_ID = "/swarm/sync/1.0.0"
MAX_HAVE_BYTES = 8 * 1024 * 1024        # the seq vector of ~100k authors


async def pull(stream: Any, store: Any, network: str,
               on_batch: Callable[[Any], None] | None = None,
               result: PullResult | None = None, ration: Ration | None = None) -> PullResult:
    """Pull from the peer on `stream` everything it has that `store` lacks (1.0.0 exchange);
    `ration` admits the records before ingest."""
    result = result if result is not None else PullResult(protocol=PROTOCOL_ID)
    digest = await trio.to_thread.run_sync(store.digest)
    await write_frame(stream, {"t": "digest", "d": digest, "n": network})
    reply = await read_frame(stream, max_bytes=256, timeout=FRAME_TIMEOUT)
    if isinstance(reply, dict) and reply.get("t") in ("in_sync", "other_network"):
        result.in_sync = reply["t"] == "in_sync"
        return result
    expect(reply, "differ")
    have = await trio.to_thread.run_sync(store.have)
    await write_frame(stream, {"t": "have", "h": have}, timeout=FRAME_TIMEOUT)

    async def read_batches(push: Any) -> None:
        while True:
            message = await read_frame(stream, timeout=FRAME_TIMEOUT)
            if isinstance(message, dict) and message.get("t") == "end":
                return
            await push(check_batch(expect(message, "batch").get("r")))

    await read_and_ingest(read_batches, store, result, on_batch, ration=ration)
    return result


async def serve(stream: Any, store: Any, network: str, work: Work | None = None) -> int:
    """Answer one 1.0.0 pull on `stream` for swarm `network`; return the number of records sent.
    The have frame's parse and the store's query and reads that answer it (the producer thread's
    CPU) are charged to `work`, the requester's CPU budget (node/servework.py); the exchange waits
    while it is spent before each frame it sends, each wait under the requester's frame deadline."""
    request = expect(await read_frame(stream, max_bytes=256, timeout=FRAME_TIMEOUT), "digest")
    if request.get("n") != network:         # another swarm on the same LAN: not an error
        await write_frame(stream, {"t": "other_network"})
        return 0
    if await trio.to_thread.run_sync(store.digest) == request.get("d"):
        await write_frame(stream, {"t": "in_sync"})
        return 0
    await write_frame(stream, {"t": "differ"})
    body = await read_body(stream, MAX_HAVE_BYTES, FRAME_TIMEOUT)
    mark(work)                          # the requester waits for our first batch from about now
    have = await charged(work, lambda: parse_have_frame(body))
    await settle(work)
    sent = await send_records(stream, lambda stop: store.missing_for(
        have, BATCH_BYTES, on_read=stop.attach), work=work)
    await write_frame(stream, {"t": "end", "n": sent})
    return sent


def parse_have_frame(body: bytes) -> antientropy.Have:
    """The summary of a `have` frame's body, validated; ProtocolError if it is malformed.

    Decoded and parsed (in a worker thread) with the cyclic collector paused, and the decoded
    frame freed before it runs again: an 8 MiB frame is ~750,000 gap lists, which collections
    walked again and again while they lived (0.3-0.5 CPU-s to decode; 0.07 s with none)."""
    with gc_paused():
        message = have = unpack(body)
        try:
            have = expect(message, "have").get("h")
            if not isinstance(have, dict):
                raise ProtocolError("'have' must be a map")
            return antientropy.parse_have(have)
        except ProtocolError as exc:   # not chained: a traceback would keep the frame alive
            refusal = str(exc)
        except ValueError as exc:
            refusal = f"malformed request: {str(exc)[:100]}"
        finally:
            message = have = None        # freed here, while no collection runs
    raise ProtocolError(refusal)
