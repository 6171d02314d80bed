"""The statistician's multiplicity rule (LOND over the screened family, memory/stats.py) through
the real verdicts (roles/verdicts.py) on real stores: a decision stays as the family grows, does
not depend on the order the records arrived in, and strangers' screens do not move it."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from memory import canonical, codec, records as R, stats, synthetic
from memory.crypto import Keypair
from memory.store import Store
from roles import sanity
from roles.verdicts import Verdicts

TRACK = "sim-track"
SD = 0.002
BASE: dict[str, Any] = {"lr": 0.003, "n_layer": 3}
FACTS = sanity.TrackFacts({TRACK: None})
PARAMS = stats.GateParams(null_claim=3.0)   # the hand-computed q below take null_claim 3
BASE_Z = [-1.6, -1.1, -0.8, -0.5, -0.3, -0.1, 0.0, 0.1, 0.2, 0.4, 0.5, 0.7, 0.9, 1.2, 1.5, -0.2]
CONFIRM_Z = [0.3, -0.4, 0.1, -0.2, 0.2, 0.0]   # min_confirm (6) runs


def candidate(i: int) -> dict[str, Any]:
    """The i-th candidate config of the family."""
    return {**BASE, "lr": round(0.001 + i * 1e-5, 8)}


class History:
    """Records signed with chosen timestamps (kept, so they can be stored in any order)."""

    def __init__(self, authors: list[Keypair]) -> None:
        self.records: list[R.Record] = []
        self.seq = {k.peer_id: 0 for k in authors}
        self.ts = 1_000_000

    def sign(self, key: Keypair, kind: str, body: R.Body, ts: int | None = None) -> R.Record:
        self.seq[key.peer_id] = self.seq.get(key.peer_id, 0) + 1
        if ts is None:
            self.ts += 1000
        record = codec.sign(key, kind, self.seq[key.peer_id], body,
                            ts=self.ts if ts is None else ts)
        self.records.append(record)
        return record

    def run(self, key: Keypair, config: dict, seed: int, bpb: float, purpose: str,
            ref: str | None = None, ts: int | None = None) -> R.Record:
        body = synthetic.run_body(TRACK, dict(config), seed, round(bpb, 9), purpose=purpose, ref=ref)
        return self.sign(key, "run", body, ts)

    def baseline(self, key: Keypair) -> list[R.Record]:
        return [self.run(key, BASE, s, 1 + SD * z, "baseline") for s, z in enumerate(BASE_Z)]

    def screen(self, key: Keypair, i: int, ts: int | None = None) -> R.Record:
        return self.run(key, candidate(i), 1000 + i, 1 + SD * 0.3, "screen", ts=ts)

    def claim(self, key: Keypair, i: int, shift_sd: float, base: list[R.Record]) -> R.Record:
        """Confirmation runs `shift_sd` sds better than the base, and the claim citing them."""
        cand = candidate(i)
        runs = [self.run(key, cand, s, 1 + SD * (z - shift_sd), "confirm")
                for s, z in enumerate(CONFIRM_Z)]
        return self.sign(key, "claim", R.ClaimBody(
            track=TRACK, baseline_hash=canonical.config_hash(BASE),
            candidate_hash=canonical.config_hash(cand), diff={"lr": cand["lr"]},
            baseline_runs=[r.id for r in base], candidate_runs=[r.id for r in runs],
            effect=-shift_sd * SD, summary="better"))

    def verify(self, key: Keypair, claim: R.Record, i: int) -> None:
        for s in range(3):
            self.run(key, candidate(i), 500 + s, 1 - 3 * SD + SD * 0.1 * s, "verify", ref=claim.id)


def shift_for(p: float) -> float:
    """The shift (in sds) of CONFIRM_Z that gives the claim test this p against BASE_Z."""
    base = [1 + SD * z for z in BASE_Z]
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        got = stats.claim_test([1 + SD * (z - mid) for z in CONFIRM_Z], base, PARAMS).p
        lo, hi = (mid, hi) if got > p else (lo, mid)
    return hi


def verdicts(store: Store, roots: list[Keypair]) -> Verdicts:
    return Verdicts(store, TRACK, frozenset(k.peer_id for k in roots), FACTS, PARAMS)


def store_all(path: Path, records: list[R.Record]) -> Store:
    store = Store(path)
    assert store.add(records).accepted == len(records)
    return store


def test_a_verified_claim_stays_verified_as_the_family_grows(tmp_path: Path) -> None:
    # Candidate 0 is screened first (slot 1), 559 more follow, then its claim with p = 1.62e-4:
    # LOND's q in slot 1 is 3 * p / gamma_1 = 0.0498. BH over the family (the old rule, p
    # scaled by 0.5) gave q = 0.5 * p * 560 = 0.0454 at the claim, 0.0502 > 0.05 at 620 screens.
    a, b = synthetic.keypairs(2, seed=7)
    h = History([a, b])
    base = h.baseline(a)
    for i in range(560):
        h.screen(a, i)
    claim = h.claim(a, 0, shift_for(1.62e-4), base)
    h.verify(b, claim, 0)
    store = store_all(tmp_path / "m.duckdb", h.records)
    before = {c.id: c for c in verdicts(store, [a, b]).claims}[claim.id]
    assert before.status == "verified" and before.p == pytest.approx(1.62e-4, rel=1e-3)
    assert before.q == pytest.approx(0.0498, abs=2e-4)
    for i in range(560, 625):
        store.add([h.screen(a, i)])
        after = {c.id: c for c in verdicts(store, [a, b]).claims}[claim.id]
        assert (after.status, after.q) == ("verified", before.q), i
    # Baseline seeds made after the claim, however unlucky, do not move its evidence either.
    store.add([h.run(a, BASE, 100 + s, 1 + 5 * SD, "baseline") for s in range(20)])
    after = {c.id: c for c in verdicts(store, [a, b]).claims}[claim.id]
    assert (after.status, after.p, after.q) == ("verified", before.p, before.q)
    store.close()


def _history(a: Keypair, b: Keypair, stranger: Keypair) -> tuple[History, list[R.Record]]:
    """Two trusted authors screening 40 candidates, five claims (strong, borderline, weak),
    verifications, and a stranger's screens and claim."""
    h = History([a, b, stranger])
    base = h.baseline(a) + h.baseline(b)[:4]
    claims = []
    for i in range(40):
        h.screen(a if i % 2 else b, i)
        if i % 8 == 7:
            h.screen(stranger, 1000 + i)
        if i in (3, 12, 20, 29, 37):
            who = b if i % 2 else a
            p = {3: 1e-6, 12: 1e-4, 20: 2e-3, 29: 2e-5, 37: 1.5e-4}[i]
            claims.append(h.claim(who, i, shift_for(p), base))
            h.verify(a if who is b else b, claims[-1], i)
    claims.append(h.claim(stranger, 2000, 4.0, base))
    return h, claims


def test_two_stores_that_got_the_records_in_other_orders_agree(tmp_path: Path) -> None:
    a, b, stranger = synthetic.keypairs(3, seed=11)
    h, claims = _history(a, b, stranger)
    shuffled = list(h.records)
    random.Random(5).shuffle(shuffled)
    first = store_all(tmp_path / "one.duckdb", h.records)
    second = Store(tmp_path / "two.duckdb")
    for k in range(0, len(shuffled), 17):                # in batches, in another order
        second.add(shuffled[k:k + 17])
    one, two = verdicts(first, [a, b]), verdicts(second, [a, b])
    rows = [c.as_row() for c in one.claims]
    assert rows == [c.as_row() for c in two.claims]
    assert one.best() == two.best()
    status = {r["id"]: r["status"] for r in rows}
    # the strong ones are verified, the weak one (p = 2e-3 > every slot's bar) is not
    assert status[claims[0].id] == status[claims[3].id] == "verified"
    assert status[claims[2].id] == "not_supported"
    assert one.discoveries == two.discoveries >= 3
    first.close()
    second.close()


def test_strangers_backdated_screens_move_no_trusted_decision(tmp_path: Path) -> None:
    a, b, stranger = synthetic.keypairs(3, seed=11)
    h, _ = _history(a, b, stranger)
    store = store_all(tmp_path / "m.duckdb", h.records)
    before = [c.as_row() for c in verdicts(store, [a, b]).claims if c.trusted]
    flood = History([stranger])
    flood.seq[stranger.peer_id] = h.seq[stranger.peer_id]
    store.add([flood.screen(stranger, 5000 + i, ts=10 + i) for i in range(200)])
    assert [c.as_row() for c in verdicts(store, [a, b]).claims if c.trusted] == before
    # A backdated screen by a trusted author does take a slot before the claims after it
    # (docs/ROLES.md says what that can do): the strong claims stay verified.
    store.add([h.screen(a, 9000, ts=10)])
    after = {c.id: c for c in verdicts(store, [a, b]).claims}
    assert all(after[r["id"]].q >= r["q_value"] for r in before if r["q_value"] is not None)
    store.close()
