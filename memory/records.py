"""The record kinds: immutable facts, each signed by its author.

A record is an envelope (schema version `v`, `kind`, `author` peer id, per-author `seq` starting at 1,
`ts` in milliseconds since the epoch) around a kind-specific `body`. Bodies are strict pydantic
models: no coercion, no unknown fields, every field present on the wire. docs/RECORDS.md describes
every field; tests/golden/ holds records that later versions must still read.

Versions: 2 added `curve`, `samples` and `quality` to `run` bodies and the `judgement` kind. A v1
record still decodes with its v1 model (`BODIES_BY_VERSION`), so its bytes, id and views are as
before; new records are written as v2.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat,
                      StrictInt, StrictStr, ValidationInfo, model_validator)

from memory.canonical import config_hash, config_hash_canonical

SCHEMA_VERSION = 2          # what this version writes; it reads every key of BODIES_BY_VERSION

def _float_on_wire(value: Any, info: ValidationInfo) -> Any:
    # On the wire a float must be a float64: an integer would re-encode differently, giving one
    # fact two encodings. Code building records in Python may still pass 3 for 3.0.
    if type(value) is int and info.context and info.context.get("wire"):
        raise ValueError("expected a float, got an integer")
    return value


Float = Annotated[float, BeforeValidator(_float_on_wire)]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]          # a record id
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]          # a config hash
TrackId = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=80)]
Text = Annotated[str, Field(max_length=8000)]
Short = Annotated[str, Field(max_length=400)]
Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr, None]   # smart union: types kept
Config = Annotated[dict[Name, Scalar], Field(max_length=128)]     # knob -> value
Ids = Annotated[list[Hex64], Field(max_length=512)]
Ms = Annotated[int, Field(ge=0, lt=2**53)]
# A count the store keeps in a BIGINT column: a larger one could not be stored (ingest raised
# for the whole batch, and the node's gossip ingest stopped with it), so it is invalid.
Count = Annotated[int, Field(ge=0, lt=2**63)]


class Body(BaseModel):
    """Base of every record body: strict, frozen, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Hardware(Body):
    """What a machine can do; recorded on `node` and `run` records."""

    accelerator: Literal["cpu", "cuda", "mps"] = Field(description="where training runs")
    device_name: Short = Field(description="CPU model or GPU name")
    cores: Annotated[int, Field(ge=0, le=4096)] = Field(description="CPU cores (threads) available")
    memory_gb: Annotated[Float, Field(ge=0)] = Field(description="RAM, or GPU memory for cuda")
    platform: Short = Field(description="operating system and architecture")


class NodeBody(Body):
    """Hello: who this node is and what it can do (republished on change, newest wins)."""

    name: Name
    hardware: Hardware
    software: Annotated[dict[Name, Short], Field(max_length=32)]
    addrs: Annotated[list[Short], Field(max_length=32)]
    capabilities: Annotated[list[Name], Field(max_length=32)]


class RoleBody(Body):
    """A node takes a role for its next unit of work, and says why."""

    role: Literal["experimenter", "verifier", "statistician", "meta_analyst"]
    reason: Short
    scores: Annotated[dict[Name, Float], Field(max_length=16)]


class HypothesisBody(Body):
    """An experiment worth running: a diff over a track's base config, and why."""

    track: TrackId
    diff: Config
    rationale: Text
    source: Literal["agent", "strategy", "human"]


class ClaimLeaseBody(Body):
    """I am doing this work until `expires_ts`; others skip it until then."""

    track: TrackId
    work: Literal["experiment", "verify", "assess", "synthesize"]
    config_hash: Hex32 | None
    target: Hex64 | None = Field(description="the claim or hypothesis the work is for")
    expires_ts: Ms


class RunMetrics(Body):
    """What one training run measured. val_bpb is None when the run did not finish."""

    val_bpb: Float | None
    train_loss: Float | None
    tokens: Count
    steps: Count
    wall_s: Annotated[Float, Field(ge=0)]
    tokens_per_s: Annotated[Float, Field(ge=0)]
    mfu: Float | None
    peak_mem_mb: Float | None
    params: Count


class RunBodyV1(Body):
    """One training run as schema version 1 wrote it: config, seed, outcome and metrics."""

    track: TrackId
    config: Config
    config_hash: Hex32
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    status: Literal["ok", "crash", "nan", "timeout", "refused"]
    metrics: RunMetrics
    hardware: Hardware
    software: Annotated[dict[Name, Short], Field(max_length=32)]
    purpose: Literal["baseline", "candidate", "screen", "confirm", "verify", "replay", "manual"]
    ref: Hex64 | None = Field(description="the hypothesis or claim this run serves")
    error: Short | None

    @model_validator(mode="after")
    def _hash_names_config(self, info: ValidationInfo) -> RunBodyV1:
        # On the wire the config arrived in canonical form, so it is hashed as it stands; a
        # config built in Python is put in canonical form first.
        wire = bool(info.context and info.context.get("wire"))
        expected = config_hash_canonical(self.config) if wire else config_hash(self.config)
        if self.config_hash != expected:
            raise ValueError("config_hash is not the hash of config")
        return self


MAX_CURVE_POINTS = 64
MAX_SAMPLES = 8


class CurvePoint(Body):
    """One point of a run's loss curve: the mean training loss of the steps up to `step`."""

    step: Annotated[int, Field(ge=0, lt=2**53)]
    train_loss: Float


class Sample(Body):
    """Text the trained model wrote after a fixed prompt (deterministic: fixed seed, temperature)."""

    prompt: Annotated[str, Field(max_length=200)]
    text: Annotated[str, Field(max_length=1200)]


class RunBody(RunBodyV1):
    """One training run (schema v2): v1's fields plus what a person reads: the loss curve, samples
    from fixed prompts and offline quality measures of those samples (None when there are none)."""

    # Defaults serve code building records in Python only: on the wire every field must be present
    # (codec checks it), so one fact keeps one encoding.
    curve: Annotated[list[CurvePoint], Field(max_length=MAX_CURVE_POINTS)] = Field(default_factory=list)
    samples: Annotated[list[Sample], Field(max_length=MAX_SAMPLES)] = Field(default_factory=list)
    quality: Annotated[dict[Name, Float], Field(max_length=32)] | None = None


class ClaimBody(Body):
    """A candidate config beats the track baseline; the evidence is the listed runs."""

    track: TrackId
    baseline_hash: Hex32
    candidate_hash: Hex32
    diff: Config
    baseline_runs: Ids
    candidate_runs: Ids
    effect: Float = Field(description="mean candidate val_bpb minus mean baseline (negative = better)")
    summary: Text


class VerificationBody(Body):
    """An independent re-run of a claim: a replayed seed and fresh seeds."""

    claim: Hex64
    outcome: Literal["confirmed", "refuted", "inconclusive"]
    replay_run: Hex64 | None
    replay_match: bool | None
    runs: Ids
    effect: Float | None
    reason: Short


class AssessmentBody(Body):
    """The statistician's verdict on a claim, with the numbers behind it."""

    claim: Hex64
    verdict: Literal["supported", "not_supported"]
    test: Literal["welch", "paired", "sequential"]
    p_value: Float | None
    q_value: Float | None
    effect: Float | None
    noise_floor: Float | None
    n: Count
    reason: Short


class KnobEffect(Body):
    """One knob setting's estimated effect on val_bpb (negative = better)."""

    knob: Name
    value: Scalar
    effect: Float
    stderr: Float | None
    n: Annotated[int, Field(ge=0)]


# A joint effect (settings the runs never separated, docs/ROLES.md "Aliased knobs") fits the
# schema as it is: `knob` the knob names joined by JOINT (cut to a Name's 80 characters), `value`
# the settings as a JSON object string, which is what a reader goes by.
JOINT = " & "


def joint_knob(knobs: list[str]) -> str:
    """The `knob` field of a joint effect of these knobs."""
    name = JOINT.join(knobs)
    return name if len(name) <= 80 else name[:77] + "..."


def effect_settings(knob: str, value: Any) -> dict[str, Any]:
    """The knob settings a `KnobEffect` stands for: `{knob: value}`, or a joint effect's several."""
    if JOINT in knob and isinstance(value, str) and value.startswith("{"):
        try:
            parts = json.loads(value)
        except (ValueError, RecursionError):     # a stranger's value: any string at all
            parts = None
        if (isinstance(parts, dict) and len(parts) > 1 and joint_knob(list(parts)) == knob
                and not any(isinstance(v, (dict, list)) for v in parts.values())):
            return parts
    return {knob: value}


class FindingBody(Body):
    """A meta-analysis: what helped, what did not, what was never tried."""

    track: TrackId
    title: Short
    text: Text
    effects: Annotated[list[KnobEffect], Field(max_length=256)]
    refs: Ids


class NoiseFloorBody(Body):
    """Seed noise of a track: the spread of one config's val_bpb across seeds."""

    track: TrackId
    config_hash: Hex32
    n: Annotated[int, Field(ge=2, lt=2**63)]
    mean: Float
    std: Annotated[Float, Field(ge=0)]
    runs: Ids


class JudgementBody(Body):
    """An LLM judge's scores for one run's samples against a written rubric: testimony, like any record."""

    run: Hex64 = Field(description="the run whose samples were judged")
    judge: Name = Field(description="the judging model")
    rubric: Name = Field(description="the rubric's name and version")
    scores: Annotated[dict[Name, Annotated[Float, Field(ge=0, le=10)]], Field(min_length=1, max_length=16)]
    reason: Short


BODIES: dict[str, type[Body]] = {
    "node": NodeBody,
    "role": RoleBody,
    "hypothesis": HypothesisBody,
    "claim_lease": ClaimLeaseBody,
    "run": RunBody,
    "claim": ClaimBody,
    "verification": VerificationBody,
    "assessment": AssessmentBody,
    "finding": FindingBody,
    "noise_floor": NoiseFloorBody,
    "judgement": JudgementBody,
}
KINDS = tuple(BODIES)
# The body model of every kind in each schema version this code reads.
BODIES_V1: dict[str, type[Body]] = {**{k: m for k, m in BODIES.items() if k != "judgement"},
                                    "run": RunBodyV1}
BODIES_BY_VERSION: dict[int, dict[str, type[Body]]] = {1: BODIES_V1, SCHEMA_VERSION: BODIES}


@dataclass(frozen=True, slots=True)
class Record:
    """A validated, signed record as stored: envelope fields, body, signature, id and raw bytes."""

    id: str
    v: int
    kind: str
    author: str
    seq: int
    ts: int
    body: Body
    signature: bytes
    raw: bytes
    data: dict[str, Any]     # the body as plain values (what the payload holds), for storage

    def envelope(self) -> dict[str, Any]:
        """The signed fields, as a plain dict (what the payload encodes)."""
        return {"v": self.v, "kind": self.kind, "author": self.author, "seq": self.seq,
                "ts": self.ts, "body": self.body.model_dump(mode="python")}
