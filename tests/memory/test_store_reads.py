"""The store's read path: its own cursor (never the write lock), a time limit, cancellation."""
from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from memory.store import QueryTimeout, ReadOnlyMemory, Store

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
    assert store.query("SELECT count(*) FROM records").rows == [(0,)]   # the store still answers
    store.close()
    memory = ReadOnlyMemory(tmp_path / "m.duckdb")
    with pytest.raises(QueryTimeout):
        memory.query(SLOW_SQL, timeout_s=0.2)
    memory.close()


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
