"""The reference the harness must match or beat: a plain eager GPT written straight from the
textbook (nanoGPT's classic form): explicit masked-softmax attention, GELU MLP, LayerNorm with
bias, learned positions, tied head, fp32, default AdamW. No fused kernels, no autocast.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from node.harness.config import Config, build_config


class TextbookAttention(nn.Module):
    """Causal self-attention with the mask and softmax written out."""

    def __init__(self, n_embd: int, n_head: int, seq_len: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("mask", torch.tril(torch.ones(seq_len, seq_len)).view(1, 1, seq_len, seq_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class TextbookBlock(nn.Module):
    """x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, n_embd: int, n_head: int, seq_len: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = TextbookAttention(n_embd, n_head, seq_len)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TextbookGPT(nn.Module):
    """Embeddings, blocks, final LayerNorm, tied head; returns the loss."""

    def __init__(self, vocab: int, n_layer: int, n_embd: int, n_head: int, seq_len: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, n_embd), nn.Embedding(seq_len, n_embd)
        self.h = nn.ModuleList(TextbookBlock(n_embd, n_head, seq_len) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def textbook_config(cfg: Config) -> Config:
    """`cfg` as the textbook GPT of its shape is built (GELU MLP of 4x, learned positions, tied
    head, full attention): what `flops_per_token` counts for it, with its own parameters (the
    same model FLOPs counted the harness's way: tests/harness/test_flops.py)."""
    return build_config(cfg.model_dump(), dict(activation="gelu", mlp_ratio=4.0, norm="layernorm",
                                                pos_encoding="learned", tie_embeddings=True,
                                                qk_norm=False, attn_pattern="L",
                                                logit_softcap=0.0))


class TextbookTrainer:
    """A plain training step: forward, backward, clip, AdamW."""

    def __init__(self, vocab: int, n_layer: int, n_embd: int, n_head: int, seq_len: int,
                 lr: float = 3e-3, device: torch.device | None = None) -> None:
        self.model = TextbookGPT(vocab, n_layer, n_embd, n_head, seq_len).to(device)
        self.device = device
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.95),
                                     weight_decay=0.1)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimiser step; returns the loss."""
        if self.device is not None:
            x, y = x.to(self.device), y.to(self.device)
        loss = self.model(x, y)
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return loss.item()
