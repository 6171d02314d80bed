"""The gossip validator checks the forwarding peer's, its address's and the claimed author's
quotas before a record's signature (node/gossip.py, node/quota.py `screen`): a source or an
author past its quota costs no signature verification, only a verified record spends its
author's quota, and every refusal keeps its reason and its strikes. Real records, real quotas,
real Ed25519: the signature check is only counted, never replaced."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest

from memory import crypto
from memory.crypto import Keypair
from node import gossip
from node.peers import PeerBook
from node.quota import QuotaConfig, Quotas
from tests.network.launcher import make_records


def bad_signature(raw: bytes) -> bytes:
    """`raw` with one bit of its signature flipped: every cheap check still passes."""
    payload, signature = msgpack.unpackb(raw)
    return msgpack.packb([payload, bytes([signature[0] ^ 1]) + signature[1:]])


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The authors whose signatures were checked (the real check runs)."""
    calls: list[str] = []
    real = crypto.verify

    def counted(peer_id: str, message: bytes, signature: bytes) -> bool:
        calls.append(peer_id)
        return real(peer_id, message, signature)
    monkeypatch.setattr(crypto, "verify", counted)
    return calls


def validator(config: QuotaConfig) -> tuple[Any, gossip.Tally, PeerBook]:
    peers, tally = PeerBook(invalid_limit=10**9), gossip.Tally()
    validate = gossip.make_validator(peers, Quotas(config), tally, "me", lambda peer: None,
                                     lambda peer: "10.0.0.1")
    return validate, tally, peers


def strikes(peers: PeerBook) -> int:
    return sum(peer["rejected"] for peer in peers.snapshot() if peer["peer_id"] == "peer")


def test_a_peer_past_its_quota_costs_no_signature_check(verifications: list[str]) -> None:
    """One record a peer's burst: the next, its signature bad, is refused as over quota (a
    strike every `strike_every`, as before) without verifying it; main verified it first and
    refused it as a bad signature (a strike each)."""
    validate, tally, peers = validator(QuotaConfig(peer_burst=1, peer_rate=1e-9, strike_every=2))
    first, *rest = make_records(4, Keypair.generate())
    assert validate("peer", SimpleNamespace(data=first)) and len(verifications) == 1
    outcomes = [validate("peer", SimpleNamespace(data=bad_signature(raw))) for raw in rest]
    assert outcomes == [False] * 3 and len(verifications) == 1
    assert tally.take() == {"quota_peer": 3}
    assert strikes(peers) == 1                          # the 2nd over-quota record: a strike


def test_within_quota_a_bad_signature_is_still_one_strike(verifications: list[str]) -> None:
    validate, tally, peers = validator(QuotaConfig())
    raw = make_records(1, Keypair.generate())[0]
    assert not validate("peer", SimpleNamespace(data=bad_signature(raw)))
    assert tally.take() == {"bad_signature": 1} and strikes(peers) == 1
    assert len(verifications) == 1


def test_an_author_past_its_quota_costs_no_signature_check(verifications: list[str]) -> None:
    """An author's buckets are checked before the signature too: once it is past its quota, its
    next records, honest or forged in its name, are `quota_author` with no verification (main
    verified each first: a forged one was a bad signature, an honest one `quota_author`)."""
    validate, tally, peers = validator(QuotaConfig(author_burst=1, author_rate=1e-9,
                                                   new_author_factor=1.0, strike_every=2))
    first, second, third = make_records(3, Keypair.generate())
    assert validate("peer", SimpleNamespace(data=first)) and len(verifications) == 1
    assert not validate("peer", SimpleNamespace(data=bad_signature(second)))
    assert not validate("peer", SimpleNamespace(data=third))
    assert tally.take() == {"quota_author": 2} and len(verifications) == 1
    assert strikes(peers) == 1                          # the 2nd over-quota record: a strike


def test_a_forger_spends_no_honest_authors_quota(verifications: list[str]) -> None:
    """Only a verified record spends its author's quota: records forged in an author's name
    (within its quota) are bad signatures, and the author's own records still fit after them."""
    validate, tally, _ = validator(QuotaConfig(author_burst=2, author_rate=1e-9,
                                               new_author_factor=1.0))
    key = Keypair.generate()
    known, *honest = make_records(3, key)
    assert validate("peer", SimpleNamespace(data=known))        # the author is known: 1 left
    forged = [bad_signature(raw) for raw in make_records(5, key)]
    assert not any(validate("forger", SimpleNamespace(data=raw)) for raw in forged)
    assert tally.take() == {"bad_signature": 5}
    assert [validate("peer", SimpleNamespace(data=raw)) for raw in honest] == [True, False]
    assert tally.take() == {"quota_author": 1}


def from_addresses(config: QuotaConfig) -> tuple[Any, gossip.Tally, PeerBook]:
    """A validator whose peers named "evil..." connect from 10.0.0.1, every other from 10.0.0.2."""
    peers, tally = PeerBook(invalid_limit=10**9), gossip.Tally()
    validate = gossip.make_validator(
        peers, Quotas(config), tally, "me", lambda peer: None,
        lambda peer: "10.0.0.1" if str(peer).startswith("evil") else "10.0.0.2")
    return validate, tally, peers


def rejected(peers: PeerBook) -> dict[str, int]:
    return {peer["peer_id"]: peer["rejected"] for peer in peers.snapshot() if peer["rejected"]}


def test_bad_signatures_from_fresh_peer_ids_drain_their_address(
        verifications: list[str]) -> None:
    """Each bad signature is charged to its forwarder's and its address's buckets: after the
    address's 4 records, the next, from yet another fresh peer id, is refused as over quota with
    no signature check. On main an invalid record was never charged: every one was verified."""
    validate, tally, peers = from_addresses(QuotaConfig(peer_burst=4, peer_rate=1e-9,
                                                        address_factor=1.0))
    raws = [bad_signature(raw) for raw in make_records(6, Keypair.generate())]
    outcomes = [validate(f"evil{i}", SimpleNamespace(data=raw)) for i, raw in enumerate(raws)]
    assert outcomes == [False] * 6 and len(verifications) == 4
    assert tally.take() == {"bad_signature": 4, "quota_address": 2}
    # a strike for each bad signature, as before; none yet for the over-quota ones (1 in 50)
    assert rejected(peers) == {f"evil{i}": 1 for i in range(4)}
    honest = make_records(4, Keypair.generate())      # another address: untouched
    assert all(validate("honest", SimpleNamespace(data=raw)) for raw in honest)
    assert tally.take() == {} and len(verifications) == 8


def test_bytes_of_bad_signatures_and_cheap_refusals_are_charged(
        verifications: list[str]) -> None:
    """The bytes too, and a record refused by a cheap check (a timestamp in the future): records
    plentiful, the address's bytes bucket holds three records; after three invalid ones the next
    valid record from that address is over quota, unverified."""
    size = len(make_records(1, Keypair.generate())[0])
    validate, tally, _ = from_addresses(QuotaConfig(peer_bytes_per_hour=3.5 * size,
                                                    address_factor=1.0))
    future = make_records(1, Keypair.generate(), ts=int(time.time() * 1000) + 600_000)[0]
    bad = [bad_signature(raw) for raw in make_records(2, Keypair.generate())]
    for i, raw in enumerate([future, *bad]):
        assert not validate(f"evil{i}", SimpleNamespace(data=raw))
    assert len(verifications) == 2
    assert not validate("evil9", SimpleNamespace(data=make_records(1, Keypair.generate())[0]))
    assert tally.take() == {"future_timestamp": 1, "bad_signature": 2, "quota_address": 1}
    assert len(verifications) == 2
