"""Tracks: what must be equal for two results to be compared, named by a content hash.

A track fixes the data (name + sha256 of the exact bytes), the tokenizer, the evaluation (a fixed
prefix of the held-out split), the budget (training tokens) and the base config. Its id is
`NAME:` + `config_hash` of all of those, so results on different data, tokenizer, evaluation or
budget never share an id. A track whose data is pinned on first fetch (large upstream slices)
gets its id once its bytes are known: `Track.pinned`.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from memory.canonical import config_hash
from node.harness.config import Config
from node.harness.data import HUB, DataSpec
from node.harness.hub import HubFile, HubSource
from node.harness.tokenizer import ALGORITHM


class TokenizerSpec(BaseModel):
    """A byte-level BPE trained on the track's train split (vocab 256 = raw bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(ge=256, le=65536, description="token ids, 256 byte tokens included")
    train_bytes: int | None = Field(None, gt=0, description="train on this prefix (None: all)")
    algorithm: str = Field(ALGORITHM, description="tokenizer algorithm and version")


class EvalSpec(BaseModel):
    """val_bpb over a fixed prefix of the held-out split, cut back to a line end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: Literal["valid"] = "valid"
    prefix_bytes: int = Field(gt=0, description="bytes of the valid split evaluated")


MAX_BUDGET_TOKENS = 10**12         # swarm/commands' options check it too (typos: an extra zero)


class Budget(BaseModel):
    """How much training a run gets: a number of tokens, the same on any hardware."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int = Field(ge=1, le=MAX_BUDGET_TOKENS, description="training tokens per run")


class Track(BaseModel):
    """Everything that must be equal for results to compare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,39}$")
    description: str
    accelerator: Literal["cpu", "cuda"] = Field(description="the hardware the budget is sized for")
    data: DataSpec
    tokenizer: TokenizerSpec
    eval: EvalSpec
    budget: Budget
    base: Config

    @property
    def id(self) -> str:
        """`name:hash` over data, tokenizer, eval, budget and base config (never description)."""
        if not self.data.pinned:
            raise ValueError(f"track {self.name} has no id until its data is pinned")
        content = self.model_dump(exclude={"description", "name", "accelerator"})
        return f"{self.name}:{config_hash(content)}"

    def with_budget(self, tokens: int | None) -> Track:
        """This track with another token budget (a different track id)."""
        if tokens is None or tokens == self.budget.tokens:
            return self
        return self.model_copy(update={"budget": Budget(tokens=tokens)})

    def pinned(self, train_sha256: str, valid_sha256: str) -> Track:
        """This track with its data hashes filled in (a no-op for a pinned track)."""
        if self.data.pinned:
            return self
        data = self.data.model_copy(update={"train_sha256": train_sha256,
                                            "valid_sha256": valid_sha256})
        return self.model_copy(update={"data": data})


# The lower-cased TinyStories slice in ../shared/data/tinystories (see its SOURCES.md).
TINYSTORIES_4M = DataSpec(
    name="tinystories-lower-4m",
    train_sha256="30c6f2fac206d82e76b80dbbede28f6b5415c8d8571dde6bfd8226ab41744a2c",
    valid_sha256="6b850a5cde8edad1a60e823835b6785af8565130ad79288ab580bcb0e0778fae",
    train_bytes=4_192_330, valid_bytes=794_375,
    train_url=f"{HUB}/TinyStories-train.txt", valid_url=f"{HUB}/TinyStories-valid.txt",
)
# The GPU track's data comes from the dataset's parquet rows at a pinned commit. Only the first
# train shard is pinned (its sha256 is known), so the train split is the first 400 MB of its
# prepared rows (the shard holds 529,930 stories, ~480 MB). The prepared bytes have no copy here to
# hash, so the split hashes are pinned on first fetch.
TINYSTORIES_HUB = HubSource(
    repo="roneneldan/TinyStories", revision="f54c09fd23315a6f9c86f9dc80f725de7d8f9c64",
    # max_bytes: what a peer offering the file may claim (the shards are ~249 MB and ~10 MB)
    train=(HubFile(path="data/train-00000-of-00004-2d5a1467fff1081b.parquet",
                   sha256="77cf780cebe52b6e83e3a2ac84bc56d8059363113e41d17a023f1d8b2ed0fc0b",
                   max_bytes=256 << 20),),
    valid=(HubFile(path="data/validation-00000-of-00001-869c898b519ad725.parquet",
                   sha256="33406a6206554cfc279c29c11f4df51528af487aa1a602b075566fc83c49dcab",
                   max_bytes=32 << 20),),
)
TINYSTORIES_400M = DataSpec(
    name="tinystories-lower-400m", train_sha256=None, valid_sha256=None,
    train_bytes=400_000_000, valid_bytes=8_000_000, recipe=TINYSTORIES_HUB.recipe,
    source=TINYSTORIES_HUB)

TRACKS: dict[str, Track] = {t.name: t for t in (
    Track(name="tinystories-cpu",
          description="0.87M-param GPT, BPE 2048, 2.5M tokens: about 5 minutes on a 2-core laptop",
          accelerator="cpu", data=TINYSTORIES_4M,
          tokenizer=TokenizerSpec(vocab_size=2048), eval=EvalSpec(prefix_bytes=262_144),
          budget=Budget(tokens=2_500_000), base=Config()),
    Track(name="tinystories-gpu",
          description="~27M-param GPT, BPE 4096, 400M tokens: about 5 minutes on one current GPU",
          accelerator="cuda", data=TINYSTORIES_400M,
          tokenizer=TokenizerSpec(vocab_size=4096, train_bytes=50_000_000),
          eval=EvalSpec(prefix_bytes=4_000_000), budget=Budget(tokens=400_000_000),
          base=Config(n_layer=8, n_embd=512, n_head=8, activation="swiglu", norm="rmsnorm",
                      pos_encoding="rope", qk_norm=True, lr=2e-3, schedule="wsd",
                      warmup_frac=0.02, decay_frac=0.3, min_lr_frac=0.0, batch_size=128,
                      seq_len=512, weight_decay=0.1)),
)}


def get_track(name_or_id: str) -> Track:
    """A shipped track by name (or by its id); raise KeyError with the known names."""
    if name_or_id in TRACKS:
        return TRACKS[name_or_id]
    for track in TRACKS.values():
        if track.data.pinned and track.id == name_or_id:
            return track
    raise KeyError(f"unknown track {name_or_id!r} (tracks: {', '.join(TRACKS)})")
