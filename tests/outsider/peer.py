"""An independent swarm peer written from the documentation alone.

It exists to prove that docs/PROTOCOL.md, docs/RECORDS.md, docs/schema/ and docs/vectors/ are
complete enough for an outsider to build a peer: it never imports the `swarm` package (a test
checks this), only py-libp2p, PyNaCl and msgpack, and everything swarm-specific here (the record
encoding, the signature, the peer id, the sync frames, fingerprints, the blob protocol) was
written from those documents.

What it does (each step is an async function over a running py-libp2p host):

- `Identity`: an Ed25519 seed -> PyNaCl signing key, libp2p key pair and peer id (RECORDS.md rule 8).
- `encode_record` / `check_record`: canonical msgpack, domain-separated Ed25519, id, the kind's
  JSON Schema from docs/schema (RECORDS.md, "Rules for writing a peer").
- `pull`: a requester (R) of `/swarm/sync/2.1.0` (PROTOCOL.md, "Sync"), with fingerprints, splits,
  have/want and paging; every record received is checked here before it is kept.
- `publish_gossip`: one record on the gossip topic, GossipSub 1.1 with StrictSign and the
  documented message id.
- `fetch_blob`: `/swarm/blob/1.0.0`, chunk by chunk, each chunk and the whole checked.
- `send_malformed_sync`: a frame that is not msgpack, on the sync protocol.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

DOCS = Path(__file__).resolve().parents[2] / "docs"

# docs/RECORDS.md
SIGNING_DOMAIN = b"swarm/record/v1\x00"
MAX_RECORD_BYTES = 64 * 1024
MAX_CLOCK_SKEW_MS = 2 * 60 * 1000
ENVELOPE_KEYS = {"author", "body", "kind", "seq", "ts", "v"}
PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])

# docs/PROTOCOL.md
SYNC_PROTOCOL = "/swarm/sync/2.1.0"
BLOB_PROTOCOL = "/swarm/blob/1.0.0"
GOSSIP_PROTOCOL = "/meshsub/1.1.0"
TOP = 2**53  # the highest bound (2^53, 0)
LEAF_KEYS = 16
ROUND_BYTES = 8 * 1024 * 1024
FRAME_LIMIT = 1024 * 1024  # any frame but a "have" of 1.0.0
MAX_REQUESTS = 2048
FRAME_DEADLINE_S = 15.0


class Refused(ValueError):
    """A record this peer refuses; `reason` is the docs' rejection reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ProtocolError(RuntimeError):
    """The remote side broke the documented protocol."""


# ---------------------------------------------------------------- base58 and peer ids

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    """Bitcoin base58 (base58btc), leading zero bytes as '1'."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`; ValueError on a character outside the alphabet."""
    n = 0
    for ch in text:
        n = n * 58 + _B58.index(ch)
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def peer_id_of(public_key: bytes) -> str:
    """The libp2p peer id of an Ed25519 public key (RECORDS.md, rule 8)."""
    return b58encode(PEER_ID_PREFIX + public_key)


def public_key_of(peer_id: str) -> bytes:
    """The Ed25519 public key inside a peer id; Refused('bad_author') if it holds none."""
    try:
        raw = b58decode(peer_id)
    except ValueError as err:
        raise Refused("bad_author", "not base58") from err
    if len(raw) != 38 or not raw.startswith(PEER_ID_PREFIX):
        raise Refused("bad_author", "not an Ed25519 identity peer id")
    return raw[len(PEER_ID_PREFIX):]


@dataclass
class Identity:
    """This peer's key: one Ed25519 seed signs records and is its libp2p identity."""

    seed: bytes

    @classmethod
    def fresh(cls) -> Identity:
        return cls(bytes(SigningKey.generate()))

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def peer_id(self) -> str:
        return peer_id_of(bytes(self.signing_key.verify_key))

    def key_pair(self):  # libp2p KeyPair
        return create_new_key_pair(self.seed)


# ---------------------------------------------------------------- canonical msgpack


def _canonical(obj: Any) -> Any:
    """`obj` with every map's keys sorted by code point; refuses what has no canonical form."""
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise Refused("malformed", "a map key that is not a str")
        return {k: _canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        raise Refused("malformed", "a float that is not finite")
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    raise Refused("malformed", f"no msgpack form for {type(obj).__name__}")


def pack(obj: Any) -> bytes:
    """Canonical msgpack: sorted keys, shortest headers, float64, str for text, bin for bytes."""
    # msgpack-python already writes shortest integer/length headers and float64 floats.
    return msgpack.packb(_canonical(obj), use_bin_type=True, use_single_float=False)


def unpack(data: bytes) -> Any:
    """Strict msgpack decode: one object, str keys, no ext types."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                               ext_hook=_no_ext)
    except Refused:
        raise
    except Exception as err:  # msgpack raises several types for bad bytes
        raise Refused("malformed", f"not msgpack: {err}") from err


def _no_ext(code: int, data: bytes) -> Any:
    raise Refused("malformed", "msgpack ext type")


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """A checked record: its raw bytes, id and envelope."""

    raw: bytes
    id: str
    envelope: dict

    @property
    def ts(self) -> int:
        return self.envelope["ts"]

    @property
    def id8(self) -> int:
        return int(self.id[:16], 16)

    @property
    def key(self) -> tuple[int, int]:
        return (self.ts, self.id8)


def record_id(payload: bytes) -> str:
    """blake2b-256 of the payload, lower-case hex."""
    return hashlib.blake2b(payload, digest_size=32).hexdigest()


def encode_record(identity: Identity, kind: str, body: dict, seq: int,
                  ts: int | None = None, v: int = 2) -> bytes:
    """Sign `body` as `identity`'s record number `seq`; returns the raw record."""
    envelope = {"v": v, "kind": kind, "author": identity.peer_id, "seq": seq,
                "ts": int(time.time() * 1000) if ts is None else ts, "body": body}
    payload = pack(envelope)
    signature = identity.signing_key.sign(SIGNING_DOMAIN + payload).signature
    raw = pack([payload, signature])
    if len(raw) > MAX_RECORD_BYTES:
        raise Refused("oversize", f"{len(raw)} bytes")
    return raw


def _schema(kind: str, v: int) -> dict:
    """docs/schema/<kind>.json; for v 1, the same less what v2 added (RECORDS.md, "Versions")."""
    if (kind, v) not in _SCHEMAS:
        schema = json.loads((DOCS / "schema" / f"{kind}.json").read_text())
        schema["properties"]["v"] = {"const": v}
        body = schema["properties"]["body"]
        if v == 1 and kind == "run":
            for name in V2_RUN_FIELDS:
                body["properties"].pop(name)
                body["required"].remove(name)
        _SCHEMAS[(kind, v)] = schema
    return _SCHEMAS[(kind, v)]


_SCHEMAS: dict[tuple[str, int], dict] = {}
V2_RUN_FIELDS = ("curve", "samples", "quality")
_KINDS = set(json.loads((DOCS / "schema" / "record.json").read_text())["properties"]["kind"]["enum"])


def check_record(raw: bytes, now_ms: int | None = None) -> Record:
    """Every check of docs/RECORDS.md, in the order of its rejection reasons."""
    if len(raw) > MAX_RECORD_BYTES:
        raise Refused("oversize", f"{len(raw)} bytes")
    outer = unpack(raw)
    if not (isinstance(outer, list) and len(outer) == 2
            and all(isinstance(x, bytes) for x in outer)):
        raise Refused("malformed", "not [payload bin, signature bin]")
    payload, signature = outer
    if pack(outer) != raw:
        raise Refused("malformed", "outer array not canonical")
    env = unpack(payload)
    if not isinstance(env, dict):
        raise Refused("malformed", "payload not a map")
    if pack(env) != payload:
        raise Refused("malformed", "payload not canonical")
    if set(env) != ENVELOPE_KEYS:
        raise Refused("malformed", f"envelope keys {sorted(env)}")
    if env["v"] not in (1, 2) or isinstance(env["v"], bool):
        raise Refused("unknown_version", repr(env["v"]))
    if env["kind"] not in _KINDS or (env["v"] == 1 and env["kind"] == "judgement"):
        raise Refused("unknown_kind", repr(env["kind"]))
    author = env["author"]
    if not isinstance(author, str):
        raise Refused("bad_author", "author not a str")
    key = public_key_of(author)
    schema = _schema(env["kind"], env["v"])
    for name in ("seq", "ts"):
        problem = validate(env[name], schema["properties"][name], name)
        if problem:
            raise Refused("schema", problem)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if env["ts"] > now + MAX_CLOCK_SKEW_MS:
        raise Refused("future_timestamp", str(env["ts"]))
    problem = validate(env, schema, "")
    if problem:
        raise Refused("schema", problem)
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise Refused("bad_signature", "not 64 bytes")
    try:
        VerifyKey(key).verify(SIGNING_DOMAIN + payload, signature)
    except BadSignatureError as err:
        raise Refused("bad_signature") from err
    return Record(raw, record_id(payload), env)


# A small JSON Schema checker, enough for docs/schema (draft 2020-12 keywords used there), with
# RECORDS.md's msgpack rules: "number" must be a float on the wire, bool is never an integer.
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, float),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def validate(value: Any, schema: dict, path: str, root: dict | None = None) -> str | None:
    """The first way `value` breaks `schema` (a path and a word), or None."""
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return validate(value, root["$defs"][name], path, root)
    if "anyOf" in schema:
        if all(validate(value, s, path, root) for s in schema["anyOf"]):
            return f"{path}: matches none of anyOf"
    if "type" in schema and not _TYPES[schema["type"]](value):
        return f"{path}: not {schema['type']}"
    if "const" in schema and (value != schema["const"] or type(value) is not type(schema["const"])):
        return f"{path}: not {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: not one of {schema['enum']}"
    problem = _check_bounds(value, schema, path)
    if problem:
        return problem
    if isinstance(value, dict):
        return _check_object(value, schema, path, root)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: too many items"
        for i, item in enumerate(value):
            problem = validate(item, schema.get("items", {}), f"{path}[{i}]", root)
            if problem:
                return problem
    return None


def _check_bounds(value: Any, schema: dict, path: str) -> str | None:
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            return f"{path}: length"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return f"{path}: pattern"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: below minimum"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: above maximum"
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return f"{path}: not below exclusiveMaximum"
    return None


def _check_object(value: dict, schema: dict, path: str, root: dict) -> str | None:
    props = schema.get("properties", {})
    missing = set(schema.get("required", [])) - set(value)
    if missing:
        return f"{path}: missing {sorted(missing)}"
    if len(value) > schema.get("maxProperties", len(value)):
        return f"{path}: too many properties"
    if len(value) < schema.get("minProperties", 0):
        return f"{path}: too few properties"
    extra = schema.get("additionalProperties", True)
    for k, v in value.items():
        if "propertyNames" in schema:
            problem = validate(k, schema["propertyNames"], f"{path}.{k}", root)
            if problem:
                return problem
        if k in props:
            problem = validate(v, props[k], f"{path}.{k}", root)
        elif extra is False:
            problem = f"{path}: extra field {k}"
        elif isinstance(extra, dict):
            problem = validate(v, extra, f"{path}.{k}", root)
        else:
            problem = None
        if problem:
            return problem
    return None


# ---------------------------------------------------------------- frames


def frame(obj: Any) -> bytes:
    """A 4-byte big-endian length and that many bytes of msgpack."""
    data = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(data)) + data


async def read_exactly(stream, n: int) -> bytes:
    """`n` bytes from `stream`; ProtocolError if it ends first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            raise ProtocolError("stream ended mid-frame")
        buf += chunk
    return bytes(buf)


async def read_frame(stream, limit: int = FRAME_LIMIT, deadline: float = FRAME_DEADLINE_S) -> Any:
    """One frame, refused before reading when its announced length is over `limit`."""
    with trio.fail_after(deadline):
        (length,) = struct.unpack(">I", await read_exactly(stream, 4))
        if length > limit:
            raise ProtocolError(f"frame of {length} bytes announced")
        return msgpack.unpackb(await read_exactly(stream, length), raw=False)


# ---------------------------------------------------------------- sketches (sync 2.1.0)

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


# ---------------------------------------------------------------- sync 2.1.0 (requester)

Key = tuple[int, int]  # (ts, id8)


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


@dataclass
class Memory:
    """What this peer holds: checked records by id, and their sorted keys."""

    records: dict[str, Record] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    def add(self, raw: bytes) -> Record | None:
        """Check and keep `raw`; a refused record is counted by reason, never kept."""
        try:
            rec = check_record(raw)
        except Refused as err:
            self.refused[err.reason] = self.refused.get(err.reason, 0) + 1
            return None
        self.records[rec.id] = rec
        return rec

    def in_range(self, lo: Key, hi: Key) -> list[Key]:
        return sorted(r.key for r in self.records.values() if lo <= r.key < hi)


@dataclass
class PullStats:
    """What one pull did."""

    rounds: int = 0
    received: int = 0
    new: int = 0
    requests: list[list] = field(default_factory=list)  # every request sent, by round
    answers: list[Any] = field(default_factory=list)


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


async def pull(host, peer: ID, network: str, mem: Memory) -> PullStats:
    """One sync 2.1.0 exchange as requester: learn what `peer` holds that `mem` lacks."""
    stats = PullStats()
    stream = await host.new_stream(peer, [SYNC_PROTOCOL])
    try:
        pending = [_ask(mem.in_range, (0, 0), (TOP, 0))]
        await stream.write(frame({"t": "open", "n": network, "q": pending}))
        while pending:
            stats.requests.append(pending)
            received_before = stats.received
            answers = await _read_round(stream, mem, stats)
            if answers is None:
                raise ProtocolError("other_network")
            if len(answers) != len(pending):
                raise ProtocolError(f"{len(answers)} answers to {len(pending)} requests")
            stats.answers.append(answers)
            promised = sum(_records_promised(a) for a in answers)
            if promised != stats.received - received_before:
                raise ProtocolError(f"{promised} records promised, "
                                    f"{stats.received - received_before} sent")
            follow = [r for q, a in zip(pending, answers)
                      for r in next_requests(mem.in_range, q, a)]
            pending = follow[:MAX_REQUESTS]
            stats.rounds += 1
            if pending:
                await stream.write(frame({"t": "q", "q": pending}))
        await stream.write(frame({"t": "done"}))
    finally:
        await stream.close()
    return stats


def _records_promised(answer: Any) -> int:
    """How many records an answer says S sent this round: a count, or `sent` of an "m"."""
    if isinstance(answer, int) and not isinstance(answer, bool):
        return answer
    if isinstance(answer, list) and answer and answer[0] == "m":
        return answer[1]
    return 0


async def _read_round(stream, mem: Memory, stats: PullStats) -> list | None:
    """Batches until the "a" frame; every record is checked as it arrives."""
    while True:
        msg = await read_frame(stream)
        t = msg.get("t") if isinstance(msg, dict) else None
        if t == "other_network":
            return None
        if t == "a":
            return msg["a"]
        if t != "batch":
            raise ProtocolError(f"frame {t!r} in a round")
        for raw in msg["r"]:
            stats.received += 1
            before = len(mem.records)
            mem.add(raw)
            stats.new += len(mem.records) - before


# ---------------------------------------------------------------- sync 2.1.0 (responder)

BATCH_BYTES = 256 * 1024
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


async def serve(stream, mem: Memory, network: str) -> int:
    """Answer one pull (S's side of sync 2.1.0) from `mem`; returns the records sent.

    Paging is left out: this peer's memory is far below a round's 8 MiB."""
    sent = 0
    opening = await read_frame(stream)
    if not isinstance(opening, dict) or opening.get("t") != "open":
        raise ProtocolError("no opening frame")
    if opening.get("n") != network:
        await stream.write(frame({"t": "other_network"}))
        return 0
    requests = opening.get("q")
    while True:
        if not isinstance(requests, list) or len(requests) > MAX_REQUESTS:
            raise ProtocolError("bad request list")
        replies, records = [], []
        for req in requests:
            reply, send = answer(mem, req)
            replies.append(reply)
            records += send
        for batch in _batches(records):
            await stream.write(frame({"t": "batch", "r": batch}))
        await stream.write(frame({"t": "a", "a": replies}))
        sent += len(records)
        msg = await read_frame(stream, deadline=120.0)
        if isinstance(msg, dict) and msg.get("t") == "done":
            return sent
        if not isinstance(msg, dict) or msg.get("t") != "q":
            raise ProtocolError("expected q or done")
        requests = msg.get("q")


def _batches(records: list[Record]) -> Iterable[list[bytes]]:
    batch, size = [], 0
    for rec in records:
        if batch and size + len(rec.raw) > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(rec.raw)
        size += len(rec.raw)
    if batch:
        yield batch


def serve_sync(host, mem: Memory, network: str, served: list[int]) -> None:
    """Serve /swarm/sync/2.1.0 from `mem`; each pull's record count is appended to `served`."""

    async def handler(stream) -> None:
        try:
            served.append(await serve(stream, mem, network))
        except (ProtocolError, StreamError, trio.TooSlowError):
            await stream.reset()
            return
        await stream.close()

    host.set_stream_handler(SYNC_PROTOCOL, handler)


# ---------------------------------------------------------------- gossip


def gossip_topic(network: str) -> str:
    return f"/swarm/{network}/records/1"


def message_id(msg) -> bytes:
    """blake2b-160 of the message data (the raw record), as every swarm node computes it."""
    return hashlib.blake2b(msg.data, digest_size=20).digest()


def make_pubsub(host) -> tuple[Pubsub, GossipSub]:
    """GossipSub pinned to /meshsub/1.1.0, D=6 (4..12), 1-s heartbeat, StrictSign."""
    router = GossipSub(protocols=[GOSSIP_PROTOCOL], degree=6, degree_low=4, degree_high=12,
                       heartbeat_interval=1)
    pubsub = Pubsub(host, router, strict_signing=True, msg_id_constructor=message_id)
    return pubsub, router


# ---------------------------------------------------------------- blob


async def fetch_blob(host, peer: ID, sha256_hex: str) -> bytes | None:
    """A whole blob by its sha256 over /swarm/blob/1.0.0; None when the peer does not hold it."""
    stream = await host.new_stream(peer, [BLOB_PROTOCOL])
    try:
        await stream.write(frame({"sha256": sha256_hex, "from": 0}))
        manifest = await read_frame(stream, deadline=30.0)
        if "error" in manifest:
            return None
        size, chunk, hashes = manifest["size"], manifest["chunk"], manifest["hashes"]
        if len(hashes) != -(-size // chunk):
            raise ProtocolError("manifest: chunk count does not match size")
        data = bytearray()
        while len(data) < size:
            msg = await read_frame(stream, deadline=30.0)
            i, d = msg["i"], msg["d"]
            if i != len(data) // chunk or hashlib.sha256(d).digest() != hashes[i]:
                raise ProtocolError(f"chunk {i} out of order or not as the manifest says")
            data += d
    finally:
        await stream.close()
    if hashlib.sha256(data).hexdigest() != sha256_hex:
        raise ProtocolError("blob does not hash to what was asked")
    return bytes(data)


# ---------------------------------------------------------------- hostile input


async def send_malformed_sync(host, peer: ID) -> str:
    """A sync opening frame whose body is not msgpack; returns how the stream ended."""
    stream = await host.new_stream(peer, [SYNC_PROTOCOL])
    junk = b"\xc1" * 16  # 0xc1 is never used by msgpack
    await stream.write(struct.pack(">I", len(junk)) + junk)
    try:
        with trio.fail_after(30):
            data = await stream.read(1)
        return "closed" if not data else "answered"
    except StreamError as err:
        return type(err).__name__
    finally:
        await stream.close()


# ---------------------------------------------------------------- running a host


async def connect(host, addr: str) -> ID:
    """Dial a node at its /ip4/.../tcp/.../p2p/ID multiaddr; returns its peer id."""
    info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
    await host.connect(info)
    return info.peer_id


def make_host(identity: Identity):
    """A py-libp2p host (TCP, Noise, Yamux) with this identity's key."""
    return new_host(key_pair=identity.key_pair(), muxer_preference="YAMUX")


async def run_with_host(identity: Identity, body: Callable, serve_from: Memory | None = None,
                        network: str = "main", served: list[int] | None = None) -> Any:
    """Start a host and pubsub on 127.0.0.1, run `await body(host, pubsub)`, stop everything.

    With `serve_from`, the host also answers sync pulls from that memory for `network`."""
    host = make_host(identity)
    if serve_from is not None:
        serve_sync(host, serve_from, network, served if served is not None else [])
    pubsub, router = make_pubsub(host)
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        async with background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            return await body(host, pubsub)
