"""val_bpb on hand-computed cases, the tokenizer, the model's variants and the teacher."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from node.harness.config import Config
from node.harness.evaluate import bits_per_byte, evaluate_bpb
from node.harness.model import GPT, RMSNorm
from node.harness.prepare import eval_text
from node.harness.tokenizer import Tokenizer, train_bpe
from node.harness.train import Trainer, bigram_teacher, lr_multiplier


class Uniform(torch.nn.Module):
    """A model that predicts every token with probability 1/vocab."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab)


def test_bits_per_byte_definition() -> None:
    assert bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        bits_per_byte(1.0, 0)


@pytest.mark.parametrize("seq_len", [1, 2, 3, 16])
def test_val_bpb_hand_computed(seq_len: int) -> None:
    # vocab 4, token byte lengths 1,2,1,3; targets are tokens[1:] = 1,2,3,1 -> 2+1+3+2 = 8 bytes.
    # uniform model: each target costs ln 4 nats = 2 bits -> 4 * 2 bits / 8 bytes = 1.0 bpb,
    # whatever the window length (every target is predicted exactly once).
    tokens = np.array([0, 1, 2, 3, 1])
    got = evaluate_bpb(Uniform(4), tokens, np.array([1, 2, 1, 3]), seq_len, 2, torch.device("cpu"))
    assert got == pytest.approx(1.0, abs=1e-6)


def test_eval_prefix_is_cut_at_a_line_end() -> None:
    assert eval_text(b"ab\ncd\nef", 7) == b"ab\ncd\n"
    assert eval_text(b"ab\ncd\n", 100) == b"ab\ncd\n"


def test_bpe_is_deterministic_and_round_trips() -> None:
    text = "once upon a time, there was a little dog. the dog ran to the park!\n" * 50 + "été ünï\n"
    a, b = train_bpe(text, 280), train_bpe(text, 280)
    assert a.merges == b.merges and a.vocab_size == 280
    ids = a.encode(text)
    assert a.decode(ids) == text and len(ids) < len(text.encode())
    assert int(a.token_bytes()[ids].sum()) == len(text.encode())


def test_bpe_save_load_and_bytes_mode(tmp_path) -> None:
    tok = train_bpe("hello hello world\n" * 20, 270)
    tok.save(tmp_path / "t.json")
    again = Tokenizer.load(tmp_path / "t.json")
    assert again.merges == tok.merges
    raw = train_bpe("anything at all", 256)
    assert raw.vocab_size == 256 and list(raw.encode("hi")) == [104, 105]


@pytest.mark.parametrize("kw", [dict(), dict(activation="swiglu", norm="rmsnorm", pos_encoding="rope",
                                              qk_norm=True, tie_embeddings=False),
                                dict(activation="relu2", dropout=0.1, init_scale=2.0)])
def test_model_variants_train(kw: dict) -> None:
    cfg = Config(n_layer=1, n_embd=32, n_head=2, batch_size=2, seq_len=16, **kw)
    tokens = np.random.default_rng(0).integers(0, 64, 2000).astype(np.uint16)
    tr = Trainer(cfg, 64, tokens, 0, torch.device("cpu"), "fp32", False, total_steps=3)
    losses = [float(tr.step()) for _ in range(3)]
    assert all(math.isfinite(x) for x in losses)
    assert GPT(cfg, 64)(torch.zeros(1, 5, dtype=torch.long)).shape == (1, 5, 64)


def test_ngram_teacher_distillation() -> None:
    tokens = np.array([0, 1, 2] * 300, dtype=np.uint16)
    teacher = bigram_teacher(tokens, 4)
    assert torch.allclose(teacher.sum(1), torch.ones(4))
    assert teacher[0, 1] > 0.9 and teacher[2, 0] > 0.9    # 0->1 and 2->0 always follow
    cfg = Config(n_layer=1, n_embd=16, n_head=2, batch_size=2, seq_len=8, ngram_steps=5)
    tr = Trainer(cfg, 4, tokens, 0, torch.device("cpu"), "fp32", False, total_steps=6)
    assert tr._teacher_weight() == pytest.approx(0.5)
    for _ in range(6):
        assert math.isfinite(float(tr.step()))
    assert tr._teacher_weight() == 0.0


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "linear"])
def test_schedules(schedule: str) -> None:
    cfg = Config(schedule=schedule, warmup_frac=0.1, decay_frac=0.2, min_lr_frac=0.1)
    assert lr_multiplier(cfg, 0.05) == pytest.approx(0.5, rel=1e-6)
    assert lr_multiplier(cfg, 0.1) == pytest.approx(1.0)
    assert lr_multiplier(cfg, 1.0) == pytest.approx(0.1)
    if schedule == "wsd":
        assert lr_multiplier(cfg, 0.79) == 1.0


def test_rmsnorm_takes_cpu_autocast_bf16_silently_and_with_the_same_numbers() -> None:
    """QK-norm under CPU bf16 autocast: no dtype-mismatch warning (torch's unfused fallback), and
    the same outputs and gradients as that fallback, so same-seed runs keep their numbers."""
    cfg = Config(norm="rmsnorm", qk_norm=True, pos_encoding="rope", n_layer=1, seq_len=16)
    torch.manual_seed(0)
    model, idx = GPT(cfg, 64), torch.randint(0, 64, (2, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # the mismatch warning fails the test
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(idx).float().sum().backward()
    x = torch.randn(2, 4, 16, 8).to(torch.bfloat16)
    mine, theirs = RMSNorm(8, eps=1e-6), torch.nn.RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        mine.weight.copy_(torch.linspace(0.5, 1.5, 8))
        theirs.weight.copy_(mine.weight)
    grads = []
    for norm in (mine, theirs):
        xin = x.clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")             # the fallback's warning, expected here
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = norm(xin)
        (out.float() * torch.linspace(-1, 1, 8)).sum().backward()
        grads.append((out, xin.grad, norm.weight.grad))
    assert all(torch.equal(a, b) for a, b in zip(*grads))
