"""What the parent hands a run's subprocess (one JSON document on stdin), and what comes back."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memory.records import CurvePoint, Hardware, RunBody, RunMetrics, Sample
from node.harness.config import Config
from node.harness.tracks import Track

Status = Literal["ok", "crash", "nan", "timeout", "refused"]
# Training seconds between a run's checkpoints: at most this much training is lost to a hard kill
# (kill -9, power loss); a stop the run is asked for checkpoints the step it is at (docs/HARNESS.md).
CHECKPOINT_EVERY_S = 120.0
FAULTS = ("crash", "raise", "hang", "oom", "nan", "nan_eval", "stop", "slow")   # test-only: run.py


class RunSpec(BaseModel):
    """One run, fully resolved: the child needs nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    track: Track = Field(description="the track, data pinned, budget as run")
    config: Config
    seed: int = Field(ge=0, lt=2**32)
    threads: int = Field(ge=1, le=4096, description="CPU threads the node grants")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: Literal["auto", "on", "off"] = "auto"
    tokenizer: str = Field(description="path of the trained tokenizer")
    train_tokens: str = Field(description="path of the train split's token array (.npy)")
    eval_tokens: str = Field(description="path of the evaluation prefix's token array (.npy)")
    cache: str | None = Field(None, description="folder for the peak-FLOP/s cache")
    timeout_s: float | None = Field(None, gt=0, description="the parent's wall-clock limit")
    memory_limit_mb: float | None = Field(None, gt=0, description="memory the node grants")
    progress_every_s: float = Field(1.0, gt=0)
    visible_devices: str | None = Field(None, max_length=200,
                                        description="CUDA_VISIBLE_DEVICES of the child (one GPU per worker)")
    fault: Literal["crash", "raise", "hang", "oom", "nan", "nan_eval", "stop", "slow"] | None = None
    checkpoint: str | None = Field(None, max_length=4096,
                                   description="the run's checkpoint file (resumed from if there)")
    checkpoint_every_s: float = Field(CHECKPOINT_EVERY_S, gt=0,
                                      description="training seconds between checkpoints")


class RunResult(BaseModel):
    """The outcome of one run; maps one-to-one onto `memory.records.RunBody`."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    error: str | None = None
    track: str
    config: dict[str, Any]
    config_hash: str
    seed: int
    budget_tokens: int
    metrics: RunMetrics
    hardware: Hardware
    software: dict[str, str]
    curve: list[CurvePoint] = Field(default_factory=list, description="thinned loss curve")
    samples: list[Sample] = Field(default_factory=list, description="texts from fixed prompts")
    quality: dict[str, float] | None = Field(None, description="offline measures of the samples")


def empty_metrics(**known: Any) -> RunMetrics:
    """Metrics of a run that measured nothing (or only what `known` says)."""
    base: dict[str, Any] = {"val_bpb": None, "train_loss": None, "tokens": 0, "steps": 0,
                            "wall_s": 0.0, "tokens_per_s": 0.0, "mfu": None,
                            "peak_mem_mb": None, "params": 0}
    base.update(known)
    return RunMetrics(**base)


def to_run_body(result: RunResult, purpose: str, ref: str | None = None) -> RunBody:
    """The `run` record body for `result`; `purpose` and `ref` come from the caller (roles)."""
    error = result.error[:400] if result.error else None
    return RunBody(track=result.track, config=result.config, config_hash=result.config_hash,
                   seed=result.seed, status=result.status, metrics=result.metrics,
                   hardware=result.hardware, software=result.software, purpose=purpose,
                   ref=ref, error=error, curve=result.curve, samples=result.samples,
                   quality=result.quality)
