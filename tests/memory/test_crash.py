"""A writer killed with SIGKILL mid-ingest loses no acknowledged batch and leaves no partial one."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory import stream, synthetic
from memory.store import HELPER_MIN_BATCH, Store


def _ppid(proc: Path) -> int:
    return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])


def _helper_pids(parent: int | None = None) -> set[int]:
    """Running record-checking helpers (processes whose command line names the module), of
    `parent` only when given: other tests may run helpers of their own at the same time."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"memory.check_worker" in (entry / "cmdline").read_bytes() \
                    and parent in (None, _ppid(entry)):
                pids.add(int(entry.name))
        except OSError:            # it exited meanwhile
            pass
    return pids


def _gone(pids: set[int], timeout: float = 60.0) -> bool:     # generous: a loaded machine
    deadline = time.monotonic() + timeout
    while pids & _helper_pids():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# 250: checked in-process; HELPER_MIN_BATCH: checked by helper processes, which must not outlive
# the writer.
@pytest.mark.timeout(900)     # six writers: 115 s on a loaded 2-core machine
@pytest.mark.parametrize("batch", [250, pytest.param(HELPER_MIN_BATCH, marks=pytest.mark.skipif(
    not Path("/proc/self/cmdline").exists(), reason="finds helper processes through /proc"))])
def test_sigkill_mid_ingest_loses_nothing_committed(tmp_path: Path, batch: int) -> None:
    source = tmp_path / "records.swarm"
    with open(source, "wb") as f:
        stream.write(f, (r.raw for r in synthetic.runs(synthetic.keypairs(4), 24 * batch)))
    db = tmp_path / "memory.duckdb"
    rng = random.Random(0)
    kills = 0
    for attempt in range(6):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.memory.crash_writer", str(db), str(source), str(batch)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        acked = 0
        deadline = time.monotonic() + 180                # generous: ends at the kill
        target = rng.randint(1, 6)                       # kill after a few acknowledged batches
        for line in child.stdout:
            if line.startswith("ACK"):
                acked = int(line.split()[1])
                target -= 1
                if target == 0:
                    time.sleep(rng.random() * 0.05)       # land somewhere inside the next batch
                    helpers = _helper_pids(child.pid)
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                    break
            if line.startswith("DONE") or time.monotonic() > deadline:
                break
        child.wait(timeout=120)
        if target == 0 and batch >= HELPER_MIN_BATCH:
            assert helpers, "the writer started no helpers"
            assert _gone(helpers), "helpers outlived their killed writer"
        with Store(db) as store:
            held = store.count()
            runs = store.query("SELECT count(*) FROM runs").rows[0][0]
        assert held >= acked, f"attempt {attempt}: acknowledged {acked}, found {held}"
        assert held % batch == 0 and runs == held, f"attempt {attempt}: partial batch ({held})"
    assert kills >= 5
