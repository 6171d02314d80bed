"""Test vectors for docs/vectors/ (written by `python -m swarm.docgen`, checked by the tests).

records.json: one record of each kind from the golden file (tests/golden/records-v1.swarm) with its
signing seed, envelope, canonical payload, signature, raw bytes and id; and records that must be
refused, each with the reason. sync.json: the 1.0.0 digest and `have` of the golden set, and a
2.1.0 reconciliation exchange between two small key sets, frame by frame.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import msgpack

TS = 1_790_000_000_000


def _golden(path: Path) -> list[Any]:
    from memory import codec, stream

    with open(path, "rb") as src:
        return [codec.decode(raw, now=2**52) for raw in stream.read(src)]


def _record(record: Any, seeds: dict[str, str]) -> dict[str, Any]:
    payload, signature = msgpack.unpackb(record.raw)
    return {"kind": record.kind, "author": record.author, "seed_hex": seeds.get(record.author),
            "envelope": record.envelope(), "payload_hex": payload.hex(),
            "signature_hex": signature.hex(), "raw_hex": record.raw.hex(), "id": record.id}


def record_vectors(golden: Path, seed: int) -> dict[str, Any]:
    """Valid records of every kind, and refused ones with their reasons."""
    from memory import synthetic
    from memory.crypto import SIGNING_DOMAIN

    keys = synthetic.keypairs(3, seed=seed)
    seeds = {k.peer_id: k.seed.hex() for k in keys}
    records, seen = [], set()
    for record in _golden(golden):
        if record.kind not in seen:
            seen.add(record.kind)
            records.append(_record(record, seeds))
    return {"signing_domain_hex": SIGNING_DOMAIN.hex(),
            "id": "blake2b-256 of the payload, lower-case hex",
            "records": records,
            "refused": refused(keys[2]) + [_wrong_config_hash(keys[2], _golden(golden))]}


def _signed(keypair: Any, payload: bytes) -> bytes:
    return msgpack.packb([payload, keypair.sign(payload)], use_bin_type=True)


def _hypothesis(keypair: Any, diff: dict[str, Any]) -> dict[str, Any]:
    return {"author": keypair.peer_id, "body": {"diff": diff, "rationale": "vector",
                                                "source": "human", "track": "tinystories-cpu:x"},
            "kind": "hypothesis", "seq": 1, "ts": TS, "v": 1}


def refused(keypair: Any) -> list[dict[str, Any]]:
    """Records a peer must refuse (signatures valid unless said otherwise), with the reason."""
    from memory import canonical

    good = canonical.pack(_hypothesis(keypair, {"\uff61": 1, "\U0001F600": 2}))
    js_order = msgpack.packb(_hypothesis(keypair, {"\U0001F600": 2, "\uff61": 1}),
                             use_bin_type=True)                 # keys in UTF-16 order
    long_int = good.replace(b"\xa3seq\x01", b"\xa3seq\xcc\x01")   # 1 as uint8: not shortest
    bad_sig = bytearray(_signed(keypair, good))
    bad_sig[-1] ^= 1
    cases = [
        ("the canonical form of the same record (accepted)", _signed(keypair, good), None),
        ("map keys sorted by UTF-16 code units (JavaScript's default sort), not by code point",
         _signed(keypair, js_order), "malformed"),
        ("an integer not in its shortest encoding (seq 1 as uint8)",
         _signed(keypair, long_int), "malformed"),
        ("payload and signature as msgpack str instead of bin",
         msgpack.packb([good, keypair.sign(good)], use_bin_type=False), "malformed"),
        ("the last signature byte flipped", bytes(bad_sig), "bad_signature"),
        ("a float field (`memory_gb`) sent as an integer", _float_as_int(keypair), "schema"),
    ]
    return [{"why": why, "raw_hex": raw.hex(), "reason": reason} for why, raw, reason in cases]


def _float_as_int(keypair: Any) -> bytes:
    from memory import canonical

    hardware = {"accelerator": "cpu", "cores": 2, "device_name": "cpu", "memory_gb": 24,
                "platform": "linux"}
    envelope = {"author": keypair.peer_id, "kind": "node", "seq": 1, "ts": TS, "v": 1,
                "body": {"addrs": [], "capabilities": [], "hardware": hardware, "name": "n",
                         "software": {}}}
    return _signed(keypair, canonical.pack(envelope))


def _wrong_config_hash(keypair: Any, golden: list[Any]) -> dict[str, Any]:
    """A v2 run whose `config_hash` is not the hash of its `config`: the one body check that is
    not in the JSON Schema (RECORDS.md, rules 7 and 9)."""
    from memory import canonical

    envelope = next(r for r in golden if r.kind == "run").envelope()
    envelope = {**envelope, "author": keypair.peer_id,
                "body": {**envelope["body"], "config_hash": "0" * 32}}
    return {"why": "a run whose config_hash is not the hash of its config",
            "raw_hex": _signed(keypair, canonical.pack(envelope)).hex(), "reason": "schema"}


# ---- sync ----

def _hexed(value: Any) -> Any:
    """A frame made JSON-readable: bytes as "hex:..." strings."""
    if isinstance(value, bytes):
        return "hex:" + value.hex()
    if isinstance(value, list):
        return [_hexed(v) for v in value]
    if isinstance(value, dict):
        return {k: _hexed(v) for k, v in value.items()}
    return value


def vector_keys() -> tuple[list[list[int]], list[list[int]]]:
    """Two key sets: S holds 100 keys (pairs share a ts, so bounds need id prefixes); R lacks 3."""
    s_keys = [[TS + i // 2, int.from_bytes(hashlib.blake2b(bytes([i]), digest_size=8).digest(),
                                           "big")] for i in range(100)]
    return s_keys, [k for i, k in enumerate(s_keys) if i not in (3, 50, 97)]


def exchange(mine: Any, theirs: Any) -> list[dict[str, Any]]:
    """The frames of a pull by the holder of `mine` from the holder of `theirs`, round by round."""
    from memory.reconcile import Requester, answer

    requester, rounds = Requester(mine), []
    frame = requester.first()
    while frame:
        replies, keys = answer(theirs, frame)
        rounds.append({"requests": _hexed(frame), "requests_msgpack_hex": msgpack.packb(
                           frame, use_bin_type=True).hex(),
                       "replies": _hexed(replies), "replies_msgpack_hex": msgpack.packb(
                           replies, use_bin_type=True).hex(),
                       "records_sent_id8": [f"{int(k):016x}" for k in keys]})
        requester.absorb(frame, replies)
        frame = requester.next_frame()
    return rounds


def sync_vectors(golden: Path) -> dict[str, Any]:
    """The 1.0.0 digest and have of the golden set; a 2.1.0 exchange of two small key sets."""
    from memory.reconcile import Snapshot
    from memory.store import Store

    with Store(":memory:", helpers=0) as store:
        store.ingest(r.raw for r in _golden(golden))
        digest, have = store.digest().hex(), store.have()
        held = store.reconcile_snapshot()
    s_keys, r_keys = vector_keys()
    theirs = Snapshot.build([t for t, _ in s_keys], [k for _, k in s_keys])
    mine = Snapshot.build([t for t, _ in r_keys], [k for _, k in r_keys])
    return {"golden_set": {"digest_v1_hex": digest, "have_v1": have,
                           "fingerprint_v2_hex": held.fingerprint(0, len(held)).hex(),
                           "records": len(held)},
            "reconcile_v2": {"s_keys": [[t, f"{k:016x}"] for t, k in s_keys],
                             "r_keys": [[t, f"{k:016x}"] for t, k in r_keys],
                             "rounds": exchange(mine, theirs)},
            "sketch_v2": sketch_vector(s_keys, r_keys)}


SKETCH_SALT = bytes.fromhex("0123456789abcdef")


def sketch_vector(s_keys: list[list[int]], r_keys: list[list[int]]) -> dict[str, Any]:
    """R's and S's sketches of the id8s above (salt fixed, sized for their count difference) and
    the difference S decodes from them: what a `"x"` request and its answer rest on."""
    import numpy as np

    from memory.sketch import Sketch, cells_for, difference

    salt, cells = int.from_bytes(SKETCH_SALT, "big"), cells_for(len(s_keys) - len(r_keys))
    r_sketch = Sketch.build(np.array([k for _, k in r_keys], np.uint64), salt, cells)
    s_sketch = Sketch.build(np.array([k for _, k in s_keys], np.uint64), salt, cells)
    found = difference(s_sketch, r_sketch, salt)
    assert found is not None, "the vector's sketch must decode"
    return {"salt_hex": SKETCH_SALT.hex(), "cells": cells,
            "r_sketch_hex": r_sketch.encode().hex(), "s_sketch_hex": s_sketch.encode().hex(),
            "s_holds_r_lacks": sorted(f"{k:016x}" for k in found[0]),
            "r_holds_s_lacks": sorted(f"{k:016x}" for k in found[1])}
