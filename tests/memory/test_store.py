"""The store: atomic batches, duplicates, rejections, equivocation, views, anti-entropy."""
from __future__ import annotations

import math
import os
import stat

import msgpack
import pytest

from memory import canonical, codec, synthetic
from memory.antientropy import parse_have
from memory.store import Store, StoreError
from node import identity
from tests.helpers import BASE, CANDIDATE, bodies, envelope, run, sign_raw
from tests.memory.snapshots import snapshot


def test_ingest_is_idempotent_and_counts_duplicates(store, keys) -> None:
    raws = [r.raw for r in synthetic.runs(keys, 30)]
    first = store.ingest(raws)
    assert (first.accepted, first.duplicate, first.rejected) == (30, 0, {})
    before = snapshot(store)
    again = store.ingest(raws + raws[:5])
    assert (again.accepted, again.duplicate) == (0, 35)
    assert snapshot(store) == before
    assert store.count() == 30


def _bad_records(keys) -> dict[str, bytes]:
    good = envelope(keys[0], "role", 1, bodies()["role"])
    signed = codec.sign(keys[0], "role", 1, bodies()["role"]).raw
    payload, signature = msgpack.unpackb(signed)
    big = envelope(keys[0], "hypothesis", 1, bodies()["hypothesis"])
    big["body"]["diff"] = {f"k{i}": "y" * 600 for i in range(120)}
    return {
        "bad_signature": canonical.pack([payload, keys[1].sign(payload)]),
        "malformed": b"\x93garbage",
        "unknown_kind": sign_raw(keys[0], good | {"kind": "rumour"}),
        "schema": sign_raw(keys[0], good | {"body": {"role": "verifier"}}),
        "oversize": sign_raw(keys[0], big),
        "future_timestamp": sign_raw(keys[0], good | {"ts": codec.now_ms() + 3_600_000}),
        "unknown_version": sign_raw(keys[0], good | {"v": 99}),
        "bad_author": sign_raw(keys[0], good | {"author": "12D3KooWnotreal"}),
    }


def test_every_rejection_changes_only_its_counter(store, keys) -> None:
    store.ingest(r.raw for r in synthetic.runs(keys, 20))
    for reason, raw in _bad_records(keys).items():
        before, digest = snapshot(store), store.digest()
        report = store.ingest([raw])
        assert report.rejected == {reason: 1} and report.accepted == 0, reason
        assert snapshot(store) == before and store.digest() == digest, reason
        assert dict(store.query("SELECT reason, n FROM rejections").rows)[reason] == 1


def test_a_bad_record_in_a_batch_does_not_stop_the_good_ones(store, keys) -> None:
    good = [r.raw for r in synthetic.runs(keys, 10)]
    report = store.ingest(good[:5] + [b"junk"] + good[5:])
    assert (report.accepted, report.rejected) == (10, {"malformed": 1})


def _over_bigint(keys) -> list[bytes]:
    """Signed records whose counts no BIGINT column holds (every other field valid)."""
    run_body, b = bodies()["run"].model_dump(mode="python"), bodies()
    out = [sign_raw(keys[2], envelope(keys[2], "run", 1 + i, {
        **run_body, "metrics": {**run_body["metrics"], field: 2**63}}))
        for i, field in enumerate(("tokens", "steps", "params"))]
    out.append(sign_raw(keys[2], envelope(keys[2], "assessment", 4, {
        **b["assessment"].model_dump(mode="python"), "n": 2**64 - 1})))
    out.append(sign_raw(keys[2], envelope(keys[2], "noise_floor", 5, {
        **b["noise_floor"].model_dump(mode="python"), "n": 2**63})))
    return out


def test_counts_past_bigint_are_refused_not_raised_in_a_batch(store, keys) -> None:
    # Each one made the whole ingest raise OverflowError: the good records of its batch were
    # lost, and the node's gossip ingest stopped.
    good = [r.raw for r in synthetic.runs(keys[:2], 4)]
    report = store.ingest(good[:2] + _over_bigint(keys) + good[2:])
    assert (report.accepted, report.rejected) == (4, {"schema": 5})


def test_equivocation_keeps_both_and_excludes_the_author(store, keys) -> None:
    liar, honest = keys[0], keys[1]
    store.add([run(honest, 1, BASE, seed=1, bpb=1.30)])
    first = run(liar, 1, CANDIDATE, seed=1, bpb=1.10)
    second = run(liar, 1, CANDIDATE, seed=2, bpb=1.05)            # same seq, other content
    claim = codec.sign(liar, "claim", 2, bodies(run_id=first.id)["claim"])
    store.add([first, claim])
    assert store.query("SELECT count(*) FROM leaderboard").rows == [(2,)]
    store.add([second])
    assert store.count() == 4
    assert store.query("SELECT author FROM flagged_authors").rows == [(liar.peer_id,)]
    assert store.query("SELECT config_hash FROM leaderboard").rows == [(canonical.config_hash(BASE),)]
    assert store.query("SELECT count(*) FROM claim_status").rows == [(0,)]


def test_seed_stats_match_hand_computation(store, keys) -> None:
    values = [1.2, 1.25, 1.31]
    store.add([run(keys[0], i + 1, BASE, seed=i, bpb=v) for i, v in enumerate(values)])
    store.add([run(keys[0], 4, BASE, seed=9, bpb=None, status="crash")])
    n, mean, std, best = store.query("SELECT n, mean, std, best FROM seed_stats").rows[0]
    m = sum(values) / 3
    assert n == 3
    assert mean == pytest.approx(m, abs=1e-12)
    assert std == pytest.approx(math.sqrt(sum((v - m) ** 2 for v in values) / 2), abs=1e-12)
    assert best == 1.2


def test_leaderboard_ranks_by_mean_and_breaks_ties_by_hash(store, keys) -> None:
    configs = [{"depth": d, "lr": 0.003} for d in (2, 3, 4)]
    means = [1.3, 1.2, 1.2]
    store.add([run(keys[0], i + 1, c, seed=1, bpb=m) for i, (c, m) in enumerate(zip(configs, means))])
    rows = store.query("SELECT rank, config_hash, mean FROM leaderboard ORDER BY rank").rows
    tied = sorted(canonical.config_hash(c) for c in configs[1:])
    assert [r[1] for r in rows] == tied + [canonical.config_hash(configs[0])]
    assert [r[0] for r in rows] == [1, 2, 3]


def _status(store, claim_id: str) -> str:
    return store.query("SELECT status FROM claim_status WHERE claim = ?", [claim_id]).rows[0][0]


def test_claim_lifecycle(store, keys) -> None:
    claimant, statistician, verifier = keys
    evidence = run(claimant, 1, CANDIDATE, seed=1, bpb=1.1)
    claim = codec.sign(claimant, "claim", 2, bodies(run_id=evidence.id)["claim"])
    store.add([evidence, claim])
    assert _status(store, claim.id) == "pending"
    b = bodies(claim_id=claim.id, run_id=evidence.id)
    store.add([codec.sign(statistician, "assessment", 1, b["assessment"])])
    assert _status(store, claim.id) == "supported"
    own = codec.sign(claimant, "verification", 3, b["verification"])       # self-verification
    store.add([own])
    assert _status(store, claim.id) == "supported"
    store.add([codec.sign(verifier, "verification", 1, b["verification"])])
    assert _status(store, claim.id) == "verified"
    lb = store.query("SELECT verified FROM leaderboard WHERE config_hash = ?",
                     [canonical.config_hash(CANDIDATE)]).rows
    assert lb == [(True,)]
    refute = b["verification"].model_copy(update={"outcome": "refuted", "replay_match": False})
    store.add([codec.sign(verifier, "verification", 2, refute)])
    assert _status(store, claim.id) == "refuted"


def test_latest_assessment_wins_with_ties_broken_by_id(store, keys) -> None:
    claim = codec.sign(keys[0], "claim", 1, bodies()["claim"])
    b = bodies(claim_id=claim.id)
    no = b["assessment"].model_copy(update={"verdict": "not_supported"})
    store.add([claim, codec.sign(keys[1], "assessment", 1, b["assessment"], ts=1000),
               codec.sign(keys[2], "assessment", 1, no, ts=2000)])
    assert _status(store, claim.id) == "not_supported"


def test_next_seq_get_and_seq_vector(store, keys) -> None:
    records = [run(keys[0], s, BASE, seed=s, bpb=1.2) for s in (1, 2, 3, 5, 6, 9)]
    store.add(records)
    assert store.next_seq(keys[0].peer_id) == 10
    assert store.next_seq(keys[1].peer_id) == 1
    assert store.get(records[0].id).body == records[0].body
    assert store.get("f" * 64) is None
    assert store.seq_vector() == {keys[0].peer_id: 3}
    assert store.have() == {keys[0].peer_id: [9, [[4, 4], [7, 8]], store.have()[keys[0].peer_id][2]]}


def test_missing_for_sends_exactly_what_the_peer_lacks(tmp_path, keys) -> None:
    raws = [r.raw for r in synthetic.runs(keys, 300)]
    lacking = set(range(0, 300, 37)) | set(range(290, 300))
    with Store(tmp_path / "a.duckdb") as full, Store(tmp_path / "b.duckdb") as part:
        full.ingest(raws)
        part.ingest(raw for i, raw in enumerate(raws) if i not in lacking)
        assert full.digest() != part.digest()
        wire = msgpack.unpackb(msgpack.packb(part.have()), raw=False)
        sent = [raw for batch in full.missing_for(wire, batch_bytes=4096) for raw in batch]
        assert sorted(sent) == sorted(raws[i] for i in lacking)
        assert part.ingest(sent).accepted == len(lacking)
        assert full.digest() == part.digest()
        assert list(full.missing_for(part.have())) == []


def test_replicas_holding_different_equivocations_converge(tmp_path, keys) -> None:
    liar = keys[0]
    one, two = run(liar, 1, BASE, seed=1, bpb=1.2), run(liar, 1, BASE, seed=2, bpb=1.3)
    later = run(liar, 2, BASE, seed=3, bpb=1.2)
    with Store(tmp_path / "a.duckdb") as a, Store(tmp_path / "b.duckdb") as b:
        a.add([one, later])
        b.add([two, later])
        for _ in range(2):
            for src, dst in ((a, b), (b, a)):
                dst.ingest(raw for batch in src.missing_for(dst.have()) for raw in batch)
        assert a.digest() == b.digest() and a.count() == 3
        assert snapshot(a) == snapshot(b)


@pytest.mark.parametrize("have", [
    [], {"a": 1}, {"a": [1, [], "x"]}, {"a": [5, [[3, 9]], 0]}, {"a": [5, [[0, 1]], 0]},
    {"a": [5, [[2]], 0]}, {"a": [-1, [], 0]}, {"a": [5, [], 2**64]}, {7: [1, [], 0]},
])
def test_malformed_have_is_refused(have) -> None:
    with pytest.raises(ValueError):
        parse_have(have)


@pytest.mark.parametrize("gaps", [
    [[1, 9]] * 2,                      # the same gap twice (a hostile peer sent 1.6 million)
    [[1, 5], [3, 8]],                  # overlapping
    [[6, 8], [2, 3]],                  # descending
    [[2, 3], [4, 5]],                  # adjacent: an honest summary holds a seq between two
])
def test_gaps_that_overlap_or_are_out_of_order_are_refused_in_one_line(gaps) -> None:
    """The responder's join of its records against the gaps grew as records x gaps when gaps
    overlapped (docs/TRUST.md); an honest summary's gaps are maximal runs, ascending, apart."""
    with pytest.raises(ValueError, match="ascending, a held seq between two") as refused:
        parse_have({"a": [10, gaps, 0]})
    assert "\n" not in str(refused.value)
    assert parse_have({"a": [10, [[1, 1], [3, 5], [7, 9]], 0]}).gaps.num_rows == 3


def test_missing_for_answers_many_disjoint_gaps_exactly(tmp_path, keys) -> None:
    """Gaps are found by an ASOF join (the last gap starting at or below a seq): a peer that holds
    every other seq is sent exactly the others, and one gap past our records changes nothing."""
    raws = [r.raw for r in synthetic.runs(keys[:1], 200)]
    with Store(tmp_path / "a.duckdb") as full:
        full.ingest(raws)
        author, top = full.query("SELECT author, max(seq) FROM records GROUP BY author").rows[0]
        odd = [[seq, seq] for seq in range(1, top, 2)]            # holds the even seqs only
        have = {author: [top + 10, [*odd, [top + 1, top + 9]], 0]}
        sent = [raw for batch in full.missing_for(have) for raw in batch]
        expected = full.query("SELECT raw FROM records WHERE seq % 2 = 1").rows
        assert sorted(sent) == sorted(raw for (raw,) in expected) and sent


def test_store_refuses_a_second_process_and_reports_it(tmp_path) -> None:
    import subprocess
    import sys
    path = tmp_path / "m.duckdb"
    with Store(path):
        code = f"from memory.store import Store\nStore({str(path)!r})"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "held by another process" in out.stderr


def test_identity_is_stable_and_private(tmp_path) -> None:
    home = tmp_path / "home"
    first = identity.load_or_create(home)
    assert identity.load_or_create(home).peer_id == first.peer_id
    key_file = home / "identity.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    os.chmod(key_file, 0o644)
    with pytest.raises(identity.IdentityError, match="chmod 600"):
        identity.load_or_create(home)
    os.chmod(key_file, 0o600)
    key_file.write_text("not hex")
    with pytest.raises(identity.IdentityError):
        identity.load_or_create(home)


def test_store_refuses_an_unknown_file_format(tmp_path) -> None:
    path = tmp_path / "m.duckdb"
    with Store(path) as s:
        s._con.execute("UPDATE meta SET value = '999' WHERE key = 'format'")
    with pytest.raises(StoreError, match="format 999"):
        Store(path)
