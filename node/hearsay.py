"""Hearsay: addresses one peer names for another, before py-libp2p keeps or dials them.

A Kademlia response names peers with addresses (FIND_NODE and GET_PROVIDERS `closerPeers`, the
providers of a key, GET_VALUE's closer peers), as does an inbound ADD_PROVIDER. py-libp2p 0.8.1
stores every such address in the peerstore and its lookups, its auto-connector and this node's DHT
round dial them: a DHT peer could make this node dial a multicast or wildcard address, a
third party, or this node's own LAN and loopback (a port scan by proxy). Each goes through the
same believability rule as a peer's own identify (`discovery.believable_addrs`), with the peer
whose bytes named it as the witness: at most 8 addresses per naming, never a wildcard,
multicast or broadcast IP, a loopback or LAN IP only when the naming peer's connection comes
from one. The hook is ours: the host's peerstore and the DHT's query entry points are wrapped
on their instances (site-packages is not patched); which peer is speaking travels in a context
variable, which trio copies into the tasks a query starts.

The same wrapper keeps py-libp2p's peerstore limit (1000 peers) from evicting this node's own
key pair or a connected peer (`_evict`); the DHT's inbound streams get a deadline and caps per
peer and per address (`_fair_inbound`), its messages a smaller bound (`MAX_DHT_MESSAGE`), and its
provider records are kept for the network's key only (`_providers_kept`). Addresses only
hearsay named are dialed within a budget per target IP (node/dialbudget.py).

A peer's claims about itself (identify, which `node/patches.py` bounds to 32 addresses, and its
signed peer record) lose the never-dialable IPs, and loopback and LAN ones when it is connected
directly from an internet IP. Addresses this node's own code writes (a bootstrap address,
`swarm peers`'s connect) lose only the never-dialable IPs.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from typing import Any, Callable

from node.dialbudget import DialBudget, ration_dials
from node.discovery import believable_addrs, never_dialed
from node.nat import lan_address
from node.relay import connection_ip

# the libp2p ID of the peer whose bytes are being handled; None while this node's own code runs
_NAMER: contextvars.ContextVar[Any] = contextvars.ContextVar("swarm_hearsay_namer", default=None)
# set while this node's own code dials what hearsay named (DHT providers): not a claim
_REPEATING: contextvars.ContextVar[bool] = contextvars.ContextVar("swarm_hearsay_repeating",
                                                                  default=False)


def guard(host: Any) -> None:
    """Filter every address written into `host`'s peerstore (see the module doc)."""
    peerstore = host.get_peerstore()
    if getattr(peerstore, "_swarm_hearsay", False):
        return
    original = peerstore.add_addrs          # add_addr and consume_peer_record call it too
    budget = DialBudget()
    host._swarm_dial_budget = budget
    ration_dials(host, budget)

    def add_addrs(peer_id: Any, addrs: Any, ttl: int = 0) -> None:
        kept = heard(host, list(addrs), about=peer_id)
        if kept:
            if _NAMER.get() is None and not _REPEATING.get():
                budget.claimed(str(peer_id), [str(a) for a in kept])
            original(peer_id, kept, ttl)

    peerstore.add_addrs = add_addrs
    peerstore._enforce_peer_limit = functools.partial(_evict, host, peerstore)
    peerstore._swarm_hearsay = True


def _evict(host: Any, peerstore: Any) -> None:
    """py-libp2p's peer limit (1000 peers) without evicting this node's own entry or a connected
    peer's. py-libp2p evicted peers without addresses first, in insertion order, and the first is
    the node's own key pair: after one DHT answer naming 1001 peers, every identify the node
    answered failed (PeerStoreError: its own public key was gone), which on a host without
    node/patches.py's stream containment ended the host."""
    excess = len(peerstore.peer_data_map) - peerstore.max_peers
    if excess <= 0:
        return
    kept = {host.get_id(), *host.get_connected_peers()}
    candidates = [(pid, data) for pid, data in peerstore.peer_data_map.items() if pid not in kept]
    candidates.sort(key=lambda item: (bool(item[1].get_addrs()), not item[1].is_expired()))
    for pid, _ in candidates[:excess]:
        peerstore.peer_record_map.pop(pid, None)
        del peerstore.peer_data_map[pid]


def guard_dht(host: Any, dht: Any, provided: set[bytes]) -> None:
    """Attribute what `dht` (a py-libp2p KadDHT) learns to the peer that said it: its queries of
    one peer, its inbound stream handler, and the providers and routing entries it keeps. Peers'
    provider records are kept only for the keys in `provided` (see `_providers_kept`)."""
    guard(host)
    _bound_messages()
    routing, providers, values = dht.peer_routing, dht.provider_store, dht.value_store
    routing._query_peer_for_closest = _spoken_by(routing._query_peer_for_closest,
                                                 lambda peer, *_: peer)
    providers._get_providers_from_peer_with_closers = _providers_heard(
        host, providers._get_providers_from_peer_with_closers)
    values._get_from_peer = _spoken_by(values._get_from_peer, lambda peer, *_, **__: peer)
    dht._do_handle_stream = _fair_inbound(host, _spoken_by(
        dht._do_handle_stream, lambda stream: stream.muxed_conn.peer_id))
    providers.add_provider = _providers_kept(provided, _info_heard(host, providers.add_provider, 1))
    dht.routing_table.add_peer = _info_heard(host, dht.routing_table.add_peer, 0)


# The largest Kademlia message read, either way. py-libp2p reads up to 4 MiB and parses it on the
# host's one thread: 400,000 addresses in one ADD_PROVIDER, some 0.2 s of the event loop, which
# one peer id may send each second. A swarm node's own messages (20 peers or providers with
# their signed records) are some 20 KB.
MAX_DHT_MESSAGE = 256 * 1024


def _bound_messages() -> None:
    import libp2p.kad_dht.kad_dht as kad_dht
    import libp2p.kad_dht.peer_routing as peer_routing
    import libp2p.kad_dht.provider_store as provider_store
    import libp2p.kad_dht.value_store as value_store

    for module in (kad_dht, peer_routing, provider_store, value_store):
        module.MAX_DHT_MESSAGE_SIZE = MAX_DHT_MESSAGE      # type: ignore[attr-defined]


@contextlib.contextmanager
def repeating() -> Iterator[None]:
    """While this runs, what this node's own code writes into the peerstore is hearsay it
    repeats (a DHT provider it dials), not a claim: its dials stay rationed (node/dialbudget.py)."""
    token = _REPEATING.set(True)
    try:
        yield
    finally:
        _REPEATING.reset(token)


def heard(host: Any, addrs: list[Any], about: Any = None) -> list[Any]:
    """Of `addrs` (multiaddrs) said in the current context, those this node may keep and dial;
    `about`: the peer they are addresses of, when known."""
    namer = _NAMER.get()
    if namer is not None:
        return believed(addrs, connection_ip(host, namer), hearsay=True)
    kept = believed(addrs, None, hearsay=False)
    if about is None or about == host.get_id():
        return kept
    # a connected peer's own claim (identify, a signed peer record): py-libp2p's auto-connector
    # dials the peerstore's addresses while the node has under 100 connections, so an internet
    # peer claiming 192.168.x.y or 127.0.0.1 had the node probe its own LAN once it left
    ip = connection_ip(host, about)
    if ip is None or lan_address(f"/ip{6 if ':' in ip else 4}/{ip}"):
        return kept                     # this node's own write, a relayed peer, or a LAN peer
    return [a for a in kept if not lan_address(str(a))]


def believed(addrs: list[Any], namer_ip: str | None, hearsay: bool) -> list[Any]:
    """Of `addrs` (multiaddrs), those kept: hearsay by a peer whose connection comes from
    `namer_ip` (None: unknown or relayed) as `discovery.believable_addrs`; this node's own
    writes all but the never-dialable."""
    by_text = {str(a): a for a in addrs}
    if not hearsay:
        return [a for text, a in by_text.items() if not never_dialed(text)]
    return [by_text[t] for t in believable_addrs(list(by_text), namer_ip)]


def _spoken_by(fn: Callable[..., Any], namer: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (a coroutine function) with the peer `namer(*args)` as the speaker while it runs."""
    @functools.wraps(fn)
    async def spoken(*args: Any, **kwargs: Any) -> Any:
        token = _NAMER.set(namer(*args, **kwargs))
        try:
            return await fn(*args, **kwargs)
        finally:
            _NAMER.reset(token)
    return spoken


def _providers_heard(host: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """GET_PROVIDERS of one peer: its providers come back as PeerInfo, never via the peerstore
    (this node's DHT round dials them), so their addresses are filtered here."""
    from libp2p.peer.peerinfo import PeerInfo

    @functools.wraps(fn)
    async def get(peer_id: Any, key: bytes) -> Any:
        token = _NAMER.set(peer_id)
        try:
            found, closer = await fn(peer_id, key)
            kept = [PeerInfo(p.peer_id, heard(host, list(p.addrs))) for p in found]
            return [p for p in kept if p.addrs], closer
        finally:
            _NAMER.reset(token)
    return get


# Inbound Kademlia streams: py-libp2p serves 12 at once, each for as long as its peer keeps it
# open, sending nothing or not: one peer's 12 silent streams made this node reset every other
# peer's DHT request, for as long as it liked.
DHT_STREAM_S = 30.0             # one inbound stream, whole (an honest one: a request, an answer)
DHT_PER_PEER = 2                # inbound streams served at once per peer id ...
DHT_PER_ADDRESS = 4             # ... and per remote address (peer ids are free)


def _fair_inbound(host: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
    """KadDHT._do_handle_stream with a deadline and per-peer / per-address caps (past a cap the
    stream is reset unread)."""
    import trio

    from node.patches import reset
    from node.quota import address_key

    held: dict[Any, int] = {}

    @functools.wraps(fn)
    async def handle(stream: Any) -> None:
        peer = stream.muxed_conn.peer_id
        keys = [("peer", peer), ("ip", address_key(connection_ip(host, peer)))]
        if held.get(keys[0], 0) >= DHT_PER_PEER or held.get(keys[1], 0) >= DHT_PER_ADDRESS:
            await reset(stream)
            return
        for key in keys:
            held[key] = held.get(key, 0) + 1
        try:
            with trio.move_on_after(DHT_STREAM_S) as scope:
                await fn(stream)
            if scope.cancelled_caught:
                await reset(stream)
        finally:
            for key in keys:
                held[key] -= 1
                if not held[key]:
                    del held[key]
    return handle


def _providers_kept(provided: set[bytes], fn: Callable[..., Any]) -> Callable[..., Any]:
    """ProviderStore.add_provider keeping a peer's ADD_PROVIDER only for a key in `provided`.
    py-libp2p kept any key (up to 80 bytes) for 48 h, at one ADD_PROVIDER a second per peer id,
    each provider with every address its message listed (4 MiB of them): one peer grew the
    node's memory by the megabyte each second. A swarm node looks up its network's key only."""
    @functools.wraps(fn)
    def add(key: bytes, provider: Any) -> Any:
        if _NAMER.get() is not None and key not in provided:
            return None
        return fn(key, provider)
    return add


def _info_heard(host: Any, fn: Callable[..., Any], at: int) -> Callable[..., Any]:
    """`fn` with its PeerInfo argument number `at` filtered while a peer is speaking (dropped,
    returning None or False, when none of its addresses is left)."""
    import inspect

    from libp2p.peer.peerinfo import PeerInfo

    def filtered(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        info = args[at]
        if _NAMER.get() is None or not isinstance(info, PeerInfo) or not info.addrs:
            return args
        addrs = heard(host, list(info.addrs))
        if not addrs:
            return None
        return args[:at] + (PeerInfo(info.peer_id, addrs),) + args[at + 1:]

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            kept = filtered(args)
            return False if kept is None else await fn(*kept, **kwargs)
        return call_async

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        kept = filtered(args)
        return None if kept is None else fn(*kept, **kwargs)
    return call
