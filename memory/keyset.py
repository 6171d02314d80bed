"""A compact set of 64-bit keys: a sorted numpy array plus a small buffer of recent additions.

The store keeps two: the first 8 bytes of every record id, and a hash of every (author, seq).
Checking a batch against them replaces SQL joins that scanned the whole records table on every
batch. Membership is "maybe" (64-bit keys can collide), so hits are confirmed in SQL; misses are
certain. A million keys take 8 MB.
"""
from __future__ import annotations

import numpy as np

_COMPACT_AT = 65_536
_MAX_RECENT = 16            # recent additions kept as separate arrays before they are merged


class KeySet:
    """Membership tests for uint64 keys; add-only."""

    def __init__(self, keys: np.ndarray | None = None) -> None:
        self._base = np.unique(np.asarray(keys if keys is not None else [], dtype=np.uint64))
        self._recent: list[np.ndarray] = []
        self._recent_count = 0

    def __len__(self) -> int:
        self._compact()
        return int(self._base.size)

    def _compact(self) -> None:
        if self._recent:
            self._base = np.union1d(self._base, np.concatenate(self._recent))
            self._recent, self._recent_count = [], 0

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """A boolean mask: True where the key may be in the set."""
        keys = np.asarray(keys, dtype=np.uint64)
        found = np.zeros(keys.shape, dtype=bool)
        if self._base.size:
            at = np.searchsorted(self._base, keys)
            inside = at < self._base.size
            found[inside] = self._base[at[inside]] == keys[inside]
        for extra in self._recent:
            found |= np.isin(keys, extra)
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add keys (after the batch holding them committed)."""
        keys = np.asarray(keys, dtype=np.uint64)
        if keys.size:
            self._recent.append(keys)
            self._recent_count += keys.size
            if self._recent_count > _COMPACT_AT:
                self._compact()
            elif len(self._recent) > _MAX_RECENT:
                # many small additions (gossip: a record or two per batch) would make every
                # `contains` loop over thousands of arrays: merge them into one
                self._recent = [np.concatenate(self._recent)]
