"""How long an honest newcomer waits for a serving slot while k addresses hold them in step.

node/serveslots.py's ServeSlots itself, on trio's virtual clock (no network, no sleeping: the
figures are the policy's, independent of the machine's speed). `--addresses` attacker
addresses each keep one pull served (stalled: it ends at the serve deadline, `--hold` s) and
`--queued` more waiting behind it, re-pulling the moment one ends; an honest newcomer at another
address asks at `--arrive` s, gives up each try after 15 s (a requester's wait) and asks again at
once. Prints one JSON line: the newcomer's wait until served (null: not within `--horizon` s)
and its tries. Run from a checkout's root to measure that checkout's node/:

    swarm bench slotwait --addresses 8                   # this checkout
    cd CHECKOUT && python /path/to/swarm/bench/slotwait.py --addresses 8
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

from node.serveslots import ServeSlots  # noqa: E402

TRY_S = 15.0                                # a requester waits this long for a slot


async def _attacker(slots: ServeSlots, address: str, hold: float) -> None:
    """Pull after pull from `address`, each stalled until the serve deadline."""
    while True:
        async with slots.serving(f"{address}-peer", address, hold):
            await trio.sleep_forever()


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
                   arrive: float = 10.0, horizon: float = 600.0) -> dict[str, Any]:
    """Run the scenario of the module doc; the newcomer's wait and tries."""
    slots = ServeSlots()
    out: dict[str, Any] = {"addresses": addresses, "queued": queued, "hold_s": hold,
                           "wait_s": None, "tries": 0}
    async with trio.open_nursery() as nursery:
        for i in range(addresses):                  # one slot each first, then the queues
            nursery.start_soon(_attacker, slots, f"10.0.0.{i + 1}", hold)
        await trio.sleep(1)
        for i in range(addresses):
            for _ in range(queued):
                nursery.start_soon(_attacker, slots, f"10.0.0.{i + 1}", hold)
        with trio.move_on_after(horizon):
            await _newcomer(slots, arrive, out)
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
    args = parser.parse_args()
    print(json.dumps(run(addresses=args.addresses, queued=args.queued, hold=args.hold,
                         arrive=args.arrive, horizon=args.horizon)))
