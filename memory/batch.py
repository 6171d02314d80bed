"""Decoding a batch of raw records, with the checks running beside the thread that prepares rows.

Two ways, one interface: construct, then `parsed()` (records to prepare rows from, not yet to be
trusted), then `results()` (every input's verdict, in order; waits for the checks).

- `ThreadedDecode`, for small batches: this thread parses and validates each record while a
  thread pool checks signatures (libsodium releases the GIL while it verifies).
- `HelperDecode`, for big batches: helper processes (helpers.py) do every check and build the
  valid records' rows (Arrow tables), so each record is parsed once and this thread only inserts.
  The GIL made the threaded way lose about half its overlap on 2 cores; processes do not share
  it. (It has its own interface: `outcome()`.)
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from memory import check_worker, codec, crypto
from memory.codec import Reason, Rejected
from memory.helpers import Answer, HelperGone, HelperPool
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
    """Every check, and the rows of the valid records, in helper processes."""

    def __init__(self, raws: Sequence[bytes], now: int, helpers: HelperPool,
                 chunk: int = 256) -> None:
        self._now = now
        self._chunks: list[tuple[Sequence[bytes], Future[Answer] | None]] = []
        for start in range(0, len(raws), chunk):
            part = raws[start:start + chunk]
            try:
                future: Future[Answer] | None = helpers.check(part, now)
            except HelperGone:
                future = None                    # checked here when the verdicts are wanted
            self._chunks.append((part, future))

    def outcome(self) -> tuple[list[Rejected | None], dict[str, pa.Table]]:
        """Every input's verdict in order (None: valid), and the valid records' rows by table
        (`schema.tables`, in input order); waits for the helpers."""
        verdicts: list[Rejected | None] = []
        parts: dict[str, list[pa.Table]] = {}
        for part, future in self._chunks:
            answers, tables = self._answer(part, future)
            verdicts += [None if v is None else Rejected(Reason(v[0]), v[1]) for v in answers]
            for name, table in tables.items():
                parts.setdefault(name, []).append(table)
        return verdicts, {name: pa.concat_tables(tables) for name, tables in parts.items()}

    def _answer(self, part: Sequence[bytes], future: Future[Answer] | None
                ) -> tuple[list[Any], check_worker.Tables]:
        if future is not None:
            try:
                verdicts, tables = future.result()
            except HelperGone:
                pass                 # the helper died: check here (slower, same verdicts)
            else:
                if len(verdicts) == len(part):
                    return verdicts, check_worker.from_ipc(tables)
        return check_worker.check(list(part), self._now)
