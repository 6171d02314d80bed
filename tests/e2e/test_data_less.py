"""A node that cannot get its track's data says so in one line and never trains quietly on
something else: with a pinned training role its work loop stops with that line."""
from __future__ import annotations

import uuid
from pathlib import Path

from swarm.bench.nodes import launch, wait_for


def test_a_pinned_training_role_without_data_stops_in_one_line(tmp_path: Path) -> None:
    # tinystories-gpu has no embedded copy, no peer holds it, and the hub is offline here
    node = launch(tmp_path / "a", f"d-{uuid.uuid4().hex[:8]}", work=True,
                  env={"HF_HUB_OFFLINE": "1", "SWARM_DATA_DIR": ""},
                  extra=["--track", "tinystories-gpu", "--role", "experimenter",
                         "--agent", "offline"])
    work = wait_for(lambda: (w := node.status()["current_work"][0]).get("error") and w, 90,
                    "the work loop's error")
    assert work["error"].startswith("--role experimenter needs tinystories-gpu's data: no source")
    for source in ("embedded copy: none", "peers: the data is not pinned yet",
                   "upstream roneneldan/TinyStories@f54c09fd2331"):
        assert source in work["error"]
    log = (node.home / "node.log").read_text()
    assert "Traceback" not in log and log.count("needs tinystories-gpu's data") == 1
    assert node.query("SELECT count(*) FROM runs")["rows"] == [[0]]
