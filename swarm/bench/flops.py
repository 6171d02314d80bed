"""MFU's numerator checked: the FLOPs PyTorch counts in one training step against the formula.

`node.harness.model.flops_per_token` estimates a step's FLOPs per token (6 x matmul params +
attention, PaLM's convention). Here `torch.utils.flop_counter.FlopCounterMode` counts the
matmuls that a forward, the cross-entropy and a backward really dispatch, on meta tensors (no
memory, no arithmetic: an 88M-param model counts in about a second on a CPU), with SDPA's math
backend so that attention shows as the batched matmuls it is (the counter has no formula for
the CPU's fused SDPA kernel and would count it as 0). The math backend computes the whole T x T
score matrix whatever the mask, as the fused kernels are asked to: for full (causal) layers this
is exactly PaLM's count, for sliding-window layers more than the formula counts (docs/HARNESS.md,
"MFU").

    PYTHONPATH=. .venv/bin/python -m swarm.bench.flops      # the bench sizes' ratios, a table
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from node.harness.config import Config
from node.harness.model import GPT, attention_flops_per_token, flops_per_token, matmul_params
from swarm.bench.textbook import TextbookGPT, textbook_config

# The score and weighted-sum products: what attention dispatches under the math backend (bmm),
# or as a fused kernel on a device where SDPA picks one
ATTENTION_OPS = ("aten.bmm", "aten.baddbmm", "scaled_dot_product")


@dataclass(frozen=True)
class Counted:
    """FLOPs per token of one training step (forward, loss, backward), as counted and as estimated,
    each split into the attention's products and the rest (the weights' matmuls)."""

    matmul: float
    attention: float
    estimated_matmul: float
    estimated_attention: float

    @property
    def total(self) -> float:
        """Every counted FLOP per token."""
        return self.matmul + self.attention

    @property
    def estimated(self) -> float:
        """`flops_per_token`, MFU's numerator."""
        return self.estimated_matmul + self.estimated_attention

    @property
    def ratio(self) -> float:
        """Counted / estimated."""
        return self.total / self.estimated


def count_step(model: nn.Module, loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
               vocab: int, seq_len: int) -> tuple[float, float]:
    """(matmul, attention) FLOPs per token of forward + `loss` + backward of `model` (built on the
    meta device) on one sequence of `seq_len` tokens."""
    x = torch.randint(0, vocab, (1, seq_len), device="meta")
    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        loss(model, x).backward()
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    attention = sum(n for op, n in by_op.items() if op.startswith(ATTENTION_OPS))
    return (sum(by_op.values()) - attention) / seq_len, attention / seq_len


def _harness_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = model(x).float()                   # as train.py's step: the loss in fp32
    return F.cross_entropy(logits.flatten(0, 1), x.flatten())


def harness_counted(cfg: Config, vocab: int) -> Counted:
    """The harness's GPT of `cfg`: counted, and `flops_per_token`'s two parts."""
    with torch.device("meta"):
        model = GPT(cfg, vocab)
    params = model.num_params()
    matmul, attention = count_step(model, _harness_loss, vocab, cfg.seq_len)
    return Counted(matmul, attention, 6.0 * matmul_params(cfg, vocab, params),
                   attention_flops_per_token(cfg))


def textbook_counted(cfg: Config, vocab: int) -> Counted:
    """The bench's textbook GPT of `cfg`'s shape, against the numerator the bench gives it."""
    with torch.device("meta"):
        model = TextbookGPT(vocab, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.seq_len)
    params = sum(p.numel() for p in model.parameters())
    matmul, attention = count_step(model, lambda m, x: m(x, x), vocab, cfg.seq_len)
    own = textbook_config(cfg)
    estimated_attention = attention_flops_per_token(own)
    return Counted(matmul, attention, flops_per_token(own, vocab, params) - estimated_attention,
                   estimated_attention)


def main() -> None:
    """Counted / estimated for the bench's sizes on both tracks, harness and textbook."""
    from node.harness.config import build_config
    from node.harness.tracks import get_track
    from swarm.bench.harness import GPU_SIZES, SIZES

    print("track            size      params   estimated/token  harness counted/est  "
          "textbook counted/est")
    for track, sizes in (("tinystories-gpu", GPU_SIZES), ("tinystories-cpu", SIZES)):
        base, vocab = get_track(track).base.model_dump(), get_track(track).tokenizer.vocab_size
        for name, shape in sizes.items():
            cfg = build_config(base, shape)
            with torch.device("meta"):
                params = GPT(cfg, vocab).num_params()
            own, ref = harness_counted(cfg, vocab), textbook_counted(cfg, vocab)
            print(f"{track:16} {name:9} {params / 1e6:6.2f}M  {own.estimated:15.4g}  "
                  f"{own.ratio:19.5f}  {ref.ratio:20.5f}")


if __name__ == "__main__":
    main()
