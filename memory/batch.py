"""Decoding a batch of raw records, with the checks running beside the thread that prepares rows.

Two ways, one interface: construct, then `parsed()` (records to prepare rows from, not yet to be
trusted), then `results()` (every input's verdict, in order; waits for the checks).

- `ThreadedDecode`, for small batches: this thread parses and validates each record while a
  thread pool checks signatures (libsodium releases the GIL while it verifies).
- `HelperDecode`, for big batches: helper processes (helpers.py) do every check, and this thread
  only reads envelopes (`codec.read_envelope`) to prepare the rows meanwhile. The GIL made the
  threaded way lose about half its overlap on 2 cores; processes do not share it.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from memory import check_worker, codec, crypto
from memory.codec import Decoded, Reason, Rejected
from memory.helpers import HelperGone, HelperPool
from memory.records import Record

Check = tuple[str, bytes, bytes]          # author peer id, signed payload, signature


def verify_many(checks: Sequence[Check]) -> list[bool]:
    """Check each signature in this thread."""
    return [crypto.verify(author, payload, signature) for author, payload, signature in checks]


class SignaturePool:
    """Threads that check signatures."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")

    def submit(self, checks: Sequence[Check]) -> Future[list[bool]]:
        """Start checking `checks`; the future gives their verdicts in order."""
        return self._pool.submit(verify_many, checks)

    def close(self) -> None:
        """Finish pending checks and stop the threads."""
        self._pool.shutdown()


class ThreadedDecode:
    """Parse and validate here, chunk by chunk, while `pool` checks each chunk's signatures."""

    def __init__(self, raws: Sequence[bytes], now: int, pool: SignaturePool | None,
                 chunk: int = 256) -> None:
        self._results: list[Record | Rejected] = []
        self._pending: list[tuple[list[int], Any]] = []
        todo: list[int] = []
        checks: list[Check] = []
        for raw in raws:
            try:
                record, payload = codec.parse_unsigned(raw, now)
            except Rejected as rejected:
                self._results.append(rejected)
                continue
            todo.append(len(self._results))
            checks.append((record.author, payload, record.signature))
            self._results.append(record)
            if len(todo) >= chunk:
                self._pending.append((todo, pool.submit(checks) if pool else verify_many(checks)))
                todo, checks = [], []
        if todo:
            self._pending.append((todo, pool.submit(checks) if pool else verify_many(checks)))

    def parsed(self) -> list[Record]:
        """Records that passed every check but (perhaps not yet) the signature's."""
        return [r for r in self._results if isinstance(r, Record)]

    def results(self) -> list[Record | Rejected]:
        """Every input's outcome, in order (waits for the signature checks)."""
        for indexes, verdicts in self._pending:
            verdicts = verdicts.result() if isinstance(verdicts, Future) else verdicts
            for i, ok in zip(indexes, verdicts, strict=True):
                if not ok:
                    self._results[i] = Rejected(Reason.BAD_SIGNATURE)
        self._pending = []
        return self._results


class HelperDecode:
    """Every check in helper processes; here, only the envelopes are read to prepare rows."""

    def __init__(self, raws: Sequence[bytes], ids: Sequence[str | None], now: int,
                 helpers: HelperPool, chunk: int = 256) -> None:
        self._now = now
        # Send everything first, so the helpers start while this thread reads envelopes.
        self._chunks: list[tuple[int, Sequence[bytes], Future[list[Any]] | None]] = []
        for start in range(0, len(raws), chunk):
            part = raws[start:start + chunk]
            try:
                future: Future[list[Any]] | None = helpers.check(part, now)
            except HelperGone:
                future = None                    # checked here when the verdicts are wanted
            self._chunks.append((start, part, future))
        self._rows = [codec.read_envelope(raw, now, i) for raw, i in zip(raws, ids)]

    def parsed(self) -> list[Decoded]:
        """Rows for records whose envelope reads; not yet checked."""
        return [row for row in self._rows if row is not None]

    def results(self) -> list[Decoded | Record | Rejected]:
        """Every input's outcome, in order (waits for the helpers)."""
        out: list[Decoded | Record | Rejected] = []
        for start, part, future in self._chunks:
            for i, verdict in enumerate(self._verdicts(part, future)):
                row = self._rows[start + i]
                if verdict is not None:
                    out.append(Rejected(Reason(verdict[0]), verdict[1]))
                elif row is not None:
                    out.append(row)
                else:     # cannot happen (read_envelope checks a subset of decode's); be sure
                    out.append(_decode_here(part[i], self._now))
        return out

    def _verdicts(self, part: Sequence[bytes], future: Future[list[Any]] | None) -> list[Any]:
        if future is not None:
            try:
                verdicts = future.result()
            except HelperGone:
                pass                 # the helper died: check here (slower, same verdicts)
            else:
                if len(verdicts) == len(part):
                    return verdicts
        return check_worker.check(list(part), self._now)


def _decode_here(raw: bytes, now: int) -> Record | Rejected:
    try:
        return codec.decode(raw, now)
    except Rejected as rejected:
        return rejected
