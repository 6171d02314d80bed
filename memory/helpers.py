"""Helper processes that check records (`memory.check_worker`), for big batches.

A batch's records are parsed, validated and signature-checked; all of it is Python or holds the
GIL for part of the time, so threads cannot spread it over cores. Measured on 2 cores: with
signatures checked on threads beside the parsing thread, only about half of the checking overlapped
the parsing. Helper processes have GILs of their own. Each starts in about half a second (it
imports pydantic), so stores start them only on the first batch big enough to need them.

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
from typing import Any

import msgpack

from memory.check_worker import Verdict, frame, read_frame

log = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class HelperGone(RuntimeError):
    """A helper process exited (or could not be reached) before answering."""


def default_helpers() -> int:
    """How many helper processes a store uses: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


class _Helper:
    """One `memory.check_worker` process, a thread writing its requests and one reading answers."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The helper must run this very code: put its package first, and (-P) keep the current
        # directory off its path, where an unrelated `memory` package could shadow ours.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "memory.check_worker"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._pending: dict[int, Future[list[Verdict]]] = {}
        self._lock = threading.Lock()          # guards _pending and _alive
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
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

    @property
    def load(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    def submit(self, tag: int, request: list[Any], future: Future[list[Verdict]]) -> None:
        """Queue a request; `future` gets its answer. Raises `HelperGone` if the helper has gone."""
        with self._lock:
            if not self._alive:
                raise HelperGone("record-checking helper has exited")
            self._pending[tag] = future
        # Queued, not written: a write blocks whenever the pipe is full, and the caller has
        # its own work to get on with meanwhile.
        self._outbox.put(frame([tag, *request]))

    def _write_requests(self) -> None:
        stdin = self._proc.stdin
        try:
            while (data := self._outbox.get()) is not None:
                stdin.write(data)
                stdin.flush()
            stdin.close()                     # the helper exits when its stdin ends
        except (OSError, ValueError) as exc:   # broken pipe: the helper has gone
            self._fail(f"cannot reach record-checking helper: {exc}")

    def _read_answers(self) -> None:
        try:
            while (body := read_frame(self._proc.stdout)) is not None:
                tag, answer = msgpack.unpackb(body, raw=False)
                with self._lock:
                    future = self._pending.pop(tag)
                future.set_result(answer)
        except Exception as exc:  # noqa: BLE001 - any failure here means the helper is unusable
            self._fail(f"record-checking helper answered badly: {exc}")
            return
        self._fail(f"record-checking helper exited (code {self._proc.poll()})")

    def _fail(self, why: str) -> None:
        with self._lock:
            was_alive, self._alive = self._alive, False
            pending, self._pending = self._pending, {}
        if was_alive and pending:
            log.warning("%s; checking %d pending requests in-process", why, len(pending))
        for future in pending.values():
            future.set_exception(HelperGone(why))

    def close(self) -> None:
        """Let the helper finish what is queued, then exit; reap it."""
        self._outbox.put(None)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


class HelperPool:
    """Record-checking helper processes; each request goes to the least loaded."""

    def __init__(self, processes: int) -> None:
        self._helpers = [_Helper() for _ in range(processes)]
        self._tags = itertools.count()

    @property
    def alive(self) -> bool:
        """True while every helper is running."""
        return all(h.alive for h in self._helpers)

    @property
    def pids(self) -> list[int]:
        """The helpers' process ids."""
        return [h.pid for h in self._helpers]

    def check(self, raws: Sequence[bytes], now: int) -> Future[list[Verdict]]:
        """Start fully checking `raws` (as `codec.decode` at time `now`); one verdict each.

        Raises `HelperGone` if no helper is left.
        """
        live = [h for h in self._helpers if h.alive]
        if not live:
            raise HelperGone("every record-checking helper has exited")
        future: Future[list[Verdict]] = Future()
        min(live, key=lambda h: h.load).submit(next(self._tags), [now, raws], future)
        return future

    def close(self) -> None:
        """Stop every helper."""
        for helper in self._helpers:
            helper.close()
