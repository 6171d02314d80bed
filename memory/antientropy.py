"""Anti-entropy: summarise what a store holds, and find what a peer's summary lacks.

A summary ("have") is, per author: the highest seq held, the gaps below it as [lo, hi] ranges, and
the XOR of the first 8 bytes of every held id. A peer missing 1% of the records at random sends one
small summary and receives exactly the missing records: one round trip. The XOR catches the rare
case of two replicas holding different records under the same (author, seq), an equivocation:
when we hold every seq the peer holds and the XORs still differ, we resend that author's records.
"""
from __future__ import annotations

import hashlib
import itertools
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from memory import canonical

MAX_AUTHORS = 1_000_000
MAX_GAPS = 2_000_000
_U64 = 2**64


@dataclass(frozen=True)
class Have:
    """A validated summary of a peer's store."""

    authors: pa.Table      # author, max_seq, xor8
    gaps: pa.Table         # author, lo, hi


def digest(con: duckdb.DuckDBPyConnection) -> bytes:
    """16 bytes summarising the whole set: per author (count, max seq, xor of ids), hashed."""
    rows = con.execute("SELECT author, count(*), max(seq), bit_xor(id8) FROM records "
                       "GROUP BY author ORDER BY author").fetchall()
    return hashlib.blake2b(canonical.pack([list(r) for r in rows]), digest_size=16).digest()


def have(con: duckdb.DuckDBPyConnection) -> dict[str, list[Any]]:
    """{author: [max_seq, [[lo, hi], ...], xor8]} for every author held."""
    summary = {author: [int(top), [], int(xor)] for author, top, xor in con.execute(
        "SELECT author, max(seq), bit_xor(id8) FROM records GROUP BY author ORDER BY author"
    ).fetchall()}
    gaps = con.execute("""
        WITH s AS (SELECT DISTINCT author, seq FROM records),
        w AS (SELECT author, seq, lag(seq, 1, 0) OVER (PARTITION BY author ORDER BY seq) AS prev
              FROM s)
        SELECT author, prev + 1, seq - 1 FROM w WHERE seq > prev + 1 ORDER BY author, seq""")
    for author, lo, hi in gaps.fetchall():
        summary[author][1].append([int(lo), int(hi)])
    return summary


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value < hi


_GAP_RULE = "[lo, hi], lo <= hi < max seq, ascending, a held seq between two"


def parse_have(value: Any) -> Have:
    """Validate a summary received from a peer; ValueError if it is malformed or too large.

    The refusal names the first fault in the summary's order (per author: its entry, its gaps one
    by one, then the running count of gaps). The gaps are checked as arrays, not one by one: an
    8 MiB summary holds ~750,000 of them, and a loop over them was ~0.3 CPU-s a frame."""
    if not isinstance(value, dict) or len(value) > MAX_AUTHORS:
        raise ValueError("a have-summary is a map of at most %d authors" % MAX_AUTHORS)
    authors, tops, xors, gap_lists = [], [], [], []
    bad_entry = None
    for author, entry in value.items():
        if not (isinstance(author, str) and len(author) < 100 and isinstance(entry, list)
                and len(entry) == 3 and _int_in(entry[0], 0, 2**63)
                and isinstance(entry[1], list) and _int_in(entry[2], 0, _U64)):
            bad_entry = author
            break
        authors.append(author), tops.append(entry[0]), xors.append(entry[2])
        gap_lists.append(entry[1])
    counts = np.fromiter(map(len, gap_lists), np.int64, len(gap_lists))
    ends = np.cumsum(counts)
    over = int(np.argmax(ends > MAX_GAPS)) if ends.size and ends[-1] > MAX_GAPS else None
    checked = len(authors) if over is None else over + 1       # gaps past these are not read
    gaps = list(itertools.chain.from_iterable(gap_lists[:checked]))
    lo, hi, fault = _gap_arrays(gaps)
    fault = _first_bad_gap(lo, hi, counts[:checked], np.asarray(tops[:checked], np.int64), fault)
    if fault is not None:                # in an author up to `over`: before its count check
        author = authors[int(np.searchsorted(ends, fault, "right"))]
        raise ValueError(f"bad gap {str(gaps[fault])[:60]} for {author[:60]!r}: gaps are {_GAP_RULE}")
    if over is not None:
        raise ValueError("too many gaps in a have-summary")
    if bad_entry is not None:
        raise ValueError(f"bad have-summary entry for {str(bad_entry)[:60]!r}")
    owners = pa.array(np.repeat(np.arange(len(authors)), counts))
    return Have(
        pa.table({"author": pa.array(authors, pa.string()), "max_seq": pa.array(tops, pa.uint64()),
                  "xor8": pa.array(xors, pa.uint64())}),
        pa.table({"author": pa.array(authors, pa.string()).take(owners),
                  "lo": pa.array(lo, pa.uint64()), "hi": pa.array(hi, pa.uint64())}))


def _gap_arrays(gaps: list[Any]) -> tuple[np.ndarray, np.ndarray, int | None]:
    """The gaps' lo and hi as int64 arrays, up to the first gap that is not a list of two ints
    that fit int64 (its index is the third item; None if every gap is one). C-level passes only:
    a hostile summary pays no Python call per gap, whichever gap it spoils."""
    if set(map(type, gaps)) <= {list} and set(map(len, gaps)) <= {2}:
        flat = list(itertools.chain.from_iterable(gaps))
        if set(map(type, flat)) <= {int}:
            try:
                values = np.fromiter(flat, np.int64, len(flat))
                return values[0::2], values[1::2], None
            except OverflowError:
                pass
    # some gap is unreadable: find the first (these passes are slower)
    fault = _first_true(~_all_of(gaps, list))
    gaps = gaps[:fault]
    fault = _min(fault, _first_true(np.fromiter(map(len, gaps), np.int64, len(gaps)) != 2))
    flat = list(itertools.chain.from_iterable(gaps[:fault]))
    other = _first_true(~_all_of(flat, int))
    fault, flat = _cut(fault, flat, other)
    try:
        values = np.fromiter(flat, np.int64, len(flat))
    except OverflowError:         # an int past int64: the first gap holding one
        big = np.fromiter(map(operator.ge, flat, itertools.repeat(2**63)), bool, len(flat))
        big |= np.fromiter(map(operator.lt, flat, itertools.repeat(-2**63)), bool, len(flat))
        fault, flat = _cut(fault, flat, _first_true(big))
        values = np.fromiter(flat, np.int64, len(flat))
    return values[0::2], values[1::2], fault


def _all_of(items: list[Any], kind: type) -> np.ndarray:
    """Whether each item's type is exactly `kind` (bool is not int), without a Python call each."""
    return np.fromiter(map(operator.is_, map(type, items), itertools.repeat(kind)), bool,
                       len(items))


def _cut(fault: int | None, flat: list[Any], bad: int | None) -> tuple[int | None, list[Any]]:
    """A bad value at `bad` in the flat lo, hi list faults its gap: the list up to that gap."""
    if bad is None:
        return fault, flat
    return _min(fault, bad // 2), flat[:bad - bad % 2]


def _first_true(flags: np.ndarray) -> int | None:
    return int(np.argmax(flags)) if flags.any() else None


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _first_bad_gap(lo: np.ndarray, hi: np.ndarray, counts: np.ndarray, tops: np.ndarray,
                   fault: int | None) -> int | None:
    """The index of the first gap that breaks the rules (or `fault`, the first unreadable one,
    if none breaks them before it): lo >= 1 for an author's first gap, else lo >= the previous
    hi + 2; lo <= hi < the author's max seq."""
    n = lo.size
    starts = np.zeros(n, bool)
    firsts = (np.cumsum(counts) - counts)
    starts[firsts[firsts < n]] = True
    previous = np.concatenate([np.zeros(1, np.int64), hi[:-1]])
    # lo >= 1 first: past it, lo - previous cannot wrap (the previous gap passed, so it is >= 1)
    ok = (lo >= 1) & (starts | (lo - previous >= 2)) & (hi >= lo)
    ok &= hi < np.repeat(tops, counts)[:n]
    return _min(_first_true(~ok), fault)


_MISSING = """
WITH in_gap AS (   -- the gaps are disjoint and sorted: a seq can only be in the last one below it
    SELECT r.id FROM records r ASOF JOIN _gaps g ON r.author = g.author AND r.seq >= g.lo
    WHERE r.seq <= g.hi),
held AS (      -- what we hold inside the range the peer says it holds
    SELECT r.author, r.seq, r.id8 FROM records r JOIN _have h ON r.author = h.author
    WHERE r.seq <= h.max_seq AND r.id NOT IN (SELECT id FROM in_gap)),
mine AS (SELECT author, count(DISTINCT seq) AS seqs, bit_xor(id8) AS x FROM held GROUP BY author),
theirs AS (
    SELECT h.author, h.max_seq - coalesce(sum(g.hi - g.lo + 1), 0) AS seqs, h.xor8
    FROM _have h LEFT JOIN _gaps g ON g.author = h.author GROUP BY h.author, h.max_seq, h.xor8),
differ AS (     -- same seqs held, different ids: an equivocation one side has not seen
    SELECT m.author FROM mine m JOIN theirs t ON m.author = t.author
    WHERE m.seqs = t.seqs AND m.x <> t.xor8)
SELECT r.raw FROM records r LEFT JOIN _have h ON r.author = h.author
WHERE h.author IS NULL OR r.seq > h.max_seq
   OR r.id IN (SELECT id FROM in_gap)
   OR (r.author IN (SELECT author FROM differ) AND r.seq <= h.max_seq)
ORDER BY r.author, r.seq, r.id
"""


def missing(cursor: duckdb.DuckDBPyConnection, peer: Have) -> Iterator[bytes]:
    """Stream the raw records `peer` lacks, ordered by (author, seq, id)."""
    cursor.register("_have", peer.authors)
    cursor.register("_gaps", peer.gaps)
    return raws(cursor.execute(_MISSING))


def raws(result: duckdb.DuckDBPyConnection) -> Iterator[bytes]:
    """Stream the first column of a query's rows (raw records), 1024 rows at a time."""
    while rows := result.fetchmany(1024):
        for (raw,) in rows:
            yield raw


def batches(raws: Iterable[bytes], batch_bytes: int) -> Iterator[list[bytes]]:
    """Group raw records into lists of about `batch_bytes` (at least one record each)."""
    batch: list[bytes] = []
    size = 0
    for raw in raws:
        if batch and size + len(raw) > batch_bytes:
            yield batch
            batch, size = [], 0
        batch.append(raw)
        size += len(raw)
    if batch:
        yield batch
