"""Big batches are checked in helper processes: same verdicts and same store as checking in-process."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import msgpack
import pytest

from memory import canonical, check_worker, codec, schema, synthetic
from memory.batch import HelperDecode
from memory.helpers import HelperPool
from memory.store import HELPER_MIN_BATCH, Store
from tests.helpers import bodies, envelope, sign_raw
from tests.memory.snapshots import snapshot
from tests.memory.test_store import _bad_records


def _with_forged_copy(keys, seq: int) -> tuple[bytes, bytes]:
    """A signed record, and its payload with someone else's signature (the same id)."""
    valid = codec.sign(keys[0], "role", seq, bodies()["role"]).raw
    payload, _ = msgpack.unpackb(valid)
    return valid, canonical.pack([payload, keys[1].sign(payload)])


def _hostile_batches(keys) -> list[list[bytes]]:
    """Batches of valid runs with, among them, one record per rejection reason and two traps.

    Each trap has a batch of its own, as each changes how its batch is written:
    - the same payload twice, one copy with a wrong signature: the valid copy must be the one kept;
    - a correctly signed run whose body has a string where a number belongs: its envelope reads
      fine, but the rows prepared before the checks end cannot even be built.
    """
    good = [r.raw for r in synthetic.runs(keys, 3 * HELPER_MIN_BATCH, seed=5)]
    valid, forged = _with_forged_copy(keys, 100_000)
    valid2, forged2 = _with_forged_copy(keys, 100_001)
    body = bodies()["run"].model_dump(mode="python")
    body["seed"] = "not a number"
    unbuildable = sign_raw(keys[2], envelope(keys[2], "run", 10_000, body))
    first, second, third = (good[i * HELPER_MIN_BATCH:(i + 1) * HELPER_MIN_BATCH] for i in range(3))
    return [first[:300] + [forged, valid] + first[300:600] + [valid2, forged2] + first[600:]
            + first[:10],
            second[:500] + list(_bad_records(keys).values()) + second[500:],
            third[:700] + [unbuildable] + third[700:]]


def test_helpers_and_in_process_checks_agree_on_hostile_batches(tmp_path: Path, keys) -> None:
    batches = _hostile_batches(keys)
    with Store(tmp_path / "helped.duckdb", helpers=2) as helped, \
            Store(tmp_path / "alone.duckdb", helpers=0) as alone:
        for batch in batches:
            a, b = helped.ingest(batch), alone.ingest(batch)
            assert len(helped.helper_pids()) == 2 and not alone.helper_pids()   # helpers did it
            assert a.as_dict() == b.as_dict()
            assert sorted(a.accepted_ids) == sorted(b.accepted_ids)
            assert snapshot(helped, with_counters=True) == snapshot(alone, with_counters=True)
        # The stored copy of a twice-sent payload is the validly signed one.
        for valid in (batches[0][301], batches[0][602]):
            assert helped.get(codec.decode(valid).id).raw == valid
        assert helped.count() == 3 * HELPER_MIN_BATCH + 2
        assert helped.stats()["rejected"] == {
            "bad_author": 1, "bad_signature": 3, "future_timestamp": 1, "malformed": 1,
            "oversize": 1, "schema": 2, "unknown_kind": 1, "unknown_version": 1}


def test_a_helper_that_dies_mid_batch_costs_time_not_verdicts(keys) -> None:
    raws = [r.raw for r in synthetic.runs(keys, 600, seed=9)]
    raws[123] = raws[123][:-1] + bytes([raws[123][-1] ^ 1])      # flip a signature bit
    ids = [codec.peek_id(raw) for raw in raws]
    pool = HelperPool(1)
    try:
        pid = pool.pids[0]
        os.kill(pid, signal.SIGSTOP)               # it takes the requests but never answers
        decode = HelperDecode(raws, codec.now_ms(), pool, chunk=100)
        os.kill(pid, signal.SIGKILL)
        verdicts, tables = decode.outcome()
    finally:
        pool.close()
    assert not pool.alive
    rejected = [i for i, r in enumerate(verdicts) if r is not None]
    assert rejected == [123] and verdicts[123].reason is codec.Reason.BAD_SIGNATURE
    assert tables["records"].column("id").to_pylist() == ids[:123] + ids[124:]


def test_store_falls_back_to_in_process_checks_once_helpers_die(tmp_path: Path, keys) -> None:
    raws = [r.raw for r in synthetic.runs(keys, 3 * HELPER_MIN_BATCH, seed=11)]
    with Store(tmp_path / "m.duckdb", helpers=1) as store:
        store.ingest(raws[:HELPER_MIN_BATCH])
        os.kill(store.helper_pids()[0], signal.SIGKILL)
        second = store.ingest(raws[HELPER_MIN_BATCH:2 * HELPER_MIN_BATCH])
        third = store.ingest(raws[2 * HELPER_MIN_BATCH:])
        assert (second.accepted, third.accepted) == (HELPER_MIN_BATCH, HELPER_MIN_BATCH)
        assert not store.helper_pids() and store.count() == len(raws)


@pytest.mark.parametrize("helpers", [0, 2])
def test_small_batches_never_start_helpers(tmp_path: Path, keys, helpers: int) -> None:
    with Store(tmp_path / "m.duckdb", helpers=helpers) as store:
        store.ingest(r.raw for r in synthetic.runs(keys, HELPER_MIN_BATCH - 1))
        assert not store.helper_pids()


def test_the_rows_helpers_build_are_those_of_the_valid_records(keys) -> None:
    raws = [r.raw for r in synthetic.runs(keys, 300, seed=13)]
    raws[17] = raws[17][:-1] + bytes([raws[17][-1] ^ 1])          # a signature bit flipped
    raws[200] = raws[200][:-5]                                    # truncated
    now = codec.now_ms()
    verdicts, tables = check_worker.check(raws, now)
    assert [i for i, v in enumerate(verdicts) if v is not None] == [17, 200]
    assert verdicts[17][0] == "bad_signature" and verdicts[200][0] == "malformed"
    valid = [codec.read_envelope(raw, now) for i, raw in enumerate(raws) if i not in (17, 200)]
    expected = schema.tables(valid)
    shipped = check_worker.from_ipc(check_worker.to_ipc(tables))      # as they cross the pipe
    assert set(shipped) == set(expected) == {"records", "runs"}
    assert all(shipped[name].equals(expected[name]) for name in expected)


def test_a_tampered_record_in_a_big_batch_is_rejected_counted_and_not_stored(
        tmp_path: Path, keys) -> None:
    raws = [r.raw for r in synthetic.runs(keys, 2 * HELPER_MIN_BATCH, seed=17)]
    tampered = raws[1500] = raws[1500][:-1] + bytes([raws[1500][-1] ^ 1])
    with Store(tmp_path / "m.duckdb", helpers=2) as store:
        report = store.ingest(raws)
        assert store.helper_pids()                                  # the helpers checked it
        assert report.accepted == len(raws) - 1 and report.rejected == {"bad_signature": 1}
        assert codec.peek_id(tampered) not in report.accepted_ids
        assert store.get(codec.peek_id(tampered)) is None          # nor under the valid id
        assert store.query("SELECT count(*) FROM runs").rows == [(len(raws) - 1,)]
        assert store.stats()["rejected"] == {"bad_signature": 1}
        again = store.ingest(raws)                                  # held ones skip the checks
        assert again.duplicate == len(raws) - 1 and again.rejected == {"bad_signature": 1}
