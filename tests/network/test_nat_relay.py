"""The relay's caps hold (node/relay.py), with real py-libp2p hosts on loopback in one process.

All clients share 127.0.0.1, so per-IP caps are the ones met first; the global caps are tested by
raising the per-IP ones. py-libp2p 0.8.1 alone enforces none of the per-IP caps, accepts a RESERVE
naming another peer, and lets an idle circuit outlive its duration: each test below fails on the
library's own CircuitV2Protocol.
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio

from node import relay as relay_mod
from node.relay import RelayCaps

ECHO = "/swarm/test-echo/1.0.0"


class Client:
    """A host with the STOP side and the circuit transport (what every swarm node runs)."""

    def __init__(self, host: Any, transport: Any) -> None:
        self.host, self.transport = host, transport

    async def reserve(self, relay: Any, for_peer: Any = None) -> bool:
        from libp2p.custom_types import TProtocol
        from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage, PeerId
        from libp2p.relay.circuit_v2.protocol_buffer import StatusCode
        from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

        stream = await self.host.new_stream(relay.get_id(), [TProtocol("/libp2p/circuit/relay/0.2.0/hop")])
        peer = (for_peer or self.host.get_id()).to_bytes()
        await write_delimited_msg(stream, HopMessage(type=HopMessage.RESERVE, peer=PeerId(id=peer)))
        with trio.fail_after(60):          # generous: a loaded machine; ends with the answer
            answer = await read_delimited_msg(stream, HopMessage)
        await stream.reset()
        return answer.status == StatusCode.OK

    async def dial(self, relay: Any, target: Any) -> Any:
        import multiaddr

        addr = f"{relay.get_addrs()[0]}".split("/p2p/")[0]
        with trio.fail_after(60):
            return await self.transport.dial(
                multiaddr.Multiaddr(f"{addr}/p2p/{relay.get_id()}/p2p-circuit/p2p/{target}"))


async def _echo(stream: Any) -> None:
    try:
        while data := await stream.read(65536):
            await stream.write(data)
    except Exception:  # noqa: BLE001 - the relay resets the circuit
        pass


async def _lab(caps: RelayCaps, clients: int,
               body: Callable[[Any, list[Client]], Awaitable[None]]) -> None:
    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
    from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
    from libp2p.relay.circuit_v2.transport import CircuitV2Transport
    from libp2p.tools.anyio_service import background_trio_service

    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    relay_host = new_host()
    relay = relay_mod.make_relay(relay_host, caps)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(relay_host.run(listen))
        await stack.enter_async_context(background_trio_service(relay))
        out = []
        for _ in range(clients):
            host = new_host()
            await stack.enter_async_context(host.run(listen))
            stop = CircuitV2Protocol(host, allow_hop=False)
            await stack.enter_async_context(background_trio_service(stop))
            host.set_stream_handler(TProtocol(ECHO), _echo)
            await host.connect(PeerInfo(relay_host.get_id(), relay_host.get_addrs()))
            out.append(Client(host, CircuitV2Transport(host, stop, RelayConfig(roles=RelayRole.STOP))))
        relay_host.relay = relay
        with trio.fail_after(240):          # generous: a loaded machine; ends with the body
            await body(relay_host, out)


def run(caps: RelayCaps, clients: int, body: Callable[[Any, list[Client]], Awaitable[None]]) -> None:
    trio.run(_lab, caps, clients, body)


def test_reservations_are_capped_per_ip_and_in_total() -> None:
    async def body(relay: Any, clients: list[Client]) -> None:
        a, b, c = clients
        assert await a.reserve(relay) and await b.reserve(relay)
        assert not await c.reserve(relay)                  # a third from 127.0.0.1
        assert await a.reserve(relay)                      # a refresh is not a new slot
        assert relay.relay.info()["refused"] == {"reservations_per_ip": 1}

    run(RelayCaps(reservations_per_ip=2), 3, body)

    async def total(relay: Any, clients: list[Client]) -> None:
        assert await clients[0].reserve(relay)
        assert not await clients[1].reserve(relay)
        assert relay.relay.info()["refused"] == {"reservations_total": 1}

    run(RelayCaps(reservations_total=1, reservations_per_ip=10), 2, total)


def test_a_reservation_for_another_peer_is_refused() -> None:
    async def body(relay: Any, clients: list[Client]) -> None:
        a, b = clients
        assert not await a.reserve(relay, for_peer=b.host.get_id())
        assert relay.relay.info()["reservations"] == 0
        assert relay.relay.info()["refused"] == {"reserve_for_other_peer": 1}

    run(RelayCaps(), 2, body)


def test_circuits_are_capped_per_ip() -> None:
    async def body(relay: Any, clients: list[Client]) -> None:
        a, b, c = clients
        assert await a.reserve(relay) and await c.reserve(relay)
        await b.dial(relay, a.host.get_id())
        with pytest.raises(Exception):
            await b.dial(relay, c.host.get_id())           # a second circuit from 127.0.0.1
        assert relay.relay.info()["circuits"] == 1
        assert relay.relay.info()["refused"] == {"circuits_per_ip": 1}

    run(RelayCaps(circuits_per_ip=1), 3, body)


def test_a_circuit_ends_at_its_byte_budget_and_its_deadline() -> None:
    async def through(b: Client, a: Client, payload: bytes) -> int:
        from libp2p.custom_types import TProtocol

        stream = await b.host.new_stream(a.host.get_id(), [TProtocol(ECHO)])
        echoed = 0
        with trio.move_on_after(30):        # ends when all is echoed, or at the cap's reset
            try:
                await stream.write(payload)
                while echoed < len(payload) and (data := await stream.read(65536)):
                    echoed += len(data)
            except Exception:  # noqa: BLE001 - the reset that the cap causes
                pass
        return echoed

    async def bytes_cap(relay: Any, clients: list[Client]) -> None:
        a, b = clients
        assert await a.reserve(relay)
        await b.dial(relay, a.host.get_id())
        assert await through(b, a, b"x" * 1000) == 1000
        assert await through(b, a, b"y" * 200_000) < 200_000      # past 64 KiB both ways
        await _wait_no_circuit(relay)

    run(RelayCaps(circuit_bytes=64 * 1024), 2, bytes_cap)

    async def deadline(relay: Any, clients: list[Client]) -> None:
        a, b = clients
        assert await a.reserve(relay)
        await b.dial(relay, a.host.get_id())
        assert relay.relay.info()["circuits"] == 1
        await _wait_no_circuit(relay)                               # idle, yet cut at 1 s + 1
        assert relay.relay.info()["refused"] == {"circuit_duration": 1}

    run(RelayCaps(circuit_duration_s=1), 2, deadline)


async def _wait_no_circuit(relay: Any) -> None:
    """Until the relay holds no circuit (after a cut, py-libp2p's other direction may wait out
    its 15 s write timeout before the circuit's task ends)."""
    start = trio.current_time()
    with trio.fail_after(120):              # generous: a loaded machine; ends once it is gone
        while relay.relay.info()["circuits"]:
            await trio.sleep(0.1)
    print(f"circuit gone after {trio.current_time() - start:.1f} s")


def test_relays_are_learned_from_node_records(tmp_path) -> None:
    """A `node` record whose capabilities say `relay` names a relay to dial; circuit addresses
    and other nodes' addresses are not relays."""
    from memory import codec
    from memory.crypto import Keypair
    from memory.store import Store
    from node.daemon import RELAYS_SQL, relay_addrs
    from node.nat import Nat
    from tests.helpers import bodies

    relay, plain = Keypair.generate(), Keypair.generate()
    direct = f"/ip4/203.0.113.1/tcp/7400/p2p/{relay.peer_id}"
    body = bodies()["node"]
    records = [codec.sign(relay, "node", 1, body.model_copy(update={
                   "addrs": [direct, f"{direct}/p2p-circuit/p2p/{plain.peer_id}"],
                   "capabilities": ["gossip", "relay"]})).raw,
               codec.sign(plain, "node", 1, body.model_copy(update={
                   "addrs": [f"/ip4/10.0.0.9/tcp/7400/p2p/{plain.peer_id}"]})).raw]
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        assert store.ingest(records).accepted == 2
        rows = store.query(RELAYS_SQL).rows
    nat = Nat(None)                       # type: ignore[arg-type] - learn_relays needs no host
    trio.run(nat.learn_relays, relay_addrs(rows))
    assert nat.known_relays == [direct]


def test_an_unknown_reachability_is_refused_in_one_line(tmp_path) -> None:
    """Before anything about the machine: with its port taken (another node, say), a bad flag
    still gets its own message, not the port's."""
    import socket

    from tests.network.test_listen import _join, _one_line_error

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_join(tmp_path, "--reachability", "sometimes",
                              "--listen", f"/ip4/127.0.0.1/tcp/{port}"),
                        "--reachability must be one of auto, public, private")


def test_a_peer_on_the_lan_is_not_asked_to_dial_back() -> None:
    """A neighbour behind the same home router can always dial us back: its yes made nodes behind
    one router `public` (test_nat_running.py), so they took no relay slot and nodes behind other
    routers never reached them. Real hosts on loopback (a LAN address): the verdict stays
    unknown."""
    from types import SimpleNamespace

    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo

    from node.nat import DIALBACK_PROTOCOL, Nat, lan_address

    assert [lan_address(f"/ip4/{ip}/tcp/7400") for ip in (
        "10.1.0.3", "172.20.0.2", "192.168.1.20", "100.64.0.9", "127.0.0.1", "203.0.113.1")] == [
        True, True, True, True, True, False]
    assert lan_address("/ip6/fe80::1/tcp/1") and not lan_address("/p2p-circuit/p2p/x")

    async def main() -> str:
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        server, client = new_host(), new_host()
        serving = Nat(SimpleNamespace(host=server))     # type: ignore[arg-type]
        server.set_stream_handler(TProtocol(DIALBACK_PROTOCOL), serving._serve_dialback)
        nat = Nat(SimpleNamespace(host=client))         # type: ignore[arg-type]
        async with server.run(listen), client.run(listen):
            await client.connect(PeerInfo(server.get_id(), server.get_addrs()))
            with trio.fail_after(60):
                return await nat.check_reachability()

    assert trio.run(main) == "unknown"


def test_dial_back_dials_only_the_askers_ip_and_answers_each_peer_once_per_gap() -> None:
    """`/swarm/dialback/1.0.0` with real hosts: an open port is reachable, a closed one is not,
    a second request within the gap and a malformed one are closed unanswered."""
    import socket
    from types import SimpleNamespace

    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo

    from node.framing import ProtocolError, read_frame, write_frame
    from node.nat import DIALBACK_PROTOCOL, MAX_SERVED, Nat

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))                       # bound, not listening: refused
    open_port, closed_port = listener.getsockname()[1], closed.getsockname()[1]

    async def ask(client: Any, server: Any, request: Any) -> Any:
        stream = await client.new_stream(server.get_id(), [TProtocol(DIALBACK_PROTOCOL)])
        await write_frame(stream, request)
        try:
            return await read_frame(stream, timeout=15)
        except ProtocolError:
            return None                                 # closed unanswered

    async def main() -> None:
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        server, first, second, third = new_host(), new_host(), new_host(), new_host()
        nat = Nat(SimpleNamespace(host=server))         # type: ignore[arg-type]
        server.set_stream_handler(TProtocol(DIALBACK_PROTOCOL), nat._serve_dialback)
        async with server.run(listen), first.run(listen), second.run(listen), third.run(listen):
            for client in (first, second, third):
                await client.connect(PeerInfo(server.get_id(), server.get_addrs()))
            with trio.fail_after(60):
                assert await ask(first, server, {"port": open_port}) == {"ok": True}
                assert await ask(first, server, {"port": open_port}) is None      # too soon
                assert await ask(second, server, {"port": "7400"}) is None        # malformed
                assert await ask(second, server, {"port": closed_port}) == {"ok": False}
                # askers from long ago (fresh peer ids, one ask each) are not kept for good
                long_ago = time.monotonic() - 3600
                nat._served.update({f"gone{i}": long_ago for i in range(MAX_SERVED)})
                assert await ask(third, server, {"port": open_port}) == {"ok": True}
                assert len(nat._served) <= 3
                assert await ask(first, server, {"port": open_port}) is None      # still too soon

    try:
        trio.run(main)
    finally:
        listener.close()
        closed.close()


def test_a_relay_naming_peers_it_cannot_reach_costs_a_few_dials_a_round(monkeypatch) -> None:
    """A hostile relay lists MAX_LISTED fresh peer ids and never answers a dial through it: a
    round of relayed dials stops after RELAYED_DIAL_FAILS failures (it was one 15-s dial per
    listed peer, ~16 minutes a round)."""
    from types import SimpleNamespace

    import multiaddr
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID
    from libp2p.peer.peerinfo import PeerInfo
    from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
    from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
    from libp2p.relay.circuit_v2.transport import CircuitV2Transport
    from libp2p.tools.anyio_service import background_trio_service

    from node import nat as nat_mod
    from node.framing import read_frame, write_frame

    monkeypatch.setattr(nat_mod, "RELAYED_DIAL_S", 0.5)     # the dials' length is not the point
    fresh = [str(ID.from_pubkey(new_host().get_public_key())) for _ in range(relay_mod.MAX_LISTED)]
    dials: list[int] = []

    async def list_fresh(stream: Any) -> None:
        await read_frame(stream, max_bytes=256, timeout=10)
        await write_frame(stream, {"p": fresh})

    async def hang(stream: Any) -> None:
        dials.append(1)
        await trio.sleep(30)

    async def main() -> None:
        listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
        relay, me = new_host(), new_host()
        relay.set_stream_handler(TProtocol(relay_mod.PEERS_PROTOCOL), list_fresh)
        relay.set_stream_handler(TProtocol("/libp2p/circuit/relay/0.2.0/hop"), hang)
        async with relay.run(listen), me.run(listen), trio.open_nursery() as nursery:
            stop = CircuitV2Protocol(me, allow_hop=False)
            nursery.start_soon(_serve, stop)
            await me.connect(PeerInfo(relay.get_id(), relay.get_addrs()))
            net = SimpleNamespace(host=me, config=SimpleNamespace(network="test"),
                                  peers=SimpleNamespace(is_banned=lambda p: False),
                                  connected_peers=lambda: [str(relay.get_id())])
            nat = nat_mod.Nat(net)                              # type: ignore[arg-type]
            nat.transport = CircuitV2Transport(me, stop, RelayConfig(roles=RelayRole.STOP))
            addr = f"{relay.get_addrs()[0]}".split("/p2p/")[0]
            nat.reservations = {str(relay.get_id()): (
                time.monotonic() + 3600, [f"{addr}/p2p/{relay.get_id()}/p2p-circuit"])}
            with trio.fail_after(60):
                await nat._dial_relayed_peers()
            nursery.cancel_scope.cancel()
        assert 1 <= len(dials) <= nat_mod.RELAYED_DIAL_FAILS

    async def _serve(stop: Any) -> None:
        async with background_trio_service(stop):
            await trio.sleep_forever()

    trio.run(main)
