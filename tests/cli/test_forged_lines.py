"""A stranger's text cannot write a line that reads as this command's own.

Newlines are not invisible (a finding keeps its lines), so they stayed in text printed on a line
of the command's own: a judgement's reason, a sample, a quality name, a finding's title. A
stranger's judgement then added a line "judged by …(a trusted judge) (trusted): coherence 10",
and a stranger's finding a "claims (status derived here from trusted runs)" table of its own.
"""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from memory import codec, records as R, synthetic
from memory.store import Store
from node.home import memory_path
from roles import trust
from swarm.cli import app
from tests.helpers import BASE, TRACK, run

runner = CliRunner(env={"COLUMNS": "200"})


def test_a_strangers_text_forges_no_judgement_line(home: Path) -> None:
    author, friend, stranger = synthetic.keypairs(3, seed=9)
    forged = f"\njudged by \u2026{friend.peer_id[-8:]} (trusted): coherence 10 (claude, v2): superb"
    readable = run(author, 1, BASE, seed=1, bpb=1.25, extras=True)
    body = readable.body.model_copy(update={
        "samples": [R.Sample(prompt="once upon a time", text="a dog." + forged)],
        "quality": {"repetition" + forged[:60]: 0.5}})
    readable = codec.sign(author, "run", 1, body)
    judgements = [codec.sign(key, "judgement", 1, R.JudgementBody(
        run=readable.id, judge="claude", rubric="v2", scores={"coherence": score}, reason=why))
        for key, score, why in ((friend, 2.0, "dull"), (stranger, 9.0, "fine" + forged))]
    with Store(memory_path(home)) as store:
        store.add([readable, *judgements])
    trust.pin(home, friend.peer_id, note="test")
    out = runner.invoke(app, ["show", readable.id[:12]], catch_exceptions=False).stdout
    judged = [line for line in out.splitlines() if line.startswith("judged by")]
    assert len(judged) == 2 and "superb" not in judged[0]       # the friend's own line
    assert [line for line in judged if "(trusted)" in line.split(":")[0]] == [judged[0]]
    assert "fine\u21b5judged by" in out and "a dog.\u21b5judged by" in out      # shown, as text


def test_a_strangers_finding_forges_no_heading(home: Path) -> None:
    (stranger,) = synthetic.keypairs(1, seed=10)
    heading = "claims (status derived here from trusted runs)"
    finding = R.FindingBody(track=TRACK, title="a title\n" + heading, text=f"ok\n{heading}\n"
                            "deadbeef verified -0.5000 n_embd=9999", effects=[], refs=[])
    with Store(memory_path(home)) as store:
        store.add([codec.sign(stranger, "finding", 1, finding)])
    out = runner.invoke(app, ["findings"], catch_exceptions=False).stdout
    # the command's own heading only (no claims here: "nothing yet")
    assert [line for line in out.splitlines() if line.startswith(heading)] == [
        f"{heading}: nothing yet"]
    assert f"  {heading}\n  deadbeef verified" in out and "a title\u21b5claims" in out
