"""The parent side of a run: start `python -m node.harness.run`, watch it, always get a result.

The child gets its spec on stdin and its own process group. The parent reads its JSON lines, kills
the child's whole process tree when the wall-clock limit passes (status `timeout`) or when the
tree's resident memory passes the node's grant (status `crash`, "out of memory"), and turns a child
that dies without a result line (segfault, abort, OOM killer) into a `crash` result carrying the
last line of its stderr. Memory and the process tree are read through psutil, so the guard works
on Linux, macOS and Windows alike (only Linux is tested here; see docs/HARNESS.md).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from memory.records import Hardware
from node.harness.curve import LossCurve
from node.harness.spec import RunResult, RunSpec

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.1
STOP_GRACE_S = 20.0           # a stopped run's time to checkpoint its step (the node waits 30 s)
GUARD_FLOOR_MB = 1024.0       # never below this: the torch runtime alone is ~400 MB
OnEvent = Callable[[dict[str, Any]], None]
UNDESCRIBED_GPU = "GPU not described (the run died first)"


class Cancelled(RuntimeError):
    """The caller's stop event was set: the child was killed and there is no result to publish."""


def run_accelerator(device: str = "auto", visible_devices: str | None = None) -> str:
    """Where a run of `device` trains, as `train.choose_device` will pick it, without loading torch.

    "auto" trains on CUDA when the child sees a GPU. A worker pinned to GPUs (`visible_devices`,
    set only where they exist: swarm/node_work.py `device_plan`) does; else torch says, if this
    process loaded it (a node, or the child itself); else our CUDA_VISIBLE_DEVICES, a hint only
    (it may name a GPU a box lacks).
    """
    if device != "auto":
        return "cuda" if device == "cuda" else "cpu"
    if visible_devices is not None:
        return "cuda" if visible_devices.strip() not in ("", "-1") else "cpu"
    torch = sys.modules.get("torch")
    if torch is not None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return "cuda" if visible is not None and visible.strip() not in ("", "-1") else "cpu"


def fallback_context(threads: int, device: str = "auto",
                     visible_devices: str | None = None) -> dict[str, Any]:
    """Hardware and software of this machine without importing torch (for runs that died early).

    A run bound for CUDA is recorded as `cuda` (its GPU unnamed, memory 0: it died before the
    child described it), never as this machine's CPU, which did not train it.
    """
    from node.harness.hardware import cpu_name, memory_total
    common = {"cores": threads, "platform": platform.platform()[:400]}
    if run_accelerator(device, visible_devices) == "cuda":
        hw = Hardware(accelerator="cuda", device_name=UNDESCRIBED_GPU, memory_gb=0.0, **common)
    else:
        hw = Hardware(accelerator="cpu", device_name=cpu_name()[:400],
                      memory_gb=round(memory_total() / 2**30, 2), **common)
    return {"hardware": hw, "params": 0,
            "software": {"harness": "1", "python": platform.python_version(), "threads": str(threads)}}


def child_env(threads: int, visible_devices: str | None = None) -> dict[str, str]:
    """The child's environment: our code first on the path, thread pools sized to the grant, and
    pinned to `visible_devices` (CUDA_VISIBLE_DEVICES) when given."""
    env = dict(os.environ)
    if visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible_devices
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tree(pid: int) -> list[psutil.Process]:
    """The process `pid` and all its descendants (those still alive)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class TreeMemory:
    """Resident memory of a process and its descendants.

    Listing descendants scans every process of the machine (~5-40 ms), reading one's RSS costs
    ~0.05 ms; so the list is refreshed every `refresh_s` and the RSS read at every call.
    """

    def __init__(self, pid: int, refresh_s: float = 1.0) -> None:
        self.pid, self.refresh_s, self.listed, self.procs = pid, refresh_s, float("-inf"), []

    def rss_mb(self) -> float:
        """MiB resident in the tree now (0 when it is gone)."""
        if time.monotonic() - self.listed >= self.refresh_s:
            self.procs, self.listed = _tree(self.pid), time.monotonic()
        total = 0
        for proc in self.procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:        # exited since the listing
                pass
        return total / 2**20


def memory_limit_mb(spec: RunSpec) -> float:
    """The run's resident-memory limit: the node's grant, else 90% of what is available now
    (a laptop must not be driven into swap; the fit check refused anything needing over 80%)."""
    return spec.memory_limit_mb or default_memory_limit_mb()


def default_memory_limit_mb(shares: int = 1) -> float:
    """90% of the memory available now, split evenly over `shares` runs that train at once (a
    box's GPU workers: each their own share, so together they stay within it); at least
    GUARD_FLOOR_MB."""
    from node.harness.hardware import memory_available
    return max(GUARD_FLOOR_MB, 0.9 * memory_available() / 2**20 / max(1, shares))


def kill_tree(pid: int, wait_s: float = 5.0) -> None:
    """SIGKILL `pid` and every descendant (listed first, so none is orphaned and missed)."""
    procs = _tree(pid)
    if hasattr(os, "killpg"):
        try:
            os.killpg(pid, signal.SIGKILL)      # the group: also catches a child mid-fork
        except (ProcessLookupError, PermissionError):
            pass
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=wait_s)


def _reader(stream: Any, out: queue.Queue) -> None:
    for raw in stream:
        out.put(raw)
    out.put(None)


def _kill(proc: subprocess.Popen) -> None:
    kill_tree(proc.pid)
    proc.wait()


def _died(proc: subprocess.Popen, errf: Any) -> str:
    code = proc.returncode
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    errf.seek(0)
    lines = [ln for ln in errf.read().decode(errors="replace").splitlines() if ln.strip()]
    return f"child {how} without a result" + (f": {lines[-1].strip()}" if lines else "")


class _Watch:
    """State of one child: its last progress and its result, if any."""

    def __init__(self, on_event: OnEvent | None) -> None:
        self.on_event, self.progress, self.result = on_event, {}, None
        self.curve = LossCurve()      # from progress lines: the curve of a run killed midway
        self.prior_wall_s = 0.0       # wall seconds of the segments before a resume
        self.stopped: int | None = None    # the step a stopped run checkpointed (-1: none)

    def line(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("child wrote a non-protocol line: %r", raw[:200])
            return
        kind = event.get("event")
        if kind == "result":
            self.result = event["result"]
        elif kind == "warning":
            log.warning("run: %s", str(event.get("message"))[:400])
        elif kind == "resumed":
            self.prior_wall_s = float(event.get("wall_s") or 0.0)
            log.info("run resumed from its checkpoint at step %s", event.get("step"))
        elif kind == "stopped":
            self.stopped = event.get("step") if isinstance(event.get("step"), int) else -1
        elif kind == "progress":
            self.progress = event
            if isinstance(event.get("step"), int) and isinstance(event.get("loss"), (int, float)):
                self.curve.add(event["step"], float(event["loss"]))
        if self.on_event:
            self.on_event(event)


def _synthesise(spec: RunSpec, status: str, error: str, watch: _Watch, wall: float) -> RunResult:
    from node.harness.run import result_for
    p = watch.progress
    metrics = {"wall_s": wall, "tokens": p.get("tokens", 0), "steps": p.get("step", 0),
               "tokens_per_s": float(p.get("tokens_per_s", 0.0)),
               "train_loss": float(p["loss"]) if "loss" in p else None}
    return result_for(spec, status, error, metrics, {"curve": watch.curve.points()})


def run_spec(spec: RunSpec, on_event: OnEvent | None = None,
             stop: threading.Event | None = None) -> RunResult:
    """Run `spec` in a subprocess under its time and memory limits; never raises for the child.

    When `stop` is set (the node shuts down) the child is killed within POLL_S and `Cancelled`
    raised: an interrupted run is no outcome of its config, so it must not become a record. A
    KeyboardInterrupt here (Ctrl-C) stops the child the same way, then goes on up. Either way a
    child with a checkpoint file first gets STOP_GRACE_S to checkpoint the step it is at.
    """
    watch = _Watch(on_event)
    lines: queue.Queue = queue.Queue()
    # The child's stderr goes to a file without a name (unlinked at once on POSIX): a node killed
    # hard (SIGKILL, the OOM killer) mid-run used to leave a swarm-run-*.stderr in /tmp each time.
    with tempfile.TemporaryFile(prefix="swarm-run-", suffix=".stderr") as errf:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "node.harness.run"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errf,
                                env=child_env(spec.threads, spec.visible_devices),
                                cwd=REPO_ROOT, start_new_session=True)
        return _follow(proc, spec, watch, lines, started, errf, stop)


def _follow(proc: subprocess.Popen, spec: RunSpec, watch: _Watch, lines: queue.Queue,
            started: float, errf: Any, stop: threading.Event | None) -> RunResult:
    """Hand the child its spec and watch it to its end; the result (the child is gone after)."""
    try:
        try:
            proc.stdin.write(spec.model_dump_json().encode())
            proc.stdin.close()
        except BrokenPipeError:             # died before reading its spec: reported below
            pass
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        try:
            verdict = _watch_child(proc, spec, lines, watch, started, stop)
        except KeyboardInterrupt:           # Ctrl-C in this process (`swarm run`): the child, in
            _stop(proc, spec, lines, watch)     # a session of its own, checkpoints its step first
            raise
        wall = time.monotonic() - started
        if watch.stopped is not None:        # stopped by someone else (e.g. the OS shutting down)
            raise Cancelled(f"run stopped at step {watch.stopped}; its checkpoint is kept")
        if verdict is not None:
            return _synthesise(spec, verdict[0], verdict[1], watch, wall)
        if watch.result is not None:
            return RunResult.model_validate(watch.result)
        return _synthesise(spec, "crash", _died(proc, errf), watch, wall)
    finally:
        if proc.poll() is None:
            _kill(proc)


def _stop(proc: subprocess.Popen, spec: RunSpec, lines: queue.Queue, watch: _Watch) -> None:
    """Stop the child: with a checkpoint file, ask it (SIGTERM) to checkpoint its step and exit,
    for up to STOP_GRACE_S; then (or without one) kill its tree."""
    if spec.checkpoint and proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGTERM)
        until = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < until:
            try:
                raw = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if raw is None:
                break
            watch.line(raw)
    _kill(proc)


def _watch_child(proc: subprocess.Popen, spec: RunSpec, lines: queue.Queue, watch: _Watch,
                 started: float, stop: threading.Event | None = None) -> tuple[str, str] | None:
    """Pump lines until the child's stdout closes; a (status, error) when a limit killed it."""
    memory, limit_mb = TreeMemory(proc.pid), memory_limit_mb(spec)
    while True:
        try:
            raw = lines.get(timeout=POLL_S)
        except queue.Empty:
            raw = b""
        if raw is None:
            proc.wait()
            return None
        if raw:
            watch.line(raw)
        if stop is not None and stop.is_set():
            _stop(proc, spec, lines, watch)
            raise Cancelled("run stopped: the node is shutting down")
        # the time limit counts the segments before a resume too
        deadline = started + spec.timeout_s - watch.prior_wall_s if spec.timeout_s else None
        if deadline is not None and time.monotonic() > deadline:
            _kill(proc)
            return "timeout", f"no result within the {spec.timeout_s:.0f} s limit"
        rss = memory.rss_mb()
        if rss > limit_mb:
            _kill(proc)
            return "crash", f"out of memory: {rss:.0f} MB resident > the {limit_mb:.0f} MB limit"
