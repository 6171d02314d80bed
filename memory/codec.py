"""Sign, encode and decode records. Decoding either yields a valid `Record` or names why not.

Wire form: canonical msgpack `[payload, signature]`, where payload is the canonical msgpack map of
{v, kind, author, seq, ts, body} and signature is the author's Ed25519 signature over
`SIGNING_DOMAIN + payload`. The record id is blake2b-256 of the payload (the signed bytes), hex.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

import msgpack
import pydantic

from memory import canonical, crypto
from memory.records import BODIES, BODIES_BY_VERSION, SCHEMA_VERSION, Body, Record

MAX_RECORD_BYTES = 64 * 1024
# A record may be at most 2 minutes in our future: enough for volunteers' clocks (NTP keeps them within
# seconds), and a record stamped ahead can win a "newest per key" view (memory/views.py) only until
# our clock reaches its ts, so this also bounds how long it can pin such a view.
MAX_CLOCK_SKEW_MS = 2 * 60 * 1000
_WIRE = {"wire": True}     # validation context: floats must arrive as floats
_ENVELOPE_KEYS = frozenset({"v", "kind", "author", "seq", "ts", "body"})


class Reason(str, enum.Enum):
    """Why a record was refused; each is counted by the store."""

    OVERSIZE = "oversize"
    MALFORMED = "malformed"
    UNKNOWN_VERSION = "unknown_version"
    UNKNOWN_KIND = "unknown_kind"
    BAD_AUTHOR = "bad_author"
    SCHEMA = "schema"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_SIGNATURE = "bad_signature"


class Rejected(ValueError):
    """A record that must not be stored, with the reason."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def sign(keypair: crypto.Keypair, kind: str, seq: int, body: Body, ts: int | None = None) -> Record:
    """Make a signed record of `kind` with `body`, authored by `keypair`, as its `seq`-th record."""
    if kind not in BODIES or not isinstance(body, BODIES[kind]):
        raise TypeError(f"a {kind!r} record needs a {BODIES.get(kind, Body).__name__} body")
    if seq < 1:
        raise ValueError("seq starts at 1")
    data = body.model_dump(mode="python")
    envelope = {"v": SCHEMA_VERSION, "kind": kind, "author": keypair.peer_id, "seq": seq,
                "ts": now_ms() if ts is None else ts, "body": data}
    payload = canonical.pack(envelope)
    signature = keypair.sign(payload)
    raw = canonical.pack([payload, signature])
    return Record(id=canonical.digest_hex(payload), v=SCHEMA_VERSION, kind=kind,
                  author=keypair.peer_id, seq=seq, ts=envelope["ts"], body=body,
                  signature=signature, raw=raw, data=data)


def _split(raw: bytes) -> tuple[bytes, bytes, dict[str, Any]]:
    try:
        outer = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types; all mean "not our encoding"
        raise Rejected(Reason.MALFORMED, f"not msgpack: {str(exc)[:100]}") from exc
    if not (isinstance(outer, list) and len(outer) == 2
            and isinstance(outer[0], bytes) and isinstance(outer[1], bytes)):
        raise Rejected(Reason.MALFORMED, "expected [payload, signature]")
    if msgpack.packb(outer, use_bin_type=True) != raw:     # two byte strings: no maps to sort
        raise Rejected(Reason.MALFORMED, "outer array is not canonical")
    try:
        envelope = canonical.unpack(outer[0])
    except ValueError as exc:
        raise Rejected(Reason.MALFORMED, f"payload: {exc}") from exc
    if not isinstance(envelope, dict) or set(envelope) != _ENVELOPE_KEYS:
        raise Rejected(Reason.MALFORMED, "payload is not a record envelope")
    return outer[0], outer[1], envelope


def _check_envelope(envelope: dict[str, Any], now: int, author_key: bool = True) -> type[Body]:
    """The body model for the envelope's version and kind, after checking its fields; with
    `author_key`, also that the author is a peer id holding an Ed25519 key."""
    version, kind = envelope["v"], envelope["kind"]
    if type(version) is not int or version not in BODIES_BY_VERSION:
        raise Rejected(Reason.UNKNOWN_VERSION, f"schema version {version!r}")
    bodies = BODIES_BY_VERSION[version]
    if not isinstance(kind, str) or kind not in bodies:
        raise Rejected(Reason.UNKNOWN_KIND, f"kind {str(kind)[:40]!r}")
    if not isinstance(envelope["author"], str):
        raise Rejected(Reason.BAD_AUTHOR, "the author is not a string")
    try:
        if author_key:
            crypto.public_key_from_peer_id(envelope["author"])
    except crypto.BadPeerId as exc:
        raise Rejected(Reason.BAD_AUTHOR, str(exc)) from exc
    seq, ts = envelope["seq"], envelope["ts"]
    if type(seq) is not int or not 1 <= seq < 2**63:
        raise Rejected(Reason.SCHEMA, "seq must be an integer >= 1")
    if type(ts) is not int or not 0 <= ts < 2**53:
        raise Rejected(Reason.SCHEMA, "ts must be milliseconds since the epoch")
    if ts > now + MAX_CLOCK_SKEW_MS:
        raise Rejected(Reason.FUTURE_TIMESTAMP, f"ts {ts} is {(ts - now) // 1000} s ahead")
    return bodies[kind]


def _validate_body(model: type[Body], body: Any) -> Body:
    try:
        validated = model.model_validate(body, strict=True, context=_WIRE)
    except pydantic.ValidationError as exc:
        raise Rejected(Reason.SCHEMA, str(exc.errors()[0].get("msg", exc))[:200]) from exc
    # Extra keys are refused above, so a shorter map lacks a field a default filled in.
    if len(body) != len(model.model_fields):
        raise Rejected(Reason.SCHEMA, "a body field is missing")
    return validated


def peek_id(raw: bytes) -> str | None:
    """The id `raw` would have if valid (blake2b of its payload), without validating; None if unreadable.

    Lets the store skip the expensive checks for records it already holds.
    """
    try:
        outer = msgpack.unpackb(raw, raw=False)
    except Exception:  # noqa: BLE001 - any decoding failure means "no id"
        return None
    if isinstance(outer, list) and len(outer) == 2 and isinstance(outer[0], bytes):
        return canonical.digest_hex(outer[0])
    return None


def _checked(raw: bytes, now: int) -> tuple[bytes, bytes, dict[str, Any], Body]:
    """Every check but the signature's: payload, signature, envelope and validated body."""
    if len(raw) > MAX_RECORD_BYTES:
        raise Rejected(Reason.OVERSIZE, f"{len(raw)} bytes > {MAX_RECORD_BYTES}")
    payload, signature, envelope = _split(raw)
    model = _check_envelope(envelope, now)
    # The payload is canonical (checked by `canonical.unpack`), and strict wire validation neither
    # coerces nor fills defaults, so the body is exactly what its model writes: one fact, one id.
    return payload, signature, envelope, _validate_body(model, envelope["body"])


def parse_unsigned(raw: bytes, now: int) -> tuple[Record, bytes]:
    """Every check but the signature's; the returned record is not yet trusted."""
    payload, signature, envelope, body = _checked(raw, now)
    record = Record(id=canonical.digest_hex(payload), v=envelope["v"], kind=envelope["kind"],
                    author=envelope["author"], seq=envelope["seq"], ts=envelope["ts"], body=body,
                    signature=signature, raw=raw, data=envelope["body"])
    return record, payload


def decode(raw: bytes, now: int | None = None) -> Record:
    """Validate `raw` completely (size, encoding, version, kind, schema, time, signature)."""
    record, payload = parse_unsigned(raw, now_ms() if now is None else now)
    if not crypto.verify(record.author, payload, record.signature):
        raise Rejected(Reason.BAD_SIGNATURE)
    return record


def check(raw: bytes, now: int) -> None:
    """Every check `decode` makes, without building the record; raises `Rejected`."""
    checked_row(raw, now)


def checked_row(raw: bytes, now: int) -> Decoded:
    """Every check `decode` makes; what the store needs of the record (`Decoded`, here fully
    checked), without building the `Record`. Raises `Rejected`."""
    payload, signature, envelope, _body = _checked(raw, now)
    if not crypto.verify(envelope["author"], payload, signature):
        raise Rejected(Reason.BAD_SIGNATURE)
    return Decoded(id=canonical.digest_hex(payload), kind=envelope["kind"],
                   author=envelope["author"], seq=envelope["seq"], ts=envelope["ts"], raw=raw,
                   data=envelope["body"])


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the store needs of a record: id, envelope fields, plain body and raw bytes.

    Made by `read_envelope`, which checks only the envelope: until a full check (`decode`)
    has passed, nothing in it may be trusted; or by `checked_row`, after every check.
    """

    id: str
    kind: str
    author: str
    seq: int
    ts: int
    raw: bytes
    data: dict[str, Any]


def read_envelope(raw: bytes, now: int, record_id: str | None = None) -> Decoded | None:
    """The envelope and plain body of `raw`, checking only what reading them needs; None if unreadable.

    A subset of `decode`'s checks, so None always means `decode` would refuse it. Used where the
    full check runs elsewhere (a helper process) and this thread only prepares the rows.
    """
    if len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        payload, _signature = msgpack.unpackb(raw, raw=False)
        envelope = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        if type(envelope) is not dict or envelope.keys() != _ENVELOPE_KEYS:
            return None
        # the helper decodes the author's key when it checks the signature: not here again
        # (at 100,000 authors the key cache misses, and this thread is the ingest's bottleneck)
        _check_envelope(envelope, now, author_key=False)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not prepared here
        return None
    if type(envelope["body"]) is not dict:
        return None
    return Decoded(id=record_id or canonical.digest_hex(payload), kind=envelope["kind"],
                   author=envelope["author"], seq=envelope["seq"], ts=envelope["ts"], raw=raw,
                   data=envelope["body"])
