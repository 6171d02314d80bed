"""`/swarm/sync/2.1.0` (and 2.0.0): catch up and repair gossip loss by range-based set reconciliation.

Requester (R) and responder (S), one stream, length-prefixed msgpack frames (node/framing.py); the
requests and replies are memory/reconcile.py's:

    R -> S  {"t": "open", "n": <swarm network name>, "q": [request]}      the opening request
    S -> R  {"t": "other_network"}                                       another swarm: done
    S -> R  {"t": "batch", "r": [raw, ...]} ...   the records this round's requests asked for
    S -> R  {"t": "a", "a": [reply, ...]}         one reply per request
    R -> S  {"t": "q", "q": [request, ...]}       at most 512; and so on, round after round
    R -> S  {"t": "done"}                         nothing left to ask

Frames stay bounded whatever the memory's size; round trips grow with log(size); the records are
most of the bytes. R ingests (and so fully verifies) the records as they arrive and gives S a strike for any
violation (malformed answers, records in a round that asked for none, invalid records, stalls). S holds nothing against
R for hanging up (a failure of R's own); only for malformed requests and stalls. R admits the
records against its sync quotas before ingest (node/syncquota.py: over quota, dropped and counted).
S charges the CPU each answer takes (the records it reads too) to R's address and reads R's next
request, or writes its next batch, only within that budget (node/servework.py: a small request can
cost a pass over every key).
2.1.0 adds S's key counts to split answers and R's sketch requests (memory/sketch.py) for sparse
differences; 2.0.0 is the same exchange without them, still served and used with 2.0.0 nodes.
`/swarm/sync/1.0.0` (node/sync_v1.py) is still served, and used to pull from nodes that lack 2.x.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from memory import reconcile
from node import sync_v1
from node.framing import (FrameTooLarge, Metered, PeerGone, ProtocolError, Stalled, read_frame,
                          write_frame)
from node.servework import Work, charged, mark, settle
from node.syncwire import (BATCH_BYTES, FRAME_TIMEOUT, PullResult, Ration, check_batch, expect,
                           read_and_ingest, send_records)

log = logging.getLogger(__name__)

PROTOCOL_ID = "/swarm/sync/2.1.0"
PROTOCOL_V20 = "/swarm/sync/2.0.0"
PROTOCOLS = (PROTOCOL_ID, PROTOCOL_V20, sync_v1.PROTOCOL_ID)   # offered in this order of preference
MAX_HAVE_BYTES = sync_v1.MAX_HAVE_BYTES
MAX_REQUEST_BYTES = 1024 * 1024      # what S reads; R sends at most reconcile.REQUEST_BYTES
MAX_ROUNDS = 10_000                  # ~log16(size) levels, each at most size/2048 frames
REQUESTER_TIMEOUT = 120.0            # S waits this long for R to read or ask (R ingests as it reads)


class SyncAborted(Exception):
    """This node could not go on (e.g. it built a frame over the limit): never the peer's fault."""


# ---- requester ----

async def pull(stream: Any, store: Any, network: str,
               on_batch: Callable[[Any], None] | None = None,
               result: PullResult | None = None, ration: Ration | None = None) -> PullResult:
    """Pull from the peer on `stream` what it has and `store` lacks, in the version negotiated.

    `on_batch(report)` is called with the store's IngestReport after each ingest. `result`, if
    given, is filled in as the pull goes (its figures stay readable when the pull fails).
    `ration` (node/syncquota.py) admits the records before ingest; None admits all."""
    metered = Metered(stream)
    result = result if result is not None else PullResult()
    result.protocol = _protocol(stream)
    try:
        if result.protocol == sync_v1.PROTOCOL_ID:
            await sync_v1.pull(metered, store, network, on_batch, result, ration)
        else:
            await _pull(metered, store, network, on_batch, result,
                        v21=result.protocol != PROTOCOL_V20, ration=ration)
    except FrameTooLarge as exc:
        raise SyncAborted(str(exc)) from exc
    finally:
        result.bytes_read, result.bytes_written = metered.read_bytes, metered.written_bytes
    return result


def _protocol(stream: Any) -> str:
    get = getattr(stream, "get_protocol", None)
    return str(get() or PROTOCOL_ID) if get is not None else PROTOCOL_ID


async def _pull(stream: Any, store: Any, network: str,
                on_batch: Callable[[Any], None] | None, result: PullResult, v21: bool,
                ration: Ration | None = None) -> None:
    requester = reconcile.Requester(await trio.to_thread.run_sync(store.reconcile_snapshot), v21)
    frame = requester.first()
    await write_frame(stream, {"t": "open", "n": network, "q": frame}, timeout=FRAME_TIMEOUT)

    async def converse(push: Any) -> None:
        nonlocal frame
        while frame:
            if not await _round(stream, requester, frame, push):
                return                                    # another swarm network
            result.rounds = requester.rounds
            result.sketches, result.sketches_failed = requester.sketches, requester.sketches_failed
            frame = requester.next_frame()
            # Read every round to its end at once (py-libp2p's Yamux fails a writer that waits
            # 5 s for window), and ask for the next only when the store has caught up: our
            # ingest sets S's pace, and at most two rounds of records are held here.
            while frame and result.queued_bytes > reconcile.ROUND_BYTES:
                await trio.sleep(0.05)
            message = {"t": "q", "q": frame} if frame else {"t": "done"}
            await write_frame(stream, message, timeout=FRAME_TIMEOUT)
            if requester.rounds >= MAX_ROUNDS:
                raise ProtocolError("reconciliation does not end")

    await read_and_ingest(converse, store, result, on_batch, read_ahead=math.inf, ration=ration)
    result.in_sync = requester.in_sync


async def _round(stream: Any, requester: reconcile.Requester, frame: list[Any], push: Any) -> bool:
    """Read this round's batches (handing them to `push`) and its answer; False if S is of
    another network."""
    received = size = 0
    while True:
        message = await read_frame(stream, timeout=FRAME_TIMEOUT)
        kind = message.get("t") if isinstance(message, dict) else None
        if kind == "batch":
            batch = check_batch(message.get("r"))
            received, size = received + len(batch), size + sum(len(raw) for raw in batch)
            if size > reconcile.MAX_ROUND_BYTES:
                raise ProtocolError("peer sent more records in a round than the protocol allows")
            await push(batch)
        elif kind == "other_network" and requester.rounds == 0:
            return False
        else:
            replies = expect(message, "a").get("a")
            try:
                requester.absorb(frame, replies)
            except ValueError as exc:
                raise ProtocolError(f"bad reconciliation answer: {exc}") from exc
            if received and not reconcile.promised(replies):
                raise ProtocolError("peer sent records nobody asked for")
            return True


# ---- responder ----

async def serve(stream: Any, store: Any, network: str, work: Work | None = None) -> int:
    """Answer one pull on `stream` (either version) for swarm `network`; return records sent.

    A requester that hangs up or resets the stream ends the exchange quietly: no ProtocolError.
    `work` (node/servework.py) is the requester's CPU budget: each answer's computation and the
    reads of the records sent are charged to it, and the next request is read, and each record
    batch written, only once it is back at zero or the wait would come near the requester's frame
    deadline (None: no budget)."""
    try:
        if _protocol(stream) == sync_v1.PROTOCOL_ID:
            return await sync_v1.serve(stream, store, network, work)
        return await _serve(stream, store, network, v21=_protocol(stream) != PROTOCOL_V20,
                            work=work)
    except PeerGone as exc:
        log.debug("sync: requester went away: %s", exc)
        return 0


async def _serve(stream: Any, store: Any, network: str, v21: bool,
                 work: Work | None = None) -> int:
    opening = expect(await read_frame(stream, MAX_REQUEST_BYTES, FRAME_TIMEOUT), "open")
    mark(work)                          # the requester waits for our answer from about now
    if opening.get("n") != network:          # another swarm on the same LAN: not an error
        await write_frame(stream, {"t": "other_network"})
        return 0
    snapshot = await trio.to_thread.run_sync(store.reconcile_snapshot)
    requests, sent = opening.get("q"), 0
    try:
        for _ in range(MAX_ROUNDS):
            sent += await _answer(stream, store, snapshot, requests, v21, work)
            await settle(work)
            # R reads at the pace its store ingests and verifies: a slow requester is no
            # violation, so the waits are long and a stall ends the exchange quietly
            message = await read_frame(stream, MAX_REQUEST_BYTES, REQUESTER_TIMEOUT)
            if isinstance(message, dict) and message.get("t") == "done":
                return sent
            requests = expect(message, "q").get("q")
    except Stalled as exc:
        log.debug("sync: requester too slow: %s", exc)
        return sent
    raise ProtocolError("reconciliation does not end")


async def _answer(stream: Any, store: Any, snapshot: reconcile.Snapshot, requests: Any,
                  v21: bool, work: Work | None = None) -> int:
    """Answer one frame of requests: the records asked for, then the replies."""
    try:
        replies, at = await charged(work, lambda: reconcile.answer_at(snapshot, requests, v21=v21))
    except ValueError as exc:
        raise ProtocolError(f"bad reconciliation request: {exc}") from exc
    sent = 0
    if at.size:
        every = at.size == len(snapshot)         # a fresh node: no need to look keys up
        keys, span = snapshot.keys[at], reconcile.ts_span(snapshot, at)
        sent = await send_records(stream, lambda stop: store.records_by_keys(
            None if every else keys, BATCH_BYTES, span, on_read=stop.attach),
            timeout=REQUESTER_TIMEOUT, work=work)
    await write_frame(stream, {"t": "a", "a": replies}, timeout=REQUESTER_TIMEOUT)
    # the requester may send its next frame and wait on our answer from now: the waits before
    # its records are bounded from here, not from when we read it (we may wait before reading)
    mark(work)
    return sent
