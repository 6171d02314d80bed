"""The worker's progress as `swarm status` rows and as the live panel of `swarm join`."""
from __future__ import annotations

import io
import logging
import time

from rich.console import Console

from swarm import progress_view
from swarm.worker import Progress

WORK = {"track": "tinystories-cpu", "role": "verifier", "current_run": {"what": "replay run, seed 7",
        "running_s": 12.0}, "runs": 5, "role_mix": {"experimenter": 4, "verifier": 1},
        "best": {"val_bpb": 2.25, "runs": 6, "diff": {"batch_size": 4}},
        "busy_s": 100.0, "coordination_share": 0.0125}


def test_rows_show_role_run_best_mix_and_share() -> None:
    rows = dict(progress_view.work_rows(WORK))
    assert rows["role"] == "verifier" and rows["current run"] == "replay run, seed 7 (12 s)"
    assert rows["verified best"] == 'val_bpb 2.2500 over 6 runs: {"batch_size": 4}'
    assert rows["role mix (swarm)"] == "experimenter 4, verifier 1"
    assert rows["time not training"] == "1% of 1 m 40 s (choosing and sharing work)"


def test_time_not_training_reads_plainly_and_waits_for_enough_work() -> None:
    """The panel read `coordination share 49.37% of 2 s busy`: jargon to a newcomer, and a
    percentage of two seconds (the first run's start) that means nothing yet."""
    early = dict(progress_view.work_rows({**WORK, "busy_s": 2.0, "coordination_share": 0.4937}))
    assert "coordination share" not in early
    assert early["time not training"] == "shown after a minute of work"
    assert "%" not in early["time not training"]
    rows = dict(progress_view.work_rows({**WORK, "busy_s": 3700.0, "coordination_share": 0.001}))
    assert rows["time not training"] == "under 1% of 1 h 01 m (choosing and sharing work)"


def test_live_panel_draws_on_a_terminal_only() -> None:
    out = io.StringIO()
    tty = Console(file=out, force_terminal=True, width=100)
    root = logging.getLogger()
    handlers = root.handlers[:]
    with progress_view.live(tty, lambda: WORK):
        assert root.handlers != handlers            # logs go through the console meanwhile
        time.sleep(1.2)
    assert root.handlers == handlers and "verified best" in out.getvalue()
    piped = io.StringIO()
    with progress_view.live(Console(file=piped, force_terminal=False), lambda: WORK):
        pass
    assert piped.getvalue() == ""


def test_progress_counts_the_step_and_run_under_way() -> None:
    p = Progress(busy_s=10.0, train_s=9.0, runs=1)
    p.step_started = p.run_started = time.monotonic() - 5.0
    busy, train = p.totals()
    # 5 s under way, counted once (twice would be 20 and 19); the slack is a loaded machine's
    assert 15.0 <= busy < 19.5 and 14.0 <= train < 18.5
    assert abs(p.coordination_share() - 1.0 / busy) < 0.01


def _panel_rows(store, pinned: frozenset[str]) -> dict[str, str]:
    """The live panel's swarm rows for a node (no key of its own in the history) pinning `pinned`."""
    import random

    from memory import synthetic
    from memory.crypto import Keypair
    from memory.stats import GateParams
    from roles.context import Context, StorePublisher
    from swarm.worker import Worker

    me = Keypair.generate()
    ctx = Context(store=store, me=me.peer_id, publish=StorePublisher(store, me),
                  track=synthetic.HISTORY_TRACK, base_config=dict(synthetic.HISTORY_BASE),
                  run=None, params=GateParams(min_baseline=16), rng=random.Random(0), pinned=pinned)
    worker = Worker(ctx, proposer=None, can_train=False)
    worker.refresh_view()
    work = {**WORK, **worker.progress.snapshot()}
    summary = progress_view.SwarmSummary(store, "tinystories-cpu", 16, GateParams().min_start).get()
    return dict(progress_view.work_rows({**work, "swarm": progress_view.with_work(summary, work)}))


def test_the_panel_counts_toward_the_baseline_and_shows_claims(tmp_path) -> None:
    from memory import synthetic
    from memory.store import Store

    authors = frozenset(k.peer_id for k in synthetic.keypairs(3, seed=100))   # history's nodes
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        store.add(synthetic.history(baseline=9)[:15])          # 3 nodes, 3 roles, 9 baseline runs
        # screening starts at min_start (6) seeds: the panel said "experiments start after it"
        # (at 16) while they ran
        assert _panel_rows(store, authors)["baseline"] == \
            "9/16 seeds; experiments under way, each adding one"
    with Store(tmp_path / "n.duckdb", helpers=0) as store:
        store.add(synthetic.history(confirms=6))
        rows = _panel_rows(store, authors)
        assert rows["baseline"] == "16 seeds (done)" and rows["findings"] == "1"
        assert rows["claims"] == "1 not_supported, 1 verified"
        # The same records by keys this node does not trust: their testimony says "verified"
        # (claim_status), but the panel shows what this node derives, so nothing counts.
        said = store.query("SELECT status FROM claim_status WHERE status = 'verified'").rows
        assert said and _panel_rows(store, frozenset())["claims"] == "none yet"
        assert _panel_rows(store, frozenset())["baseline"] == "0/16 seeds; experiments start at 6"
    line = progress_view.summary_line({**WORK, "swarm": {"claims": {"verified": 1}}})
    assert line.startswith("5 runs by this node; 1 verified; verified best val_bpb 2.2500")
    # off a terminal the summary was never read while the node ran (and its store is closed
    # at the stop): the worker's own count, not "no claims"
    line = progress_view.summary_line({**WORK, "claims": {"verified": 2}, "swarm": {}})
    assert line.startswith("5 runs by this node; 2 verified; verified best")


def test_a_run_under_way_shows_its_step_loss_and_time_left_at_80_columns() -> None:
    p = Progress(doing="confirm run, seed 123456789")
    p.run_started = time.monotonic() - 125.0
    p.on_run_progress({"event": "progress", "step": 120, "steps": 400, "loss": 2.34567,
                       "elapsed_s": 60.0, "tokens": 0})
    p.on_run_progress({"event": "progress", "step": "junk", "steps": 400})   # ignored
    work = {**WORK, **p.snapshot(), "swarm": {"baseline": 9, "min_baseline": 16,
                                              "claims": {"pending": 2}, "findings": 0}}
    rows = dict(progress_view.work_rows(work))
    assert rows["current run"] == "confirm run, seed 123456789 (2 m 05 s)"
    assert rows["run progress"] == "step 120/400, loss 2.346, ~2 m 20 s left"
    out = Console(width=80, record=True, file=io.StringIO())
    out.print(progress_view.panel(work))
    text = out.export_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "step 120/400, loss 2.346, ~2 m 20 s left" in text           # on one line


def test_a_stop_mid_run_keeps_the_coordination_share_a_share(tmp_path) -> None:
    """Ctrl-C during a run: the run's training time was counted and the step's busy time was
    not (the loop broke out before adding it): `swarm join`'s panel ended at "-15.70% of 41 s
    busy"."""
    import random

    from memory.crypto import Keypair
    from memory.stats import GateParams
    from memory.store import Store
    from node.harness.runner import Cancelled
    from roles.context import Context, StorePublisher
    from swarm.worker import Worker

    me = Keypair.generate()
    with Store(tmp_path / "m.duckdb", helpers=0) as store:
        ctx = Context(store=store, me=me.peer_id, publish=StorePublisher(store, me),
                      track="tinystories-cpu", base_config={}, run=None, params=GateParams(),
                      rng=random.Random(0), pinned=frozenset())
        worker = Worker(ctx, proposer=None, can_train=False)

        def a_run_stopped_by_ctrl_c() -> str:
            started = time.monotonic()                  # what TrackedRunner counts as training
            time.sleep(0.05)
            worker.progress.train_s += time.monotonic() - started
            raise Cancelled("stopped")
        worker.step = a_run_stopped_by_ctrl_c           # type: ignore[method-assign]
        worker.run()
    busy, train = worker.progress.totals()
    assert busy >= train > 0 and 0.0 <= worker.progress.coordination_share() < 1.0
