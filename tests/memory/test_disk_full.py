"""A memory whose disk fills up: the write that does not fit fails as DiskFull (one clear line),
nothing of it is stored, and nothing stored before is lost."""
from __future__ import annotations

import json

from tests.smalldisk import on_small_disk, python

FILL = """
import json, subprocess, sys
from pathlib import Path
from memory import synthetic
from memory.store import Store
home = Path(sys.argv[1])
store = Store(home / "memory.duckdb", helpers=0)
records = (r.raw for r in synthetic.runs(synthetic.keypairs(3), 100_000))
stored, outcome = 0, {}
try:
    while True:
        stored += store.ingest([next(records) for _ in range(100)]).accepted
except Exception as exc:
    outcome = {"type": type(exc).__name__, "error": str(exc)}
try:                                   # again: the store still works, or says the same line
    stored += store.ingest([next(records) for _ in range(100)]).accepted
    outcome["again"] = "stored"
except Exception as exc:
    outcome["again"] = str(exc)
store.close()
subprocess.run(["mount", "-o", "remount,size=64m", str(home)], check=True)   # room again
with Store(home / "memory.duckdb", helpers=0) as reopened:
    outcome.update(stored=stored, held=reopened.count())
print(json.dumps(outcome))
"""


def test_a_full_disk_fails_the_write_in_one_line_and_loses_nothing(tmp_path) -> None:
    home = tmp_path / "home"
    proc = on_small_disk(home, "1m", python(FILL, str(home)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome["type"] == "DiskFull", outcome
    assert outcome["error"].startswith(f"the disk holding {home} is full (No space left on device)")
    assert "\n" not in outcome["error"] and outcome["again"] in ("stored", outcome["error"])
    # every batch reported stored is there after a restart with room; the failed one is not
    assert outcome["stored"] > 0 and outcome["held"] == outcome["stored"]
