"""What one key that earned trust with one real training run can do on an honest node (trust
audit of 2026-12-02; docs/TRUST.md, "Limits").

    PYTHONPATH=. .venv/bin/python scripts/audit_earned_key.py

The real roles, trust computation and DuckDB store, training simulated as in tests/roles. An honest
node H (a root) fills its baseline; an honest newcomer N publishes 4 runs of a better config and
H's spot check vouches for it. A hostile key S runs one baseline seed of the best config for real
(the only training it does), which H's spot check matches bit for bit: S is trusted (0.5). Then,
with signatures only: S "replays" a fabricated run of each of 3 free keys (same number, same
hardware: an exact match), minting 3 trusted keys (0.25); one of them contradicts one of N's runs
that no root replayed (N's hardware, 0.05 worse); two of them contradict the run of N that H itself
replayed; S signs 40 baseline runs of the best config at 1.02 (the truth is 1.0, sd 0.002); S claims a config bit-identical to the
base config (decay_frac 0.7 under cosine) with runs at the base config's true values, and one minted
key signs fresh "verify" seeds. Prints one JSON line of what H derives after each step.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memory import synthetic                                                    # noqa: E402
from memory.store import Store                                                  # noqa: E402
from roles import evidence                                                      # noqa: E402
from roles.verifier import Verifier                                             # noqa: E402
from tests.roles.trust_world import (BASE, SD, Runner, baseline_ready, claim_body,  # noqa: E402
                                     hostile, node, run_body, sign)


def main() -> None:
    """Run the scenario and print what the honest node derives."""
    keys = synthetic.keypairs(3, seed=42)
    runner = Runner({("lr", 0.006): -5 * SD})
    better = {**BASE, "lr": 0.006}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "memory.duckdb") as store:
        h, n = node(store, keys[0], runner, 1), node(store, keys[1], runner, 2)
        baseline_ready(h)
        nruns = [n.publish("run", runner(better, s, "baseline", None)).id for s in range(4)]
        s_key, *minted = hostile(4)
        node(store, s_key, runner, 3).publish("run", runner(BASE, 777, "baseline", None))
        for _ in range(6):
            Verifier().work(h)
        out = {"S_trusted_after_one_run": evidence.verdicts_of(h).trust.trusted(s_key.peer_id)}
        for i, t in enumerate(minted):
            fake = sign(store, t, "run", run_body(BASE, 5000 + i, 1.02, "baseline"))
            sign(store, s_key, "run", run_body(BASE, 5000 + i, 1.02, "replay", fake.id))
        v = evidence.verdicts_of(h)
        out["minted_trusted"] = sum(v.trust.trusted(t.peer_id) for t in minted)
        by_h = {r.target for r in v.trust.replays if r.replayer == h.me}
        seeds = dict(store.query("SELECT id, seed FROM runs WHERE id IN (SELECT unnest(?))",
                                 [nruns]).rows)
        value = {i: runner(better, seeds[i], "manual", None).metrics.val_bpb for i in nruns}
        lone = next(i for i in nruns if i not in by_h)
        sign(store, minted[0], "run", run_body(better, seeds[lone], value[lone] + 0.05, "replay",
                                               lone))
        v = evidence.verdicts_of(h)
        out["N_distrusted_by_one_minted_replay"] = v.trust.distrusted(n.me)
        checked = next(i for i in nruns if i in by_h)
        for t in minted[1:]:
            sign(store, t, "run", run_body(better, seeds[checked], value[checked] + 0.05,
                                           "replay", checked))
        v = evidence.verdicts_of(h)
        out["run_H_reproduced_now"] = v.trust.run_outcome.get(checked)
        base = evidence.baseline(h)
        for s in range(40):
            sign(store, s_key, "run", run_body(BASE, 9000 + s, 1.02, "baseline"))
        out["base_mean_after_poison"] = round(evidence.baseline(h).floor().mean, 4)
        alias = {**BASE, "decay_frac": 0.7}
        ids = [sign(store, s_key, "run", run_body(alias, s, runner(alias, s, "manual", None).metrics
                                                  .val_bpb)).id for s in range(6)]
        base = evidence.baseline(h)
        claim = sign(store, s_key, "claim", claim_body(base.hash, alias, {"decay_frac": 0.7},
                                                       base.run_ids, ids, effect=-0.7)).id
        for s in range(3):
            sign(store, minted[0], "run", run_body(alias, 100 + s, runner(alias, 100 + s, "manual",
                                                   None).metrics.val_bpb, "verify", claim))
        v = evidence.verdicts_of(h)
        view = next(c for c in v.claims if c.id == claim)
        out["null_claim_here"] = view.status
        out["best_config_decay_frac"] = evidence.best_config(h)["decay_frac"]
        print(json.dumps(out))


if __name__ == "__main__":
    main()
