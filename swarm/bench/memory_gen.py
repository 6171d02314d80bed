"""The `swarm bench memory` generator, fast: a million signed run records in minutes.

`memory.synthetic.runs` builds each record through its pydantic model and the general canonical
encoder (about 0.5 ms a record, most of it not the signature), and `Store.ingest` then checks
every signature again (another ~0.2 ms). For a benchmark memory both are waste:

- `signed_runs` yields the very same records, byte for byte (tests/web/test_bench_memory.py checks
  it against `synthetic.runs`): each config's body is built through the model once, and each record
  only swaps in its seed and metrics and packs the envelope as sorted dicts (which is what the
  canonical encoding of a body is) before the Ed25519 signature.
- `bulk_load` writes them through the store's own row path (`schema.tables`, the same Arrow
  insert `Store.ingest` makes, in one transaction per batch) without re-checking the signatures
  it has just made; it checks a sample of the written records with the full decoder
  (`codec.decode`: schema, canonical form, signature) so a broken generator cannot go unnoticed.
  The tables are the ones a node that ingested the same records would hold (checked by the test).
- `cached_memory` keeps a built file per (records, authors, seed) under a cache directory, so a
  million-run memory is built once and reused by every benchmark run.
"""
from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import nacl.bindings

from memory import canonical, codec, synthetic
from memory.codec import Decoded
from memory.crypto import SIGNING_DOMAIN, Keypair
from memory.records import SCHEMA_VERSION

log = logging.getLogger(__name__)
CHECK_EVERY = 997            # bulk_load fully decodes one record in this many (a prime stride)


def _sorted(value: Any) -> Any:
    """`value` with every dict's keys in sorted order (the canonical encoding's map order)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class _Template:
    """One config's run body, built and validated through the model once; per record only the
    seed and the metrics change."""

    def __init__(self, track: str, config: dict[str, Any]) -> None:
        body = synthetic.run_body(track, config, seed=0, val_bpb=1.0)
        self.data = _sorted(body.model_dump(mode="python"))

    def body(self, seed: int, val_bpb: float) -> dict[str, Any]:
        data = dict(self.data)
        data["seed"] = seed
        metrics = dict(data["metrics"])
        metrics["val_bpb"], metrics["train_loss"] = val_bpb, val_bpb * 0.7
        data["metrics"] = metrics
        return data


def signed_runs(authors: list[Keypair], n: int, track: str = "synthetic-track",
                configs: int = 50, seed: int = 0, ts: int | None = None) -> Iterator[Decoded]:
    """The records of `synthetic.runs(authors, n, track, configs, seed, ts)`, as store rows."""
    rng = random.Random(seed)
    seqs = {a.peer_id: 0 for a in authors}
    templates: dict[int, _Template] = {}
    stamp = (codec.now_ms() if ts is None else ts) - n
    secrets = {a.peer_id: nacl.bindings.crypto_sign_seed_keypair(a.seed)[1] for a in authors}
    for i in range(n):
        author = authors[i % len(authors)]
        c = rng.randrange(configs)
        if c not in templates:
            templates[c] = _Template(track, synthetic.run_config(c, configs))
        run_seed = rng.randrange(2**31)
        val_bpb = round(synthetic.true_bpb(c) + rng.gauss(0, 0.002), 6)
        seqs[author.peer_id] += 1
        yield _sign(author.peer_id, secrets[author.peer_id], seqs[author.peer_id], stamp + i,
                    templates[c].body(run_seed, val_bpb))


def _sign(author: str, secret: bytes, seq: int, ts: int, body: dict[str, Any]) -> Decoded:
    # The envelope's keys in sorted order: author, body, kind, seq, ts, v. libsodium's own call
    # (what Keypair.sign makes, without PyNaCl's wrapper objects).
    envelope = {"author": author, "body": body, "kind": "run", "seq": seq, "ts": ts,
                "v": SCHEMA_VERSION}
    payload = msgpack.packb(envelope, use_bin_type=True, use_single_float=False)
    signature = nacl.bindings.crypto_sign(SIGNING_DOMAIN + payload, secret)[:64]
    raw = msgpack.packb([payload, signature], use_bin_type=True)
    return Decoded(id=canonical.digest_hex(payload), kind="run", author=author, seq=seq,
                   ts=ts, raw=raw, data=body)


def bulk_load(store: Any, rows: Iterator[Decoded], batch: int = 50_000) -> int:
    """Write generated rows (none held yet) through the store's row path, `batch` per
    transaction; every `CHECK_EVERY`-th is decoded in full first. Returns how many were written."""
    written, chunk = 0, []
    for row in rows:
        if written % CHECK_EVERY == 0:
            codec.decode(row.raw, now=2**52)           # raises Rejected if it is not valid
        chunk.append(row)
        written += 1
        if len(chunk) >= batch:
            _write(store, chunk)
            chunk = []
    if chunk:
        _write(store, chunk)
    return written


def _write(store: Any, rows: list[Decoded]) -> None:
    # Store._insert_records is the ingest's own writer (records, typed tables, equivocations);
    # what this skips is only the check of signatures made a moment ago in this process.
    with store._lock:
        store._con.begin()
        try:
            id_keys, pair_keys = store._insert_records(rows)
            store._con.commit()
        except BaseException:
            store._con.rollback()
            raise
        store._ids.add(id_keys)
        store._pairs.add(pair_keys)
        store._version += 1


def build(path: Path, records: int, authors: int = 20, seed: int = 7) -> None:
    """A memory at `path` holding `records` synthetic runs (as `swarm bench memory` makes them:
    `authors` authors, max(50, records / 20) configs)."""
    from memory.store import Store
    from swarm.output import track_progress

    keys = synthetic.keypairs(authors)
    rows = signed_runs(keys, records, configs=max(50, records // 20), seed=seed)
    with Store(path) as store:
        bulk_load(store, track_progress(rows, "generating runs", total=records))
        store._con.execute("CHECKPOINT")


def cached_memory(cache: Path, records: int, authors: int = 20, seed: int = 7) -> Path:
    """A built memory of `records` runs under `cache` (built on first use, then reused)."""
    path = cache / f"runs-{records}-a{authors}-s{seed}.duckdb"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.unlink(missing_ok=True)
        build(partial, records, authors, seed)
        partial.rename(path)
    return path
