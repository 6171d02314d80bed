"""Sanity bounds: a run whose numbers are impossible for its track is no evidence of anything.

A valid signature proves who said a number, never that the number could have been measured. Each
check below names a quantity the harness fixes or bounds; a run that breaks one is excluded from
all evidence (baselines, claims, leaderboards, trust), with the reason kept for `swarm show`.

The checks need what the node knows about the track: `TrackFacts` (its id and, when known, its
token budget). Without a budget (a simulated track in tests, a track id the node cannot resolve
to a harness track) only the bounds that need no harness knowledge apply: val_bpb, mfu, a crash
carrying a number; the node's own track always has a budget (swarm/node_work.py).
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from memory import canonical
from node.harness.config import Config, Refused, build_config

# A model that predicts every byte as uniform over 256 values scores 8 bits per byte; an `ok` run
# above that learned less than nothing, and a value above it is no measurement of this harness.
MAX_BPB = 8.0


@dataclass(frozen=True)
class TrackFacts:
    """What the node knows of the tracks it judges: the ids it accepts, and their budgets."""

    budgets: dict[str, int | None]       # track id -> training tokens per run (None: unknown)

    def knows(self, track: str) -> bool:
        """Is this a track the node can judge at all?"""
        return track in self.budgets


def _number(value: Any) -> float | None:
    """A finite float, else None (a string, inf, nan, or a value too big to be a float)."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _config(value: Any) -> dict[str, Any] | None:
    try:
        out = json.loads(value) if isinstance(value, str) else dict(value)
    except (TypeError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def harness_config(value: Any) -> tuple[Config | None, str | None]:
    """The harness's validated config for a run's config, or the reason it would refuse it (or
    would have written it otherwise: `spelling_reason`)."""
    if isinstance(value, str) and len(value) <= 2048:
        return _harness_config_text(value)      # stored runs: the canonical JSON text, memoised
    return _run_config(value)


@functools.lru_cache(maxsize=4096)
def _harness_config_text(text: str) -> tuple[Config | None, str | None]:
    return _run_config(text)


def _run_config(value: Any) -> tuple[Config | None, str | None]:
    cfg, why = _harness_config(value)
    if cfg is None:
        return cfg, why
    why = spelling_reason(_config(value) or {}, cfg)
    return (None, why) if why else (cfg, None)


def spelling_reason(config: dict[str, Any], cfg: Config) -> str | None:
    """Why `config` (which the harness reads as `cfg`) is not spelled as the harness writes it, or
    None. The harness reads 3.0 for an int knob as 3, 4 for a float knob as 4.0, -0.0 as 0.0, an
    opt-in knob at its default as absent and an absent core knob as its default: each spelling is
    the same run under another config hash (and some print alike), so a run's config must be
    spelled as `cfg.model_dump()` is."""
    normal = cfg.model_dump()
    for knob, value in config.items():
        if knob not in normal:
            return f"config spells the opt-in knob {knob} at its default (the harness omits it)"
        if canonical.pack(value) != canonical.pack(normal[knob]):
            return (f"config spells {knob} as {value!r}; the harness writes {normal[knob]!r} "
                    "(the same run under another config hash)")
    missing = sorted(set(normal) - set(config))     # read as its default, which the harness writes
    if missing:
        return (f"config spells no {', '.join(missing)[:200]} (the harness writes every core knob: "
                "the same run under another config hash)")
    return None


def diff_reason(base: dict[str, Any], diff: Any) -> str | None:
    """Why a hypothesis's or claim's diff over `base` is no work for anyone (unknown knobs, a
    config the harness refuses), or None. docs/PROTOCOL.md: peers must name knobs the harness has."""
    changes = _config(diff)
    if changes is None:
        return "diff is not a map"
    unknown = sorted(k for k in changes if k not in Config.model_fields)
    if unknown:
        return f"unknown knob(s): {', '.join(unknown)[:200]}"
    return _harness_config({**base, **changes})[1]


def _harness_config(value: Any) -> tuple[Config | None, str | None]:
    config = _config(value)
    if config is None:
        return None, "config is not a map"
    try:
        return build_config({}, config), None
    except Refused as exc:
        return None, f"config refused by the harness: {exc}"


def _bpb_reason(row: dict[str, Any]) -> str | None:
    bpb = row.get("val_bpb")
    if row.get("status") != "ok":
        return None if bpb is None else f"a {row.get('status')} run carries val_bpb {bpb!r}"
    x = _number(bpb)
    if x is None:
        return f"val_bpb {bpb!r} is not a finite number"
    if x <= 0:
        return f"val_bpb {x:g} <= 0"
    if x > MAX_BPB:
        return f"val_bpb {x:g} above the byte-level maximum of {MAX_BPB:g}"
    return None


def _mfu_reason(row: dict[str, Any]) -> str | None:
    mfu = row.get("mfu")
    if mfu is None:
        return None
    x = _number(mfu)
    if x is None or not 0.0 <= x <= 1.0:
        return f"mfu {mfu!r} outside [0, 1]"
    return None


def _budget_reason(row: dict[str, Any], cfg: Config, budget: int) -> str | None:
    tokens, steps = row.get("tokens"), row.get("steps")
    if not isinstance(tokens, int) or not isinstance(steps, int):
        return "tokens or steps missing"
    if row.get("status") != "ok":
        return None                        # an unfinished run stops anywhere; it is no evidence
    if tokens != steps * cfg.tokens_per_step:
        return (f"tokens {tokens} != steps {steps} x {cfg.tokens_per_step} tokens per step")
    if steps != budget // cfg.tokens_per_step:
        return (f"steps {steps} != the track's {budget} tokens in whole steps of "
                f"{cfg.tokens_per_step} ({budget // cfg.tokens_per_step})")
    return None


def reason(row: dict[str, Any], facts: TrackFacts) -> str | None:
    """Why this run (a `runs` row as a dict) is impossible for its track, or None when it is sane.

    Never raises, whatever the row holds."""
    try:
        return _reason(row, facts)
    except Exception as exc:              # hostile input must not make a role raise
        return f"unreadable run: {type(exc).__name__}"


def _reason(row: dict[str, Any], facts: TrackFacts) -> str | None:
    track = row.get("track")
    if not isinstance(track, str) or not facts.knows(track):
        return f"unknown track {track!r}"
    why = _bpb_reason(row) or _mfu_reason(row)
    if why:
        return why
    budget = facts.budgets[track]
    if budget is None:
        return None                       # not a harness track this node can identify
    cfg, why = harness_config(row.get("config"))
    if cfg is None:
        return why
    return _budget_reason(row, cfg, budget)
