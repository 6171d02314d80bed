"""docs/schema and docs/vectors: generated from the code (never stale), and true.

If the drift test fails after a change to a record model, a knob or a track, regenerate:
`python -m swarm.docgen` (and review the diff)."""
from __future__ import annotations

import json

import msgpack
import pytest

from memory import canonical, codec
from memory.crypto import Keypair
from memory.reconcile import Requester, Snapshot, answer
from swarm import docgen

VECTORS = docgen.VECTOR_DIR


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def test_generated_docs_match_the_code() -> None:
    assert [p.name for p in docgen.stale()] == [], "run: python -m swarm.docgen"


def test_record_vectors_decode_sign_and_hash_as_stated() -> None:
    vectors = _load("records.json")
    kinds = {v["kind"] for v in vectors["records"]}
    assert kinds == set(json.loads((docgen.SCHEMA_DIR / "record.json").read_text())
                        ["properties"]["kind"]["enum"])
    for v in vectors["records"]:
        record = codec.decode(bytes.fromhex(v["raw_hex"]), now=2**52)
        payload = bytes.fromhex(v["payload_hex"])
        assert record.id == v["id"] == canonical.digest_hex(payload)
        assert canonical.pack(v["envelope"]) == payload          # the JSON envelope is faithful
        assert Keypair(bytes.fromhex(v["seed_hex"])).sign(payload).hex() == v["signature_hex"]
        assert canonical.pack([payload, bytes.fromhex(v["signature_hex"])]).hex() == v["raw_hex"]


@pytest.mark.parametrize("case", _load("records.json")["refused"], ids=lambda c: c["why"][:40])
def test_refused_vectors_are_refused_for_the_stated_reason(case) -> None:
    raw = bytes.fromhex(case["raw_hex"])
    if case["reason"] is None:
        codec.decode(raw, now=2**52)
        return
    with pytest.raises(codec.Rejected) as refused:
        codec.decode(raw, now=2**52)
    assert refused.value.reason.value == case["reason"]


def test_reconciliation_vector_replays_frame_by_frame() -> None:
    vector = _load("sync.json")["reconcile_v2"]

    def snap(keys):
        return Snapshot.build([t for t, _ in keys], [int(k, 16) for _, k in keys])

    theirs, requester = snap(vector["s_keys"]), Requester(snap(vector["r_keys"]))
    frame, sent = requester.first(), []
    for expected in vector["rounds"]:
        assert msgpack.packb(frame).hex() == expected["requests_msgpack_hex"]
        replies, keys = answer(theirs, msgpack.unpackb(bytes.fromhex(
            expected["requests_msgpack_hex"])))
        assert msgpack.packb(replies).hex() == expected["replies_msgpack_hex"]
        sent += [f"{int(k):016x}" for k in keys]
        requester.absorb(frame, replies)
        frame = requester.next_frame()
    assert frame == []
    missing = {k for _, k in vector["s_keys"]} - {k for _, k in vector["r_keys"]}
    assert set(sent) == missing and len(sent) == len(missing)


def _walk(schema, visit) -> None:
    if isinstance(schema, dict):
        visit(schema)
        for value in schema.values():
            _walk(value, visit)
    elif isinstance(schema, list):
        for item in schema:
            _walk(item, visit)


@pytest.mark.parametrize("name", sorted(docgen.schemas()))
def test_schemas_use_only_standard_keywords_and_resolvable_refs(name: str) -> None:
    """An outsider's JSON Schema validator must see every bound and resolve every `$ref`
    (a `$defs` inside `body` left `#/$defs/X` dangling; pydantic's `ge`/`le` were ignored)."""
    schema = docgen.schemas()[name]

    def visit(node: dict) -> None:
        assert not {"ge", "le", "gt", "lt"} & {k for k, v in node.items()
                                                if not isinstance(v, (dict, list))}, node
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith("#/$defs/") and ref.split("/")[-1] in schema.get("$defs", {}), ref

    _walk(schema, visit)
