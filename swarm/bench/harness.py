"""`swarm bench harness`: is the harness fast, and how noisy is a track?

1. Peak matmul FLOP/s of this machine (fp32 and bf16, at the benchmark's thread count).
2. For three model sizes (~0.5M, ~2M, ~8M params): training tokens/s and MFU of the harness's own
   step (its automatic precision, and fp32) against a textbook eager GPT of the same shape,
   measured side by side in interleaved rounds; medians and the ratio harness / textbook.
3. The `tinystories-cpu` base config over N seeds through the real subprocess runner: val_bpb mean
   and std (the track's seed noise floor), tokens/s, wall time.
Usage: `swarm bench harness [--seeds 5] [--threads N] [--data-dir DIR] [--json]`.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from node.harness.config import Config, build_config
from node.harness.experiment import run_experiment
from node.harness.hardware import measure_peak_flops
from node.harness.model import flops_per_token
from node.harness.prepare import prepare
from node.harness.model import GPT
from node.harness.train import Batches, Trainer, choose_precision
from node.harness.tracks import get_track
from swarm.bench.textbook import TextbookTrainer

SIZES = {"0.5M": dict(n_layer=3, n_embd=96, n_head=4),
         "2M": dict(n_layer=4, n_embd=192, n_head=6),
         "8M": dict(n_layer=6, n_embd=320, n_head=8)}
Note = Callable[[str], None]


def _time_steps(step: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t0


def _variants(shape: dict[str, int], tokens: np.ndarray,
              vocab: int) -> tuple[dict[str, tuple[Callable, int, str]], Config]:
    """name -> (step, params, precision) for the harness (auto precision, fp32) and the textbook."""
    cfg = build_config(get_track("tinystories-cpu").base.model_dump(), shape)
    cpu = torch.device("cpu")
    out = {}
    for name, prec in (("harness", None), ("harness_fp32", "fp32")):
        with torch.device("meta"):
            params = GPT(cfg, vocab).num_params()
        prec = prec or choose_precision("auto", cpu, params)
        tr = Trainer(cfg, vocab, tokens, seed=0, device=cpu, precision=prec, compile_model=False,
                     total_steps=10**6)
        out[name] = (tr.step, tr.params, prec)
    ref = TextbookTrainer(vocab, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.seq_len)
    batches = Batches(tokens, cfg.batch_size, cfg.seq_len, seed=0)
    ref_params = sum(p.numel() for p in ref.model.parameters())
    out["textbook"] = (lambda: ref.step(*batches.next()), ref_params, "fp32")
    return out, cfg


def throughput(shape: dict[str, int], tokens: np.ndarray, vocab: int, peaks: dict[str, float],
               rounds: int, steps: int) -> dict[str, Any]:
    """Median tokens/s and MFU per variant over interleaved rounds, and the ratios."""
    variants, cfg = _variants(shape, tokens, vocab)
    names = list(variants)
    for step, _, _ in variants.values():
        _time_steps(step, 2)                                # warm-up: allocator, kernels
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate: no fixed order bias
        for name in order:
            rates[name].append(steps * cfg.tokens_per_step / _time_steps(variants[name][0], steps))
    row: dict[str, Any] = {"params": variants["harness"][1]}
    for name in names:
        _, params, prec = variants[name]
        med = statistics.median(rates[name])
        fpt = flops_per_token(cfg, vocab, params)
        row[name] = {"tokens_per_s": med, "precision": prec,
                     "mfu": fpt * med / peaks["bf16" if prec == "bf16" else "fp32"],
                     "rounds": [round(x, 1) for x in rates[name]]}
    row["ratio"] = row["harness"]["tokens_per_s"] / row["textbook"]["tokens_per_s"]
    row["ratio_fp32"] = row["harness_fp32"]["tokens_per_s"] / row["textbook"]["tokens_per_s"]
    return row


def seed_noise(seeds: int, threads: int, home: Path | None, data_dir: Path | None,
               budget: int | None, note: Note) -> dict[str, Any]:
    """The tinystories-cpu base config over `seeds` seeds, each run through the subprocess runner."""
    runs = []
    for seed in range(seeds):
        res = run_experiment("tinystories-cpu", {}, seed=seed, budget_tokens=budget,
                             threads=threads, home=home, data_dir=data_dir)
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


def run_bench(threads: int, seeds: int, rounds: int, steps: int, home: Path | None,
              data_dir: Path | None, seed_budget: int | None, note: Note) -> dict[str, Any]:
    """Everything above; returns the report as a dict."""
    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    peaks = {"fp32": measure_peak_flops(cpu, torch.float32, reps=20),
             "bf16": measure_peak_flops(cpu, torch.bfloat16, reps=20)}
    note(f"peak matmul FLOP/s at {threads} threads: fp32 {peaks['fp32']:.3g}, bf16 {peaks['bf16']:.3g}")
    from node.home import resolve_home
    ready = prepare(get_track("tinystories-cpu"), resolve_home(home), data_dir)
    tokens = np.load(ready.train_tokens)
    vocab = get_track("tinystories-cpu").tokenizer.vocab_size
    sizes = {}
    for name, shape in (SIZES if rounds else {}).items():
        sizes[name] = throughput(shape, tokens, vocab, peaks, rounds, steps)
        note(f"{name}: harness {sizes[name]['harness']['tokens_per_s']:.0f} tok/s, textbook "
             f"{sizes[name]['textbook']['tokens_per_s']:.0f} tok/s, ratio {sizes[name]['ratio']:.2f}")
    noise = seed_noise(seeds, threads, home, data_dir, seed_budget, note) if seeds else None
    return {"threads": threads, "torch": torch.__version__, "peak_flops": peaks,
            "sizes": sizes, "seed_noise": noise}
