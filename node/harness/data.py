"""A track's text: named by sha256, taken from the first source that yields those exact bytes.

Sources, in order (each one tried is reported in one log line):
1. an explicit data dir (`--data-dir`, then `$SWARM_DATA_DIR`) holding `train.txt` and `valid.txt`
   (when given, it is the only source: wrong or missing files are an error, not a fall-through);
2. the copy cached under the home (`HOME/cache/data/NAME/`);
3. the copy embedded in the package (`data_files/NAME/*.txt.xz`; the `tinystories-cpu` sample);
4. peers that hold the bytes (`node/blob.py` registers itself here while the host runs);
5. upstream at a pinned revision (`node/harness/hub.py`; only specs with a `source`): each
   upstream file is asked of peers by its sha256 first, then of the hub.
Whatever the source, the bytes are kept only if they hash to the pins; anything fetched or
unpacked lands in the cache, so the next start is source 2.
"""
from __future__ import annotations

import logging
import lzma
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from node.harness.hub import HubError, HubSource, PeerFetch, fetch_and_prepare
from node.harness.hub import file_sha256 as sha256_file
from node.home import cache_dir

log = logging.getLogger(__name__)
SPLITS = ("train", "valid")
HUB = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
REPO_ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = Path(__file__).resolve().parent / "data_files"
Progress = Callable[[int, "int | None"], None]
# (sha256, size or None, dest, most) -> dest, or raise DataError: set by node/blob.py while a host
# runs (hub.PeerFetch says what the arguments are)
_peer_fetch: PeerFetch | None = None
_held: dict[str, Path] = {}                 # sha256 -> verified file this process may serve
_held_lock = threading.Lock()


class DataError(RuntimeError):
    """The track's data is missing or is not the pinned bytes; the message is one line."""


class DataSpec(BaseModel):
    """The exact bytes a track trains and evaluates on, and where they come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="data set name (also the cache and embedded folder name)")
    train_sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$",
                                     description="sha256 of train.txt (None: pinned on first fetch)")
    valid_sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of valid.txt")
    train_bytes: int = Field(gt=0, description="size of train.txt")
    valid_bytes: int = Field(gt=0, description="size of valid.txt")
    train_url: str | None = Field(None, description="the upstream file the train split was cut "
                                  "from (a record of origin; never fetched)")
    valid_url: str | None = Field(None, description="the same for the valid split")
    recipe: str = Field("tinystories-lower-v1", description="how upstream bytes became the split")
    source: HubSource | None = Field(None, description="upstream pinned by revision (fetchable)")

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any) -> dict[str, Any]:
        # Unset optional fields are left out, so adding them kept existing track ids unchanged.
        out = handler(self)
        for key in ("train_url", "valid_url", "source"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    def pin(self, split: str) -> tuple[str | None, int]:
        """(sha256 or None, size) of `split`."""
        return getattr(self, f"{split}_sha256"), getattr(self, f"{split}_bytes")

    @property
    def pinned(self) -> bool:
        """Whether both splits have a sha256 pin."""
        return self.train_sha256 is not None and self.valid_sha256 is not None


def shared_data_dir() -> Path | None:
    """`<repo>/../shared/data/tinystories` when it exists (tests and benchmarks use it)."""
    path = REPO_ROOT.parent / "shared" / "data" / "tinystories"
    return path if (path / "train.txt").exists() else None


def embedded_dir(spec: DataSpec) -> Path | None:
    """The package's compressed copy of `spec`'s splits, when it ships one."""
    folder = EMBEDDED / spec.name
    return folder if all((folder / f"{s}.txt.xz").is_file() for s in SPLITS) else None


# ---- peers: the blob protocol plugs in here ----

def set_peer_fetch(fetch: PeerFetch | None) -> None:
    """Install (or remove, with None) the function that fetches a blob from peers."""
    global _peer_fetch
    _peer_fetch = fetch


def held(sha256: str) -> Path | None:
    """A verified local file with this sha256 that this process may serve, or None."""
    with _held_lock:
        path = _held.get(sha256)
    return path if path is not None and path.is_file() else None


def hold(sha256: str, path: Path) -> None:
    """Remember a verified file so peers may fetch it by its sha256."""
    with _held_lock:
        _held[sha256] = path


# ---- checks ----

def _check(path: Path, spec: DataSpec, split: str, where: str) -> str:
    """The file's sha256, after checking it against the pin (when there is one)."""
    sha, size = spec.pin(split)
    name = f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{where}: {name} is missing")
    if sha is not None and path.stat().st_size != size:
        raise DataError(f"{where}: {name} has {path.stat().st_size} bytes, the pin {size}")
    got = sha256_file(path)
    if sha is not None and got != sha:
        raise DataError(f"{where}: {name} has sha256 {got[:16]}, the pin {sha[:16]}")
    return got


def local_files(spec: DataSpec, data_dir: Path,
                where: str | None = None) -> dict[str, tuple[Path, str]]:
    """`train.txt` and `valid.txt` in `data_dir` with their sha256, checked against the pins."""
    folder = Path(data_dir).expanduser()
    where = where or str(folder)
    return {s: (folder / f"{s}.txt", _check(folder / f"{s}.txt", spec, s, where)) for s in SPLITS}


def _install(tmp: Path, spec: DataSpec, split: str, where: str) -> tuple[Path, str]:
    """Check a freshly written `NAME.tmp` and move it into place; drop it on a mismatch."""
    out = tmp.with_suffix(".txt")
    try:
        sha = _check(tmp, spec, split, where)
    except DataError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return out, sha


# ---- the sources ----

def _from_embedded(spec: DataSpec, folder: Path, progress: Progress | None) -> dict:
    packed = embedded_dir(spec)
    if packed is None:
        raise DataError("embedded copy: none for this data set")
    out = {}
    for split in SPLITS:
        tmp = folder / f"{split}.tmp"
        with lzma.open(packed / f"{split}.txt.xz") as src, tmp.open("wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                dst.write(block)
        out[split] = _install(tmp, spec, split, "embedded copy")
    return out


def _from_peers(spec: DataSpec, folder: Path, progress: Progress | None) -> dict:
    fetch = _peer_fetch
    if fetch is None:
        raise DataError("peers: no host running")
    if not spec.pinned:
        raise DataError("peers: the data is not pinned yet, so peers cannot be asked by hash")
    out = {}
    for split in SPLITS:
        sha, size = spec.pin(split)
        try:
            tmp = fetch(sha, size, folder / f"{split}.tmp")    # type: ignore[arg-type]
        except DataError as exc:
            raise DataError(f"peers: {exc}") from None
        out[split] = _install(tmp, spec, split, "peers")
    return out


def _from_upstream(spec: DataSpec, folder: Path, progress: Progress | None) -> dict:
    if spec.source is None:
        raise DataError("upstream: none pinned for this data set")
    where = f"upstream {spec.source.repo}@{spec.source.revision[:12]}"
    try:
        made = fetch_and_prepare(spec.source, {s: spec.pin(s)[1] for s in SPLITS}, folder,
                                 progress, _peer_fetch, hold)
    except HubError as exc:
        raise DataError(f"{where}: {exc}") from None
    return {s: _install(made[s], spec, s, where) for s in SPLITS}


def _data_dir(data_dir: Path | str | None) -> tuple[Path, str] | None:
    if data_dir:
        return Path(data_dir), f"--data-dir {data_dir}"
    env = os.environ.get("SWARM_DATA_DIR")
    return (Path(env), f"SWARM_DATA_DIR {env}") if env else None


def _attempt(spec: DataSpec, label: str, get: Callable[[], dict], tried: list[str],
             strict: bool = False) -> dict[str, tuple[Path, str]] | None:
    try:
        files = get()
    except DataError as exc:
        if strict:
            raise
        reason = str(exc)
        # a wrong file is worth a warning; a source that simply does not have it is not
        (log.warning if "sha256" in reason or "bytes, the pin" in reason else log.info)(
            "data %s: %s", spec.name, reason)
        tried.append(reason)
        return None
    log.info("data %s: %s: ok (train %s…, valid %s…)", spec.name, label,
             files["train"][1][:12], files["valid"][1][:12])
    for path, sha in files.values():
        hold(sha, path)
    return files


def resolve_data(spec: DataSpec, home: Path, data_dir: Path | str | None = None,
                 progress: Progress | None = None) -> dict[str, tuple[Path, str]]:
    """{split: (path, sha256)} of the verified text; raise `DataError` with a one-line reason
    listing every source tried and what each gave."""
    explicit = _data_dir(data_dir)
    if explicit is not None:
        # the user named the folder: its files or a one-line error, never another source quietly
        try:
            return _attempt(spec, explicit[1], lambda: local_files(spec, *explicit), [], True)
        except DataError as exc:
            raise DataError(f"{exc} (without --data-dir / SWARM_DATA_DIR the other sources "
                            f"are tried)") from None
    folder = cache_dir(home) / "data" / spec.name
    sources: list[tuple[str, Callable[[], dict]]] = [
        ("cache", lambda: local_files(spec, folder, "cache"))]
    for label, fn in (("embedded copy", _from_embedded), ("peers", _from_peers),
                      ("upstream", _from_upstream)):
        sources.append((label, lambda fn=fn: _fetch_into(fn, spec, folder, progress)))
    tried: list[str] = []
    for label, get in sources:
        files = _attempt(spec, label, get, tried)
        if files is not None:
            return files
    raise DataError(f"no source has the pinned {spec.name} data ({'; '.join(tried)}); "
                    f"pass --data-dir DIR with its train.txt and valid.txt")


def _fetch_into(fn: Callable[..., dict], spec: DataSpec, folder: Path,
                progress: Progress | None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    return fn(spec, folder, progress)
