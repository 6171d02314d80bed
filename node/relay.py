"""`swarm join --relay`: this node relays for nodes that cannot be dialed (circuit relay v2).

py-libp2p 0.8.1's `CircuitV2Protocol` speaks `/libp2p/circuit/relay/0.2.0/hop` and enforces a
global reservation count, a per-reservation circuit count and each circuit's byte budget; its
per-IP limits (`HopConfig`) are defined but never checked, a RESERVE may name another peer than the
one asking, a reservation outlives its holder's connection in the count, and a circuit's duration
is checked only when data flows. `CappedRelay` closes those gaps in our own code: reservations per
IP and in total (held by connected peers only), circuits per IP and in total, a hard deadline per
circuit, and a refused reason counted for `swarm status`.

It also serves `/swarm/relay/peers/1.0.0`: a node holding a reservation here names its swarm
network and learns the other holders of that network, so two nodes behind NAT find each other's
relayed address without any other channel (docs/PROTOCOL.md "Relay").
"""
from __future__ import annotations

import contextvars
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import trio

from node.framing import ProtocolError, read_frame, write_frame
from node.patches import discard_unread
from node.patches import reset as _reset

log = logging.getLogger(__name__)

PEERS_PROTOCOL = "/swarm/relay/peers/1.0.0"
MAX_LISTED = 64               # peers named in one answer
PEERS_TIMEOUT_S = 10.0
_CIRCUIT: contextvars.ContextVar[trio.CancelScope] = contextvars.ContextVar("circuit")


@dataclass
class RelayCaps:
    """What one relay grants; every cap is checked before the library's own."""

    reservations_total: int = 128
    reservations_per_ip: int = 4
    circuits_total: int = 64
    circuits_per_ip: int = 8
    circuits_per_reservation: int = 16
    circuit_duration_s: int = 600
    circuit_bytes: int = 64 * 1024 * 1024
    reservation_ttl_s: int = 3600

    def as_dict(self) -> dict[str, int]:
        """The caps, JSON-able (status, docs)."""
        return asdict(self)


def remote_ip(stream: Any) -> str:
    """The IP address a stream's connection comes from ('?' when unknown)."""
    try:
        address = stream.get_remote_address()
    except Exception:  # noqa: BLE001 - relayed or closed streams may not know it
        address = None
    return str(address[0]) if address else "?"


def connection_ip(host: Any, pid: Any) -> str | None:
    """The IP address of `host`'s first open connection to peer `pid` (None when unknown)."""
    try:
        for conn in host.get_network().get_connections(pid):
            address = conn.muxed_conn.get_remote_address()
            if address:
                return str(address[0])
    except Exception:  # noqa: BLE001 - a closing or relayed connection may not know it
        return None
    return None


def make_relay(host: Any, caps: RelayCaps) -> Any:
    """A `CappedRelay` for `host` (imports py-libp2p lazily, like the rest of node/)."""
    from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
    from libp2p.relay.circuit_v2.resources import RelayLimits

    class CappedRelay(CircuitV2Protocol):
        """Circuit relay v2 hop with per-IP and global caps enforced here."""

        def __init__(self) -> None:
            limits = RelayLimits(duration=caps.circuit_duration_s, data=caps.circuit_bytes,
                                 max_circuit_conns=caps.circuits_per_reservation,
                                 max_reservations=caps.reservations_total,
                                 reservation_ttl=caps.reservation_ttl_s)
            super().__init__(host, limits=limits, allow_hop=True)
            self.caps = caps
            self.refused: Counter[str] = Counter()
            self.reservation_ip: dict[Any, str] = {}
            self.circuits: Counter[str] = Counter()     # open circuits by source IP
            self.networks: dict[Any, str] = {}          # holder -> swarm network it named
            self.opened = 0                              # circuits accepted, all time

        async def _handle_reserve(self, stream: Any, msg: Any) -> None:
            reason = self._reserve_refusal(stream, msg)
            if reason:
                await self._refuse(stream, reason)
                return
            self.reservation_ip[stream.muxed_conn.peer_id] = remote_ip(stream)
            await super()._handle_reserve(stream, msg)

        def _reserve_refusal(self, stream: Any, msg: Any) -> str | None:
            from libp2p.peer.id import ID

            peer = stream.muxed_conn.peer_id
            if msg.HasField("peer") and msg.peer.id and ID(msg.peer.id) != peer:
                return "reserve_for_other_peer"
            self._drop_stale()
            if peer in self.reservation_ip:
                return None                         # a refresh
            held = len(self.reservation_ip)
            if held >= caps.reservations_total:
                return "reservations_total"
            ip = remote_ip(stream)
            if sum(1 for v in self.reservation_ip.values() if v == ip) >= caps.reservations_per_ip:
                return "reservations_per_ip"
            return None

        def _drop_stale(self) -> None:
            """Forget reservations whose holder left or whose time ran out (the library counts
            them until their TTL ends, so a churning peer could fill the relay)."""
            manager = self.resource_manager
            for peer in list(self.reservation_ip):
                if manager.get_reservation(peer) is None:
                    self.reservation_ip.pop(peer, None)
                    self.networks.pop(peer, None)
                    manager._reservations.pop(peer, None)

        async def _handle_connect(self, stream: Any, msg: Any) -> None:
            ip = remote_ip(stream)
            if sum(self.circuits.values()) >= caps.circuits_total:
                await self._refuse(stream, "circuits_total")
                return
            if self.circuits[ip] >= caps.circuits_per_ip:
                await self._refuse(stream, "circuits_per_ip")
                return
            self.circuits[ip] += 1
            self.opened += 1
            start = trio.current_time()
            try:
                # the library checks the duration only when data flows; this is a hard deadline
                with trio.move_on_after(caps.circuit_duration_s + 1) as scope:
                    token = _CIRCUIT.set(scope)
                    try:
                        await super()._handle_connect(stream, msg)
                    finally:
                        _CIRCUIT.reset(token)
                if trio.current_time() - start >= caps.circuit_duration_s:
                    self.refused["circuit_duration"] += 1      # cut by us, or by the library
                    await _reset(stream)
            finally:
                self.circuits[ip] -= 1
                if self.circuits[ip] <= 0:
                    del self.circuits[ip]

        async def _relay_data(self, *args: Any, **kwargs: Any) -> None:
            # when one direction ends (EOF, reset, the byte budget), end the circuit: in 0.8.1 the
            # other direction's read on the stream the library reset is never woken, and the
            # circuit (and its per-IP slot) would stay until the deadline
            try:
                await super()._relay_data(*args, **kwargs)
            finally:
                scope = _CIRCUIT.get(None)
                if scope is not None:
                    scope.cancel()

        async def _refuse(self, stream: Any, reason: str) -> None:
            from libp2p.relay.circuit_v2.protocol_buffer import StatusCode

            self.refused[reason] += 1
            log.info("relay: refused %s from %s (%s)", "request", stream.muxed_conn.peer_id,
                     reason)
            code = (StatusCode.PERMISSION_DENIED if reason == "reserve_for_other_peer"
                    else StatusCode.RESOURCE_LIMIT_EXCEEDED)
            await self._send_status(stream, code, reason)
            await _close(stream)      # not a reset: that can overtake the status on the wire

        def holders(self, network: str, asking: Any) -> list[str]:
            """Peer ids holding a reservation here for `network`, `asking` excluded."""
            self._drop_stale()
            return [str(p) for p, n in self.networks.items() if n == network and p != asking]

        def info(self) -> dict[str, Any]:
            """Reservations, circuits and refusals, for `swarm status`."""
            self._drop_stale()
            return {"reservations": len(self.reservation_ip),
                    "circuits": sum(self.circuits.values()), "circuits_opened": self.opened,
                    "refused": dict(self.refused),
                    "caps": caps.as_dict()}

    return CappedRelay()


async def serve_peers(relay: Any, stream: Any) -> None:
    """`/swarm/relay/peers/1.0.0`, relay side: record the asker's network (only while it holds a
    reservation here) and answer the other holders of that network, at most MAX_LISTED."""
    peer = stream.muxed_conn.peer_id
    try:
        with trio.fail_after(PEERS_TIMEOUT_S):
            request = await read_frame(stream, max_bytes=1024)
            network = request.get("n") if isinstance(request, dict) else None
            if not isinstance(network, str) or len(network) > 64:
                raise ProtocolError("relay peers: bad request")
            listed: list[str] = []
            if relay.resource_manager.get_reservation(peer) is not None:
                relay.networks[peer] = network
                listed = relay.holders(network, peer)[:MAX_LISTED]
            await write_frame(stream, {"t": "peers", "p": listed})
    except (ProtocolError, trio.TooSlowError) as exc:
        log.debug("relay peers from %s: %s", peer, exc)
    finally:
        await _close(stream)


async def ask_peers(host: Any, relay_id: Any, network: str) -> list[str]:
    """`/swarm/relay/peers/1.0.0`, client side: the other reservation holders of `network` on the
    relay (checked: at most MAX_LISTED peer-id strings)."""
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    stream = await host.new_stream(relay_id, [TProtocol(PEERS_PROTOCOL)])
    try:
        with trio.fail_after(PEERS_TIMEOUT_S):
            await write_frame(stream, {"n": network})
            answer = await read_frame(stream, max_bytes=64 * 1024)
    finally:
        await _close(stream)
    listed = answer.get("p") if isinstance(answer, dict) else None
    if not isinstance(listed, list):
        raise ProtocolError("relay peers: bad answer")
    out = []
    for text in listed[:MAX_LISTED]:
        try:
            out.append(str(ID.from_base58(text)))
        except Exception:  # noqa: BLE001 - hostile input: skip what is not a peer id
            continue
    return out


async def _close(stream: Any) -> None:
    """Close `stream` politely, resetting it when that fails or takes over 2 s; either way drop
    what it holds unread and what its peer sends on it later (this node is done with it)."""
    with trio.move_on_after(2) as scope:
        try:
            await stream.close()
            discard_unread(stream)
            return
        except Exception:  # noqa: BLE001 - the peer may already have reset it
            pass
    log.debug("stream close %s", "timed out" if scope.cancelled_caught else "failed")
    await _reset(stream)
