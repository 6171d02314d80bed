"""`swarm pending`: pending runs listed (a real checkpoint written by a real stopped run, an
unreadable checkpoint, an unreadable note) and discarded by id prefix or all at once; a wrong
prefix is one line and changes nothing. A node's own listing leaves `swarm run`'s runs alone."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.harness.config import build_config
from node.harness.experiment import run_experiment
from node.harness.runner import Cancelled
from roles import pending
from swarm.cli import app
from tests.harness.conftest import tiny_track, write_corpus

cli = CliRunner(env={"COLUMNS": "80"})


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pending.Pending]:
    """A home whose checkpoints hold a screen run stopped at a step (through the real run
    process), a baseline run with a damaged checkpoint, and an unreadable note."""
    folder, home = tmp_path_factory.mktemp("corpus"), tmp_path_factory.mktemp("home")
    track = tiny_track(write_corpus(folder))
    config = build_config(track.base.model_dump(), {}).model_dump()
    stopped = pending.Pending(track.id, config, 4, "screen", None, None)
    pending.mark(home, stopped)
    mp = pytest.MonkeyPatch()
    mp.setenv("SWARM_HARNESS_FAULTS", "1")          # the stop fault: asked to stop at step 2
    try:
        with pytest.raises(Cancelled):
            run_experiment(track, {}, 4, threads=1, home=home, data_dir=folder, fault="stop",
                           checkpoint=pending.checkpoint_path(home, stopped))
    finally:
        mp.undo()
    damaged = pending.Pending(track.id, config, 5, "baseline", None, None)
    pending.mark(home, damaged)
    pending.checkpoint_path(home, damaged).write_bytes(b"half a checkpoint")
    (pending.folder(home) / "junk.json").write_text("{not json")
    return home, stopped


def _listed(home: Path) -> dict[str, dict]:
    res = cli.invoke(app, ["pending", "--json", "--home", str(home)])
    assert res.exit_code == 0, res.output
    return {row["id"]: row for row in json.loads(res.stdout)}


def _files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "checkpoints").iterdir())


def test_pending_runs_are_listed_readable_or_not(filled) -> None:
    home, stopped = filled
    rows = _listed(home)
    assert len(rows) == 3, rows
    good = rows[stopped.key]
    assert good["problem"] is None and good["resumed_by"] == "swarm join"
    assert (good["purpose"], good["seed"], good["step"], good["steps"]) == ("screen", 4, 3, 32)
    assert good["train_s"] > 0 and good["saved"] > 0
    assert good["bytes"] == sum(p.stat().st_size for p in pending.folder(home).glob(
        f"{stopped.key}.*"))
    damaged = next(r for r in rows.values() if r["seed"] == 5)
    assert damaged["problem"].startswith("checkpoint unreadable") and damaged["step"] is None
    assert rows["junk"]["problem"].startswith("note unreadable") and rows["junk"]["track"] is None
    table = cli.invoke(app, ["pending", "--home", str(home)])
    assert table.exit_code == 0, table.output
    assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
    assert stopped.key[:8] in table.stdout and "3/32" in table.stdout
    assert "unreadable" in table.stdout and "junk" in table.stdout


def test_a_run_stopped_before_its_first_checkpoint_says_why_it_has_no_step(tmp_path) -> None:
    """Its row read `-` for step and time and gave no reason."""
    config = {"n_layer": 1}
    early = pending.Pending("tiny:0", config, 9, "baseline", None, None)
    pending.mark(tmp_path, early)
    table = cli.invoke(app, ["pending", "--home", str(tmp_path)])
    assert table.exit_code == 0, table.output
    # at 80 columns the cell wraps: read it with the table's rules and line breaks taken out
    flat = " ".join(table.stdout.replace("│", " ").replace("┃", " ").split())
    assert "no checkpoint yet, starts from step 0" in flat, table.stdout


def test_a_wrong_prefix_is_one_line_and_changes_nothing(filled, tmp_path) -> None:
    home, _ = filled
    (pending.folder(home) / "abc1.json").write_text("[]")
    (pending.folder(home) / "abc2.json").write_text("[]")
    before = _files(home)
    for args, words in ((["abc"], "starts 2 pending run ids"), (["zzz"], "no pending run"),
                        ([], "or --all"), (["abc1", "--all"], "not both")):
        res = cli.invoke(app, ["pending", "discard", *args, "--home", str(home)])
        assert res.exit_code == 1 and words in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1 and _files(home) == before
    for name in ("abc1", "abc2"):
        assert cli.invoke(app, ["pending", "discard", name, "--home", str(home)]).exit_code == 0
    assert _files(home) == [f for f in before if not f.startswith("abc")]


def test_discard_one_then_all_through_swarm_home(filled, monkeypatch) -> None:
    home, stopped = filled
    monkeypatch.setenv("SWARM_HOME", str(home))          # no --home: $SWARM_HOME
    res = cli.invoke(app, ["pending", "discard", stopped.key[:6]])
    assert res.exit_code == 0 and stopped.key[:8] in res.stdout, res.output
    left = _listed(home)
    assert stopped.key not in left and len(left) == 2
    res = cli.invoke(app, ["pending", "discard", "--all"])
    assert res.exit_code == 0 and "discarded 2 pending runs" in res.stdout, res.output
    assert _files(home) == [] and _listed(home) == {}


def test_a_node_leaves_swarm_runs_runs_alone(tmp_path) -> None:
    """A `swarm run` run is noted in the same folder; a node neither resumes nor deletes it."""
    manual = pending.Pending("t", {"lr": 0.1}, 1, pending.MANUAL, None, None, "threads=1")
    mine = pending.Pending("t", {"lr": 0.1}, 1, "screen", None, None)
    for run in (manual, mine):
        pending.mark(tmp_path, run)
        pending.checkpoint_path(tmp_path, run).write_bytes(b"x")
    assert manual.key != pending.Pending("t", {"lr": 0.1}, 1, pending.MANUAL, None, None).key
    assert pending.listed(tmp_path, None) == [mine]
    assert len(_files(tmp_path)) == 4
