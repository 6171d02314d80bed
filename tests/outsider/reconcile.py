"""Sync 2.1.0's reconciliation without the network, from docs/PROTOCOL.md ("Sync") alone.

Bounds, fingerprints, sketches; the requester's rules (what to ask after each answer) and the
responder's answers. No swarm import: docs/vectors/sync.json checks it frame by frame.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .records import Key, Memory, Record

TOP = 2**53  # the highest bound (2^53, 0)
LEAF_KEYS = 16
MAX_REQUESTS = 2048


class ProtocolError(RuntimeError):
    """The remote side broke the documented protocol."""


MASK64 = 2**64 - 1
MIN_CELLS, MAX_CELLS = 9, 4095


def mix(x: int) -> int:
    """splitmix64's finaliser, mod 2^64."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


@dataclass
class Sketch:
    """An invertible Bloom lookup table over id8 keys (PROTOCOL.md, "Sketches")."""

    salt: int
    counts: list[int]
    keys: list[int]
    checks: list[int]

    @classmethod
    def empty(cls, salt: bytes, m: int) -> Sketch:
        if m % 3 or not MIN_CELLS <= m <= MAX_CELLS:
            raise ProtocolError(f"sketch of {m} cells")
        return cls(int.from_bytes(salt, "big"), [0] * m, [0] * m, [0] * m)

    @classmethod
    def of(cls, id8s: Iterable[int], salt: bytes, m: int) -> Sketch:
        sketch = cls.empty(salt, m)
        for id8 in id8s:
            sketch.toggle(id8, 1)
        return sketch

    @classmethod
    def from_wire(cls, salt: bytes, data: bytes) -> Sketch:
        if len(salt) != 8 or len(data) % 13:
            raise ProtocolError("sketch: bad salt or size")
        m = len(data) // 13
        sketch = cls.empty(salt, m)
        sketch.counts = list(data[:m])
        sketch.keys = bin_keys(data[m:9 * m])
        sketch.checks = [int.from_bytes(data[9 * m + 4 * i:9 * m + 4 * i + 4], "big")
                         for i in range(m)]
        return sketch

    def wire(self) -> bytes:
        return (bytes(self.counts) + keys_bin(self.keys)
                + b"".join(c.to_bytes(4, "big") for c in self.checks))

    def cells(self, id8: int) -> tuple[list[int], int]:
        """The key's three cells and its check."""
        q = len(self.counts) // 3
        h = mix(id8 ^ self.salt)
        return [p * q + ((h >> (21 * p)) & 0x1FFFFF) % q for p in range(3)], mix(h) & 0xFFFFFFFF

    def toggle(self, id8: int, delta: int) -> None:
        cells, check = self.cells(id8)
        for c in cells:
            self.counts[c] = (self.counts[c] + delta) % 256
            self.keys[c] ^= id8
            self.checks[c] ^= check

    def minus(self, other: Sketch) -> Sketch:
        return Sketch(self.salt, [(a - b) % 256 for a, b in zip(self.counts, other.counts)],
                      [a ^ b for a, b in zip(self.keys, other.keys)],
                      [a ^ b for a, b in zip(self.checks, other.checks)])

    def peel(self) -> tuple[set[int], set[int]] | None:
        """(keys only in self's side, keys only in the other's) of a difference; None if it
        does not decode completely."""
        ours, theirs = set(), set()
        for _ in range(4 * len(self.counts)):
            pure = next((c for c in range(len(self.counts)) if self._pure(c)), None)
            if pure is None:
                break
            id8, count = self.keys[pure], self.counts[pure]
            (ours if count == 1 else theirs).add(id8)
            self.toggle(id8, -1 if count == 1 else 1)
        if any(self.counts) or any(self.keys) or any(self.checks):
            return None
        return ours, theirs

    def _pure(self, c: int) -> bool:
        if self.counts[c] not in (1, 255):
            return False
        cells, check = self.cells(self.keys[c])
        return self.checks[c] == check and c in cells




def encode_bound(key: Key) -> Any:
    """`ts` alone when the id part is 0, else [ts, id8's big-endian bytes, trailing zeros cut]."""
    ts, id8 = key
    if id8 == 0:
        return ts
    return [ts, id8.to_bytes(8, "big").rstrip(b"\0")]


def decode_bound(wire: Any) -> Key:
    """Inverse of `encode_bound`; ProtocolError on any other form."""
    if isinstance(wire, int) and not isinstance(wire, bool):
        return (wire, 0)
    if (isinstance(wire, list) and len(wire) == 2 and isinstance(wire[0], int)
            and isinstance(wire[1], bytes) and 1 <= len(wire[1]) <= 8 and wire[1][-1] != 0):
        return (wire[0], int.from_bytes(wire[1].ljust(8, b"\0"), "big"))
    raise ProtocolError(f"bad bound {wire!r}")


def fingerprint(id8s: Iterable[int]) -> bytes:
    """blake2b-64 of (count, sum of id8 mod 2^64), both 8 bytes little-endian."""
    ids = list(id8s)
    data = len(ids).to_bytes(8, "little") + (sum(ids) % 2**64).to_bytes(8, "little")
    return hashlib.blake2b(data, digest_size=8).digest()


EMPTY_FP = fingerprint([])


def keys_bin(id8s: Iterable[int]) -> bytes:
    return b"".join(i.to_bytes(8, "big") for i in id8s)


def bin_keys(data: bytes) -> list[int]:
    if len(data) % 8:
        raise ProtocolError("key list not a multiple of 8 bytes")
    return [int.from_bytes(data[i:i + 8], "big") for i in range(0, len(data), 8)]


KeysIn = Callable[[Key, Key], list[Key]]  # R's sorted keys in [lo, hi)


def split_bounds(lo: Key, hi: Key, reply: list) -> tuple[list[Key], list[bytes]]:
    """The sub-ranges' bounds (lo first, hi last) and fingerprints of an "f" reply."""
    deltas, fps = reply[1], reply[2]
    if len(fps) != 8 * (len(deltas) + 1):
        raise ProtocolError("split: fingerprints do not match the bounds")
    bounds, prev = [lo], lo
    for d in deltas:  # each inner bound is a delta from the previous one
        ts_delta, id_part = decode_bound(d)
        prev = (prev[0] + ts_delta, id_part)
        bounds.append(prev)
    return bounds + [hi], [fps[i * 8:(i + 1) * 8] for i in range(len(fps) // 8)]


def next_requests(keys_in: KeysIn, req: list, answer: Any) -> list[list]:
    """The requests R sends after `answer` to its request `req` (PROTOCOL.md, "R's rules";
    sketches left out: "x" is R's option, and "s" is always correct)."""
    kind, lo, hi = req[0], decode_bound(req[1]), decode_bound(req[2])
    if answer is True:
        return []
    if answer is False and kind == "x":
        return [_ask(keys_in, lo, hi)]
    if isinstance(answer, int) and not isinstance(answer, bool):
        return []  # records sent; nothing more to ask here
    if not isinstance(answer, list) or not answer:
        raise ProtocolError(f"answer {answer!r} to {kind}")
    if answer[0] == "m":  # paged: ask again from `resume`
        resume = decode_bound(answer[2])
        return [_ask(keys_in, resume, hi)]
    if answer[0] == "i":
        theirs = bin_keys(answer[1])
        mine = {k[1] for k in keys_in(lo, hi)}
        lack = [k for k in theirs if k not in mine]
        return [["w", req[1], req[2], keys_bin(lack)]] if lack else []
    if answer[0] == "f":
        bounds, fps = split_bounds(lo, hi, answer)
        counts = answer[3] if len(answer) > 3 else [None] * len(fps)
        out = []
        for i, fp in enumerate(fps):
            sub_lo, sub_hi = bounds[i], bounds[i + 1]
            mine = keys_in(sub_lo, sub_hi)
            if fp == EMPTY_FP or fp == fingerprint(k[1] for k in mine):
                continue
            out.append(_sketch_or_ask(keys_in, sub_lo, sub_hi, counts[i]))
        return out
    raise ProtocolError(f"unknown answer {answer[0]!r}")


def sketch_cells(d: int) -> int:
    """Cells for a count difference `d`: floor(1.5 max(d, 2)) + 30, up to a multiple of 3."""
    m = (3 * max(d, 2)) // 2 + 30
    return m + (-m) % 3


def _sketch_or_ask(keys_in: KeysIn, lo: Key, hi: Key, their_count: int | None) -> list:
    """2.1.0: "x" for a sparse difference where R holds more than 16 keys, else `_ask`."""
    mine = keys_in(lo, hi)
    if their_count is not None and len(mine) > LEAF_KEYS:
        d = abs(their_count - len(mine))
        m = sketch_cells(d)
        if 4 * max(d, 1) <= their_count and m <= MAX_CELLS:
            salt = os.urandom(8)
            return ["x", encode_bound(lo), encode_bound(hi), salt,
                    Sketch.of([k[1] for k in mine], salt, m).wire()]
    return _ask(keys_in, lo, hi)


def _ask(keys_in: KeysIn, lo: Key, hi: Key) -> list:
    """"h" with R's keys when it holds at most 16 in [lo, hi), else "s" with its fingerprint."""
    mine = keys_in(lo, hi)
    if len(mine) <= LEAF_KEYS:
        return ["h", encode_bound(lo), encode_bound(hi), keys_bin(k[1] for k in mine)]
    return ["s", encode_bound(lo), encode_bound(hi), fingerprint(k[1] for k in mine)]


SPLIT = 16


def shortest_bound(prev: Key, key: Key) -> Key:
    """The shortest bound b with prev < b <= key: (ts, 0) when the ts differ, else the shortest
    prefix of key's id8 above prev's."""
    if prev[0] != key[0]:
        return (key[0], 0)
    raw = key[1].to_bytes(8, "big")
    for n in range(1, 9):
        cut = int.from_bytes(raw[:n].ljust(8, b"\0"), "big")
        if cut > prev[1]:
            return (key[0], cut)
    return key


def split_reply(keys: list[Key], lo: Key, id8_of: Callable[[Key], int] = lambda k: k[1]) -> list:
    """The "f" answer over S's sorted `keys` of a range starting at `lo`: 16 sub-ranges of equal
    counts, cut at S's keys, inner bounds as deltas, 16 fingerprints and 16 counts."""
    n = len(keys)
    cuts = [i * n // SPLIT for i in range(SPLIT + 1)]
    deltas, prev = [], lo
    for c in cuts[1:-1]:
        bound = shortest_bound(keys[c - 1], keys[c])
        deltas.append(encode_bound((bound[0] - prev[0], bound[1])))
        prev = bound
    parts = [keys[cuts[i]:cuts[i + 1]] for i in range(SPLIT)]
    return ["f", deltas, b"".join(fingerprint(k[1] for k in part) for part in parts),
            [len(part) for part in parts]]


def answer(mem: Memory, req: Any) -> tuple[Any, list[Record]]:
    """S's reply to one request and the records it sends for it; ProtocolError if malformed."""
    if not isinstance(req, list) or len(req) < 3 or req[0] not in ("s", "h", "w", "x"):
        raise ProtocolError(f"bad request {req!r:.80}")
    lo, hi = decode_bound(req[1]), decode_bound(req[2])
    keys = mem.in_range(lo, hi)
    held = {r.key: r for r in mem.records.values() if lo <= r.key < hi}
    if req[0] == "s":
        if len(req) == 4 and req[3] == fingerprint(k[1] for k in keys):
            return True, []
        if len(keys) <= LEAF_KEYS:
            return ["i", keys_bin(k[1] for k in keys)], []
        return split_reply(keys, lo), []
    if req[0] in ("h", "w"):
        named = set(bin_keys(req[3]))
        if len(named) > LEAF_KEYS:
            raise ProtocolError("more than 16 keys")
        if req[0] == "h":
            send = [held[k] for k in keys if k[1] not in named]
        else:
            send = [held[k] for k in keys if k[1] in named]
        return len(send), send
    theirs = Sketch.from_wire(req[3], req[4])
    diff = Sketch.of((k[1] for k in keys), req[3], len(theirs.counts)).minus(theirs).peel()
    by_id8 = {k[1]: held[k] for k in keys}
    if diff is None or not diff[0] <= set(by_id8):
        return False, []
    send = sorted((by_id8[i] for i in diff[0]), key=lambda r: r.key)
    return len(send), send
