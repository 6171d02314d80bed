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
    # the prompt's end marked as on the dashboard: without colour the two read as one text
    assert "samples (the fixed prompt ▸ what the model wrote):\n" \
           "once upon a time▸ there was a little dog named max.\n" in out
    assert "quality: distinct_1 0.900" in out and "loss curve: 8 points" in out
    assert out.count("little dog named max") == 1 and '"curve"' not in out    # said once, as text
    full = json.loads(runner.invoke(app, ["show", readable.id[:12], "--json"]).stdout)
    assert len(full["body"]["curve"]) == 8 and full["body"]["samples"]      # --json: in full
    out = runner.invoke(app, ["show", plain.id[:12], "--home", str(home)]).stdout
    assert "quality:" not in out and "loss curve" not in out


def test_show_prints_a_runs_judgements_and_whether_each_judge_is_trusted(home: Path) -> None:
    """A judgement is testimony: `swarm show RUN` printed the samples but none of what judges
    said of them. Each is one line, its judge trusted here or not, a stranger's text as text."""
    from memory import codec, records as R
    from roles import trust
    from tests.cli.test_hostile_text import HOSTILE, INVISIBLE

    a, friend, stranger = synthetic.keypairs(3, seed=4)
    readable = run(a, 1, BASE, seed=1, bpb=1.25, extras=True)

    def judged(key, scores: dict, reason: str) -> R.Record:
        return codec.sign(key, "judgement", 1, R.JudgementBody(
            run=readable.id, judge="claude-test", rubric="stories-v2", scores=scores,
            reason=reason))
    fair = judged(friend, {"coherence": 6.0, "grammar": 7.0, "on_story": 5.0}, "simple, sensible")
    odd = judged(stranger, {HOSTILE[:80]: 10.0, INVISIBLE: 9.0}, HOSTILE + INVISIBLE)
    with Store(memory_path(home)) as store:
        store.add([readable, fair, odd])
    trust.pin(home, friend.peer_id, note="test")
    runner = CliRunner(env={"COLUMNS": "400"})
    out = runner.invoke(app, ["show", readable.id[:12], "--home", str(home)]).stdout
    line = next(ln for ln in out.splitlines() if friend.peer_id[-8:] in ln)
    assert "(trusted): coherence 6, grammar 7, on_story 5 (claude-test, stories-v2): simple" in line
    line = next(ln for ln in out.splitlines() if stranger.peer_id[-8:] in ln)
    assert "(untrusted)" in line and "[/bold][link=file:///" in line          # shown, literally
    assert not set(out) & (set("\x1b\u202e" + INVISIBLE) - set("lr"))
    full = json.loads(runner.invoke(app, ["show", readable.id[:12], "--json",
                                          "--home", str(home)]).stdout)
    assert {(j["id"], j["trusted"]) for j in full["judgements"]} == {(fair.id, True), (odd.id, False)}
    assert {j["id"]: j["scores"] for j in full["judgements"]}[fair.id] == fair.body.scores
    plain = run(a, 2, BASE, 2, 1.26)
    with Store(memory_path(home)) as store:
        store.add([plain])
    assert json.loads(runner.invoke(app, ["show", plain.id[:12], "--json", "--home",
                                          str(home)]).stdout)["judgements"] == []
