"""How long an honest newcomer waits for a serving slot while k addresses hold them in step.

node/serveslots.py's ServeSlots itself, on trio's virtual clock (no network, no sleeping: the
figures are the policy's, independent of the machine's speed). `--addresses` attacker
addresses each keep one pull served (stalled: it ends at the serve deadline, `--hold` s) and
`--queued` more waiting behind it, re-pulling the moment one ends; an honest newcomer at another
address asks at `--arrive` s, gives up each try after 15 s (a requester's wait) and asks again at
once. Prints one JSON line: the newcomer's wait until served (null: not within `--horizon` s)
and its tries. Where the checkout's ServeSlots ends stalled pulls (`STALL_S`), attacker pulls
count as stalled from the start (the node waits on their next request), as node/host.py's sync
pulls do.

With `--slow-rate B`, an honest requester on a thin link at one more address holds a slot from
the start (so there are `--addresses` - 1 attacker slots): it reads `--slow-bytes` of records at
B bytes/s (the node's writes complete 128 KiB at a time, as Yamux's window opens), then ingests
for `--slow-ingest` s before it answers (the node waits on it meanwhile). `slow_ended`: "done"
(served to its end), "cut" (its slot taken) or "deadline" (the 300-s limit of a whole pull).

    swarm bench slotwait --addresses 8                   # this checkout
    cd CHECKOUT && python /path/to/swarm/bench/slotwait.py --addresses 8
    swarm bench slotwait --addresses 8 --slow-rate 32768 --slow-ingest 40
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import trio
import trio.testing

if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())         # the node/ of the checkout it runs from

from node import serveslots  # noqa: E402
from node.serveslots import ServeSlots  # noqa: E402

TRY_S = 15.0                                # a requester waits this long for a slot
STALL_S = getattr(serveslots, "STALL_S", None)   # None: a checkout that ends no stalled pull
STEP_BYTES = 128 * 1024                     # Yamux's window opens this much at a time
SESSION_S = 300.0                           # a whole pull's limit (node/host.py)


def _watched(slots: ServeSlots, peer: str, address: str, seconds: float) -> Any:
    """`slots.serving` as node/host.py serves sync pulls (watched for stalls where it can be)."""
    if STALL_S is None:
        return slots.serving(peer, address, seconds)
    return slots.serving(peer, address, seconds, stall_s=STALL_S)


async def _attacker(slots: ServeSlots, address: str, hold: float) -> None:
    """Pull after pull from `address`, each stalled until the serve deadline."""
    while True:
        async with _watched(slots, f"{address}-peer", address, hold) as serve:
            if STALL_S is not None:
                serve.waiting()                 # the node waits for a request that never comes
            await trio.sleep_forever()


def _waiting(serve: Any) -> None:
    if STALL_S is not None:
        serve.waiting()


def _moved(serve: Any, nbytes: int) -> None:
    if STALL_S is not None:
        serve.moved(nbytes)


async def _slow(slots: ServeSlots, rate: float, nbytes: int, ingest: float,
                out: dict[str, Any]) -> None:
    """An honest pull on a thin link (the module doc); records how it ended."""
    start, moved = trio.current_time(), 0
    async with _watched(slots, "slow-peer", "10.8.8.8", SESSION_S) as serve:
        while moved < nbytes:
            _waiting(serve)
            await trio.sleep(STEP_BYTES / rate)
            _moved(serve, STEP_BYTES)
            moved += STEP_BYTES
        _waiting(serve)
        await trio.sleep(ingest)                    # then it says it is done
        _moved(serve, 16)
        out["slow_ended"] = "done"
    took = trio.current_time() - start
    out.setdefault("slow_ended", "deadline" if took >= SESSION_S else "cut")
    out.update(slow_s=round(took, 1), slow_moved=moved)


async def _newcomer(slots: ServeSlots, arrive: float, out: dict[str, Any]) -> None:
    await trio.sleep(arrive)
    start = trio.current_time()
    while True:
        out["tries"] += 1
        with trio.move_on_after(TRY_S):
            async with slots.serving("newcomer-peer", "10.9.9.9", 60.0):
                out["wait_s"] = round(trio.current_time() - start, 1)
                return


async def scenario(addresses: int = 8, queued: int = 1, hold: float = 120.0,
                   arrive: float = 10.0, horizon: float = 600.0, slow_rate: float | None = None,
                   slow_bytes: int = 4 * 1024 * 1024, slow_ingest: float = 10.0
                   ) -> dict[str, Any]:
    """Run the scenario of the module doc; the newcomer's wait and tries."""
    slots = ServeSlots()
    out: dict[str, Any] = {"addresses": addresses, "queued": queued, "hold_s": hold,
                           "stall_s": STALL_S, "wait_s": None, "tries": 0}
    async with trio.open_nursery() as nursery:
        if slow_rate is not None:
            out.update(slow_rate=slow_rate, slow_bytes=slow_bytes, slow_ingest_s=slow_ingest)
            nursery.start_soon(_slow, slots, slow_rate, slow_bytes, slow_ingest, out)
            addresses -= 1
            await trio.sleep(0.1)
        for i in range(addresses):                  # one slot each first, then the queues
            nursery.start_soon(_attacker, slots, f"10.0.0.{i + 1}", hold)
        await trio.sleep(1)
        for i in range(addresses):
            for _ in range(queued):
                nursery.start_soon(_attacker, slots, f"10.0.0.{i + 1}", hold)
        with trio.move_on_after(horizon):
            await _newcomer(slots, arrive, out)
        if slow_rate is not None:
            await trio.sleep(SESSION_S)             # the slow pull has ended by then
        nursery.cancel_scope.cancel()
    return out


def run(**kwargs: Any) -> dict[str, Any]:
    """`scenario` on trio's virtual clock (it jumps whenever every task waits)."""
    return trio.run(lambda: scenario(**kwargs), clock=trio.testing.MockClock(autojump_threshold=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=8)
    parser.add_argument("--queued", type=int, default=1)
    parser.add_argument("--hold", type=float, default=120.0)
    parser.add_argument("--arrive", type=float, default=10.0)
    parser.add_argument("--horizon", type=float, default=600.0)
    parser.add_argument("--slow-rate", type=float, default=None)
    parser.add_argument("--slow-bytes", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--slow-ingest", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(run(addresses=args.addresses, queued=args.queued, hold=args.hold,
                         arrive=args.arrive, horizon=args.horizon, slow_rate=args.slow_rate,
                         slow_bytes=args.slow_bytes, slow_ingest=args.slow_ingest)))
