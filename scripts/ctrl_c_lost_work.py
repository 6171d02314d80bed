"""The work a Ctrl-C loses: start `swarm join` on a short real run, press Ctrl-C (SIGINT) once
its status shows step STEP, start it again with --max-runs 1, and print (JSON) the step it was
stopped at, the step the next start resumed from (0: it started over), and the runs recorded.

    cd REPO && .venv/bin/python PATH/scripts/ctrl_c_lost_work.py HOME STEP [DATA_DIR]

The nodes run REPO's code (the current folder), so the same script measures main and a branch
side by side (docs/RUNNING.md, "Ctrl-C during a run"). HOME must not exist yet.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.getcwd())          # the helpers of the measured code, like its nodes

from memory.store import Store  # noqa: E402
from node.home import memory_path  # noqa: E402
from swarm.bench.nodes import launch, wait_for  # noqa: E402


def main() -> None:
    home, at_step = Path(sys.argv[1]), int(sys.argv[2])
    data = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/tinystories"
    args = ["--budget-tokens", "200000", "--threads", "1", "--agent", "offline", "--role",
            "experimenter", "--data-dir", data]
    network = f"lost-{uuid.uuid4().hex[:8]}"
    node = launch(home, network, extra=args, work=True)

    def at() -> dict | None:
        run = node.status()["current_work"][0].get("current_run") or {}
        return run if (run.get("step") or 0) >= at_step else None
    run = wait_for(at, 900, f"step {at_step} of the first run")
    started = time.monotonic()
    code = node.stop(signal.SIGINT)
    stop_s = time.monotonic() - started
    started = time.monotonic()
    again = launch(home, network, extra=[*args, "--max-runs", "1"], work=True)
    again.proc.wait(1800)
    resumed = re.findall(r"run resumed from its checkpoint at step (\d+)",
                         (home / "node.log").read_text())
    with Store(memory_path(home)) as store:
        runs = store.query("SELECT purpose, seed, status, steps, wall_s FROM runs ORDER BY ts").rows
    print(json.dumps({"stopped": run["what"], "stopped_at_step": run["step"], "exit_code": code,
                      "stop_s": round(stop_s, 1), "resumed_at_step": int(resumed[0]) if resumed else 0,
                      "second_start_s": round(time.monotonic() - started, 1), "runs": runs}))


if __name__ == "__main__":
    main()
