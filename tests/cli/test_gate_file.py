"""A home's browsing judges claims by the gate its node joined with (swarm/gate_file.py).

Found by following docs/RUNNING.md's research swarm across machines: the nodes ran with
`--min-baseline 4 --gate min_confirm=2 ...`, their panels counted two verified claims, and
`swarm findings` on the same home called the claim `not_supported` ("n=2 < 6 confirmation runs"):
the browsing commands and the dashboard derived statuses with the default gate.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory import canonical, codec, synthetic
from memory import records as R
from memory.stats import GateParams
from memory.store import Store
from node.home import memory_path
from roles import trust
from swarm.cli import app
from swarm.gate_file import GATE_FILE, load_gate, save_gate
from swarm.node_work import gate_params, with_roots
from node.harness.tracks import TRACKS

SMALL = ["confirm_max=2", "min_confirm=2", "confirm_cap=2", "verify_seeds=2", "verify_max=2",
         "null_claim=0.01", "gray_above_sd=0.5"]         # RUNNING.md's research swarm
runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def claimed(home: Path) -> Path:
    """A home whose own key made 4 baseline runs, 2 clearly better confirmation runs and a claim."""
    (key,) = synthetic.keypairs(1, seed=3)
    track = TRACKS["tinystories-cpu"]
    base_config = track.base.model_dump()
    candidate = {**base_config, "lr": 0.006}
    steps = track.budget.tokens // (base_config["batch_size"] * base_config["seq_len"])
    # a ms apart each: a claim judges the baseline runs made before it, and records signed in
    # the same millisecond as the claim are not (the test read `pending` on a fast machine)
    t0 = codec.now_ms() - 60_000

    def run(seq: int, config: dict, seed: int, bpb: float, purpose: str) -> R.Record:
        body = synthetic.run_body(track.id, config, seed, bpb, purpose=purpose)
        sane = body.metrics.model_copy(update={  # a whole budget's steps: the sanity bounds
            "steps": steps, "tokens": steps * config["batch_size"] * config["seq_len"]})
        return codec.sign(key, "run", seq, body.model_copy(update={"metrics": sane}), ts=t0 + seq)
    base = [run(i + 1, base_config, i, 2.310 + 0.004 * (i % 2), "baseline") for i in range(4)]
    cand = [run(5 + i, candidate, 10 + i, 2.250 + 0.004 * i, "confirm") for i in range(2)]
    claim = codec.sign(key, "claim", 7, R.ClaimBody(
        track=track.id, baseline_hash=canonical.config_hash(base_config),
        candidate_hash=canonical.config_hash(candidate), diff={"lr": 0.006},
        baseline_runs=[r.id for r in base], candidate_runs=[r.id for r in cand], effect=-0.05,
        summary="lr 0.006 helps"), ts=t0 + 7)
    with Store(memory_path(home)) as store:
        store.add(base + cand + [claim])
    trust.pin(home, key.peer_id, "test")
    return home


def _status() -> str:
    done = runner.invoke(app, ["findings", "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.stdout
    (claim,) = json.loads(done.stdout)["claims"]
    return claim["status"]


def test_findings_judge_by_the_gate_the_node_joined_with(claimed: Path) -> None:
    assert _status() == "not_supported"          # the default gate: 2 < 6 confirmation runs
    # what `swarm join --min-baseline 4 --gate ...` runs once it holds the home
    with_roots(None, (), gate_params(SMALL, 4))(_Daemon(claimed), None)
    assert json.loads((claimed / GATE_FILE).read_text())["min_confirm"] == 2
    assert _status() == "supported"
    # a later join with the default gate removes the file: the default verdict again
    with_roots(None, (), gate_params([], None))(_Daemon(claimed), None)
    assert not (claimed / GATE_FILE).exists() and _status() == "not_supported"


def test_the_gate_file_round_trips_and_a_bad_one_is_ignored(tmp_path: Path) -> None:
    params = gate_params(SMALL, 4)
    save_gate(tmp_path, params)
    assert load_gate(tmp_path) == params
    for bad in ("{", "[]", '{"min_confirm": "2"}', '{"min_confirm": 2.5}', '{"nope": 1}',
                '{"alpha": true}'):
        (tmp_path / GATE_FILE).write_text(bad)
        assert load_gate(tmp_path) == GateParams(), bad
    assert load_gate(tmp_path / "absent") == GateParams()
    save_gate(tmp_path / "absent", params)          # a home it cannot write: logged, not raised


class _Daemon:
    """What the start-up hook reads of the daemon: its home and bootstrap addresses."""

    def __init__(self, home: Path) -> None:
        from types import SimpleNamespace

        self.home = home
        self.config = SimpleNamespace(net=SimpleNamespace(bootstrap=[]))
