"""Worker loops (no network): nodes sharing one memory reach a verified claim with no role assigned."""
from __future__ import annotations

import pytest

from roles.base import Proposal
from swarm.worker import Worker
from tests.roles.simulated import SD, SimRunner, context


class LrFirst:
    """Proposes the helpful change first, then nothing (keeps the test short)."""

    def __init__(self) -> None:
        self.left = [{"lr": 0.006}]

    def propose(self, ctx):
        return Proposal(self.left.pop(), "test", "human") if self.left else None


def test_two_workers_reach_an_independently_verified_claim(store, keys) -> None:
    runner = SimRunner({("lr", 0.006): -5 * SD})
    workers = [Worker(context(store, k, runner, i), LrFirst(), max_runs=60) for i, k in
               enumerate(keys[:2])]
    for _ in range(40):
        for w in workers:
            w.step()
        done = store.query("SELECT status FROM claim_status").rows
        if done == [("verified",)]:
            break
    assert store.query("SELECT status FROM claim_status").rows == [("verified",)]
    roles = {r[0] for r in store.query("SELECT DISTINCT role FROM roles").rows}
    assert {"experimenter", "statistician", "verifier"} <= roles
    claim_author = store.query("SELECT author FROM claims").rows[0][0]
    verifier = store.query("SELECT author FROM verifications").rows[0][0]
    assert claim_author != verifier
    assert all(w.progress.runs > 0 for w in workers) or sum(w.progress.runs for w in workers) > 10


def test_max_runs_stops_the_loop(store, keys) -> None:
    w = Worker(context(store, keys[0], SimRunner(), 1), LrFirst(), pinned="experimenter", max_runs=4)
    w.run()
    assert w.progress.runs >= 4 and w.progress.roles == {"experimenter": w.progress.roles["experimenter"]}


def test_a_node_that_cannot_train_backs_off_when_idle(store, keys) -> None:
    from swarm.worker import IDLE_MAX_S, IDLE_S, Worker

    ctx = context(store, keys[0], None, 1)
    worker = Worker(ctx, None, can_train=False)
    waits = [worker.idle_wait(n) for n in range(1, 10)]
    assert waits[0] == IDLE_S and waits == sorted(waits) and waits[-1] == IDLE_MAX_S
    assert Worker(context(store, keys[1], None, 2), None).idle_wait(9) == IDLE_S


@pytest.mark.parametrize("pinned, backs_off", [("meta_analyst", True), ("statistician", True),
                                               ("verifier", False), (None, False)])
def test_a_node_pinned_to_a_role_that_never_trains_backs_off_when_idle(
        store, keys, pinned, backs_off) -> None:
    """`swarm join --role meta_analyst` on a machine with the track's data waited 2 s after
    each idle step, publishing a `role` record each time (27 in its first minute)."""
    from swarm.worker import IDLE_MAX_S, IDLE_S, Worker

    worker = Worker(context(store, keys[0], None, 1), None, pinned=pinned, can_train=True)
    assert worker.idle_wait(9) == (IDLE_MAX_S if backs_off else IDLE_S)
    assert worker.idle_wait(1) == IDLE_S


def test_the_best_shown_follows_each_run_of_a_unit(store, keys) -> None:
    """A fresh node's first unit is several baseline runs: `swarm status` counts each as it lands."""
    shown: list[int] = []
    sim = SimRunner()

    def runner(*args):
        shown.append(worker.progress.best.get("runs", 0))
        return sim(*args)

    worker = Worker(context(store, keys[0], runner, 1), LrFirst(), pinned="experimenter")
    worker.step()
    assert len(shown) >= 2 and shown == list(range(len(shown)))
