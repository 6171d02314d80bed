"""The verdicts' per-config rows as arrays, and the best few of them picked exactly.

roles/evidence_inc.py keeps, per config of a track, (t_sum, t_n, u_sum, u_n): the sum and count of
its first counted run per seed by trusted authors, and of its sane finished runs by the others,
sums as exact integers in units of 1e-12. A change of trust moves most rows at a million runs
(every config holds runs of most authors); as a dict of tuples that was a Python loop over
~30,000 rows per author and another pass over every row to rank them. Here the rows are one
(4, configs) integer array, so a change of trust is a vectorised add (`move`) and the ranking a
partition of the float means followed by an exact sort of the few candidates (`top`).

Exactness: the sums are int64 while no config can hold more sane runs than `SAFE_N` (each value is
at most sanity.MAX_BPB, so such a sum fits); past that bound the array turns into Python integers
(dtype object: slower, never wrong). numpy's int64 arithmetic wraps modulo 2**64, so a move that
passes through a larger intermediate value still ends exact when the result fits.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pyarrow as pa

from roles import sanity

Row = tuple[int, int, int, int]           # t_sum, t_n, u_sum, u_n (sums in 1e-12 units)
# The most sane runs one config may hold while its sum of values fits in an int64.
SAFE_N = (2**63 - 1) // (int(sanity.MAX_BPB) * 10**12)
# Relative error of a float mean (sum and count rounded once each, one division): well under this.
_MARGIN = 1e-15


class Index:
    """Config hash <-> position, shared by every state moved on from one full computation.
    Positions never change and only new configs are added (under a lock), so a state whose array
    is shorter than the index simply holds no runs of the configs added after it."""

    def __init__(self, hashes: list[str]) -> None:
        self.hashes = list(hashes)
        self.position = {h: i for i, h in enumerate(self.hashes)}
        self._lock = threading.Lock()

    def of(self, chash: str) -> int:
        """The config's position (a new one added)."""
        found = self.position.get(chash)
        if found is None:
            with self._lock:
                found = self.position.get(chash)
                if found is None:
                    found = self.position[chash] = len(self.hashes)
                    self.hashes.append(chash)
        return found

    def positions(self, hashes: list[str]) -> np.ndarray:
        """The positions of these configs (new ones added), as an array."""
        found = [self.position.get(h) for h in hashes]
        if None in found:
            found = [self.of(h) for h in hashes]
        return np.array(found, dtype=np.int64)


class Rows:
    """Every config's row as of one state: `values[:, i]` is config `index.hashes[i]`'s; an
    all-zero row is a config without runs. `bound`: at least the sane runs any config holds."""

    def __init__(self, index: Index, values: np.ndarray, bound: int) -> None:
        self.index, self.values, self.bound = index, values, bound
        self._tops: dict[int, tuple[list[str], list[str]]] = {}

    @classmethod
    def of(cls, rows: dict[str, Row], bound: int) -> Rows:
        """Rows from a dict (a full computation)."""
        index = Index(sorted(rows))
        dtype = np.int64 if bound <= SAFE_N else object
        values = np.zeros((4, len(index.hashes)), dtype=dtype)
        if rows:
            values[:] = np.array([rows[h] for h in index.hashes], dtype=dtype).T
        return cls(index, values, bound)

    @classmethod
    def of_table(cls, table: Any) -> Rows:
        """Rows from an Arrow table of (config, t_sum, t_n, u_sum, u_n) rows (a full
        computation), sums as decimals of scale 0: int64 arrays while no config holds more than
        SAFE_N runs (then every sum fits: a checked cast), else Python integers."""
        index = Index(table.column(0).to_pylist())
        counts = [table.column(i).to_numpy().astype(np.int64) for i in (2, 4)]
        bound = int((counts[0] + counts[1]).max()) if table.num_rows else 0
        if bound <= SAFE_N:
            sums = [table.column(i).cast(pa.int64()).to_numpy() for i in (1, 3)]
            values = np.stack([sums[0], counts[0], sums[1], counts[1]]).astype(np.int64)
        else:
            values = np.array([[int(x) for x in table.column(i).to_pylist()]
                               for i in (1, 2, 3, 4)], dtype=object).reshape(4, -1)
        return cls(index, values.reshape(4, table.num_rows), bound)

    def copy(self, more_runs: int = 0) -> Rows:
        """A copy to change, for a state with up to `more_runs` more runs per config."""
        bound = self.bound + more_runs
        values = self.values.copy() if bound <= SAFE_N or self.values.dtype == object \
            else self.values.astype(object)
        return Rows(self.index, values, bound)

    def _grow(self) -> None:
        if self.values.shape[1] < len(self.index.hashes):
            extra = np.zeros((4, len(self.index.hashes) - self.values.shape[1]),
                             dtype=self.values.dtype)
            self.values = np.concatenate([self.values, extra], axis=1)

    def get(self, chash: str) -> Row:
        """A config's row (all zero when it holds no runs here)."""
        i = self.index.position.get(chash)
        if i is None or i >= self.values.shape[1]:
            return (0, 0, 0, 0)
        return tuple(int(x) for x in self.values[:, i])   # type: ignore[return-value]

    def set(self, chash: str, row: Row) -> None:
        """Give a config this row (only on a copy: states never change once made)."""
        i = self.index.of(chash)
        self._grow()
        self.values[:, i] = row
        self._tops.clear()

    def move(self, positions: np.ndarray, sums: np.ndarray, counts: np.ndarray,
             gained: bool) -> None:
        """Move runs (per config: their sum and count) from the untrusted sums to the trusted
        ones (`gained`), or back. Positions may repeat."""
        self._grow()
        sign = 1 if gained else -1
        sums = sums.astype(self.values.dtype) * sign
        counts = counts.astype(self.values.dtype) * sign
        for row, delta in ((0, sums), (1, counts), (2, -sums), (3, -counts)):
            np.add.at(self.values[row], positions, delta)
        self._tops.clear()

    def as_dict(self) -> dict[str, Row]:
        """Config hash -> row, for the configs holding runs."""
        held = np.flatnonzero((self.values[1] != 0) | (self.values[3] != 0))
        return {self.index.hashes[i]: tuple(int(x) for x in self.values[:, i]) for i in held}

    def top(self, limit: int) -> tuple[list[str], list[str]]:
        """The `limit` best configs by trusted mean (ties by hash), and the `limit` best of those
        with untrusted sane runs only (by their mean)."""
        if limit not in self._tops:
            t_sum, t_n, u_sum, u_n = self.values
            self._tops[limit] = (self._best(t_sum, t_n, t_n > 0, limit),
                                 self._best(u_sum, u_n, (u_n > 0) & (t_n == 0), limit))
        return self._tops[limit]

    def _best(self, sums: np.ndarray, counts: np.ndarray, held: np.ndarray,
              limit: int) -> list[str]:
        found = np.flatnonzero(held)
        if len(found) > limit > 0:
            # Float means pick the candidates: every config of the exact top has a float mean
            # within _MARGIN (relative) of the limit-th smallest float mean.
            means = sums[found].astype(np.float64) / counts[found].astype(np.float64)
            cut = np.partition(means, limit - 1)[limit - 1]
            found = found[means <= cut + abs(cut) * _MARGIN]
        # The exact key: floor(sum * 2**64 / n) (two different means of fewer than 2**32 runs
        # each differ by at least 2**-64), ties by hash.
        keyed = sorted(((int(sums[i]) << 64) // int(counts[i]), self.index.hashes[i])
                       for i in found.tolist())
        return [h for _, h in keyed[:limit]]
