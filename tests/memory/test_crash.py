"""A writer killed with SIGKILL mid-ingest loses no acknowledged batch and leaves no partial one."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from memory import stream, synthetic
from memory.store import Store

BATCH = 250


def test_sigkill_mid_ingest_loses_nothing_committed(tmp_path: Path) -> None:
    source = tmp_path / "records.swarm"
    with open(source, "wb") as f:
        stream.write(f, (r.raw for r in synthetic.runs(synthetic.keypairs(4), 6000)))
    db = tmp_path / "memory.duckdb"
    rng = random.Random(0)
    kills = 0
    for attempt in range(6):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.memory.crash_writer", str(db), str(source), str(BATCH)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        acked = 0
        deadline = time.monotonic() + 60
        target = rng.randint(1, 6)                       # kill after a few acknowledged batches
        for line in child.stdout:
            if line.startswith("ACK"):
                acked = int(line.split()[1])
                target -= 1
                if target == 0:
                    time.sleep(rng.random() * 0.05)       # land somewhere inside the next batch
                    child.send_signal(signal.SIGKILL)
                    kills += 1
                    break
            if line.startswith("DONE") or time.monotonic() > deadline:
                break
        child.wait(timeout=30)
        with Store(db) as store:
            held = store.count()
            runs = store.query("SELECT count(*) FROM runs").rows[0][0]
        assert held >= acked, f"attempt {attempt}: acknowledged {acked}, found {held}"
        assert held % BATCH == 0 and runs == held, f"attempt {attempt}: partial batch ({held})"
    assert kills >= 5
