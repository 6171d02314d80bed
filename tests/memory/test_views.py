"""The derived views over real records: dead ends are screens that were never promoted."""
from __future__ import annotations

from memory import canonical, codec, records as R, synthetic
from memory.store import Store

TRACK = "synthetic-track"
BASE = {"n_layer": 4, "lr": 0.003}


def _claim(candidate: dict, runs: list[R.Record]) -> R.ClaimBody:
    return R.ClaimBody(track=TRACK, baseline_hash=canonical.config_hash(BASE),
                       candidate_hash=canonical.config_hash(candidate), diff={"lr": candidate["lr"]},
                       baseline_runs=[], candidate_runs=[r.id for r in runs], effect=-0.01,
                       summary="better")


def test_dead_ends_hold_unpromoted_screens_and_failed_confirmations_apart() -> None:
    (key,) = synthetic.keypairs(1, seed=5)
    seq = iter(range(1, 100))

    def run(lr: float, purpose: str, status: str = "ok") -> R.Record:
        body = synthetic.run_body(TRACK, {**BASE, "lr": lr}, next(seq),
                                  1.5 if status == "ok" else None, status=status, purpose=purpose)
        return codec.sign(key, "run", next(seq), body, ts=1_000 + len(records))

    records: list[R.Record] = []
    records += [run(0.01, "screen"), run(0.01, "screen", "crash")]   # screened, never promoted
    records += [run(0.02, "screen"), run(0.02, "confirm"), run(0.02, "confirm")]   # failed confirm
    claimed = [run(0.03, "screen"), run(0.03, "confirm")]                          # claimed
    records += claimed + [run(0.003, "baseline")]
    records.append(codec.sign(key, "claim", next(seq), _claim({**BASE, "lr": 0.03}, claimed[1:]),
                              ts=5_000))
    with Store(":memory:", helpers=0) as store:
        assert store.add(records).accepted == len(records)
        dead = store.query("SELECT config_hash, runs, ok_runs FROM dead_ends").rows
        failed = store.query("SELECT config_hash, runs, ok_runs FROM failed_confirmations").rows
    assert dead == [(canonical.config_hash({**BASE, "lr": 0.01}), 2, 1)]
    assert failed == [(canonical.config_hash({**BASE, "lr": 0.02}), 3, 3)]
