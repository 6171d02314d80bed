"""Sync strikes count against the address too (node/addrstrikes.py): peers taking a fresh peer id
before each ban are barred from sync once their address has four peers' worth of strikes. A real
`swarm join` node on loopback; the peers are bare py-libp2p hosts in this process, each with a
fresh key, sending the node malformed sync requests (one strike each)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import multiaddr
import trio

from node import sync
from node.addrstrikes import ADDRESS_FACTOR
from node.peers import INVALID_LIMIT
from tests.network.launcher import launch

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
GARBAGE = b"\x00\x00\x00\x20" + b"\xff" * 32          # a frame that is no msgpack
PER_ID = INVALID_LIMIT - 1                             # strikes each fresh id takes: never banned


async def _fresh_peer(addr: str, requests: int) -> tuple[str, int, int]:
    """A fresh peer id sends `requests` garbage sync requests, each on its own stream, and waits
    for the node to hang up on each; (its peer id, requests whose stream was reset or closed,
    pulls the node opened to it meanwhile: each is reset unread, which is no strike)."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    host, ended, pulls = new_host(), 0, [0]

    async def serve(stream: Any) -> None:
        pulls[0] += 1
        await stream.reset()

    for protocol in sync.PROTOCOLS:
        host.set_stream_handler(TProtocol(protocol), serve)
    async with host.run(LOOPBACK):
        target = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        await host.connect(target)
        for _ in range(requests):
            try:
                stream = await host.new_stream(target.peer_id, [TProtocol(sync.PROTOCOL_ID)])
                await stream.write(GARBAGE)
                with trio.move_on_after(60):            # until the node hangs up
                    while await stream.read(1024):
                        pass
                    ended += 1
            except Exception:  # noqa: BLE001 - reset (even as it opened): the node hung up
                ended += 1
        return str(host.get_id()), ended, pulls[0]


async def _attack(addr: str, ids: int) -> list[tuple[str, int, int]]:
    return [await _fresh_peer(addr, PER_ID) for _ in range(ids)]


def _rejected(node: Any) -> dict[str, int]:
    return {p["peer_id"]: p["rejected"] for p in node.request("/peers")}


def test_fresh_peer_ids_from_one_address_are_barred_from_sync(tmp_path: Path,
                                                               network: str) -> None:
    """Enough fresh ids to pass the address's limit, then one more: its requests are reset
    unread (no strike: never read), and the node pulls nothing from it. Per peer id alone
    (main), every id took all its strikes and none was ever banned."""
    node = launch(tmp_path / "n", network)
    barring = -(-ADDRESS_FACTOR * INVALID_LIMIT // PER_ID)          # ids to reach the bar
    peers = trio.run(_attack, node.addr, barring + 1)
    assert all(ended == PER_ID for _, ended, _ in peers)          # every stream ended
    rejected = _rejected(node)
    struck = [rejected.get(peer, 0) for peer, _, _ in peers]
    assert sum(struck[:barring]) >= ADDRESS_FACTOR * INVALID_LIMIT
    assert struck[-1] == 0                                        # was PER_ID: read and struck
    assert peers[-1][2] == 0                                      # was a pull as it connected
