"""Checkpoint and resume: a run stopped at a step and resumed gives the numbers, samples and curve
of the same run uninterrupted, in-process and through the real subprocess path (SIGTERM from a
stopping node, kill -9 after a periodic checkpoint); a corrupt or mismatched checkpoint is refused
with one warning line and the run starts over."""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch

from node.harness import checkpoint as ck
from node.harness.curve import LossCurve
from node.harness.experiment import run_experiment
from node.harness.resume import STOP, Interrupted
from node.harness.run import execute
from node.harness.runner import Cancelled
from node.harness.spec import RunResult, RunSpec
from tests.harness.conftest import TINY

# dropout and EMA on: the torch generator and the averaged weights must come back too
CFG = TINY.model_copy(update={"dropout": 0.1, "ema_decay": 0.9})
OVERRIDES = {"dropout": 0.1, "ema_decay": 0.9}


def _spec(prepared, home: Path, **kw) -> RunSpec:
    return RunSpec(track=prepared.track, config=CFG, seed=5, threads=1,
                   tokenizer=str(prepared.tokenizer), train_tokens=str(prepared.train_tokens),
                   eval_tokens=str(prepared.eval_tokens), cache=str(home), **kw)


def _same_run(a: RunResult, b: RunResult) -> None:
    assert a.status == b.status == "ok", (a.error, b.error)
    for name in ("val_bpb", "train_loss", "tokens", "steps"):
        assert getattr(a.metrics, name) == getattr(b.metrics, name), name
    assert a.samples == b.samples and a.curve == b.curve and a.quality == b.quality


def test_a_run_stopped_at_a_step_resumes_bit_identically(prepared, home, tmp_path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.setenv("SWARM_HARNESS_FAULTS", "1")
    whole_curve = LossCurve()
    whole, whole_ctx = execute(_spec(prepared, home), time.perf_counter(), whole_curve)
    path = tmp_path / "run.pt"
    try:
        with pytest.raises(Interrupted) as stopped:       # the stop fault: asked at step 2
            execute(_spec(prepared, home, checkpoint=str(path), fault="stop"),
                    time.perf_counter(), LossCurve())
    finally:
        STOP.clear()
    assert stopped.value.step == 3 and path.exists()
    capsys.readouterr()
    curve = LossCurve()
    again, ctx = execute(_spec(prepared, home, checkpoint=str(path)), time.perf_counter(), curve)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"event": "resumed", "step": 3} .items() <= next(
        e for e in events if e["event"] in ("resumed", "warning")).items()
    assert (again["val_bpb"], again["train_loss"]) == (whole["val_bpb"], whole["train_loss"])
    assert again["steps"] == whole["steps"] == 32 and again["tokens"] == whole["tokens"]
    assert ctx["samples"] == whole_ctx["samples"] and ctx["quality"] == whole_ctx["quality"]
    assert curve.points() == whole_curve.points() and len(curve.points()) == 32
    assert again["tokens_per_s"] > 0 and again["wall_s"] > 0


def test_a_checkpoint_is_tensors_and_json_only(prepared, home, tmp_path, monkeypatch) -> None:
    """weights_only loading: no pickled objects; a truncated file is refused, never half-read."""
    monkeypatch.setenv("SWARM_HARNESS_FAULTS", "1")
    path = tmp_path / "run.pt"
    try:
        with pytest.raises(Interrupted):
            execute(_spec(prepared, home, checkpoint=str(path), fault="stop"),
                    time.perf_counter(), LossCurve())
    finally:
        STOP.clear()
    data = torch.load(path, weights_only=True)
    assert isinstance(data["meta"], str) and set(data) >= {"model", "opts", "ema", "torch_rng"}
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ck.BadCheckpoint, match="unreadable"):
        ck.read(path, {})
    assert not list(tmp_path.glob(".*.tmp"))


class Runs:
    """Runs of one spec (100 steps) through the real subprocess path; `events` of the last one."""

    def __init__(self, track, home, corpus) -> None:
        self.track, self.home, self.data = track, home, corpus[0]
        self.events: list[dict] = []

    def __call__(self, seed: int = 11, on_event=None, **kw) -> RunResult:
        self.events = []

        def seen(event: dict) -> None:
            self.events.append(event)
            if on_event is not None:
                on_event(event)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SWARM_HARNESS_FAULTS", "1")
            return run_experiment(self.track, OVERRIDES, seed, threads=1, home=self.home,
                                  data_dir=self.data, budget_tokens=12_800, on_event=seen, **kw)

    def resumed_at(self) -> int | None:
        return next((e["step"] for e in self.events if e["event"] == "resumed"), None)


@pytest.fixture(scope="module")
def run(track, home, corpus) -> Runs:
    return Runs(track, home, corpus)


@pytest.fixture(scope="module")
def whole(run: Runs) -> RunResult:
    return run()


def _run_child() -> psutil.Process:
    kids = [p for p in psutil.Process().children() if "node.harness.run" in " ".join(p.cmdline())]
    assert len(kids) == 1
    return kids[0]


@pytest.mark.timeout(900)
def test_the_run_process_stopped_by_its_node_or_killed_resumes(run, whole, tmp_path,
                                                                caplog) -> None:
    # SIGTERM: the node stops; the run checkpoints the step it is at and exits with no result
    path, stop, steps = tmp_path / "a.pt", threading.Event(), []

    def on_event(event: dict) -> None:
        if event["event"] == "checkpoint":
            steps.append(event["step"])
            stop.set()
    with pytest.raises(Cancelled):
        run(checkpoint=path, checkpoint_every_s=0.05, fault="slow", stop=stop, on_event=on_event)
    assert path.exists() and 0 < steps[0] < steps[-1] < 100        # the stop's own checkpoint
    other = tmp_path / "other.pt"                   # for the seed-12 run below: a mismatch
    other.write_bytes(path.read_bytes())
    _same_run(run(checkpoint=path), whole)
    assert run.resumed_at() == steps[-1]
    # a good checkpoint of another run (seed 11, this run 12): one warning line, a fresh run
    with caplog.at_level(logging.WARNING, logger="node.harness.runner"):
        fresh = run(seed=12, checkpoint=other)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "written for another seed (11, this run: 12)" in lines[0]
    assert fresh.status == "ok" and run.resumed_at() is None
    # kill -9 after a periodic checkpoint: the run resumes from that one
    path, killed = tmp_path / "b.pt", []

    def kill(event: dict) -> None:
        if event["event"] == "checkpoint" and not killed:
            killed.append(event["step"])
            os.kill(_run_child().pid, signal.SIGKILL)
    crashed = run(checkpoint=path, checkpoint_every_s=0.05, fault="slow", on_event=kill)
    assert crashed.status == "crash" and "SIGKILL" in crashed.error and path.exists()
    _same_run(run(checkpoint=path), whole)
    assert run.resumed_at() == killed[0]


def test_a_corrupt_checkpoint_is_refused_in_one_line(run, whole, tmp_path, caplog) -> None:
    path = tmp_path / "c.pt"
    path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="node.harness.runner"):
        _same_run(run(checkpoint=path), whole)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "refused, starting over: unreadable" in lines[0]
    assert "\n" not in lines[0] and run.resumed_at() is None


FULL_DISK = """
import json, os, sys
from node.harness.experiment import run_experiment
from node.harness.tracks import Track
events = []
result = run_experiment(Track.model_validate_json(sys.argv[1]), json.loads(sys.argv[2]), 11,
                        threads=1, home=sys.argv[3], data_dir=sys.argv[4], budget_tokens=12_800,
                        checkpoint=sys.argv[5] + "/run.pt", checkpoint_every_s=0.01,
                        on_event=events.append)
print(json.dumps({"status": result.status, "val_bpb": result.metrics.val_bpb,
                  "files": os.listdir(sys.argv[5]),
                  "warnings": [e["message"] for e in events if e["event"] == "warning"]}))
"""


def test_a_full_disk_never_stops_the_run_nor_leaves_a_partial_file(run, whole, track, home,
                                                                   corpus, tmp_path) -> None:
    from tests.smalldisk import on_small_disk, python

    small = tmp_path / "small"                       # 64 KiB: no checkpoint of the run fits
    done = on_small_disk(small, "64k", python(FULL_DISK, track.model_dump_json(),
                                              json.dumps(OVERRIDES), str(home), str(corpus[0]),
                                              str(small)))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["status"] == "ok" and out["val_bpb"] == whole.metrics.val_bpb
    assert out["warnings"] and all("checkpoint not written: the disk is full" in w
                                   for w in out["warnings"])
    assert out["files"] == []                       # no partial file on the full disk


NODE = """
import sys, psutil
from node.harness.runner import run_spec
from node.harness.spec import RunSpec
spec = RunSpec.model_validate_json(sys.stdin.read())
def training(event):
    if event.get("event") == "progress":       # the child is training: name it, then wait
        (child,) = psutil.Process().children()
        open(sys.argv[1], "w").write(str(child.pid))
run_spec(spec, on_event=training)
"""


@pytest.mark.timeout(900)
def test_a_run_whose_node_is_killed_hard_checkpoints_its_step(prepared, home, tmp_path) -> None:
    """kill -9 of the node mid-run: the run sees its parent gone, checkpoints the step it is at
    (no periodic checkpoint is due) and exits, for the next start to resume from."""
    import subprocess
    import sys

    from node.harness.runner import REPO_ROOT, child_env
    path, pid_file = tmp_path / "run.pt", tmp_path / "child.pid"
    spec = _spec(prepared, home, checkpoint=str(path), checkpoint_every_s=3600, fault="slow",
                 progress_every_s=0.05).model_copy(
        update={"track": prepared.track.with_budget(51_200)})          # 400 steps, >= 8 s
    node = subprocess.Popen([sys.executable, "-c", NODE, str(pid_file)], stdin=subprocess.PIPE,
                            env={**child_env(1), "SWARM_HARNESS_FAULTS": "1"}, cwd=REPO_ROOT)
    node.stdin.write(spec.model_dump_json().encode())
    node.stdin.close()
    try:
        deadline = time.monotonic() + 300
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            assert node.poll() is None, "the parent died before its run trained"
            time.sleep(0.1)
        child = psutil.Process(int(pid_file.read_text()))
        node.kill()
        child.wait(120)
    finally:
        node.kill()
    meta = json.loads(torch.load(path, weights_only=True)["meta"])
    assert 0 < meta["step"] < 400 and meta["fingerprint"]["seed"] == 5
