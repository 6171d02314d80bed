"""The optimisers of one run and the weight EMA used for evaluation.

AdamW for everything by default. With `optimizer=muon`, `torch.optim.Muon` (orthogonalised
momentum, torch >= 2.9) takes the blocks' weight matrices and AdamW keeps the rest: embeddings,
the output head, norms and any 1-D parameter (Muon is defined for 2-D matrices only, and the
embeddings/head are lookups/classifiers rather than hidden linear maps). `embed_lr_mult` scales the
embeddings' learning rate. Every group keeps its peak lr so one schedule factor drives them all.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from node.harness.config import Config

EMBEDDINGS = ("wte.", "wpe.")        # input lookups: the separate embedding lr applies to these


def split_params(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The parameters by role: `embed` (wte, wpe), `matrix` (2-D weights inside the blocks),
    `head` (an untied output head), `other` (norms and any 1-D parameter); a tied head is wte."""
    groups: dict[str, list[nn.Parameter]] = {"embed": [], "matrix": [], "head": [], "other": []}
    for name, p in model.named_parameters():          # tied weights are listed once
        if name.startswith(EMBEDDINGS):
            groups["embed"].append(p)
        elif p.dim() < 2:
            groups["other"].append(p)
        elif name.startswith("blocks."):
            groups["matrix"].append(p)
        else:
            groups["head"].append(p)
    return groups


def _group(params: list[nn.Parameter], lr: float, weight_decay: float) -> dict:
    return {"params": params, "lr": lr, "peak_lr": lr, "weight_decay": weight_decay}


def build_optimizers(model: nn.Module, cfg: Config, fused: bool) -> list[torch.optim.Optimizer]:
    """AdamW over every parameter, or Muon for the block matrices plus AdamW for the rest."""
    parts = split_params(model)
    adam_matrices = parts["head"] + ([] if cfg.optimizer == "muon" else parts["matrix"])
    groups = [_group(adam_matrices, cfg.lr, cfg.weight_decay),
              _group(parts["embed"], cfg.lr * cfg.embed_lr_mult, cfg.weight_decay),
              _group(parts["other"], cfg.lr, 0.0)]
    opts: list[torch.optim.Optimizer] = [torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)]
    if cfg.optimizer == "muon":
        opts.append(torch.optim.Muon(
            [_group(parts["matrix"], cfg.muon_lr, cfg.weight_decay)], lr=cfg.muon_lr))
    return opts


def set_lr(opts: list[torch.optim.Optimizer], factor: float) -> None:
    """Every group's lr = its peak lr x the schedule factor."""
    for opt in opts:
        for group in opt.param_groups:
            group["lr"] = group["peak_lr"] * factor


def make_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights (None when `decay` is 0): after each step
    ema = decay * ema + (1 - decay) * w, starting from the weights after the first step."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
