"""Byte-level BPE, trained deterministically: the same text and vocab size give the same merges.

Text is split into words (GPT-2 style pre-tokenisation), each word is a sequence of bytes, and BPE
merges the most frequent adjacent pair until the vocab is full; ties go to the smallest pair, so
the result never depends on dict order or on the machine. `vocab_size == 256` is plain bytes.
"""
from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

ALGORITHM = "bpe-bytes-v1"   # part of every tokenizer's identity: bump it when the output changes
# contractions, letter runs, digit runs, other-symbol runs, each with one optional leading space
WORD = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")

Pair = tuple[int, int]


def _pairs(seq: list[int]) -> Iterable[Pair]:
    return zip(seq, seq[1:])


def _merge(seq: list[int], pair: Pair, new: int) -> list[int]:
    out, i, n = [], 0, len(seq)
    while i < n:
        if i + 1 < n and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


class _PairCounts:
    """Pair counts over weighted words, with a lazy max-heap (ties: smallest pair first)."""

    def __init__(self, words: list[list[int]], weights: list[int]) -> None:
        self.words, self.weights = words, weights
        self.count: Counter[Pair] = Counter()
        self.where: dict[Pair, set[int]] = defaultdict(set)
        for idx, (seq, w) in enumerate(zip(words, weights)):
            self._add(idx, seq, w)
        self.heap = [(-c, p) for p, c in self.count.items()]
        heapq.heapify(self.heap)

    def _add(self, idx: int, seq: list[int], sign_weight: int) -> set[Pair]:
        touched = set()
        for pair in _pairs(seq):
            self.count[pair] += sign_weight
            self.where[pair].add(idx)
            touched.add(pair)
        return touched

    def best(self) -> Pair | None:
        """The most frequent pair still present, or None when nothing can merge."""
        while self.heap:
            neg, pair = self.heap[0]
            if self.count.get(pair, 0) == -neg and -neg > 0:
                return pair
            heapq.heappop(self.heap)      # stale entry: its count changed since it was pushed
        return None

    def apply(self, pair: Pair, new: int) -> None:
        """Merge `pair` into token `new` in every word that holds it, updating the counts."""
        touched: set[Pair] = set()
        for idx in sorted(self.where.pop(pair)):
            seq, w = self.words[idx], self.weights[idx]
            merged = _merge(seq, pair, new)
            if merged == seq:
                continue
            touched |= self._add(idx, seq, -w)
            touched |= self._add(idx, merged, w)
            self.words[idx] = merged
        self.count.pop(pair, None)
        for p in sorted(touched - {pair}):
            if self.count[p] > 0:
                heapq.heappush(self.heap, (-self.count[p], p))


class Tokenizer:
    """A trained byte-level BPE: `encode`, `decode`, and the byte length of every token."""

    def __init__(self, merges: list[Pair]) -> None:
        self.merges = [tuple(m) for m in merges]
        self.ranks = {pair: 256 + i for i, pair in enumerate(self.merges)}
        self.vocab = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        """Number of token ids."""
        return len(self.vocab)

    def token_bytes(self) -> np.ndarray:
        """Bytes each token stands for (int32, indexed by id): what val_bpb divides by."""
        return np.array([len(v) for v in self.vocab], dtype=np.int32)

    def _encode_word(self, word: str) -> list[int]:
        seq = list(word.encode("utf-8"))
        while len(seq) > 1:
            rank, pair = min((self.ranks.get(p, 1 << 30), p) for p in _pairs(seq))
            if rank == 1 << 30:
                break
            seq = _merge(seq, pair, rank)
        return seq

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` (uint16 when the vocab allows, else int32)."""
        ids: list[int] = []
        cache = self._cache
        for word in WORD.findall(text):
            toks = cache.get(word)
            if toks is None:
                toks = cache[word] = self._encode_word(word)
            ids.extend(toks)
        dtype = np.uint16 if self.vocab_size <= 65536 else np.int32
        return np.asarray(ids, dtype=dtype)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` (invalid UTF-8 shown as U+FFFD)."""
        return b"".join(self.vocab[int(i)] for i in ids).decode("utf-8", errors="replace")

    def save(self, path: Path) -> None:
        """Write the merges as JSON (atomically)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"algorithm": ALGORITHM, "merges": self.merges}))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Read a tokenizer written by `save`."""
        data = json.loads(path.read_text())
        if data.get("algorithm") != ALGORITHM:
            raise ValueError(f"{path}: tokenizer algorithm {data.get('algorithm')!r} != {ALGORITHM}")
        return cls([tuple(m) for m in data["merges"]])


def train_bpe(text: str, vocab_size: int,
              progress: Callable[[int, int], None] | None = None) -> Tokenizer:
    """Learn `vocab_size - 256` merges from `text`; deterministic for a given text and size."""
    if not 256 <= vocab_size <= 65536:
        raise ValueError(f"vocab_size must be in [256, 65536], got {vocab_size}")
    counts = Counter(WORD.findall(text))
    words = [list(w.encode("utf-8")) for w in counts]
    pairs = _PairCounts(words, list(counts.values()))
    merges: list[Pair] = []
    target = vocab_size - 256
    while len(merges) < target:
        pair = pairs.best()
        if pair is None:
            break                      # every word is one token: the text allows no more merges
        pairs.apply(pair, 256 + len(merges))
        merges.append(pair)
        if progress and len(merges) % 64 == 0:
            progress(len(merges), target)
    return Tokenizer(merges)
