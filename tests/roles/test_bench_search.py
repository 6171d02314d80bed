"""`swarm bench search`: the simulated surfaces and the arms (shape and truth, never speed)."""
from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from node.harness.config import Config
from swarm.bench import search
from swarm.bench.search_surface import BEST_GAIN, SD, SURFACES, Surface, SurfaceRunner
from swarm.cli import app

BASE = Config().model_dump()
OPTIMUM = {**BASE, "lr": 0.006, "n_layer": 5, "warmup_frac": 0.08, "weight_decay": 0.05,
           "mlp_ratio": 3.0, "init_scale": 2**-0.5, "activation": "swiglu", "norm": "rmsnorm",
           "pos_encoding": "rope"}


@pytest.mark.parametrize("kind", SURFACES)
def test_surfaces_have_the_known_optimum(kind: str) -> None:
    surface = Surface(kind, BASE)
    assert surface.gain(BASE) == pytest.approx(0.0, abs=1e-9)
    assert surface.gain(OPTIMUM) == pytest.approx(BEST_GAIN)
    assert surface.gain({**OPTIMUM, "lr": 0.012}) < BEST_GAIN        # any move off it costs
    assert surface.gain({**OPTIMUM, "norm": "layernorm"}) < BEST_GAIN


def test_runner_noise_is_fixed_per_seed_and_scaled() -> None:
    surface = Surface("separable", BASE)
    normal = SurfaceRunner(surface, "t", "normal")
    assert normal.draw(BASE, 3) == normal.draw(BASE, 3) != normal.draw(BASE, 4)
    hetero = SurfaceRunner(surface, "t", "hetero")
    cand = {**BASE, "lr": 0.004}
    spread = [hetero.draw(cand, s) for s in range(400)]
    sd = math.sqrt(sum((v - sum(spread) / 400) ** 2 for v in spread) / 399)
    assert 1.6 * SD < sd < 2.4 * SD                                  # candidates: twice the noise
    crashy = SurfaceRunner(surface, "t", "normal", crash=0.5)
    bodies = [crashy(BASE, s, "baseline", None) for s in range(100)]
    assert 30 < sum(b.status == "crash" for b in bodies) < 70
    assert all(b.metrics.val_bpb is None for b in bodies if b.status == "crash")


def test_cli_ungated_arms_and_bad_input() -> None:
    out = CliRunner().invoke(app, ["bench", "search", "--arm", "random", "--arm", "greedy",
                                   "--runs", "40", "--reps", "2", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["results"]
    assert [r["arm"] for r in rows] == ["random", "greedy"] and all(r["reps"] == 2 for r in rows)
    greedy = rows[1]
    assert greedy["verified"] > 0 and greedy["false_share"] is not None   # kept changes, some bad
    assert CliRunner().invoke(app, ["bench", "search", "--noise", "loud"]).exit_code != 0
    assert CliRunner().invoke(app, ["bench", "gate", "--null-share", "1.5"]).exit_code != 0


def test_swarm_arm_drives_the_real_roles_without_stalling() -> None:
    cond = search.Cond(runs=24, nodes=2, checkpoints=(24,),
                       params=search.stats.GateParams(min_baseline=4, min_start=4))
    out = search.swarm_arm(cond)
    assert out["runs"] >= 24 and not out["stalled"]
    assert sum(out["proposals"].values()) >= 1 and 24 in out["curve"]


def test_the_swarm_arm_reproduces_its_records() -> None:
    """Time is simulated: the same condition signs the same records (wall time would change their
    ts, so their ids, and the roles' tie-breaks with them)."""
    cond = search.Cond(runs=12, nodes=2, checkpoints=(12,),
                       params=search.stats.GateParams(min_baseline=4, min_start=4))
    first, second = search.swarm_arm(cond), search.swarm_arm(cond)
    assert first["runs"] >= 12 and first == second


def test_the_response_surface_arm_takes_over_once_the_track_has_outcomes() -> None:
    cond = search.Cond(runs=160, nodes=2, checkpoints=(160,),
                       params=search.stats.GateParams(min_baseline=4, min_start=4))
    out = search.run_arm("rsm_gated", cond)
    assert out["runs"] >= 160 and not out["stalled"]
    assert set(out["proposals"]) == {"rsm", "random"}
    assert out["proposals"]["rsm"] >= 1 and out["proposals"]["random"] >= 1


def test_sim_mode_runs_the_gate_rules() -> None:
    out = CliRunner().invoke(app, ["bench", "search", "--mode", "sim", "--noise", "normal",
                                   "--noise", "hetero", "--effect", "4", "--candidates", "20",
                                   "--reps", "10", "--null-share", "0.5", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["results"]
    assert [r["noise"] for r in rows] == ["normal", "hetero"]
    normal, hetero = rows
    assert normal["power"] > 0.8 and normal["fdr_verified"] < 0.1      # 4-sd effects pass
    assert normal["real"] + normal["null"] == 200
    assert hetero["runs_per_real"] > normal["runs_per_real"]            # noisier costs more
