"""Realistic signed records made on demand, for tests, benchmarks and demos.

A synthetic swarm: a few authors running configs of one track with seed noise, some claims,
assessments and verifications. Deterministic for a given random seed (signatures included:
Ed25519 is deterministic), except timestamps, which callers may pin with `ts`.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

from memory import canonical, codec, records as R
from memory.crypto import Keypair

HARDWARE = R.Hardware(accelerator="cpu", device_name="synthetic cpu", cores=2, memory_gb=24.0,
                      platform="linux-x86_64")
SOFTWARE = {"python": "3.11", "torch": "2.13.0", "swarm": "0.1.0"}


def keypairs(n: int, seed: int = 0) -> list[Keypair]:
    """`n` deterministic keypairs."""
    rng = random.Random(seed)
    return [Keypair(rng.randbytes(32)) for _ in range(n)]


def readable(val_bpb: float) -> dict:
    """A short loss curve, one sample and quality measures: what a v2 run adds for people."""
    curve = [R.CurvePoint(step=100 * i, train_loss=round(val_bpb * (0.7 + 2.0 / i), 6))
             for i in range(1, 9)]
    samples = [R.Sample(prompt="once upon a time", text=" there was a little dog named max.")]
    quality = {"repetition": 0.0, "distinct_1": 0.9, "distinct_2": 1.0, "ends_sentence": 1.0,
               "unknown_words": 0.0}
    return {"curve": curve, "samples": samples, "quality": quality}


def run_body(track: str, config: dict, seed: int, val_bpb: float | None,
             status: str = "ok", purpose: str = "manual", ref: str | None = None,
             extras: bool = False) -> R.RunBody:
    """A run body with plausible metrics around `val_bpb`; `extras` adds `readable`'s fields."""
    metrics = R.RunMetrics(
        val_bpb=val_bpb, train_loss=None if val_bpb is None else val_bpb * 0.7, tokens=1_000_000,
        steps=1000, wall_s=180.0, tokens_per_s=5555.5, mfu=0.05, peak_mem_mb=512.0, params=850_000)
    return R.RunBody(track=track, config=config, config_hash=canonical.config_hash(config),
                     seed=seed, status=status, metrics=metrics, hardware=HARDWARE,
                     software=SOFTWARE, purpose=purpose, ref=ref,
                     error=None if status == "ok" else "synthetic failure",
                     **(readable(val_bpb) if extras and val_bpb is not None else {}))


def runs(authors: list[Keypair], n: int, track: str = "synthetic-track", configs: int = 50,
         seed: int = 0, ts: int | None = None) -> Iterator[R.Record]:
    """`n` signed run records spread over `authors` and `configs` configs, seq numbers in order."""
    rng = random.Random(seed)
    seqs = {a.peer_id: 0 for a in authors}
    # Timestamps count up to now (or to `ts`): never ahead of the clock, however many records.
    stamp = (codec.now_ms() if ts is None else ts) - n
    for i in range(n):
        author = authors[i % len(authors)]
        c = rng.randrange(configs)
        config = {"depth": 2 + c % 4, "width": 64 * (1 + c % 3), "lr": round(0.001 * (1 + c % 7), 4),
                  "activation": ["gelu", "relu2", "swiglu"][c % 3],
                  "init_scale": round(0.5 + c / configs, 6)}     # `configs` distinct configs
        true_bpb = 1.0 + 0.01 * ((c * 7919) % 23) / 23
        seqs[author.peer_id] += 1
        body = run_body(track, config, seed=rng.randrange(2**31),
                        val_bpb=round(true_bpb + rng.gauss(0, 0.002), 6))
        yield codec.sign(author, "run", seqs[author.peer_id], body, ts=stamp + i)
