"""A track's text: pinned by sha256, taken from local files or fetched from the Hugging Face hub.

Order: an explicit data dir (`--data-dir`, then `$SWARM_DATA_DIR`) holding `train.txt` and
`valid.txt`; else the prepared copy cached under the home; else download the upstream prefixes,
prepare them with the spec's recipe and keep them only if they hash to the pins.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from node.harness.download import DownloadError, Progress, download, sha256_file
from node.home import cache_dir

log = logging.getLogger(__name__)
SPLITS = ("train", "valid")
HUB = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"
REPO_ROOT = Path(__file__).resolve().parents[2]


class DataError(RuntimeError):
    """The track's data is missing or is not the pinned bytes; the message is one line."""


class DataSpec(BaseModel):
    """The exact bytes a track trains and evaluates on, and where to get them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="data set name")
    train_sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$",
                                     description="sha256 of train.txt (None: pinned on first fetch)")
    valid_sha256: str | None = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of valid.txt")
    train_bytes: int = Field(gt=0, description="size of train.txt")
    valid_bytes: int = Field(gt=0, description="size of valid.txt")
    train_url: str = Field(description="upstream file the train split is prepared from")
    valid_url: str = Field(description="upstream file the valid split is prepared from")
    recipe: str = Field("tinystories-lower-v1", description="how upstream bytes become the split")

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


def prepare_tinystories(raw: bytes, size: int) -> bytes:
    """Recipe `tinystories-lower-v1`: drop `<|endoftext|>` lines, lower-case, keep `size` bytes."""
    text = raw.decode("utf-8", errors="ignore")
    lines = [ln for ln in text.split("\n") if ln.strip() != "<|endoftext|>"]
    return "\n".join(lines).lower().encode("utf-8")[:size]


def _check(path: Path, spec: DataSpec, split: str) -> str:
    """The file's sha256, after checking it against the pin (when there is one)."""
    sha, size = spec.pin(split)
    if not path.is_file():
        raise DataError(f"{path} is missing")
    if sha is not None and path.stat().st_size != size:
        raise DataError(f"{path} has {path.stat().st_size} bytes; the {spec.name} {split} split "
                        f"the track pins has {size}")
    got = sha256_file(path)
    if sha is not None and got != sha:
        raise DataError(f"{path} is not the {spec.name} {split} split the track pins "
                        f"(sha256 {got[:12]}…, want {sha[:12]}…)")
    return got


def local_files(spec: DataSpec, data_dir: Path) -> dict[str, tuple[Path, str]]:
    """`train.txt` and `valid.txt` in `data_dir` with their sha256, checked against the pins."""
    folder = Path(data_dir).expanduser()
    out = {}
    for split in SPLITS:
        path = folder / f"{split}.txt"
        out[split] = (path, _check(path, spec, split))
    return out


def _fetch_split(spec: DataSpec, split: str, folder: Path,
                 progress: Progress | None) -> tuple[Path, str]:
    sha, size = spec.pin(split)
    url = getattr(spec, f"{split}_url")
    # a prefix comfortably longer than the split: the recipe drops separator lines
    raw = folder / f"{split}.raw"
    if not raw.exists():
        log.info("fetching the first %d bytes of %s", size + size // 10 + 4096, url)
        download(url, raw, max_bytes=size + size // 10 + 4096, progress=progress)
    out = folder / f"{split}.txt"
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(prepare_tinystories(raw.read_bytes(), size))
    try:
        sha = _check(tmp, spec, split)
    except DataError:
        tmp.unlink()
        raise DataError(f"the prepared {split} split does not hash to the pin (upstream changed?)"
                        ) from None
    tmp.replace(out)
    raw.unlink()
    return out, sha


def resolve_data(spec: DataSpec, home: Path, data_dir: Path | str | None = None,
                 progress: Progress | None = None) -> dict[str, tuple[Path, str]]:
    """{split: (path, sha256)} of the verified text; raise `DataError` with a one-line reason."""
    data_dir = data_dir or os.environ.get("SWARM_DATA_DIR") or None
    if data_dir:
        return local_files(spec, Path(data_dir))
    folder = cache_dir(home) / "data" / spec.name
    try:
        return local_files(spec, folder)
    except DataError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return {s: _fetch_split(spec, s, folder, progress) for s in SPLITS}
    except (DownloadError, DataError) as exc:
        raise DataError(f"could not get {spec.name} from the hub ({exc}); put train.txt and "
                        f"valid.txt in a folder and pass --data-dir DIR (or set SWARM_DATA_DIR)"
                        ) from None
