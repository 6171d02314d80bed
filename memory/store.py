"""The node's memory: one DuckDB file holding every accepted record, typed tables and views.

Ingest is batched: a batch is checked (big ones in helper processes, see batch.py), then written in
one transaction through Arrow (`INSERT OR IGNORE`), so a crash leaves either the whole batch or
none of it. Any two stores that ingested the same set of records, in any order and with any
duplicates, answer every view alike.

DuckDB lets one process hold the file read-write, and then no other process may open it at all;
a connection refuses concurrent use. So a `Store` serialises its writes with a lock, and read-only
browsing of a file nobody holds goes through `ReadOnlyMemory`. Reads (`query`, `read`) run on a
cursor of their own, never under that lock: a slow query cannot hold up ingest, and it can be
stopped (`ReadQuery.cancel`, or its time limit) from another thread. DuckDB's `memory_limit` is per
database; a `Store` sets it (`memory_limit`, default a quarter of RAM, at least 1 GiB) instead of
DuckDB's 80% of RAM, so no query can take the machine.
"""
from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa

from memory import antientropy, codec, reconcile, schema, views
from memory.diskspace import full_disk_cause, full_disk_message
from memory.gcpause import gc_paused
from memory.batch import HelperDecode, SignaturePool, ThreadedDecode
from memory.helpers import HelperPool, default_helpers
from memory.keyset import KeySet
from memory.records import Record
from memory.schema import Row
from memory.sqlguard import SAFE_CONFIG, check_read_only

log = logging.getLogger(__name__)
DB_FORMAT = "1"
HELPER_MIN_BATCH = 1000     # smaller batches are checked in-process (a helper starts in ~0.3 s)
Decoder = ThreadedDecode | HelperDecode


class StoreError(RuntimeError):
    """The memory file cannot be opened or used."""


class DiskFull(StoreError):
    """A write to the memory failed for lack of room; nothing of it was stored."""


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if any: a commit that failed (e.g. disk full) has already
    ended it, and DuckDB's "no transaction is active" would hide the error that mattered."""
    try:
        con.rollback()
    except duckdb.TransactionException:
        pass


@dataclass
class IngestReport:
    """What happened to a batch: accepted, already held, or rejected (by reason)."""

    accepted: int = 0
    duplicate: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    accepted_ids: list[str] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        """Add `other`'s counts to this report."""
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n
        self.accepted_ids += other.accepted_ids

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary (without the id list)."""
        return {"accepted": self.accepted, "duplicate": self.duplicate,
                "rejected": dict(sorted(self.rejected.items()))}


@dataclass
class QueryResult:
    """Columns and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class QueryTimeout(ValueError):
    """A read ran past its time limit and was stopped."""


class ReadQuery:
    """One read-only query on a cursor of its own, which another thread may cancel.

    `cancel()` and the time limit both call DuckDB's `interrupt()`: the query stops within
    milliseconds and its memory is released, instead of running on for a client that has gone.
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection,
                 closed: Callable[[], bool] = lambda: False) -> None:
        self._cursor = cursor
        self._closed = closed           # whether the memory was closed (under this read, maybe)
        self.cancelled = False
        self.interruptible = False      # Ctrl-C stops it, from the main thread (`_fetch`)

    def run(self, sql: str, params: Sequence[Any] = (), timeout_s: float | None = None) -> QueryResult:
        """Check and run `sql`; QueryTimeout past `timeout_s`; duckdb.Error for a bad query."""
        def fetch(cursor: duckdb.DuckDBPyConnection) -> QueryResult:
            found = cursor.execute(sql, list(params))
            return QueryResult([d[0] for d in found.description], found.fetchall())
        return self._run(sql, timeout_s, fetch)

    def run_arrow(self, sql: str, params: Sequence[Any] = (),
                  timeout_s: float | None = None) -> pa.Table:
        """`run`, with the rows as an Arrow table: no Python object per value, so a big result
        converts in DuckDB's C++ (a `fetchall` of 600,000 rows holds the GIL for most of a
        second, stalling every other thread of the process)."""
        # A relation, not `execute`: DuckDB copies a DB-API result once more to make Arrow.
        return self._run(sql, timeout_s,
                         lambda cursor: cursor.sql(sql, params=list(params)).to_arrow_table())

    def _run(self, sql: str, timeout_s: float | None, fetch: Any) -> Any:
        check_read_only(sql)
        timer = None if timeout_s is None else threading.Timer(timeout_s, self._interrupt)
        started = time.monotonic()
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            with self._closing():
                return self._fetch(fetch)
        except duckdb.InterruptException as exc:
            if timeout_s is not None and not self.cancelled:
                raise QueryTimeout(f"query stopped after {time.monotonic() - started:.1f} s "
                                   f"(time limit {timeout_s:g} s; see --query-timeout)") from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._cursor.close()

    def _fetch(self, fetch: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """`fetch(cursor)`; from the main thread, in a thread of its own while the main thread
        waits. DuckDB runs a query without looking at signals, and Python raises Ctrl-C's
        KeyboardInterrupt in the main thread only, between bytecodes: Ctrl-C in `swarm sql`
        waited for the query's end or time limit (120 s), then was a "Query interrupted"
        traceback. A waiting main thread takes it at once: the query is cancelled, and the
        KeyboardInterrupt goes on."""
        if not self.interruptible or threading.current_thread() is not threading.main_thread():
            return fetch(self._cursor)
        done: Future[Any] = Future()

        def work() -> None:
            try:
                done.set_result(fetch(self._cursor))
            except BaseException as exc:            # the caller's to see, in its own thread
                done.set_exception(exc)

        worker = threading.Thread(target=work, name="read", daemon=True)
        worker.start()
        try:
            return done.result()
        except KeyboardInterrupt:
            self.cancel()
            worker.join()
            raise

    @contextlib.contextmanager
    def stream(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The cursor itself, for a read whose rows are fetched bit by bit (sync), closed at the
        end. Closing the memory stops it like any read (StoreError)."""
        try:
            with self._closing():
                yield self._cursor
        finally:
            self._cursor.close()

    @contextlib.contextmanager
    def _closing(self) -> Iterator[None]:
        """A read that the memory's close met raises StoreError, one line, like a read begun
        after: it was interrupted, or its cursor closed with the memory, which DuckDB shows in
        any way (a TypeError from a result whose description vanished, seen under load) or not
        at all (rows cut short). The closed flag is set before anything closes, so checking it
        after the read catches every such read."""
        try:
            yield
        except Exception as exc:
            if self._closed():
                raise StoreError("the memory is closed") from exc
            raise
        if self._closed():
            raise StoreError("the memory is closed")

    def cancel(self) -> None:
        """Stop the query now (from any thread); `run` then raises duckdb.InterruptException."""
        self.cancelled = True
        self._interrupt()

    def _interrupt(self) -> None:
        # The cursor may be closed already, or closing: the time limit's timer can fire just as
        # the query ends, and a DuckDB error there was a traceback on stderr ("Exception in
        # thread").
        with contextlib.suppress(duckdb.Error):
            self._cursor.interrupt()


class Readers:
    """The cursors that readers (queries, sync's streams) take from one root, so it can close.

    DuckDB 2 refuses to close a connection while a cursor made from it runs a query, in any
    thread ("connection is busy with another call"): a node stopped while a dashboard request or
    the background grouping read the memory failed to close it. `close` stops the running
    queries (they raise duckdb.InterruptException) and takes no new ones.
    """

    def __init__(self, root: duckdb.DuckDBPyConnection) -> None:
        self._root = root
        self._live: weakref.WeakSet[ReadQuery] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False

    def open(self) -> ReadQuery:
        """A read on a cursor of its own; StoreError once the memory is closed."""
        with self._lock:
            if self._closed:
                raise StoreError("the memory is closed")
            query = ReadQuery(self._root.cursor(), lambda: self._closed)
            self._live.add(query)
        return query

    def close(self, wait_s: float = 30.0) -> None:
        """Close the root, stopping the queries still running on its cursors."""
        with self._lock:
            self._closed = True
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._root.close()
                return
            except duckdb.ResourceInUseException:
                if time.monotonic() > deadline:
                    raise StoreError("the memory could not be closed: a read would not stop") from None
                for query in list(self._live):
                    query.cancel()
                time.sleep(0.01)


def default_memory_limit() -> str:
    """DuckDB's memory cap for one store: a quarter of RAM, at least 1 GiB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        ram = 8 << 30
    return f"{max(1 << 30, ram // 4) >> 20}MB"


class DamagedMemory(StoreError):
    """A memory file DuckDB finds corrupt (a bad disk block, a copy cut short)."""


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path) if str(path) != ":memory:" else ":memory:", read_only=read_only, config=dict(SAFE_CONFIG))
    except duckdb.Error as exc:
        if (cause := full_disk_cause(exc)) is not None:     # e.g. replaying the log on open
            raise DiskFull(full_disk_message(path.parent, cause)) from None
        if not isinstance(exc, duckdb.IOException):
            if "corrupt" not in str(exc).lower():
                raise
            # a damaged file (a bad disk block, a copy cut short): every command that opened it
            # ended in a traceback (`_duckdb.Error: Corrupt database file: computed checksum ...`)
            raise DamagedMemory(f"{path} is damaged ({str(exc).splitlines()[0]}); move it away "
                                "or use another --home") from exc
        if "lock" in str(exc).lower():
            raise StoreError(f"{path} is held by another process (is `swarm join` running?)") from exc
        raise StoreError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc


DUCKDB_MAGIC = b"DUCK"           # bytes 8-11 of every DuckDB database file


def check_file(path: Path) -> None:
    """Raise StoreError if `path` exists but is not a DuckDB database file (checked by its header,
    before a node creates anything beside it); a missing file is fine (it will be created)."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(12)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
    if header[8:12] != DUCKDB_MAGIC:
        raise StoreError(f"{path} is not a swarm memory (not a DuckDB database file); "
                         "move it away or use another --home")


class Store:
    """Read-write access to one memory file. Thread-safe: every method holds the store's lock."""

    def __init__(self, path: Path | str, helpers: int | None = None,
                 memory_limit: str | None = None) -> None:
        """Open (creating if needed) the memory at `path`; ":memory:" keeps it in RAM (tests).

        Batches of `HELPER_MIN_BATCH` records or more are checked in `helpers` helper processes
        (default: one per core, at most four; 0: never), started on the first such batch.
        `memory_limit` caps DuckDB's memory (reads and writes together; default
        `default_memory_limit()`).
        """
        self.path = Path(path)
        # Called once, from the writing thread, when a write first fails for lack of room (the
        # daemon stops the node); the write raises DiskFull all the same.
        self.on_disk_full: Callable[[DiskFull], None] | None = None
        self._full: DiskFull | None = None
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(self.path, read_only=False)
        self._con.execute("SET memory_limit = ?", [memory_limit or default_memory_limit()])
        # Readers' cursors are made from a connection that never writes, so making one never
        # waits for a batch being written on `_con`.
        self._readers = Readers(self._con.cursor())
        self._lock = threading.RLock()
        self._version = 0                      # bumped on every write; invalidates caches
        self._cache: dict[str, tuple[int, Any]] = {}
        self._signatures = SignaturePool(min(4, os.cpu_count() or 2))
        self._helpers: HelperPool | None = None          # started on the first big batch
        self._helper_count = default_helpers() if helpers is None else helpers
        self._create()
        # 64-bit keys of what the file holds: batches are checked against these in memory
        # instead of by SQL joins that scan every record (see keyset.py).
        self._ids = KeySet(self._column("SELECT id8 AS k FROM records"))
        self._pairs = KeySet(self._column("SELECT hash(author, seq) AS k FROM records"))
        self._keys: reconcile.Index | None = None       # (ts, id8) for sync, built on first use

    def _column(self, sql: str) -> np.ndarray:
        return self._con.execute(sql).fetchnumpy()["k"]

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a write refused for lack of room into DiskFull (one clear line), once noticed."""
        try:
            yield
        except (duckdb.Error, OSError) as exc:
            cause = full_disk_cause(exc)
            if cause is None:
                raise
            first = self._full is None
            self._full = self._full or DiskFull(full_disk_message(self.path.parent, cause))
            if first and self.on_disk_full is not None:
                self.on_disk_full(self._full)
            raise self._full from None

    def _create(self) -> None:
        with self._lock, self._writing():
            # DuckDB checkpoints every 16 MB of log by default, and each checkpoint's cost grows
            # with the table: ingest slowed as the memory grew. 256 MB means 16x fewer of them,
            # for at most a few seconds of log replay after a crash.
            if str(self.path) != ":memory:":
                self._con.execute("SET checkpoint_threshold = '256MB'")
            for statement in schema.ddl() + views.ddl():
                self._con.execute(statement)
            found = self._one("SELECT value FROM meta WHERE key = 'format'")
            if found is None:
                self._con.execute("INSERT INTO meta VALUES ('format', ?)", [DB_FORMAT])
            elif found[0] != DB_FORMAT:
                raise StoreError(f"{self.path} has format {found[0]}; this version reads {DB_FORMAT}")

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._lock:
            self._readers.close()
            self._con.close()
            self._signatures.close()
            if self._helpers is not None:
                self._helpers.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        # fetchall, never fetchone: DuckDB 2.0 refuses further work on a connection whose last
        # result was not read to the end.
        rows = self._con.execute(sql, list(params)).fetchall()
        return rows[0] if rows else None

    # ---- writing -------------------------------------------------------------------------------

    def ingest(self, raws: Iterable[bytes], now: int | None = None) -> IngestReport:
        """Validate raw records and store the new valid ones, all in one transaction."""
        raws = list(raws)
        report = IngestReport()
        with self._lock, gc_paused(), self._writing():
            ids = [codec.peek_id(raw) for raw in raws]
            known = self._known_ids(ids)
            # Records already held skip validation: their content was checked when first stored.
            unseen = [raw for raw, i in zip(raws, ids) if i not in known]
            report.duplicate += len(raws) - len(unseen)
            now = codec.now_ms() if now is None else now
            batch = self._decoder(unseen, now)
            if isinstance(batch, HelperDecode):
                self._write_checked(batch, unseen, now, report)
                return report
            candidates: dict[str, Row] = {}
            for record in batch.parsed():
                candidates.setdefault(record.id, record)
            self._write(batch, list(candidates.values()), report)
        return report

    def _write_checked(self, batch: HelperDecode, raws: list[bytes], now: int,
                       report: IngestReport) -> None:
        """Insert, in one transaction, the rows the helpers built for the batch's valid records."""
        verdicts, tables = batch.outcome()
        for verdict in verdicts:
            if verdict is not None:
                self._count_rejection(verdict, report)
        records = tables.get("records")
        ids: list[str] = [] if records is None else records.column("id").to_pylist()
        if len(set(ids)) != len(ids):
            tables, ids = self._first_copies(raws, verdicts, now, report)
        con = self._con
        con.begin()
        try:
            keys = self._insert_tables(tables) if ids else None
            self._count_rejections_in_transaction(report)
            con.commit()
        except BaseException:
            _rollback(con)
            raise
        if keys is not None:
            rows = tables["records"]
            self._ids.add(keys[0])
            self._pairs.add(keys[1])
            if self._keys is not None:
                self._keys.add(rows.column("ts").to_numpy(), keys[0],
                               rows.column("size").to_numpy().astype(np.int64))
            self._version += 1
        report.accepted += len(ids)
        report.accepted_ids += ids

    @staticmethod
    def _first_copies(raws: list[bytes], verdicts: list[codec.Rejected | None], now: int,
                      report: IngestReport) -> tuple[dict[str, pa.Table], list[str]]:
        """Rows of the first valid copy of each id (the same payload validly signed twice, by two
        signatures of one message: rare, so rebuilt here from the checked records)."""
        fresh: dict[str, Row] = {}
        for raw, verdict in zip(raws, verdicts):
            row = codec.read_envelope(raw, now) if verdict is None else None
            if row is None:
                continue
            if row.id in fresh:
                report.duplicate += 1
            else:
                fresh[row.id] = row
        rows = list(fresh.values())
        return (schema.tables(rows) if rows else {}), [r.id for r in rows]

    def _count_rejections_in_transaction(self, report: IngestReport) -> None:
        for reason, n in report.rejected.items():
            self._con.execute("INSERT INTO rejections VALUES (?, ?) ON CONFLICT (reason) "
                              "DO UPDATE SET n = n + excluded.n", [reason, n])

    def _write(self, batch: ThreadedDecode, candidates: list[Row], report: IngestReport) -> None:
        """Insert the batch's records in one transaction, committed once every check has passed.

        The rows go in while the records are still being checked elsewhere, so the insert
        overlaps the checking. A record that fails (rare: a forger, a corrupted copy) means
        rolling back and inserting again without it, still before anything is committed.
        """
        con = self._con
        con.begin()
        try:
            try:
                keys = self._insert_records(candidates)
                prepared = True
            except Exception:  # noqa: BLE001 - unchecked rows; redone below from checked ones
                # Rows read by `codec.read_envelope` are not validated yet, and a hostile
                # record can make them unbuildable. The checked rows always build.
                con.rollback()
                con.begin()
                prepared = False
            fresh = self._verdicts(batch, report)
            if (not prepared or len(fresh) != len(candidates)
                    or any(fresh[r.id] is not r for r in candidates)):
                con.rollback()
                con.begin()
                keys = self._insert_records(list(fresh.values()))
            self._count_rejections_in_transaction(report)
            con.commit()
        except BaseException:
            _rollback(con)
            raise
        records = list(fresh.values())
        if records:
            id_keys, pair_keys = keys
            self._ids.add(id_keys)
            self._pairs.add(pair_keys)
            if self._keys is not None:
                self._keys.add(np.array([r.ts for r in records], dtype=np.int64),
                               np.array([int(r.id[:16], 16) for r in records], dtype=np.uint64),
                               np.array([len(r.raw) for r in records], dtype=np.int64))
            self._version += 1
        report.accepted += len(records)
        report.accepted_ids += [r.id for r in records]

    def _verdicts(self, batch: ThreadedDecode, report: IngestReport) -> dict[str, Row]:
        """The batch's valid records by id (the first valid copy of each); counts the rest."""
        fresh: dict[str, Row] = {}
        for result in batch.results():
            if isinstance(result, codec.Rejected):
                self._count_rejection(result, report)
            elif result.id in fresh:
                report.duplicate += 1
            else:
                fresh[result.id] = result
        return fresh

    def _insert_records(self, records: list[Row]) -> tuple[np.ndarray, np.ndarray]:
        """Insert rows for `records` (none held yet) into every table; their id and pair keys."""
        if not records:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64)
        return self._insert_tables(schema.tables(records))

    def _insert_tables(self, tables: dict[str, pa.Table]) -> tuple[np.ndarray, np.ndarray]:
        """Insert `schema.tables` of records none held yet; their id and pair keys."""
        rows = tables["records"]
        inserted = self._insert("records", rows)
        if inserted != rows.num_rows:      # the id filter let a held record through
            raise StoreError(f"batch of {rows.num_rows} inserted {inserted} records")
        for table, typed_rows in tables.items():
            if table != "records":
                self._insert(table, typed_rows)
        return (rows.column("id8").to_numpy(),
                self._flag_equivocations(rows.select(["author", "seq"])))

    def _decoder(self, raws: list[bytes], now: int) -> Decoder:
        """Helper processes check a big batch (started now if need be); threads, a small one."""
        if len(raws) < HELPER_MIN_BATCH or self._helper_count < 1:
            return ThreadedDecode(raws, now, self._signatures)
        if self._helpers is not None and not self._helpers.alive:
            # A helper died (killed, out of memory): its checks were redone in this process.
            # Do not keep paying for helpers that may die again; threads are slower but sure.
            log.warning("record-checking helpers stopped; checking records in-process")
            self._helpers.close()
            self._helpers, self._helper_count = None, 0
            return ThreadedDecode(raws, now, self._signatures)
        if self._helpers is None:
            try:
                self._helpers = HelperPool(self._helper_count)
            except OSError as exc:
                log.warning("cannot start record-checking helpers (%s); checking in-process", exc)
                self._helper_count = 0
                return ThreadedDecode(raws, now, self._signatures)
        return HelperDecode(raws, now, self._helpers)

    def helper_pids(self) -> list[int]:
        """Process ids of the running record-checking helpers (none until a big batch)."""
        with self._lock:
            return [] if self._helpers is None else self._helpers.pids

    def add(self, records: Iterable[Record]) -> IngestReport:
        """Store this node's own freshly signed records (re-validated like everyone else's)."""
        return self.ingest(record.raw for record in records)

    def count_rejections(self, counts: dict[str, int]) -> None:
        """Add records refused before ingest (gossip validation, quotas) to `rejections`."""
        if not counts:
            return
        with self._lock, self._writing():
            self._con.executemany("INSERT INTO rejections VALUES (?, ?) ON CONFLICT (reason) "
                                  "DO UPDATE SET n = n + excluded.n", list(counts.items()))

    @staticmethod
    def _count_rejection(rejected: codec.Rejected, report: IngestReport) -> None:
        reason = rejected.reason.value
        report.rejected[reason] = report.rejected.get(reason, 0) + 1
        log.debug("rejected record (%s): %s", reason, rejected.detail)

    def _known_ids(self, ids: Sequence[str | None]) -> set[str]:
        present = [i for i in ids if i is not None]
        maybe = self._ids.contains(np.array([int(i[:16], 16) for i in present], dtype=np.uint64))
        candidates = [i for i, hit in zip(present, maybe) if hit]
        if not candidates:              # the usual case: nothing in the batch is held already
            return set()
        self._con.register("_peek", pa.table({"id": pa.array(candidates, pa.string())}))
        try:
            rows = self._con.execute(
                "SELECT id FROM records WHERE id IN (SELECT id FROM _peek)").fetchall()
        finally:
            self._con.unregister("_peek")
        return {row[0] for row in rows}

    def _insert(self, table: str, rows: pa.Table) -> int:
        verb = "INSERT OR IGNORE" if table == "records" else "INSERT"   # only records has a key
        self._con.register("_batch", rows)
        try:
            return self._con.execute(
                f"{verb} INTO {table} BY NAME SELECT * FROM _batch").fetchall()[0][0]
        finally:
            self._con.unregister("_batch")

    def _flag_equivocations(self, pairs: pa.Table) -> np.ndarray:
        """Record (author, seq) pairs now held under two ids; return the batch's pair keys."""
        self._con.register("_pairs", pairs)
        try:
            keys = self._column("SELECT hash(author, seq) AS k FROM _pairs")
            _, first = np.unique(keys, return_index=True)
            repeated = np.ones(keys.size, dtype=bool)
            repeated[first] = False                       # a pair twice within this batch
            suspects = self._pairs.contains(keys) | np.isin(keys, keys[repeated])
            if suspects.any():        # rare: only then pay for a query over the records table
                self._con.register("_suspects", pairs.filter(pa.array(suspects)))
                self._con.execute(
                    "INSERT OR IGNORE INTO equivocations "
                    "SELECT r.author, r.seq FROM records r "
                    "JOIN (SELECT DISTINCT author, seq FROM _suspects) p "
                    "  ON r.author = p.author AND r.seq = p.seq "
                    "GROUP BY r.author, r.seq HAVING count(*) > 1")
                self._con.unregister("_suspects")
        finally:
            self._con.unregister("_pairs")
        return keys

    # ---- reading -------------------------------------------------------------------------------

    def read(self) -> ReadQuery:
        """A cancellable read on a cursor of its own (a consistent snapshot, no lock held)."""
        return self._readers.open()

    def query(self, sql: str, params: Sequence[Any] = (), timeout_s: float | None = None) -> QueryResult:
        """Run a read-only SELECT (checked) on its own cursor and return all rows."""
        return self.read().run(sql, params, timeout_s)

    def query_arrow(self, sql: str, params: Sequence[Any] = (),
                    timeout_s: float | None = None) -> pa.Table:
        """`query`, with the rows as an Arrow table (ReadQuery.run_arrow)."""
        return self.read().run_arrow(sql, params, timeout_s)

    def get(self, record_id: str) -> Record | None:
        """The record with this id, decoded, or None."""
        with self._lock:
            row = self._one("SELECT raw FROM records WHERE id = ?", [record_id])
        return None if row is None else codec.decode(row[0], now=2**52)

    def count(self) -> int:
        """How many records the store holds."""
        with self._lock:
            return self._one("SELECT count(*) FROM records")[0]

    def next_seq(self, author: str) -> int:
        """The seq `author`'s next record should carry (1 + the highest held)."""
        with self._lock:
            row = self._one("SELECT coalesce(max(seq), 0) FROM records WHERE author = ?", [author])
        return int(row[0]) + 1

    # ---- anti-entropy --------------------------------------------------------------------------

    def _cached(self, key: str, compute: Any) -> Any:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        value = compute(self._con)
        self._cache[key] = (self._version, value)
        return value

    def digest(self) -> bytes:
        """16 bytes that differ (practically always) when two stores hold different sets."""
        with self._lock:
            return self._cached("digest", antientropy.digest)

    def have(self) -> dict[str, list[Any]]:
        """What this store holds, compactly: {author: [max_seq, [[lo, hi], ...gaps], xor8]}."""
        with self._lock:
            return self._cached("have", antientropy.have)

    def seq_vector(self) -> dict[str, int]:
        """Per author, the highest seq s such that seqs 1..s are all held."""
        return {author: (gaps[0][0] - 1 if gaps else top)
                for author, (top, gaps, _xor) in self.have().items()}

    def missing_for(self, have: Any, batch_bytes: int = 256 * 1024,
                    on_read: Callable[[Callable[[], None]], None] | None = None
                    ) -> Iterator[list[bytes]]:
        """Raw records the holder of `have` lacks, in batches of about `batch_bytes`.

        Streams from a reader's cursor (a consistent snapshot), so a long catch-up never holds
        the store's lock while the caller sends batches over the network; closing the memory
        stops it (StoreError), as it stops every read. `on_read(cancel)` hears how to stop the
        read from another thread (it then raises duckdb.InterruptException). `have` is a
        summary as received, or one parsed already (`antientropy.parse_have`).
        """
        peer = have if isinstance(have, antientropy.Have) else antientropy.parse_have(have)
        with self._read(on_read) as cursor:
            yield from antientropy.batches(antientropy.missing(cursor, peer), batch_bytes)

    @contextlib.contextmanager
    def _read(self, on_read: Callable[[Callable[[], None]], None] | None
              ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A streaming read's cursor; `on_read` gets the read's cancel first."""
        query = self._readers.open()
        with query.stream() as cursor:
            if on_read is not None:
                on_read(query.cancel)
            yield cursor

    def reconcile_snapshot(self) -> reconcile.Snapshot:
        """Every held record's (ts, id8) key, sorted, for range-based reconciliation (sync 2.0.0)."""
        with self._lock:
            if self._keys is None:
                found = self._con.execute(
                    "SELECT ts, id8, size FROM records ORDER BY ts, id8").fetchnumpy()
                self._keys = reconcile.Index(found["ts"], found["id8"], found["size"])
            return self._keys.snapshot()

    def records_by_keys(self, keys: np.ndarray | None, batch_bytes: int = 256 * 1024,
                        span: tuple[int, int] | None = None,
                        on_read: Callable[[Callable[[], None]], None] | None = None
                        ) -> Iterator[list[bytes]]:
        """The raw records whose id8 is in `keys` (None: every record), in batches of about
        `batch_bytes`; with `span` (the lowest and highest ts among them), in (ts, id8) order.

        A span lets DuckDB skip the row groups outside it (their ts min/max), so one sync round
        reads its own records, not every record held. Streams from its own cursor, like
        `missing_for`, so the lock is not held while sending (and `on_read` as there)."""
        with self._read(on_read) as cursor:
            if keys is None:
                result = cursor.execute("SELECT raw FROM records")
            else:
                cursor.register("_want", pa.table({"k": pa.array(keys, pa.uint64())}))
                low, high = span if span is not None else (0, 2**63 - 1)
                result = cursor.execute(
                    "SELECT raw FROM records WHERE ts BETWEEN ? AND ? "
                    "AND id8 IN (SELECT k FROM _want) ORDER BY ts, id8", [low, high])
            yield from antientropy.batches(antientropy.raws(result), batch_bytes)

    def stats(self) -> dict[str, Any]:
        """Counts per kind, rejections by reason, flagged authors, bytes on disk."""
        return {**memory_stats(self), "file_bytes": file_bytes(self.path)}


class Reader(Protocol):
    """Anything that answers read-only SQL: a Store, a ReadOnlyMemory, or a daemon's API client."""

    def query(self, sql: str, params: Sequence[Any] = (),
              timeout_s: float | None = None) -> QueryResult: ...


def memory_stats(reader: Reader) -> dict[str, Any]:
    """Counts per kind, rejections by reason, flagged authors and database size, via SQL only."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return reader.query(sql).rows
    total, authors, size = rows("SELECT count(*), count(DISTINCT author), "
                                "coalesce(sum(size), 0) FROM records")[0]
    return {
        "records": total, "authors": authors, "record_bytes": int(size),
        "by_kind": dict(rows("SELECT kind, count(*) FROM records GROUP BY kind ORDER BY kind")),
        "rejected": dict(rows("SELECT reason, n FROM rejections ORDER BY reason")),
        "flagged_authors": rows("SELECT count(*) FROM flagged_authors")[0][0],
    }


def file_bytes(path: Path) -> int:
    """Bytes on disk of a memory file and its write-ahead log."""
    wal = path.with_name(path.name + ".wal")
    return sum(p.stat().st_size for p in (path, wal) if p.exists())


class ReadOnlyMemory:
    """Browse a memory file no process holds: read-only, external access off."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"no memory at {self.path}")
        self._con = _connect(self.path, read_only=True)
        self._con.execute("SET memory_limit = ?", [default_memory_limit()])
        self._readers = Readers(self._con)

    def query(self, sql: str, params: Sequence[Any] = (), timeout_s: float | None = None) -> QueryResult:
        """Run a read-only SELECT (checked) and return all rows; QueryTimeout past `timeout_s`.
        Ctrl-C stops it at once (ReadQuery._fetch)."""
        return self._read().run(sql, params, timeout_s)

    def query_arrow(self, sql: str, params: Sequence[Any] = (),
                    timeout_s: float | None = None) -> pa.Table:
        """`query`, with the rows as an Arrow table (ReadQuery.run_arrow)."""
        return self._read().run_arrow(sql, params, timeout_s)

    def _read(self) -> ReadQuery:
        read = self._readers.open()
        read.interruptible = True       # what the CLI browses with: a person may press Ctrl-C
        return read

    def stats(self) -> dict[str, Any]:
        """As `Store.stats`."""
        return {**memory_stats(self), "file_bytes": file_bytes(self.path)}

    def close(self) -> None:
        """Close the file, stopping the reads still running."""
        self._readers.close()
