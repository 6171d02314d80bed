"""`swarm bench gate` runs the gate through memory.stats and reports both rules (shape, not speed)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from swarm.cli import app


def test_bench_gate_json_and_bad_input() -> None:
    out = CliRunner().invoke(app, ["bench", "gate", "--tracks", "4", "--effect", "3", "--json"])
    assert out.exit_code == 0, out.output
    results = json.loads(out.stdout)["results"]
    assert {r["rule"] for r in results} == {"greedy", "swarm"}
    greedy = next(r for r in results if r["rule"] == "greedy")
    assert greedy["false_accept_share"] > 0.5          # one run each: half the nulls get in
    bad = CliRunner().invoke(app, ["bench", "gate", "--null-share", "1.5"])
    assert bad.exit_code != 0
