"""Names that look like another name: which ones a listing must show with their hash or key.

A stranger names a track (or anything a person reads) freely, so it can pick a name that prints
like a trusted one: a Cyrillic "у" in "tinуstories-cpu", "rn" for "m", a fullwidth or
mathematical letter. Listings show a bare name only when no other name in the listing shares its
skeleton and it is plain ASCII; every other name carries its disambiguator (a track's hash, an
author's key tail), so the look-alike and the original never print the same.

The skeleton (a small rule, not Unicode's full TR39 table): NFKC (fullwidth, mathematical and
compatibility letters to their plain form), casefold, then the ASCII look-alikes folded
together: 0/o, 1/l/i/|, 5/s, rn/m, vv/w, cl/d, "_" and "." to "-". Any name still holding a
non-ASCII character after NFKC is tagged whatever its skeleton, since no short table catches every
script's look-alike of a Latin letter.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable

_FOLDS = (("rn", "m"), ("vv", "w"), ("cl", "d"), ("0", "o"), ("1", "l"), ("i", "l"), ("|", "l"),
          ("5", "s"), ("_", "-"), (".", "-"))


def skeleton(name: str) -> str:
    """`name` folded so that names that print alike fold to the same string (see the module)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    for a, b in _FOLDS:
        text = text.replace(a, b)
    return text


def plain(name: str) -> bool:
    """True when `name` is ASCII after NFKC (no other script's look-alike letter can hide in it)."""
    return unicodedata.normalize("NFKC", name).isascii()


def tagged(names: Iterable[str]) -> set[str]:
    """The names among `names` (distinct or not) that must be shown with their disambiguator:
    those not plain, and those whose skeleton another name (or another occurrence) shares."""
    names = list(names)
    shared = Counter(skeleton(n) for n in names)
    return {n for n in names if not plain(n) or shared[skeleton(n)] > 1}
