"""`swarm show RUN` prints what a person reads of a run: samples, quality measures, loss curve."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memory import synthetic
from memory.store import Store
from node.home import memory_path
from swarm.cli import app
from tests.helpers import BASE, run


def test_show_prints_a_runs_samples(home: Path) -> None:
    (a,) = synthetic.keypairs(1, seed=3)
    readable, plain = run(a, 1, BASE, seed=1, bpb=1.25, extras=True), run(a, 2, BASE, 2, 1.26)
    with Store(memory_path(home)) as store:
        store.add([readable, plain])
    runner = CliRunner(env={"COLUMNS": "200"})
    out = runner.invoke(app, ["show", readable.id[:12], "--home", str(home)]).stdout
    assert "once upon a time there was a little dog named max." in out
    assert "quality: distinct_1 0.900" in out and "loss curve: 8 points" in out
    assert out.count("little dog named max") == 1 and '"curve"' not in out    # said once, as text
    full = json.loads(runner.invoke(app, ["show", readable.id[:12], "--json"]).stdout)
    assert len(full["body"]["curve"]) == 8 and full["body"]["samples"]      # --json: in full
    out = runner.invoke(app, ["show", plain.id[:12], "--home", str(home)]).stdout
    assert "quality:" not in out and "loss curve" not in out
