"""The trio <-> asyncio bridge: calls, errors, cancellation, shutdown."""
from __future__ import annotations

import asyncio
import threading

import pytest
import trio

from node.bridge import BridgeClosed, TrioThread, post


async def _ready_main(task_status=trio.TASK_STATUS_IGNORED) -> None:
    task_status.started()
    await trio.sleep_forever()


async def _double(x: int) -> int:
    await trio.sleep(0)
    return 2 * x


async def _boom() -> None:
    raise KeyError("boom")


def test_call_returns_result_and_error_and_stop_joins() -> None:
    bridge = TrioThread(_ready_main, name="test-trio")
    bridge.start()

    async def scenario() -> None:
        assert await bridge.call(_double, 21) == 42
        results = await asyncio.gather(*(bridge.call(_double, i) for i in range(50)))
        assert results == [2 * i for i in range(50)]
        with pytest.raises(KeyError):
            await bridge.call(_boom)

    asyncio.run(scenario())
    assert bridge.stop(timeout=60)
    assert not any(t.name == "test-trio" for t in threading.enumerate())
    with pytest.raises(BridgeClosed):
        asyncio.run(bridge.call(_double, 1))


def test_asyncio_cancellation_cancels_the_trio_task() -> None:
    cancelled = threading.Event()

    async def wait_forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    bridge = TrioThread(_ready_main)
    bridge.start()

    async def scenario() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bridge.call(wait_forever), 0.2)

    asyncio.run(scenario())
    assert cancelled.wait(60)
    assert bridge.stop(timeout=60)


def test_a_call_in_flight_when_the_trio_run_crashes_fails_instead_of_hanging() -> None:
    # The daemon's housekeeping awaited such a call forever after a libp2p crash (its task then
    # never republished the restarted host's addresses).
    started = threading.Event()

    async def wait_forever() -> None:
        started.set()
        await trio.sleep_forever()

    def crash() -> None:             # a run_sync_soon callback that raises ends the trio run
        raise RuntimeError("simulated escape from a protocol handler")

    bridge = TrioThread(_ready_main)
    bridge.start()

    async def scenario() -> None:
        call = asyncio.create_task(bridge.call(wait_forever))
        await asyncio.to_thread(started.wait, 60)
        bridge._token.run_sync_soon(crash)
        with pytest.raises(BridgeClosed):
            await asyncio.wait_for(call, 60)

    asyncio.run(scenario())
    assert not bridge.alive and bridge.error is not None


def test_start_reraises_failure_of_main() -> None:
    async def bad_main(task_status=trio.TASK_STATUS_IGNORED) -> None:
        raise OSError("port in use")

    bridge = TrioThread(bad_main)
    with pytest.raises(OSError, match="port in use"):
        bridge.start(timeout=60)
    assert not bridge.alive


def test_post_to_closed_loop_is_quiet() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    assert post(loop, print, "never") is False
