"""Sync between two real py-libp2p hosts on loopback (one process): the versions negotiate, and
only the responder's real complaints are violations (a requester hanging up is not one)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from memory import synthetic
from memory.store import Store
from node import sync, sync_v1
from node.framing import ProtocolError, pack

RAWS = [r.raw for r in synthetic.runs(synthetic.keypairs(20, seed=4), 120, seed=4)]


async def _with_pair(protocols: tuple[str, ...], serve: Callable[[Any], Awaitable[Any]],
                     body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Two hosts; the first serves `protocols` with `serve(stream)`; `body(open_stream)` runs."""
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import info_from_p2p_addr

    server, client = new_host(), new_host()
    for protocol in protocols:
        server.set_stream_handler(TProtocol(protocol), serve)
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    async with server.run(listen), client.run(listen):
        addr = f"{server.get_addrs()[0]}"
        addr += "" if "/p2p/" in addr else f"/p2p/{server.get_id()}"
        await client.connect(info_from_p2p_addr(multiaddr.Multiaddr(addr)))

        async def open_stream() -> Any:
            return await client.new_stream(server.get_id(),
                                           [TProtocol(p) for p in sync.PROTOCOLS])
        with trio.fail_after(60):
            return await body(open_stream)


@pytest.fixture
def stores(tmp_path):
    with Store(tmp_path / "s.duckdb", helpers=0) as s, Store(tmp_path / "r.duckdb", helpers=0) as r:
        s.ingest(RAWS)
        r.ingest(RAWS[::3])
        yield s, r


@pytest.mark.parametrize("served", [sync.PROTOCOLS, (sync.PROTOCOL_V20, sync_v1.PROTOCOL_ID),
                                    (sync_v1.PROTOCOL_ID,)],
                         ids=["new-node", "node-of-2.0.0", "old-node"])
def test_a_new_node_pulls_from_new_and_old_nodes(stores, served) -> None:
    s, r = stores

    async def serve(stream: Any) -> None:
        await sync.serve(stream, s, "net")
        await stream.close()

    async def body(open_stream: Any) -> Any:
        return await sync.pull(await open_stream(), r, "net")

    result = trio.run(_with_pair, served, serve, body)
    assert result.protocol == served[0] and result.accepted == len(RAWS) - len(RAWS[::3])
    assert r.digest() == s.digest()


def _recording(store: Any, outcomes: list[Any]) -> Any:
    """A sync handler serving `store` that appends each exchange's outcome (records sent, or the
    ProtocolError) to `outcomes`."""
    async def serve(stream: Any) -> None:
        try:
            outcomes.append(await sync.serve(stream, store, "net"))
        except ProtocolError as exc:
            outcomes.append(exc)
    return serve


def test_only_the_requesters_malformed_frames_are_violations(stores) -> None:
    s, _ = stores
    outcomes: list[Any] = []
    serve = _recording(s, outcomes)

    async def body(open_stream: Any) -> None:
        hang_up = await open_stream()                       # asks, then goes away mid-exchange
        await hang_up.write(pack({"t": "open", "n": "net",
                                  "q": [["h", 0, 2**53, b""]]}))
        await hang_up.close()
        while not outcomes:
            await trio.sleep(0.05)
        malformed = await open_stream()
        await malformed.write(pack({"t": "open", "n": "net", "q": [["s", 9, 5]]}))
        while len(outcomes) < 2:
            await trio.sleep(0.05)

    trio.run(_with_pair, sync.PROTOCOLS, serve, body)
    assert not isinstance(outcomes[0], ProtocolError)       # a quiet end: no strike
    assert isinstance(outcomes[1], ProtocolError)


def test_a_frame_whose_ranges_overlap_is_a_violation(stores) -> None:
    """Each have costs the responder a pass over its keys in the range: a frame of 2,048 haves
    for the whole memory was 2,048 passes (docs/TRUST.md, "Sync serving"); it ends the exchange
    as a malformed request (a strike, node/host.py), answered with nothing."""
    s, _ = stores
    outcomes: list[Any] = []
    serve = _recording(s, outcomes)

    async def body(open_stream: Any) -> None:
        stream = await open_stream()
        whole = ["h", 0, 2**53, b""]
        await stream.write(pack({"t": "open", "n": "net", "q": [whole] * 2048}))
        while not outcomes:
            await trio.sleep(0.05)

    trio.run(_with_pair, sync.PROTOCOLS, serve, body)
    assert isinstance(outcomes[0], ProtocolError), outcomes
    assert str(outcomes[0]) == ("bad reconciliation request: the ranges of one frame's requests "
                                "overlap")
