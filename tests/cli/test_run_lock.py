"""Two `swarm run`s of the same run on one home, as two real processes: the second is refused in
one line and changes nothing while the first trains (both would write HOME/checkpoints/KEY.pt and
the first to end delete it); `swarm pending discard` of it is refused alike. A lock whose holder
died is no lock (node/pidlock.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.harness.data import shared_data_dir
from node.harness.runner import REPO_ROOT, child_env
from node.pidlock import Held, PidLock

WAIT_S = 300.0          # only a bound on a hang: every wait below polls for a condition


def _swarm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swarm.cli", *args], capture_output=True,
                          text=True, env={**child_env(1), "COLUMNS": "200"}, cwd=REPO_ROOT,
                          timeout=WAIT_S)


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {WAIT_S} s"
        time.sleep(0.1)


def _state(home: Path) -> dict[str, tuple[int, int]]:
    """The checkpoints folder's files with their sizes and modification times (none when the
    folder is gone: a run stopped before it wrote a checkpoint removes the empty folder it made,
    swarm/tidy.py)."""
    folder = home / "checkpoints"
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (folder.iterdir() if folder.is_dir() else ()) if p.suffix != ".lock"}


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data/tinystories")
def test_a_second_run_of_the_same_run_and_its_discard_are_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # a run the first will not finish before it is stopped: the test never races its end
    args = ["run", "--seed", "3", "--budget-tokens", "20000000", "--timeout", "1000000",
            "--threads", "1", "--data-dir", str(shared_data_dir()), "--home", str(home),
            "--no-record"]
    first = subprocess.Popen([sys.executable, "-m", "swarm.cli", *args], env=child_env(1),
                             cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        folder = home / "checkpoints"
        # its note is written once it holds the lock
        _wait_for(lambda: folder.is_dir() and any(folder.glob("*.json")), "note of the first run")
        assert [p.read_text() for p in folder.glob("*.lock")] == [str(first.pid)]
        before = _state(home)
        second = _swarm(*args)
        assert second.returncode == 1 and second.stdout == "", second.stderr
        assert second.stderr.startswith("error: run ") and len(second.stderr.splitlines()) == 1
        assert f"another swarm run (pid {first.pid})" in second.stderr
        fresh = _swarm(*args, "--fresh")                 # nor does --fresh delete its checkpoint
        assert fresh.returncode == 1 and f"(pid {first.pid})" in fresh.stderr
        for discard in (["--all"], [next(iter(before))[:8]]):
            refused = _swarm("pending", "discard", *discard, "--home", str(home))
            assert refused.returncode == 1 and f"(pid {first.pid})" in refused.stderr, refused
            assert len(refused.stderr.splitlines()) == 1
        listed = _swarm("pending", "--json", "--home", str(home))
        (entry,) = json.loads(listed.stdout)            # read, never locked, by a listing
        assert entry["training_pid"] == first.pid and entry["resumed_by"] is None
        assert f"training now (swarm run, pid {first.pid})" in _swarm(
            "pending", "--home", str(home)).stdout.replace("\n", " ")
        assert first.poll() is None, first.stderr       # the first trains on, untouched
        assert set(_state(home)) >= set(before)
    finally:
        os.killpg(first.pid, signal.SIGTERM)            # it checkpoints, as Ctrl-C does
        first.wait(timeout=WAIT_S)
    assert not list((home / "checkpoints").glob("*.lock"))   # released, and its file gone
    done = _swarm("pending", "discard", "--all", "--home", str(home))
    assert done.returncode == 0 and not _state(home), done.stderr


_HOLD = "import sys, time; from node.pidlock import PidLock; PidLock(sys.argv[1]).acquire(); " \
        "print('held', flush=True); time.sleep(600)"


def test_a_lock_whose_holder_died_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Held) as held:
            PidLock(path).acquire()
        assert held.value.pid == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    assert path.read_text() == str(holder.pid)          # the dead holder's file stays...
    lock = PidLock(path)
    lock.acquire()                                      # ...and is no lock
    assert path.read_text() == str(os.getpid())
    lock.release(remove=True)
    assert not path.exists()
