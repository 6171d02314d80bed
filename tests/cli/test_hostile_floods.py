"""Strangers' testimony in number cannot push trusted testimony out of what a person reads.

Keys are free and `ts` is the author's word: a list cut to its oldest (or newest) N rows is a
list any stranger can fill. Each list here keeps trusted authors' rows first.
"""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memory import canonical, codec, records as R, synthetic
from memory.store import Store
from node.home import memory_path
from roles import trust
from swarm.cli import app
from swarm.commands.browse import TABLE_STRANGERS
from swarm.conclusions import MAX_STRANGERS
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


def _claim(key, seq: int, ts: int, scale: float) -> R.Record:
    """A claim of `init_scale=scale` on the history's track, by `key`, stamped `ts`."""
    base = canonical.config_hash(synthetic.HISTORY_BASE)
    diff = {"init_scale": scale}
    return codec.sign(key, "claim", seq, R.ClaimBody(
        track=synthetic.HISTORY_TRACK, baseline_hash=base, diff=diff,
        candidate_hash=canonical.config_hash({**synthetic.HISTORY_BASE, **diff}),
        baseline_runs=[], candidate_runs=[], effect=-0.5, summary="mine is better"), ts=ts)


def test_a_flood_of_strangers_claims_leaves_findings_short_and_the_trusted_claim_shown(
        home: Path) -> None:
    """`swarm findings` printed every untrusted claim: 5,000 free keys' claims buried the trusted
    ones and took the terminal. The table shows the newest TABLE_STRANGERS and says how many more
    (`--all` lists them); `--json` the newest MAX_STRANGERS, as the dashboard's /json/claims."""
    strangers = synthetic.keypairs(MAX_STRANGERS + 7, seed=6)
    now = codec.now_ms()
    flood = [_claim(k, 1, now - i, 3.0 + i) for i, k in enumerate(strangers)]
    with Store(memory_path(home), helpers=0) as store:
        store.add(synthetic.history())
    for key in synthetic.keypairs(2, seed=100):        # the history's authors
        trust.pin(home, key.peer_id, note="test")
    mine = [c["claim"] for c in json.loads(CliRunner().invoke(
        app, ["findings", "--json"], catch_exceptions=False).stdout)["claims"]]
    assert mine
    with Store(memory_path(home), helpers=0) as store:
        assert store.add(flood).accepted == len(flood)

    def findings(*args: str) -> str:
        result = CliRunner().invoke(app, ["findings", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    table = findings()
    shown = [c.id for c in flood if c.id[:8] in table]
    assert shown == [c.id for c in flood[:TABLE_STRANGERS]], table
    assert all(c[:8] in table for c in mine)
    assert f"{len(flood) - TABLE_STRANGERS} more claims" in table and "swarm findings --all" in table
    one_track = findings("--track", synthetic.HISTORY_TRACK.split(":")[0], "--home", str(home))
    # the line to type, as this one was typed, on a line of its own
    lines = [ln.strip() for ln in one_track.splitlines()]
    assert f"swarm findings --all --track tinystories-cpu --home {home}" in lines, one_track
    every = findings("--all")
    assert all(c.id[:8] in every for c in flood) and "--all" not in every
    out = json.loads(findings("--json"))
    assert [c["claim"] for c in out["claims"]] == mine
    assert [c["claim"] for c in out["untrusted_claims"]] == [c.id for c in flood[:MAX_STRANGERS]]
    assert out["untrusted_claims_omitted"] == len(flood) - MAX_STRANGERS
    out = json.loads(findings("--json", "--all"))
    assert len(out["untrusted_claims"]) == len(flood) and out["untrusted_claims_omitted"] == 0
