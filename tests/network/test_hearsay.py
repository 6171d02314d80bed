"""What the peers and addresses other peers name can make this node keep and dial (docs/TRUST.md,
"Dialing"; node/hearsay.py).

Real py-libp2p on loopback: the liar is a host that answers every Kademlia request (FIND_NODE,
GET_PROVIDERS) naming a fake peer at 44 addresses, among them the wildcard, multicast and
broadcast; the victim is a host with the node's DHT (`discovery.make_dht`). A second liar sends
a GossipSub PRUNE whose peer exchange names a peer at a canary listener of the test's own.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import multiaddr
import trio
import varint

from node import discovery, gossip
from node.discovery import MAX_CLAIMED_ADDRS
from node.hearsay import believed

LOOPBACK = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
NEVER = ["/ip4/0.0.0.0/tcp/7400", "/ip4/224.0.0.251/tcp/5353", "/ip4/255.255.255.255/tcp/9",
         "/ip6/ff02::1/tcp/9"]
# closed loopback ports (a dial is refused at once) after the never-dialable ones
NAMED = NEVER + [f"/ip4/127.0.0.1/tcp/{port}" for port in range(1, 41)]


def _never(addrs: list[Any]) -> list[str]:
    return [str(a) for a in addrs if str(a).split("/")[2] in ("0.0.0.0", "224.0.0.251",
                                                              "255.255.255.255", "ff02::1")]


def test_hearsay_from_an_internet_peer_names_no_lan_address() -> None:
    addrs = [multiaddr.Multiaddr(a) for a in NAMED + ["/ip4/198.51.100.7/tcp/4001"]]
    kept = [str(a) for a in believed(addrs, "203.0.113.9", hearsay=True)]
    assert kept == ["/ip4/198.51.100.7/tcp/4001"]
    assert [str(a) for a in believed(addrs, None, hearsay=True)] == kept    # relayed / unknown
    from_lan = believed(addrs, "192.168.1.20", hearsay=True)
    assert len(from_lan) == MAX_CLAIMED_ADDRS and not _never(from_lan)
    own = believed(addrs, None, hearsay=False)                 # this node's own writes
    assert len(own) == len(addrs) - len(NEVER) and not _never(own)


def _fake_peer(seed: bytes = b"f" * 32) -> Any:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return ID.from_pubkey(create_new_key_pair(seed).public_key)


async def _lie(stream: Any, fake: Any, named: list[str] = NAMED) -> None:
    """Answer each Kademlia request of `stream` naming `fake` (one peer ID or a list) at
    `named`."""
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.utils import read_varint_prefixed_bytes

    try:
        while True:
            request = Message()
            request.ParseFromString(await read_varint_prefixed_bytes(stream))
            answer = Message(type=request.type, key=request.key)
            for group in (answer.closerPeers, answer.providerPeers):
                for pid in fake if isinstance(fake, list) else [fake]:
                    peer = group.add()
                    peer.id = pid.to_bytes()
                    peer.addrs.extend(multiaddr.Multiaddr(a).to_bytes() for a in named)
            raw = answer.SerializeToString()
            await stream.write(varint.encode(len(raw)) + raw)
    except Exception:  # noqa: BLE001 - the victim closes the stream when done
        pass


async def _ask_a_liar() -> tuple[list[Any], list[Any]]:
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.kad_dht import PROTOCOL_ID
    from libp2p.peer.peerinfo import info_from_p2p_addr

    victim, liar, fake = new_host(), new_host(), _fake_peer()

    async def handler(stream: Any) -> None:
        await _lie(stream, fake)

    liar.set_stream_handler(TProtocol(PROTOCOL_ID), handler)
    dht = discovery.make_dht(victim, "hearsay")
    async with victim.run(LOOPBACK), liar.run(LOOPBACK):
        target = multiaddr.Multiaddr(f"{liar.get_addrs()[0]}/p2p/{liar.get_id()}")
        with trio.fail_after(120):
            await victim.connect(info_from_p2p_addr(target))
            await dht.add_peer(liar.get_id())
            key = discovery.providers_key("hearsay")
            providers = await dht.find_providers(key, count=20)
        try:
            stored = victim.get_peerstore().addrs(fake)
        except Exception:  # noqa: BLE001 - peerstore raises when it knows no address
            stored = []
        return providers, stored


def test_a_dht_peer_naming_addresses_gets_a_few_kept_never_the_undialable() -> None:
    providers, stored = trio.run(_ask_a_liar)
    named = [p for p in providers if p.addrs]
    assert named, "the liar's provider answer never arrived"
    for info in named:
        assert len(info.addrs) <= MAX_CLAIMED_ADDRS and not _never(info.addrs), info.addrs
    assert stored, "the liar's closer peer never reached the peerstore"
    assert len(stored) <= MAX_CLAIMED_ADDRS and not _never(stored), stored


async def _prune_with_exchange() -> int:
    """A fresh peer PRUNEs the victim naming, by peer exchange, a peer at a canary listener; the
    number of connections the canary got within 5 s of the victim handling the PRUNE (py-libp2p
    dials PX peers inline, before that handling returns)."""
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.envelope import seal_record
    from libp2p.peer.peer_record import PeerRecord
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.peer.id import ID

    dials = 0

    async def canary(stream: trio.SocketStream) -> None:
        nonlocal dials
        dials += 1
        await stream.aclose()

    victim = new_host()
    router, pubsub = gossip.make_router_and_pubsub(victim)
    liar = new_host()
    liar_router, liar_pubsub = gossip.make_router_and_pubsub(liar)
    from libp2p.tools.anyio_service import background_trio_service

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, canary, 0,
                                                          host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        keys = create_new_key_pair(b"c" * 32)
        named = ID.from_pubkey(keys.public_key)
        record = PeerRecord(named, [multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")])
        envelope = seal_record(record, keys.private_key)
        async with victim.run(LOOPBACK), liar.run(LOOPBACK), \
                background_trio_service(pubsub), background_trio_service(router), \
                background_trio_service(liar_pubsub), background_trio_service(liar_router):
            await pubsub.wait_until_ready()
            await liar_pubsub.wait_until_ready()
            await pubsub.subscribe("t")
            await liar_pubsub.subscribe("t")
            target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
            with trio.fail_after(60):
                await liar.connect(info_from_p2p_addr(target))
                while liar.get_id() not in pubsub.peers:
                    await trio.sleep(0.05)
            prune = rpc_pb2.ControlPrune(topicID="t")
            prune.peers.add(peerID=named.to_bytes(), signedPeerRecord=envelope.marshal_envelope())
            await liar_router.emit_control_message(rpc_pb2.ControlMessage(prune=[prune]),
                                                   victim.get_id())
            with trio.fail_after(60):                # the victim leaves the liar's mesh on it
                while not router.graft_flood_tracking.get(liar.get_id(), {}).get("t"):
                    await trio.sleep(0.05)
            await trio.sleep(5)
        nursery.cancel_scope.cancel()
    return dials


def test_a_prune_naming_peers_makes_the_node_dial_nothing() -> None:
    assert trio.run(_prune_with_exchange) == 0


async def _named_a_thousand_then_connect() -> tuple[bool, list[Any]]:
    """The liar's answers name 1,001 peers at one closed loopback port each, which fills the
    victim's peerstore past py-libp2p's 1,000; then a third host connects to the victim. Whether
    the victim still holds its own key, and whom it is connected to."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.kad_dht import PROTOCOL_ID
    from libp2p.peer.peerinfo import info_from_p2p_addr

    victim, liar, late = new_host(), new_host(), new_host()
    fakes = [_fake_peer(i.to_bytes(4, "big") * 8) for i in range(1001)]

    async def handler(stream: Any) -> None:
        await _lie(stream, fakes, ["/ip4/127.0.0.1/tcp/9"])

    liar.set_stream_handler(TProtocol(PROTOCOL_ID), handler)
    dht = discovery.make_dht(victim, "hearsay")
    async with victim.run(LOOPBACK), liar.run(LOOPBACK), late.run(LOOPBACK):
        target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
        with trio.fail_after(120):
            await liar.connect(info_from_p2p_addr(target))
            await dht.add_peer(liar.get_id())
            await dht.peer_routing.find_closest_peers_network(b"k" * 32)
            assert len(victim.get_peerstore().peer_data_map) >= 1000
            with trio.move_on_after(30):
                await late.connect(info_from_p2p_addr(target))
                while late.get_id() not in victim.get_connected_peers():
                    await trio.sleep(0.05)
        has_key = victim.get_id() in victim.get_peerstore().peer_data_map
        return has_key, victim.get_connected_peers()


def test_a_dht_answer_naming_a_thousand_peers_leaves_the_host_its_key() -> None:
    has_key, connected = trio.run(_named_a_thousand_then_connect)
    assert has_key and len(connected) == 2, connected


async def _add_providers(keys: list[bytes], addrs: int) -> dict[bytes, list[Any]]:
    """The liar sends ADD_PROVIDER for each of `keys`, naming itself at `addrs` addresses; what
    the victim's provider store holds then (key -> addresses of each provider)."""
    from libp2p import new_host
    from libp2p.peer.peerinfo import info_from_p2p_addr

    from swarm.bench.dhtflood import add_providers

    victim, liar = new_host(), new_host()
    dht = discovery.make_dht(victim, "hearsay")
    claimed = [multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}").to_bytes()
               for port in range(1, addrs + 1)]
    async with victim.run(LOOPBACK), liar.run(LOOPBACK):
        target = multiaddr.Multiaddr(f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}")
        with trio.fail_after(120):
            await liar.connect(info_from_p2p_addr(target))
            await add_providers(liar, victim, keys, claimed)
    return {key: [list(record.provider_info.addrs) for record in providers.values()]
            for key, providers in dht.provider_store.providers.items()}


def test_add_provider_keeps_the_network_key_only_with_a_few_addresses() -> None:
    from libp2p.kad_dht.kad_dht import _encode_key

    ours = _encode_key(discovery.providers_key("hearsay"))
    others = [bytes([i]) * 32 for i in range(1, 10)]     # 10 messages: py-libp2p's rate limit
    stored = trio.run(_add_providers, others + [ours], 5000)
    assert list(stored) == [ours], [k.hex()[:8] for k in stored]
    assert all(len(addrs) <= MAX_CLAIMED_ADDRS for addrs in stored[ours]), stored


def test_a_dht_message_past_256_kib_is_refused_unread() -> None:
    from libp2p.kad_dht.kad_dht import _encode_key

    from node.hearsay import MAX_DHT_MESSAGE

    ours = _encode_key(discovery.providers_key("hearsay"))
    # 30,000 addresses of 10 bytes: py-libp2p read and parsed up to 4 MiB (400,000 of them)
    assert 30_000 * 10 > MAX_DHT_MESSAGE
    assert trio.run(_add_providers, [ours], 30_000) == {}


def test_a_liar_across_the_internet_leaves_no_lan_address_to_dial() -> None:
    """tests/network/hearsay_netns.py in a fresh network namespace (root only: skips otherwise),
    where the liar is at a public IP: neither its identify's loopback and LAN claims about itself
    nor its DHT answer's about another peer are kept; its public ones are."""
    import json
    import subprocess
    import sys

    import pytest

    done = subprocess.run(["unshare", "-n", "--", sys.executable, "-m",
                           "tests.network.hearsay_netns"], capture_output=True, text=True,
                          timeout=300)
    if done.returncode and "unshare failed" in done.stderr:     # not root: no namespaces
        pytest.skip(f"no network namespace here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    kept = json.loads(done.stdout.strip().splitlines()[-1])
    lan = ("/ip4/127.", "/ip4/10.", "/ip4/192.168.")
    assert not [a for a in kept["liar"] + kept["named"] if a.startswith(lan)], kept
    assert any(a.startswith("/ip4/198.51.100.9/") for a in kept["liar"]), kept
    assert kept["named"] == ["/ip4/198.51.100.9/tcp/4001"], kept


async def _ask_past_silent_streams() -> bool:
    """A liar opens 12 Kademlia streams to the victim and sends nothing on them (py-libp2p serves
    12 at once); then another host asks the victim FIND_NODE. Whether it got an answer."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.kad_dht import PROTOCOL_ID
    from libp2p.kad_dht.pb.kademlia_pb2 import Message
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from libp2p.utils import read_varint_prefixed_bytes

    victim, liar, asker = new_host(), new_host(), new_host()
    discovery.make_dht(victim, "hearsay")
    async with victim.run(LOOPBACK), liar.run(LOOPBACK), asker.run(LOOPBACK):
        target = info_from_p2p_addr(multiaddr.Multiaddr(
            f"{victim.get_addrs()[0]}/p2p/{victim.get_id()}"))
        with trio.fail_after(60):
            await liar.connect(target)
            silent = []
            for _ in range(12):
                try:
                    silent.append(await liar.new_stream(victim.get_id(),
                                                        [TProtocol(PROTOCOL_ID)]))
                except Exception:  # noqa: BLE001 - reset past the victim's cap
                    pass
            await trio.sleep(1)                         # the victim's handlers have them
            await asker.connect(target)
            raw = Message(type=Message.MessageType.FIND_NODE, key=b"k" * 32).SerializeToString()
            try:
                stream = await asker.new_stream(victim.get_id(), [TProtocol(PROTOCOL_ID)])
                await stream.write(varint.encode(len(raw)) + raw)
                answer = Message()
                answer.ParseFromString(await read_varint_prefixed_bytes(stream))
            except Exception:  # noqa: BLE001 - reset: no slot for it
                return False
        assert silent
        return answer.type == Message.MessageType.FIND_NODE


def test_silent_dht_streams_of_one_peer_leave_others_answered() -> None:
    assert trio.run(_ask_past_silent_streams)


async def _name_a_thousand_to(addr: str) -> int:
    """A liar connects to the node at `addr` and answers its DHT round naming 1,001 peers; once
    it has answered, a third host connects to the node. How many requests the liar answered."""
    from libp2p import new_host
    from libp2p.custom_types import TProtocol
    from libp2p.kad_dht.kad_dht import PROTOCOL_ID
    from libp2p.peer.peerinfo import info_from_p2p_addr

    liar, late = new_host(), new_host()
    fakes = [_fake_peer(i.to_bytes(4, "big") * 8) for i in range(1001)]
    answered = 0

    async def handler(stream: Any) -> None:
        nonlocal answered
        answered += 1
        await _lie(stream, fakes, ["/ip4/127.0.0.1/tcp/9"])

    liar.set_stream_handler(TProtocol(PROTOCOL_ID), handler)
    target = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    async with liar.run(LOOPBACK), late.run(LOOPBACK):
        with trio.fail_after(180):
            await liar.connect(target)
            while not answered:                 # the node's DHT round (every 15 s) asked it
                await trio.sleep(0.2)
            await trio.sleep(2)
            await late.connect(target)
            await trio.sleep(2)
    return answered


def test_a_swarm_join_node_named_a_thousand_dht_peers_still_answers_identify(
        tmp_path: Path, network: str) -> None:
    from tests.network.launcher import launch

    a = launch(tmp_path / "a", network)
    assert trio.run(_name_a_thousand_to, a.addr) >= 1
    status = a.status()
    # before, its own key left the peerstore: each identify it answered then failed (a stream
    # failure each; contained, where a bare py-libp2p host ended)
    assert status["stream_failures"] == 0 and status["host_restarts"] == 0, status
    assert a.proc.poll() is None
