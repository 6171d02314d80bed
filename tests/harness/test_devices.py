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
    worker per GPU, and each worker's run (its runner as `_runner` makes it) is a training
    process of its own whose environment names only that worker's GPU, with half the cores'
    threads and half the default memory guard: two runs at once must not over-commit the box.
    No CUDA here, so the runs train on the CPU; the workers take turns only so that each run's
    process is the one harness child alive while it is read."""
    import threading
    from types import SimpleNamespace

    import psutil

    from node.harness.hardware import available_cores, memory_available
    from swarm import node_work

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.setattr(node_work, "gpu_count", lambda: 2)
    turn, seen = threading.Lock(), {}

    def child_seen(worker: str) -> None:
        (child,) = [p for p in psutil.Process().children()
                    if "node.harness.run" in " ".join(p.cmdline())]
        env = child.environ()
        seen.setdefault(worker, (child.pid, env.get("CUDA_VISIBLE_DEVICES"),
                                 env["OMP_NUM_THREADS"]))

    class Training(NodeWork):
        def _main(self) -> None:            # one run of the worker's own runner
            self.runner, _, base = self._runner()
            self.runner.on_progress = lambda _event: child_seen(self.thread.name)
            with turn:
                self.body = self.runner(base, 0, "manual", None)

    options = WorkOptions(track=track, data_dir=corpus[0])      # threads not set
    works = Training.starter(options)(SimpleNamespace(home=home), None)
    assert all(w.join(600) for w in works)
    assert [w.device for w in works] == ["3", "5"]
    share = str(max(1, available_cores() // 2))
    assert {name: env for name, (_, env, _) in seen.items()} == {"worker-gpu3": "3",
                                                                  "worker-gpu5": "5"}
    assert {threads for _, _, threads in seen.values()} == {share}       # each its share of cores
    assert len({pid for pid, _, _ in seen.values()}) == 2               # a process per run
    assert all(w.body.status == "ok" and w.body.software["threads"] == share for w in works)
    # each run's memory guard is half of 90% of what is available (read now: it moves a little)
    for work in works:
        assert 0.3 < work.runner.memory_limit_mb() * 2**20 / memory_available() < 0.6
    # threads the person set are kept
    pinned = Training(SimpleNamespace(home=home), None,
                      WorkOptions(track=track, data_dir=corpus[0], threads=1), "3", 2)
    assert pinned._runner()[0].run_threads() == 1
