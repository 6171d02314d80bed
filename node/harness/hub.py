"""Upstream data pinned by revision: parquet files of a Hugging Face dataset, prepared by a recipe.

`huggingface_hub` does the transfer (resume, its own cache layout, offline mode, mirrors through
`HF_ENDPOINT`); we pin the dataset commit, check each parquet file's sha256 before reading it, and
turn its rows into a split with a stated recipe. The `HubSource` is part of the track's `DataSpec`,
so the track id covers the repository, revision, files, their hashes and the recipe.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
Progress = Callable[[int, "int | None"], None]
class PeerFetch(Protocol):
    """(sha256, size or None, dest, most: the largest size to accept when `size` is None) -> dest;
    node/blob.py's `BlobService.fetch_blocking`."""

    def __call__(self, sha256: str, size: int | None, dest: Path,
                 most: int | None = None) -> Path: ...


class HubError(RuntimeError):
    """The upstream files could not be had, or are not the pinned bytes; one line."""


class HubFile(BaseModel):
    """One upstream file at the pinned revision, named by its sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="path inside the dataset repository")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the file (its LFS oid)")
    # Not part of the track's identity (excluded from its dump, so track ids are unchanged): a
    # peer offering a file by hash alone is believed only up to this size, so a lying peer wastes
    # at most this much transfer before the whole-file hash refuses it (4 GiB otherwise).
    max_bytes: int | None = Field(None, gt=0, exclude=True,
                                  description="an upper bound on the file's size, with a margin")


class HubSource(BaseModel):
    """Where a split's bytes come from upstream, and how rows become text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="dataset repository id")
    revision: str = Field(pattern=r"^[0-9a-f]{40}$", description="the dataset commit, never a branch")
    train: tuple[HubFile, ...] = Field(min_length=1, description="files read, in order, for train")
    valid: tuple[HubFile, ...] = Field(min_length=1, description="files read, in order, for valid")
    column: str = Field("text", description="the parquet column holding one story per row")
    recipe: Literal["rows-strip-lower-v1"] = Field(
        "rows-strip-lower-v1", description="each row stripped of surrounding whitespace and "
        "lower-cased, rows joined by `separator`, the result cut to the pinned size")
    separator: str = Field("\n\n", description="written after every row")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file (streamed)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _from_peers(item: HubFile, cache: Path, peer_fetch: PeerFetch | None) -> Path | None:
    """The file from a peer that holds it (by its sha256), or None (the reason is logged)."""
    if peer_fetch is None:
        return None
    dest = cache / "by-sha256" / item.sha256
    if dest.is_file() and file_sha256(dest) == item.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return peer_fetch(item.sha256, None, dest, most=item.max_bytes)
    except RuntimeError as exc:                 # DataError: no peer has it, or none is connected
        log.info("upstream file %s from peers: %s", item.path, exc)
        return None


def fetch_file(source: HubSource, item: HubFile, cache: Path,
               peer_fetch: PeerFetch | None = None) -> Path:
    """The pinned file from a peer, else the hub (or the hub cache under `cache`), sha256 checked."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    path = _from_peers(item, cache, peer_fetch)
    if path is not None and file_sha256(path) == item.sha256:
        return path
    if not log.isEnabledFor(logging.DEBUG):    # its retry warnings: our one line says it all
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        path = Path(hf_hub_download(source.repo, item.path, repo_type="dataset",
                                    revision=source.revision, cache_dir=cache))
    except LocalEntryNotFoundError:
        raise HubError(f"{item.path}: not reachable and not in the hub cache") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise HubError(f"{item.path}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                       ) from None
    got = file_sha256(path)
    if got != item.sha256:
        raise HubError(f"{item.path} has sha256 {got[:16]}, the pin {item.sha256[:16]}")
    return path


def rows(path: Path, column: str) -> Iterator[str]:
    """The `column` of a parquet file, row by row, in batches (bounded memory)."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        for batch in table.iter_batches(columns=[column], batch_size=4096):
            yield from (v for v in batch.column(0).to_pylist() if v is not None)
    except (OSError, KeyError, ValueError) as exc:
        raise HubError(f"{path.name}: cannot read column {column!r}: {exc}") from None


def prepare_rows(source: HubSource, files: list[Path], size: int, out: Path) -> Path:
    """Recipe `rows-strip-lower-v1`: write the first `size` bytes of the prepared rows to `out`."""
    sep = source.separator.encode()
    written = 0
    with out.open("wb") as f:
        for path in files:
            for text in rows(path, source.column):
                piece = text.strip().lower().encode("utf-8") + sep
                piece = piece[: size - written]
                f.write(piece)
                written += len(piece)
                if written >= size:
                    return out
    raise HubError(f"the pinned files hold {written} prepared bytes, the split needs {size}")


def fetch_and_prepare(source: HubSource, sizes: dict[str, int], folder: Path,
                      progress: Progress | None = None, peer_fetch: PeerFetch | None = None,
                      on_file: Callable[[str, Path], None] = lambda sha, path: None,
                      ) -> dict[str, Path]:
    """{split: NAME.tmp} prepared from the pinned upstream files (the caller checks the pins).

    Each upstream file is asked of peers first (by its sha256), then of the hub; `on_file` hears
    of every verified file (so this node can serve it in turn)."""
    cache = folder.parent.parent / "hub"           # HOME/cache/hub, beside HOME/cache/data
    out = {}
    for split, size in sizes.items():
        files = []
        for item in getattr(source, split):
            files.append(fetch_file(source, item, cache, peer_fetch))
            on_file(item.sha256, files[-1])
        log.info("preparing %s from %d upstream file(s), recipe %s", split, len(files),
                 source.recipe)
        if progress:
            progress(0, size)
        out[split] = prepare_rows(source, files, size, folder / f"{split}.tmp")
        if progress:
            progress(size, size)
    return out
