"""Shared fixtures: a tiny track over a small corpus (a slice of ../shared/data/tinystories, or text
the tests write when that folder is absent), prepared once per session."""
from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from node.harness.config import Config
from node.harness.data import DataSpec, shared_data_dir
from node.harness.prepare import Prepared, prepare
from node.harness.tracks import Budget, EvalSpec, TokenizerSpec, Track

TINY = Config(n_layer=1, n_embd=32, n_head=2, batch_size=4, seq_len=32, lr=3e-3)
WORDS = ("the a little big dog cat girl boy ran saw happy sad tree park ball home mom dad "
         "played found wanted said one day once upon time there was named lily tim sun").split()


def _slice(text: bytes, size: int) -> bytes:
    head = text[:size]
    return head[: head.rfind(b"\n") + 1]


def _synthetic(n_lines: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + "." for _ in range(n_lines)]
    return ("\n".join(lines) + "\n").encode()


def write_corpus(folder: Path) -> dict[str, bytes]:
    """train.txt (~120 KB) and valid.txt (~16 KB) in `folder`; returns their bytes."""
    shared = shared_data_dir()
    if shared is not None:
        data = {"train": _slice((shared / "train.txt").read_bytes(), 120_000),
                "valid": _slice((shared / "valid.txt").read_bytes(), 16_000)}
    else:
        data = {"train": _synthetic(2500, 1), "valid": _synthetic(330, 2)}
    folder.mkdir(parents=True, exist_ok=True)
    for split, blob in data.items():
        (folder / f"{split}.txt").write_bytes(blob)
    return data


def tiny_track(data: dict[str, bytes], base: Config = TINY, budget: int = 4096,
               url: str = "http://127.0.0.1:9/none") -> Track:
    """A track over `data` with a 300-token BPE and a few-thousand-token budget."""
    spec = DataSpec(name="test-corpus", train_sha256=hashlib.sha256(data["train"]).hexdigest(),
                    valid_sha256=hashlib.sha256(data["valid"]).hexdigest(),
                    train_bytes=len(data["train"]), valid_bytes=len(data["valid"]),
                    train_url=url, valid_url=url)
    return Track(name="test", description="tests", accelerator="cpu", data=spec,
                 tokenizer=TokenizerSpec(vocab_size=300), eval=EvalSpec(prefix_bytes=6000),
                 budget=Budget(tokens=budget), base=base)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def track(corpus: tuple[Path, dict[str, bytes]]) -> Track:
    return tiny_track(corpus[1])


@pytest.fixture(scope="session")
def prepared(track: Track, home: Path, corpus: tuple[Path, dict[str, bytes]]) -> Prepared:
    return prepare(track, home, corpus[0])
