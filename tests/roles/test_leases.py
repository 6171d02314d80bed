"""Lease renewal: a live node's lease outlasts `lease_s` while its work goes on; a dead node's
lease expires and frees the work. Real Store, real signed records, a clock the test moves."""
from __future__ import annotations

import dataclasses
from typing import Any

from memory.canonical import config_hash
from roles import leases
from roles.base import Proposal
from swarm.worker import Worker
from tests.roles.simulated import BASE, PARAMS, SimRunner, context

WORK = "ab" * 16


class Clock:
    """Seconds since the epoch that the test advances."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def test_renewed_lease_is_not_taken_and_an_expired_one_is(store, keys) -> None:
    clock = Clock()
    a = context(store, keys[0], None, 1, lease_s=10, clock=clock)
    b = context(store, keys[1], None, 2, lease_s=10, clock=clock)
    assert leases.take(a, "experiment", WORK)
    assert leases.renew(a) == 0                       # 10 s left: nothing to renew yet
    clock.t += 8
    assert leases.renew(a) == 1                       # 2 s left < lease_s / 2: renewed to +10
    clock.t += 7                                      # 15 s after the first lease
    assert leases.held_by_other(b, "experiment", WORK)
    assert not leases.take(b, "experiment", WORK)
    clock.t += 4                                      # a stopped renewing (a dead node)
    assert not leases.held_by_other(b, "experiment", WORK)
    assert leases.take(b, "experiment", WORK)
    assert leases.held_by_other(a, "experiment", WORK)


def test_renewal_covers_the_expected_run_length(store, keys) -> None:
    clock = Clock()
    a = context(store, keys[0], None, 1, lease_s=10, clock=clock)
    leases.take(a, "verify", WORK, "cd" * 32)
    assert leases.renew(a, needed_s=30) == 1          # the next run may take 30 s: 10 s is short
    rows = store.query("SELECT max(expires_ts) FROM claim_leases").rows
    assert rows[0][0] == int(clock.t * 1000) + 60_000


class SlowRunner(SimRunner):
    """Each run takes 8 simulated seconds; after each, records whether `other` sees the lease."""

    def __init__(self, clock: Clock, other: Any, chash: str, effects: dict) -> None:
        super().__init__(effects)
        self.clock, self.other, self.chash, self.seen = clock, other, chash, []

    def __call__(self, config, seed, purpose, ref):
        self.clock.t += 8
        if purpose in ("screen", "confirm"):
            self.seen.append(leases.held_by_other(self.other, "experiment", self.chash))
        return super().__call__(config, seed, purpose, ref)


class Once:
    def __init__(self, diff: dict[str, Any]) -> None:
        self.left = [diff]

    def propose(self, ctx: Any) -> Proposal | None:
        return Proposal(self.left.pop(), "test", "human") if self.left else None


def test_worker_keeps_its_lease_through_an_experiment_longer_than_the_lease(store, keys) -> None:
    clock = Clock()
    diff = {"lr": 0.006}
    other = context(store, keys[1], None, 2, lease_s=10, clock=clock)
    runner = SlowRunner(clock, other, config_hash({**BASE, **diff}), {("lr", 0.006): -0.01})
    # no efficacy stop: the confirmation runs to confirm_max, an experiment several leases long
    ctx = context(store, keys[0], runner, 1, lease_s=10, clock=clock,
                  params=dataclasses.replace(PARAMS, stop_alpha=0.0))
    worker = Worker(ctx, Once(diff), pinned="experimenter")
    while len(runner.seen) == 0:
        worker.step()                                 # baseline top-ups, then the experiment
    assert len(runner.seen) >= 1 + PARAMS.confirm_max  # screen + confirmations: > 40 s of work
    assert all(runner.seen)                           # the other node never saw the work free
    assert worker.progress.lease_renewals >= 3
    clock.t += 20                                     # the worker moved on: the lease expires
    assert not leases.held_by_other(other, "experiment", runner.chash)
