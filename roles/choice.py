"""Emergent role choice: score the open work per role from the memory, weight by what this node's
hardware can do, add randomness so nodes do not herd, publish the choice as a `role` record.

Scores (before weights): verifier = claims awaiting an independent re-run (+ 0.3 when a spot
check is due: roles/spotcheck.py); statistician = claims this node can test that no trusted author
assessed + 1 when the noise floor is stale (claims citing runs nobody has are no work for anyone); meta_analyst = new outcomes since the
last finding / 10; experimenter = 1 + open hypotheses / 2 (there is always an experiment to run).
A node that cannot train (`can_train` false: it has no data for the track) never takes a training
role: it would publish a `role` record for work it cannot do (a data-less node chose
"experimenter" whenever the other roles had no open work, since that role always has some).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from memory import records as R
from roles import evidence
from roles.base import ROLE_NAMES, RoleName
from roles.context import Context
from roles.meta_analyst import MetaAnalyst
from roles.statistician import Statistician
from roles.verifier import Verifier

# How much one unit of open work is worth per role: checking and assessing claims unblocks
# everyone else's progress, so it outranks starting new experiments. The statistician's work
# trains nothing (a second at most), so it goes first whatever the jitter: a claim left waiting
# behind a training run waits minutes (the end-to-end swarm waited 4 of its ~15).
VALUE = {"verifier": 3.0, "statistician": 30.0, "meta_analyst": 1.0, "experimenter": 1.0}
TRAINING_ROLES = ("experimenter", "verifier")
NOISE = 0.5            # sd of the log-normal jitter on each score
SPOT_CHECK = 0.3       # a pending spot check is worth less than a claim waiting for review


@dataclass(frozen=True)
class Choice:
    """The chosen role, why, and every role's score."""

    role: RoleName
    reason: str
    scores: dict[str, float]


def open_work(ctx: Context) -> dict[str, float]:
    """Units of open work per role, read from the memory."""
    return {
        "verifier": len(Verifier.open_claims(ctx))
        + SPOT_CHECK * len(Verifier.spot_checks(ctx, 1)),
        "statistician": len(Statistician.awaiting(ctx))
        + (1.0 if Statistician.floor_is_stale(ctx) else 0.0),
        "meta_analyst": MetaAnalyst.new_outcomes(ctx) / 10.0,
        "experimenter": 1.0 + len(evidence.open_hypotheses(ctx)) / 2.0,
    }


def choose(ctx: Context, can_train: bool = True, pinned: RoleName | None = None) -> Choice:
    """Pick this node's next role (or the pinned one) and publish the `role` record."""
    work = open_work(ctx)
    able = [r for r in ROLE_NAMES if can_train or r not in TRAINING_ROLES]
    scores = {r: round(work[r] * VALUE[r] * math.exp(ctx.rng.gauss(0.0, NOISE)), 6)
              if r in able else 0.0 for r in ROLE_NAMES}
    if pinned is not None:
        role, reason = pinned, f"pinned by --role; open work {work[pinned]:g}"
    else:
        role = max(able, key=lambda r: (scores[r], r))
        reason = f"{work[role]:g} unit(s) of open work" + ("" if can_train else "; no data to train")
    ctx.publish("role", R.RoleBody(role=role, reason=reason[:400], scores=scores))
    return Choice(role, reason, scores)
