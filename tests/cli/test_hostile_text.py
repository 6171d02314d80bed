"""Any author's text reaches the terminal as text: never rich markup, never an escape sequence.

A stranger's valid, signed records carry markup that does not balance (rich raised on it and the
command died with a traceback) and a terminal escape sequence in every free-text field shown.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from memory import canonical, codec, records as R, synthetic
from memory.store import Store
from node.home import memory_path
from swarm import progress_view
from swarm.cli import app
from tests.helpers import BASE, TRACK

HOSTILE = "[/bold][link=file:///etc/passwd]x[/link]\x1b]0;owned\x07\u202e"
runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def hostile(home: Path) -> Path:
    """A home holding a stranger's run, claim and finding with HOSTILE in their text."""
    (stranger,) = synthetic.keypairs(1, seed=77)
    config = {**BASE, HOSTILE[:80]: HOSTILE}
    runs = [codec.sign(stranger, "run", i + 1, synthetic.run_body(TRACK, config, seed=i,
                                                                   val_bpb=1.2)) for i in range(2)]
    claim = R.ClaimBody(track=TRACK, baseline_hash=canonical.config_hash(BASE),
                        candidate_hash=canonical.config_hash(config), diff={HOSTILE[:80]: HOSTILE},
                        baseline_runs=[], candidate_runs=[r.id for r in runs], effect=-0.1,
                        summary=HOSTILE)
    finding = R.FindingBody(track=TRACK, title=HOSTILE, text=HOSTILE + "\nsecond line",
                            effects=[], refs=[])
    with Store(memory_path(home)) as store:
        store.add(runs + [codec.sign(stranger, "claim", 3, claim),
                          codec.sign(stranger, "finding", 4, finding)])
    return home


@pytest.mark.parametrize("args", [["leaderboard"], ["findings"], ["runs"],
                                  ["sql", "SELECT summary, diff FROM claims"]])
def test_browsing_commands_print_hostile_text_as_text(hostile: Path, args: list[str]) -> None:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    if args[0] in ("findings", "sql"):
        assert "[/bold][link=file:///" in result.stdout          # shown, literally
    if args[0] == "findings":
        assert "\n  second line" in result.stdout                # a finding keeps its lines


def test_the_live_panel_prints_hostile_values_as_text() -> None:
    out = Console(file=io.StringIO(), width=200, color_system=None)
    out.print(progress_view.panel({"track": TRACK, "role": "verifier", "error": HOSTILE}))
    text = out.file.getvalue()
    assert "[/bold][link=file:///" in text and "\x1b" not in text


# Invisible and reordering characters: two names that print alike, text that reads otherwise
INVISIBLE = "l\u200br\u200e\u2060\ufeff\u061c\U000e0041\u034f\u3164\ufe0f\u2028"


def test_show_prints_a_strangers_samples_and_quality_names_as_text(home: Path) -> None:
    (stranger,) = synthetic.keypairs(1, seed=78)
    body = synthetic.run_body(TRACK, BASE, 1, 1.2, extras=True)
    body = body.model_copy(update={
        "samples": [R.Sample(prompt=HOSTILE, text=HOSTILE + INVISIBLE)],
        "quality": {HOSTILE[:80]: 0.5, INVISIBLE: 0.25}})
    record = codec.sign(stranger, "run", 1, body)
    with Store(memory_path(home)) as store:
        store.add([record])
    result = runner.invoke(app, ["show", record.id[:12]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "[/bold][link=file:///" in result.stdout                   # shown, literally
    assert not set(result.stdout) & (set("\x1b\u202e" + INVISIBLE) - set("lr"))


def test_invisible_characters_show_as_replacement_characters() -> None:
    import unicodedata

    from memory.invisible import JS_CLASS, visible

    shown = visible("".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF))
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in shown
                   if ch not in "\t\n")                 # every control and format character
    assert visible(INVISIBLE) == "l\ufffdr" + "\ufffd" * (len(INVISIBLE) - 3)
    assert visible("аlice ünïcode 中文 ok") == "аlice ünïcode 中文 ok"   # visible text stays
    assert "\\u{200b}" in JS_CLASS and "\\u{e0000}-\\u{e0fff}" in JS_CLASS


@pytest.mark.parametrize("kind", ["node", "run", "claim"])
def test_show_prints_a_records_body_without_invisible_characters(home: Path, kind: str) -> None:
    """`swarm show` printed a record's body through rich's JSON view, which writes non-ASCII as
    it is: a bidi override or zero-width space in a node's name, a config's knob or a claim's
    summary reached the terminal. A homoglyph stays (a visible character), the author whole
    beside it."""
    (stranger,) = synthetic.keypairs(1, seed=79)
    name = "n\u03bfde-1 \u202egpj.exe\u2066" + INVISIBLE
    if kind == "node":
        body = R.NodeBody(name=name[:80], hardware=synthetic.HARDWARE, software={name[:80]: name},
                          addrs=[], capabilities=[])
    elif kind == "run":
        body = synthetic.run_body(TRACK, {**BASE, name[:80]: name}, 1, 1.2)
    else:
        body = R.ClaimBody(track=TRACK, baseline_hash=canonical.config_hash(BASE),
                           candidate_hash=canonical.config_hash({**BASE, "x": 1}), diff={"x": 1},
                           baseline_runs=[], candidate_runs=[], effect=-0.1, summary=name)
    record = codec.sign(stranger, kind, 1, body)
    with Store(memory_path(home)) as store:
        store.add([record])
    result = runner.invoke(app, ["show", record.id[:12]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not set(result.stdout) & (set("\x1b\u202e\u2066" + INVISIBLE) - set("lr"))
    assert "n\u03bfde-1 \ufffdgpj.exe\ufffd" in result.stdout
    assert f"author {stranger.peer_id}" in result.stdout
