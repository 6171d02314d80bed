"""Get a track ready to run: verified data, a trained tokenizer and token arrays, all cached.

Everything lands under `node.home.cache_dir(home)`: `data/NAME/` (fetched text), `tokenizers/`
(merges, named by a hash of algorithm + vocab size + the train split's sha256) and `tokens/`
(uint16 arrays of the train split and of the evaluation prefix). Runs in the parent, so each run's
subprocess only loads arrays.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memory.canonical import config_hash
from node.harness.data import resolve_data
from node.harness.tokenizer import Tokenizer, train_bpe
from node.harness.tracks import Track
from node.home import cache_dir

log = logging.getLogger(__name__)
StageProgress = Callable[[str, int, "int | None"], None]     # (stage, done, total)
ENCODE_CHUNK = 16 << 20                                      # bytes of text encoded at a time


@dataclass(frozen=True)
class Prepared:
    """A track with its data pinned, and the cached files a run reads."""

    track: Track
    tokenizer: Path
    train_tokens: Path
    eval_tokens: Path


def eval_text(valid: bytes, prefix_bytes: int) -> bytes:
    """The evaluation prefix: the first `prefix_bytes` bytes, cut back to the last line end."""
    head = valid[:prefix_bytes]
    cut = head.rfind(b"\n")
    return head[: cut + 1] if cut >= 0 and len(valid) > prefix_bytes else head


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """Write `array` to `path` whole or not at all: a failed write leaves no partial file."""
    tmp = path.with_name(path.name + ".tmp.npy")
    try:
        np.save(tmp, array)
        tmp.replace(path)
    except OSError as exc:
        # numpy reports a short write ("N requested and M written") with no errno: name the
        # cause when it is a full disk, so the node can say so in one line
        full = exc.errno is None and shutil.disk_usage(tmp.parent).free < array.nbytes
        tmp.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from exc
        raise


def encode_file(tok: Tokenizer, path: Path, limit: int | None = None) -> np.ndarray:
    """Encode a text file in line-aligned chunks (bounded memory for GB-sized splits)."""
    parts = []
    with path.open("rb") as f:
        rest, read = b"", 0
        while limit is None or read < limit:
            block = f.read(ENCODE_CHUNK if limit is None else min(ENCODE_CHUNK, limit - read))
            if not block:
                break
            read += len(block)
            block = rest + block
            cut = block.rfind(b"\n") + 1 or len(block)
            block, rest = block[:cut], block[cut:]
            parts.append(tok.encode(block.decode("utf-8", errors="replace")))
        if rest:
            parts.append(tok.encode(rest.decode("utf-8", errors="replace")))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)


def _tokenizer(track: Track, train: Path, folder: Path,
               progress: StageProgress | None) -> tuple[Path, Tokenizer]:
    key = config_hash({**track.tokenizer.model_dump(), "data": track.data.train_sha256})
    path = folder / "tokenizers" / f"{key}.json"
    if path.exists():
        return path, Tokenizer.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = track.tokenizer.train_bytes
    with train.open("rb") as f:
        text = f.read(limit if limit else -1).decode("utf-8", errors="ignore")
    log.info("training a %d-token BPE on %d bytes", track.tokenizer.vocab_size, len(text))
    tok = train_bpe(text, track.tokenizer.vocab_size,
                    progress=(lambda d, t: progress("tokenizer", d, t)) if progress else None)
    tok.save(path)
    return path, tok


def prepare(track: Track, home: Path, data_dir: Path | str | None = None,
            progress: StageProgress | None = None) -> Prepared:
    """Verified data, tokenizer and token arrays for `track` (raises `DataError`)."""
    files = resolve_data(track.data, home, data_dir,
                         progress=(lambda d, t: progress("download", d, t)) if progress else None)
    track = track.pinned(files["train"][1], files["valid"][1])
    folder = cache_dir(home)
    tok_path, tok = _tokenizer(track, files["train"][0], folder, progress)
    stem = tok_path.stem
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    train_path = tokens / f"{stem}-train.npy"
    if not train_path.exists():
        if progress:
            progress("encode", 0, None)
        _atomic_save(train_path, encode_file(tok, files["train"][0]))
    eval_key = config_hash({"tok": stem, **track.eval.model_dump(), "data": track.data.valid_sha256})
    eval_path = tokens / f"{eval_key}-eval.npy"
    if not eval_path.exists():
        text = eval_text(files["valid"][0].read_bytes(), track.eval.prefix_bytes)
        _atomic_save(eval_path, tok.encode(text.decode("utf-8", errors="replace")))
    return Prepared(track=track, tokenizer=tok_path, train_tokens=train_path, eval_tokens=eval_path)
