"""What one key that earned trust with one real training run can do on an honest node (trust
audit of 2026-12-02; docs/TRUST.md, "Roots and earned trust" and "Limits").

    PYTHONPATH=. .venv/bin/python scripts/audit_earned_key.py

The real roles, trust computation and DuckDB store, training simulated as in tests/roles
(tests/roles/trust_world.py, `EarnedWorld`). An honest node H (a root) fills its baseline; an honest
newcomer N publishes 4 runs of a better config and H's spot check vouches for it. A hostile key S
runs one baseline seed of the best config for real (the only training it does), which H's spot
check matches bit for bit: S is trusted (0.5). Then, with signatures only, in two worlds alike:

1. S "replays" a fabricated run of each of 3 free keys (same number, same hardware: exact
   matches): how many of them are trusted.
2. S vouches so for 1 free key T; S signs 40 baseline runs of the best config at 1.02 (the truth
   is 1.0, sd 0.002); S claims a config bit-identical to the base config (decay_frac 0.7 under
   cosine) with runs at the base config's true values and T signs fresh "verify" seeds; T
   contradicts one of N's runs that no root replayed (N's hardware, 0.05 worse), and H's next
   spot check; S and T contradict the run of N that H itself replayed.
3. With 30 more honest runs of H, T contradicts N's run that no root replayed (disputed: H's next
   spot check), and S signs "replays" of all H's baseline runs (their own numbers): the replay
   share counts every trusted author's replays, so it is spent; does H still settle the dispute
   (before the second fix of 2026-12-02, 1 such signature stopped H's spot checks for good)?

Prints one JSON line of what H derives after each step (before the fix of 2026-12-02: 3 minted
keys trusted, N distrusted by one minted replay, H's own replay outvoted (refuted), baseline mean
1.0163, the null claim verified and the best config here).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memory import synthetic                                                    # noqa: E402
from memory.store import Store                                                  # noqa: E402
from roles import evidence, spotcheck                                           # noqa: E402
from roles.verifier import Verifier                                             # noqa: E402
from tests.roles.trust_world import BASE, EarnedWorld, claim_body, run_body, sign  # noqa: E402


def minting(out: dict[str, Any], w: EarnedWorld) -> None:
    """Step 1: S vouches for 3 free keys."""
    out["S_trusted_after_one_run"] = evidence.verdicts_of(w.h).trust.trusted(w.s.peer_id)
    minted = [w.mint(5000 + i) for i in range(3)]
    out["minted_trusted_of_3"] = sum(evidence.verdicts_of(w.h).trust.trusted(t.peer_id)
                                     for t in minted)


def one_key(out: dict[str, Any], w: EarnedWorld) -> None:
    """Step 2: S vouches for one free key T, poisons the baseline, claims a null config, and the
    two contradict the newcomer's runs."""
    t = w.mint(5000)
    out["minted_trusted_of_1"] = evidence.verdicts_of(w.h).trust.trusted(t.peer_id)
    for s in range(40):
        sign(w.store, w.s, "run", run_body(BASE, 9000 + s, 1.02, "baseline"))
    out["base_mean_after_poison"] = round(evidence.baseline(w.h).floor().mean, 4)
    alias = {**BASE, "decay_frac": 0.7}
    true = {s: w.runner(alias, s, "manual", None).metrics.val_bpb
            for s in (*range(6), 100, 101, 102)}
    ids = [sign(w.store, w.s, "run", run_body(alias, s, true[s])).id for s in range(6)]
    base = evidence.baseline(w.h)
    claim = sign(w.store, w.s, "claim", claim_body(base.hash, alias, {"decay_frac": 0.7},
                                                   base.run_ids, ids, effect=-0.7)).id
    for s in range(100, 103):
        sign(w.store, t, "run", run_body(alias, s, true[s], "verify", claim))
    v = evidence.verdicts_of(w.h)
    out["null_claim_here"] = next(c for c in v.claims if c.id == claim).status
    out["best_config_decay_frac"] = evidence.best_config(w.h)["decay_frac"]
    lone = w.newcomer_run(replayed_by_h=False)
    w.contradict(t, lone)
    v = evidence.verdicts_of(w.h)
    out["N_distrusted_by_one_minted_replay"] = v.trust.distrusted(w.n.me)
    out["lone_run_now"] = v.trust.run_outcome.get(lone)
    out["H_spot_checks_lone_run_next"] = Verifier.spot_checks(w.h, 1)[0]["id"] == lone
    Verifier().work(w.h)
    v = evidence.verdicts_of(w.h)
    out["lone_run_after_H_replayed_it"] = v.trust.run_outcome.get(lone)
    out["T_distrusted"] = v.trust.distrusted(t.peer_id)
    checked = w.newcomer_run(replayed_by_h=True)
    out["S_trusted_before_outvoting"] = v.trust.trusted(w.s.peer_id)
    w.contradict(w.s, checked)
    v = evidence.verdicts_of(w.h)
    out["run_H_replayed_now"] = v.trust.run_outcome.get(checked)
    out["S_distrusted"] = v.trust.distrusted(w.s.peer_id)


def share(out: dict[str, Any], w: EarnedWorld) -> None:
    """Step 3: with 30 more honest runs of H, T contradicts N's run no root replayed, and S signs
    "replays" of all H's baseline runs (their own numbers: exact matches), spending the share."""
    for seed in range(100, 130):
        w.h.publish("run", w.runner(BASE, seed, "baseline", None))
    t = w.mint(5000)
    lone = w.newcomer_run(replayed_by_h=False)
    w.contradict(t, lone)
    out["share_H_would_spot_check_lone_run"] = [r["id"] for r in Verifier.spot_checks(w.h, 1)] \
        == [lone]
    mine = w.store.query("SELECT id, config, seed, val_bpb FROM runs WHERE author = ? AND purpose "
                         "= 'baseline' ORDER BY ts, id", [w.h.me]).rows
    for run_id, config, seed, value in mine:
        sign(w.store, w.s, "run", run_body(json.loads(config), seed, value, "replay", run_id))
    out["share_replays_S_signed"] = len(mine)
    out["share_spent"] = not spotcheck.budget_left(evidence.verdicts_of(w.h), w.h.me)
    out["share_H_spot_checks_lone_run_still"] = [r["id"] for r in Verifier.spot_checks(w.h, 1)] \
        == [lone]
    Verifier().work(w.h)
    out["share_lone_run_then"] = evidence.verdicts_of(w.h).trust.run_outcome.get(lone)


def main() -> None:
    """Run the scenario and print what the honest node derives."""
    out: dict[str, Any] = {}
    for step in (minting, one_key, share):
        keys = synthetic.keypairs(3, seed=42)
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "memory.duckdb") as store:
            step(out, EarnedWorld(store, keys))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
