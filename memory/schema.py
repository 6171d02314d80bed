"""Table layout of the store, derived from the record models so the two cannot drift apart.

`records` holds every accepted record (raw signed bytes included). Each kind also has an insert-only
typed table (`runs`, `claims`, ...) with the envelope columns and the body's fields as columns:
nested models are flattened into their fields, dicts and lists become JSON. Columns come from the
newest schema version; a field older versions lack (a v1 run's `curve`) is NULL in their rows, and
`ddl` adds such columns to a file made by an older version.
"""
from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

import pyarrow as pa

from memory.codec import Decoded
from memory.records import BODIES, BODIES_V1, Body, Record

Row = Record | Decoded     # what a table row is made from: a validated record, or its checked fields
TABLE_NAMES: dict[str, str] = {
    "node": "nodes", "role": "roles", "hypothesis": "hypotheses", "claim_lease": "claim_leases",
    "run": "runs", "claim": "claims", "verification": "verifications",
    "assessment": "assessments", "finding": "findings", "noise_floor": "noise_floors",
    "judgement": "judgements",
}
# Typed tables need no primary key: the store inserts a record into them only in the transaction
# that first inserts it into `records`, whose key is the id.
ENVELOPE_COLUMNS = [("id", "VARCHAR NOT NULL"), ("author", "VARCHAR NOT NULL"),
                    ("seq", "UBIGINT NOT NULL"), ("ts", "BIGINT NOT NULL")]
_ARROW = {"VARCHAR": pa.string(), "BIGINT": pa.int64(), "UBIGINT": pa.uint64(),
          "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "JSON": pa.string(), "BLOB": pa.binary()}


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


# json.dumps(v, sort_keys=True, separators=(",", ":")), minus the per-call set-up (a new C encoder
# and a circular-reference memo each time), which cost more than the encoding of a small config.
# Validated bodies hold no cycles. c_make_encoder is None where the C accelerator is missing.
_C_ENCODER = json.encoder.c_make_encoder
_JSON_CHUNKS = None if _C_ENCODER is None else _C_ENCODER(
    None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, False)


def to_json(value: Any) -> str:
    """`value` as canonical JSON text: sorted keys, no spaces, ASCII only."""
    if _JSON_CHUNKS is None:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "".join(_JSON_CHUNKS(value, 0))


@dataclass(frozen=True)
class Column:
    """One typed-table column: its SQL type and where it sits in the body's plain values."""

    name: str
    sql_type: str
    path: tuple[str, ...]
    newer: bool = False       # the field is absent from bodies of an older schema version

    def values(self, bodies: list[dict[str, Any]]) -> list[Any]:
        """This column's values from many bodies (`Record.data`); one comprehension per column,
        since this runs for every field of every record ingested."""
        if len(self.path) == 1:
            key = self.path[0]
            values = [b.get(key) for b in bodies] if self.newer else [b[key] for b in bodies]
        else:
            outer, key = self.path
            values = [b[outer][key] for b in bodies]
        if self.sql_type == "JSON":
            return [None if v is None else to_json(v) for v in values]
        return values


def _sql_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _sql_type(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _sql_type(args[0]) if len(args) == 1 else "JSON"
    if origin is Literal:
        return "VARCHAR"
    return {bool: "BOOLEAN", int: "BIGINT", float: "DOUBLE", str: "VARCHAR"}.get(annotation, "JSON")


def _columns(model: type[Body], prefix: tuple[str, ...] = ()) -> list[Column]:
    columns: list[Column] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Body):
            assert not prefix, "bodies nest models one level deep at most"
            columns += _columns(annotation, prefix + (name,))   # flatten nested models
            continue
        sql_type = _sql_type(annotation)
        columns.append(Column(name, sql_type, prefix + (name,)))
    names = [c.name for c in columns]
    assert len(names) == len(set(names)), f"flattening {model.__name__} repeats a column name"
    return columns


def _kind_columns(kind: str, model: type[Body]) -> list[Column]:
    old = BODIES_V1.get(kind)
    known = set() if old is None else {c.name for c in _columns(old)}
    return [Column(c.name, c.sql_type, c.path, newer=old is not None and c.name not in known)
            for c in _columns(model)]


BODY_COLUMNS: dict[str, list[Column]] = {kind: _kind_columns(kind, m) for kind, m in BODIES.items()}


def ddl() -> list[str]:
    """CREATE statements for every table (idempotent)."""
    statements = [
        "CREATE TABLE IF NOT EXISTS records (id VARCHAR PRIMARY KEY, author VARCHAR NOT NULL, "
        "seq UBIGINT NOT NULL, kind VARCHAR NOT NULL, ts BIGINT NOT NULL, id8 UBIGINT NOT NULL, "
        "size INTEGER NOT NULL, raw BLOB NOT NULL)",
        # (author, seq) pairs held under more than one id: the author equivocated.
        "CREATE TABLE IF NOT EXISTS equivocations (author VARCHAR NOT NULL, seq UBIGINT NOT NULL, "
        "PRIMARY KEY (author, seq))",
        "CREATE TABLE IF NOT EXISTS rejections (reason VARCHAR PRIMARY KEY, n BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    ]
    for kind, table in TABLE_NAMES.items():
        cols = [f"{n} {t}" for n, t in ENVELOPE_COLUMNS]
        cols += [f"{c.name} {c.sql_type}" for c in BODY_COLUMNS[kind]]
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)})")
        # a file written by an older version gains the newer fields (NULL in its old rows)
        statements += [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {c.name} {c.sql_type}"
                       for c in BODY_COLUMNS[kind] if c.newer]
    return statements


def records_table(records: list[Row]) -> pa.Table:
    """The `records` rows of `records` as an Arrow table."""
    return pa.table({
        "id": pa.array([r.id for r in records], pa.string()),
        "author": pa.array([r.author for r in records], pa.string()),
        "seq": pa.array([r.seq for r in records], pa.uint64()),
        "kind": pa.array([r.kind for r in records], pa.string()),
        "ts": pa.array([r.ts for r in records], pa.int64()),
        "id8": pa.array([int(r.id[:16], 16) for r in records], pa.uint64()),
        "size": pa.array([len(r.raw) for r in records], pa.int32()),
        "raw": pa.array([r.raw for r in records], pa.binary()),
    })


def tables(records: list[Row]) -> dict[str, pa.Table]:
    """Arrow tables for a batch: `records` and the typed table of each kind present."""
    by_kind: dict[str, list[Row]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record)
    out = {"records": records_table(records)}
    for kind, group in by_kind.items():
        out[TABLE_NAMES[kind]] = kind_table(kind, group)
    return out


def kind_table(kind: str, records: list[Row]) -> pa.Table:
    """The typed-table rows of `records` (all of `kind`) as an Arrow table."""
    data: dict[str, pa.Array] = {
        "id": pa.array([r.id for r in records], pa.string()),
        "author": pa.array([r.author for r in records], pa.string()),
        "seq": pa.array([r.seq for r in records], pa.uint64()),
        "ts": pa.array([r.ts for r in records], pa.int64()),
    }
    bodies = [r.data for r in records]
    for col in BODY_COLUMNS[kind]:
        data[col.name] = pa.array(col.values(bodies), _ARROW[col.sql_type])
    return pa.table(data)
