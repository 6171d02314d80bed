"""The store's read path: its own cursor (never the write lock), a time limit, cancellation."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from memory.sqlguard import UnsafeQuery
from memory.store import QueryTimeout, ReadOnlyMemory, Store, StoreError
from swarm.bench import memory_gen

SLOW_SQL = "SELECT sum(hash(i)) FROM range(10000000000000) t(i)"


def test_a_read_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb", helpers=0)
    answered = threading.Event()
    with store._lock:                           # a batch being written holds this lock
        worker = threading.Thread(target=lambda: (store.query("SELECT count(*) FROM records"),
                                                  answered.set()))
        worker.start()
        assert answered.wait(30), "the read waited for the write lock"
    worker.join()
    store.close()


def test_a_read_past_its_time_limit_is_stopped(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb", helpers=0)
    with pytest.raises(QueryTimeout, match="time limit 0.2 s"):
        store.query(SLOW_SQL, timeout_s=0.2)
    with pytest.raises(QueryTimeout, match="time limit 0.2 s"):
        store.query_arrow(SLOW_SQL, timeout_s=0.2)
    assert store.query("SELECT count(*) FROM records").rows == [(0,)]   # the store still answers
    store.close()
    memory = ReadOnlyMemory(tmp_path / "m.duckdb")
    with pytest.raises(QueryTimeout):
        memory.query(SLOW_SQL, timeout_s=0.2)
    with pytest.raises(QueryTimeout):
        memory.query_arrow(SLOW_SQL, timeout_s=0.2)
    memory.close()


def test_an_arrow_read_answers_as_a_read_does(tmp_path: Path) -> None:
    """`query_arrow` gives the rows `query` gives, as an Arrow table, and is checked the same."""
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        sql = "SELECT i, 'k' || i AS s FROM range(?) t(i) ORDER BY i"
        table = store.query_arrow(sql, [5])
        assert table.column_names == ["i", "s"]
        assert list(zip(*(c.to_pylist() for c in table.columns))) == store.query(sql, [5]).rows
        with pytest.raises(UnsafeQuery):
            store.query_arrow("DELETE FROM records")


def test_a_cancelled_read_stops_and_the_memory_cap_is_set(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb", helpers=0, memory_limit="300MB")
    read = store.read()
    threading.Timer(0.2, read.cancel).start()
    with pytest.raises(duckdb.InterruptException):
        read.run(SLOW_SQL)
    assert read.cancelled
    limit = store.query("SELECT current_setting('memory_limit')").rows[0][0]
    assert limit.endswith("MiB") and float(limit.split()[0]) < 300
    with pytest.raises(duckdb.Error, match='Referenced column "nope" not found'):
        store.query("SELECT nope FROM records")
    store.close()


@pytest.mark.parametrize("kind", ["store", "read-only"])
def test_closing_stops_the_reads_still_running(tmp_path: Path, kind: str) -> None:
    """DuckDB refuses to close a connection whose cursor runs a query in another thread: a node
    stopped during a dashboard request or the background grouping failed to close its memory."""
    Store(tmp_path / "m.duckdb", helpers=0).close()
    memory = Store(tmp_path / "m.duckdb", helpers=0) if kind == "store" \
        else ReadOnlyMemory(tmp_path / "m.duckdb")
    ended: list[BaseException] = []

    def read() -> None:
        try:
            memory.query(SLOW_SQL)
        except BaseException as exc:                 # noqa: BLE001 - what stopped it is checked
            ended.append(exc)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)                              # most likely running by now; either way ...
    memory.close()                               # ... closing neither raises nor waits for it
    reader.join(60)
    assert not reader.is_alive() and len(ended) == 1
    assert isinstance(ended[0], (duckdb.InterruptException, StoreError))
    with pytest.raises(StoreError, match="^the memory is closed$"):
        memory.query("SELECT 1")


def test_closing_stops_a_sync_stream_under_way(tmp_path: Path) -> None:
    """Sync streams a peer's missing records from a cursor of the writing connection, outside the
    lock; DuckDB refused to close that connection while the stream's query ran ("connection is
    busy"), so a node whose libp2p thread was still serving a catch-up failed to close its memory.
    The stream is a read like the others now: closing stops it (StoreError)."""
    memory_gen.build(tmp_path / "m.duckdb", 2000, authors=1)
    store = Store(tmp_path / "m.duckdb", helpers=0)
    first, closed, ended = threading.Event(), threading.Event(), []

    def stream() -> None:
        try:                    # a peer that holds nothing: every record, in small batches
            for _ in store.missing_for({}, batch_bytes=1000):
                first.set()
                closed.wait(60)                  # the memory closes while the stream is open
        except BaseException as exc:                 # noqa: BLE001 - what stopped it is checked
            ended.append(exc)
    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    assert first.wait(60)
    store.close()                                # closing neither raises nor waits for it
    closed.set()
    reader.join(60)
    assert not reader.is_alive() and len(ended) == 1
    assert isinstance(ended[0], StoreError) and str(ended[0]) == "the memory is closed"


def test_a_read_whose_cursor_was_closed_with_the_memory_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.duckdb", helpers=0)
    read = store.read()                      # taken before the close, run after it
    store.close()
    with pytest.raises(StoreError, match="^the memory is closed$"):
        read.run("SELECT 1")


@pytest.mark.parametrize("kind", ["store", "read-only"])
def test_closing_under_many_readers_ends_each_with_one_line(tmp_path: Path, kind: str) -> None:
    """Readers in a loop (rows, Arrow, sync's stream, reads past their time limit) while the
    memory closes, as in a node stopped under load: the close neither raises nor waits, and every
    reader ends with "the memory is closed" (a read whose cursor closed under it once raised a
    TypeError from DuckDB's vanished result description; close raised "connection is busy")."""
    memory_gen.build(tmp_path / "m.duckdb", 2000, authors=2)
    for _ in range(3):
        memory = Store(tmp_path / "m.duckdb", helpers=0) if kind == "store" \
            else ReadOnlyMemory(tmp_path / "m.duckdb")
        reads = [lambda: memory.query("SELECT count(*) FROM records"),
                 lambda: memory.query_arrow("SELECT raw FROM records"),
                 lambda: memory.query(SLOW_SQL, timeout_s=0.01)]
        if isinstance(memory, Store):
            reads.append(lambda: sum(1 for _ in memory.records_by_keys(None, batch_bytes=1000)))
        ended: list[BaseException] = []

        def loop(read: Any) -> None:
            while True:
                try:
                    read()
                except QueryTimeout:
                    continue
                except BaseException as exc:         # noqa: BLE001 - what stopped it is checked
                    ended.append(exc)
                    return
        readers = [threading.Thread(target=loop, args=(reads[i % len(reads)],), daemon=True)
                   for i in range(12)]
        for reader in readers:
            reader.start()
        time.sleep(0.3)                          # most of them mid-read by now
        memory.close()
        for reader in readers:
            reader.join(60)
        assert not any(reader.is_alive() for reader in readers)
        assert [repr(exc) for exc in ended] == [repr(StoreError("the memory is closed"))] * 12
