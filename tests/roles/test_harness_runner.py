"""The real runner and validator over the real harness (tiny track, tiny budget, subprocess runs)."""
from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

import pytest

from node.harness import Cancelled
from roles.harness_runner import HarnessRunner
from roles.strategy import Strategy, harness_validator
from tests.harness.conftest import TINY, tiny_track, write_corpus
from tests.roles.simulated import context


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> HarnessRunner:
    folder = tmp_path_factory.mktemp("corpus")
    data = write_corpus(folder)
    return HarnessRunner(tiny_track(data), threads=1, home=tmp_path_factory.mktemp("home"),
                         data_dir=folder)


def test_prepare_gives_the_track_id_and_full_base_config(runner: HarnessRunner) -> None:
    track_id, base = runner.prepare()
    assert track_id == runner.track.id and track_id.startswith("test:")
    assert base == TINY.model_dump()


def test_a_run_is_a_deterministic_run_body(runner: HarnessRunner) -> None:
    config = {**TINY.model_dump(), "lr": 0.01}
    first = runner(config, 7, "confirm", "ab" * 32)
    again = runner(config, 7, "replay", None)
    assert first.status == "ok" and first.metrics.val_bpb is not None
    assert (first.purpose, first.ref, first.seed, first.track) == ("confirm", "ab" * 32, 7,
                                                                   runner.track.id)
    assert first.config["lr"] == 0.01 and first.config_hash == again.config_hash
    assert abs(first.metrics.val_bpb - again.metrics.val_bpb) <= 1e-6


def test_an_invalid_config_comes_back_refused(runner: HarnessRunner) -> None:
    body = runner({**TINY.model_dump(), "n_head": 3}, 1, "screen", None)    # 32 % 3 != 0
    assert body.status == "refused" and body.metrics.val_bpb is None


def test_stop_kills_the_run_and_raises(runner: HarnessRunner, tmp_path: Path) -> None:
    stop = threading.Event()
    slow = HarnessRunner(runner.track, budget_tokens=50_000_000, threads=1, home=runner.home,
                         data_dir=runner.data_dir, stop=stop)
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        slow(TINY.model_dump(), 1, "baseline", None)
    assert time.monotonic() - started < 120           # killed: the run itself would take hours


def test_harness_validator_uses_the_harness_rules() -> None:
    assert harness_validator(TINY.model_dump()) is None
    assert "n_embd" in harness_validator({**TINY.model_dump(), "n_head": 3})
    assert harness_validator({**TINY.model_dump(), "lr": 5.0}) is not None       # out of range


def test_strategy_with_the_validator_proposes_only_valid_configs(store, keys) -> None:
    ctx = context(store, keys[0], None, 3)
    ctx.base_config = TINY.model_dump()
    best = ctx.base_config
    candidates = Strategy().candidates(ctx, best)
    assert any(harness_validator({**best, **d}) for d in candidates)   # n_layer 1 - 1 = 0, ...
    for seed in range(30):
        ctx.rng.seed(seed)
        proposal = Strategy(harness_validator, explore=1.0).propose(ctx)
        assert proposal is not None
        assert harness_validator({**best, **proposal.diff}) is None


def test_the_live_panel_shows_a_real_runs_step_loss_and_time_left(runner: HarnessRunner, store,
                                                                   keys) -> None:
    from rich.console import Console

    from swarm import progress_view
    from swarm.worker import Progress, TimedRunner

    progress = Progress()
    timed = TimedRunner(runner, progress, context(store, keys[0], None, 3))
    assert runner.on_progress == progress.on_run_progress     # the worker hears the harness
    panels: list[str] = []

    def redraw(event: dict) -> None:              # the worker's callback, then a redraw
        progress.on_run_progress(event)
        out = Console(width=80, record=True, file=io.StringIO())
        out.print(progress_view.panel({"track": "tinystories-cpu", **progress.snapshot()}))
        panels.append(out.export_text())

    runner.on_progress = redraw
    try:
        body = timed({**TINY.model_dump(), "lr": 0.01}, 3, "screen", None)
    finally:
        runner.on_progress = None
    assert body.status == "ok" and panels                 # ...which reported at least the end
    last = panels[-1]
    steps = body.metrics.steps
    # label, then value (the label column is as wide as the widest label: not pinned here)
    rows = dict((re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2]
                for line in last.splitlines())
    assert rows["current run"].startswith("screen run, seed 3 ("), last
    assert rows["run progress"].startswith(f"step {steps}/{steps}, loss "), last
    assert "~0 s left" in last
    assert all(len(line) <= 80 for panel in panels for line in panel.splitlines())
    assert progress.snapshot()["current_run"] is None     # cleared once the run is over
