"""Canonical encoding, content ids, peer ids and signatures."""
from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, strategies as st

from memory import canonical, crypto, schema


def test_pack_sorts_keys_and_round_trips() -> None:
    value = {"b": 1, "a": [1.5, "x", b"y", None, True, {"d": 2, "c": -3}]}
    data = canonical.pack(value)
    assert canonical.unpack(data) == value
    assert canonical.pack({"a": value["a"], "b": 1}) == data


@pytest.mark.parametrize("data", [
    msgpack.packb({"b": 1, "a": 2}),                                # keys out of order
    b"\xcd\x00\x01",                                                # 1 as uint16: not minimal
    msgpack.packb(1.5, use_single_float=True),                      # float32
    msgpack.packb({"a": 1, "a ": 2})[:-1],                          # truncated
    msgpack.packb({1: 2}),                                          # non-string key
])
def test_unpack_refuses_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(ValueError):
        canonical.unpack(data)


@pytest.mark.parametrize("value", [float("nan"), {"x": float("inf")}, {1: "a"}, object()])
def test_pack_refuses_values_without_canonical_form(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical.pack(value)


def test_config_hash_ignores_key_order_but_not_types() -> None:
    assert canonical.config_hash({"a": 1, "b": 2.0}) == canonical.config_hash({"b": 2.0, "a": 1})
    assert canonical.config_hash({"a": 1}) != canonical.config_hash({"a": 1.0})
    assert len(canonical.config_hash({})) == 32


def test_peer_id_matches_libp2p_and_decodes_back() -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    key = crypto.Keypair(bytes(range(32)))
    libp2p_id = ID.from_pubkey(create_new_key_pair(key.seed).public_key).to_base58()
    assert key.peer_id == libp2p_id
    assert crypto.public_key_from_peer_id(key.peer_id) == key.public_key


@pytest.mark.parametrize("bad", ["", "not-base58-0OIl", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
                                 "12D3KooW"])
def test_bad_peer_ids_are_refused(bad: str) -> None:
    with pytest.raises(crypto.BadPeerId):
        crypto.public_key_from_peer_id(bad)


def test_signatures_are_domain_separated() -> None:
    key = crypto.Keypair.generate()
    message = b"hello"
    signature = key.sign(message)
    assert crypto.verify(key.peer_id, message, signature)
    assert not crypto.verify(key.peer_id, b"hellO", signature)
    assert not crypto.verify(crypto.Keypair.generate().peer_id, message, signature)
    # A plain Ed25519 signature over the message (no domain) must not verify.
    import nacl.signing
    plain = nacl.signing.SigningKey(key.seed).sign(message).signature
    assert not crypto.verify(key.peer_id, message, plain)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(_json_values)
def test_typed_tables_write_json_exactly_as_json_dumps_does(value) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert schema.to_json(value) == expected


def test_json_columns_refuse_what_is_not_json() -> None:
    for bad in ({"x": float("nan")}, {"x": b"bytes"}, {"x": {1, 2}}):
        with pytest.raises((TypeError, ValueError)):
            schema.to_json(bad)
