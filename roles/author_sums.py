"""Per author and config, the count and exact sum of the author's sane finished runs on a track.

A change of trust (a pin, an unpin, a replay that trusts or distrusts an author) moves the changed
authors' runs between the trusted and the untrusted sums of the per-config rows
(roles/evidence_inc.py). Grouping an author's ~50,000 runs in DuckDB for each change cost
0.13-0.3 s at a million runs (~50 ms of CPU since the 1e-12 units come from a double product,
roles/evidence_inc.py). `AuthorSums` groups every run by (author, config) once (one query, ~0.3
s of CPU at a million runs, ~0.6 s before: by the dashboard's warm-up, else in the background from
the first change of trust after a full computation; fetched as Arrow arrays, `of_table`, from a
reader that has `query_arrow`, so no Python object is made per pair and the GIL is not held for
the ~0.7 s that turning 632,000 pairs into Python lists took; as lists per author, `of`, from
other readers and for Python-integer sums), or only the changed
authors' runs as a change first names them (one query for them, as before; kept and `merged`),
as of a mark; a later change takes the changed authors' slices of its arrays, plus or minus
their runs stored between that mark and the moved table's (a rowid range: few rows). The values
are those the sums use (val_bpb in units of 1e-12), so the moved rows equal a fresh
computation's.

Memory: per (author, config) pair an int32 position, an int64 sum and an int32 count (16 bytes),
sorted by author, and one dict entry per author: at a million runs about 16 MB for the arrays
(at most one pair per run; 10 MB for the bench's 632,000 pairs) and ~26 MB for 100,000 authors'
entries; about 100 MB at most while the query's rows are converted (as lists; far less as Arrow).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from roles import config_rows

Sums = tuple[np.ndarray, np.ndarray, np.ndarray]     # positions, sums, counts


class AuthorSums:
    """The grouped runs below `mark`: author -> (config positions, sums, counts), for every
    author (`covered` None) or for the authors in `covered`."""

    def __init__(self, mark: int, index: config_rows.Index, positions: np.ndarray,
                 sums: np.ndarray, counts: np.ndarray, spans: dict[str, tuple[int, int]],
                 covered: frozenset[str] | None = None) -> None:
        self.mark, self.index, self.covered = mark, index, covered
        self._positions, self._sums, self._counts, self._spans = positions, sums, counts, spans

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]], mark: int, index: config_rows.Index,
           covered: frozenset[str] | None = None) -> AuthorSums:
        """From the grouped query's rows: (author, [config], [sum], [count]), one per author
        (of every author, or of those in `covered`: the others in it hold no runs)."""
        positions = index.positions([h for r in rows for h in r[1]]).astype(np.int32)
        counts = np.array([n for r in rows for n in r[3]], dtype=np.int64)
        big = len(counts) and int(counts.max()) > config_rows.SAFE_N
        sums = np.array([s for r in rows for s in r[2]], dtype=object if big else np.int64)
        ends = np.cumsum([len(r[1]) for r in rows]).tolist()
        spans = {r[0]: (end - len(r[1]), end) for r, end in zip(rows, ends)}
        return cls(mark, index, positions, sums, counts.astype(np.int32), spans, covered)

    @classmethod
    def of_table(cls, table: Any, mark: int, index: config_rows.Index,
                 covered: frozenset[str] | None = None) -> AuthorSums:
        """From an Arrow table of (author, config, sum, count) rows, one per pair, in any order
        (sums int64): arrays throughout, a Python object only per distinct author and config."""
        if table.num_rows == 0:
            return cls.of([], mark, index, covered)
        authors = table.column(0).combine_chunks().dictionary_encode()
        configs = table.column(1).combine_chunks().dictionary_encode()
        who = authors.indices.to_numpy()
        order = np.argsort(who, kind="stable")       # each author's pairs together
        where = index.positions(configs.dictionary.to_pylist())
        positions = where[configs.indices.to_numpy()[order]].astype(np.int32)
        sums = table.column(2).to_numpy()[order].astype(np.int64)
        counts = table.column(3).to_numpy()[order].astype(np.int32)
        sizes = np.bincount(who, minlength=len(authors.dictionary))
        spans = {a: (end - n, end) for a, end, n in zip(
            authors.dictionary.to_pylist(), np.cumsum(sizes).tolist(), sizes.tolist())}
        return cls(mark, index, positions, sums, counts, spans, covered)

    def missing(self, authors: list[str]) -> list[str]:
        """Those of `authors` whose runs these sums do not hold."""
        return [] if self.covered is None else [a for a in authors if a not in self.covered]

    def merged(self, more: AuthorSums) -> AuthorSums:
        """These sums with `more`'s (other authors', as of the same mark and index)."""
        assert more.mark == self.mark and more.index is self.index and more.covered is not None
        shift = len(self._positions)
        spans = dict(self._spans)
        spans.update({a: (lo + shift, hi + shift) for a, (lo, hi) in more._spans.items()})
        covered = None if self.covered is None else self.covered | more.covered
        return AuthorSums(self.mark, self.index, np.concatenate([self._positions, more._positions]),
                          np.concatenate([self._sums, more._sums]),
                          np.concatenate([self._counts, more._counts]), spans, covered)

    def of_author(self, author: str) -> Sums:
        """The author's runs below the mark, grouped by config (views into the arrays)."""
        lo, hi = self._spans.get(author, (0, 0))
        return self._positions[lo:hi], self._sums[lo:hi], self._counts[lo:hi]

    def of_authors(self, authors: list[str]) -> dict[str, Sums]:
        """`of_author` for each of these authors."""
        return {a: self.of_author(a) for a in authors}

    def at(self, author: str, late: list[tuple[Any, ...]], sign: int) -> Sums:
        """The author's runs below another mark: these, with `late` (config, sum, count) rows
        added (`sign` 1: a later mark) or taken off (-1: an earlier one)."""
        positions, sums, counts = self.of_author(author)
        if not late:
            return positions, sums, counts
        more = self.index.positions([r[0] for r in late]).astype(np.int32)
        extra_sums = np.array([sign * r[1] for r in late], dtype=sums.dtype)
        extra_counts = np.array([sign * r[2] for r in late], dtype=np.int32)
        return (np.concatenate([positions, more]), np.concatenate([sums, extra_sums]),
                np.concatenate([counts, extra_counts]))
