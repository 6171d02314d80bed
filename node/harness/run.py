"""One run, in its own process: `python -m node.harness.run < spec.json`.

Protocol (stdout, one JSON object per line): `{"event": "start", ...}`, then `{"event":
"progress", ...}` lines, then exactly one `{"event": "result", "result": RunResult}`; a refused,
failed or NaN run still ends with a result. Nothing else is written to stdout. The parent
(runner.py) enforces the wall-clock and memory limits and turns a silent death into a result.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memory.canonical import config_hash
from node.harness.config import Refused
from node.harness.spec import RunResult, RunSpec, empty_metrics

HARNESS_VERSION = "1"
PARENT_GRACE_S = 20.0        # an orphaned run's time to checkpoint the step it is at, then exit
_current: dict[str, Any] = {}    # "ckpt": the Checkpointer of the run under way (signal handlers)


def emit(event: dict[str, Any]) -> None:
    """Write one protocol line. With nobody left to read it (the node killed hard) the run is
    asked to stop: a training run then checkpoints its step, and the parent watch ends it."""
    try:
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    except OSError:                        # BrokenPipeError: the parent is gone
        from node.harness.resume import STOP
        STOP.set()


def _spawn_grandchild() -> None:
    """Start a sleeper in a session of its own (out of our process group); its pid goes to the
    file named by SWARM_HARNESS_FAULT_PIDS, so a test can check that a timeout killed it too."""
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"],
                             start_new_session=True)
    if path := os.environ.get("SWARM_HARNESS_FAULT_PIDS"):
        with open(path, "a") as f:
            f.write(f"{child.pid}\n")


def _fault(kind: str | None, model: Any):
    """Test-only failure injection (needs SWARM_HARNESS_FAULTS=1): real crashes, hangs, OOMs."""
    if kind is None or os.environ.get("SWARM_HARNESS_FAULTS") != "1":
        return None

    def hit(step: int) -> None:
        if kind == "slow":                              # a slow machine: every step 20 ms longer
            time.sleep(0.02)
        if step != 2:
            return
        if kind == "crash":
            os.abort()                                  # dies by SIGABRT, no result line
        if kind == "raise":
            raise RuntimeError("injected failure")
        if kind == "hang":
            time.sleep(3600)
        if kind == "oom":
            hog = []
            while True:                                 # grows until the parent's guard kills it
                hog.append(bytearray(64 << 20))
        if kind == "stop":                              # as if the node asked it to stop
            from node.harness.resume import STOP
            STOP.set()
        if kind == "nan":
            import torch
            with torch.no_grad():
                model.head.weight.fill_(float("nan"))
    return hit


def _fault_after_training(kind: str | None, model: Any) -> None:
    """Test-only (SWARM_HARNESS_FAULTS=1): `nan_eval` leaves the evaluated weights NaN after a
    training loop whose losses were all finite (as an update at the last step can)."""
    if kind == "nan_eval" and os.environ.get("SWARM_HARNESS_FAULTS") == "1":
        import torch
        with torch.no_grad():
            model.head.weight.fill_(float("nan"))


def exit_with_parent(interval_s: float = 1.0) -> None:
    """Exit as soon as the node that started this run is gone (killed hard: SIGKILL, the OOM
    killer): an orphaned run would otherwise train on, unseen, beside the node's next start
    (it only noticed at its next progress line, and never while evaluating or hung)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:      # an orphan is adopted by init or a subreaper
            time.sleep(interval_s)
        ckpt = _current.get("ckpt")
        if ckpt is not None and ckpt.active:      # training: checkpoint this step, then exit
            from node.harness.resume import STOP
            STOP.set()
            time.sleep(PARENT_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _software(torch_version: str, precision: str, compiled: bool, threads: int) -> dict[str, str]:
    # `code`, the digest of the harness's source, and `cpu`, the CPU's kernel-choosing features,
    # with torch, precision and compilation: what a fixed-seed run's numbers depend on beside the
    # CPU model and thread count (roles/trust.py `NUMERICS`)
    from node.harness.checkpoint import code_version
    from node.harness.hardware import cpu_isa
    return {"harness": HARNESS_VERSION, "code": code_version(), "cpu": cpu_isa(),
            "torch": torch_version,
            "python": platform.python_version(), "precision": precision,
            "compile": str(compiled).lower(), "threads": str(threads)}


def _peak_mem_mb(device: Any) -> float:
    import torch
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:                      # Windows: the peak working set instead
        import psutil
        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024    # bytes on macOS, KiB elsewhere


@dataclass
class Plan:
    """A spec that passed every check, with what the checks worked out."""

    device: Any
    tokenizer: Any
    params: int
    steps: int
    precision: str
    peak_flops: float
    flops_per_token: float
    compiled: bool


def plan_run(spec: RunSpec) -> Plan:
    """Every check before training (budget, memory, time), in that order; raises Refused."""
    import torch

    from node.harness import feasibility, hardware
    from node.harness.model import GPT, flops_per_token
    from node.harness.tokenizer import Tokenizer
    from node.harness.train import choose_device, choose_precision

    torch.set_num_threads(spec.threads)
    cfg, budget = spec.config, spec.track.budget.tokens
    steps = feasibility.check_budget(cfg, budget)
    device = choose_device(spec.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True      # the few fp32 matmuls left under bf16
        torch.backends.cudnn.allow_tf32 = True
    tok = Tokenizer.load(Path(spec.tokenizer))
    with torch.device("meta"):                            # count params without allocating
        params = GPT(cfg, tok.vocab_size).num_params()
    free = hardware.memory_free(device)
    if spec.memory_limit_mb and device.type == "cpu":
        free = min(free, int(spec.memory_limit_mb * 2**20))
    feasibility.check_fits(cfg, tok.vocab_size, params, free, device.type)
    precision = choose_precision(spec.precision, device, params)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    cache = Path(spec.cache) / "peak_flops.json" if spec.cache else None
    peak = hardware.peak_flops(device, dtype, spec.threads, cache)
    fpt = flops_per_token(cfg, tok.vocab_size, params)
    feasibility.check_time(fpt, budget, peak, spec.timeout_s)
    compiled = spec.compile == "on" or (spec.compile == "auto" and device.type == "cuda"
                                        and steps >= 300)
    return Plan(device, tok, params, steps, precision, peak, fpt, compiled)


def fingerprint(spec: RunSpec, plan: Plan) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by this run: same numbers, step for step."""
    import torch

    from node.harness.checkpoint import code_version
    return {"harness": HARNESS_VERSION, "code": code_version(), "torch": torch.__version__,
            "track": spec.track.id, "budget": spec.track.budget.tokens,
            "config": config_hash(spec.config.model_dump()), "seed": spec.seed,
            "threads": spec.threads, "device": str(plan.device), "precision": plan.precision,
            "compile": plan.compiled, "steps": plan.steps}


def _segment(spec: RunSpec, plan: Plan, curve: Any, started: float) -> tuple[Any, Any, Any]:
    """The trainer of this run, resumed from its checkpoint when there is a good one, with the
    prior segments' totals and the checkpointer hook (None, None without a checkpoint path)."""
    import numpy as np

    from node.harness import resume
    from node.harness.checkpoint import BadCheckpoint

    def fresh() -> Any:
        from node.harness.train import Trainer
        return Trainer(spec.config, plan.tokenizer.vocab_size, np.load(spec.train_tokens),
                       spec.seed, plan.device, plan.precision, plan.compiled, plan.steps)
    trainer = fresh()
    if not spec.checkpoint:
        return trainer, None, None
    path, marks = Path(spec.checkpoint), fingerprint(spec, plan)
    try:
        prior = resume.resume(trainer, path, marks, curve, emit)
    except BadCheckpoint:                 # loading began: start over from a fresh trainer
        curve.restore(type(curve)().state())
        trainer, prior = fresh(), None
    prior = prior or resume.ck.Prior()

    def wall() -> tuple[float, float]:          # the run's wall seconds and peak memory so far
        return prior.wall_s + time.perf_counter() - started, _peak_mem_mb(plan.device)
    hook = resume.Checkpointer(path, spec.checkpoint_every_s, marks, trainer, curve, prior,
                               emit, wall)
    _current["ckpt"] = hook
    return trainer, prior, hook


def _train(trainer: Any, plan: Plan, spec: RunSpec, curve: Any, prior: Any,
           hook: Any) -> dict[str, Any]:
    """The training loop, with stop requests checkpointed at a step while it runs."""
    from node.harness.resume import STOP, Interrupted
    from node.harness.train import train_loop

    if hook is not None:
        hook.active = True
    try:
        return train_loop(trainer, emit, spec.progress_every_s,
                          check_every=1 if plan.device.type == "cpu" else 25,
                          fault=_fault(spec.fault, trainer.model), curve=curve, prior=prior,
                          hook=hook)
    finally:
        if hook is not None:
            hook.active = False
            if STOP.is_set():         # asked between the last step and here: stop now
                raise Interrupted(trainer.step_no)


def readable(trainer: Any, plan: Plan, spec: RunSpec) -> dict[str, Any]:
    """Samples from the fixed prompts and their offline quality measures (docs/HARNESS.md)."""
    from node.harness.quality import measure, training_vocabulary
    from node.harness.samples import write_samples

    samples, ended = write_samples(trainer.eval_model, plan.tokenizer, spec.config.seq_len,
                                   plan.device, trainer.autocast)
    vocab = training_vocabulary(Path(spec.train_tokens), plan.tokenizer)
    quality = measure([s["text"] for s in samples], vocab, [s["prompt"] for s in samples], ended)
    return {"samples": samples, "quality": quality or None}


def execute(spec: RunSpec, started: float,
            curve: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check, train, evaluate and write samples; returns (metrics, context).

    Raises Refused / NonFinite / others; `curve` (a LossCurve) keeps the losses read until then."""
    import numpy as np
    import torch

    from node.harness.evaluate import evaluate_bpb
    from node.harness.hardware import describe
    from node.harness.train import NonFinite

    plan, cfg = plan_run(spec), spec.config
    if plan.device.type == "cuda":        # the peak is the run's, not the peak-FLOP/s matmuls'
        torch.cuda.reset_peak_memory_stats(plan.device)
    ctx = {"hardware": describe(plan.device, spec.threads), "params": plan.params,
           "software": _software(torch.__version__, plan.precision, plan.compiled, spec.threads)}
    emit({"event": "start", "params": plan.params, "steps": plan.steps, "device": plan.device.type,
          "precision": plan.precision, "compile": plan.compiled, "peak_flops": plan.peak_flops})
    trainer, prior, hook = _segment(spec, plan, curve, started)
    out = _train(trainer, plan, spec, curve, prior, hook)
    before = prior.wall_s if prior else 0.0           # the segments before this one
    ctx["software"] = _software(torch.__version__, plan.precision, trainer.compiled, spec.threads)
    if trainer.compile_error:                             # fell back to eager: say why
        ctx["software"]["compile_error"] = trainer.compile_error
    _fault_after_training(spec.fault, trainer.eval_model)
    val = evaluate_bpb(trainer.eval_model, np.load(spec.eval_tokens), plan.tokenizer.token_bytes(),
                       cfg.seq_len, cfg.batch_size, plan.device, trainer.autocast())
    if not math.isfinite(val):        # the last update can break weights its loss never saw
        raise NonFinite(f"val_bpb is {val}: the trained weights give no finite loss")
    tps = out["timed_tokens"] / out["train_s"]        # a compiled run's step 0 left out
    metrics = {"val_bpb": val, "train_loss": out["train_loss"], "tokens": out["tokens"],
               "steps": out["steps"], "wall_s": before + time.perf_counter() - started,
               "tokens_per_s": tps, "mfu": plan.flops_per_token * tps / plan.peak_flops,
               "peak_mem_mb": max(_peak_mem_mb(plan.device), prior.peak_mem_mb if prior else 0.0),
               "params": plan.params}
    ctx.update(readable(trainer, plan, spec))
    metrics["wall_s"] = before + time.perf_counter() - started          # samples included
    return metrics, ctx


def _status_of(exc: BaseException) -> tuple[str, str]:
    from node.harness.train import NonFinite
    if isinstance(exc, Refused):
        return "refused", str(exc)
    if isinstance(exc, NonFinite):
        return "nan", str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "crash", f"out of memory: {str(exc).splitlines()[0] if str(exc) else ''}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return "crash", f"{type(exc).__name__}: {text}"[:400]


def result_for(spec: RunSpec, status: str, error: str | None, metrics: dict[str, Any],
               ctx: dict[str, Any]) -> RunResult:
    """Assemble the RunResult of `spec`."""
    from node.harness.runner import fallback_context
    ctx = {**fallback_context(spec.threads, spec.device, spec.visible_devices), **ctx}
    dump = spec.config.model_dump()
    return RunResult(status=status, error=error, track=spec.track.id, config=dump,
                     config_hash=config_hash(dump), seed=spec.seed,
                     budget_tokens=spec.track.budget.tokens,
                     metrics=empty_metrics(**{"params": ctx.get("params", 0), **metrics}),
                     hardware=ctx["hardware"], software=ctx["software"],
                     curve=ctx.get("curve", []), samples=ctx.get("samples", []),
                     quality=ctx.get("quality"))


def main() -> int:
    """Read the spec from stdin, run it, print the protocol lines."""
    from node.harness.curve import LossCurve
    from node.harness.resume import Interrupted, on_stop_signals
    exit_with_parent()
    started = time.perf_counter()
    spec = RunSpec.model_validate_json(sys.stdin.read())
    if spec.checkpoint:
        on_stop_signals(lambda: _current.get("ckpt"))
    metrics: dict[str, Any] = {}
    ctx: dict[str, Any] = {}
    status, error = "ok", None
    curve = LossCurve()
    if spec.fault == "hang" and os.environ.get("SWARM_HARNESS_FAULTS") == "1":
        _spawn_grandchild()          # at once: the timeout may come before training starts
    try:
        metrics, ctx = execute(spec, started, curve)
    except Interrupted as stopped:      # the checkpoint, if any, is written: no result
        with contextlib.suppress(OSError):
            emit({"event": "stopped", "step": stopped.step})
        return 0
    except Exception as exc:        # every failure becomes a result: the protocol's promise
        status, error = _status_of(exc)
        metrics = {"wall_s": time.perf_counter() - started}
    ctx["curve"] = curve.points()        # a failed run keeps the curve up to its failure
    emit({"event": "result", "result": result_for(spec, status, error, metrics, ctx).model_dump()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
