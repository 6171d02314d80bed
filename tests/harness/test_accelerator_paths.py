"""The harness's CUDA-only choices, exercised as far as a CPU allows (fused AdamW and bf16 autocast
with every knob that changes the step, contiguous batches for pinned copies, `--device cuda`
without CUDA, the compile's eager fallback and static shapes), and on a GPU by
scripts/gpu_check.sh (the tests that skip here: device queries, pinned batches)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from node.harness.config import Config
from node.harness.experiment import run_experiment
from node.harness.hardware import describe, memory_free
from node.harness.optim import build_optimizers
from node.harness.train import Batches, Trainer, choose_device, choose_precision

TOKENS = np.random.default_rng(0).integers(0, 64, 5000).astype(np.uint16)
BASE = dict(n_layer=2, n_embd=32, n_head=2, batch_size=2, seq_len=32)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("kw", [
    dict(norm="rmsnorm", activation="swiglu", pos_encoding="rope", qk_norm=True),  # GPU track's
    dict(optimizer="muon", embed_lr_mult=3.0, tie_embeddings=False, ema_decay=0.9, grad_clip=0.5),
    dict(logit_softcap=10.0, z_loss=1e-4, ngram_steps=2, attn_pattern="SL", attn_window=8,
         weight_decay=0.0, dropout=0.1),
])
def test_the_fused_optimiser_and_autocast_with_every_knob(kw: dict) -> None:
    """A CUDA run steps with fused AdamW under bf16 autocast; both exist on CPU, so each knob that
    changes the step or the parameter groups is run that way here and matched against the
    unfused step (same seed: the fused kernel computes the same update)."""
    cfg = Config(**BASE, **kw)
    losses = {}
    for fused in (False, True):
        tr = Trainer(cfg, 64, TOKENS, seed=0, device=torch.device("cpu"), precision="bf16",
                     compile_model=False, total_steps=4)
        tr.opts = build_optimizers(tr.model, cfg, fused=fused)
        assert tr.opts[0].defaults["fused"] is fused
        losses[fused] = [float(tr.step()) for _ in range(4)]
    assert all(np.isfinite(losses[True]))
    assert losses[True] == pytest.approx(losses[False], abs=1e-3)


def test_batches_are_contiguous_for_an_asynchronous_copy() -> None:
    """A non_blocking copy of a strided view is staged through pageable memory: the rows are made
    contiguous (then pinned on CUDA), and stay the shifted windows they were."""
    x, y = Batches(TOKENS, 3, 16, seed=1).next()
    assert x.is_contiguous() and y.is_contiguous() and x.shape == y.shape == (3, 16)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_device_cuda_without_cuda_is_refused_not_a_crash(track, home, corpus) -> None:
    """A crash is recorded against the config; a node without CUDA is not the config's fault."""
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = run_experiment(track, {}, 0, threads=1, home=home, data_dir=corpus[0], device="cuda")
    assert res.status == "refused" and res.error == "--device cuda: torch sees no CUDA device here"


@needs_cuda
def test_cuda_device_queries() -> None:
    cuda = choose_device("cuda")
    assert cuda.type == "cuda" and cuda.index == torch.cuda.current_device()
    hw = describe(cuda, 1)
    assert hw.accelerator == "cuda" and hw.device_name and hw.memory_gb > 0
    assert 0 < memory_free(cuda) <= hw.memory_gb * 2**30 * 1.01
    assert choose_precision("auto", cuda, 10**6) == ("bf16" if torch.cuda.is_bf16_supported()
                                                     else "fp32")


@needs_cuda
def test_cuda_batches_are_pinned_and_the_step_runs() -> None:
    cfg = Config(**BASE)
    tr = Trainer(cfg, 64, TOKENS, seed=0, device=torch.device("cuda"), precision="bf16",
                 compile_model=False, total_steps=2)
    x, y = tr.batches.next()
    assert x.is_pinned() and y.is_pinned() and x.is_contiguous()
    assert tr.opts[0].defaults["fused"] is True
    assert np.isfinite(float(tr.step()))


class _BackwardFails(torch.autograd.Function):
    """Identity forward, failing backward: what a compiled module does when its backward (compiled
    by AOTAutograd at the first backward call) does not build."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("backward compile failed: ptxas not found\ntraceback lines")


def test_a_backward_that_fails_to_compile_falls_back_to_eager() -> None:
    """On CPU inductor cannot be made to build the forward and fail the backward, so the compiled
    forward is stood in for by one whose backward raises; the step then redoes forward and
    backward eagerly, as a run without that failure would have done."""
    cfg = Config(**BASE)
    tr, ref = (Trainer(cfg, 64, TOKENS, seed=0, device=torch.device("cpu"), precision="fp32",
                       compile_model=False, total_steps=3) for _ in range(2))
    tr.compiled, tr.forward = True, lambda x: _BackwardFails.apply(tr.model(x))
    assert float(tr.step()) == float(ref.step())
    assert not tr.compiled
    assert tr.compile_error == "RuntimeError: backward compile failed: ptxas not found"
    for p, q in zip(tr.model.parameters(), ref.model.parameters()):
        assert torch.equal(p, q)
    assert float(tr.step()) == float(ref.step())


def test_a_second_compiled_model_is_compiled_static(monkeypatch, capfd) -> None:
    """The bench compiles three sizes in one process: without dynamic=False dynamo recompiled the
    second with its changed sizes symbolic ("marking ... n_head as dynamic"), so its step was
    not a run's. Dynamo decides that while tracing, before the C++ build: a broken compiler
    (CXX=/bin/false, the eager fallback) keeps this test to seconds."""
    monkeypatch.setenv("CXX", "/bin/false")
    torch._logging.set_logs(dynamic=logging.INFO)
    try:
        for n_head in (2, 4):
            tr = Trainer(Config(n_layer=1, n_embd=32, n_head=n_head, batch_size=2, seq_len=16), 64,
                         TOKENS, seed=0, device=torch.device("cpu"), precision="fp32",
                         compile_model=True, total_steps=2)
            assert np.isfinite(float(tr.step()))
    finally:
        torch._logging.set_logs()
    err = capfd.readouterr().err
    assert "create_env" in err                            # the log was on: dynamo traced
    assert "as dynamic" not in err


@pytest.mark.parametrize("compiled", [False, True])
def test_a_compiled_runs_speed_leaves_out_its_compiling_first_step(compiled: bool) -> None:
    """Step 0 of a compiled run holds the compiles (tens of seconds on a GPU): tokens/s and MFU
    are timed from after it, or a 300-step check run would read several times slower. (The
    state `compiled` is set by hand: the clock reads only it, and the eager step is the same.)"""
    from node.harness.train import train_loop

    tr = Trainer(Config(**BASE), 64, TOKENS, seed=0, device=torch.device("cpu"),
                 precision="fp32", compile_model=False, total_steps=5)
    tr.compiled = compiled
    out = train_loop(tr, lambda event: None, every_s=60.0, check_every=1)
    per_step = BASE["batch_size"] * BASE["seq_len"]
    assert out["tokens"] == 5 * per_step                         # the budget: every step
    assert out["timed_tokens"] == (4 if compiled else 5) * per_step
    assert out["train_s"] > 0
