"""The research agent: Claude proposes the next experiment from a digest of the memory.

The answer must be a JSON object `{"diff": {knob: value, ...}, "rationale": "one paragraph"}` whose
diff validates as an experiment over the track's best config. An invalid answer is sent back with
the validation error (up to `retries` times), then dropped and counted. API errors, rate limits and
timeouts fall back to the built-in strategy for that step; nothing raises out of `propose`.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from roles import digest, evidence, leases
from roles.base import Proposal
from roles.context import Context
from roles.strategy import Strategy, Validate

log = logging.getLogger(__name__)
DEFAULT_MODEL = "claude-sonnet-4-5"
SYSTEM = (
    "You are the research agent of a peer-to-peer swarm that trains small language models under a "
    "fixed token budget and keeps only changes that survive seed variance and an independent "
    "re-run. Lower val_bpb is better. Propose ONE next experiment as a diff over the best config. "
    "Avoid dead ends and anything already tried. Answer with a single JSON object and nothing "
    'else: {"diff": {"knob": value, ...}, "rationale": "one paragraph"}.')


class InvalidAnswer(ValueError):
    """The model's answer does not validate as an experiment."""


def parse_answer(text: str, best: dict[str, Any], validate: Validate | None,
                 tried: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The (diff, rationale) in `text`, or InvalidAnswer saying what is wrong."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        raise InvalidAnswer("no JSON object found")
    try:
        answer = json.loads(match.group(0))
    except ValueError as exc:
        raise InvalidAnswer(f"not valid JSON: {exc}") from None
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


class ClaudeAgent:
    """Proposer backed by the Messages API; falls back to `fallback` on any API failure."""

    def __init__(self, fallback: Strategy, validate: Validate | None = None,
                 model: str | None = None, base_url: str | None = None,
                 api_key: str | None = None, retries: int = 2, timeout_s: float = 60.0) -> None:
        import anthropic               # lazy: only nodes with a key pay for the import

        self.fallback, self.validate, self.retries = fallback, validate, retries
        self.model = model or os.environ.get("SWARM_AGENT_MODEL") or DEFAULT_MODEL
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, timeout=timeout_s,
                                          max_retries=0)
        self._api_error = anthropic.APIError

    def propose(self, ctx: Context) -> Proposal | None:
        """Ask Claude; on API failure use the strategy; on repeated invalid answers, drop."""
        best = evidence.best_config(ctx)
        tried = evidence.tried_configs(ctx)
        messages: list[dict[str, Any]] = [{"role": "user", "content": (
            "Memory digest:\n" + digest.digest_text(ctx) + "\nPropose the next experiment.")}]
        for _attempt in range(self.retries + 1):
            try:
                reply = self.client.messages.create(model=self.model, max_tokens=1024,
                                                    system=SYSTEM, messages=messages)
            except self._api_error as exc:
                ctx.count("agent_fallbacks")
                log.warning("agent unavailable (%s); built-in strategy for this step",
                            type(exc).__name__)
                return self.fallback.propose(ctx)
            text = "".join(getattr(b, "text", "") for b in reply.content)
            try:
                diff, rationale = parse_answer(text, best, self.validate, tried)
            except InvalidAnswer as exc:
                ctx.count("agent_invalid_answers")
                messages += [{"role": "assistant", "content": text or "(empty)"},
                             {"role": "user", "content": f"Invalid: {exc}. Answer again with "
                                                         "the JSON object only."}]
                continue
            ctx.count("agent_proposals")
            return Proposal(diff, rationale[:8000], "agent")
        ctx.count("agent_dropped")
        log.info("agent answers did not validate after %d tries; dropped", self.retries + 1)
        return None


def make_proposer(mode: str, validate: Validate | None = None, model: str | None = None,
                  base_url: str | None = None) -> Strategy | ClaudeAgent:
    """`offline`: the strategy; `auto`: Claude when ANTHROPIC_API_KEY is set; `claude`: Claude."""
    strategy = Strategy(validate)
    if mode not in ("auto", "offline", "claude"):
        raise ValueError(f"--agent must be auto, offline or claude, not {mode!r}")
    key = os.environ.get("ANTHROPIC_API_KEY")
    if mode == "offline" or (mode == "auto" and not key):
        return strategy
    if not key:
        raise ValueError("--agent claude needs ANTHROPIC_API_KEY")
    return ClaudeAgent(strategy, validate, model, base_url or os.environ.get("ANTHROPIC_BASE_URL"))
