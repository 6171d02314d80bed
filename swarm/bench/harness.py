"""`swarm bench harness`: is the harness fast, and how noisy is a track?

1. Peak matmul FLOP/s of this device (fp32 and bf16; on CPU at the benchmark's thread count).
2. For three model sizes: training tokens/s and MFU of the harness's own step (its automatic
   precision; on CPU also fp32) against a textbook eager GPT of the same shape, measured side by
   side in interleaved rounds; medians and the ratio harness / textbook. On CPU
   (`tinystories-cpu`) the sizes are ~0.5M, ~2M and ~8M params; on CUDA (`tinystories-gpu`)
   the track's base config (~27M) and one size down (~12M) and one up (~88M), compiled as a
   CUDA run is, with MFU also against the device's data-sheet bf16 peak where it is known
   (what published MFU figures use).
3. The track's base config over N seeds through the real subprocess runner: val_bpb mean and std
   (the track's seed noise floor), tokens/s, wall time.
Usage: `swarm bench harness [--device cuda] [--seeds 5] [--threads N] [--data-dir DIR] [--json]`;
`--synthetic-tokens` times the steps on random tokens when the track's data is not at hand
(throughput does not depend on the token values).
"""
from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from node.harness.config import Config, build_config
from node.harness.experiment import run_experiment
from node.harness.hardware import describe, measure_peak_flops
from node.harness.model import GPT, flops_per_token
from node.harness.prepare import prepare
from node.harness.train import Batches, Trainer, choose_precision, cpu_has_bf16
from node.harness.tracks import get_track
from swarm.bench.textbook import TextbookTrainer, textbook_config

SIZES = {"0.5M": dict(n_layer=3, n_embd=96, n_head=4),
         "2M": dict(n_layer=4, n_embd=192, n_head=6),
         "8M": dict(n_layer=6, n_embd=320, n_head=8)}
# tinystories-gpu: its base config (8 x 512) and one size down and one up (shapes over its base)
GPU_SIZES = {"12M": dict(n_layer=6, n_embd=384, n_head=6), "27M base": {},
             "88M": dict(n_layer=12, n_embd=768, n_head=12)}
# Dense bf16 tensor-core peaks from NVIDIA's data sheets (no sparsity), by device-name fragment,
# most specific first. Published MFU figures (karpathy/autoresearch's 39.8% on an H100) divide by
# these; the measured matmul peak is lower (~790 TFLOP/s on an H200), so MFU against it is higher.
NOMINAL_BF16 = (("H200", 989.4e12), ("H100 PCIe", 756.5e12), ("H100 NVL", 835.5e12),
                ("H100", 989.4e12), ("A100", 312e12))
Note = Callable[[str], None]


def nominal_peak(device_name: str) -> float | None:
    """The data-sheet dense bf16 FLOP/s of a known CUDA device, else None."""
    return next((peak for part, peak in NOMINAL_BF16 if part in device_name), None)


def sizes_for(device: torch.device) -> dict[str, dict[str, int]]:
    """The three shapes measured on this kind of device."""
    return GPU_SIZES if device.type == "cuda" else SIZES


def synthetic_tokens(vocab: int, n: int = 1 << 22) -> np.ndarray:
    """Uniform random token ids: enough to time steps when the track's data is not at hand."""
    return np.random.default_rng(0).integers(0, vocab, size=n, dtype=np.int64)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step: Callable[[], Any], n: int, device: torch.device) -> float:
    _sync(device)                             # CUDA runs ahead of the host: time finished work
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    _sync(device)
    return time.perf_counter() - t0


@dataclass
class Variant:
    """One training step to time: the harness's own (`trainer` set) or the textbook's."""

    step: Callable[[], Any]
    params: int
    precision: str
    flops_per_token: float               # MFU's numerator: the model's own (docs/HARNESS.md)
    trainer: Trainer | None = None


def _variants(shape: dict[str, int], tokens: np.ndarray, vocab: int, track: str,
              device: torch.device) -> tuple[dict[str, Variant], Config]:
    """name -> Variant for the harness (auto precision; fp32 too on CPU) and the textbook.

    The harness steps as a run on `device` does: compiled on CUDA, eager on CPU."""
    cfg = build_config(get_track(track).base.model_dump(), shape)
    out = {}
    # fp32 too on CPU, where autocast is a choice per size; on CUDA runs are bf16 (and each
    # compiled variant costs a compile, the bulk of a device check's minutes)
    own = (("harness", None),) + ((("harness_fp32", "fp32"),) if device.type == "cpu" else ())
    for name, prec in own:
        with torch.device("meta"):
            params = GPT(cfg, vocab).num_params()
        prec = prec or choose_precision("auto", device, params)
        tr = Trainer(cfg, vocab, tokens, seed=0, device=device, precision=prec,
                     compile_model=device.type == "cuda", total_steps=10**6)
        out[name] = Variant(tr.step, tr.params, prec, flops_per_token(cfg, vocab, tr.params), tr)
    ref = TextbookTrainer(vocab, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.seq_len, device=device)
    batches = Batches(tokens, cfg.batch_size, cfg.seq_len, seed=0)
    ref_params = sum(p.numel() for p in ref.model.parameters())
    # its own model's FLOPs: the harness's config would count its learned positions as a matmul
    out["textbook"] = Variant(lambda: ref.step(*batches.next()), ref_params, "fp32",
                              flops_per_token(textbook_config(cfg), vocab, ref_params))
    return out, cfg


def throughput(shape: dict[str, int], tokens: np.ndarray, vocab: int, peaks: dict[str, float],
               rounds: int, steps: int, track: str = "tinystories-cpu",
               device: torch.device | None = None) -> dict[str, Any]:
    """Median tokens/s and MFU per variant over interleaved rounds, and the ratios. `peaks` holds
    the measured fp32 and bf16 peaks, and "nominal" (the data-sheet bf16 peak) when known."""
    device = device or torch.device("cpu")
    variants, cfg = _variants(shape, tokens, vocab, track, device)
    names = list(variants)
    warm = 3 if device.type == "cuda" else 2             # compile, autotune, allocator, kernels
    for variant in variants.values():
        _time_steps(variant.step, warm, device)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate: no fixed order bias
        for name in order:
            seconds = _time_steps(variants[name].step, steps, device)
            rates[name].append(steps * cfg.tokens_per_step / seconds)
    row: dict[str, Any] = {"params": variants["harness"].params, "shape": {
        "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head,
        "batch_size": cfg.batch_size, "seq_len": cfg.seq_len}}
    for name in names:
        row[name] = _variant_row(variants[name], rates[name], peaks)
    row["ratio"] = row["harness"]["tokens_per_s"] / row["textbook"]["tokens_per_s"]
    row["ratio_fp32"] = (row["harness_fp32"]["tokens_per_s"] / row["textbook"]["tokens_per_s"]
                         if "harness_fp32" in row else None)
    return row


def _variant_row(variant: Variant, rates: list[float], peaks: dict[str, float]) -> dict[str, Any]:
    prec, tr = variant.precision, variant.trainer
    med = statistics.median(rates)
    achieved = variant.flops_per_token * med
    nominal = peaks.get("nominal")
    return {"tokens_per_s": med, "precision": prec, "flops_per_token": variant.flops_per_token,
            "mfu": achieved / peaks["bf16" if prec == "bf16" else "fp32"],
            # against the data-sheet bf16 peak whatever the precision: what the hardware offers
            "mfu_nominal": achieved / nominal if nominal else None,
            "rounds": [round(x, 1) for x in rates],
            # compiled as a run would be; a failed compile fell back to eager, and says why
            "compiled": tr.compiled if tr else False,
            "compile_error": tr.compile_error if tr else None}


@dataclass(frozen=True)
class BenchSpec:
    """What `swarm bench harness` measures, and where."""

    device: str = "cpu"                  # cpu | cuda
    threads: int = 1
    seeds: int = 5
    rounds: int = 7                      # 0: no throughput
    steps: int = 10
    home: Path | None = None
    data_dir: Path | None = None
    seed_budget: int | None = None
    synthetic: bool = False              # time on random tokens, not the track's data

    @property
    def track(self) -> str:
        """The track whose base config the sizes vary: the device's own."""
        return "tinystories-gpu" if self.device == "cuda" else "tinystories-cpu"


def seed_noise(spec: BenchSpec, note: Note) -> dict[str, Any]:
    """The track's base config over `spec.seeds` seeds, each run through the subprocess runner."""
    runs = []
    for seed in range(spec.seeds):
        res = run_experiment(spec.track, {}, seed=seed, budget_tokens=spec.seed_budget,
                             threads=spec.threads, home=spec.home, data_dir=spec.data_dir,
                             device=spec.device)
        m = res.metrics
        note(f"seed {seed}: {res.status} val_bpb={m.val_bpb} tok/s={m.tokens_per_s:.0f} "
             f"wall={m.wall_s:.1f}s")
        runs.append({"seed": seed, "status": res.status, "val_bpb": m.val_bpb,
                     "tokens_per_s": m.tokens_per_s, "wall_s": m.wall_s, "mfu": m.mfu,
                     "track": res.track, "error": res.error})
    vals = [r["val_bpb"] for r in runs if r["status"] == "ok"]
    return {"runs": runs, "n_ok": len(vals),
            "mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in runs),
            "median_wall_s": statistics.median(r["wall_s"] for r in runs)}


def measure_peaks(device: torch.device) -> dict[str, float | None]:
    """Measured fp32 and bf16 matmul peaks, and the data-sheet bf16 peak of a known GPU. The
    bf16 peak is None on a CPU without native bf16: no variant runs bf16 there (the harness
    picks fp32), and timing its emulation took 245 s on an AVX2 CPU (20 reps of 4 products at
    2.6 s each), the whole of a 1-step bench."""
    native = device.type != "cpu" or cpu_has_bf16()
    peaks = {"fp32": measure_peak_flops(device, torch.float32, reps=20),
             "bf16": measure_peak_flops(device, torch.bfloat16, reps=20) if native else None}
    nominal = nominal_peak(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return {**peaks, "nominal": nominal} if nominal else peaks


def bench_tokens(spec: BenchSpec) -> tuple[np.ndarray, str]:
    """The train tokens to time steps on, and where they came from."""
    vocab = get_track(spec.track).tokenizer.vocab_size
    if spec.synthetic:
        return synthetic_tokens(vocab), f"synthetic (uniform over {vocab} ids)"
    from node.home import resolve_home
    ready = prepare(get_track(spec.track), resolve_home(spec.home), spec.data_dir)
    return np.load(ready.train_tokens), f"{spec.track} train split"


def _one_size(shape: dict[str, int], tokens: np.ndarray, spec: BenchSpec,
              peaks: dict[str, float], device: torch.device) -> dict[str, Any]:
    vocab = get_track(spec.track).tokenizer.vocab_size
    try:
        return throughput(shape, tokens, vocab, peaks, spec.rounds, spec.steps, spec.track, device)
    except torch.cuda.OutOfMemoryError:
        return {"error": "out of memory"}
    except Exception as exc:                              # one size failing keeps the others
        first = str(exc).splitlines()[0] if str(exc) else ""
        return {"error": f"{type(exc).__name__}: {first}"[:400]}
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _describe(name: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{name}: {row['error']}"
    own = row["harness"]
    sheet = f", {own['mfu_nominal']:.1%} of the data sheet's" if own["mfu_nominal"] else ""
    return (f"{name}: harness {own['tokens_per_s']:.0f} tok/s (MFU {own['mfu']:.1%}{sheet}), "
            f"textbook {row['textbook']['tokens_per_s']:.0f} tok/s, ratio {row['ratio']:.2f}"
            + (f" (eager: {own['compile_error']})" if own['compile_error'] else ""))


def run_bench(spec: BenchSpec, note: Note,
              partial: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Everything above; returns the report as a dict. `partial` gets the report so far after
    each size (a run cut by a time limit keeps the sizes it finished)."""
    torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    peaks = measure_peaks(device)
    note(f"{device_name(device, spec.threads)}: peak matmul FLOP/s fp32 {peaks['fp32']:.3g}, "
         + (f"bf16 {peaks['bf16']:.3g}" if peaks["bf16"] else "bf16 not native (not timed)")
         + (f", data sheet bf16 {peaks['nominal']:.3g}" if "nominal" in peaks else ""))
    report: dict[str, Any] = {
        "device": spec.device, "device_name": device_name(device, spec.threads),
        "track": spec.track, "threads": spec.threads, "torch": torch.__version__, "tokens": None,
        "peak_flops": peaks, "sizes": {}, "seed_noise": None}
    if spec.rounds:
        tokens, report["tokens"] = bench_tokens(spec)
        note(f"tokens: {report['tokens']}")
        for name, shape in sizes_for(device).items():
            report["sizes"][name] = _one_size(shape, tokens, spec, peaks, device)
            note(_describe(name, report["sizes"][name]))
            if partial is not None:
                partial(report)
    report["seed_noise"] = seed_noise(spec, note) if spec.seeds else None
    return report


def device_name(device: torch.device, threads: int) -> str:
    """The device as runs record it (the CPU model, or the GPU's name)."""
    return describe(device, threads).device_name
