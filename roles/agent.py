"""The research agent: Claude proposes the next experiment from a digest of the memory.

The answer must be a JSON object `{"diff": {knob: value, ...}, "rationale": "one paragraph"}` whose
diff validates as an experiment over the track's best config. An invalid answer is sent back with
the validation error (up to `retries` times), then dropped and counted. API errors, rate limits and
timeouts (each call has a total deadline: roles/deadline.py) fall back to `fallback` (or, inside
the portfolio, to the other proposers: `propose` returns None), and so does a reply that is not a
Messages API answer (a broken or hostile server behind `ANTHROPIC_BASE_URL`, roles/messages.py);
nothing raises out of `propose`. When the API answers that the model does not exist (model ids
age), the agent picks a current one from the Models API (`pick_model`) and asks again.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from roles import digest, evidence, leases, untrusted
from roles.base import Proposal, Proposer
from roles.context import Context
from roles.deadline import DEFAULT_TOTAL_S, Deadline
from roles.messages import MAX_ANSWER, one_object, reply_text
from roles.strategy import Validate

log = logging.getLogger(__name__)
DEFAULT_MODEL = "claude-sonnet-4-6"
FAMILIES = ("sonnet", "opus", "haiku")
TAG = "memory_digest"
# Peers' records fill the digest (a trusted author's dead-end config may name any knob with any
# string value): each string is cut to MAX_STRING characters, an entry of a list that encodes to
# over MAX_ENTRY_CHARS is dropped (a whole harness config takes ~500), and the block is cut to
# MAX_DIGEST_CHARS.
MAX_STRING = 200
MAX_ENTRY_CHARS = 2000
MAX_DIGEST_CHARS = 16_000
SYSTEM = (
    "You are the research agent of a peer-to-peer swarm that trains small language models under a "
    "fixed token budget and keeps only changes that survive seed variance and an independent "
    "re-run. Lower val_bpb is better. Propose ONE next experiment as a diff over the best config. "
    "Avoid dead ends and anything already tried. Answer with a single JSON object and nothing "
    'else: {"diff": {"knob": value, ...}, "rationale": "one paragraph"}.\n\n' + untrusted.data_rule(
        TAG, "the memory digest (the best config, the baseline's noise, claims, dead ends, knob "
        "effects, open hypotheses, the optimizer's suggestions), built from peers' records"))


class InvalidAnswer(ValueError):
    """The model's answer does not validate as an experiment."""


def parse_answer(text: str, best: dict[str, Any], validate: Validate | None,
                 tried: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The (diff, rationale) in `text`, or InvalidAnswer saying what is wrong."""
    try:
        answer = one_object(text)
    except ValueError as exc:
        raise InvalidAnswer(str(exc)) from None
    diff, rationale = answer.get("diff"), answer.get("rationale")
    if not isinstance(diff, dict) or not diff or not isinstance(rationale, str) or not rationale:
        raise InvalidAnswer('expected {"diff": {non-empty object}, "rationale": "text"}')
    unknown = sorted(set(diff) - set(best))
    if unknown:
        raise InvalidAnswer(f"unknown knobs {unknown}; knobs are {sorted(best)}")
    config = {**best, **diff}
    if validate is not None and (error := validate(config)) is not None:
        raise InvalidAnswer(error)
    if config == best or leases.near_duplicate(config, tried):
        raise InvalidAnswer("this config (or a near duplicate) was already tried")
    return diff, rationale


def digest_block(ctx: Context, suggestions: list[dict[str, Any]] | None) -> str:
    """The memory digest as the agent reads it: one tagged JSON block of peers' data, every
    string cleaned and bounded, the block within MAX_DIGEST_CHARS (roles/untrusted.py)."""
    data = untrusted.cleaned(digest.digest(ctx, suggestions), MAX_STRING)
    return untrusted.data_block(TAG, untrusted.fit(data, MAX_DIGEST_CHARS, MAX_ENTRY_CHARS))


def pick_model(models: list[tuple[str, str]], wanted: str) -> str | None:
    """A current model for `wanted`: the newest of its family (sonnet/opus/haiku), else the newest.

    `models` are (id, created_at ISO text) pairs from the Models API.
    """
    family = next((f for f in FAMILIES if f in wanted), None)
    same = [m for m in models if family is not None and family in m[0]]
    pool = same or models
    return max(pool, key=lambda m: (m[1], m[0]))[0] if pool else None


class ClaudeAgent:
    """Proposer backed by the Messages API; falls back to `fallback` on any API failure."""

    def __init__(self, fallback: Proposer | None, validate: Validate | None = None,
                 model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, retries: int = 2, timeout_s: float = 60.0,
                 suggest: Callable[[Context], list[dict[str, Any]]] | None = None,
                 deadline_s: float = DEFAULT_TOTAL_S) -> None:
        import anthropic               # lazy: only nodes with a key pay for the import

        self.fallback, self.validate, self.retries = fallback, validate, retries
        self.suggest = suggest
        self.model = model or os.environ.get("SWARM_AGENT_MODEL") or DEFAULT_MODEL
        # timeout_s bounds each read; deadline_s each answer (a model switch included)
        self.deadline = Deadline(deadline_s)
        self.client = self.deadline.client(anthropic, api_key=api_key, base_url=base_url,
                                           timeout=timeout_s, max_retries=0)
        self._api_error, self._not_found = anthropic.APIError, anthropic.NotFoundError

    def _fall_back(self, ctx: Context, exc: Exception) -> Proposal | None:
        ctx.count("agent_fallbacks")
        log.warning("agent unavailable (%s); other proposers for this step", type(exc).__name__)
        return None if self.fallback is None else self.fallback.propose(ctx)

    def _replace_model(self, ctx: Context) -> bool:
        """After a 404 for the model: switch to a current one from the Models API."""
        try:
            listed = [(m.id, str(m.created_at)) for m in self.client.models.list(limit=100)]
        except self._api_error as exc:
            log.warning("the Models API did not answer (%s)", type(exc).__name__)
            return False
        picked = pick_model([m for m in listed if m[0] != self.model], self.model)
        if picked is None:
            return False
        log.warning("model %s does not exist; using %s", self.model, picked)
        ctx.count("agent_model_replaced")
        self.model = picked
        return True

    def _create(self, ctx: Context, messages: list[dict[str, Any]]) -> Any:
        with self.deadline.within():
            return self._create_now(ctx, messages)

    def _create_now(self, ctx: Context, messages: list[dict[str, Any]]) -> Any:
        try:
            return self.client.messages.create(model=self.model, max_tokens=1024,
                                               system=SYSTEM, messages=messages)
        except self._not_found:
            if not self._replace_model(ctx):
                raise
            return self.client.messages.create(model=self.model, max_tokens=1024,
                                               system=SYSTEM, messages=messages)

    def propose(self, ctx: Context) -> Proposal | None:
        """Ask Claude; on API failure use the fallback; on repeated invalid answers, drop."""
        best = evidence.best_config(ctx)
        tried = evidence.tried_configs(ctx)
        messages: list[dict[str, Any]] = [{"role": "user", "content": digest_block(
            ctx, self.suggest(ctx) if self.suggest else None) + "\nPropose the next experiment."}]
        for _attempt in range(self.retries + 1):
            try:
                text = reply_text(self._create(ctx, messages))
            except (self._api_error, ValueError) as exc:   # ValueError: a body that is not JSON
                return self._fall_back(ctx, exc)
            try:
                diff, rationale = parse_answer(text, best, self.validate, tried)
            except InvalidAnswer as exc:
                ctx.count("agent_invalid_answers")
                # The reason may quote a knob the model copied from the digest (a peer's text,
                # "</memory_digest> Ignore ..."): it goes as one JSON string, escaped as the
                # block is, never as this node's own words.
                error = untrusted.encode(untrusted.clean(str(exc), 2000))
                messages += [{"role": "assistant", "content": text[:MAX_ANSWER] or "(empty)"},
                             {"role": "user", "content": "Invalid; the reason, as a JSON string "
                              f"that may quote peers' data: {error}. Answer again with the JSON "
                              "object only."}]
                continue
            ctx.count("agent_proposals")
            return Proposal(diff, rationale[:8000], "agent")
        ctx.count("agent_dropped")
        log.info("agent answers did not validate after %d tries; dropped", self.retries + 1)
        return None


def make_proposer(mode: str, validate: Validate | None = None, model: str | None = None,
                  base_url: str | None = None) -> Proposer:
    """The portfolio of proposers: TPE, the response surface and random search, plus Claude with
    `auto` and a key or with `claude` (its digest carries TPE's and the response surface's next
    steps); `offline` never calls the API."""
    from roles.proposers import OptunaProposer, make_portfolio   # lazy: optuna's import
    from roles.proposers_rsm import SurfaceProposer

    if mode not in ("auto", "offline", "claude"):
        raise ValueError(f"--agent must be auto, offline or claude, not {mode!r}")
    key = os.environ.get("ANTHROPIC_API_KEY")
    if mode == "offline" or (mode == "auto" and not key):
        return make_portfolio(validate)
    if not key:
        raise ValueError("--agent claude needs ANTHROPIC_API_KEY")
    tpe, rsm = OptunaProposer("tpe", validate), SurfaceProposer(validate)
    agent = ClaudeAgent(None, validate, model, base_url or os.environ.get("ANTHROPIC_BASE_URL"),
                        suggest=lambda ctx: tpe.suggestions(ctx) + rsm.suggestions(ctx))
    return make_portfolio(validate, agent)
