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


def test_each_gpu_workers_runs_are_processes_of_their_own_pinned_to_its_gpu(
        track, home, corpus, monkeypatch) -> None:
    """The whole path on a box that says it has 2 GPUs (`gpu_count`, the count torch would give,
    is the one thing faked; the GPUs are those CUDA_VISIBLE_DEVICES lists): the starter makes one
    worker per GPU, and each worker's run is a training process of its own whose environment
    names only that worker's GPU. No CUDA here, so the runs train on the CPU; the workers take
    turns only so that each run's process is the one harness child alive while it is read."""
    import threading

    import psutil

    from roles.harness_runner import HarnessRunner
    from swarm import node_work

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(node_work, "gpu_count", lambda: 2)
    turn, seen = threading.Lock(), {}

    def child_seen(worker: str) -> None:
        (child,) = [p for p in psutil.Process().children()
                    if "node.harness.run" in " ".join(p.cmdline())]
        seen.setdefault(worker, (child.pid, child.environ().get("CUDA_VISIBLE_DEVICES")))

    class Training(NodeWork):
        def _main(self) -> None:            # the worker's runner, as _runner makes it
            runner = HarnessRunner(track, threads=1, home=home, data_dir=corpus[0],
                                   visible_devices=self.device)
            runner.on_progress = lambda _event: child_seen(self.thread.name)
            with turn:
                self.body = runner(track.base.model_dump(), 0, "manual", None)

    works = Training.starter(WorkOptions())(object(), None)
    assert all(w.join(600) for w in works)
    assert [w.device for w in works] == ["3", "5"]
    assert {name: env for name, (_, env) in seen.items()} == {"worker-gpu3": "3", "worker-gpu5": "5"}
    assert len({pid for pid, _ in seen.values()}) == 2                  # a process per run
    assert all(w.body.status == "ok" for w in works)
