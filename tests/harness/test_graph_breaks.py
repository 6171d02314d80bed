"""`torch.compile` sees the GPT whole: no graph break (each costs a GPU run kernel fusion and a
round trip through Python, so MFU), and no recompile from one training step to the next. Dynamo
finds both while tracing, before any backend compiles: the `eager` backend keeps this to seconds
on a CPU, where inductor would take tens."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo

from node.harness.config import build_config
from node.harness.model import GPT
from node.harness.tracks import get_track
from node.harness.train import Trainer, make_autocast

GPU = get_track("tinystories-gpu")
SMALL = dict(n_layer=2, n_embd=64, n_head=4, seq_len=64, batch_size=2)
VOCAB = 256
TOKENS = np.random.default_rng(0).integers(0, VOCAB, 5000).astype(np.uint16)


def test_a_compiled_training_step_has_one_graph_and_no_recompile() -> None:
    """The GPU track's model in bf16 (as a CUDA run steps it): the whole forward is one graph
    (fullgraph raises at a break) and steps 2 and 3 reuse step 1's (a recompile raises)."""
    cfg = build_config(GPU.base.model_dump(), SMALL)
    tr = Trainer(cfg, VOCAB, TOKENS, seed=0, device=torch.device("cpu"), precision="bf16",
                 compile_model=False, total_steps=3)
    torch._dynamo.reset()
    tr.forward = torch.compile(tr.model, backend="eager", fullgraph=True, dynamic=False)
    losses = [float(tr.step())]
    with torch._dynamo.config.patch(error_on_recompile=True):
        losses += [float(tr.step()) for _ in range(2)]
    assert np.isfinite(losses).all()


# each knob that changes the model, checked one at a time when written (docs/HARNESS.md, "MFU:
# what the numerator counts"); grouped here, as one explain costs ~1 s on a loaded machine
@pytest.mark.parametrize("knobs,precision", [
    (dict(tie_embeddings=False, activation="gelu", pos_encoding="learned", qk_norm=False,
          norm="layernorm"), "bf16"),
    (dict(activation="relu2", attn_pattern="SL", attn_window=16, logit_softcap=15.0,
          dropout=0.1), "bf16"),
    ({}, "fp32"),              # RMSNorm's own kernel, as under CUDA's autocast
], ids=["untied,gelu,learned,layernorm", "relu2,window,softcap,dropout", "fp32"])
def test_every_model_knob_keeps_the_forward_one_graph(knobs: dict, precision: str) -> None:
    cfg = build_config(GPU.base.model_dump(), {**SMALL, **knobs})
    model = GPT(cfg, VOCAB)
    x = torch.randint(0, VOCAB, (2, cfg.seq_len))
    torch._dynamo.reset()
    with make_autocast(torch.device("cpu"), precision):
        found = torch._dynamo.explain(model)(x)
    assert found.graph_break_count == 0 and found.graph_count == 1, found.break_reasons
