"""The opt-in experiment knobs: track ids unchanged, ranges, and that each changes training the way
it should (Muon on matrices only, embedding lr, soft-cap, z-loss, sliding window, weight EMA)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from node.harness.config import KNOBS, OPT_IN_KNOBS, Config, Refused, build_config, knob_table
from node.harness.experiment import run_experiment
from node.harness.feasibility import estimate_memory
from node.harness.model import GPT, Attention, flops_per_token, window_mask
from node.harness.tracks import TRACKS
from node.harness.train import Trainer, z_loss_term

# Computed on main (9d21279) before these knobs existed: adding them must change none of them.
# tinystories-gpu's id changed on purpose since: its data is now the hub's parquet rows at a pinned
# revision (node/harness/hub.py), and the source is part of the id.
IDS_ON_MAIN = {
    ("tinystories-cpu", None): "tinystories-cpu:1c8bad0569f51e13a82b7ce5a0b3c596",
    ("tinystories-cpu", 200_000): "tinystories-cpu:2333de3956d96b673ff7aeb7326ddd23",
    ("tinystories-cpu", 1_000_000): "tinystories-cpu:4bbe3886934e2a8b9311d865acb2d914",
    ("tinystories-gpu", None): "tinystories-gpu:4fc31472949bfd545dfb1f891bd6ec1c",  # pinned a, b
}
BASE_HASHES_ON_MAIN = {"tinystories-cpu": "27d7d9fed3cc958f06a3862ee7f47c7b",
                       "tinystories-gpu": "37fee9b61f81792020c5be73175708fc"}
KNOBS_ON_MAIN = {
    "n_layer", "n_embd", "n_head", "mlp_ratio", "activation", "norm", "pos_encoding",
    "tie_embeddings", "dropout", "qk_norm", "init_scale", "lr", "schedule", "warmup_frac",
    "decay_frac", "min_lr_frac", "weight_decay", "beta1", "beta2", "grad_clip", "batch_size",
    "seq_len", "ngram_steps", "ngram_weight"}
BASE = Config().model_dump()
CPU = torch.device("cpu")
TOKENS = np.random.default_rng(0).integers(0, 64, 5000).astype(np.uint16)


def tiny(**kw) -> Config:
    return Config(**{"n_layer": 1, "n_embd": 32, "n_head": 2, "batch_size": 4, "seq_len": 16, **kw})


def trainer(cfg: Config, steps: int = 10, seed: int = 0) -> Trainer:
    return Trainer(cfg, 64, TOKENS, seed, CPU, "fp32", False, total_steps=steps)


def one_step_deltas(**kw) -> dict[str, torch.Tensor]:
    """Each parameter's change over the first step (no warmup, no weight decay)."""
    tr = trainer(tiny(warmup_frac=0.0, weight_decay=0.0, **kw))
    before = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    tr.step()
    return {n: p.detach() - before[n] for n, p in tr.model.named_parameters()}


# ---- config: ids, dumps, ranges

def test_track_ids_and_base_hashes_are_unchanged() -> None:
    for (name, budget), expected in IDS_ON_MAIN.items():
        track = TRACKS[name].pinned("a" * 64, "b" * 64).with_budget(budget)
        assert track.id == expected, name
        assert track.base.hash() == BASE_HASHES_ON_MAIN[name]
        assert set(track.base.model_dump()) == KNOBS_ON_MAIN


def test_opt_in_knobs_leave_the_dump_at_default_and_round_trip() -> None:
    assert set(OPT_IN_KNOBS) == set(KNOBS) - KNOBS_ON_MAIN
    assert all(r["opt_in"] == (r["knob"] in OPT_IN_KNOBS) for r in knob_table())
    explicit = build_config(BASE, {"z_loss": 0.0, "attn_pattern": "L", "optimizer": "adamw"})
    assert explicit.hash() == Config().hash()
    on = build_config(BASE, {"z_loss": 1e-4, "attn_pattern": "SSSL", "optimizer": "muon"})
    dump = on.model_dump()
    assert {"z_loss", "attn_pattern", "optimizer"} <= set(dump) and "ema_decay" not in dump
    assert Config.model_validate(dump) == on and on.hash() != Config().hash()
    assert Config.model_validate_json(on.model_dump_json()) == on


@pytest.mark.parametrize("overrides,reason", [
    ({"optimizer": "sgd"}, "optimizer"),
    ({"attn_pattern": "SXL"}, "attn_pattern"),
    ({"attn_pattern": ""}, "attn_pattern"),
    ({"attn_pattern": "SSSL", "attn_window": 128}, "attn_window \\(128\\) must be below seq_len"),
    ({"logit_softcap": -1.0}, "logit_softcap"),
    ({"ema_decay": 1.0}, "ema_decay"),
])
def test_experiment_knob_refusals(overrides: dict, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        build_config(BASE, overrides)


def test_window_check_only_binds_with_sliding_layers() -> None:
    build_config(BASE, {"attn_window": 4096})                        # all layers full: fine
    build_config(BASE, {"attn_pattern": "S", "attn_window": 4096, "n_layer": 1})   # last is L
    assert Config(n_layer=5, attn_pattern="SSSL").layer_windows() == [64, 64, 64, None, None]
    assert Config(n_layer=3, attn_pattern="S").layer_windows() == [64, 64, None]


def test_search_metadata_is_machine_readable() -> None:
    rows = {r["knob"]: r for r in knob_table()}
    assert rows["muon_lr"]["log"] and rows["lr"]["log"] and not rows["z_loss"]["log"]
    assert rows["optimizer"]["choices"] == ["adamw", "muon"]
    assert rows["attn_pattern"]["choices"][0] == "L" and rows["qk_norm"]["choices"] == [False, True]
    for row in rows.values():
        if row["choices"]:
            for value in row["choices"]:
                build_config(BASE, {row["knob"]: value})


def test_feasibility_and_flops_see_the_knobs() -> None:
    assert estimate_memory(tiny(ema_decay=0.9), 64, 10**6) > estimate_memory(tiny(), 64, 10**6)
    full, windowed = Config(), Config(attn_pattern="SSSL", attn_window=32)
    assert flops_per_token(windowed, 2048, 10**6) < flops_per_token(full, 2048, 10**6)


# ---- each knob changes training the expected way

def test_muon_takes_the_block_matrices_only() -> None:
    tr = trainer(tiny(optimizer="muon", tie_embeddings=False))
    adamw, muon = tr.opts
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    names = {id(p): n for n, p in tr.model.named_parameters()}
    on_muon = {names[id(p)] for g in muon.param_groups for p in g["params"]}
    on_adamw = {names[id(p)] for g in adamw.param_groups for p in g["params"]}
    matrices = {n for n, p in tr.model.named_parameters() if n.startswith("blocks.") and p.dim() == 2}
    assert on_muon == matrices
    assert on_adamw == set(names.values()) - on_muon and "head.weight" in on_adamw
    adam, mu = one_step_deltas(), one_step_deltas(optimizer="muon")
    for name, delta in adam.items():
        if name in on_muon:
            # Muon's update is orthogonalised: its singular values are nearly flat
            r = min(delta.shape)
            flat = lambda d: float(torch.linalg.svdvals(d)[0] / torch.linalg.svdvals(d)[r // 2])
            assert flat(mu[name]) < 1.6 and flat(mu[name]) < flat(delta), name
        else:
            assert torch.equal(mu[name], delta), name            # AdamW, exactly as before


def test_embedding_lr_scales_only_the_embeddings() -> None:
    one, four = one_step_deltas(), one_step_deltas(embed_lr_mult=4.0)
    for name, delta in one.items():
        if name.startswith(("wte.", "wpe.")):
            assert torch.allclose(four[name], 4 * delta, rtol=1e-4, atol=1e-9), name
        else:
            assert torch.equal(four[name], delta), name


def test_soft_cap_bounds_the_logits() -> None:
    idx = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    raw = GPT(tiny(init_scale=10.0), 64)(idx)
    torch.manual_seed(0)
    capped = GPT(tiny(init_scale=10.0, logit_softcap=2.0), 64)(idx)
    assert raw.abs().max() > 2.0 and capped.abs().max() < 2.0
    assert torch.allclose(capped, 2.0 * torch.tanh(raw / 2.0), atol=1e-6)


def test_z_loss_adds_its_term_and_shrinks_the_normaliser() -> None:
    assert float(z_loss_term(torch.zeros(3, 5, 4))) == pytest.approx(math.log(4) ** 2)
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(z_loss_term(logits), (logits.exp().sum(-1).log() ** 2).mean())
    sizes = []
    for z in (0.0, 0.1):
        tr = trainer(tiny(z_loss=z), steps=20)
        for _ in range(20):
            tr.step()
        x, _ = tr.batches.next()
        with torch.no_grad():
            sizes.append(float(z_loss_term(tr.model(x))))
    assert sizes[1] < 0.9 * sizes[0]


def reference_attention(att: Attention, x: torch.Tensor, window: int) -> torch.Tensor:
    """Explicit loops over (query, key) pairs: softmax over keys j with i - window < j <= i."""
    b, t, c = x.shape
    q, k, v = att.qkv(x).view(b, t, 3, att.n_head, att.head_dim).permute(2, 0, 3, 1, 4)
    out = torch.zeros_like(q)
    for i in range(t):
        keys = [j for j in range(t) if 0 <= i - j < window]
        scores = q[:, :, i:i + 1] @ k[:, :, keys].transpose(-1, -2) / math.sqrt(att.head_dim)
        out[:, :, i] = (F.softmax(scores, dim=-1) @ v[:, :, keys])[:, :, 0]
    return att.proj(out.transpose(1, 2).reshape(b, t, c))


def test_sliding_window_attention_matches_an_explicit_reference() -> None:
    torch.manual_seed(0)
    att = Attention(tiny())
    x = torch.randn(2, 12, 32)
    for window in (1, 3, 12):
        got = att(x, None, window_mask(16, window))
        assert torch.allclose(got, reference_attention(att, x, window), atol=1e-5), window
    assert torch.allclose(att(x, None, window_mask(16, 12)), att(x, None))   # window >= T: causal


@pytest.mark.parametrize("pattern,masked", [("SL", True), ("L", False)])
def test_sliding_window_layer_ignores_tokens_beyond_the_window(pattern: str, masked: bool) -> None:
    torch.manual_seed(0)
    model = GPT(tiny(n_layer=2, attn_pattern=pattern, attn_window=4), 64).eval()
    seen: list[torch.Tensor] = []
    model.blocks[0].register_forward_hook(lambda mod, args, out: seen.append(out))
    idx = torch.randint(0, 64, (1, 12), generator=torch.Generator().manual_seed(0))
    far, near = idx.clone(), idx.clone()
    far[0, 11 - 4] = (idx[0, 11 - 4] + 1) % 64           # just outside position 11's window
    near[0, 11 - 3] = (idx[0, 11 - 3] + 1) % 64          # the oldest token inside it
    with torch.no_grad():
        model(idx), model(far), model(near)
    base, out_far, out_near = (s[0, 11] for s in seen)
    assert torch.equal(base, out_far) == masked
    assert not torch.allclose(base, out_near)


def test_ema_weights_follow_the_update_rule_and_are_evaluated() -> None:
    tr = trainer(tiny(ema_decay=0.5), steps=4)
    assert tr.eval_model is tr.ema.module and trainer(tiny()).eval_model is not None
    expected = None
    for _ in range(4):
        tr.step()
        raw = [p.detach().clone() for p in tr.model.parameters()]
        expected = raw if expected is None else [0.5 * e + 0.5 * w for e, w in zip(expected, raw)]
    ema = list(tr.eval_model.parameters())
    assert all(torch.allclose(e, w, atol=1e-7) for e, w in zip(ema, expected))
    assert any(not torch.equal(e, w) for e, w in zip(ema, tr.model.parameters()))


def test_every_knob_on_is_deterministic() -> None:
    cfg = tiny(n_layer=2, optimizer="muon", embed_lr_mult=3.0, logit_softcap=15.0, z_loss=1e-4,
               attn_pattern="SL", attn_window=8, ema_decay=0.9)

    def go() -> list[float]:
        tr = trainer(cfg, steps=5, seed=3)
        losses = [float(tr.step()) for _ in range(5)]
        return losses + [float(p.detach().sum()) for p in tr.eval_model.parameters()]
    assert go() == go()


def test_ema_changes_val_bpb_not_training(track, home, corpus) -> None:
    runs = [run_experiment(track, kw, 0, home=home, data_dir=corpus[0], threads=1)
            for kw in ({}, {"ema_decay": 0.9})]
    assert all(r.status == "ok" for r in runs), [r.error for r in runs]
    plain, ema = (r.metrics for r in runs)
    assert plain.train_loss == ema.train_loss                # the raw weights train the same
    assert plain.val_bpb != ema.val_bpb                      # but the EMA is what is evaluated
    assert runs[1].config["ema_decay"] == 0.9 and "ema_decay" not in runs[0].config
