"""`swarm join` with its work loop, as a process: status shows the worker, SIGTERM during a
training run stops the node promptly with nothing half-published, --max-runs ends the node, and bad
work options are refused with one line before anything starts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from memory.store import Store
from node.home import memory_path
from node.harness.data import shared_data_dir
from swarm.bench.nodes import launch, log_tail, wait_for

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="tinystories-cpu's data is not here")
CLI = [sys.executable, "-c", "from swarm.cli import main; main()"]


def _work_args(*extra: str, data_dir: bool = True) -> list[str]:
    return ["--budget-tokens", "20000", "--threads", "1", "--agent", "offline",
            *(["--data-dir", str(DATA)] if data_dir else []), *extra]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ")[1][0] != "Z"


@needs_data
def test_sigterm_during_a_run_stops_the_node_and_kills_the_run(tmp_path: Path) -> None:
    node = launch(tmp_path / "a", f"w-{uuid.uuid4().hex[:8]}", extra=_work_args(), work=True)
    work = wait_for(lambda: (w := node.status()["current_work"][0])["current_run"] and w, 120,
                    "a training run")
    assert work["role"] == "experimenter" and work["track"] == "tinystories-cpu"
    assert "baseline run" in work["current_run"]["what"]
    table = subprocess.run([*CLI, "status", "--home", str(node.home)], capture_output=True,
                           text=True, timeout=60)
    assert table.returncode == 0 and "work: role" in table.stdout and "verified best" in table.stdout
    runs = wait_for(lambda: _children(node.proc.pid), 120, "the run's child process")
    assert node.stop(signal.SIGTERM) == 0
    assert not any(_alive(pid) for pid in runs)                  # the training child is gone
    log = (node.home / "node.log").read_text()
    assert "node stopped" in log and "Traceback" not in log
    # promptly: the worker killed its run, so shutdown never waited out the service's bound (a
    # clock here would fail on a loaded machine, and pass on a fast one that waited for the run)
    assert "did not stop within" not in log
    with Store(memory_path(node.home)) as store:            # no record of the killed run
        assert store.query("SELECT count(*) FROM runs WHERE status <> 'ok'").rows == [(0,)]


@pytest.mark.timeout(900)            # bounds are generous: a loaded machine must pass too
def test_max_runs_ends_the_node_after_its_unit_of_work(tmp_path: Path) -> None:
    # a fresh home, no --data-dir, no SWARM_DATA_DIR: the data comes from the embedded copy
    node = launch(tmp_path / "a", f"w-{uuid.uuid4().hex[:8]}", env={"SWARM_DATA_DIR": ""},
                  extra=_work_args("--max-runs", "1", "--role", "experimenter", "--min-baseline",
                                     "2", data_dir=False),
                  work=True)
    assert node.proc.wait(800) == 0, log_tail(node.home)
    assert "embedded copy: ok" in (node.home / "node.log").read_text()
    with Store(memory_path(node.home)) as store:
        rows = store.query("SELECT purpose, status FROM runs").rows
        roles = store.query("SELECT DISTINCT role FROM roles").rows
    assert rows == [("baseline", "ok")] * 2          # one unit: the 2 seeds --min-baseline wants
    assert roles == [("experimenter",)]


@pytest.mark.parametrize("args, message", [
    (["--role", "boss"], "--role must be one of"),
    (["--agent", "gpt"], "--agent must be auto, offline or claude"),
    (["--track", "nope"], "unknown track 'nope'"),
    (["--gate", "alpha"], "--gate wants KEY=VALUE"),
    (["--gate", "confirm_max=lots"], "--gate confirm_max wants a number"),
    (["--min-baseline", "1"], "--min-baseline must be at least 2"),
])
def test_bad_work_options_are_refused_in_one_line(tmp_path: Path, args: list[str],
                                                  message: str) -> None:
    done = subprocess.run([*CLI, "join", "--home", str(tmp_path / "h"), "--no-mdns", "--listen",
                           "/ip4/127.0.0.1/tcp/0", *args], capture_output=True, text=True,
                          timeout=60)
    text = " ".join(done.stderr.split())            # rich wraps at the terminal's width
    assert done.returncode == 1 and message in text
    assert "Traceback" not in text and text.count("error:") == 1


@needs_data
@pytest.mark.timeout(900)            # bounds are generous: a loaded machine must pass too
def test_a_node_stopped_mid_run_resumes_that_run_at_its_next_start(tmp_path: Path) -> None:
    """SIGTERM (Ctrl-C) mid-run leaves the run pending with its checkpoint; the next `swarm join`
    resumes it first and publishes it, and its files go."""
    network, home = f"w-{uuid.uuid4().hex[:8]}", tmp_path / "a"
    args = _work_args("--role", "experimenter", "--checkpoint-every", "0.01")
    node = launch(home, network, extra=args, work=True)
    folder = home / "checkpoints"
    wait_for(lambda: list(folder.glob("*.pt")), 300, "a run's first checkpoint")
    assert node.stop(signal.SIGTERM) == 0
    notes = list(folder.glob("*.json"))
    assert len(notes) == 1 and notes[0].with_suffix(".pt").exists()
    pending = json.loads(notes[0].read_text())
    with Store(memory_path(home)) as store:
        before = store.query("SELECT count(*) FROM runs").rows[0][0]
    again = launch(home, network, extra=[*args, "--max-runs", "1"], work=True)
    assert again.proc.wait(800) == 0, log_tail(home)
    log = (home / "node.log").read_text()
    assert "resuming the pending baseline run" in log and "run resumed from its checkpoint" in log
    with Store(memory_path(home)) as store:
        rows = store.query("SELECT purpose, seed, status FROM runs ORDER BY ts").rows
    assert len(rows) == before + 1 and rows[-1] == ("baseline", pending["seed"], "ok")
    assert not list(folder.iterdir())                 # published: its checkpoint is gone
