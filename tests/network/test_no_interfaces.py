"""A node on a machine with no network interface up (a fresh network namespace: not even
loopback) starts and stops cleanly: mDNS is optional. zeroconf raises RuntimeError there, which
`swarm join` let through: the node stopped at start with a traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.harness.runner import REPO_ROOT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare for a network namespace of its own")


def test_join_without_any_interface_runs_without_mdns(tmp_path: Path, network: str) -> None:
    join = [sys.executable, "-m", "swarm.cli", "join", "--home", str(tmp_path / "home"),
            "--network", network, "--no-work", "--duration", "3"]
    done = subprocess.run(["unshare", "-n", *join], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "mDNS unavailable" in done.stderr and "Traceback" not in done.stderr
    assert "node stopped" in done.stdout
