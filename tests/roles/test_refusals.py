"""Hypotheses and claims no node can work on (unknown knobs, configs the harness refuses) are
refused at the roles layer with a counted reason (issue: a protocol an outsider can implement)."""
from __future__ import annotations

from memory import records as R
from roles import evidence
from roles.statistician import Statistician
from tests.roles.trust_world import BASE, TRACK, Runner, baseline_ready, claim_body, node


def test_a_hypothesis_naming_an_unknown_knob_is_refused_and_counted_once(store, keys) -> None:
    a = node(store, keys[0], Runner(), 1)
    bad = a.publish("hypothesis", R.HypothesisBody(track=TRACK, diff={"depth": 4},
                                                   rationale="deeper", source="human")).id
    out_of_range = a.publish("hypothesis", R.HypothesisBody(track=TRACK, diff={"lr": 50.0},
                                                            rationale="hotter", source="human")).id
    good = a.publish("hypothesis", R.HypothesisBody(track=TRACK, diff={"lr": 0.006},
                                                    rationale="warmer", source="human")).id
    for _ in range(2):                       # read twice: counted once per record
        assert [h["id"] for h in evidence.open_hypotheses(a)] == [good]
    assert a.refused[bad] == "unknown knob(s): depth"
    assert a.refused[out_of_range].startswith("config refused by the harness")
    assert a.counters["refused_unknown_knobs"] == 1
    assert a.counters["refused_config_refused_by_the_harness"] == 1


def test_a_claim_naming_an_unknown_knob_is_never_tested(store, keys) -> None:
    a = node(store, keys[0], Runner(), 1)
    baseline_ready(a)
    base = evidence.baseline(a)
    runs = [a.publish("run", Runner()({**BASE, "lr": 0.006}, s, "confirm", None)).id
            for s in range(3)]
    claim = a.publish("claim", claim_body(base.hash, {**BASE, "lr": 0.006}, {"depth": 4},
                                          base.run_ids, runs)).id
    row = {c["id"]: c for c in evidence.claims(a)}[claim]
    assert row["status"] == "pending" and row["reason"] == "refused: unknown knob(s): depth"
    assert claim not in {c.id for c in Statistician.awaiting(a)}
