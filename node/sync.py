"""`/swarm/sync/1.0.0`: catch up and repair gossip loss by pulling what a peer has and we lack.

Requester (R) and responder (S), one stream, length-prefixed msgpack frames (node/framing.py):

    R -> S  {"t": "digest", "d": <16 bytes>, "n": <swarm network name>}
    S -> R  {"t": "in_sync"}                       equal digests: done in half a round trip
         or {"t": "other_network"}                 a node of another swarm: done, nothing to do
         or {"t": "differ"}
    R -> S  {"t": "have", "h": store.have()}        per-author max seq, gaps, xor
    S -> R  {"t": "batch", "r": [raw, ...]} ...     ~256 KB each, every one ingested (verified) by R
    S -> R  {"t": "end", "n": <records sent>}

Every read is bounded in size and time; a batch with any invalid record, a peer that keeps sending
records we already hold, or a session past its deadline ends the exchange with `ProtocolError`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from memory.codec import MAX_RECORD_BYTES
from node.framing import ProtocolError, read_frame, write_frame

log = logging.getLogger(__name__)

PROTOCOL_ID = "/swarm/sync/1.0.0"
BATCH_BYTES = 256 * 1024
MAX_HAVE_BYTES = 8 * 1024 * 1024        # the seq vector of ~100k authors
MAX_BATCH_RECORDS = 4096
MAX_STALE_BATCHES = 3                    # batches in a row with nothing new: the peer is looping
READ_AHEAD = 4                           # batches read while the store ingests (~1 MB)
MAX_INGEST_RECORDS = 8192                # records per ingest transaction
# a stalled peer is dropped after this long (tests shorten it through the environment)
FRAME_TIMEOUT = float(os.environ.get("SWARM_SYNC_FRAME_TIMEOUT", "15"))


class SyncStore(Protocol):
    """The store methods sync uses (memory.store.Store)."""

    def digest(self) -> bytes: ...
    def have(self) -> dict[str, Any]: ...
    def missing_for(self, have: dict[str, Any], batch_bytes: int = ...) -> Iterator[list[bytes]]: ...
    def ingest(self, raws: Any) -> Any: ...


@dataclass
class PullResult:
    """What one pull from a peer brought."""

    in_sync: bool = False
    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def _expect(message: Any, kind: str) -> dict[str, Any]:
    if not isinstance(message, dict) or message.get("t") != kind:
        got = message.get("t") if isinstance(message, dict) else type(message).__name__
        raise ProtocolError(f"expected a {kind!r} frame, got {str(got)[:40]!r}")
    return message


def _check_batch(records: Any) -> list[bytes]:
    if not isinstance(records, list) or len(records) > MAX_BATCH_RECORDS:
        raise ProtocolError("a batch must be a list of at most 4096 records")
    for raw in records:
        if not isinstance(raw, bytes) or len(raw) > MAX_RECORD_BYTES:
            raise ProtocolError("a batch holds a non-bytes or oversize record")
    return records


# ---- requester ----

async def pull(stream: Any, store: SyncStore, network: str,
               on_batch: Callable[[Any], None] | None = None) -> PullResult:
    """Pull from the peer on `stream` everything it has that `store` lacks; ingest it batch by batch.

    `on_batch(report)` is called with the store's IngestReport after each batch.
    """
    result = PullResult()
    digest = await trio.to_thread.run_sync(store.digest)
    await write_frame(stream, {"t": "digest", "d": digest, "n": network})
    reply = await read_frame(stream, max_bytes=256, timeout=FRAME_TIMEOUT)
    if isinstance(reply, dict) and reply.get("t") in ("in_sync", "other_network"):
        result.in_sync = reply["t"] == "in_sync"
        return result
    _expect(reply, "differ")
    have = await trio.to_thread.run_sync(store.have)
    await write_frame(stream, {"t": "have", "h": have}, timeout=FRAME_TIMEOUT)
    # Read ahead while the store ingests: the reader stays up to READ_AHEAD batches in front, and
    # the ingester takes every batch already read in one transaction.
    send, receive = trio.open_memory_channel[Any](READ_AHEAD)
    failure: ProtocolError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_read_batches, stream, send)
        try:
            await _ingest_batches(receive, store, result, on_batch)
        except ProtocolError as exc:        # raised outside the nursery, not as an ExceptionGroup
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


async def _read_batches(stream: Any, send: Any) -> None:
    """Read batch frames into `send` until "end"; a violation is sent as a ProtocolError item."""
    async with send:
        try:
            while True:
                message = await read_frame(stream, timeout=FRAME_TIMEOUT)
                if isinstance(message, dict) and message.get("t") == "end":
                    return
                await send.send(_check_batch(_expect(message, "batch").get("r")))
        except ProtocolError as exc:
            await send.send(exc)


async def _ingest_batches(receive: Any, store: SyncStore, result: PullResult,
                          on_batch: Callable[[Any], None] | None) -> None:
    stale = 0
    async with receive:
        async for item in receive:
            group, failure = _drain([item], receive)
            records = [raw for batch in group for raw in batch]
            if records:
                report = await trio.to_thread.run_sync(store.ingest, records)
                _add(result, report, len(group))
                if on_batch is not None:
                    on_batch(report)
                if report.rejected:
                    raise ProtocolError(f"peer sent invalid records: {dict(report.rejected)}")
                stale = 0 if report.accepted else stale + len(group)
                if stale >= MAX_STALE_BATCHES:
                    raise ProtocolError("peer keeps sending records we already hold")
            if failure is not None:
                raise failure


def _drain(group: list[Any], receive: Any) -> tuple[list[list[bytes]], ProtocolError | None]:
    """Batches already waiting in `receive` (after `group`), and a ProtocolError if one came."""
    while True:
        if isinstance(group[-1], ProtocolError):
            return group[:-1], group[-1]
        if sum(len(batch) for batch in group) >= MAX_INGEST_RECORDS:
            return group, None
        try:
            group.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return group, None


def _add(result: PullResult, report: Any, batches: int) -> None:
    result.batches += batches
    result.accepted += report.accepted
    result.duplicate += report.duplicate
    for reason, count in report.rejected.items():
        result.rejected[reason] = result.rejected.get(reason, 0) + count


# ---- responder ----

async def serve(stream: Any, store: SyncStore, network: str) -> int:
    """Answer one pull on `stream` for swarm `network`; return the number of records sent."""
    request = _expect(await read_frame(stream, max_bytes=256, timeout=FRAME_TIMEOUT), "digest")
    if request.get("n") != network:         # another swarm on the same LAN: not an error
        await write_frame(stream, {"t": "other_network"})
        return 0
    if await trio.to_thread.run_sync(store.digest) == request.get("d"):
        await write_frame(stream, {"t": "in_sync"})
        return 0
    await write_frame(stream, {"t": "differ"})
    have = _expect(await read_frame(stream, MAX_HAVE_BYTES, FRAME_TIMEOUT), "have").get("h")
    if not isinstance(have, dict):
        raise ProtocolError("'have' must be a map")
    # missing_for runs in ONE worker thread (one DuckDB cursor) and stays at most one batch ahead,
    # so a slow reader holds the producer back instead of filling memory.
    send, receive = trio.open_memory_channel[Any](0)
    failure: ProtocolError | None = None
    sent = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_produce, store, have, send)
        try:
            sent = await _send_batches(stream, receive)
        except ProtocolError as exc:        # raised outside the nursery, not as an ExceptionGroup
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    await write_frame(stream, {"t": "end", "n": sent})
    return sent


async def _send_batches(stream: Any, receive: Any) -> int:
    sent = 0
    async with receive:
        async for item in receive:
            if isinstance(item, ProtocolError):
                raise item
            await write_frame(stream, {"t": "batch", "r": item}, timeout=FRAME_TIMEOUT)
            sent += len(item)
    return sent


async def _produce(store: SyncStore, have: dict[str, Any], send: Any) -> None:
    def handoff(item: Any) -> bool:
        try:
            trio.from_thread.run(send.send, item)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError,
                trio.Cancelled):
            return False             # the reader is gone: stop producing
        return True

    def produce() -> None:
        try:
            for batch in store.missing_for(have, batch_bytes=BATCH_BYTES):
                if not handoff(batch):
                    return
        except ValueError as exc:
            handoff(ProtocolError(f"malformed 'have': {str(exc)[:100]}"))

    async with send:
        # abandon_on_cancel: if the reader fails, the thread ends at its next handoff
        await trio.to_thread.run_sync(produce, abandon_on_cancel=True)
