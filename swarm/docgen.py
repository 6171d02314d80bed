"""Generate the machine-readable protocol docs: JSON Schemas, field tables, knobs, tracks, vectors.

    python -m swarm.docgen            # rewrite docs/schema/ and docs/vectors/
    python -m swarm.docgen --check    # exit 1 (naming the files) if any is out of date

Everything here is derived from the code (the pydantic record models, the knob config, the shipped
tracks, the codec, sync's reconciliation), so that an outsider can write a peer from docs alone and
the docs cannot drift: tests/memory/test_docgen.py fails when a checked-in file differs from what
this script writes. Rerun it after changing a record model, a knob or a track.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schema"
VECTOR_DIR = ROOT / "docs" / "vectors"
GOLDEN = ROOT / "tests" / "golden" / "records-v2.swarm"
GOLDEN_SEED = 2026                 # tests/golden/make_golden.py signs with synthetic.keypairs(3, 2026)
WIRE_RULES = (
    "Validated on the msgpack payload, not on JSON: ints in their shortest encoding, floats always "
    "float64 (3.0, never 3) and finite, text as str, byte strings as bin, map keys str and sorted "
    "by Unicode code point, no duplicate keys, no extra or missing fields.")
TRACK_NOTE = ("the track's id (`name:hash`, docs/schema/tracks.json), not its name: records naming "
              "a track by name are stored but no node works on them")


# ---- JSON Schemas ----

def envelope_schema(kind: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a record envelope of `kind` (None: any kind) around `body`."""
    from memory.codec import MAX_CLOCK_SKEW_MS
    from memory.records import KINDS, SCHEMA_VERSION

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"swarm/record/v{SCHEMA_VERSION}/{kind or 'record'}",
        "title": f"{kind or 'any'} record (schema version {SCHEMA_VERSION})",
        "$comment": WIRE_RULES,
        "type": "object", "additionalProperties": False,
        "required": ["author", "body", "kind", "seq", "ts", "v"],
        "properties": {
            "v": {"const": SCHEMA_VERSION},
            "kind": {"const": kind} if kind else {"enum": list(KINDS)},
            "author": {"type": "string", "pattern": "^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$",
                       "description": "the author's libp2p Ed25519 peer id"},
            "seq": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1,
                    "description": "the author's record counter: 1, 2, 3, ... kept across restarts"},
            "ts": {"type": "integer", "minimum": 0, "maximum": 2**53 - 1,
                   "description": f"ms since the epoch; at most {MAX_CLOCK_SKEW_MS} ms ahead of "
                                  "the receiver's clock"},
            "body": body,
        },
    }


def _describe_tracks(schema: Any) -> Any:
    """Add TRACK_NOTE to every `track` property (the models cannot say it without a description)."""
    if isinstance(schema, dict):
        for name, value in schema.items():
            if name == "properties" and isinstance(value, dict) and "track" in value:
                value["track"] = {**value["track"], "description": TRACK_NOTE}
            _describe_tracks(value)
    elif isinstance(schema, list):
        for item in schema:
            _describe_tracks(item)
    return schema


def schemas() -> dict[str, Any]:
    """{file name: JSON} for docs/schema/: one schema per kind, and the envelope of any kind."""
    from memory.records import BODIES

    out = {"record.json": envelope_schema(None, {"type": "object"})}
    for kind, model in BODIES.items():
        body = _standard(_describe_tracks(model.model_json_schema(mode="validation")))
        defs = body.pop("$defs", None)
        envelope = envelope_schema(kind, body)
        if defs:  # "#/$defs/X" resolves against the document's root, not the body
            envelope["$defs"] = defs
        out[f"{kind}.json"] = envelope
    return out


# pydantic writes a bound it cannot place in a standard keyword (e.g. on a dict's values) under its
# own name; JSON Schema validators ignore unknown keywords, so an outsider would read no bound.
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _standard(schema: Any) -> Any:
    """`schema` with pydantic's `ge`/`le`/`gt`/`lt` renamed to their JSON Schema keywords."""
    if isinstance(schema, dict):
        return {_BOUNDS.get(k, k) if not isinstance(v, (dict, list)) else k: _standard(v)
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_standard(item) for item in schema]
    return schema


# ---- field tables (docs/schema/FIELDS.md) ----

def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, bool]:
    """(type in words with its limits, nullable) of one JSON Schema property."""
    options = prop.get("anyOf", [prop])
    nullable = any(o.get("type") == "null" for o in options)
    words = [_words(o, defs) for o in options if o.get("type") != "null"]
    return " or ".join(words) or "null", nullable


def _words(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"object {schema['$ref'].rsplit('/', 1)[-1]}"
    if "enum" in schema or "const" in schema:
        return " / ".join(map(str, schema.get("enum", [schema.get("const")])))
    kind = schema.get("type", "any")
    limits = [f"{key} {schema[key]}" for key in ("minLength", "maxLength", "minimum",
                                                 "exclusiveMinimum", "maximum",
                                                 "exclusiveMaximum", "maxItems", "maxProperties",
                                                 "pattern") if key in schema]
    if kind == "array":
        kind = f"array of {_words(schema.get('items', {}), defs)}"
    elif kind == "object" and "additionalProperties" in schema:
        kind = f"map str -> {_type_of(schema['additionalProperties'], defs)[0]}"
        if "propertyNames" in schema:
            limits.append("keys " + _words({"type": "string", **schema["propertyNames"]}, defs))
    return f"{kind} ({', '.join(limits)})" if limits else kind


def _table(title: str, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    lines = [f"### {title}", "", "| field | type and limits | null? | meaning |",
             "| --- | --- | --- | --- |"]
    for name, prop in schema.get("properties", {}).items():
        words, nullable = _type_of(prop, defs)
        meaning = prop.get("description", "").replace("|", "/")
        lines.append(f"| `{name}` | {words.replace('|', '/')} | {'yes' if nullable else 'no'} "
                     f"| {meaning} |")
    return lines + [""]


def fields_markdown(generated: dict[str, Any]) -> str:
    """Every kind's body fields as tables (and the nested objects they use), from the schemas."""
    lines = ["# Record fields (generated by `python -m swarm.docgen`; do not edit)", "",
             WIRE_RULES, "", "Every field is required; `null?` says whether it may be null.", ""]
    nested: dict[str, Any] = {}
    for name, schema in generated.items():
        if name == "record.json":
            continue
        body = schema["properties"]["body"]
        nested.update(schema.get("$defs", {}))
        lines += _table(f"`{name[:-5]}`", body, nested)
    for name, schema in sorted(nested.items()):
        lines += _table(f"object {name}", schema, nested)
    return "\n".join(lines)


# ---- knobs and tracks ----

def knobs() -> list[dict[str, Any]]:
    """The knob names a hypothesis or run config may use, with type, range and default."""
    from node.harness.config import knob_table

    return knob_table()


def tracks() -> dict[str, Any]:
    """The shipped tracks: name -> id (null until the track's data is pinned)."""
    from node.harness.tracks import TRACKS

    return {name: (t.id if t.data.pinned else None) for name, t in TRACKS.items()}


def data_files() -> dict[str, Any]:
    """The pinned tracks' data files (what /swarm/blob/1.0.0 serves): name -> sha256 and size."""
    from node.harness.tracks import TRACKS

    return {name: {"data": t.data.name,
                   "train.txt": {"sha256": t.data.train_sha256, "bytes": t.data.train_bytes},
                   "valid.txt": {"sha256": t.data.valid_sha256, "bytes": t.data.valid_bytes}}
            for name, t in TRACKS.items() if t.data.pinned}


# ---- writing and checking ----

def documents() -> dict[Path, str]:
    """Every generated file and its text."""
    from swarm import docvectors

    generated = schemas()
    out = {SCHEMA_DIR / name: _json(value) for name, value in generated.items()}
    out[SCHEMA_DIR / "FIELDS.md"] = fields_markdown(generated) + "\n"
    out[SCHEMA_DIR / "knobs.json"] = _json(knobs())
    out[SCHEMA_DIR / "tracks.json"] = _json(tracks())
    out[SCHEMA_DIR / "data.json"] = _json(data_files())
    out[VECTOR_DIR / "records.json"] = _json(docvectors.record_vectors(GOLDEN, GOLDEN_SEED))
    out[VECTOR_DIR / "sync.json"] = _json(docvectors.sync_vectors(GOLDEN))
    return out


def _json(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def stale() -> list[Path]:
    """Generated files whose checked-in text differs from what the code gives now."""
    return [path for path, text in documents().items()
            if not path.exists() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str]) -> int:
    """Write the files (or, with --check, list the stale ones and return 1)."""
    if "--check" in argv:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path.relative_to(ROOT)} (run: python -m swarm.docgen)")
        return 1 if out_of_date else 0
    for path, text in documents().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
