"""Every rejection reason, crafted and refused; valid records of every kind accepted."""
from __future__ import annotations

import msgpack
import pytest

from memory import canonical, codec, records as R
from memory.codec import Reason
from tests.helpers import bodies, envelope, sign_raw


def test_every_kind_round_trips(keys) -> None:
    for seq, (kind, body) in enumerate(bodies().items(), start=1):
        record = codec.sign(keys[0], kind, seq, body)
        again = codec.decode(record.raw)
        assert (again.id, again.kind, again.seq, again.body) == (record.id, kind, seq, body)
        assert again.id == canonical.digest_hex(msgpack.unpackb(record.raw)[0])


def test_producers_may_pass_ints_for_floats_but_the_wire_may_not(keys) -> None:
    body = R.RoleBody(role="verifier", reason="r", scores={"verifier": 2})  # int -> 2.0 here
    assert codec.decode(codec.sign(keys[0], "role", 1, body).raw).body.scores == {"verifier": 2.0}
    env = envelope(keys[0], "role", 1, {"role": "verifier", "reason": "r", "scores": {"verifier": 2}})
    with pytest.raises(codec.Rejected) as caught:
        codec.decode(sign_raw(keys[0], env))
    assert caught.value.reason is Reason.SCHEMA


def _reason(raw: bytes) -> Reason:
    with pytest.raises(codec.Rejected) as caught:
        codec.decode(raw)
    return caught.value.reason


def _valid_env(keys, kind: str = "role") -> dict:
    return envelope(keys[0], kind, 1, bodies()[kind])


def test_oversize(keys) -> None:
    body = bodies()["hypothesis"].model_dump() | {"rationale": "x" * 7000}
    env = envelope(keys[0], "hypothesis", 1, body)
    env["body"]["diff"] = {f"k{i}": "y" * 500 for i in range(128)}
    assert _reason(sign_raw(keys[0], env)) is Reason.OVERSIZE


@pytest.mark.parametrize("raw", [b"", b"garbage", msgpack.packb([b"x"]), msgpack.packb({"a": 1}),
                                 msgpack.packb([b"\x81\xa1a\x01", b"s" * 64])])
def test_malformed(raw: bytes) -> None:
    assert _reason(raw) is Reason.MALFORMED


def test_non_canonical_payload_is_malformed(keys) -> None:
    env = _valid_env(keys)
    payload = msgpack.packb(dict(reversed(list(env.items()))), use_bin_type=True)  # unsorted keys
    raw = canonical.pack([payload, keys[0].sign(payload)])
    assert _reason(raw) is Reason.MALFORMED


def test_unknown_version(keys) -> None:
    env = _valid_env(keys) | {"v": R.SCHEMA_VERSION + 1}
    assert _reason(sign_raw(keys[0], env)) is Reason.UNKNOWN_VERSION


def test_unknown_kind(keys) -> None:
    env = _valid_env(keys) | {"kind": "gossip"}
    assert _reason(sign_raw(keys[0], env)) is Reason.UNKNOWN_KIND


def test_bad_author(keys) -> None:
    env = _valid_env(keys) | {"author": "QmNotAnEd25519Key"}
    assert _reason(sign_raw(keys[0], env)) is Reason.BAD_AUTHOR


@pytest.mark.parametrize("change", [
    lambda b: b.pop("reason"),                              # missing field
    lambda b: b.update(extra=1),                            # unknown field
    lambda b: b.update(role="dictator"),                    # not an allowed value
    lambda b: b.update(reason=7),                           # wrong type (no coercion)
    lambda b: b.update(scores={"verifier": float("nan")}),  # NaN is no canonical number
])
def test_schema_violations(keys, change) -> None:
    env = _valid_env(keys)
    change(env["body"])
    try:
        raw = sign_raw(keys[0], env)
    except ValueError:          # NaN cannot even be packed canonically: craft it by hand
        payload = msgpack.packb(env, use_bin_type=True)
        raw = canonical.pack([payload, keys[0].sign(payload)])
        assert _reason(raw) in (Reason.SCHEMA, Reason.MALFORMED)
        return
    assert _reason(raw) is Reason.SCHEMA


def test_run_whose_hash_does_not_name_its_config_is_refused(keys) -> None:
    env = _valid_env(keys, "run")
    env["body"]["config"]["depth"] = 99
    assert _reason(sign_raw(keys[0], env)) is Reason.SCHEMA


@pytest.mark.parametrize("seq", [0, -1, 2**63])
def test_bad_seq(keys, seq: int) -> None:
    env = _valid_env(keys) | {"seq": seq}
    assert _reason(sign_raw(keys[0], env)) is Reason.SCHEMA


def test_far_future_timestamp(keys) -> None:
    env = _valid_env(keys) | {"ts": codec.now_ms() + codec.MAX_CLOCK_SKEW_MS + 60_000}
    assert _reason(sign_raw(keys[0], env)) is Reason.FUTURE_TIMESTAMP
    near = _valid_env(keys) | {"ts": codec.now_ms() + 60_000}     # a minute of skew is fine
    codec.decode(sign_raw(keys[0], near))


def test_clock_skew_is_two_minutes(keys) -> None:
    """Issue 9: a record stamped 9 minutes ahead was accepted and pinned "newest" views."""
    assert codec.MAX_CLOCK_SKEW_MS == 120_000
    for ahead in (3 * 60_000, 9 * 60_000):
        env = _valid_env(keys) | {"ts": codec.now_ms() + ahead}
        assert _reason(sign_raw(keys[0], env)) is Reason.FUTURE_TIMESTAMP


def test_tampered_bytes_and_foreign_signatures(keys) -> None:
    raw = codec.sign(keys[0], "role", 1, bodies()["role"]).raw
    payload, signature = msgpack.unpackb(raw)
    tampered = payload.replace(b"2 unverified", b"3 unverified", 1)   # still schema-valid
    assert _reason(canonical.pack([tampered, signature])) is Reason.BAD_SIGNATURE
    forged = canonical.pack([payload, keys[1].sign(payload)])          # signed by someone else
    assert _reason(forged) is Reason.BAD_SIGNATURE
    assert _reason(canonical.pack([payload, signature[:-1] + bytes([signature[-1] ^ 1])])) \
        is Reason.BAD_SIGNATURE


def test_v1_bodies_still_decode_and_v2_fields_are_v2_only(keys) -> None:
    v1_run = {k: v for k, v in bodies()["run"].model_dump().items()
              if k not in ("curve", "samples", "quality")}
    record = codec.decode(sign_raw(keys[0], envelope(keys[0], "run", 1, v1_run, v=1)))
    assert record.v == 1 and type(record.body) is R.RunBodyV1
    # a v2 run must carry every field; a v1 run may not carry v2's, nor may v1 hold a judgement
    assert _reason(sign_raw(keys[0], envelope(keys[0], "run", 1, v1_run))) is Reason.SCHEMA
    v2_run = bodies()["run"].model_dump()
    assert _reason(sign_raw(keys[0], envelope(keys[0], "run", 1, v2_run, v=1))) is Reason.SCHEMA
    judgement = envelope(keys[0], "judgement", 1, bodies()["judgement"], v=1)
    assert _reason(sign_raw(keys[0], judgement)) is Reason.UNKNOWN_KIND


def test_run_v2_fields_are_bounded(keys) -> None:
    body = bodies()["run"]
    points = [R.CurvePoint(step=i, train_loss=1.0) for i in range(R.MAX_CURVE_POINTS + 1)]
    with pytest.raises(ValueError):
        R.RunBody.model_validate(body.model_dump() | {"curve": points})
    env = envelope(keys[0], "run", 1, body.model_dump() | {"quality": {"x": 1}})   # int on the wire
    assert _reason(sign_raw(keys[0], env)) is Reason.SCHEMA


def test_a_run_at_every_v2_bound_stays_far_under_the_size_limit(keys) -> None:
    body = bodies()["run"]
    config = {f"knob_{i:02d}": 0.001 * i for i in range(40)}          # more knobs than the harness has
    full = body.model_dump() | {
        "config": config, "config_hash": canonical.config_hash(config),
        "curve": [{"step": 10**9 + i, "train_loss": 1 / 3} for i in range(R.MAX_CURVE_POINTS)],
        "samples": [{"prompt": "p" * 200, "text": "é" * 1200} for _ in range(R.MAX_SAMPLES)],
        "quality": {f"measure_{i:02d}": 1 / 3 for i in range(32)}}
    record = codec.sign(keys[0], "run", 1, R.RunBody.model_validate(full))
    assert len(record.raw) < codec.MAX_RECORD_BYTES // 2


@pytest.mark.parametrize("spoil, reason", [
    ({"ts": 2**52}, Reason.FUTURE_TIMESTAMP), ({"seq": 0}, Reason.SCHEMA),
    ({"kind": "nope"}, Reason.UNKNOWN_KIND), ({"v": 99}, Reason.UNKNOWN_VERSION)])
def test_a_record_failing_a_cheap_check_is_refused_before_its_signature_is(keys, tmp_path,
                                                                           spoil, reason) -> None:
    """An Ed25519 check is most of a record's cost (scripts/bench_hostile_cpu.py: a batch of
    records in the future costs a third of one with bad signatures): a record that fails a cheap
    check (and whose signature is bad too) is refused for the cheap one on every path that
    checks records: decode (gossip's validator), the helper processes and the store's ingest."""
    from memory.check_worker import check
    from memory.store import Store

    env = _valid_env(keys) | spoil
    payload, signature = msgpack.unpackb(sign_raw(keys[0], env))
    raw = canonical.pack([payload, bytes([signature[0] ^ 1]) + signature[1:]])
    assert _reason(raw) is reason
    assert check([raw], codec.now_ms())[0][0][0] == reason.value
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        assert store.ingest([raw]).rejected == {reason.value: 1}
