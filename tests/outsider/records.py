"""Records as docs/RECORDS.md describes them, written from the docs alone (no swarm import).

Identity and peer ids (rule 8), canonical msgpack (rules 1-2), signing and ids, every check a
receiver makes, in the order rule 9 gives, against docs/schema/<kind>.json with a small JSON
Schema checker; and `Memory`, the checked records a peer holds.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from libp2p.crypto.ed25519 import create_new_key_pair
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

DOCS = Path(__file__).resolve().parents[2] / "docs"

# docs/RECORDS.md
SIGNING_DOMAIN = b"swarm/record/v1\x00"
MAX_RECORD_BYTES = 64 * 1024
MAX_CLOCK_SKEW_MS = 2 * 60 * 1000
ENVELOPE_KEYS = {"author", "body", "kind", "seq", "ts", "v"}
PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
Key = tuple[int, int]  # a record's sync key: (ts, id8)


class Refused(ValueError):
    """A record this peer refuses; `reason` is the docs' rejection reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


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


def config_hash(config: dict) -> str:
    """blake2b-128 (hex) of the canonical msgpack of a config (RECORDS.md, rule 7)."""
    return hashlib.blake2b(pack(config), digest_size=16).hexdigest()


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
    if env["kind"] == "run" and env["body"]["config_hash"] != config_hash(env["body"]["config"]):
        raise Refused("schema", "config_hash is not the hash of config")  # rules 7 and 9
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
