"""What a peer sends on a Yamux stream waits unread only within the window this node granted, and
only while something will read it (node/patches.py, `_patch_yamux_buffers`, `discard_unread`).

py-libp2p 0.8.1 buffered every DATA frame whatever the receive window (it logged the overrun), and
kept what a finished stream held: a peer ignoring flow control grew a node by 300 MB in 4 s, and
one keeping to it left 256 KiB in each of any number of answered streams (docs/PROTOCOL.md,
"Hostile peers"). Real py-libp2p on loopback: a victim host with the node's patches and stream
containment, and a peer that writes raw Yamux frames or honest ones.
"""
from __future__ import annotations

import struct
from typing import Any

import multiaddr
import trio

from node import patches
from node.framing import pack, read_frame, write_frame
from node.relay import _close

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
SILENT, ANSWER, DUMP = "/test/silent/1", "/test/answer/1", "/test/dump/1"
SLOWS = "/test/slows/1"          # reads quickly a while, then stops reading
MiB = 1 << 20


def _unread(host: Any) -> int:
    """Bytes held unread in the Yamux buffers of all of `host`'s connections."""
    return sum(len(buffer) for conns in host.get_network().get_connections_map().values()
               for conn in conns for buffer in conn.muxed_conn.stream_buffers.values())


async def _hosts() -> tuple[Any, Any]:
    from libp2p import new_host
    from libp2p.custom_types import TProtocol

    patches.apply()
    victim, peer = new_host(), new_host()
    patches.contain_streams(victim, lambda *failure: None)

    async def silent(stream: Any) -> None:       # busy elsewhere: never reads
        await trio.sleep(3600)

    async def answer(stream: Any) -> None:        # one request, one answer, done
        await read_frame(stream, timeout=10)
        await write_frame(stream, {"ok": True})
        await _close(stream)

    async def dump(stream: Any) -> None:          # answers, then fills the window
        await read_frame(stream, timeout=10)
        await stream.write(pack({"ok": True}) + bytes(250_000))

    async def slows(stream: Any) -> None:         # a quick reader that falls behind
        got = 0
        while got < 24 * MiB:
            got += len(await stream.read(MiB))
        await trio.sleep(3600)

    victim.set_stream_handler(TProtocol(SILENT), silent)
    victim.set_stream_handler(TProtocol(SLOWS), slows)
    victim.set_stream_handler(TProtocol(ANSWER), answer)
    peer.set_stream_handler(TProtocol(DUMP), dump)
    return victim, peer


async def _connect(host: Any, other: Any) -> Any:
    from libp2p.peer.peerinfo import info_from_p2p_addr

    target = multiaddr.Multiaddr(f"{other.get_addrs()[0]}/p2p/{other.get_id()}")
    await host.connect(info_from_p2p_addr(target))
    return other.get_id()


async def _overrun() -> tuple[int, bool]:
    """The peer sends 32 MiB on a stream the victim's handler never reads, past the window
    (a window grows as a stream is read, to patches.MAX_RECEIVE_WINDOW)."""
    from libp2p.custom_types import TProtocol

    victim, peer = await _hosts()
    async with victim.run(LOOPBACK), peer.run(LOOPBACK):
        stream = await peer.new_stream(await _connect(peer, victim), [TProtocol(SILENT)])
        muxed = stream.muxed_stream
        most = 0
        for _ in range(32):
            try:
                await muxed.conn._write_frame(struct.pack("!BBHII", 0, 0, 0, muxed.stream_id, MiB)
                                              + bytes(MiB))
            except Exception:  # noqa: BLE001 - the victim hung up: the point
                break
            await trio.sleep(0.05)
            most = max(most, _unread(victim))
        with trio.move_on_after(30):           # the victim closes the connection
            while victim.get_network().get_connections_map():
                await trio.sleep(0.1)
        return most, bool(victim.get_network().get_connections_map())


def test_a_peer_past_a_streams_receive_window_loses_its_connection() -> None:
    most, connected = trio.run(_overrun)
    assert most <= patches.MAX_RECEIVE_WINDOW + patches.UNREAD_SLACK     # was 32 MiB
    assert not connected


async def _finished_streams(streams: int) -> tuple[int, int]:
    """The peer fills the window of `streams` answered streams (inbound to the victim), and the
    victim pulls from the peer `streams` times, the peer dumping 250 KB after each answer."""
    from libp2p.custom_types import TProtocol

    victim, peer = await _hosts()
    async with victim.run(LOOPBACK), peer.run(LOOPBACK):
        victim_id, peer_id = await _connect(peer, victim), peer.get_id()
        held = []
        for _ in range(streams):
            stream = await peer.new_stream(victim_id, [TProtocol(ANSWER)])
            await write_frame(stream, {"q": 1})
            assert await read_frame(stream, timeout=10) == {"ok": True}
            with trio.fail_after(30):            # within the window the victim granted
                await stream.write(bytes(250_000))
            held.append(stream)
        await trio.sleep(0.5)
        inbound = _unread(victim)
        for _ in range(streams):                # the victim's own streams, closed after use
            stream = await victim.new_stream(peer_id, [TProtocol(DUMP)])
            await write_frame(stream, {"q": 1})
            assert await read_frame(stream, timeout=10) == {"ok": True}
            await trio.sleep(0.2)                # the dump arrives
            await _close(stream)
        await trio.sleep(0.5)
        return inbound, _unread(victim)


def test_streams_this_node_is_done_with_hold_nothing_unread() -> None:
    inbound, both = trio.run(_finished_streams, 8)
    assert inbound <= 64 * 1024                 # was 8 x 250 KB
    assert both <= 64 * 1024


def _live_inbound(host: Any) -> int:
    """Streams the peers of `host` opened that are still open (not closed, not reset)."""
    return sum(1 for conns in host.get_network().get_connections_map().values() for conn in conns
               for stream in conn.muxed_conn.streams.values()
               if not stream.is_initiator and not stream.closed)


async def _silent_streams(streams: int) -> tuple[int, bool]:
    """The peer opens `streams` streams on one connection and says nothing on them; then another
    host asks the victim something."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol

    victim, peer = await _hosts()
    other = new_host()
    async with victim.run(LOOPBACK), peer.run(LOOPBACK), other.run(LOOPBACK):
        muxed = peer.get_network().get_connections(await _connect(peer, victim))[0].muxed_conn
        muxed.stream_backlog_semaphore = trio.Semaphore(streams + 1)   # the peer's own bound
        held = [await muxed.open_stream() for _ in range(streams)]
        await trio.sleep(1.0)
        live = _live_inbound(victim)
        stream = await other.new_stream(await _connect(other, victim), [TProtocol(ANSWER)])
        await write_frame(stream, {"q": 1})
        answered = await read_frame(stream, timeout=10) == {"ok": True}
        del held
        return live, answered


def test_one_connection_holds_a_bounded_number_of_inbound_streams() -> None:
    live, answered = trio.run(_silent_streams, 200)
    assert live <= 64 + 1       # MAX_INBOUND_STREAMS (was all 200, each for its 30 s deadline)
    assert answered


async def _streams_past_the_bound(extra: int) -> tuple[int, int, int]:
    """The peer holds MAX_INBOUND_STREAMS silent streams on one connection, then opens `extra`
    more; (streams that reached the victim's stream handler, extra streams reset at the peer,
    streams the victim's muxer still tracks)."""
    victim, peer = await _hosts()
    network = victim.get_network()
    contained, reached = network.common_stream_handler, [0]

    async def counted(stream: Any) -> None:     # watches what the muxer handed on
        reached[0] += 1
        await contained(stream)

    network.set_stream_handler(counted)
    async with victim.run(LOOPBACK), peer.run(LOOPBACK):
        muxed = peer.get_network().get_connections(await _connect(peer, victim))[0].muxed_conn
        muxed.stream_backlog_semaphore = trio.Semaphore(10**6)       # the peer's own bound
        held = [await muxed.open_stream() for _ in range(patches.MAX_INBOUND_STREAMS)]
        with trio.fail_after(60):               # all held are being negotiated
            while patches.inbound_streams(_victim_conn(victim)) < len(held):
                await trio.sleep(0.05)
        more = [await muxed.open_stream() for _ in range(extra)]
        with trio.move_on_after(60):           # each is reset, one way or the other
            while not all(stream.reset_received for stream in more):
                await trio.sleep(0.05)
        await trio.sleep(0.5)
        tracked = len(_victim_conn(victim).streams)
        return reached[0], sum(stream.reset_received for stream in more), tracked


def _victim_conn(victim: Any) -> Any:
    """The victim's one muxed connection."""
    (conns,) = victim.get_network().get_connections_map().values()
    return conns[0].muxed_conn


def test_streams_past_the_bound_are_refused_at_their_syn() -> None:
    """Past MAX_INBOUND_STREAMS a stream is reset at its Yamux SYN: never built, never handed
    to the stream handler (py-libp2p built each, acknowledged it and ran it through the
    connection's tasks before `contain_streams` reset it: ~0.7 ms of CPU apiece)."""
    reached, reset, tracked = trio.run(_streams_past_the_bound, 100)
    assert reset == 100                                   # the peer learns of each refusal
    own = 8               # the hosts' own streams besides (identify and the like)
    assert reached <= patches.MAX_INBOUND_STREAMS + own   # was 165: every one handed on
    assert tracked <= patches.MAX_INBOUND_STREAMS + own   # the held ones


async def _slow_reader() -> tuple[int, int]:
    """The peer writes, keeping to the window, on a stream the victim reads quickly for 24 MiB
    and then stops reading: (the most the victim then holds unread, the stream's window)."""
    from libp2p.custom_types import TProtocol

    victim, peer = await _hosts()
    async with victim.run(LOOPBACK), peer.run(LOOPBACK):
        stream = await peer.new_stream(await _connect(peer, victim), [TProtocol(SLOWS)])
        with trio.move_on_after(120):           # until the window is spent (py-libp2p's writer
            try:                                # then gives up after 5 s)
                while True:
                    await stream.write(bytes(256 * 1024))
            except Exception:  # noqa: BLE001 - no window left: the point
                pass
        await trio.sleep(0.5)
        (conns,) = victim.get_network().get_connections_map().values()
        (inbound,) = [s for s in conns[0].muxed_conn.streams.values() if not s.is_initiator
                      and s.stream_id == stream.muxed_stream.stream_id]
        return _unread(victim), inbound.target_recv_window


def test_a_slowly_read_stream_holds_at_most_the_capped_window() -> None:
    """py-libp2p grows a quickly read stream's window up to 16 MiB (4 MiB and more on loopback),
    all of which a peer may then leave unread once the reader slows (patches.MAX_RECEIVE_WINDOW)."""
    unread, window = trio.run(_slow_reader)
    assert window <= patches.MAX_RECEIVE_WINDOW               # was 16 MiB
    assert unread <= patches.MAX_RECEIVE_WINDOW + patches.UNREAD_SLACK     # was 16.1 MB
