"""Inbound connection slots are given back when a connection ends, and fair among addresses
(node/inbound.py).

py-libp2p admits 250 inbound connections at once and kept each slot until the host stopped: 300
fresh ids connecting to a `swarm join` node and leaving (`swarm bench crowd`) left it with no
peer and no connection, refusing every new inbound connection for good. Here the same on a bare
host whose slots are cut to 3, so that a handful of real connections on loopback shows it.
"""
from __future__ import annotations

from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import info_from_p2p_addr

from node import inbound

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


async def _visit(target: Any, stay: float = 0.0, source: str = "127.0.0.1") -> bool:
    """A fresh host connects to `target` from IP `source`, stays `stay` s and leaves; True if it
    connected."""
    host = new_host()
    async with host.run(LOOPBACK):
        try:
            with trio.fail_after(30):
                await host.get_network().dial_addr(target.addrs[0], target.peer_id,
                                                   source=(source, 0))
        except Exception:  # noqa: BLE001 - refused: what is measured
            return False
        await trio.sleep(stay)
        await host.disconnect(target.peer_id)
    return True


async def _guarded(slots: int) -> Any:
    node = new_host()
    inbound.guard_inbound(node)
    node.get_network()._inbound_limiter = trio.CapacityLimiter(slots)
    return node


def _target(node: Any) -> Any:
    return info_from_p2p_addr(multiaddr.Multiaddr(f"{node.get_addrs()[0]}/p2p/{node.get_id()}"))


async def _late_visitor_connects(slots: int, visitors: int) -> bool:
    node = await _guarded(slots)
    async with node.run(LOOPBACK):
        target = _target(node)
        for _ in range(visitors):
            assert await _visit(target)
            with trio.fail_after(30):           # the node saw it leave
                while node.get_network().get_total_connections():
                    await trio.sleep(0.1)
        return await _visit(target)


def test_a_node_whose_slots_were_all_used_once_still_takes_new_connections() -> None:
    """3 slots, 5 visitors in turn (each leaves before the next): before, the fourth was already
    refused; now every slot comes back and the sixth connects."""
    assert trio.run(_late_visitor_connects, 3, 5)


async def _newcomer_past_held_connections(slots: int) -> bool:
    node = await _guarded(slots)
    async with node.run(LOOPBACK), trio.open_nursery() as nursery:
        target = _target(node)
        for _ in range(slots):                  # one address holds every slot, idle
            nursery.start_soon(_visit, target, 3600.0)
        with trio.fail_after(30):
            while node.get_network().get_total_connections() < slots:
                await trio.sleep(0.1)
        connected = await _visit(target, 0.0, source="127.0.0.2")
        nursery.cancel_scope.cancel()
    return connected


def test_one_address_holding_every_slot_does_not_keep_a_newcomer_address_out() -> None:
    """3 slots held open by 3 idle connections from 127.0.0.1; a peer from 127.0.0.2: before,
    closed unread; now it ends the oldest of them and connects."""
    assert trio.run(_newcomer_past_held_connections, 3)
