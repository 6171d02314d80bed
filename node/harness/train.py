"""The training loop of one run: batches, schedule, AdamW, the n-gram teacher, then val_bpb.

Opt-in knobs handled here: Muon and the embedding lr (through optim.py), z-loss, and a weight EMA
that `eval_model` hands to evaluation.

`Trainer` owns the model, optimiser and batch stream so the benchmark can time its steps in the
same process; `train` runs a whole spec and returns the metrics. Seeded end to end: on CPU the same
spec, seed and thread count give bit-identical numbers.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from node.harness.checkpoint import Prior
from node.harness.config import Config, Refused
from node.harness.model import GPT
from node.harness.optim import build_optimizers, make_ema, set_lr

Emit = Callable[[dict[str, Any]], None]
TAIL = 50                   # the last steps whose mean loss is a run's train_loss


class NonFinite(RuntimeError):
    """The training loss became NaN or infinite."""


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_device(requested: str) -> torch.device:
    """cuda when asked for or available under auto, else cpu; refuses cuda that torch cannot see
    (without this the first torch.cuda call crashed the run, and a crash is recorded)."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise Refused("--device cuda: torch sees no CUDA device here")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        # indexed: some torch.cuda calls refuse a bare "cuda" (mem_get_info before torch 2.5 or so)
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def choose_precision(requested: str, device: torch.device, params: int) -> str:
    """bf16 on CUDA; on CPU only with native bf16 and a model big enough to gain (DESIGN.md)."""
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # measured here: bf16 autocast is 6-40% faster from ~0.8M params, 11% slower below
    return "bf16" if cpu_has_bf16() and params >= 600_000 else "fp32"


def lr_multiplier(cfg: Config, progress: float) -> float:
    """Schedule factor in [min_lr_frac, 1] at `progress` (0..1) through the budget."""
    if cfg.warmup_frac and progress < cfg.warmup_frac:
        return (progress + 1e-9) / cfg.warmup_frac
    lo = cfg.min_lr_frac
    rest = (progress - cfg.warmup_frac) / max(1e-9, 1.0 - cfg.warmup_frac)
    if cfg.schedule == "cosine":
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * min(1.0, rest)))
    if cfg.schedule == "linear":
        return lo + (1 - lo) * (1 - min(1.0, rest))
    decay_start = 1.0 - cfg.decay_frac                    # wsd: stable, then linear decay
    if progress < decay_start or cfg.decay_frac == 0:
        return 1.0
    return lo + (1 - lo) * (1 - (progress - decay_start) / cfg.decay_frac)


class Batches:
    """Random windows of the token stream, from a seeded generator (same seed, same batches)."""

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int,
                 pin: bool = False) -> None:
        if len(tokens) <= seq_len + 1:
            raise ValueError(f"the train split has {len(tokens)} tokens, fewer than seq_len + 2")
        self.tokens = torch.from_numpy(tokens.astype(np.int64))
        self.rng = np.random.default_rng(seed)
        self.batch_size, self.seq_len = batch_size, seq_len
        self.span = torch.arange(seq_len + 1)
        # Page-locked rows let a CUDA copy run asynchronously (nanoGPT's habit): from pageable
        # memory the host would wait for the copy, and with it for the queued GPU work.
        self.pin = pin

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y), each (batch_size, seq_len), y shifted by one."""
        starts = self.rng.integers(0, len(self.tokens) - self.seq_len - 1, size=self.batch_size)
        rows = self.tokens[torch.from_numpy(starts)[:, None] + self.span]
        # contiguous: a non_blocking copy of a strided view goes through a pageable temporary,
        # which made the pinning useless (the copy waited for the queued GPU work)
        x, y = rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
        if self.pin:
            x, y = x.pin_memory(), y.pin_memory()
        return x, y


def bigram_teacher(tokens: np.ndarray, vocab_size: int) -> torch.Tensor:
    """Next-token probabilities P(b | a), (vocab, vocab): bigram counts smoothed toward unigram."""
    t = tokens.astype(np.int64)
    pair = np.bincount(t[:-1] * vocab_size + t[1:], minlength=vocab_size * vocab_size)
    counts = torch.from_numpy(pair.reshape(vocab_size, vocab_size).astype(np.float32))
    unigram = (counts.sum(0) + 1) / (counts.sum() + vocab_size)
    # Dirichlet smoothing: unseen pairs fall back to the unigram distribution
    return (counts + unigram) / (counts.sum(1, keepdim=True) + 1)


def z_loss_term(logits: torch.Tensor) -> torch.Tensor:
    """PaLM's z-loss: mean over positions of logsumexp(logits)^2, keeping the softmax normaliser
    near 1 (log Z near 0); weighted by `z_loss` in the training loss."""
    return torch.logsumexp(logits, dim=-1).square().mean()


def make_autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for `precision == "bf16"`, else a no-op."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Trainer:
    """Model, optimiser and batches of one run; `step()` does one optimiser step."""

    def __init__(self, cfg: Config, vocab_size: int, tokens: np.ndarray, seed: int,
                 device: torch.device, precision: str, compile_model: bool, total_steps: int) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device, self.precision = cfg, device, precision
        self.total_steps, self.step_no = total_steps, 0
        self.warmed = False           # the compiles happen at a process's first step
        self.model = GPT(cfg, vocab_size).to(device)
        self.params = self.model.num_params()
        # static shapes: a second model in this process (the bench's next size) would otherwise be
        # recompiled with its changed sizes symbolic (dynamo's automatic dynamic), unlike a run
        self.forward = torch.compile(self.model, dynamic=False) if compile_model else self.model
        self.compiled, self.compile_error = compile_model, None
        self.opts = build_optimizers(self.model, cfg, fused=device.type == "cuda")
        self.ema = make_ema(self.model, cfg.ema_decay)
        self.batches = Batches(tokens, cfg.batch_size, cfg.seq_len, seed,
                               pin=device.type == "cuda")
        self.teacher = bigram_teacher(tokens, vocab_size).to(device) if cfg.ngram_steps else None
        self.autocast = lambda: make_autocast(device, precision)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights to evaluate: their EMA when `ema_decay` is on, else the model itself."""
        return self.model if self.ema is None else self.ema.module

    def _teacher_weight(self) -> float:
        if self.teacher is None or self.step_no >= self.cfg.ngram_steps:
            return 0.0
        return self.cfg.ngram_weight * (1 - self.step_no / self.cfg.ngram_steps)

    def _backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward, loss and backward of one step; returns the next-token cross-entropy."""
        cfg = self.cfg
        with self.autocast():
            logits = self.forward(x)
        logits = logits.float()
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss, alpha = ce, self._teacher_weight()
        if alpha:
            # soft cross-entropy toward the bigram teacher's next-token distribution
            soft = -(self.teacher[x] * F.log_softmax(logits, dim=-1)).sum(-1).mean()
            loss = (1 - alpha) * ce + alpha * soft
        if cfg.z_loss:
            loss = loss + cfg.z_loss * z_loss_term(logits)
        loss.backward()
        return ce

    def _first_backward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Step 0 of a compiled run, where the compiles happen: the forward's at its first call
        and the backward's (AOTAutograd compiles it lazily) at the first backward. Either failing
        falls back to eager once, keeping the reason: a box without a working C/C++ compiler, or
        a Triton that does not build, still trains (measured: CXX=/bin/false fails in ~3 s on
        CPU)."""
        try:
            return self._backward(x, y)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:                          # the backends raise many types
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.compile_error = f"{type(exc).__name__}: {first}"[:400]
            self.forward, self.compiled = self.model, False
            self.model.zero_grad(set_to_none=True)        # a failed backward may have left some
            return self._backward(x, y)

    def step(self) -> torch.Tensor:
        """One optimiser step; returns the (detached) next-token cross-entropy."""
        cfg = self.cfg
        set_lr(self.opts, lr_multiplier(cfg, self.step_no / self.total_steps))
        x, y = self.batches.next()
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.compiled and not self.warmed:
            ce = self._first_backward(x, y)
        else:
            ce = self._backward(x, y)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        for opt in self.opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step_no += 1
        self.warmed = True
        return ce.detach()


class Hook(Protocol):
    """Called after every step (run.py's checkpointer): `done` steps, the loss tail, and the
    training seconds and timed tokens of the whole run so far."""

    def __call__(self, done: int, tail: torch.Tensor, train_s: float, timed_tokens: int) -> None: ...


def train_loop(trainer: Trainer, emit: Emit, every_s: float, check_every: int,
               fault: Callable[[int], None] | None = None, curve: Any = None,
               prior: Prior | None = None, hook: Hook | None = None) -> dict[str, Any]:
    """Run the steps left (from `trainer.step_no`), emitting progress; returns tokens, steps,
    train loss and train seconds (those of `prior`, the segments before a resume, included).

    `curve` (a `node.harness.curve.LossCurve`) gets every loss read, for the run's loss curve."""
    cfg, steps, prior = trainer.cfg, trainer.total_steps, prior or Prior()
    start = trainer.step_no
    # The last TAIL losses, copied into one buffer on the device (no sync). Keeping each step's
    # loss tensor instead (up to 256 of them) pinned the CPU heap between the steps' freed logits
    # buffers: a tinystories-cpu run's resident memory grew ~8 MB a step, to 2.4 GB (soak test).
    tail = prior.tail if prior.tail is not None else torch.zeros(TAIL, device=trainer.device)
    # A compiled run's first step (of each segment) holds the compiles (tens of seconds on a GPU):
    # the clock of tokens/s and MFU starts after it, or a 300-step run would read several times
    # slower.
    warm = start + 1 if trainer.compiled and steps - start > 1 else start
    t0 = last = time.perf_counter()
    for step in range(start, steps):
        if fault:
            fault(step)
        loss = trainer.step()
        tail[step % TAIL] = loss
        done = step + 1
        if done == warm:
            _synchronize(trainer.device)
            t0 = last = time.perf_counter()
        if done % check_every == 0 or done == steps:
            value = float(loss)                           # syncs the device: not every step on GPU
            if curve is not None:
                curve.add(done, value)
            if not math.isfinite(value):
                raise NonFinite(f"loss is {value} at step {done}")
            now = time.perf_counter()
            if now - last >= every_s or done == steps:
                last = now
                emit({"event": "progress", "step": done, "steps": steps,
                      "tokens": done * cfg.tokens_per_step, "loss": round(value, 6),
                      "tokens_per_s": round((done - warm) * cfg.tokens_per_step
                                            / max(now - t0, 1e-9), 1),
                      "elapsed_s": round(prior.train_s + now - t0, 3)})
        if hook is not None:
            hook(done, tail, prior.train_s + time.perf_counter() - t0,
                 prior.timed_tokens + max(0, done - warm) * cfg.tokens_per_step)
    _synchronize(trainer.device)
    seconds = time.perf_counter() - t0
    tail = tail.roll(-(steps % TAIL)) if steps >= TAIL else tail[:steps]   # oldest first
    if not torch.isfinite(tail).all():
        raise NonFinite("loss is not finite at the end of training")
    return {"tokens": steps * cfg.tokens_per_step, "steps": steps,
            "train_loss": float(tail.mean()), "train_s": prior.train_s + seconds,
            "timed_tokens": prior.timed_tokens + (steps - warm) * cfg.tokens_per_step}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
