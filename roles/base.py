"""The Role interface (one method) and the proposal a strategy or the agent hands the experimenter."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from roles.context import Context

RoleName = Literal["experimenter", "verifier", "statistician", "meta_analyst"]
ROLE_NAMES: tuple[RoleName, ...] = ("experimenter", "verifier", "statistician", "meta_analyst")


class Role(Protocol):
    """One unit of work for the swarm, read from and published to the memory."""

    name: RoleName

    def work(self, ctx: Context) -> str | None:
        """Do one unit of work; a one-line summary, or None when there was nothing to do."""


@dataclass(frozen=True)
class Proposal:
    """A next experiment: a diff over the track's current best config, and why."""

    diff: dict[str, Any]
    rationale: str
    source: Literal["agent", "strategy", "human"]


class Proposer(Protocol):
    """Proposes the next experiment (the research agent, or the built-in strategy)."""

    def propose(self, ctx: Context) -> Proposal | None:
        """A proposal, or None when it has none."""
