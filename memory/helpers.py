"""Helper processes that check records (`memory.check_worker`), for big batches.

A batch's records are parsed, validated and signature-checked, and the valid ones' table rows
built (so the store's thread only inserts them); all of it is Python or holds the GIL for part of
the time, so threads cannot spread it over cores. Measured on 2 cores: with
signatures checked on threads beside the parsing thread, only about half of the checking overlapped
the parsing. Helper processes have GILs of their own. Each starts in about 0.3 s (it imports
pydantic), so stores start them only on the first batch big enough to need them.

A helper that dies fails its pending requests with `HelperGone`; the caller then checks those
records itself, so a crash costs time, never a verdict.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

import msgpack

from memory.check_worker import Verdict, frame, read_frame

Answer = tuple[list[Verdict], dict[str, bytes]]    # verdicts, the valid rows' tables (IPC bytes)

log = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class HelperGone(RuntimeError):
    """A helper process exited (or could not be reached) before answering."""


def default_helpers() -> int:
    """How many helper processes a store uses: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


_Request = tuple[int, bytes, "Future[Answer]"]   # tag, framed request, its answer
IN_FLIGHT = 2     # requests a helper holds at once: one to work on, one ready in its pipe


class _Helper:
    """One `memory.check_worker` process, a thread feeding it requests and one reading answers.

    Requests come from a queue shared by every helper, and each helper holds at most `IN_FLIGHT`
    of them: whichever helper gets more CPU takes more work. Dealing requests out up front left
    one helper idle at the end of each batch while another, sharing a core with the store's
    thread, still had several to do.
    """

    def __init__(self, requests: queue.SimpleQueue[_Request | None]) -> None:
        env = dict(os.environ)
        # The helper must run this very code: put its package first, and (-P) keep the current
        # directory off its path, where an unrelated `memory` package could shadow ours.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "memory.check_worker"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._requests = requests
        self._pending: dict[int, Future[Answer]] = {}
        self._lock = threading.Lock()          # guards _pending and _alive
        self._room = threading.Semaphore(IN_FLIGHT)
        self._alive = True
        threading.Thread(target=self._write_requests, name="check-writer", daemon=True).start()
        threading.Thread(target=self._read_answers, name="check-reader", daemon=True).start()

    @property
    def alive(self) -> bool:
        """False once the process has gone or failed."""
        return self._alive

    @property
    def pid(self) -> int:
        """The helper's process id."""
        return self._proc.pid

    def _write_requests(self) -> None:
        stdin = self._proc.stdin
        while True:
            self._room.acquire()
            request = self._requests.get()
            if request is None:                 # the pool is closing: one None per helper
                break
            tag, data, future = request
            with self._lock:
                alive = self._alive
                if alive:
                    self._pending[tag] = future
            if not alive:           # taken by a dead helper's thread: the caller checks it itself
                future.set_exception(HelperGone("record-checking helper has exited"))
                continue
            try:
                stdin.write(data)
                stdin.flush()
            except (OSError, ValueError) as exc:   # broken pipe: the helper has gone
                self._fail(f"cannot reach record-checking helper: {exc}")
        try:
            stdin.close()                     # the helper exits when its stdin ends
        except OSError:
            pass

    def _read_answers(self) -> None:
        try:
            while (body := read_frame(self._proc.stdout)) is not None:
                tag, verdicts, tables = msgpack.unpackb(body, raw=False)
                with self._lock:
                    future = self._pending.pop(tag)
                self._room.release()
                future.set_result((verdicts, tables))
        except Exception as exc:  # noqa: BLE001 - any failure here means the helper is unusable
            self._fail(f"record-checking helper answered badly: {exc}")
            return
        self._fail(f"record-checking helper exited (code {self._proc.poll()})")

    def _fail(self, why: str) -> None:
        with self._lock:
            was_alive, self._alive = self._alive, False
            pending, self._pending = self._pending, {}
        if was_alive:
            self._room.release(1_000_000)     # the writer thread must never wait on a dead helper
            if pending:
                log.warning("%s; checking %d pending requests in-process", why, len(pending))
        for future in pending.values():
            future.set_exception(HelperGone(why))

    def reap(self) -> None:
        """Wait for the process to exit (after its stdin closed); kill it if it will not."""
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


class HelperPool:
    """Record-checking helper processes fed from one queue of requests."""

    def __init__(self, processes: int) -> None:
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._helpers = [_Helper(self._requests) for _ in range(processes)]
        self._tags = itertools.count()

    @property
    def alive(self) -> bool:
        """True while every helper is running."""
        return all(h.alive for h in self._helpers)

    @property
    def pids(self) -> list[int]:
        """The helpers' process ids."""
        return [h.pid for h in self._helpers]

    def check(self, raws: Sequence[bytes], now: int) -> Future[Answer]:
        """Start fully checking `raws` (as `codec.decode` at time `now`): one verdict each, and
        the rows of the valid ones (`check_worker.check`, the tables as IPC bytes).

        Raises `HelperGone` if no helper is left.
        """
        if not any(h.alive for h in self._helpers):
            raise HelperGone("every record-checking helper has exited")
        future: Future[Answer] = Future()
        tag = next(self._tags)
        # Framed here, written by whichever helper's thread takes it: a write blocks whenever
        # a pipe is full, and the caller has its own work to get on with meanwhile.
        self._requests.put((tag, frame([tag, now, raws]), future))
        return future

    def close(self) -> None:
        """Let the helpers finish what they hold, then exit; reap them."""
        for _ in self._helpers:
            self._requests.put(None)
        for helper in self._helpers:
            helper.reap()
