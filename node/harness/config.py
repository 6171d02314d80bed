"""The experiment config: a flat, typed set of knobs that fixes a model's shape and its training.

Experiments are diffs over a track's base config (`--set knob=value`). Every knob is range-checked
here; checks that need the track or the node (memory, budget) live in `feasibility.py`.
`memory.canonical.config_hash(cfg.model_dump())` names a config: ints stay ints, floats floats.
"""
from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError,
                      field_validator, model_serializer, model_validator)

from memory.canonical import config_hash


class Refused(ValueError):
    """A spec that will not be run; the message is the one-line reason."""


# Field metadata the search helper reads (through `knob_table`), kept in `json_schema_extra`:
#   "log": True       -> search the range on a log scale
#   "choices": [...]  -> suggested values of a free-form (pattern-checked) string knob
#   "opt_in": True    -> an experiment knob: left out of the dump (so out of every hash) while it
#                        holds its default, so adding it changed no base config and no track id
LOG = {"log": True}
OPT_IN = {"opt_in": True}


class Config(BaseModel):
    """The knobs of one run. Defaults are the `tinystories-cpu` base config."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # ---- model shape
    n_layer: int = Field(3, ge=1, le=48, description="transformer blocks (depth)")
    n_embd: int = Field(128, ge=16, le=4096, description="residual width")
    n_head: int = Field(4, ge=1, le=64, description="attention heads (n_embd must divide evenly)")
    mlp_ratio: float = Field(4.0, ge=1.0, le=8.0, description="MLP hidden width / n_embd")
    activation: Literal["gelu", "relu2", "swiglu"] = Field("gelu", description="MLP non-linearity")
    norm: Literal["layernorm", "rmsnorm"] = Field("layernorm", description="normalisation layer")
    pos_encoding: Literal["learned", "rope"] = Field("learned", description="positional encoding")
    tie_embeddings: bool = Field(True, description="share the input embedding and the output head")
    dropout: float = Field(0.0, ge=0.0, le=0.5, description="dropout after attention and MLP")
    qk_norm: bool = Field(False, description="normalise queries and keys per head")
    init_scale: float = Field(1.0, ge=0.1, le=10.0, description="multiplier on the 0.02 init std",
                              json_schema_extra=LOG)
    # ---- optimisation
    lr: float = Field(3e-3, ge=1e-5, le=1.0, description="peak learning rate (AdamW)",
                      json_schema_extra=LOG)
    schedule: Literal["cosine", "wsd", "linear"] = Field(
        "cosine", description="lr after warmup: cosine, warmup-stable-decay, or linear decay")
    warmup_frac: float = Field(0.05, ge=0.0, le=0.5, description="share of the budget spent warming up")
    decay_frac: float = Field(0.2, ge=0.0, le=1.0, description="share of the budget decaying (wsd)")
    min_lr_frac: float = Field(0.1, ge=0.0, le=1.0, description="final lr as a share of the peak")
    weight_decay: float = Field(0.1, ge=0.0, le=1.0, description="AdamW decoupled weight decay")
    beta1: float = Field(0.9, ge=0.0, le=0.999, description="AdamW beta1")
    beta2: float = Field(0.95, ge=0.0, le=0.9999, description="AdamW beta2")
    grad_clip: float = Field(1.0, ge=0.0, le=100.0, description="max grad norm (0 = off)")
    batch_size: int = Field(8, ge=1, le=4096, description="sequences per step")
    seq_len: int = Field(128, ge=8, le=8192, description="tokens per sequence (context)")
    # ---- n-gram teacher (distillation toward a bigram model early in training)
    ngram_steps: int = Field(0, ge=0, le=1_000_000, description="steps distilled toward a bigram teacher")
    ngram_weight: float = Field(0.5, ge=0.0, le=1.0, description="teacher's loss weight at step 0")
    # ---- experiment knobs (techniques that won elsewhere); each off by default and opt-in
    optimizer: Literal["adamw", "muon"] = Field(
        "adamw", description="muon: Muon for the blocks' matrices, AdamW for the rest",
        json_schema_extra=OPT_IN)
    muon_lr: float = Field(0.02, ge=1e-4, le=1.0, description="peak Muon learning rate",
                           json_schema_extra={**OPT_IN, **LOG})
    embed_lr_mult: float = Field(1.0, ge=0.01, le=100.0,
                                 description="embedding learning rate / lr (1 = the same)",
                                 json_schema_extra={**OPT_IN, **LOG})
    logit_softcap: float = Field(0.0, ge=0.0, le=100.0,
                                 description="cap * tanh(logits / cap) on the output (0 = off)",
                                 json_schema_extra=OPT_IN)
    z_loss: float = Field(0.0, ge=0.0, le=0.1,
                          description="weight of mean logsumexp(logits)^2 (0 = off)",
                          json_schema_extra=OPT_IN)
    attn_pattern: str = Field("L", pattern=r"^[SL]{1,48}$",
                              description="per-layer attention, tiled: S sliding window, L full",
                              json_schema_extra={**OPT_IN, "choices": ["L", "SL", "SSL", "SSSL"]})
    attn_window: int = Field(64, ge=4, le=8192, description="tokens an S layer attends to",
                             json_schema_extra={**OPT_IN, **LOG})
    ema_decay: float = Field(0.0, ge=0.0, le=0.9999,
                             description="evaluate an EMA of the weights with this decay (0 = off)",
                             json_schema_extra=OPT_IN)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        # pydantic reads true as 1: a record or an agent's answer could run a config under
        # another hash than the same config written with numbers
        for name, value in (data.items() if isinstance(data, Mapping) else ()):
            field = cls.model_fields.get(name)
            if isinstance(value, bool) and field is not None and field.annotation is not bool:
                raise ValueError(f"{name}: expected a number, got {str(value).lower()}")
        return data

    @field_validator("*", mode="after")
    @classmethod
    def _no_minus_zero(cls, value: Any) -> Any:
        # -0.0 trains as 0.0 but hashes otherwise: one run under two config hashes
        return value + 0.0 if isinstance(value, float) else value

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.pos_encoding == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("rope needs an even head size (n_embd / n_head)")
        if self.schedule == "wsd" and self.warmup_frac + self.decay_frac > 1.0:
            raise ValueError("warmup_frac + decay_frac must be <= 1 for wsd")
        if any(self.layer_windows()) and self.attn_window >= self.seq_len:
            raise ValueError(f"attn_window ({self.attn_window}) must be below seq_len "
                             f"({self.seq_len}) for sliding-window (S) layers")
        return self

    @model_serializer(mode="wrap")
    def _omit_opt_in_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Opt-in knobs at their default are left out: the dump (and so every config hash and track
        # id) is exactly what it was before the knob existed. Validation fills them back in.
        data = handler(self)
        for name in OPT_IN_KNOBS:
            if name in data and data[name] == Config.model_fields[name].default:
                del data[name]
        return data

    def layer_windows(self) -> list[int | None]:
        """Each layer's attention window: `attn_window` for S, None (full) for L; the pattern is
        tiled over the layers and the last layer is always full (as in nanochat's SSSL)."""
        tiled = (self.attn_pattern * self.n_layer)[: self.n_layer - 1] + "L"
        return [self.attn_window if kind == "S" else None for kind in tiled]

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.n_embd // self.n_head

    @property
    def tokens_per_step(self) -> int:
        """Training tokens consumed by one optimiser step."""
        return self.batch_size * self.seq_len

    def hash(self) -> str:
        """The config's name across the project: `memory.canonical.config_hash` of its dump."""
        return config_hash(self.model_dump())


KNOBS: tuple[str, ...] = tuple(Config.model_fields)
OPT_IN_KNOBS: tuple[str, ...] = tuple(
    name for name, f in Config.model_fields.items() if (f.json_schema_extra or {}).get("opt_in"))


def _error_line(exc: ValidationError) -> str:
    """One line out of pydantic's multi-line report: `knob: what is wrong`."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def build_config(base: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Config:
    """The base config with `overrides` applied; raise `Refused` with a one-line reason."""
    merged = dict(base)
    for knob, value in (overrides or {}).items():
        if knob not in Config.model_fields:
            raise Refused(f"unknown knob {knob!r} (knobs: {', '.join(KNOBS)})")
        merged[knob] = value
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise Refused(_error_line(exc)) from None


def _parse_value(knob: str, text: str) -> Any:
    annotation = Config.model_fields[knob].annotation
    if annotation is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise Refused(f"{knob}: expected true or false, got {text!r}")
    if annotation in (int, float):
        try:
            value = annotation(text) if annotation is float else int(text)
        except ValueError:
            kind = "an integer" if annotation is int else "a number"
            raise Refused(f"{knob}: expected {kind}, got {text!r}") from None
        if not math.isfinite(value):        # 1e400 is inf: no config hash, no bound refuses it
            raise Refused(f"{knob}: expected a finite number, got {text!r}")
        return value
    return text.strip()


def parse_sets(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn `["lr=1e-3", "norm=rmsnorm"]` into typed overrides; raise `Refused` on bad input."""
    out: dict[str, Any] = {}
    for item in items:
        knob, sep, text = item.partition("=")
        knob = knob.strip()
        if not sep or not knob:
            raise Refused(f"--set expects knob=value, got {item!r}")
        if knob not in Config.model_fields:
            raise Refused(f"unknown knob {knob!r} (knobs: {', '.join(KNOBS)})")
        out[knob] = _parse_value(knob, text)
    return out


def _choices(field: Any) -> list[Any] | None:
    if typing.get_origin(field.annotation) is Literal:
        return list(typing.get_args(field.annotation))
    if field.annotation is bool:
        return [False, True]
    return (field.json_schema_extra or {}).get("choices")


def knob_table() -> list[dict[str, Any]]:
    """Every knob with its type, range, default and description (docs, `swarm tracks`, search):
    `min`/`max` (None for non-numbers), `log` (search on a log scale), `choices` (the values of
    a choice or bool knob, suggestions for a pattern string), `opt_in` (out of dumps at default)."""
    rows = []
    for name, field in Config.model_fields.items():
        lo = hi = None
        for meta in field.metadata:
            lo = getattr(meta, "ge", lo)
            hi = getattr(meta, "le", hi)
        kind = getattr(field.annotation, "__name__", str(field.annotation))
        extra = field.json_schema_extra or {}
        rows.append({"knob": name, "type": kind, "min": lo, "max": hi,
                     "default": field.default, "description": field.description,
                     "log": bool(extra.get("log")), "choices": _choices(field),
                     "opt_in": bool(extra.get("opt_in"))})
    return rows
