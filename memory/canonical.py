"""Canonical msgpack: one byte string per value, so hashes and signatures agree everywhere.

Rules: maps have string keys in sorted order, integers take their shortest form (msgpack does this),
floats are always float64 and finite, tuples are written as arrays. `unpack` refuses anything that
`pack` would not have produced, which is what lets a content id name exactly one record.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import msgpack

MAX_DEPTH = 16


class NonCanonical(ValueError):
    """The bytes decode, but are not the canonical encoding of what they hold."""


_PLAIN = frozenset({bool, int, str, bytes, type(None)})


def _leaf(value: Any, kind: type, depth: int) -> Any:
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("non-finite floats have no canonical form")
        return value
    return _normalise(value, depth)


def _normalise(value: Any, depth: int = 0) -> Any:
    # Leaves are handled inline by the container loops below: this runs for every value of
    # every record the store ingests, and Python calls are the cost.
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if kind is dict or (kind not in _PLAIN and isinstance(value, Mapping)):
        out = {}
        for key in _sorted_keys(value):
            item = value[key]
            item_kind = type(item)
            out[key] = item if item_kind in _PLAIN else _leaf(item, item_kind, depth + 1)
        return out
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else _leaf(v, type(v), depth + 1) for v in value]
    if kind in _PLAIN:
        return value
    if kind is float:
        return _leaf(value, kind, depth)
    for base in (bool, int, float, str, bytes):   # subclasses, e.g. str enums: write the base value
        if isinstance(value, base):
            # str() of a str enum is "Cls.NAME"; str.__str__ gives the value itself
            plain = str.__str__(value) if base is str else base(value)
            return _normalise(plain, depth)
    raise TypeError(f"cannot encode {kind.__name__}")


def _sorted_keys(value: Mapping[Any, Any]) -> list[str]:
    # Sorting mixed key types raises; a sorted list of one type is all str iff its first is.
    try:
        keys = sorted(value)
    except TypeError:
        keys = [None]
    if keys and not isinstance(keys[0], str):
        bad = next(k for k in value if not isinstance(k, str))
        raise TypeError(f"map keys must be str, got {type(bad).__name__}")
    return keys


def pack(value: Any) -> bytes:
    """Encode `value` canonically (sorted map keys, float64, no NaN)."""
    return msgpack.packb(_normalise(value), use_bin_type=True, use_single_float=False)


def _keys_sorted(value: Any, depth: int = 0) -> bool:
    """True if every map inside `value` has string keys in sorted order (containers only walked)."""
    # A plain loop, not all(<generator>): this runs on every container of every record ingested.
    if depth > MAX_DEPTH:
        return False
    if type(value) is dict:
        keys = [*value]
        if keys:
            if type(keys[0]) is not str:   # sorted and of one type: all str iff the first is
                return False
            try:
                if keys != sorted(keys):
                    return False
            except TypeError:              # str mixed with bytes keys
                return False
        children: Any = value.values()
    else:
        children = value
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and not _keys_sorted(child, depth + 1):
            return False
    return True


def unpack(data: bytes) -> Any:
    """Decode canonical bytes; raise `NonCanonical` (or ValueError) for anything else.

    Re-packing the decoded value in its wire order (in C) reproduces `data` exactly iff every
    integer, float and length was written minimally, floats are float64 and no map key repeats;
    a walk over the containers then checks that map keys are sorted strings. Non-finite floats
    pass both checks: validators refuse them.
    """
    try:
        # unpackb bounds every array/map/str length by len(data), so a hostile header cannot
        # make it allocate more than the input's size.
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises many types; all mean "not our encoding"
        raise ValueError(f"not msgpack: {str(exc)[:100]}") from exc
    if msgpack.packb(value, use_bin_type=True, use_single_float=False) != data:
        raise NonCanonical("bytes are not in canonical form")
    if not _keys_sorted(value):
        raise NonCanonical("map keys must be sorted strings")
    return value


def digest_hex(data: bytes, size: int = 32) -> str:
    """blake2b of `data`, hex, `size` bytes long."""
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    """The name of a configuration: blake2b-128 of its canonical encoding (32 hex chars).

    Two configs with the same knobs and values (in any order) have the same hash; `1` and `1.0`
    differ, so callers normalise values through their typed model before hashing.
    """
    return digest_hex(pack(dict(config)), 16)


def config_hash_canonical(config: Mapping[str, Any]) -> str:
    """`config_hash` of a config already in canonical form (as read from canonical bytes).

    Skips the normalising walk. A config not in canonical form (keys unsorted, say) gets a hash
    that `config_hash` would not give, so misuse can only make a record fail its check.
    """
    return digest_hex(msgpack.packb(config, use_bin_type=True, use_single_float=False), 16)
