"""The parts of a run a person reads: the thinned loss curve and the offline quality measures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from node.harness import quality
from node.harness.curve import LossCurve
from node.harness.runner import _Watch
from node.harness.tokenizer import train_bpe


def test_short_curves_keep_every_reading() -> None:
    curve = LossCurve()
    for step in range(1, 11):
        curve.add(step, 10.0 / step)
    curve.add(11, float("nan"))                     # skipped: records hold finite floats
    assert [p["step"] for p in curve.points()] == list(range(1, 11))


@pytest.mark.parametrize("n", [65, 100, 1000, 12_345])
def test_long_curves_are_thinned_evenly_with_bucket_means(n: int) -> None:
    curve = LossCurve()
    for step in range(1, n + 1):
        curve.add(step, float(step))
    points = curve.points()
    assert 32 < len(points) <= 64 and points[-1]["step"] == n
    steps = [p["step"] for p in points]
    gaps = {b - a for a, b in zip(steps, steps[1:-1])}
    assert len(gaps) == 1                            # evenly spaced (the last may be partial)
    gap = gaps.pop()
    first = points[0]
    assert first["step"] == gap and first["train_loss"] == pytest.approx((1 + gap) / 2)


def test_a_killed_runs_curve_comes_from_its_progress_lines() -> None:
    watch = _Watch(None)
    for step in (5, 10, 15):
        watch.line(json.dumps({"event": "progress", "step": step, "loss": 4.0}).encode())
    watch.line(b'{"event": "progress", "step": "x", "loss": 1}')       # ignored, not a crash
    assert [p["step"] for p in watch.curve.points()] == [5, 10, 15]


def test_quality_measures() -> None:
    loop = "the dog ran to the park. " * 6
    good = "lily saw a big red ball and she was very happy!"
    vocab = set(quality.words(good + loop))
    q = quality.measure([loop, good + " zorbly"], vocab)
    assert q["repetition"] == pytest.approx((1 - 6 / 33) / 2, abs=1e-6)     # the loop repeats; `good` does not
    assert 0 < q["distinct_1"] < 1 and 0 < q["distinct_2"] < 1
    assert q["ends_sentence"] == 0.5                                  # `zorbly` ends mid-sentence
    assert q["unknown_words"] == pytest.approx(1 / (36 + 12), abs=1e-6)
    assert quality.measure([], vocab) == {}
    assert quality.SENTENCE_END.search('she said, "hi."') and not quality.SENTENCE_END.search("and")


def test_a_measure_with_nothing_to_measure_is_left_out_not_zero() -> None:
    """A model that writes nothing (a newline at once after every prompt) scored the best
    repetition (0) and unknown-word rate (0) there are, and the meta-analyst fitted them so."""
    vocab = {"the", "dog", "ran"}
    assert quality.measure(["", "", "", ""], vocab) == {"ends_sentence": 0.0}
    short = quality.measure(["the dog.", "", "", "ran"], vocab)     # words, but no 4-word run
    assert "repetition" not in short and short["unknown_words"] == 0.0
    assert short["distinct_1"] == 1.0 and short["ends_sentence"] == 0.25
    assert quality.measure(["the"] * 4, vocab)["distinct_1"] == 0.25 and \
        "distinct_2" not in quality.measure(["the"] * 4, vocab)


def test_a_sample_that_ends_its_paragraph_where_its_prompt_ends_a_sentence_ends_one() -> None:
    """"the dog was very hungry." and a newline at once: the paragraph ended after a whole
    sentence (measured on the continuation alone it read as stopping mid-sentence)."""
    prompts = ["the dog was very hungry.", "once upon a time,"]
    assert quality.measure(["", ""], set(), prompts)["ends_sentence"] == 0.5
    assert quality.measure([" and", " there was a dog."], set(), prompts)["ends_sentence"] == 0.5


def test_training_vocabulary_is_cached_beside_the_tokens(tmp_path) -> None:
    text = "once upon a time there was a girl named lily. she liked the sun.\n" * 50
    tok = train_bpe(text, 300)
    path = tmp_path / "train.npy"
    np.save(path, tok.encode(text))
    vocab = quality._vocabulary(np.load(path), tok, chunk=7)        # blocks cut mid-word
    assert vocab == set(quality.words(text))
    assert quality.training_vocabulary(path, tok) == vocab
    assert (tmp_path / "train.words.txt").exists()


def test_batched_sampling_reads_each_prompt_at_its_own_last_token() -> None:
    import torch

    from node.harness.model import GPT
    from node.harness.samples import _batch
    from tests.harness.conftest import TINY
    torch.manual_seed(0)
    model = GPT(TINY, 300).eval()
    short, long = [1, 2, 3], [4, 5, 6, 7, 8, 9]
    with torch.no_grad():
        both = model(_batch([short, long], torch.device("cpu")))
        for row, seq in enumerate((short, long)):
            alone = model(torch.tensor([seq]))[0, -1]
            assert torch.allclose(both[row, len(seq) - 1], alone, atol=1e-5)


def test_the_largest_run_record_the_harness_can_write_fits_the_size_limit() -> None:
    """Every sample at MAX_TEXT_CHARS of 4-byte characters, every text field the harness fills
    at its bound, the GPU track's config, a full curve: under half the 64 KiB record limit, so
    an `ok` run's samples can never make its record refused as oversize."""
    from memory import codec, records as R, synthetic
    from memory.canonical import config_hash
    from memory.crypto import Keypair
    from node.harness.prompts import MAX_TEXT_CHARS, PROMPTS
    from node.harness.tracks import get_track

    wide = "\U0001d54f"                               # 4 bytes in UTF-8
    config = get_track("tinystories-gpu").base.model_dump()
    body = synthetic.run_body("t" * 80, config, 1, 1.0).model_dump() | {
        "config_hash": config_hash(config), "error": None,
        "hardware": {"accelerator": "cuda", "device_name": wide * 400, "cores": 9,
                     "memory_gb": 1.0, "platform": wide * 400},
        "software": {k: wide * 400 for k in ("harness", "torch", "python", "precision", "compile",
                                             "threads", "compile_error")},
        "curve": [{"step": 10**9 + i, "train_loss": 1 / 3} for i in range(R.MAX_CURVE_POINTS)],
        "samples": [{"prompt": p, "text": wide * MAX_TEXT_CHARS} for p in PROMPTS],
        "quality": quality.measure(["a b c d e."] * len(PROMPTS), set())}
    record = codec.sign(Keypair(b"\1" * 32), "run", 1, R.RunBody.model_validate(body))
    assert len(PROMPTS) <= R.MAX_SAMPLES and MAX_TEXT_CHARS <= 1200      # the schema's bounds
    assert len(record.raw) < codec.MAX_RECORD_BYTES // 2


class _Says:
    """A "model" whose every next token is `token`: the sampler's stopping is what is tested."""

    def __init__(self, token: int, vocab: int) -> None:
        self.token, self.vocab, self.training = token, vocab, False

    def __call__(self, idx):
        import torch
        logits = torch.full((*idx.shape, self.vocab), -1e4)
        logits[..., self.token] = 1e4
        return logits

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self


def test_a_sample_cut_at_the_length_limit_does_not_end_a_sentence_even_after_a_full_stop() -> None:
    """A model that writes ". . ." until the 120-token limit cut it: its samples end in `.` and
    counted as having finished a sentence (ends_sentence 1.0); it never ended a paragraph."""
    import torch

    from node.harness.samples import _finish, write_samples
    text = "once upon a time there was a girl. she liked the sun.\n" * 20
    tok = train_bpe(text, 300)
    dot = int(tok.encode(".")[-1])
    samples, ended = write_samples(_Says(dot, 300), tok, 64, torch.device("cpu"))
    assert all(s["text"].endswith(".") for s in samples) and ended == [False] * len(samples)
    texts, prompts = [s["text"] for s in samples], [s["prompt"] for s in samples]
    assert quality.measure(texts, set(), prompts, ended)["ends_sentence"] == 0.0
    newline = int(tok.encode("\n")[-1])
    samples, ended = write_samples(_Says(newline, 300), tok, 64, torch.device("cpu"))
    assert ended == [True] * len(samples) and all(s["text"] == "" for s in samples)
    assert _finish("she ran.\nand on") == ("she ran.", True)
    assert _finish("x" * 600 + ".\n") == ("x" * 600, False)          # cut at 600 characters
