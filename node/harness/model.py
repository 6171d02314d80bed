"""A compact GPT in the spirit of nanoGPT, shaped entirely by `Config`.

Pre-norm blocks (attention + MLP), causal SDPA attention (fused kernels on CPU and CUDA), optional
RoPE and QK-norm, GELU / ReLU^2 / SwiGLU MLPs, LayerNorm or RMSNorm, tied or separate output head.
Opt-in: sliding-window layers (`attn_pattern`, a boolean SDPA mask) and logit soft-capping.
`forward` returns logits; the loss lives in train.py, next to the n-gram teacher.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from node.harness.config import Config


class RMSNorm(nn.RMSNorm):
    """`nn.RMSNorm` that takes a CPU autocast's bf16 input (queries and keys under QK-norm) without
    the dtype-mismatch fallback.

    CUDA autocast runs rms_norm in fp32; CPU autocast leaves it alone, so bf16 q/k meet the fp32
    weight, miss the fused kernel and warn. The fallback normalises in fp32 and returns bf16; so
    does this, through the fused kernel: bit-identical numbers (tests/harness/test_model_eval.py),
    no warning, no slower (docs/HARNESS.md "Speed").
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or self.weight is None or x.dtype == self.weight.dtype:
            return super().forward(x)
        return F.rms_norm(x.float(), self.normalized_shape, self.weight, self.eps).to(x.dtype)


def make_norm(cfg: Config, dim: int) -> nn.Module:
    """The configured normalisation over the last `dim` features (no bias)."""
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim, eps=1e-6)
    return nn.LayerNorm(dim, bias=False)


def rope_tables(seq_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, (seq_len, head_dim / 2) each."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of features of x (B, H, T, D) by position."""
    t = x.shape[-2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)


def window_mask(seq_len: int, window: int) -> torch.Tensor:
    """(seq_len, seq_len) bool, True where query i may attend key j: j <= i and i - j < window."""
    offset = torch.arange(seq_len)[:, None] - torch.arange(seq_len)[None, :]
    return (offset >= 0) & (offset < window)


class Attention(nn.Module):
    """Multi-head causal self-attention through `F.scaled_dot_product_attention`."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.dropout = cfg.n_head, cfg.head_dim, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.q_norm = make_norm(cfg, cfg.head_dim) if cfg.qk_norm else None
        self.k_norm = make_norm(cfg, cfg.head_dim) if cfg.qk_norm else None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        # full layers keep is_causal (the fused kernels); a sliding-window layer passes its mask
        y = F.scaled_dot_product_attention(q, k, v, is_causal=mask is None,
                                           attn_mask=None if mask is None else mask[:t, :t],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    """Feed-forward block; SwiGLU uses 2/3 of the hidden width so its size matches the others."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.n_embd)
        self.kind = cfg.activation
        if self.kind == "swiglu":
            hidden = max(8, (2 * hidden // 3 + 7) // 8 * 8)
            self.gate = nn.Linear(cfg.n_embd, hidden, bias=False)
        self.fc = nn.Linear(cfg.n_embd, hidden, bias=False)
        self.proj = nn.Linear(hidden, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if self.kind == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:
            h = F.silu(self.gate(x)) * h
        return self.proj(h)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.norm1, self.norm2 = make_norm(cfg, cfg.n_embd), make_norm(cfg, cfg.n_embd)
        self.attn, self.mlp = Attention(cfg), MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), rope, mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class GPT(nn.Module):
    """Token embedding, blocks, final norm, output head."""

    def __init__(self, cfg: Config, vocab_size: int) -> None:
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.n_embd) if cfg.pos_encoding == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = make_norm(cfg, cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.wte.weight
        if cfg.pos_encoding == "rope":
            cos, sin = rope_tables(cfg.seq_len, cfg.head_dim)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.windowed = [w is not None for w in cfg.layer_windows()]
        if any(self.windowed):
            self.register_buffer("band_mask", window_mask(cfg.seq_len, cfg.attn_window),
                                 persistent=False)
        self._init_weights(0.02 * cfg.init_scale)

    def _init_weights(self, std: float) -> None:
        # GPT-2 init: N(0, std); the projections that write into the residual stream are
        # shrunk by 1/sqrt(2 * depth) so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue
            scale = 1 / math.sqrt(2 * self.cfg.n_layer) if name.endswith("proj.weight") else 1.0
            nn.init.normal_(p, mean=0.0, std=std * scale)

    def num_params(self) -> int:
        """Trainable parameters (a tied head counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T), T <= seq_len."""
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        rope = (self.rope_cos, self.rope_sin) if self.cfg.pos_encoding == "rope" else None
        for block, windowed in zip(self.blocks, self.windowed):
            x = block(x, rope, self.band_mask if windowed else None)
        logits = self.head(self.norm(x))
        if self.cfg.logit_softcap:
            cap = self.cfg.logit_softcap         # bounds the logits to (-cap, cap), in fp32
            logits = cap * torch.tanh(logits.float() / cap)
        return logits


def matmul_params(cfg: Config, vocab_size: int, params: int) -> int:
    """The parameters that multiply activations in a matmul: all of `params` but the lookups (an
    untied `wte`, learned positions). Norm gains are left in: 0.1% or less of the bench sizes'
    FLOPs."""
    lookups = vocab_size * cfg.n_embd * (0 if cfg.tie_embeddings else 1)
    lookups += cfg.seq_len * cfg.n_embd if cfg.pos_encoding == "learned" else 0
    return params - lookups


def attention_flops_per_token(cfg: Config) -> float:
    """Training FLOPs per token of the attention scores and their weighted sum, all layers:
    12 x width x the keys a query's span covers (PaLM's convention: the whole context for a full
    layer, causal or not; the window for an `S` layer, whatever SDPA computes for its mask)."""
    return 12.0 * cfg.n_embd * sum(min(w or cfg.seq_len, cfg.seq_len) for w in cfg.layer_windows())


def flops_per_token(cfg: Config, vocab_size: int, params: int) -> float:
    """Training FLOPs per token, forward and backward (the PaLM / nanoGPT estimate, MFU's
    numerator): 6 x matmul params + attention. Checked against PyTorch's FLOP counter by
    tests/harness/test_flops.py (docs/HARNESS.md, "MFU")."""
    return 6.0 * matmul_params(cfg, vocab_size, params) + attention_flops_per_token(cfg)
