"""Sync quotas: how much what one peer serves by sync may add to this node's memory.

A pull's records are admitted batch by batch as they are read, before ingest (so dropped records
are never stored, served or relayed), against wall-clock token buckets:

- per serving peer: bytes of every record (`peer_bytes`), bytes of records by authors without
  standing (`new_bytes`), and authors this node has never seen (`new_authors`);
- per serving address (the connection's remote IP; an IPv6 address by its /64), the same three
  at `address_factor` (8) times the peer's: a peer id costs nothing to make, so fresh keys from one
  address share one budget, while volunteers behind one home router (one NAT, one IP) still get
  eight peers' worth between them;
- per author, whichever peer served it: bytes (`author_bytes`).

An author has standing once this node has known it for `standing_s` (an hour: first seen by
gossip or sync, or, for authors already in the memory at start-up, its first record's ts).
A record's own ts never refills anything: the responder stamps its records as it likes, so record
time would let a backdated flood through (docs/PROTOCOL.md, "Quotas for sync", says why and gives
the numbers). The budgets are sized so that the bench memory (1,000,000 records, 677 MB, by 100,000
authors) catches up from one peer in one go with room to spare; a responder that serves a flood of
fresh keys gets at most that much stored per hour, then drops.

Drops are never strikes: a memory larger than the budget is what an honest peer of a grown swarm
serves a fresh node, and banning it would cut the fresh node off (honest nodes banned each other
that way before sync 2.0). Instead, a pull that dropped records pauses pulls from that peer (a
minute, doubling up to an hour; cleared by a pull without drops): the reconciliation would ask
for the refused records again at once, and the repair must not spin. A grown memory so arrives
at the budget's rate; a flood costs the node one budget per peer id and hour (at most
`address_factor` of them per address), and one pull a pause. A pull that the address's own
budgets cut short pauses pulls from every peer at that address alike (checked once the stream
is open: only then is the address known), so fresh peer ids there cost no pull each.
Admitted records that were not stored (already held) give their bytes back.
Runs on the trio thread only (like the gossip validator); `counts()` may be read from any thread.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import msgpack
import trio

from memory import canonical
from node.quota import HOUR, Quotas, TokenBucket, address_key, lru_get

MIB, GIB = 1 << 20, 1 << 30
SCALE_ENV = "SWARM_SYNC_QUOTA_SCALE"      # tests shrink every budget by this factor


@dataclass(frozen=True)
class SyncQuotaConfig:
    """Sync quota parameters; each budget refills over an hour and starts full."""

    peer_bytes_per_hour: float = 2 * GIB      # every record one peer serves
    new_bytes_per_hour: float = 1 * GIB       # ... by authors without standing (bench: 677 MB)
    new_authors_per_hour: float = 200_000     # never-seen authors one peer introduces (bench: 100k)
    author_bytes_per_hour: float = 64 * MIB   # one author, from all peers (bench: 6.8 KB each)
    # one address's peers together get this many times one peer's budgets (a household of
    # volunteers behind one NAT shares an IP; a flood of fresh keys from one host shares them too)
    address_factor: float = 8.0
    standing_s: float = HOUR
    pause_min_s: float = 60.0
    pause_max_s: float = HOUR
    max_authors: int = 200_000
    max_peers: int = 4096
    max_addresses: int = 4096

    def scaled(self, factor: float) -> SyncQuotaConfig:
        """The same rules with every budget times `factor`."""
        budgets = {f.name: getattr(self, f.name) * factor for f in fields(self)
                   if f.name.endswith("_per_hour")}
        return replace(self, **budgets)


def config_from_environment() -> SyncQuotaConfig:
    """The default config, scaled by $SWARM_SYNC_QUOTA_SCALE if set (tests)."""
    scale = os.environ.get(SCALE_ENV)
    return SyncQuotaConfig().scaled(float(scale)) if scale else SyncQuotaConfig()


class Head(NamedTuple):
    """What admission needs of a received record, read without validating it."""

    id: str | None
    author: str | None
    size: int


def read_heads(raws: list[bytes]) -> list[Head]:
    """Id, author and size of each raw record (None where unreadable: ingest will refuse it)."""
    return [_head(raw) for raw in raws]


def _head(raw: bytes) -> Head:
    try:
        payload, _ = msgpack.unpackb(raw, raw=False)
        # the envelope is canonical (sorted keys), so "author" comes first in any valid record;
        # reading only that is 4x faster than the whole body (the full check is ingest's)
        envelope = msgpack.Unpacker(raw=False)
        envelope.feed(payload)
        envelope.read_map_header()
        author = envelope.unpack() == "author" and envelope.unpack()
        return Head(canonical.digest_hex(payload), author if isinstance(author, str) else None,
                    len(raw))
    except Exception:  # noqa: BLE001 - anything unreadable is left to ingest's full check
        return Head(None, None, len(raw))


@dataclass
class _Peer:
    """One serving peer's buckets (or one address's: then never paused)."""

    bytes: TokenBucket
    new_bytes: TokenBucket
    new_authors: TokenBucket
    paused_until: float = 0.0
    pause_s: float = 0.0

    def refill(self, now: float) -> None:
        """Add to each bucket what accrued until `now`."""
        for bucket in (self.bytes, self.new_bytes, self.new_authors):
            bucket.refill(now)


# why a record was dropped, by the peer's buckets and by its address's
_PEER_REASONS = ("quota_sync_peer", "quota_sync_new_bytes", "quota_sync_new_authors")
_ADDRESS_REASONS = ("quota_sync_address", "quota_sync_address_new_bytes",
                    "quota_sync_address_new_authors")


@dataclass
class SyncQuotas:
    """The buckets of every serving peer and author (see the module docstring). `quotas` is the
    gossip quotas' table of authors and when they were first seen, shared with it."""

    quotas: Quotas
    config: SyncQuotaConfig = field(default_factory=SyncQuotaConfig)

    def __post_init__(self) -> None:
        self._peers: OrderedDict[str, _Peer] = OrderedDict()
        self._addresses: OrderedDict[str, _Peer] = OrderedDict()
        self._authors: OrderedDict[str, TokenBucket] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def may_pull(self, peer: str, address: str | None = None) -> bool:
        """False while pulls from `peer` are paused after one that dropped records, or (given
        its `address`) while pulls from every peer at that address are."""
        now = time.monotonic()
        paused = [self._peers.get(peer)]
        if address is not None:
            paused.append(self._addresses.get(address_key(address)))
        return all(p is None or p.paused_until <= now for p in paused)

    def admit(self, peer: str, heads: list[Head], address: str | None = None
              ) -> tuple[list[bool], dict[str, int]]:
        """Which records to keep (those charged), and the drops by reason; the records come from
        `peer` at remote IP `address` (None: unknown, charged to the "?" address)."""
        now, wall = time.monotonic(), time.time()
        p, a = self._peer(peer, now), self._address(address_key(address), now)
        # One clock reading per batch: the buckets refill once here, not per record
        # (this runs on the trio thread for every record a catch-up brings).
        p.refill(now)
        a.refill(now)
        keep: list[bool] = []
        drops: dict[str, int] = {}
        for head in heads:
            reason = self._admit_one(p, a, head, now, wall)
            keep.append(reason is None)
            if reason is not None:
                drops[reason] = drops.get(reason, 0) + 1
        with self._lock:
            for reason, n in drops.items():
                self._dropped[reason] = self._dropped.get(reason, 0) + n
        return keep, drops

    def _admit_one(self, p: _Peer, address: _Peer, head: Head, now: float,
                   wall: float) -> str | None:
        if head.author is None:
            return None                            # unreadable: ingest refuses it (a strike)
        first_seen = self.quotas.first_seen(head.author)
        standing = first_seen is not None and wall - first_seen >= self.config.standing_s
        size = head.size
        for budget, reasons in ((p, _PEER_REASONS), (address, _ADDRESS_REASONS)):
            if budget.bytes.tokens < size:
                return reasons[0]
            if not standing and budget.new_bytes.tokens < size:
                return reasons[1]
            if first_seen is None and budget.new_authors.tokens < 1:
                return reasons[2]
        a = self._author(head.author, now)
        if not a.has(size, now):
            return "quota_sync_author"
        a.tokens -= size
        for budget in (p, address):
            budget.bytes.tokens -= size
            if not standing:
                budget.new_bytes.tokens -= size
            if first_seen is None:
                budget.new_authors.tokens -= 1
        if first_seen is None:
            self.quotas.met(head.author)
        return None

    def refund(self, peer: str, heads: list[Head], address: str | None = None) -> None:
        """Give back the bytes of admitted records that were not stored (already held), to
        `peer`, its `address` and the authors."""
        budgets = [b for b in (self._peers.get(peer), self._addresses.get(address_key(address)))
                   if b is not None]
        for head in heads:
            if head.author is None:
                continue
            first_seen = self.quotas.first_seen(head.author)
            standing = first_seen is not None and time.time() - first_seen >= self.config.standing_s
            buckets = [self._authors.get(head.author)]
            for b in budgets:
                buckets += [b.bytes] + ([] if standing else [b.new_bytes])
            for bucket in buckets:
                if bucket is not None:
                    bucket.tokens = min(bucket.burst, bucket.tokens + head.size)

    def finished(self, peer: str, drops: dict[str, int], address: str | None = None) -> None:
        """A pull from `peer` at `address` ended with `drops` (by reason): pause further pulls
        from the peer if it dropped records, else clear its pause; and from every peer at the
        address if the address's own budgets dropped some (a fresh peer id there would drop the
        same records: each would cost a pull's reading for nothing), else clear that pause."""
        pauses = [(self._peers.get(peer), bool(drops))]
        if address is not None:
            pauses.append((self._addresses.get(address_key(address)),
                           any(reason in drops for reason in _ADDRESS_REASONS)))
        for p, dropped in pauses:
            if p is None:
                continue
            if dropped:
                p.pause_s = min(max(2 * p.pause_s, self.config.pause_min_s),
                                self.config.pause_max_s)
                p.paused_until = time.monotonic() + p.pause_s
            else:
                p.pause_s = 0.0

    def counts(self) -> dict[str, int]:
        """Records dropped over sync quota so far, by reason."""
        with self._lock:
            return dict(self._dropped)

    def _peer(self, peer: str, now: float) -> _Peer:
        return lru_get(self._peers, peer, lambda: self._new_budget(now, 1.0), self.config.max_peers)

    def _address(self, key: str, now: float) -> _Peer:
        c = self.config
        return lru_get(self._addresses, key, lambda: self._new_budget(now, c.address_factor),
                       c.max_addresses)

    def _new_budget(self, now: float, factor: float) -> _Peer:
        """A serving peer's (or address's: `factor` times a peer's) full buckets."""
        c = self.config
        return _Peer(_hourly(factor * c.peer_bytes_per_hour, now),
                     _hourly(factor * c.new_bytes_per_hour, now),
                     _hourly(factor * c.new_authors_per_hour, now))

    def _author(self, author: str, now: float) -> TokenBucket:
        return lru_get(self._authors, author,
                       lambda: _hourly(self.config.author_bytes_per_hour, now),
                       self.config.max_authors)


def _hourly(per_hour: float, now: float) -> TokenBucket:
    return TokenBucket(per_hour / HOUR, per_hour, now)


@dataclass
class SyncRation:
    """One pull's admission (node/syncwire.py): `admit` each batch as it arrives, `settle` after
    the ingest of the batches it kept (in the same order).

    `on_drop(reasons)` hears of every drop (to count them); it may not raise. `dropped` holds
    this pull's drops by reason. `address` is the serving peer's remote IP (set once the stream
    is open; None: unknown)."""

    quotas: SyncQuotas
    peer: str
    on_drop: Callable[[dict[str, int]], None] = lambda reasons: None
    address: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    _admitted: deque[list[Head]] = field(default_factory=deque)
    _skipped: bool = False

    def open(self, address: str) -> bool:
        """The pull's stream is open, to remote IP `address`: False while pulls from there are
        paused (the caller then hangs up, and `finish` changes no pause)."""
        self.address = address
        self._skipped = not self.quotas.may_pull(self.peer, address)
        return not self._skipped

    async def admit(self, raws: list[bytes]) -> list[bytes]:
        """The records of `raws` within quota (charged); the rest are dropped and counted."""
        heads = await trio.to_thread.run_sync(read_heads, raws)
        keep, drops = self.quotas.admit(self.peer, heads, self.address)
        if drops:
            for reason, n in drops.items():
                self.dropped[reason] = self.dropped.get(reason, 0) + n
            self.on_drop(drops)
        kept = [raw for raw, k in zip(raws, keep) if k]
        if kept:
            self._admitted.append([h for h, k in zip(heads, keep) if k])
        return kept

    def settle(self, batches: int, accepted_ids: list[str]) -> None:
        """The next `batches` kept batches were ingested, storing `accepted_ids`: refund the
        rest (already held)."""
        stored = set(accepted_ids)
        for _ in range(min(batches, len(self._admitted))):
            self.quotas.refund(self.peer, [h for h in self._admitted.popleft()
                                           if h.id not in stored], self.address)

    def finish(self) -> None:
        """The pull is over (however it ended)."""
        if not self._skipped:
            self.quotas.finished(self.peer, self.dropped, self.address)


def flood_bound(config: SyncQuotaConfig, seconds: float, per_author: int,
                record_bytes: int) -> int:
    """The most records by fresh keys (`per_author` records of `record_bytes` each) that one
    peer's sync responses can get stored in `seconds`."""
    grown = seconds / HOUR
    authors = config.new_authors_per_hour * (1 + grown)
    by_bytes = min(config.new_bytes_per_hour, config.peer_bytes_per_hour) * (1 + grown)
    each = min(per_author, int(config.author_bytes_per_hour * (1 + grown) // record_bytes))
    return int(min(authors * each, by_bytes // record_bytes))
