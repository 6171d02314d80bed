"""What this node knows about other peers: addresses, last seen, records received, rejections, bans.

Shared by the trio side (host, gossip, sync) and the asyncio side (API, status), so every method takes
a lock. Addresses of peers seen are saved in `HOME/peers.json` and redialed after a restart.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PEERS_FILE = "peers.json"
MAX_SAVED_PEERS = 200
MAX_ADDRS = 8               # per peer (discovery.believable_addrs chose them from its claims)
# Peers remembered while this node runs: a peer id costs nothing to make, and each connection from a
# fresh one added an entry for good (measured: 200 fresh ids, 200 entries, none connected). Past
# the bound the least recently seen peers that are neither connected, banned nor recently struck
# are forgotten (in steps of PRUNE_STEP, so the sort is rare).
MAX_PEERS = 4096
PRUNE_STEP = 512
INVALID_LIMIT = 10          # invalid messages within INVALID_WINDOW_S before a peer is banned
INVALID_WINDOW_S = 60.0
BAN_S = 300.0
STRIKE_SCORE = 10.0         # GossipSub application score per recent strike (gossip.score_params)
BANNED_SCORE = -1000.0
REFUSAL_MIN_S = 60.0        # a peer that does not speak a protocol is not asked again for this long
REFUSAL_MAX_S = 3600.0      # ... doubling each time it refuses again


@dataclass
class PeerState:
    """One peer, as `swarm peers` shows it."""

    peer_id: str
    addrs: list[str] = field(default_factory=list)
    connected: bool = False
    first_seen: float = 0.0
    last_seen: float = 0.0
    received: int = 0               # records from this peer that were new to us
    rejected: int = 0               # invalid records or protocol violations (strikes)
    gossip_ignored: dict[str, int] = field(default_factory=dict)  # reason: ids (no strike)
    last_sync: float | None = None
    banned_until: float | None = None
    recent_invalid: list[float] = field(default_factory=list)
    refusals: dict[str, tuple[float, float]] = field(default_factory=dict)  # protocol: (until, wait)

    def public(self) -> dict[str, Any]:
        """The JSON-able view (no internal bookkeeping)."""
        view = asdict(self)
        view.pop("recent_invalid")
        view["refuses"] = sorted(view.pop("refusals"))
        return view


class PeerBook:
    """Thread-safe peer table with a ban policy for peers that keep sending invalid data."""

    def __init__(self, ban_s: float = BAN_S, invalid_limit: int = INVALID_LIMIT) -> None:
        self._lock = threading.Lock()
        self._peers: dict[str, PeerState] = {}
        self._prune_at = MAX_PEERS + PRUNE_STEP   # the book's size at which `_get` next prunes
        self.ban_s = ban_s
        self.invalid_limit = invalid_limit

    def _get(self, peer_id: str) -> PeerState:
        state = self._peers.get(peer_id)
        if state is None:
            if len(self._peers) >= self._prune_at:
                self._prune(time.time())
                # next after PRUNE_STEP more: when little could go (ids struck in the last
                # minute), pruning again at every new id scanned the whole book each time
                self._prune_at = max(MAX_PEERS, len(self._peers)) + PRUNE_STEP
            state = self._peers[peer_id] = PeerState(peer_id, first_seen=time.time())
        return state

    def _prune(self, now: float) -> None:
        """Forget the least recently seen peers beyond MAX_PEERS that nothing here needs: not
        connected, not banned, no strike within INVALID_WINDOW_S (so leaving cannot wipe one)."""
        idle = sorted((s for s in self._peers.values() if not s.connected
                       and not self._banned(s, now)
                       and not any(now - t < INVALID_WINDOW_S for t in s.recent_invalid)),
                      key=lambda s: s.last_seen)
        for state in idle[:max(0, len(self._peers) - MAX_PEERS + 1)]:
            del self._peers[state.peer_id]

    def seen(self, peer_id: str, addrs: list[str] | None = None, connected: bool | None = None) -> None:
        """Note that `peer_id` is alive (optionally with its addresses and connection state)."""
        with self._lock:
            state = self._get(peer_id)
            state.last_seen = time.time()
            if addrs:
                state.addrs = list(dict.fromkeys(addrs))[:MAX_ADDRS]
            if connected is not None:
                state.connected = connected

    def received(self, peer_id: str, count: int) -> None:
        """Count `count` new records that arrived from `peer_id`."""
        with self._lock:
            state = self._get(peer_id)
            state.received += count
            state.last_seen = time.time()

    def synced(self, peer_id: str) -> None:
        """Note a completed sync exchange with `peer_id`."""
        with self._lock:
            self._get(peer_id).last_sync = time.time()

    def invalid(self, peer_id: str, count: int = 1) -> bool:
        """Count invalid data from `peer_id`; True when this pushes it over the limit (ban it now)."""
        now = time.time()
        with self._lock:
            state = self._get(peer_id)
            state.rejected += count
            state.recent_invalid = [t for t in state.recent_invalid if now - t < INVALID_WINDOW_S]
            state.recent_invalid += [now] * min(count, self.invalid_limit)
            if len(state.recent_invalid) >= self.invalid_limit and not self._banned(state, now):
                state.banned_until = now + self.ban_s
                state.recent_invalid = []
                return True
            return False

    def ignored(self, peer_id: str, reason: str, count: int) -> None:
        """Count `count` message ids of `peer_id`'s IHAVE / IWANT ignored for `reason`
        (node/gossip_requests.py: the gossip threshold, GossipSub's bounds); no strike: an honest
        peer can pass those bounds now and then."""
        with self._lock:
            ignored = self._get(peer_id).gossip_ignored
            ignored[reason] = ignored.get(reason, 0) + count

    def app_score(self, peer_id: str) -> float:
        """This node's opinion of `peer_id` for GossipSub scoring (P6): minus STRIKE_SCORE per
        strike within INVALID_WINDOW_S, BANNED_SCORE while banned, 0 for a peer never struck."""
        now = time.time()
        with self._lock:
            state = self._peers.get(peer_id)
            if state is None:
                return 0.0
            if self._banned(state, now):
                return BANNED_SCORE
            return -STRIKE_SCORE * sum(1 for t in state.recent_invalid if now - t < INVALID_WINDOW_S)

    def refused(self, peer_id: str, protocol: str) -> None:
        """`peer_id` does not speak `protocol`: do not ask again for a while (doubling each time,
        REFUSAL_MIN_S up to REFUSAL_MAX_S). Remembered while this node runs."""
        now = time.time()
        with self._lock:
            state = self._get(peer_id)
            _, wait = state.refusals.get(protocol, (0.0, REFUSAL_MIN_S / 2))
            wait = min(2 * wait, REFUSAL_MAX_S)
            state.refusals[protocol] = (now + wait, wait)
        log.info("%s does not speak %s; not asking again for %.0f s", peer_id, protocol, wait)

    def refuses(self, peer_id: str, protocol: str) -> bool:
        """Whether `peer_id` refused `protocol` recently (see `refused`)."""
        with self._lock:
            state = self._peers.get(peer_id)
            until = state.refusals.get(protocol, (0.0, 0.0))[0] if state is not None else 0.0
            return until > time.time()

    def is_banned(self, peer_id: str) -> bool:
        """Whether `peer_id` is serving a ban right now."""
        with self._lock:
            state = self._peers.get(peer_id)
            return state is not None and self._banned(state, time.time())

    @staticmethod
    def _banned(state: PeerState, now: float) -> bool:
        return state.banned_until is not None and state.banned_until > now

    def expired_bans(self) -> list[str]:
        """Peers whose ban has run out (cleared here, so each is returned once)."""
        now = time.time()
        with self._lock:
            done = [s for s in self._peers.values() if s.banned_until and s.banned_until <= now]
            for state in done:
                state.banned_until = None
            return [s.peer_id for s in done]

    def snapshot(self) -> list[dict[str, Any]]:
        """All peers, most recently seen first, as JSON-able dicts."""
        with self._lock:
            states = sorted(self._peers.values(), key=lambda s: -s.last_seen)
            return [s.public() for s in states]

    def connected_count(self) -> int:
        """How many peers are connected now."""
        with self._lock:
            return sum(1 for s in self._peers.values() if s.connected)

    # ---- persistence ----

    def save(self, home: Path) -> None:
        """Write the addresses of the peers seen most recently to HOME/peers.json (atomically)."""
        with self._lock:
            states = sorted(self._peers.values(), key=lambda s: -s.last_seen)[:MAX_SAVED_PEERS]
            data = [{"peer_id": s.peer_id, "addrs": s.addrs, "last_seen": s.last_seen}
                    for s in states if s.addrs and not self._banned(s, time.time())]
        tmp = home / (PEERS_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, home / PEERS_FILE)


def load_saved_addrs(home: Path) -> list[str]:
    """Dialable `/.../p2p/ID` addresses of peers seen before; [] if none or unreadable."""
    path = home / PEERS_FILE
    try:
        data = json.loads(path.read_text())
        return [addr for entry in data for addr in entry["addrs"] if isinstance(addr, str)]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return []
