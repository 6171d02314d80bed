"""What a key that earned trust (one real run) can do by signing worse baseline runs under
another CPU model (trust audit 3, 2026-12-02; docs/TRUST.md, "Limits").

    PYTHONPATH=. .venv/bin/python scripts/audit_cross_hw_poison.py

The real roles, trust computation and DuckDB store, training simulated as in tests/roles
(tests/roles/trust_world.py, `EarnedWorld`: honest node H, a root, with its baseline; hostile key S
trusted at 0.5 for one real baseline run H matched bit for bit). Per world: an honest author (the
newcomer N, trusted) runs 6 seeds of a null config (lr 0.0055: no effect, the truth 1.0) and 6 of
a real improvement (lr 0.006: 0.01 better, 5 sd) and claims each beats the base config, after S
signed 40 baseline runs of the base config OFF bpb worse than the truth (1.0, sd 0.002), naming
another CPU model, with signatures only; then H's verifier steps (the audit of trusted authors'
runs) replay them within H's share. Prints one JSON line per OFF: the
base config's baseline mean, each claim's status here, S's standing and what H's replays of
S's runs said, before and after the verifier steps. Before the fix of 2026-12-02 (a replay across
hardware refuted only a run better than itself), OFF 0.6 left S trusted and the real claim not
supported; now S is distrusted and the claim verified. With the bound 0.5 for every config, OFF 0.2
did as much (q 0.077); now the bound is the config's, 10 sds of the roots' own runs of it, at least
0.1 (roles/trust.py `cross_bounds`): OFF 0.2 is caught, 0.02 and 0.08 are not (TRUST.md, "Limits").
Then OFF 0.2 and 0.6 again with the runs named `cuda` "NVIDIA H200" (another accelerator kind:
no replay on this node compares, so neither is caught; H's one spot check went to one of them and
said nothing until spot checks kept to this node's accelerator kind, `spotcheck.replayable`;
the poison counted, baseline 1.1267 and 1.3807, until a non-root author's runs counted only on
the accelerator kinds where a trusted replay matched one of its runs, `trust.run_key`: now both
read as the world without poison, S trusted, its `cuda` runs counted nowhere).
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
from roles import evidence                                                      # noqa: E402
from roles.verifier import Verifier                                             # noqa: E402
from tests.roles.trust_world import BASE, EarnedWorld                            # noqa: E402

NULL = {**BASE, "lr": 0.0055}
OFFSETS = (0.0, 0.02, 0.08, 0.2, 0.6)
STEPS = 4                           # verifier steps after the poison


def state(w: EarnedWorld, ids: dict[str, str]) -> dict[str, Any]:
    """What H derives now."""
    v = evidence.verdicts_of(w.h)
    mine = [r for r in v.trust.replays if r.replayer == w.h.me and r.target_author == w.s.peer_id]
    return {"baseline_mean": round(evidence.baseline(w.h).floor().mean, 4),
            **{f"{name}_claim": next(f"{c.status}: {c.reason}" for c in v.claims if c.id == i)
               for name, i in ids.items()},
            "S": v.trust.standing(w.s.peer_id).status,
            "H_replays_of_S_comparable": len(mine),
            "H_replays_of_S_refuting": sum(not r.match for r in mine)}


def world(off: float, gpu: bool = False) -> dict[str, Any]:
    """One world: the poison at `off` (named as on a GPU when `gpu`: `EarnedWorld.poison`), then
    the two claims, then H's verifier steps."""
    keys = synthetic.keypairs(3, seed=42)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "memory.duckdb") as store:
        w = EarnedWorld(store, keys)
        if off:
            w.poison(1.0 + off, None if gpu else "another cpu", gpu=gpu)
        ids = {"null": w.claim(NULL), "real": w.claim(w.better)}
        out: dict[str, Any] = {"off": off, "gpu": gpu, "before_audit": state(w, ids)}
        out["steps"] = [Verifier().work(w.h) for _ in range(STEPS)]
        out["after_audit"] = state(w, ids)
        return out


def main() -> None:
    """Print one JSON line per poison offset (0: no attack), then the GPU-named ones."""
    for off in OFFSETS:
        print(json.dumps(world(off)))
    for off in (0.2, 0.6):
        print(json.dumps(world(off, gpu=True)))


if __name__ == "__main__":
    main()
