"""A node's pending runs at its start (roles/resume.py over the real harness runner, a real
store): resumed and published with their files gone, or dropped with one warning line each."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from roles import pending
from roles.harness_runner import HarnessRunner
from swarm.worker import Worker
from tests.harness.conftest import tiny_track, write_corpus
from tests.roles.simulated import context


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> HarnessRunner:
    folder = tmp_path_factory.mktemp("corpus")
    return HarnessRunner(tiny_track(write_corpus(folder)), threads=1,
                         home=tmp_path_factory.mktemp("home"), data_dir=folder, checkpoints=True)


def test_pending_runs_are_resumed_and_published_or_dropped(runner: HarnessRunner, store, keys,
                                                           caplog) -> None:
    track_id, base = runner.prepare()
    ctx = context(store, keys[0], runner, base_config=base)
    ctx.track = track_id
    home = Path(runner.home)
    corrupt = pending.Pending(track_id, base, 3, "baseline", None, None)
    pending.mark(home, corrupt)
    pending.checkpoint_path(home, corrupt).write_bytes(b"half a checkpoint")
    for run in (pending.Pending(track_id, base, 4, "verify", "ee" * 32, None),
                pending.Pending("other-track", base, 5, "baseline", None, None)):
        pending.mark(home, run)
    (pending.folder(home) / "junk.json").write_text("{not json")
    notes = sorted(p.name for p in pending.folder(home).iterdir())
    worker = Worker(ctx, None)
    with caplog.at_level(logging.WARNING):
        assert worker.resume()
    warned = sorted(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert len(warned) == 4 and all("\n" not in line for line in warned), (notes, warned)
    assert any("refused, starting over: unreadable" in w for w in warned)
    assert any("its claim is no longer open" in w for w in warned)
    assert any("of track other-track" in w for w in warned)
    assert any("pending run junk dropped: unreadable" in w for w in warned)
    runs = store.query("SELECT purpose, seed, status FROM runs").rows
    assert runs == [("baseline", 3, "ok")] and worker.progress.runs == 1
    assert not list(pending.folder(home).iterdir())       # published or dropped: nothing kept
    # the same run noted again after it was published (the node died before deleting it)
    pending.mark(home, corrupt)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert worker.resume()
    assert [r.getMessage() for r in caplog.records][-1].endswith("already published")
    assert store.query("SELECT count(*) FROM runs").rows == [(1,)]
    assert not list(pending.folder(home).iterdir())


def test_a_node_with_nothing_to_resume_never_says_it_resumes(runner: HarnessRunner, store,
                                                             keys) -> None:
    """Every fresh node's panel read `current run: resuming a pending run` at its start, on a
    home that never had one."""
    track_id, base = runner.prepare()
    ctx = context(store, keys[0], runner, base_config=base)
    ctx.track = track_id
    assert runner.pending() == []
    worker = Worker(ctx, None)
    before = worker.progress.doing
    assert worker.resume() and worker.progress.doing == before
    assert "resum" not in str(before)
