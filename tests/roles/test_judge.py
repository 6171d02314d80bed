"""The judge through the real anthropic SDK against a loopback Messages API server, and the
meta-analyst reporting knob effects on sample quality beside val_bpb."""
from __future__ import annotations

import json

import pytest

from memory import codec, records as R, synthetic
from node.harness.prompts import PROMPTS
from roles.judge import CRITERIA, RUBRIC_VERSION, ClaudeJudge, make_judge, parse_judgement
from roles.meta_analyst import MetaAnalyst, quality_effects
from tests.roles.messages_server import Drip, MessagesServer
from tests.roles.simulated import BASE, TRACK, context

GOOD = json.dumps({"coherence": 6, "grammar": 7, "on_story": 5, "reason": "Simple, mostly sensible."})


def harness_body(seed: int, config=None, **fields) -> R.RunBody:
    """A synthetic run whose samples continue the harness's fixed prompts, as the harness writes."""
    body = synthetic.run_body(TRACK, dict(config or BASE), seed=seed, val_bpb=1.0 + 0.001 * seed,
                              extras=True)
    samples = [R.Sample(prompt=p, text=f" there was a dog named max {seed}.") for p in PROMPTS]
    return R.RunBody.model_validate(body.model_dump() | {"samples": samples} | fields)


def _runs(store, key, n: int, config=None, quality=None, start_seq: int = 1) -> list[R.Record]:
    records = []
    for i in range(n):
        body = harness_body(i, config, **({} if quality is None else {"quality": quality}))
        records.append(codec.sign(key, "run", start_seq + i, body))
    store.add(records)
    return records


def judge(url: str, per_step: int = 2) -> ClaudeJudge:
    return ClaudeJudge(model="claude-test", base_url=url, api_key="test-key", timeout_s=10,
                       per_step=per_step)


def test_unjudged_runs_of_others_are_judged_once(store, keys) -> None:
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    _runs(store, keys[0], 1)                                  # our own run: never judged by us
    others = _runs(store, keys[1], 3)
    with MessagesServer([GOOD, "I liked it", GOOD, GOOD]) as server:
        assert judge(server.url).work(ctx) == 1               # 2 tried: one answer was not JSON
        assert judge(server.url).work(ctx) == 2               # the dropped one is tried again
        assert judge(server.url).work(ctx) == 0               # nothing left: no request
    assert len(server.requests) == 4 and ctx.counters["judge_invalid_answers"] == 1
    sent = server.requests[0]["body"]
    assert sent["model"] == "claude-test" and "on_story" in sent["system"]
    assert "once upon a time," in sent["messages"][0]["content"]
    rows = ctx.rows("SELECT run, judge, rubric, scores, author FROM judgements ORDER BY run")
    assert sorted(r["run"] for r in rows) == sorted(r.id for r in others)
    assert {(r["judge"], r["rubric"], r["author"]) for r in rows} == {
        ("claude-test", RUBRIC_VERSION, keys[0].peer_id)}
    assert json.loads(rows[0]["scores"]) == {"coherence": 6.0, "grammar": 7.0, "on_story": 5.0}


def test_api_errors_end_judging_for_the_step(store, keys) -> None:
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    _runs(store, keys[1], 2)
    with MessagesServer([(529, "overloaded_error")]) as server:
        assert judge(server.url).work(ctx) == 0
    assert len(server.requests) == 1 and ctx.counters["judge_errors"] == 1
    assert ctx.rows("SELECT count(*) AS n FROM judgements")[0]["n"] == 0


@pytest.mark.parametrize("refusal", [(401, "authentication_error"),
                                     (403, "permission_error")])
def test_a_refused_key_turns_the_judge_off_for_the_nodes_life(store, keys, caplog,
                                                             refusal) -> None:
    """A meta-analyst whose key the API refused asked again at every step, a warning each time:
    the key will not start working by itself. One call, one error counted, one log line."""
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    _runs(store, keys[1], 2)
    with MessagesServer([refusal, GOOD, GOOD]) as server, caplog.at_level("WARNING", "roles.judge"):
        refused = judge(server.url)
        assert [refused.work(ctx) for _ in range(3)] == [0, 0, 0]
    assert len(server.requests) == 1 and ctx.counters["judge_errors"] == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "roles.judge"]
    assert len(lines) == 1 and "off for the rest of this node's life" in lines[0]
    assert str(refusal[0]) in lines[0]


def test_strangers_judgements_and_runs_stamped_ahead_do_not_keep_trusted_runs_unjudged(
        store, keys) -> None:
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    honest = _runs(store, keys[1], 2)
    judge_key, runner_key = synthetic.keypairs(2, seed=77)
    body = {"judge": "x", "rubric": RUBRIC_VERSION, "reason": "x",
            "scores": {c: 0.0 for c in CRITERIA}}
    store.add([codec.sign(judge_key, "judgement", i + 1, R.JudgementBody(run=r.id, **body))
               for i, r in enumerate(honest)])               # "already judged", by a free key
    ahead = codec.now_ms() + 100_000
    store.add([codec.sign(runner_key, "run", i + 1, harness_body(i), ts=ahead) for i in range(3)])
    with MessagesServer([GOOD, GOOD]) as server:
        assert judge(server.url).work(ctx) == 2
    rows = ctx.rows("SELECT run FROM judgements WHERE author = ?", [keys[0].peer_id])
    assert sorted(r["run"] for r in rows) == sorted(r.id for r in honest)


def test_a_server_that_drips_its_answer_ends_judging_at_the_calls_deadline(store, keys) -> None:
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    _runs(store, keys[1], 2)
    with MessagesServer([Drip(GOOD), GOOD]) as server:
        slow = ClaudeJudge(model="claude-test", base_url=server.url, api_key="test-key",
                           timeout_s=10, deadline_s=0.5)
        assert slow.work(ctx) == 0
    assert len(server.requests) == 1 and ctx.counters["judge_errors"] == 1


@pytest.mark.parametrize("reply", [b"<html>bad gateway", b"null", json.dumps(
    {"id": "m", "type": "message", "role": "assistant", "model": "claude-test", "content": None,
     "stop_reason": "end_turn", "stop_sequence": None, "usage": {}}).encode()])
def test_a_reply_that_is_no_messages_answer_ends_judging_for_the_step(store, keys, reply) -> None:
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    _runs(store, keys[1], 2)
    with MessagesServer([reply]) as server:
        assert judge(server.url).work(ctx) == 0
    assert len(server.requests) == 1 and ctx.counters["judge_errors"] == 1


@pytest.mark.parametrize("answer", ["", "{}", '{"coherence": 11, "grammar": 1, "on_story": 1, '
                                    '"reason": "x"}', '{"coherence": true, "grammar": 1, '
                                    '"on_story": 1, "reason": "x"}',
                                    '{"coherence": 1, "grammar": 1, "on_story": 1}'])
def test_invalid_answers_are_refused(answer: str) -> None:
    with pytest.raises(ValueError):
        parse_judgement(answer)
    scores, reason = parse_judgement("Here: " + GOOD)
    assert set(scores) == set(CRITERIA) and reason == "Simple, mostly sensible."


def test_no_key_no_judge(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert make_judge() is None
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("SWARM_JUDGE", "off")
    assert make_judge() is None
    monkeypatch.delenv("SWARM_JUDGE")
    assert isinstance(make_judge("http://127.0.0.1:9"), ClaudeJudge)


def test_meta_analyst_judges_and_reports_quality_beside_val_bpb(store, keys) -> None:
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))   # trusts the runs
    looping = {"repetition": 0.4, "distinct_1": 0.3, "distinct_2": 0.4, "ends_sentence": 0.0,
               "unknown_words": 0.01}
    fine = {"repetition": 0.0, "distinct_1": 0.7, "distinct_2": 0.9, "ends_sentence": 1.0,
            "unknown_words": 0.01}
    _runs(store, keys[1], 4, BASE, fine)
    _runs(store, keys[1], 4, {**BASE, "lr": 0.01}, looping, start_seq=5)
    effects = quality_effects(ctx)
    rep = effects["repetition"][("lr", "0.01")]
    assert rep.effect == pytest.approx(0.4, abs=1e-6) and rep.n == 4
    bad = json.dumps({"coherence": 1, "grammar": 2, "on_story": 0, "reason": "loops"})
    with MessagesServer([bad, bad]) as server:
        summary = MetaAnalyst(judge(server.url)).work(ctx)
    assert summary.startswith("2 runs judged; finding:")
    text = ctx.rows("SELECT text FROM findings")[0]["text"]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("lr=0.01"))
    assert "val_bpb" in line and "repetition +0.400" in line and "ends_sentence -1.000" in line
    assert "judge" in quality_effects(ctx)                    # the newest runs were judged


def test_a_measure_a_run_left_out_is_no_zero_in_the_fit(store, keys) -> None:
    """Runs whose samples had nothing to measure carry no `repetition` (node/harness/quality.py):
    the meta-analyst fits repetition over the runs that have it, and ends_sentence over all."""
    ctx = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    _runs(store, keys[1], 4, BASE, {"repetition": 0.2, "ends_sentence": 1.0})
    _runs(store, keys[1], 3, {**BASE, "lr": 0.01}, {"repetition": 0.5, "ends_sentence": 0.0},
          start_seq=5)
    _runs(store, keys[1], 3, {**BASE, "lr": 0.01}, {"ends_sentence": 0.0}, start_seq=8)
    effects = quality_effects(ctx)
    rep, ends = effects["repetition"][("lr", "0.01")], effects["ends_sentence"][("lr", "0.01")]
    assert (rep.n, ends.n) == (3, 6)
    assert rep.effect == pytest.approx(0.3, abs=1e-6) and ends.effect == pytest.approx(-1.0, abs=1e-6)


def test_a_node_says_what_its_judge_did(store, keys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node run for judging (`--role meta_analyst`, ANTHROPIC_API_KEY set) said nothing of the
    runs it judged, at the end or in its panel; one whose key was refused only logged a warning."""
    from swarm.progress_view import summary_line, work_rows
    from swarm.worker import Worker

    _runs(store, keys[1], 1)
    with MessagesServer([GOOD, (401, "authentication_error")]) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.delenv("SWARM_JUDGE", raising=False)
        worker = Worker(context(store, keys[0], None, pinned=frozenset({keys[1].peer_id})), None,
                        pinned="meta_analyst")
        worker.step()
        _runs(store, keys[1], 1, start_seq=2)
        worker.step()
    work = worker.progress.snapshot()
    assert (work["judgements"], work["judge_errors"]) == (1, 1)
    assert ("judged here", "1 run; 1 judge API error (see the log)") in work_rows(work)
    assert summary_line(work).startswith(
        "0 runs by this node; judged 1 run; 1 judge API error (see the log); ")
