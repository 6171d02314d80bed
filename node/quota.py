"""Gossip quotas: token buckets per connected peer and per author, applied by the topic validator.

A record that passes every check of memory.codec still has to fit its forwarding peer's and its
author's buckets, or it is dropped with a counted reason: not stored, not relayed (the validator
refuses it). Buckets:

- per forwarding peer: records per second, bytes per hour, and a separate small budget for records
  by authors this node has never seen (a flood of fresh keys from one connection drains that budget
  at once; every `STRIKE_EVERY` over-quota records then count one strike against the connection);
- per forwarding address (the connection's remote IP, an IPv6 one by its /64): the same three at
  `address_factor` (8) times a peer's. A peer id costs nothing to make: without this, each fresh id
  from one host would bring a fresh burst; volunteers behind one NAT still get eight peers' worth;
- an invalid record (bad signature, or refused by a cheap check) is charged to its forwarding
  peer's and address's records and bytes buckets too (`charge_invalid`), never its unverified
  author's: invalid gossip drains a source as valid gossip does;
- per author: records per second and bytes per hour. An author never seen before starts with a small
  allowance that grows with time since first seen and with its accepted records, up to the full
  rate (`AuthorStanding.factor`).

All state is in memory and bounded (least recently used authors and peers are forgotten first).
Known authors are loaded from the store at start-up, so a restart does not make everyone new.
Runs on the trio thread (the validator) only; `counts()` may be read from any thread.
"""
from __future__ import annotations

import functools
import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

HOUR = 3600.0
T = TypeVar("T")


@dataclass
class QuotaConfig:
    """Quota parameters (docs/PROTOCOL.md, "Hostile peers")."""

    peer_rate: float = 200.0            # records/s from one connected peer, all authors
    peer_burst: float = 2000.0
    peer_bytes_per_hour: float = 512e6
    peer_new_rate: float = 0.5          # never-seen authors introduced per second, per peer
    peer_new_burst: float = 10.0
    author_rate: float = 5.0            # records/s per established author
    author_burst: float = 100.0
    author_bytes_per_hour: float = 16e6
    new_author_factor: float = 0.2      # a brand-new author starts at this share of the above
    ramp_s: float = HOUR                # ... reaching the full rate after this long
    ramp_records: int = 1000            # ... or after this many accepted records
    strike_every: int = 50              # over-quota records from one peer per strike against it
    # all peer ids at one remote address together get this many times one peer's buckets
    address_factor: float = 8.0
    max_authors: int = 200_000
    max_peers: int = 4096
    max_addresses: int = 4096


class TokenBucket:
    """`rate` tokens per second up to `burst`; starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def refill(self, now: float, factor: float = 1.0) -> float:
        """Add what accrued since the last call (at `factor` times the rate); return the level."""
        cap = self.burst * factor
        self.tokens = min(cap, self.tokens + (now - self.stamp) * self.rate * factor)
        self.stamp = now
        return self.tokens

    def has(self, n: float, now: float, factor: float = 1.0) -> bool:
        """Whether `n` tokens are available now."""
        return self.refill(now, factor) >= n


@dataclass
class AuthorStanding:
    """What this node knows of one author: since when, how many records, and its buckets."""

    first_seen: float
    accepted: int
    records: TokenBucket
    bytes: TokenBucket

    def factor(self, now: float, config: QuotaConfig) -> float:
        """Share of the full author rate: small when new, growing with age and good records."""
        grown = max((now - self.first_seen) / config.ramp_s, self.accepted / config.ramp_records)
        return min(1.0, config.new_author_factor + (1 - config.new_author_factor) * grown)


@dataclass
class PeerStanding:
    """One connected peer's buckets and its over-quota count."""

    records: TokenBucket
    bytes: TokenBucket
    new_authors: TokenBucket
    over: int = 0


@dataclass
class Quotas:
    """Admit or drop records by forwarding peer and author (see the module docstring)."""

    config: QuotaConfig = field(default_factory=QuotaConfig)

    def __post_init__(self) -> None:
        self._authors: OrderedDict[str, AuthorStanding] = OrderedDict()
        self._peers: OrderedDict[str, PeerStanding] = OrderedDict()
        self._addresses: OrderedDict[str, PeerStanding] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def know(self, author: str, first_seen: float, accepted: int) -> None:
        """Note an author already in the memory (at start-up); `first_seen` in epoch seconds."""
        standing = self._standing(min(first_seen, time.time()), accepted, time.monotonic())
        self._authors[author] = standing
        bound_lru(self._authors, self.config.max_authors)

    def first_seen(self, author: str) -> float | None:
        """When this node first saw `author` (epoch seconds), or None if it never did."""
        standing = self._authors.get(author)
        return None if standing is None else standing.first_seen

    def met(self, author: str) -> None:
        """Note an author first seen now other than by gossip (a record stored by sync)."""
        if author not in self._authors:
            self._authors[author] = self._standing(time.time(), 0, time.monotonic())
            bound_lru(self._authors, self.config.max_authors)

    def admit(self, peer: str, author: str, size: int, address: str | None = None
              ) -> tuple[str | None, bool]:
        """(None, False) if the record fits every bucket (then charged), else (reason, strike):
        `strike` is True when this drop makes `peer` earn a strike. `address` is the remote IP
        the record came from (None: unknown; all such peers share one budget)."""
        p, where, a, reason = self._check(peer, author, size, address)
        if reason is not None:
            return reason, self._drop(p, reason)
        if a is None:
            a = self._introduce(author, p, where)
        self._authors.move_to_end(author)
        for bucket, n in ((p.records, 1), (p.bytes, size), (where.records, 1),
                          (where.bytes, size), (a.records, 1), (a.bytes, size)):
            bucket.tokens -= n
        a.accepted += 1
        return None, False

    def screen(self, peer: str, author: str, size: int, address: str | None = None
               ) -> tuple[str | None, bool]:
        """`admit`'s checks, charging nothing: run before the record's signature is verified,
        so a source or an author past its quota costs no verification. `author` may be the
        unverified claim: it tells a never-seen author (that source's new-author budget), and
        an author already past its own quota refuses the record whoever signed it (a true claim
        would be refused after the signature as well; a false one is refused either way). A
        forger cannot spend an honest author's quota: only `admit`, after the signature,
        charges it. A refusal is counted (and may strike) as `admit` counts it."""
        p, _, _, reason = self._check(peer, author, size, address)
        return (None, False) if reason is None else (reason, self._drop(p, reason))

    def _check(self, peer: str, author: str, size: int, address: str | None
               ) -> tuple[PeerStanding, PeerStanding, AuthorStanding | None, str | None]:
        """The forwarding peer's and address's standings, the author's (None: never seen) and
        the reason the record fits none of their buckets (None: it fits); charges nothing."""
        now = time.monotonic()
        p = self._peer(peer, now)
        where = self._address(address_key(address), now)
        a = self._authors.get(author)
        factor = 1.0 if a is None else a.factor(time.time(), self.config)
        reason = (self._check_source(p, a, size, now, _PEER_REASONS)
                  or self._check_source(where, a, size, now, _ADDRESS_REASONS)
                  or self._check_author(a, size, now, factor))
        return p, where, a, reason

    def charge_invalid(self, peer: str, size: int, address: str | None = None) -> None:
        """Charge an invalid record (bad signature, or refused by a cheap check) to its forwarding
        peer's and address's records and bytes buckets, never below empty, never its claimed
        author's (unverified): an address sending invalid records runs out of its quota as one
        sending valid ones does, so `screen` then refuses its records before any signature
        check, whatever peer id it uses (a fresh id costs nothing). Counts no refusal and no
        strike: the caller counts the record's own reason."""
        now = time.monotonic()
        for source in (self._peer(peer, now), self._address(address_key(address), now)):
            for bucket, n in ((source.records, 1), (source.bytes, size)):
                bucket.tokens = max(0.0, bucket.refill(now) - n)

    def _introduce(self, author: str, *sources: PeerStanding) -> AuthorStanding:
        """A never-seen author's first record, charged to its sources' new-author budgets."""
        self.met(author)
        for source in sources:
            source.new_authors.tokens -= 1
        return self._authors[author]

    @staticmethod
    def _check_source(p: PeerStanding, a: AuthorStanding | None, size: int, now: float,
                      reasons: tuple[str, str]) -> str | None:
        """A forwarding peer's (or address's) buckets: the reason a record does not fit, or None."""
        if not p.records.has(1, now) or not p.bytes.has(size, now):
            return reasons[0]
        if a is None and not p.new_authors.has(1, now):
            return reasons[1]
        return None

    @staticmethod
    def _check_author(a: AuthorStanding | None, size: int, now: float, factor: float
                      ) -> str | None:
        if a is None:
            return None
        if not a.records.has(1, now, factor):
            return "quota_author"
        if not a.bytes.has(size, now, factor):
            return "quota_author_bytes"
        return None

    def _drop(self, p: PeerStanding, reason: str) -> bool:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
        p.over += 1
        return p.over % self.config.strike_every == 0

    def _standing(self, first_seen: float, accepted: int, now: float) -> AuthorStanding:
        """A standing first seen at `first_seen` (epoch s), buckets stamped `now` (monotonic)."""
        c = self.config
        # a new author's buckets start at its (small) allowance, not at the full burst
        standing = AuthorStanding(first_seen, accepted, TokenBucket(c.author_rate, c.author_burst, now),
                                  TokenBucket(c.author_bytes_per_hour / HOUR, c.author_bytes_per_hour,
                                              now))
        factor = standing.factor(time.time(), c)
        standing.records.tokens *= factor
        standing.bytes.tokens *= factor
        return standing

    def _peer(self, peer: str, now: float) -> PeerStanding:
        return lru_get(self._peers, peer, lambda: self._new_source(now, 1.0), self.config.max_peers)

    def _address(self, key: str, now: float) -> PeerStanding:
        c = self.config
        return lru_get(self._addresses, key, lambda: self._new_source(now, c.address_factor),
                       c.max_addresses)

    def _new_source(self, now: float, scale: float) -> PeerStanding:
        """A forwarding peer's (or address's: `scale` times a peer's) full buckets."""
        c = self.config
        return PeerStanding(
            TokenBucket(c.peer_rate * scale, c.peer_burst * scale, now),
            TokenBucket(c.peer_bytes_per_hour * scale / HOUR, c.peer_bytes_per_hour * scale, now),
            TokenBucket(c.peer_new_rate * scale, c.peer_new_burst * scale, now))

    def counts(self) -> dict[str, int]:
        """Records dropped over quota so far, by reason."""
        with self._lock:
            return dict(self._dropped)

    def known_authors(self) -> int:
        """Authors with a standing here."""
        return len(self._authors)


# why a record was dropped: by its forwarding peer's buckets, by its address's
_PEER_REASONS = ("quota_peer", "quota_new_authors")
_ADDRESS_REASONS = ("quota_address", "quota_address_new_authors")


@functools.lru_cache(maxsize=4096)     # per gossip record: parsing costs more than the buckets
def address_key(ip: str | None) -> str:
    """The key an address's budget is kept under: an IPv4 address itself, an IPv6 one by its /64
    (one subscriber's usual allocation: its hosts can take any address in it), an IPv4-mapped IPv6
    one as its IPv4; "?" for an unknown address (all such peers share one budget)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return "?"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


AUTHORS_SQL = "SELECT author, min(ts), count(*) FROM records GROUP BY author"


def load_authors(quotas: Quotas, store: Any) -> int:
    """Give every author in `store` its standing (first record's ts, record count); return how many."""
    rows = store.query(AUTHORS_SQL).rows
    for author, first_ts_ms, count in rows:
        quotas.know(author, first_ts_ms / 1000.0, int(count))
    return len(rows)


def lru_get(table: OrderedDict[str, T], key: str, make: Callable[[], T], limit: int) -> T:
    """`key`'s entry in `table` (made by `make()` if new, forgetting the least recently used past
    `limit`), now the most recently used."""
    entry = table.get(key)
    if entry is None:
        entry = table[key] = make()
        bound_lru(table, limit)
    table.move_to_end(key)
    return entry


def bound_lru(table: OrderedDict[str, Any], limit: int) -> None:
    """Forget the least recently used entries of `table` beyond `limit` (kept in use order)."""
    while len(table) > limit:
        table.popitem(last=False)


def flood_bound(config: QuotaConfig, seconds: float, per_author: int) -> int:
    """The most records one peer flooding fresh keys (`per_author` records each) can get accepted
    in `seconds`: new authors it may introduce times what each new author may publish."""
    authors = config.peer_new_burst + config.peer_new_rate * seconds
    factor = min(1.0, config.new_author_factor + seconds / config.ramp_s
                 + per_author / config.ramp_records)
    each = min(per_author, config.author_burst * factor + config.author_rate * factor * seconds)
    total = config.peer_burst + config.peer_rate * seconds
    return int(min(total, authors * (each + 1)))
