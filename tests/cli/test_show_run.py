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


def _lines_80(args: list[str]) -> list[str]:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80, result.stdout
    return lines


def test_show_is_tables_for_people_and_json_only_with_json(home: Path) -> None:
    """`swarm show RUN` ended its view for people with a raw JSON block, `{"here": ...}`, after
    the body as JSON; now fields and values in tables at 80 columns, the JSON behind `--json`."""
    from memory import codec
    from tests.helpers import bodies

    (a,) = synthetic.keypairs(1, seed=5)
    stranger = run(a, 1, BASE, seed=1, bpb=1.25, extras=True)    # no pin: counts nowhere here
    claim = codec.sign(a, "claim", 2, bodies(run_id=stranger.id)["claim"])
    with Store(memory_path(home)) as store:
        store.add([stranger, claim])
    for record in (stranger, claim):
        lines = _lines_80(["show", record.id[:12], "--home", str(home)])
        text = "\n".join(lines)
        assert '"here"' not in text and not any(ln.strip() in ("{", "}") for ln in lines)
        assert any(ln.startswith("here (what this node concludes") for ln in lines)
        full = json.loads(CliRunner().invoke(app, ["show", record.id[:12], "--json"]).stdout)
        assert full["id"] == record.id and "here" in full          # --json as it was
    row = next(ln for ln in _lines_80(["show", stranger.id[:12]]) if "why_not" in ln)
    assert "author not trusted yet" in row
    row = next(ln for ln in _lines_80(["show", stranger.id[:12]]) if "│ config " in ln)
    assert "depth=3, lr=0.003" in row
    assert full["claim_status"]["status"] and full["body"]["summary"] == "depth 4 helps"


QUALITY = {"distinct_1": 0.9, "distinct_2": 1.0, "ends_sentence": 1.0, "repetition": 0.0,
           "unknown_words": 0.0}


def test_quality_wraps_between_pairs_at_80_columns(home: Path) -> None:
    """At 80 columns `quality: ...` broke inside a pair, `repetition` / `0.000`, in `swarm show`
    and after `swarm run` (the same lines: swarm/readable.py)."""
    import io

    from rich.console import Console
    from swarm.readable import print_run_readable

    (a,) = synthetic.keypairs(1, seed=6)
    record = run(a, 1, BASE, seed=1, bpb=1.25, extras=True)
    assert record.body.quality == QUALITY
    with Store(memory_path(home)) as store:
        store.add([record])
    narrow = Console(file=io.StringIO(), width=80)
    print_run_readable(narrow, record.body.model_dump())          # what `swarm run` prints
    for lines in (_lines_80(["show", record.id[:12]]), narrow.file.getvalue().splitlines()):
        quality = lines[next(i for i, ln in enumerate(lines) if ln.startswith("quality:")):][:2]
        assert len(quality) == 2 and quality[1].startswith("  repetition 0.000")
        for name, value in QUALITY.items():
            assert any(f"{name} {value:.3f}" in ln for ln in quality), (name, quality)


def test_findings_wrap_between_name_value_pairs_at_80_columns(home: Path) -> None:
    """A finding's lines (the meta-analyst's `lr=0.01: val_bpb ...; repetition +0.400 +- 0.02,
    ...`) broke inside a pair at 80 columns in `swarm findings` and `swarm show FINDING`."""
    from memory import codec, records as R
    from roles import trust

    (a,) = synthetic.keypairs(1, seed=7)
    parts = ["repetition +0.400 +- 0.02", "distinct_1 -0.300 +- 0.02", "distinct_2 -0.500 +- 0.03",
             "ends_sentence -1.000 +- 0", "unknown_words +0.010 +- 0.001", "judge -5.000 +- 1.2"]
    line = "  lr=0.01: val_bpb +0.0100 +- 0.003; " + ", ".join(parts)
    finding = codec.sign(a, "finding", 1, R.FindingBody(
        track="test-track", title="quality", text="helped: nothing yet\n" + line, effects=[],
        refs=[]))
    with Store(memory_path(home)) as store:
        store.add([finding])
    trust.pin(home, a.peer_id, note="test")
    for args in (["findings"], ["show", finding.id[:12]]):
        lines = _lines_80(args)
        # every line of the text indented 2 more (swarm/output.py TEXT_INDENT)
        start = next(i for i, ln in enumerate(lines) if ln.startswith("    lr=0.01: val_bpb"))
        shown = lines[start:start + 4]
        assert shown[1].startswith("        ") and "val_bpb +0.0100 +- 0.003;" in shown[0]
        for part in parts:
            assert any(part in ln for ln in shown), (args, part, shown)


def test_show_lists_a_findings_effects_as_a_table(home: Path) -> None:
    """`swarm show FINDING` ran its effects together in one cell (`knob=init_scale, value=2.0,
    effect=-0.08, ...; knob=n_layer, ...`) and cut them at 240 characters (`knob=n_emb…`): the
    sixth of six effects was lost. Now one row per effect, each knob's value as written."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.history())
    (finding,) = json.loads(CliRunner().invoke(app, ["findings", "--json"]).stdout)["findings"]
    lines = _lines_80(["show", finding["id"][:12]])
    start = lines.index(next(ln for ln in lines if ln.startswith("finding: effects")))
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in lines[start:] if ln.startswith("│")]
    assert [c.strip() for c in lines[start + 2].split("┃")[1:-1]] == [
        "knob", "value", "effect", "stderr", "n"]
    assert [(r[0], r[1]) for r in rows] == [(e["knob"], str(e["value"]))
                                            for e in finding["effects"]]
    assert [float(r[2]) for r in rows] == [e["effect"] for e in finding["effects"]]
    assert "…" not in "\n".join(lines)


def test_show_prints_a_whole_config_and_readable_metrics(home: Path) -> None:
    """`swarm show RUN` (the command `swarm run` says to type) cut a run's config of the built-in
    track's 32 knobs at 240 characters (`norm=layernorm, p…`) and printed its metrics as Python
    writes floats (`val_bpb=2.3346129668176103, wall_s=86.95388917899982`)."""
    from node.harness.config import build_config
    from node.harness.tracks import TRACKS

    config = build_config(TRACKS["tinystories-cpu"].base.model_dump(), {}).model_dump()
    (a,) = synthetic.keypairs(1, seed=3)
    record = run(a, 1, config, seed=1, bpb=2.3346129668176103)
    with Store(memory_path(home)) as store:
        store.add([record])
    text = " ".join(" ".join(ln.strip("│ ").split()) for ln in _lines_80(["show", record.id[:12]]))
    assert "…" not in text and len(config) > 20
    for knob in config:
        assert f"{knob}=" in text, knob
    assert "val_bpb=2.33461," in text and "2.3346129668176103" not in text


def test_show_prints_what_this_node_concludes_in_short_numbers(home: Path) -> None:
    """A claim's `here` table printed `p_value 1.4208931780362457e-05`, `q_value
    0.005388866225988197`: six significant digits (--json has every one)."""
    with Store(memory_path(home)) as store:
        store.add(synthetic.history())
    claims = json.loads(CliRunner().invoke(app, ["findings", "--json"]).stdout)["untrusted_claims"]
    for claim in claims:
        here = json.loads(CliRunner().invoke(app, ["show", claim["claim"], "--json"]).stdout)["here"]
        lines = _lines_80(["show", claim["claim"][:12]])
        start = lines.index(next(ln for ln in lines if ln.startswith("here (")))
        cells = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in lines[start:]
                 if ln.startswith("│")}
        for key in ("p_value", "q_value"):
            assert cells[key] == f"{here[key]:.6g}" or cells[key] == repr(here[key]), cells
            assert len(cells[key]) <= 11, cells
