"""Strangers' testimony in number cannot push trusted testimony out of what a person reads.

Keys are free and `ts` is the author's word: a list cut to its oldest (or newest) N rows is a
list any stranger can fill. Each list here keeps trusted authors' rows first.
"""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memory import codec, records as R, synthetic
from memory.store import Store
from node.home import memory_path
from roles import trust
from swarm.cli import app
from tests.helpers import BASE, run


def test_strangers_judgements_stamped_early_leave_the_trusted_judges_shown(home: Path) -> None:
    """`swarm show RUN` (and the run page) listed a run's 20 oldest judgements: 20 strangers'
    stamped in 1970 hid the judgement of the judge this node trusts."""
    author, friend = synthetic.keypairs(2, seed=5)
    strangers = synthetic.keypairs(25, seed=6)
    readable = run(author, 1, BASE, seed=1, bpb=1.25, extras=True)

    def judged(key, ts: int, score: float) -> R.Record:
        return codec.sign(key, "judgement", 1, R.JudgementBody(
            run=readable.id, judge="claude-test", rubric="stories-v2",
            scores={"coherence": score}, reason="fine"), ts=ts)
    fair = judged(friend, codec.now_ms(), 6.0)
    with Store(memory_path(home)) as store:
        store.add([readable, fair] + [judged(k, 1000 + i, 0.0) for i, k in enumerate(strangers)])
    trust.pin(home, friend.peer_id, note="test")
    shown = json.loads(CliRunner().invoke(app, ["show", readable.id[:12], "--json"],
                                          catch_exceptions=False).stdout)["judgements"]
    assert len(shown) == 20 and shown[0]["id"] == fair.id and shown[0]["trusted"]
    assert not any(j["trusted"] for j in shown[1:])
