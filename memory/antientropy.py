"""Anti-entropy: summarise what a store holds, and find what a peer's summary lacks.

A summary ("have") is, per author: the highest seq held, the gaps below it as [lo, hi] ranges, and
the XOR of the first 8 bytes of every held id. A peer missing 1% of the records at random sends one
small summary and receives exactly the missing records: one round trip. The XOR catches the rare
case of two replicas holding different records under the same (author, seq), an equivocation:
when we hold every seq the peer holds and the XORs still differ, we resend that author's records.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
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


def parse_have(value: Any) -> Have:
    """Validate a summary received from a peer; ValueError if it is malformed or too large."""
    if not isinstance(value, dict) or len(value) > MAX_AUTHORS:
        raise ValueError("a have-summary is a map of at most %d authors" % MAX_AUTHORS)
    authors, tops, xors, gap_authors, los, his = [], [], [], [], [], []
    for author, entry in value.items():
        if not (isinstance(author, str) and len(author) < 100 and isinstance(entry, list)
                and len(entry) == 3 and _int_in(entry[0], 0, 2**63)
                and isinstance(entry[1], list) and _int_in(entry[2], 0, _U64)):
            raise ValueError(f"bad have-summary entry for {str(author)[:60]!r}")
        after = 0                # each gap begins past the last one's end + 1: a held seq between
        for gap in entry[1]:
            if not (isinstance(gap, list) and len(gap) == 2 and _int_in(gap[0], after + 1, 2**63)
                    and _int_in(gap[1], gap[0], entry[0])):
                raise ValueError(f"bad gap {str(gap)[:60]} for {author[:60]!r}: gaps are "
                                 "[lo, hi], lo <= hi < max seq, ascending, a held seq between two")
            gap_authors.append(author), los.append(gap[0]), his.append(gap[1])
            after = gap[1] + 1
        if len(los) > MAX_GAPS:
            raise ValueError("too many gaps in a have-summary")
        authors.append(author), tops.append(entry[0]), xors.append(entry[2])
    return Have(
        pa.table({"author": pa.array(authors, pa.string()), "max_seq": pa.array(tops, pa.uint64()),
                  "xor8": pa.array(xors, pa.uint64())}),
        pa.table({"author": pa.array(gap_authors, pa.string()), "lo": pa.array(los, pa.uint64()),
                  "hi": pa.array(his, pa.uint64())}))


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
