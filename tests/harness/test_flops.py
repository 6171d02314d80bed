"""MFU's numerator, `flops_per_token`, against the FLOPs PyTorch counts in a training step
(forward, loss, backward; `swarm.bench.flops`), for the GPU track's model and each knob that
changes its matmuls, and for the bench's textbook loop. Counted on meta tensors: no arithmetic,
so the sizes cost no time; the bench sizes' ratios are in docs/HARNESS.md ("MFU")."""
from __future__ import annotations

import pytest
import torch

from node.harness.config import build_config
from node.harness.model import attention_flops_per_token
from node.harness.tracks import get_track
from swarm.bench.flops import harness_counted, textbook_counted
from swarm.bench.harness import _variants, synthetic_tokens

GPU = get_track("tinystories-gpu")
SMALL = dict(n_layer=3, n_embd=128, n_head=4, seq_len=64)
# norm gains are parameters but no matmul: 0.1% or less of the bench sizes' FLOPs, ~0.3% here
NORM_GAINS = 0.005


# each knob that changes a matmul or the attention (one at a time when written: docs/HARNESS.md
# "MFU"), grouped here to keep the file to seconds
@pytest.mark.parametrize("knobs", [
    {}, dict(tie_embeddings=False, pos_encoding="learned", activation="gelu"),
    dict(activation="relu2", n_head=2, mlp_ratio=3.0),
    dict(qk_norm=False, norm="layernorm", logit_softcap=15.0, n_head=8, seq_len=128),
], ids=lambda k: ",".join(f"{n}={v}" for n, v in k.items()) or "base")
def test_the_formula_is_the_counted_flops(knobs: dict) -> None:
    cfg = build_config(GPU.base.model_dump(), {**SMALL, **knobs})
    c = harness_counted(cfg, GPU.tokenizer.vocab_size)
    assert c.matmul == pytest.approx(c.estimated_matmul, rel=NORM_GAINS)
    assert c.matmul <= c.estimated_matmul              # the norm gains' excess, never a shortfall
    assert c.attention == c.estimated_attention          # full layers: PaLM's T x T, as counted
    assert c.ratio == pytest.approx(1, rel=NORM_GAINS)


def test_the_gpu_tracks_base_config_counts_as_estimated() -> None:
    c = harness_counted(GPU.base, GPU.tokenizer.vocab_size)
    assert c.ratio == pytest.approx(1, abs=1e-3) and c.attention == c.estimated_attention


@pytest.mark.parametrize("pattern", ["SL", "SSSL"])
def test_a_window_counts_its_span_not_the_masked_scores(pattern: str) -> None:
    """SDPA given a band mask computes all T x T scores, as the counter sees; MFU counts an S
    layer's window (PaLM's count of what the model needs), so such a config reads a lower MFU for
    the scores its kernel computes and masks away."""
    cfg = build_config(GPU.base.model_dump(), {**SMALL, "attn_pattern": pattern, "attn_window": 16})
    c = harness_counted(cfg, GPU.tokenizer.vocab_size)
    assert c.matmul == pytest.approx(c.estimated_matmul, rel=NORM_GAINS)
    full = build_config(GPU.base.model_dump(), SMALL)
    assert c.attention == attention_flops_per_token(full) > c.estimated_attention
    windows = cfg.layer_windows()
    assert c.estimated_attention == 12 * cfg.n_embd * sum(w or cfg.seq_len for w in windows)


def test_the_bench_divides_each_loop_by_its_own_models_flops() -> None:
    """The textbook loop's numerator is its own model's: under the GPU track's config (rope) the
    formula counted the textbook's learned positions as a matmul (+0.8% at the base config, +5.5%
    at this long context)."""
    shape = dict(n_layer=2, n_embd=128, n_head=4, seq_len=512, batch_size=1)
    variants, cfg = _variants(shape, synthetic_tokens(GPU.tokenizer.vocab_size, 5000),
                              GPU.tokenizer.vocab_size, GPU.name, torch.device("cpu"))
    ref = textbook_counted(cfg, GPU.tokenizer.vocab_size)
    assert ref.attention == ref.estimated_attention
    # its Linear and LayerNorm biases are parameters but no matmul: 13 / (12 x 128) here
    assert variants["textbook"].flops_per_token == pytest.approx(ref.total, rel=0.01)
    own = harness_counted(cfg, GPU.tokenizer.vocab_size)
    assert variants["harness"].flops_per_token == pytest.approx(own.total, rel=NORM_GAINS)
