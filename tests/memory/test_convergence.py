"""Property: stores that receive the same records in any order, with duplicates and losses, and then
exchange anti-entropy summaries, end up answering every view identically."""
from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from memory import codec, synthetic
from memory.store import Store
from tests.helpers import BASE, CANDIDATE, bodies, run
from tests.memory.snapshots import snapshot


@functools.cache
def pool() -> tuple[bytes, ...]:
    """A fixed pool of signed records: runs with near-tied means, claims, assessments,
    verifications, and one author who equivocates."""
    a, b, c = synthetic.keypairs(3, seed=5)
    out = []
    for i in range(12):                       # two configs, means that tie at some subsets
        config = BASE if i % 2 else CANDIDATE
        out.append(run(a if i < 6 else b, i // 2 + 1 + (0 if i < 6 else 10), config, seed=i,
                       bpb=[1.2, 1.2, 1.25, 1.15, 1.3, 1.1][i % 6], ts=1_000 + i))
    claim = codec.sign(a, "claim", 4, bodies(run_id=out[0].id)["claim"], ts=2_000)
    b_ = bodies(claim_id=claim.id, run_id=out[0].id)
    out += [claim,
            codec.sign(b, "assessment", 1, b_["assessment"], ts=3_000),
            codec.sign(c, "assessment", 1, b_["assessment"].model_copy(update={"verdict": "not_supported"}),
                       ts=3_000),                                  # same ts: tie broken by id
            codec.sign(c, "verification", 2, b_["verification"], ts=4_000),
            codec.sign(a, "verification", 5, b_["verification"], ts=4_000),
            run(c, 3, BASE, seed=99, bpb=1.19, ts=5_000),
            run(c, 3, CANDIDATE, seed=98, bpb=1.18, ts=5_001)]    # c equivocates at seq 3
    return tuple(r.raw for r in out)


def _exchange(stores: list[Store]) -> None:
    for _ in range(2):        # the second round settles equivocations seen on one side only
        for dst in stores:
            for src in stores:
                if src is not dst:
                    dst.ingest(raw for batch in src.missing_for(dst.have(), 2048) for raw in batch)


deliveries = st.lists(st.tuples(st.integers(0, len(pool()) - 1), st.integers(0, 2)),
                      min_size=0, max_size=60)


@pytest.mark.timeout(900)     # 30 examples of 3 stores: 190 s on a loaded 2-core machine
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chosen=st.sets(st.integers(0, len(pool()) - 1)), extra=deliveries,
       seeds=st.lists(st.integers(), min_size=3, max_size=3))
def test_three_stores_converge(chosen, extra, seeds) -> None:
    import random
    records = [pool()[i] for i in sorted(chosen)]
    stores = [Store(":memory:") for _ in range(3)]
    try:
        for k, s in enumerate(stores):
            rng = random.Random(seeds[k])
            mine = [r for r in records if rng.random() > 0.3]               # losses
            mine += [pool()[i] for i, who in extra if who == k and pool()[i] in records]  # dups
            rng.shuffle(mine)
            for i in range(0, len(mine), 4):                                # several batches
                s.ingest(mine[i:i + 4])
        # whatever nobody received is lost for everyone; deliver it to one store
        held = set().union(*(set(raw for b in s.missing_for({}) for raw in b) for s in stores))
        stores[0].ingest(r for r in records if r not in held)
        _exchange(stores)
        reference = Store(":memory:")
        reference.ingest(records)
        expected = snapshot(reference)
        for s in stores:
            assert s.digest() == reference.digest()
            assert snapshot(s) == expected
        reference.close()
    finally:
        for s in stores:
            s.close()
