"""Which sane finished runs of a track may repeat a (config, seed): found in numpy, not by a
DuckDB GROUP BY over every run.

The leaderboard counts one run per seed of a config (its first by ts and id), so a full
computation of the per-config rows (roles/evidence_inc.py) needs every (config, seed) held by two
or more runs. A GROUP BY over a million (config, seed) keys followed by a semi-join that reads
every run's id, ts and author cost ~200 ms of CPU at a million runs. Here DuckDB hands over two
integer columns only, each sane finished run's rowid and a 64-bit hash of its (config, seed), as
Arrow arrays (no Python object per run), and numpy finds the hashes that occur twice: a sort of
the hashes (~10 ms), then a bitmap of their low bits picks the few runs that may carry one (a
gather, where `searchsorted` over a million needles costs ~70 ms), checked exactly against them.
The runs found are read by rowid. Equal hashes are only candidates: the caller groups the rows it
reads by the (config, seed) itself, so a collision (even a crafted one) adds rows, never a
wrong group.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_BITS = 20                     # the bitmap: 2**20 flags (1 MB), ~1 false candidate per 2,600 runs


def candidates(table: Any) -> list[int]:
    """The rowids (column 0, int64) of the rows whose hash (column 1, uint64) occurs in two or
    more rows of this Arrow table, sorted."""
    if table.num_rows < 2:
        return []
    rowids = table.column(0).to_numpy()
    keys = table.column(1).to_numpy()
    ordered = np.sort(keys)
    twice = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(twice) == 0:
        return []
    mask = np.uint64((1 << _BITS) - 1)
    flags = np.zeros(1 << _BITS, dtype=bool)
    flags[(twice & mask).astype(np.int64)] = True
    maybe = np.flatnonzero(flags[(keys & mask).astype(np.int64)])
    found = maybe[np.isin(keys[maybe], twice)]
    return sorted(rowids[found].tolist())
