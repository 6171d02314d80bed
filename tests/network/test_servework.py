"""The CPU budget of the addresses this node answers sync requests from (node/servework.py), and
a have frame parsed off the libp2p thread with the collector paused (node/sync_v1.py)."""
from __future__ import annotations

import re
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
