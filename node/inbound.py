"""Inbound connection slots: given back when a connection ends, and fair among remote addresses.

py-libp2p 0.8.1 admits at most max_connections - min_connections (250) inbound connections at
once (`Swarm._inbound_limiter`; past it a new one is closed unread), but its handler kept each
slot until the swarm stopped (it waits for the swarm's end to keep the connection open): 250
inbound connections over a node's whole life, closed long since (fresh ids connecting and
leaving, or honest peers reconnecting), and every later inbound connection was refused for good.
Here each inbound handler runs beside a watcher that cancels it once the connection's socket is
closed, which ends the wait and releases the slot.

While every slot is held, a connection from an address holding none ends the oldest inbound
connection of the address holding the most (two or more) and takes its slot, as serving slots
do (node/serveslots.py): one address's 250 idle connections kept every other peer out. Addresses
are keyed as the quotas key them (`quota.address_key`: an IPv6 one by its /64), so k addresses
holding their share each still fill the slots. Connections without a socket (none on TCP) keep
py-libp2p's behaviour.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from node.quota import address_key

POLL_S = 1.0                # how often a finished inbound connection's slot is looked for
ROOM_WAIT_S = 3.0           # how long a newcomer waits for the slot of the connection it ended


def guard_inbound(host: Any) -> None:
    """Wrap `host`'s inbound connection handler as the module doc says."""
    network = host.get_network()
    inner: Callable[..., Awaitable[None]] = network._handle_inbound_connection
    held: dict[str, list[Any]] = {}          # address -> its inbound connections, oldest first

    async def handle(read_write_closer: Any, maddr: Any) -> None:
        sock = getattr(getattr(read_write_closer, "stream", None), "socket", None)
        if sock is None:
            return await inner(read_write_closer, maddr)
        key = address_key(_remote_ip(read_write_closer))
        limiter = network._inbound_limiter
        if not limiter.available_tokens and key not in held:
            await _make_room(held, limiter)
        held.setdefault(key, []).append(read_write_closer)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_closed, sock, nursery.cancel_scope)
                await inner(read_write_closer, maddr)
                nursery.cancel_scope.cancel()       # it ended by itself (a refusal, a failure)
        finally:
            held[key].remove(read_write_closer)
            if not held[key]:
                del held[key]

    network._handle_inbound_connection = handle


async def _make_room(held: dict[str, list[Any]], limiter: trio.CapacityLimiter) -> None:
    """End the oldest connection of the address holding the most (two or more); wait a little
    for its slot to come back."""
    heaviest = max(held.values(), key=len, default=[])
    if len(heaviest) < 2:
        return
    try:
        await heaviest[0].close()
    except Exception:  # noqa: BLE001 - already closing: its slot comes back all the same
        pass
    with trio.move_on_after(ROOM_WAIT_S):
        while not limiter.available_tokens:
            await trio.sleep(0.05)


def _remote_ip(read_write_closer: Any) -> str | None:
    try:
        remote = read_write_closer.get_remote_address()
    except Exception:  # noqa: BLE001 - a transport without one: the unknown address's share
        return None
    return str(remote[0]) if remote else None


async def _cancel_when_closed(sock: Any, scope: trio.CancelScope) -> None:
    while sock.fileno() != -1:
        await trio.sleep(POLL_S)
    scope.cancel()
