"""Invertible Bloom lookup tables (IBLT) of id8 keys: the difference of two sets in ~1.5 cells per
differing key, whatever the sets' size (sync 2.1.0's "x" request, memory/reconcile.py).

A sketch of m cells (m a multiple of 3, at most MAX_CELLS) holds each key in 3 cells, one in each
third: cell p*q + (slice p of h) for p = 0, 1, 2, where q = m / 3, h = mix(key ^ salt) and slice p
is bits 21p .. 21p+20 of h (the cell index is that slice mod q). A cell keeps the count of its keys
mod 256, the XOR of the keys and the XOR of their checks (the low 32 bits of mix(h)). Subtracting
one side's sketch from the other's leaves only the keys one of them lacks; a cell holding one of
them alone is "pure" (count 1 or 255, check matching) and peels it off the other cells, until
nothing is left (decoded) or no pure cell remains (failed: the caller falls back to splitting).

The salt is the requester's, fresh and random per request: nobody can craft keys that collide in a
sketch they cannot predict. `mix` is splitmix64's finaliser. Why our own code: no maintained Python
IBLT/minisketch package; this is ~100 lines of numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CELL_BYTES = 13             # count (1 byte), key XOR (8), check XOR (4)
MAX_CELLS = 4095            # a request's sketch: at most 53 KB
MIN_CELLS = 9
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_MASK = 2**64 - 1
_SLICE = 0x1FFFFF


def cells_for(difference: int) -> int:
    """Cells for a sketch expected to decode `difference` differing keys (a multiple of 3)."""
    want = max(MIN_CELLS, int(1.5 * difference) + 30)    # measured: 0.3-4% fail to decode
    return want + (-want) % 3


def _mix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


def _mix_int(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _places(key: int, salt: int, q: int) -> tuple[tuple[int, int, int], int]:
    """The 3 cells of `key` and its check (scalar; as `build` computes them)."""
    h = _mix_int(key ^ salt)
    return ((h & _SLICE) % q, q + ((h >> 21) & _SLICE) % q, 2 * q + ((h >> 42) & _SLICE) % q), \
        _mix_int(h) & 0xFFFFFFFF


@dataclass
class Sketch:
    """The cells of one sketch."""

    counts: np.ndarray      # uint8 (mod 256)
    keys: np.ndarray        # uint64
    checks: np.ndarray      # uint32

    @classmethod
    def build(cls, keys: np.ndarray, salt: int, cells: int) -> Sketch:
        """The sketch of `keys` (uint64) with `salt`, `cells` cells."""
        keys = np.asarray(keys, dtype=np.uint64)
        q = cells // 3
        h = _mix(keys ^ np.uint64(salt))
        checks = (_mix(h) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        counts = np.zeros(cells, np.int64)
        xor_keys = np.zeros(cells, np.uint64)
        xor_checks = np.zeros(cells, np.uint32)
        for part in range(3):
            at = (((h >> np.uint64(21 * part)) & np.uint64(_SLICE)) % np.uint64(q)).astype(np.int64)
            at += part * q
            np.add.at(counts, at, 1)
            np.bitwise_xor.at(xor_keys, at, keys)
            np.bitwise_xor.at(xor_checks, at, checks)
        return cls((counts % 256).astype(np.uint8), xor_keys, xor_checks)

    def encode(self) -> bytes:
        """The cells on the wire: counts, then keys (8-byte big-endian), then checks (4)."""
        return (self.counts.tobytes() + self.keys.astype(">u8").tobytes()
                + self.checks.astype(">u4").tobytes())

    @classmethod
    def decode(cls, value: Any) -> Sketch:
        """Inverse of `encode`; ValueError unless MIN_CELLS..MAX_CELLS cells, a multiple of 3."""
        if not isinstance(value, bytes) or len(value) % (3 * CELL_BYTES):
            raise ValueError("a sketch is bytes, a multiple of 3 cells of 13 bytes")
        m = len(value) // CELL_BYTES
        if not MIN_CELLS <= m <= MAX_CELLS:
            raise ValueError(f"a sketch has {MIN_CELLS} to {MAX_CELLS} cells")
        return cls(np.frombuffer(value[:m], np.uint8).copy(),
                   np.frombuffer(value[m:9 * m], ">u8").astype(np.uint64),
                   np.frombuffer(value[9 * m:], ">u4").astype(np.uint32))

    def __len__(self) -> int:
        return int(self.counts.size)

    def minus(self, other: Sketch) -> Sketch:
        """The sketch of this set's keys less `other`'s (same salt and size)."""
        return Sketch(self.counts - other.counts, self.keys ^ other.keys,
                      self.checks ^ other.checks)


def difference(mine: Sketch, theirs: Sketch, salt: int) -> tuple[list[int], list[int]] | None:
    """(keys only in `mine`, keys only in `theirs`), peeled from their difference; None if it
    does not decode completely (too many differences for the cells, or a multiset)."""
    diff = mine.minus(theirs)
    counts, keys, checks = diff.counts.tolist(), diff.keys.tolist(), diff.checks.tolist()
    m, q = len(counts), len(counts) // 3
    found: tuple[list[int], list[int]] = ([], [])
    todo = [i for i, c in enumerate(counts) if c in (1, 255)]
    for _ in range(4 * m):                    # each peel empties a cell; bounded whatever the input
        if not todo:
            break
        i = todo.pop()
        if counts[i] not in (1, 255):
            continue
        key = keys[i]
        places, check = _places(key, salt, q)
        if checks[i] != check or i not in places:
            continue                          # several keys in this cell, not one
        sign = 1 if counts[i] == 1 else -1
        found[0 if sign == 1 else 1].append(key)
        for j in places:
            counts[j] = (counts[j] - sign) % 256
            keys[j] ^= key
            checks[j] ^= check
            if counts[j] in (1, 255):
                todo.append(j)
    if any(counts) or any(keys) or any(checks):
        return None
    return found
