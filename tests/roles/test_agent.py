"""The research agent through the real anthropic SDK against a loopback Messages API server."""
from __future__ import annotations

import json
from typing import Any

import pytest

from roles.agent import MAX_ANSWER, ClaudeAgent, make_proposer, parse_answer, pick_model
from roles.experimenter import Experimenter
from roles.proposers import OptunaProposer, Portfolio
from roles.strategy import Strategy
from tests.roles.messages_server import Drip, MessagesServer
from tests.roles.simulated import BASE, SimRunner, context

GOOD = json.dumps({"diff": {"lr": 0.006}, "rationale": "A higher lr suits a short budget."})


def no_swiglu(config: dict[str, Any]) -> str | None:
    return "activation: swiglu is not allowed here" if config.get("activation") == "swiglu" else None


def agent(url: str) -> ClaudeAgent:
    return ClaudeAgent(Strategy(), validate=no_swiglu, model="claude-test", base_url=url,
                       api_key="test-key", timeout_s=10)


def test_valid_answer_becomes_a_published_hypothesis(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer([GOOD]) as server:
        proposal = agent(server.url).propose(ctx)
    assert (proposal.diff, proposal.source) == ({"lr": 0.006}, "agent")
    sent = server.requests[0]
    assert sent["path"] == "/v1/messages" and "test-key" in sent["key"]
    assert sent["body"]["model"] == "claude-test"
    digest = json.loads(sent["body"]["messages"][0]["content"].split("\n")[1])
    assert digest["best_config"] == BASE and digest["track"] == ctx.track


def test_malformed_then_invalid_answers_are_retried_with_the_error(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    bad_knob = json.dumps({"diff": {"activation": "swiglu"}, "rationale": "try swiglu"})
    with MessagesServer(["I think you should raise the lr!", bad_knob, GOOD]) as server:
        proposal = agent(server.url).propose(ctx)
    assert proposal.diff == {"lr": 0.006}
    assert ctx.counters["agent_invalid_answers"] == 2
    last = server.requests[2]["body"]["messages"]
    assert "swiglu is not allowed" in last[-1]["content"] and last[-2]["role"] == "assistant"


def test_repeatedly_invalid_answers_are_dropped_and_counted(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer(["nope", "{not json", json.dumps({"diff": {}, "rationale": ""})]) as server:
        assert agent(server.url).propose(ctx) is None
    assert ctx.counters["agent_dropped"] == 1 and len(server.requests) == 3


def message(content: Any) -> bytes:
    """A 200 Messages API body with `content` as given (a broken server's, when not a list)."""
    return json.dumps({"id": "m", "type": "message", "role": "assistant", "model": "claude-test",
                       "stop_reason": "end_turn", "stop_sequence": None, "content": content,
                       "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()


# API errors, and replies that are no Messages API answer at all (a broken server's)
@pytest.mark.parametrize("reply", [(429, "rate_limit_error"), (500, "api_error"),
                                   (529, "overloaded_error"), b"<html>bad gateway", b"null",
                                   b"[1, 2]", b"{}", message(None), message(5),
                                   message([{"type": "text"}]),
                                   message([{"type": "text", "text": ["a"]}])],
                         ids=["429", "500", "529", "html", "null", "list", "empty", "no-content",
                              "int-content", "no-text", "list-text"])
def test_api_errors_and_broken_replies_fall_back_to_the_strategy(store, keys, reply) -> None:
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer([reply]) as server:
        proposal = agent(server.url).propose(ctx)
    assert proposal is not None and proposal.source == "strategy"
    assert ctx.counters["agent_fallbacks"] == 1


def test_a_huge_answer_is_refused_unparsed_and_not_sent_back_whole(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer(["{" * (MAX_ANSWER + 10_000), GOOD]) as server:
        proposal = agent(server.url).propose(ctx)
    assert proposal.diff == {"lr": 0.006} and ctx.counters["agent_invalid_answers"] == 1
    retry = server.requests[1]["body"]["messages"]
    assert len(retry[-2]["content"]) == MAX_ANSWER and "characters" in retry[-1]["content"]


@pytest.mark.parametrize("part", ["head", "body"])
def test_a_server_that_drips_its_answer_falls_back_at_the_calls_deadline(store, keys, part) -> None:
    """Each byte comes well inside the per-read timeout (10 s): only the call's total deadline
    ends it. The whole answer would take the server several seconds (longer still under load)."""
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer([Drip(GOOD, part)]) as server:
        slow = ClaudeAgent(Strategy(), validate=no_swiglu, model="claude-test",
                           base_url=server.url, api_key="test-key", timeout_s=10, deadline_s=0.5)
        proposal = slow.propose(ctx)
    assert proposal is not None and proposal.source == "strategy"
    assert ctx.counters["agent_fallbacks"] == 1


def test_unreachable_server_falls_back(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    proposal = agent("http://127.0.0.1:9").propose(ctx)          # nothing listens on port 9
    assert proposal.source == "strategy"


def test_experimenter_runs_the_agents_hypothesis(store, keys) -> None:
    runner = SimRunner()
    ctx = context(store, keys[0], runner)
    exp = Experimenter(Strategy())
    while exp.work(ctx).startswith("ran"):
        pass                                               # baseline topped up (and one experiment)
    with MessagesServer([GOOD]) as server:
        Experimenter(agent(server.url)).work(ctx)
    rows = store.query("SELECT source, diff FROM hypotheses WHERE source = 'agent'").rows
    assert rows == [("agent", '{"lr":0.006}')]


def test_proposer_selection(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    offline = make_proposer("auto")
    assert isinstance(offline, Portfolio) and sorted(offline.proposers) == ["random", "rsm", "tpe"]
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        make_proposer("claude")
    with pytest.raises(ValueError, match="offline"):
        make_proposer("sometimes")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    online = make_proposer("auto", base_url="http://127.0.0.1:9")
    assert isinstance(online.proposers["agent"], ClaudeAgent)
    assert "agent" not in make_proposer("offline").proposers


MODELS = [("claude-sonnet-4-6", "2026-02-17T00:00:00Z"), ("claude-opus-4-6", "2026-02-05T00:00:00Z"),
          ("claude-sonnet-4-5-20250929", "2025-09-29T00:00:00Z"),
          ("claude-haiku-4-5-20251001", "2025-10-01T00:00:00Z")]


def test_unknown_model_is_replaced_from_the_models_api(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer([GOOD, GOOD], models=MODELS) as server:
        bot = ClaudeAgent(None, model="claude-sonnet-3-retired", base_url=server.url,
                          api_key="test-key", timeout_s=10)
        first = bot.propose(ctx)
        second = bot.propose(ctx)                       # no second 404: the model was kept
    assert first.diff == {"lr": 0.006} and second.diff == {"lr": 0.006}
    paths = [r["path"] for r in server.requests]
    assert paths[0] == "/v1/messages" and paths[1].startswith("/v1/models")
    assert [r["body"]["model"] for r in server.requests if r["body"]] == [
        "claude-sonnet-3-retired", "claude-sonnet-4-6", "claude-sonnet-4-6"]
    assert ctx.counters["agent_model_replaced"] == 1 and bot.model == "claude-sonnet-4-6"


def test_unknown_model_without_a_models_list_falls_back(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    with MessagesServer([GOOD], models=[]) as server:   # every model is unknown, none listed
        bot = ClaudeAgent(None, model="claude-gone", base_url=server.url, api_key="k",
                          timeout_s=10)
        assert bot.propose(ctx) is None
    assert ctx.counters["agent_fallbacks"] == 1


def test_pick_model_prefers_the_newest_of_the_same_family() -> None:
    assert pick_model(MODELS, "claude-opus-3") == "claude-opus-4-6"
    assert pick_model(MODELS, "claude-haiku-3") == "claude-haiku-4-5-20251001"
    assert pick_model(MODELS, "something-else") == "claude-sonnet-4-6"
    assert pick_model([], "claude-sonnet-4") is None


def test_the_digest_carries_the_optimizers_suggestions(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    tpe = OptunaProposer("tpe", knobs=None)
    with MessagesServer([GOOD]) as server:
        ClaudeAgent(None, base_url=server.url, api_key="k", timeout_s=10,
                    suggest=tpe.suggestions).propose(ctx)
    digest = json.loads(server.requests[0]["body"]["messages"][0]["content"].split("\n")[1])
    assert len(digest["optimizer_suggestions"]) == 3
    assert all(set(d) <= set(BASE) and d for d in digest["optimizer_suggestions"])


def test_parse_answer_rejects_unknown_knobs() -> None:
    with pytest.raises(ValueError, match="unknown knobs"):
        parse_answer('{"diff": {"depth": 9}, "rationale": "x"}', BASE, None, [])


def test_the_digests_dead_ends_are_trusted_authors_screens_only(store, keys) -> None:
    from memory import records as R
    from roles.digest import digest

    runner = SimRunner()
    me, stranger = context(store, keys[0], runner), context(store, keys[1], runner)
    for ctx, diff in ((me, {"lr": 0.01}), (stranger, {"lr": 0.02}), (stranger, {"n_layer": 5})):
        hyp = ctx.publish("hypothesis", R.HypothesisBody(track=ctx.track, diff=diff,
                                                         rationale="t", source="strategy"))
        ctx.publish("run", runner({**BASE, **diff}, 1, "screen", hyp.id))
    assert store.query("SELECT count(*) FROM dead_ends").rows[0][0] == 3   # the records' say
    assert digest(me)["dead_ends"] == [{"lr": 0.01}]       # the stranger's screens are no news
    trusting = context(store, keys[0], runner, pinned=frozenset({keys[1].peer_id}))
    assert len(digest(trusting)["dead_ends"]) == 3
