"""Offline quality measures of a run's samples, beside val_bpb (low loss alone can write nonsense).

All in [0, 1], computed on lower-cased words:

- `repetition`: per sample, the share of its word 4-grams that repeat an earlier one (seq-rep-4,
  Welleck et al. 2019), averaged over samples; high = loops.
- `distinct_1`, `distinct_2`: distinct words / words and distinct word pairs / pairs over all
  samples together (Li et al. 2016); low = a small, repetitive vocabulary.
- `ends_sentence`: the share of samples (prompt and continuation together) that end with `.`, `!`
  or `?` (a quote may follow), i.e. finished a paragraph instead of running into the length
  limit or stopping mid-sentence; a newline at once after a prompt that ends a sentence counts,
  a sample cut at the token or character limit does not, even when the cut falls after a `.`.
- `unknown_words`: the share of generated words never seen in the training split; high = invented words.

A measure with nothing to measure is left out, never 0: samples without a single 4-word run have
no `repetition`, without words no `distinct_*` nor `unknown_words` (a model that writes nothing
would otherwise score the best repetition and unknown-word rates, and the meta-analyst would
count it so). `ends_sentence` is there whenever there are samples.

The training split's word set is cached next to its token array (one pass over the decoded tokens).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memory.atomic import write_atomic

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
SENTENCE_END = re.compile(r"""[.!?]["')\]]*\s*$""")


def words(text: str) -> list[str]:
    """The lower-cased words of `text` (letters, with an inner apostrophe)."""
    return WORD.findall(text.lower())


def _ngrams(seq: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]


def repetition(texts: Iterable[str], n: int = 4) -> float | None:
    """Mean over samples of the share of word n-grams that repeat an earlier one (None: no
    sample has n words)."""
    rates = []
    for text in texts:
        grams = _ngrams(words(text), n)
        if grams:
            rates.append(1 - len(set(grams)) / len(grams))
    return sum(rates) / len(rates) if rates else None


def distinct(texts: Iterable[str], n: int) -> float | None:
    """Distinct word n-grams / all word n-grams, over every sample together (None: none)."""
    grams = [g for text in texts for g in _ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else None


def measure(texts: Sequence[str], vocabulary: set[str], prompts: Sequence[str] = (),
            ended: Sequence[bool] = ()) -> dict[str, float]:
    """Every measure of `texts` (the samples' generated parts) that is defined for them;
    `vocabulary`: the training words; `prompts`: what each text continues (where a sample ends
    is where its prompt ends when the model added nothing); `ended`: whether the model ended
    each text itself (default: all), as a text cut at a length limit did not finish a sentence
    wherever the cut fell."""
    generated = [w for text in texts for w in words(text)]
    unknown = sum(w not in vocabulary for w in generated) / len(generated) if generated else None
    whole = [p + t for p, t in zip(list(prompts) + [""] * len(texts), texts)]
    own = list(ended) + [True] * (len(texts) - len(ended))
    ends = sum(bool(SENTENCE_END.search(t)) and e for t, e in zip(whole, own)) / len(texts) \
        if texts else None
    values = {"repetition": repetition(texts), "distinct_1": distinct(texts, 1),
              "distinct_2": distinct(texts, 2), "ends_sentence": ends, "unknown_words": unknown}
    return {name: round(v, 6) for name, v in values.items() if v is not None}


def training_vocabulary(train_tokens: Path, tokenizer: Any) -> set[str]:
    """The words of the training split, from its token array; cached beside it as `.words.txt`."""
    cache = train_tokens.with_name(train_tokens.stem + ".words.txt")
    try:
        return set(cache.read_text().split("\n"))
    except OSError:
        pass
    vocab = _vocabulary(np.load(train_tokens), tokenizer)
    try:
        write_atomic(cache, "\n".join(sorted(vocab)))
    except OSError:                  # a read-only cache: compute again next time
        pass
    return vocab


def _vocabulary(tokens: np.ndarray, tokenizer: Any, chunk: int = 1 << 20) -> set[str]:
    vocab: set[str] = set()
    pieces, carry = tokenizer.vocab, b""
    for start in range(0, len(tokens), chunk):
        block = carry + b"".join(pieces[int(t)] for t in tokens[start:start + chunk])
        cut = max(block.rfind(b" "), block.rfind(b"\n")) + 1     # no word split across blocks
        block, carry = block[:cut], block[cut:]
        vocab.update(words(block.decode("utf-8", errors="replace")))
    vocab.update(words(carry.decode("utf-8", errors="replace")))
    return vocab
