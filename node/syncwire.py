"""What both sync versions share: the pull result, frame checks, batched ingest, record producer.

The requester reads record batches ahead while its store ingests them (READ_AHEAD batches, every
batch already read in one transaction), each batch first admitted against the sync quotas (a
`Ration`, node/syncquota.py: records over quota are dropped, never stored); the responder reads
records from its store in one worker thread that stays one batch ahead of the network, so a slow
reader holds it back, and whose read is interrupted when the exchange ends (`Stop`). That
thread's CPU (the store's query, the records it reads) is charged to the requester's budget, and
the exchange waits while it is spent before each frame it writes (node/servework.py).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from memory.codec import MAX_RECORD_BYTES
from node.framing import ProtocolError, write_frame
from node.servework import Work, mark, settle

BATCH_BYTES = 256 * 1024
MAX_BATCH_RECORDS = 4096
MAX_STALE_BATCHES = 3                    # batches in a row with nothing new: the peer is looping
READ_AHEAD = 4                           # batches read while the store ingests (~1 MB)
MAX_INGEST_RECORDS = 8192                # records per ingest transaction
# a stalled peer is dropped after this long (tests shorten it through the environment)
FRAME_TIMEOUT = float(os.environ.get("SWARM_SYNC_FRAME_TIMEOUT", "15"))
STOP_POLL_S = 0.05                       # a stopped producer's read is interrupted this often


@dataclass
class PullResult:
    """What one pull from a peer brought, and what it cost on the wire."""

    in_sync: bool = False
    batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    protocol: str = ""
    rounds: int = 0               # request/answer round trips after the opening one
    sketches: int = 0             # 2.1.0 sketch requests sent, and how many did not decode
    sketches_failed: int = 0
    record_bytes: int = 0         # bytes of the raw records received
    bytes_read: int = 0           # sync frames, both ways, headers included
    bytes_written: int = 0
    queued_bytes: int = 0         # records read from the stream and not yet ingested
    dropped: dict[str, int] = field(default_factory=dict)   # over quota, by reason (not stored)


class Ration(Protocol):
    """Admission of a pull's records before ingest (node/syncquota.py `SyncRation`)."""

    dropped: dict[str, int]

    async def admit(self, raws: list[bytes]) -> list[bytes]:
        """The records of one batch within quota (the rest are dropped and counted)."""

    def settle(self, batches: int, accepted_ids: list[str]) -> None:
        """After ingesting the next `batches` (non-empty) batches `admit` kept: these ids were
        stored."""


def expect(message: Any, kind: str) -> dict[str, Any]:
    """`message` if it is a frame of type `kind`, else ProtocolError."""
    if not isinstance(message, dict) or message.get("t") != kind:
        got = message.get("t") if isinstance(message, dict) else type(message).__name__
        raise ProtocolError(f"expected a {kind!r} frame, got {str(got)[:40]!r}")
    return message


def check_batch(records: Any) -> list[bytes]:
    """The records of a batch frame, if it is a list of at most 4096 raw records of legal size."""
    if not isinstance(records, list) or len(records) > MAX_BATCH_RECORDS:
        raise ProtocolError("a batch must be a list of at most 4096 records")
    for raw in records:
        if not isinstance(raw, bytes) or len(raw) > MAX_RECORD_BYTES:
            raise ProtocolError("a batch holds a non-bytes or oversize record")
    return records


async def ingest_batches(receive: Any, store: Any, result: PullResult,
                         on_batch: Callable[[Any], None] | None,
                         ration: Ration | None = None) -> None:
    """Ingest the batches arriving on `receive` (several per transaction when they queue up);
    a ProtocolError item, invalid records or a run of stale batches end the pull. `ration`
    admitted them as they arrived and hears what was stored."""
    stale = 0
    async with receive:
        async for item in receive:
            group, failure = _drain([item], receive)
            records = [raw for batch in group for raw in batch]
            if records:
                report = await trio.to_thread.run_sync(store.ingest, records)
                if ration is not None:
                    ration.settle(sum(1 for batch in group if batch), report.accepted_ids)
                _add(result, report, group)
                result.queued_bytes -= sum(len(raw) for raw in records)
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


def _add(result: PullResult, report: Any, group: list[list[bytes]]) -> None:
    result.batches += len(group)
    result.record_bytes += sum(len(raw) for batch in group for raw in batch)
    result.accepted += report.accepted
    result.duplicate += report.duplicate
    for reason, count in report.rejected.items():
        result.rejected[reason] = result.rejected.get(reason, 0) + count


async def read_and_ingest(reader: Callable[[Any], Any], store: Any, result: PullResult,
                          on_batch: Callable[[Any], None] | None,
                          read_ahead: float = READ_AHEAD, ration: Ration | None = None) -> None:
    """Run `reader(push)` beside the ingester: `await push(batch)` hands a batch over (waiting
    while `read_ahead` batches are queued); a ProtocolError the reader raises ends the pull.
    `ration` admits each batch as it is pushed, so while the store ingests one group (None: all);
    records over quota are never queued, and a batch of nothing but those is neither stale nor
    a violation."""
    send, receive = trio.open_memory_channel[Any](read_ahead)

    async def push(batch: list[bytes]) -> None:
        if ration is not None and batch:
            batch = await ration.admit(batch)
            result.dropped = dict(ration.dropped)
            if not batch:
                return
        result.queued_bytes += sum(len(raw) for raw in batch)
        await send.send(batch)

    async def read() -> None:
        async with send:
            try:
                await reader(push)
            except ProtocolError as exc:
                await send.send(exc)

    failure: ProtocolError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        try:
            await ingest_batches(receive, store, result, on_batch, ration)
        except ProtocolError as exc:        # raised outside the nursery, not as an ExceptionGroup
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure


class Stop:
    """How the trio side stops a producer running in a worker thread: `stop()` interrupts the
    store's read it registered (`attach`, a ReadQuery's cancel, memory/store.py), again every
    STOP_POLL_S until the thread has ended: an interrupt DuckDB receives just before the query
    starts is forgotten, and a query left to run was hours of CPU on a hostile request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] | None = None
        self.stopped = False
        self.started = False
        self.done = threading.Event()

    def attach(self, cancel: Callable[[], None]) -> None:
        """The producer's read (in its thread): `cancel()` stops it from any thread."""
        with self._lock:
            self._cancel = cancel
            stopped = self.stopped
        if stopped:
            cancel()

    def begin(self) -> bool:
        """The producer thread starts: False if it was stopped already (then it must not)."""
        with self._lock:
            self.started = not self.stopped
            return self.started

    def stop(self) -> None:
        """Stop the producer (trio side, never blocks): interrupt its read until it has ended."""
        with self._lock:
            self.stopped = True
            started = self.started
        if started and not self.done.is_set():
            threading.Thread(target=self._interrupt, name="sync-stop", daemon=True).start()

    def _interrupt(self) -> None:
        while True:
            with self._lock:
                cancel = self._cancel
            if cancel is not None:
                cancel()
            if self.done.wait(STOP_POLL_S):
                return


async def send_records(stream: Any, produce: Callable[[Stop], Iterator[list[bytes]]],
                       timeout: float = FRAME_TIMEOUT, work: Work | None = None) -> int:
    """Send the batches `produce(stop)` yields (run in ONE worker thread, one DuckDB cursor) as
    batch frames; return the number of records sent. A ValueError while producing is the peer's
    (its request was malformed): ProtocolError. The producer passes its read's cancel to
    `stop.attach`: when the exchange ends early (the peer gone, a cancelled serve), the read is
    interrupted, not left running in an abandoned thread. The producer thread's CPU is charged
    to `work` as each batch is read, and before each batch frame the exchange waits while that
    budget is spent (`settle`: at most MAX_WAIT_S, under the requester's frame deadline; the
    next batch is read meanwhile, so the frame follows the wait at once)."""
    send, receive = trio.open_memory_channel[Any](0)
    failure: ProtocolError | None = None
    sent = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_produce, produce, send, work)
        try:
            sent = await _send_batches(stream, receive, timeout, work)
        except ProtocolError as exc:        # raised outside the nursery, not as an ExceptionGroup
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return sent


async def _send_batches(stream: Any, receive: Any, timeout: float, work: Work | None) -> int:
    sent = 0
    async with receive:
        async for item in receive:
            if isinstance(item, ProtocolError):
                raise item
            await settle(work)
            await write_frame(stream, {"t": "batch", "r": item}, timeout=timeout)
            mark(work)
            sent += len(item)
    await settle(work)                  # the last batch's read, before the frame that follows
    return sent


async def _produce(produce: Callable[[Stop], Iterator[list[bytes]]], send: Any,
                   work: Work | None) -> None:
    def handoff(item: Any) -> bool:
        try:
            trio.from_thread.run(send.send, item)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError,
                trio.Cancelled):
            return False             # the reader is gone: stop producing
        return True

    stop = Stop()

    def run() -> None:
        if not stop.begin():
            return
        charge = _Charge(work)
        try:
            for batch in produce(stop):
                charge()                        # this batch's read, before the reader waits
                if not handoff(batch):
                    return
        except ValueError as exc:
            if not stop.stopped:
                handoff(ProtocolError(f"malformed request: {str(exc)[:100]}"))
        except Exception:
            if not stop.stopped:                # interrupted because we stopped it: expected
                raise
        finally:
            charge()
            stop.done.set()

    async with send:
        # abandon_on_cancel: the trio side need not wait, and the thread (which holds a token of
        # trio's thread limiter until it ends) stops now, its read interrupted
        try:
            await trio.to_thread.run_sync(run, abandon_on_cancel=True)
        finally:
            stop.stop()


class _Charge:
    """Charges the calling thread's CPU since the last call (or since made) to `work`: the
    producer thread's own time, as `Work.run` charges a job's (DuckDB's helper threads, when a
    query uses them, are not counted)."""

    def __init__(self, work: Work | None) -> None:
        self.work, self.mark = work, time.thread_time()

    def __call__(self) -> None:
        if self.work is not None:
            now = time.thread_time()
            self.work.charge(now - self.mark)
            self.mark = now
