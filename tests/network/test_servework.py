"""The CPU budget of the addresses this node answers sync requests from (node/servework.py), and
a have frame parsed off the libp2p thread with the collector paused (node/sync_v1.py)."""
from __future__ import annotations

import re
import time
from typing import Any

import msgpack
import pytest
import trio
import trio.testing

from memory import antientropy
from node import sync, sync_v1
from node.framing import ProtocolError
from node.servework import MAX_WAIT_S, ServeWork
from tests.network.test_sync_versions import _with_pair, stores  # noqa: F401 - a fixture


def test_an_address_waits_only_once_its_burst_is_spent() -> None:
    async def main() -> list[float]:
        work = ServeWork(rate=0.5, burst=2.0, clock=trio.current_time)
        waits = []
        for address, cpu_s in (("10.0.0.1", 1.5), ("10.0.0.1", 0.5), ("10.0.0.2", 2.0),
                               ("10.0.0.1", 1.0), ("10.0.0.1", 100.0)):
            started = trio.current_time()
            work.spend(address, cpu_s)
            await work.wait(address)
            waits.append(trio.current_time() - started)
        return waits

    waits = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # within the burst: no wait; 1 CPU-s over it at 0.5/s: 2 s; never past MAX_WAIT_S
    assert waits == [0.0, 0.0, 0.0, pytest.approx(2.0), MAX_WAIT_S]


def test_many_addresses_share_one_budget_too() -> None:
    """Addresses are cheap (an IPv6 /48 is 65,536 of them): past all addresses' budget, an
    address within its own waits as well, until that budget is back at zero."""
    async def main() -> tuple[float, float]:
        work = ServeWork(rate=1.0, burst=2.0, clock=trio.current_time, total_rate=2.0,
                         total_burst=4.0)
        for k in range(3):
            work.spend(f"10.0.0.{k}", 2.0)                # each at its own burst: 6 of 4 spent
        started = trio.current_time()
        await work.wait("10.0.0.9")                       # never charged itself
        return trio.current_time() - started, work.total_left()

    waited, left = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert waited == pytest.approx(1.0) and left == pytest.approx(0.0)   # 2 CPU-s over at 2/s


def test_peer_ids_on_one_address_share_its_budget() -> None:
    """A /64 is one address (node/quota.py address_key): fresh keys or addresses in it buy nothing."""
    now = [0.0]
    work = ServeWork(rate=1.0, burst=1.0, clock=lambda: now[0])
    work.spend("2001:db8::1", 0.75)
    assert work.left("2001:db8::2") == pytest.approx(0.25)
    assert work.left("2001:db8:0:1::1") == 1.0
    now[0] = 10.0
    assert work.left("2001:db8::3") == 1.0               # refilled, up to the burst


def test_each_answer_is_charged_to_the_requesters_address_and_waited_for(stores) -> None:  # noqa: F811
    """A pull served with a budget of none: every frame's computation is charged (its thread's
    CPU) and the exchange waits for it before reading the next request; the pull still ends
    in sync (main served without any budget)."""
    s, r = stores
    work = ServeWork(rate=0.01, burst=0.0)        # ~1 ms of CPU: a wait of ~0.1 s

    async def serve(stream: Any) -> None:
        await sync.serve(stream, s, "net", work.bound("127.0.0.1"))
        await stream.close()

    async def body(open_stream: Any) -> Any:
        return await sync.pull(await open_stream(), r, "net")

    result = trio.run(_with_pair, sync.PROTOCOLS, serve, body)
    assert result.accepted and r.digest() == s.digest()
    assert work.waited_s > 0 and work.left("127.0.0.1") <= 0


def test_a_have_frame_is_parsed_as_before_and_refused_in_one_line() -> None:
    have = {"a": [10, [[1, 1], [3, 5]], 7], "b": [2, [], 0]}
    parsed = sync_v1.parse_have_frame(msgpack.packb({"t": "have", "h": have}))
    expected = antientropy.parse_have(have)
    assert parsed.authors.equals(expected.authors) and parsed.gaps.equals(expected.gaps)
    for frame, refusal in (({"t": "digest"}, "expected a 'have' frame"),
                           ({"t": "have", "h": []}, "'have' must be a map"),
                           ({"t": "have", "h": {"a": [10, [[3, 5], [1, 1]], 0]}},
                            "malformed request: bad gap [1, 1] for 'a'")):
        with pytest.raises(ProtocolError, match=re.escape(refusal)) as refused:
            sync_v1.parse_have_frame(msgpack.packb(frame))
        assert "\n" not in str(refused.value) and refused.value.__cause__ is None
    with pytest.raises(ProtocolError, match="not msgpack"):
        sync_v1.parse_have_frame(b"\xc1")


class Reads:
    """A real store whose record reads (the producer thread's: `missing_for`, `records_by_keys`)
    also burn BURN_S of that thread's CPU, as a costly query would; `cpu_s` is what those reads
    took in their thread, measured the way servework charges it."""

    BURN_S = 0.2

    def __init__(self, store: Any) -> None:
        self.store, self.cpu_s = store, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def missing_for(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self.store.missing_for(*args, **kwargs))

    def records_by_keys(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self.store.records_by_keys(*args, **kwargs))

    def _timed(self, batches: Any) -> Any:
        started = time.thread_time()
        while time.thread_time() - started < self.BURN_S:
            pass
        for batch in batches:
            self.cpu_s += time.thread_time() - started
            yield batch
            started = time.thread_time()
        self.cpu_s += time.thread_time() - started


@pytest.mark.parametrize("protocol", [sync_v1.PROTOCOL_ID, sync.PROTOCOL_ID])
def test_the_reads_of_the_records_sent_are_charged_too(stores, protocol) -> None:  # noqa: F811
    """The thread that reads the records an exchange sends (1.0.0: the have frame's store query)
    is charged to the requester's address, beside the parse or the reconciliation answers (main
    charged only those: a have frame's query, most of its CPU, cost the requester nothing)."""
    s, r = stores
    reads = Reads(s)
    work = ServeWork(burst=1000.0, clock=lambda: 0.0, total_burst=1000.0)   # never refilled

    async def serve(stream: Any) -> None:
        await sync.serve(stream, reads, "net", work.bound("127.0.0.1"))
        await stream.close()

    async def body(open_stream: Any) -> Any:
        return await sync.pull(await open_stream(), r, "net")

    result = trio.run(_with_pair, (protocol,), serve, body)
    assert result.protocol == protocol and r.digest() == s.digest()
    assert reads.cpu_s >= Reads.BURN_S
    assert 1000.0 - work.left("127.0.0.1") >= reads.cpu_s


def test_waits_stay_within_max_wait_of_the_requesters_last_frame() -> None:
    """Several waits in one exchange end MAX_WAIT_S after the frame the requester waits from (the
    last `mark`), so that together they stay under its frame deadline; a new mark, a new bound."""
    async def main() -> list[float]:
        work = ServeWork(rate=1.0, burst=0.0, clock=trio.current_time).bound("10.0.0.1")
        work.mark()
        waits = []
        for cpu_s in (4.0, 100.0, 100.0):
            work.charge(cpu_s)
            started = trio.current_time()
            await work.wait()
            waits.append(trio.current_time() - started)
        work.mark()
        started = trio.current_time()
        await work.wait()
        return waits + [trio.current_time() - started]

    waits = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert waits == [pytest.approx(4.0), pytest.approx(MAX_WAIT_S - 4.0), 0.0, MAX_WAIT_S]
