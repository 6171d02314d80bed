"""A node that cannot get its track's data says so in one line and never trains quietly on
something else. With a pinned training role, which could then never work, `swarm join` stops
with that line and exits 1 (it kept a node that did nothing asked of it up to --duration); without
a pinned role the node goes on as statistician / meta-analyst."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from memory.store import Store
from node.home import memory_path
from swarm.bench.nodes import launch, wait_for

# tinystories-gpu has no embedded copy, no peer holds it, and the hub is offline here
NO_DATA = {"HF_HUB_OFFLINE": "1", "SWARM_DATA_DIR": ""}
DURATION_S = 600        # far past the data's failure: the node must stop on its own, not on this


def test_a_pinned_training_role_without_data_stops_join_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "a"
    done = subprocess.run(
        [sys.executable, "-m", "swarm.cli", "join", "--home", str(home), "--listen",
         "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-dht", "--network", f"d-{uuid.uuid4().hex[:8]}",
         "--track", "tinystories-gpu", "--role", "experimenter", "--agent", "offline",
         "--duration", str(DURATION_S)],
        capture_output=True, text=True, env={**os.environ, **NO_DATA, "COLUMNS": "200"},
        timeout=DURATION_S + 120)
    assert done.returncode == 1, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.stderr.count("needs tinystories-gpu's data") == 1        # said once
    line = errors[0]
    assert line.startswith("error: node stopped: --role experimenter needs tinystories-gpu's "
                           "data: no source")
    for source in ("embedded copy: none", "peers: the data is not pinned yet",
                   "upstream roneneldan/TinyStories@f54c09fd2331", "pass --data-dir DIR",
                   "or join without --role"):
        assert source in line, source
    with Store(memory_path(home)) as store:
        assert store.query("SELECT count(*) FROM runs").rows == [(0,)]


def test_without_a_pinned_role_a_node_without_data_goes_on(tmp_path: Path) -> None:
    node = launch(tmp_path / "b", f"d-{uuid.uuid4().hex[:8]}", work=True, env=NO_DATA,
                  extra=["--track", "tinystories-gpu", "--agent", "offline"])
    work = wait_for(lambda: (w := node.status()["current_work"][0]).get("no_data") and w, 90,
                    "the work loop's no-data line")
    assert "error" not in work and work["no_data"].startswith("no source has the pinned")
    assert node.proc.poll() is None                     # still up: it assesses and syncs
    status = subprocess.run([sys.executable, "-m", "swarm.cli", "status", "--home", str(node.home)],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"})
    shown = " ".join(status.stdout.replace("│", " ").split())
    assert "work: no data this node does not train: no source has the pinned" in shown, shown
    log = (node.home / "node.log").read_text()
    assert "Traceback" not in log and log.count("so this node will not train") == 1
