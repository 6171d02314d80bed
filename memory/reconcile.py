"""Range-based set reconciliation (the Negentropy / RBSR family) over record keys (ts, id8).

Every record is a key (ts, id8): its timestamp and the first 8 bytes of its id as an unsigned
integer. Keys are totally ordered, so any two bounds delimit a range [lo, hi). The fingerprint of a
range is blake2b-64 of (how many keys, their id8 sum mod 2**64): a sorted array with prefix sums
answers it in two binary searches, whatever the range's size.

One side (the requester R) wants what the other (the responder S) holds and R lacks. R asks:

    ["s", lo, hi]          split: S answers True when `fp` (an optional 4th item) equals its own,
                           ["i", S's keys] when it holds at most LEAF there, else BRANCH
                           sub-ranges cut at S's own keys (equal counts):
                           ["f", [inner bounds as deltas], fingerprints concatenated]
    ["h", lo, hi, ids]     have: R holds exactly `ids` (<= LEAF of them) in the range; S answers
                           with the number of records it sends: every one of its keys not in `ids`
    ["w", lo, hi, ids]     want: S sends the records with these keys (which S listed there)
    ["x", lo, hi, salt, sketch]   (2.1.0) R's sketch of its keys there (memory/sketch.py): S
                           subtracts its own, sends the records R lacks and answers their number,
                           or False when the difference does not decode (R then splits the range)

In 2.1.0 a split answer also gives S's key count per sub-range (["f", bounds, fingerprints,
counts]): R sketches a sub-range whose counts differ by at most a quarter of S's (a sparse
difference, e.g. gossip loss scattered over the whole history) instead of splitting it down to
leaves, so such a repair costs ~20 bytes per missing record instead of ~200.

S sends at most ROUND_BYTES of records a round; a have/want that does not fit is answered
["m", sent, resume bound] and R asks for the rest in its next frame (R's pace sets S's).

R decides per sub-range from S's fingerprint: equal to R's, or that of an empty range: done; R holds
at most LEAF keys there: "h"; else "s". Counts shrink by BRANCH per level, so the number of round trips
grows with log(size) and every frame stays bounded (MAX_REQUESTS requests of bounded size). Keys
ordered by time first keep recent differences (lost gossip) in few ranges. A fresh node (no keys)
sends one "h" for the whole range and receives everything in one round trip.
Why our own code: the negentropy packages on PyPI wrap a C++ build; ours is ~250 lines of numpy.
"""
from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from memory import sketch
from memory.codec import MAX_RECORD_BYTES

BRANCH = 16                 # sub-ranges per split
LEAF = 16                   # at most this many keys: list them instead of splitting further
MAX_REQUESTS = 2048         # requests per frame
REQUEST_BYTES = 240 * 1024  # R's frames pack to at most this (node/sync.py: S reads up to 1 MiB;
                            # nodes of the first 2.0.0 build, 256 KiB): 2048 "h" requests would not
MAX_SUBS = 64               # sub-ranges accepted in one split answer
# Split answers nested deeper than this end the exchange: S's keys shrink 16-fold per level, so 16
# levels hold 2**68 keys. A responder that answers without splitting (the same range again, or
# one key off) would otherwise keep R comparing, and sketching its keys, for every round allowed.
MAX_DEPTH = 16
SKETCH_KEYS = 4_000_000     # keys S sketches per frame (~1 s); past it, "x" is answered False
ROUND_BYTES = 8 * 1024 * 1024   # records S sends per round (more: the requester asks again)
MAX_ROUND_BYTES = ROUND_BYTES + LEAF * MAX_RECORD_BYTES     # past the budget by one request
FP_BYTES = 8
TS_END = 2**53              # record timestamps are < 2**53 (memory/codec.py)
START: tuple[int, int] = (0, 0)
END: tuple[int, int] = (TS_END, 0)
_MASK = 2**64 - 1
Bound = tuple[int, int]


def fingerprint(count: int, total: int) -> bytes:
    """The fingerprint of a range holding `count` keys whose id8 sum (mod 2**64) is `total`."""
    return hashlib.blake2b(count.to_bytes(8, "little") + (total & _MASK).to_bytes(8, "little"),
                           digest_size=FP_BYTES).digest()


_EMPTY = fingerprint(0, 0)


# ---- bounds on the wire ----

def encode_bound(bound: Bound) -> Any:
    """`ts` alone when the id part is 0, else [ts, the id8's big-endian bytes without trailing 0s]."""
    ts, key = bound
    return ts if key == 0 else [ts, key.to_bytes(8, "big").rstrip(b"\0")]


def decode_bound(value: Any) -> Bound:
    """Inverse of `encode_bound`; ValueError for anything else (including non-shortest forms)."""
    if type(value) is int and 0 <= value <= TS_END:
        return (value, 0)
    if (isinstance(value, list) and len(value) == 2 and type(value[0]) is int
            and 0 <= value[0] < TS_END and isinstance(value[1], bytes)
            and 1 <= len(value[1]) <= 8 and value[1][-1] != 0):
        return (value[0], int.from_bytes(value[1].ljust(8, b"\0"), "big"))
    raise ValueError(f"bad range bound {str(value)[:60]}")


def encode_delta(previous: Bound, bound: Bound) -> Any:
    """`bound` relative to a lower `previous` one: the ts difference, alone or with the id8 part
    (as `encode_bound`). Inner bounds of a split are sent this way: mostly 1-3 bytes each."""
    return encode_bound((bound[0] - previous[0], bound[1]))


def decode_delta(previous: Bound, value: Any) -> Bound:
    """Inverse of `encode_delta`; ValueError for anything else."""
    delta, key = decode_bound(value)
    if previous[0] + delta >= TS_END:
        raise ValueError("bound past the end")
    return (previous[0] + delta, key)


def encode_keys(keys: np.ndarray) -> bytes:
    """id8 keys as concatenated 8-byte big-endian integers."""
    return np.asarray(keys, dtype=">u8").tobytes()


def decode_keys(value: Any, limit: int) -> np.ndarray:
    """Inverse of `encode_keys`, at most `limit` keys; ValueError otherwise."""
    if not isinstance(value, bytes) or len(value) % 8 or len(value) > 8 * limit:
        raise ValueError(f"a key list is bytes, a multiple of 8 long, at most {limit} keys")
    return np.frombuffer(value, dtype=">u8").astype(np.uint64)


# ---- a sorted snapshot of one side's keys ----

@dataclass(frozen=True)
class Snapshot:
    """Keys sorted by (ts, id8), with prefix sums of id8 for O(log n) range fingerprints."""

    ts: np.ndarray          # int64
    keys: np.ndarray        # uint64 (id8)
    sums: np.ndarray        # uint64, len n + 1: sums[i] = keys[:i].sum() mod 2**64
    sizes: np.ndarray       # int64: each record's size in bytes (what a round's budget counts)

    @classmethod
    def build(cls, ts: Iterable[int] | np.ndarray, keys: Iterable[int] | np.ndarray,
              sizes: Iterable[int] | np.ndarray | None = None) -> Snapshot:
        """A snapshot of arbitrary (ts, id8) pairs (sorted and deduplicated here); sizes 0 if
        not given."""
        ts = np.asarray(ts, dtype=np.int64)
        keys = np.asarray(keys, dtype=np.uint64)
        sizes = np.zeros(ts.size, np.int64) if sizes is None else np.asarray(sizes, np.int64)
        order = np.lexsort((keys, ts))
        ts, keys, sizes = ts[order], keys[order], sizes[order]
        if ts.size:
            keep = np.ones(ts.size, dtype=bool)
            keep[1:] = (ts[1:] != ts[:-1]) | (keys[1:] != keys[:-1])
            ts, keys, sizes = ts[keep], keys[keep], sizes[keep]
        return cls.sorted(ts, keys, sizes)

    @classmethod
    def sorted(cls, ts: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> Snapshot:
        """A snapshot of pairs already sorted by (ts, id8)."""
        sums = np.zeros(keys.size + 1, dtype=np.uint64)
        np.cumsum(keys, dtype=np.uint64, out=sums[1:])      # wraps mod 2**64, as intended
        return cls(ts, keys, sums, sizes)

    def __len__(self) -> int:
        return int(self.keys.size)

    def position(self, bound: Bound) -> int:
        """How many keys are below `bound`."""
        ts, key = bound
        if ts >= TS_END:
            return len(self)
        lo = int(np.searchsorted(self.ts, ts, "left"))
        hi = int(np.searchsorted(self.ts, ts, "right"))
        if lo == hi or key == 0:
            return lo
        return lo + int(np.searchsorted(self.keys[lo:hi], np.uint64(key), "left"))

    def fingerprint(self, i: int, j: int) -> bytes:
        """Fingerprint of the keys at positions [i, j)."""
        return fingerprint(j - i, int(self.sums[j]) - int(self.sums[i]))

    def bound_at(self, i: int) -> Bound:
        """The shortest bound b with key[i-1] < b <= key[i] (END past the last key)."""
        if i >= len(self):
            return END
        ts, key = int(self.ts[i]), int(self.keys[i])
        if i == 0 or int(self.ts[i - 1]) != ts:
            return (ts, 0)
        previous = int(self.keys[i - 1])
        for size in range(1, 9):
            prefix = key & ~((1 << (64 - 8 * size)) - 1) & _MASK
            if prefix > previous:
                return (ts, prefix)
        return (ts, key)

    def split(self, i: int, j: int, lo: Bound, counts: bool = True) -> list[Any]:
        """BRANCH sub-ranges of [i, j) (the range starting at `lo`) with equal counts, on the wire:
        ["f", inner bounds (each as a delta from the previous), fingerprints (concatenated)],
        and with `counts` (2.1.0) the sub-ranges' key counts as a 4th item."""
        edges = [i + (j - i) * k // BRANCH for k in range(1, BRANCH)] + [j]
        if counts:
            sizes = [b - a for a, b in zip([i, *edges[:-1]], edges)]
        bounds, fps, start, previous = [], [], i, lo
        for edge in edges:
            if edge < j:
                bound = self.bound_at(edge)
                bounds.append(encode_delta(previous, bound))
                previous = bound
            fps.append(self.fingerprint(start, edge))
            start = edge
        return ["f", bounds, b"".join(fps), *([sizes] if counts else [])]


# ---- the responder ----

def _range(request: list[Any], size: int) -> tuple[Bound, Bound]:
    if len(request) != size:
        raise ValueError(f"a {request[0]!r} request has {size} items")
    lo, hi = decode_bound(request[1]), decode_bound(request[2])
    if not lo < hi:
        raise ValueError("a range's lower bound must be below its upper bound")
    return lo, hi


def answer(snapshot: Snapshot, requests: Any, budget: int = ROUND_BYTES, v21: bool = True
           ) -> tuple[list[Any], np.ndarray]:
    """S's replies to one frame of requests, and the keys of the records to send.

    The records sent in one round stay within `budget` bytes (past it by one request at most):
    a request that does not fit is answered ["m", records sent, bound to resume from].
    `v21`: the 2.1.0 exchange (counts in split answers, sketches), else 2.0.0's.
    ValueError when the requests are malformed (the caller ends the exchange)."""
    replies, positions = answer_at(snapshot, requests, budget, v21)
    return replies, snapshot.keys[positions]


def answer_at(snapshot: Snapshot, requests: Any, budget: int = ROUND_BYTES, v21: bool = True
              ) -> tuple[list[Any], np.ndarray]:
    """As `answer`, with the snapshot positions of the records to send instead of their keys
    (so the responder can also read their timestamps: see `ts_span`)."""
    if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
        raise ValueError(f"a frame holds 1 to {MAX_REQUESTS} requests")
    kinds = ("s", "h", "w", "x") if v21 else ("s", "h", "w")
    for request in requests:
        if not isinstance(request, list) or not request or request[0] not in kinds:
            raise ValueError(f"unknown request {str(request)[:60]}")
    _check_disjoint(requests)
    replies, send, first, sketched = [], [], True, 0
    for request in requests:
        if request[0] == "s":
            replies.append(_answer_split(snapshot, request, v21))
            continue
        if request[0] == "x":
            reply, positions, size = _answer_sketch(snapshot, request, budget, first,
                                                    SKETCH_KEYS - sketched)
            sketched += size
        else:
            reply, positions = _ANSWERS[request[0]](snapshot, request, budget, first)
        replies.append(reply)
        if positions.size:
            send.append(positions)
            budget -= int(snapshot.sizes[positions].sum())
            first = False
    return replies, np.concatenate(send) if send else np.zeros(0, dtype=np.int64)


def _check_disjoint(requests: list[Any]) -> None:
    """ValueError unless the requests' ranges are disjoint, as an honest requester's always are
    (each is a piece of a range answered before). A have or want costs S a pass over its keys in
    the range, whatever it sends: 2,048 requests for the whole range in one frame were 2,048
    passes over the memory (docs/TRUST.md); disjoint, they are one at most."""
    if any(len(request) < 3 for request in requests):
        raise ValueError("a request is [kind, lo, hi, ...]")
    ranges = sorted(_range(request[:3], 3) for request in requests)
    for (_, hi), (lo, _) in zip(ranges, ranges[1:]):
        if lo < hi:
            raise ValueError("the ranges of one frame's requests overlap")


def ts_span(snapshot: Snapshot, positions: np.ndarray) -> tuple[int, int] | None:
    """The lowest and highest timestamp of the records at `positions` (None if there are none):
    the responder reads them from its store within that span, not by a scan of every record."""
    if not positions.size:
        return None
    return int(snapshot.ts[positions].min()), int(snapshot.ts[positions].max())


def _answer_split(snapshot: Snapshot, request: list[Any], v21: bool = True) -> Any:
    lo, hi = _range(request[:3], 3)
    if len(request) > 4:
        raise ValueError("a split request has at most 4 items")
    i, j = snapshot.position(lo), snapshot.position(hi)
    if len(request) == 4 and snapshot.fingerprint(i, j) == request[3]:
        return True
    if j - i <= LEAF:
        return ["i", encode_keys(snapshot.keys[i:j])]
    return snapshot.split(i, j, lo, counts=v21)


def _listed(snapshot: Snapshot, request: list[Any]) -> tuple[Bound, np.ndarray, np.ndarray]:
    """The range's lower bound, the positions of S's keys in it, and which of them are listed."""
    lo, hi = _range(request, 4)
    listed = decode_keys(request[3], LEAF)
    i, j = snapshot.position(lo), snapshot.position(hi)
    return lo, np.arange(i, j), np.isin(snapshot.keys[i:j], listed)


def _answer_have(snapshot: Snapshot, request: list[Any], budget: int,
                 first: bool) -> tuple[Any, np.ndarray]:
    lo, at, listed = _listed(snapshot, request)
    return _page(snapshot, at[~listed], lo, budget, first)


def _page(snapshot: Snapshot, positions: np.ndarray, lo: Bound, budget: int,
          first: bool) -> tuple[Any, np.ndarray]:
    """Send the records at `positions` (in key order) that fit the round's budget: their number,
    or ["m", sent, the bound to resume from]."""
    fits = int(np.searchsorted(np.cumsum(snapshot.sizes[positions]), budget, "right"))
    if first:
        fits = max(fits, 1)              # every round sends something: the exchange progresses
    if fits >= positions.size:
        return int(positions.size), positions
    resume = snapshot.bound_at(int(positions[fits])) if fits else lo
    return ["m", fits, encode_bound(resume)], positions[:fits]


def _answer_want(snapshot: Snapshot, request: list[Any], budget: int,
                 first: bool) -> tuple[Any, np.ndarray]:
    _, at, listed = _listed(snapshot, request)
    held = at[listed]                                    # the listed keys S holds
    if not first and int(snapshot.sizes[held].sum()) > budget:
        return ["m", 0, request[1]], held[:0]            # all or nothing: ask again next round
    return int(held.size), held


def _answer_sketch(snapshot: Snapshot, request: list[Any], budget: int, first: bool,
                   allowance: int) -> tuple[Any, np.ndarray, int]:
    """The records of S in the range that R's sketch lacks (paged as a have), or False when the
    difference does not decode (or names a key S does not hold there), or when sketching the
    range would pass this frame's `allowance` of keys; and how many keys S sketched."""
    if len(request) != 5 or not isinstance(request[3], bytes) or len(request[3]) != 8:
        raise ValueError("a sketch request is [\"x\", lo, hi, 8-byte salt, cells]")
    lo, hi = _range(request[:3], 3)
    theirs, salt = sketch.Sketch.decode(request[4]), int.from_bytes(request[3], "big")
    i, j = snapshot.position(lo), snapshot.position(hi)
    none = np.zeros(0, dtype=np.int64)
    if j - i > allowance:            # bounded work per frame; an honest R splits instead
        return False, none, 0
    mine = sketch.Sketch.build(snapshot.keys[i:j], salt, len(theirs))
    found = sketch.difference(mine, theirs, salt)
    if found is None:
        return False, none, j - i
    lacking = np.array(found[0], dtype=np.uint64)
    wanted = np.isin(snapshot.keys[i:j], lacking)
    if int(wanted.sum()) != np.unique(lacking).size:   # peeled a key S does not hold: not decoded
        return False, none, j - i
    return (*_page(snapshot, np.arange(i, j)[wanted], lo, budget, first), j - i)


_ANSWERS = {"h": _answer_have, "w": _answer_want}


# ---- the requester ----

@dataclass
class Requester:
    """R's side: which requests to send next, given S's replies. Bounded: MAX_REQUESTS a frame."""

    snapshot: Snapshot
    v21: bool = True            # the 2.1.0 exchange (sketches); False: 2.0.0's
    salt: Callable[[], bytes] = lambda: os.urandom(8)     # a fresh salt per sketch
    pending: deque[list[Any]] = field(default_factory=deque)
    in_sync: bool = False
    rounds: int = 0
    sketches: int = 0           # sketch requests sent, and how many did not decode
    sketches_failed: int = 0
    levels: dict[tuple[Bound, Bound], int] = field(default_factory=dict)  # pending "s"/"x" depth

    def first(self) -> list[Any]:
        """The opening request: "h" with our keys if we hold few, else "s" with our fingerprint."""
        n = len(self.snapshot)
        if n <= LEAF:
            return [["h", encode_bound(START), encode_bound(END), encode_keys(self.snapshot.keys)]]
        return [["s", encode_bound(START), encode_bound(END), self.snapshot.fingerprint(0, n)]]

    def next_frame(self) -> list[Any]:
        """Up to MAX_REQUESTS pending requests packing to at most REQUEST_BYTES (empty: the
        exchange is over). The rest wait for the next frame."""
        frame: list[Any] = []
        size = 0
        while self.pending and len(frame) < MAX_REQUESTS:
            size += len(msgpack.packb(self.pending[0], use_bin_type=True))
            if frame and size > REQUEST_BYTES:
                break
            frame.append(self.pending.popleft())
        return frame

    def absorb(self, requests: list[Any], replies: Any) -> None:
        """Take S's replies to `requests`; queue what to ask next. ValueError if they are malformed."""
        self.rounds += 1
        if not isinstance(replies, list) or len(replies) != len(requests):
            raise ValueError("one reply per request expected")
        for request, reply in zip(requests, replies):
            if request[0] != "s":
                self._sent(request, reply)
                continue
            lo, hi = decode_bound(request[1]), decode_bound(request[2])
            level = self.levels.pop((lo, hi), 0)
            if reply is True:
                self.in_sync = self.in_sync or (request[1] == encode_bound(START)
                                                and request[2] == encode_bound(END))
            elif isinstance(reply, list) and len(reply) == 3 + self.v21 and reply[0] == "f":
                if level >= MAX_DEPTH:
                    raise ValueError(f"split answers nested past {MAX_DEPTH} levels")
                self._subranges(lo, hi, reply[1:], level + 1)
            elif isinstance(reply, list) and len(reply) == 2 and reply[0] == "i":
                self._their_keys(lo, hi, reply[1])
            else:
                raise ValueError(f"bad split reply {str(reply)[:60]}")

    def _sent(self, request: list[Any], reply: Any) -> None:
        """A have/want/sketch reply: a record count, or ["m", count, resume bound] (ask the rest
        again), or (sketch) False: split the range instead."""
        level = self.levels.pop((decode_bound(request[1]), decode_bound(request[2])), 0) \
            if request[0] == "x" else 0
        if type(reply) is int and reply >= 0:
            return
        if reply is False and request[0] == "x":
            self.sketches_failed += 1
            self._split(decode_bound(request[1]), decode_bound(request[2]), level)
            return
        if not (isinstance(reply, list) and len(reply) == 3 and reply[0] == "m"
                and type(reply[1]) is int and reply[1] >= 0):
            raise ValueError(f"bad have/want reply {str(reply)[:60]}")
        lo, hi = decode_bound(request[1]), decode_bound(request[2])
        resume = decode_bound(reply[2])
        if not lo <= resume < hi or (request[0] == "w" and resume != lo):
            raise ValueError("a resume bound must lie inside the range")
        if request[0] == "w":
            self.pending.append(request)
        elif request[0] == "x":
            self._split(resume, hi, level)
        else:
            self._have(resume, hi)

    def _have(self, lo: Bound, hi: Bound) -> None:
        i, j = self.snapshot.position(lo), self.snapshot.position(hi)
        self.pending.append(["h", encode_bound(lo), encode_bound(hi),
                             encode_keys(self.snapshot.keys[i:j])])

    def _split(self, lo: Bound, hi: Bound, level: int) -> None:
        """Ask S to split [lo, hi), a range `level` splits down."""
        self.levels[(lo, hi)] = level
        self.pending.append(["s", encode_bound(lo), encode_bound(hi)])

    def _subranges(self, lo: Bound, hi: Bound, reply: list[Any], level: int) -> None:
        bounds, fps, counts = reply[0], reply[1], reply[2] if self.v21 else None
        if not (isinstance(bounds, list) and isinstance(fps, bytes) and len(bounds) < MAX_SUBS
                and len(fps) == FP_BYTES * (len(bounds) + 1)):
            raise ValueError(f"a split answer is [inner bounds, fingerprints] of 1 to {MAX_SUBS} "
                             "sub-ranges")
        if counts is not None and not (isinstance(counts, list) and len(counts) == len(bounds) + 1
                                       and all(type(c) is int and c >= 0 for c in counts)):
            raise ValueError("a split answer's counts are one integer >= 0 per sub-range")
        start = lo
        for k in range(len(bounds) + 1):
            upper = decode_delta(start, bounds[k]) if k < len(bounds) else hi
            if not start < upper <= hi or (k < len(bounds) and upper == hi):
                raise ValueError("sub-ranges must be increasing and inside the range")
            self._compare(start, upper, fps[k * FP_BYTES:(k + 1) * FP_BYTES],
                          None if counts is None else counts[k], level)
            start = upper

    def _compare(self, lo: Bound, hi: Bound, fp: bytes, theirs: int | None, level: int) -> None:
        i, j = self.snapshot.position(lo), self.snapshot.position(hi)
        if fp == self.snapshot.fingerprint(i, j) or fp == _EMPTY:
            return                      # same keys, or S holds none there: nothing to pull
        if j - i <= LEAF:
            self._have(lo, hi)
        elif theirs is not None and 4 * max(abs(theirs - (j - i)), 1) <= theirs \
                and sketch.cells_for(abs(theirs - (j - i))) <= sketch.MAX_CELLS:
            self.levels[(lo, hi)] = level
            self._sketch(lo, hi, i, j, abs(theirs - (j - i)))
        else:
            self._split(lo, hi, level)

    def _sketch(self, lo: Bound, hi: Bound, i: int, j: int, difference: int) -> None:
        """Ask with a sketch of our keys in [lo, hi), sized for `difference` missing keys (when
        counts are equal but fingerprints differ, a few swapped)."""
        salt = self.salt()
        cells = sketch.cells_for(max(difference, 2))
        built = sketch.Sketch.build(self.snapshot.keys[i:j], int.from_bytes(salt, "big"), cells)
        self.sketches += 1
        self.pending.append(["x", encode_bound(lo), encode_bound(hi), salt, built.encode()])

    def _their_keys(self, lo: Bound, hi: Bound, value: Any) -> None:
        theirs = decode_keys(value, LEAF)
        mine = self.snapshot.keys[self.snapshot.position(lo):self.snapshot.position(hi)]
        lacking = theirs[~np.isin(theirs, mine)]
        if lacking.size:
            self.pending.append(["w", encode_bound(lo), encode_bound(hi), encode_keys(lacking)])


def promised(replies: list[Any]) -> int:
    """How many records S said it sent with these replies."""
    return sum(r if type(r) is int else r[1] for r in replies
               if type(r) is int or (isinstance(r, list) and r and r[0] == "m"))


def reconcile(mine: Snapshot, theirs: Snapshot, v21: bool = True) -> tuple[np.ndarray, int]:
    """Run the whole exchange in-process (tests, docs): the keys `theirs` sends, and round trips."""
    requester = Requester(mine, v21)
    frame, sent = requester.first(), []
    while frame:
        replies, keys = answer(theirs, frame, v21=v21)
        sent.append(keys)
        requester.absorb(frame, replies)
        frame = requester.next_frame()
    return np.concatenate(sent), requester.rounds


class Index:
    """A store's keys kept sorted as records arrive: a sorted base plus unsorted recent additions,
    merged (not re-sorted) when a snapshot is taken. Not thread-safe: the store's lock guards it."""

    def __init__(self, ts: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """`ts`, `keys` and record `sizes` already sorted by (ts, id8), e.g. by the database."""
        self._snapshot = Snapshot.sorted(np.asarray(ts, np.int64), np.asarray(keys, np.uint64),
                                         np.asarray(sizes, np.int64))
        self._recent: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, ts: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Add the keys of newly stored records (each stored once)."""
        if len(keys):
            self._recent.append((np.asarray(ts, np.int64), np.asarray(keys, np.uint64),
                                 np.asarray(sizes, np.int64)))

    def snapshot(self) -> Snapshot:
        """The keys held now, sorted, with prefix sums."""
        if self._recent:
            base = self._snapshot
            new = Snapshot.build(*(np.concatenate(column) for column in zip(*self._recent)))
            at = _positions(base, new)
            self._snapshot = Snapshot.sorted(np.insert(base.ts, at, new.ts),
                                             np.insert(base.keys, at, new.keys),
                                             np.insert(base.sizes, at, new.sizes))
            self._recent = []
        return self._snapshot


def _positions(base: Snapshot, new: Snapshot) -> np.ndarray:
    """Insertion points of many sorted keys into `base` (vectorised; ties on ts resolved by id8)."""
    at = np.searchsorted(base.ts, new.ts, "left")
    right = np.searchsorted(base.ts, new.ts, "right")
    for k in np.nonzero(at != right)[0]:          # same ts as a held key: rare
        at[k] += np.searchsorted(base.keys[at[k]:right[k]], new.keys[k], "left")
    return at
