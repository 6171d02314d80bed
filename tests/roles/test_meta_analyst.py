"""The meta-analyst's knob fit when settings are aliased (docs/ROLES.md "Aliased knobs").

Knobs always changed together cannot be told apart: the fit reports the joint effect of each
combination that ran, never two numbers with enormous errors, and the finding calls nothing
"helped" or "did not help" that the runs do not identify. Expected values are computed by hand.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from memory import records as R, synthetic
from memory.store import ReadOnlyMemory, Store
from node.home import memory_path
from roles.meta_analyst import MetaAnalyst, fit, fit_all, quality_lines
from roles.strategy import Strategy
from swarm.cli import app
from swarm.web.app import dashboard_app
from tests.roles.simulated import BASE, TRACK, context

BOTH = {**BASE, "lr": 0.006, "norm": "rmsnorm"}          # lr and norm always changed together


def test_two_knobs_always_changed_together_are_one_joint_effect() -> None:
    y = [1.0, 1.01, 0.99, 1.0, 0.97, 0.98, 0.96, 0.97]
    (e,) = fit([BASE] * 4 + [BOTH] * 4, y, BASE)
    # Residuals +-0.01 twice in each group of 4: s2 = 4e-4 / (8 - 2); se = sqrt(s2 (1/4 + 1/4)).
    assert (e.knob, json.loads(e.value), e.n) == ("lr & norm", {"lr": 0.006, "norm": "rmsnorm"}, 4)
    assert e.effect == pytest.approx(-0.03, abs=1e-12)
    assert e.stderr == pytest.approx(math.sqrt(4e-4 / 6 / 2), rel=1e-9)


def test_a_knob_aliased_with_two_others_gives_the_combinations_that_ran() -> None:
    # lr's runs are exactly norm's runs plus n_layer's: lr = norm + n_layer, so no single one of
    # the three is identified; activation, changed on its own, still is.
    deep = {**BASE, "lr": 0.006, "n_layer": 4}
    relu = {**BASE, "activation": "relu"}
    configs = [BASE] * 3 + [BOTH] * 3 + [deep] * 3 + [relu] * 3
    y = [1.0, 1.01, 0.99, 0.97, 0.98, 0.96, 1.02, 1.03, 1.01, 0.995, 1.005, 1.0]
    effects = {e.knob: e for e in fit(configs, y, BASE)}
    assert set(effects) == {"activation", "lr & n_layer", "lr & norm"}
    # Four cell means, rank 4: each effect is its cell's mean minus the base's (1.0); s2 pools
    # the within-cell squares (2e-4, 2e-4, 2e-4, 0.5e-4) over 12 - 4 dof.
    s2 = 6.5e-4 / 8
    assert effects["lr & norm"].effect == pytest.approx(-0.03, abs=1e-12)
    assert effects["lr & n_layer"].effect == pytest.approx(0.02, abs=1e-12)
    assert effects["activation"].effect == pytest.approx(0.0, abs=1e-12)
    for e in effects.values():
        assert e.n == 3 and e.stderr == pytest.approx(math.sqrt(s2 * 2 / 3), rel=1e-9)
    assert json.loads(effects["lr & n_layer"].value) == {"lr": 0.006, "n_layer": 4}
    # Fewer runs than columns: the same two combinations, exact, with no dof for an error.
    few = fit([BASE, BOTH, deep], [1.0, 0.97, 1.02], BASE)
    assert [(e.knob, round(e.effect, 12), e.stderr) for e in few] == [
        ("lr & norm", -0.03, None), ("lr & n_layer", 0.02, None)]


def test_a_setting_every_run_changed_is_not_identified() -> None:
    # No run has the base lr: lr=0.006 has no effect relative to the base config at all; norm's
    # effect (relative to runs with lr=0.006 alone) is identified.
    only_lr = {**BASE, "lr": 0.006}
    found = fit_all([only_lr] * 3 + [BOTH] * 3, [1.0, 1.1, 1.2, 0.9, 0.95, 1.0], BASE)
    (e,) = found.effects
    assert (e.knob, e.value, e.n) == ("norm", "rmsnorm", 3)
    assert e.effect == pytest.approx(-0.15, abs=1e-12)
    assert e.stderr == pytest.approx(math.sqrt((0.02 + 0.005) / 4 * (2 / 3)), rel=1e-9)
    assert found.unidentified == [("lr", 0.006)]


def test_independent_knobs_are_estimated_as_before() -> None:
    # The figures the fit gave before aliasing was handled (its ridge path), to 1e-12: not to
    # the last bit, which BLAS may compute differently from one call to the next (a loaded
    # suite run once read -0.00955536707419858 for the first effect).
    both = {**BASE, "lr": 0.006, "norm": "rmsnorm"}
    configs = ([BASE] * 3 + [{**BASE, "lr": 0.006}] * 3 + [{**BASE, "norm": "rmsnorm"}] * 3
               + [both] * 2)
    y = [1.0, 1.002, 0.998, 0.99, 0.991, 0.989, 1.006, 1.004, 1.005, 0.995, 0.997]
    got = [(e.knob, e.value, e.effect, e.stderr, e.n) for e in fit(configs, y, BASE)]
    assert got == [
        ("lr", 0.006, pytest.approx(-0.009555367074198575, rel=1e-12),
         pytest.approx(0.0008240218691737018, rel=1e-12), 5),
        ("norm", "rmsnorm", pytest.approx(0.0054446279258030675, rel=1e-12),
         pytest.approx(0.0008240218691737018, rel=1e-12), 5)]


def _publish_runs(ctx, configs_values: list[tuple[dict, float]]) -> None:
    for seed, (config, value) in enumerate(configs_values):
        purpose = "baseline" if config == BASE else "manual"
        ctx.publish("run", synthetic.run_body(TRACK, dict(config), seed, value, purpose=purpose))


def test_the_finding_never_calls_an_unidentified_effect_sure(store, keys) -> None:
    # Noise-free runs: the ridge split the joint -0.03 into two halves with a zero standard
    # error, and the finding said each of lr and norm "helped".
    ctx = context(store, keys[0], None)
    _publish_runs(ctx, [(BASE, 1.0)] * 4 + [(BOTH, 0.97)] * 4)
    assert MetaAnalyst().work(ctx) == "finding: 1 knob setting estimated; best so far " \
                                      "lr=0.006 & norm=rmsnorm (-0.0300)"
    text = ctx.rows("SELECT text FROM findings")[0]["text"]
    helped, hurt = text.splitlines()[:2]
    assert helped.startswith("helped: lr=0.006 & norm=rmsnorm -0.0300")
    assert hurt == "did not help: nothing"
    assert "never tried: activation, n_layer" in text
    assert "joint effects (these settings only ran in combinations" in text
    assert Strategy(explore=0.0).propose(ctx).diff == {"lr": 0.006, "norm": "rmsnorm"}


def test_an_unidentified_setting_is_named_so_and_never_sure(store, keys) -> None:
    only_lr = {**BASE, "lr": 0.006}
    ctx = context(store, keys[0], None)
    _publish_runs(ctx, [(only_lr, 1.0)] * 3 + [(BOTH, 0.97)] * 3)
    assert MetaAnalyst().work(ctx).startswith("finding: 1 knob setting estimated")
    text = ctx.rows("SELECT text FROM findings")[0]["text"]
    assert "lr=0.006" not in text.split("never tried")[0]              # neither helped nor hurt
    assert "not identified (no run separates them from the base config): lr=0.006" in text
    assert "never tried: activation, n_layer\n" in text                # lr was tried


def test_quality_of_a_setting_joint_in_that_measure_is_shown_as_the_joint_effect() -> None:
    single = R.KnobEffect(knob="lr", value=0.006, effect=-0.01, stderr=0.002, n=4)
    joint = R.KnobEffect(knob="lr & norm", value=json.dumps({"lr": 0.006, "norm": "rmsnorm"}),
                         effect=0.1, stderr=0.01, n=3)
    table = {(joint.knob, json.dumps(joint.value)): joint}
    (line,) = quality_lines([single], {"repetition": table})
    assert line == ("  lr=0.006: val_bpb -0.0100; "
                    "repetition (jointly: lr=0.006 & norm=rmsnorm) +0.100 +- 0.01")


def test_a_joint_effect_reads_back_only_when_whole() -> None:
    value = json.dumps({"lr": 0.006, "norm": "rmsnorm"})
    assert R.effect_settings("lr & norm", value) == {"lr": 0.006, "norm": "rmsnorm"}
    assert R.effect_settings("lr & warmup", value) == {"lr & warmup": value}     # names differ
    deep = "{" + '"a": [' * 100_000
    assert R.effect_settings("a & b", deep) == {"a & b": deep}                   # no recursion
    nested = json.dumps({"a": {"x": 1}, "b": 2})
    assert R.effect_settings("a & b", nested) == {"a & b": nested}
    long = [f"knob_{i:02d}" for i in range(12)]
    assert len(R.joint_knob(long)) == 80
    assert R.effect_settings(R.joint_knob(long), json.dumps(dict.fromkeys(long, 1))) == \
        dict.fromkeys(long, 1)


def test_the_cli_and_the_dashboard_show_a_joint_effect(home: Path, keys) -> None:
    with Store(memory_path(home)) as store:
        ctx = context(store, keys[0], None)
        _publish_runs(ctx, [(BASE, 1.0 + d) for d in (0, 0.01, -0.01, 0)]
                      + [(BOTH, 0.97 + d) for d in (0, 0.01, -0.01, 0)])
        assert MetaAnalyst().work(ctx).startswith("finding:")
    out = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["findings"]).stdout
    assert "helped: lr=0.006 & norm=rmsnorm -0.0300 +- 0.0058 (n=4)" in out
    memory = ReadOnlyMemory(memory_path(home))
    try:
        with TestClient(dashboard_app(memory, home), base_url="http://127.0.0.1") as client:
            knobs = client.get("/json/knobs").json()
    finally:
        memory.close()
    (e,) = knobs["effects"]
    assert e["settings"] == {"lr": 0.006, "norm": "rmsnorm"} and e["hi"] - e["lo"] < 0.03
    assert knobs["never_tried"] == ["activation", "n_layer"]
