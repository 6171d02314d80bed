"""A trio event loop in its own thread, callable from asyncio (and back).

py-libp2p is trio-only; the daemon runs on asyncio. `TrioThread` runs `trio.run` in a thread and lets
asyncio code await trio coroutines with `await bridge.call(fn, *args)`. The trio side hands results and
events back with `loop.call_soon_threadsafe`. Nothing here raises inside a `run_sync_soon` callback:
trio treats an exception there as a crash of the whole run.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

log = logging.getLogger(__name__)
T = TypeVar("T")
TrioMain = Callable[..., Awaitable[None]]


class BridgeClosed(RuntimeError):
    """The trio thread is not running (never started, stopped, or crashed)."""


def post(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """Schedule `callback(*args)` on the asyncio `loop` from any thread; False if the loop is gone."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:            # loop closed: the daemon is shutting down
        log.debug("asyncio loop closed; dropped %r", callback)
        return False
    return True


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():               # the asyncio caller gave up (cancelled or timed out)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _unwrap(exc: BaseException) -> BaseException:
    """The single exception inside (nested) one-member exception groups, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class TrioThread:
    """Run `main(task_status=...)` under trio in a daemon thread until `stop()`.

    `main` must call `task_status.started()` once it is ready to serve calls; `start()` waits for that
    (or for `main` to fail, whose exception it re-raises).
    """

    def __init__(self, main: TrioMain, name: str = "trio") -> None:
        self._main = main
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._error: BaseException | None = None
        # calls whose result has not come back: a trio run that crashes abandons its tasks
        # without their `finally`, so these are failed when the run ends (else awaited forever)
        self._pending: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]] = set()
        self._pending_lock = threading.Lock()

    # ---- lifecycle (called from the asyncio / main thread) ----

    def start(self, timeout: float = 30.0) -> None:
        """Start the thread and wait until `main` reports ready; raise what `main` raised."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout=5.0)
            raise BridgeClosed(f"trio side not ready after {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise self._error

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel everything on the trio side and join the thread; True if it ended in time."""
        if self._token is not None and self._nursery is not None:
            try:
                self._token.run_sync_soon(self._nursery.cancel_scope.cancel)
            except trio.RunFinishedError:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the trio run is still going."""
        return self._thread.is_alive() and self._nursery is not None

    @property
    def error(self) -> BaseException | None:
        """What ended the trio run abnormally, if anything."""
        return self._error

    def _run(self) -> None:
        try:
            trio.run(self._root)
        except BaseException as exc:  # noqa: BLE001 - reported to start() and via .error
            self._error = _unwrap(exc)
            log.warning("trio thread ended with %r", exc)
        finally:
            self._nursery = None
            self._ready.set()
            with self._pending_lock:
                abandoned, self._pending = self._pending, set()
            for loop, future in abandoned:
                post(loop, _settle, future, None, BridgeClosed("trio side ended during the call"))

    async def _root(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(self._main)
            self._nursery = nursery
            self._ready.set()
            await trio.sleep_forever()

    # ---- calls into trio ----

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await fn(*args)` on the trio side and return its result here (asyncio).

        Cancelling the awaiting asyncio task cancels the trio task too.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        scope = trio.CancelScope()

        async def runner() -> None:
            result, error = None, None
            with scope:
                try:
                    result = await fn(*args)
                except Exception as exc:  # noqa: BLE001 - handed to the caller
                    error = exc
            if scope.cancelled_caught:
                error = BridgeClosed("trio side cancelled the call")
            post(loop, _settle, future, result, error)

        def spawn() -> None:        # runs inside trio: must not raise
            nursery = self._nursery
            if nursery is None:
                post(loop, _settle, future, None, BridgeClosed("trio side stopped"))
                return
            nursery.start_soon(runner)

        pending = (loop, future)
        with self._pending_lock:
            self._pending.add(pending)
        try:
            self._schedule(spawn)
            return await future
        except asyncio.CancelledError:
            self._schedule(scope.cancel, quiet=True)
            raise
        finally:
            with self._pending_lock:
                self._pending.discard(pending)

    def _schedule(self, fn: Callable[..., Any], *args: Any, quiet: bool = False) -> None:
        token = self._token
        if token is None or self._nursery is None:
            if quiet:
                return
            raise BridgeClosed("trio side is not running")
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError as exc:
            if not quiet:
                raise BridgeClosed("trio side has finished") from exc
