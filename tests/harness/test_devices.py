"""A box with several GPUs runs one worker per GPU, each pinned to its device (no GPU needed here)."""
from __future__ import annotations

import subprocess
import sys

from node.harness.runner import REPO_ROOT, child_env
from swarm.node_work import NodeWork, WorkOptions, device_plan


def test_one_worker_per_gpu() -> None:
    assert device_plan(None, 0) == [None]                 # no GPU: one unpinned worker
    assert device_plan(None, 4) == ["0", "1", "2", "3"]
    assert device_plan("2,3", 2) == ["2", "3"]            # only the GPUs this process may use
    assert device_plan("GPU-5d2c,GPU-77aa", 2) == ["GPU-5d2c", "GPU-77aa"]
    assert device_plan("", 0) == [None] and device_plan("-1", 0) == [None]
    assert device_plan("0, 1", 2) == ["0", "1"]           # spaces as people write them
    # CUDA stops at the first entry it cannot use, so torch's count bounds the list
    assert device_plan("0,1,2,3", 2) == ["0", "1"] and device_plan("0,-1,1", 1) == ["0"]
    assert device_plan("0,1", 0) == [None]                # listed, but this torch has no CUDA


def test_a_workers_runs_see_only_its_gpu() -> None:
    env = child_env(1, "1")
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                         env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1"
    assert child_env(1).get("CUDA_VISIBLE_DEVICES") == __import__("os").environ.get("CUDA_VISIBLE_DEVICES")


def test_the_starter_makes_one_named_work_per_device() -> None:
    class Started(NodeWork):
        def _main(self) -> None:          # the thread ends at once: no training here
            pass

    works = Started.starter(WorkOptions(), devices=["0", "1"])(object(), None)
    assert [w.device for w in works] == ["0", "1"]
    assert [w.thread.name for w in works] == ["worker-gpu0", "worker-gpu1"]
    assert all(w.join(5) for w in works)
