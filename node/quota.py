"""Gossip quotas: token buckets per connected peer and per author, applied by the topic validator.

A record that passes every check of memory.codec still has to fit its forwarding peer's and its
author's buckets, or it is dropped with a counted reason: not stored, not relayed (the validator
refuses it). Buckets:

- per forwarding peer: records per second, bytes per hour, and a separate small budget for records
  by authors this node has never seen (a flood of fresh keys from one connection drains that budget
  at once; every `STRIKE_EVERY` over-quota records then count one strike against the connection);
- per author: records per second and bytes per hour. An author never seen before starts with a small
  allowance that grows with time since first seen and with its accepted records, up to the full
  rate (`AuthorStanding.factor`).

All state is in memory and bounded (least recently used authors and peers are forgotten first).
Known authors are loaded from the store at start-up, so a restart does not make everyone new.
Runs on the trio thread (the validator) only; `counts()` may be read from any thread.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

HOUR = 3600.0


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
    max_authors: int = 200_000
    max_peers: int = 4096


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

    def admit(self, peer: str, author: str, size: int) -> tuple[str | None, bool]:
        """(None, False) if the record fits every bucket (then charged), else (reason, strike):
        `strike` is True when this drop makes `peer` earn a strike."""
        now, wall = time.monotonic(), time.time()
        p = self._peer(peer, now)
        a = self._authors.get(author)
        factor = 1.0 if a is None else a.factor(wall, self.config)
        reason = self._check(p, a, size, now, factor)
        if reason is not None:
            return reason, self._drop(p, reason)
        if a is None:
            a = self._introduce(p, author)
        self._authors.move_to_end(author)
        for bucket, n in ((p.records, 1), (p.bytes, size), (a.records, 1), (a.bytes, size)):
            bucket.tokens -= n
        a.accepted += 1
        return None, False

    def _introduce(self, p: PeerStanding, author: str) -> AuthorStanding:
        """A never-seen author's first record, charged to `p`'s new-author budget."""
        self.met(author)
        p.new_authors.tokens -= 1
        return self._authors[author]

    def _check(self, p: PeerStanding, a: AuthorStanding | None, size: int, now: float,
               factor: float) -> str | None:
        if not p.records.has(1, now) or not p.bytes.has(size, now):
            return "quota_peer"
        if a is None:
            return None if p.new_authors.has(1, now) else "quota_new_authors"
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
        p = self._peers.get(peer)
        if p is None:
            c = self.config
            p = self._peers[peer] = PeerStanding(
                TokenBucket(c.peer_rate, c.peer_burst, now),
                TokenBucket(c.peer_bytes_per_hour / HOUR, c.peer_bytes_per_hour, now),
                TokenBucket(c.peer_new_rate, c.peer_new_burst, now))
            bound_lru(self._peers, self.config.max_peers)
        self._peers.move_to_end(peer)
        return p

    def counts(self) -> dict[str, int]:
        """Records dropped over quota so far, by reason."""
        with self._lock:
            return dict(self._dropped)

    def known_authors(self) -> int:
        """Authors with a standing here."""
        return len(self._authors)


AUTHORS_SQL = "SELECT author, min(ts), count(*) FROM records GROUP BY author"


def load_authors(quotas: Quotas, store: Any) -> int:
    """Give every author in `store` its standing (first record's ts, record count); return how many."""
    rows = store.query(AUTHORS_SQL).rows
    for author, first_ts_ms, count in rows:
        quotas.know(author, first_ts_ms / 1000.0, int(count))
    return len(rows)


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
