"""Where a track's bytes come from: data dir, cache, the embedded copy, peers, upstream parquet at a
pinned revision (through huggingface_hub's real cache, offline), always checked against the pins."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from node.harness import data as data_mod
from node.harness.data import DataError, DataSpec, embedded_dir, local_files, resolve_data
from node.harness.hub import HubFile, HubSource
from node.harness.tracks import TRACKS

CPU = TRACKS["tinystories-cpu"]
REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARM_DATA_DIR", raising=False)
    monkeypatch.setattr(data_mod, "_peer_fetch", None)


def _sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def test_fresh_home_without_network_gets_the_embedded_copy(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, "node.harness.data")
    assert embedded_dir(CPU.data) is not None
    files = resolve_data(CPU.data, tmp_path / "home")
    assert files["train"][1] == CPU.data.train_sha256 == data_mod.sha256_file(files["train"][0])
    assert files["valid"][1] == CPU.data.valid_sha256
    assert "embedded copy: ok" in caplog.text and "cache: train.txt is missing" in caplog.text
    assert data_mod.held(CPU.data.train_sha256) == files["train"][0]       # servable to peers
    caplog.clear()
    resolve_data(CPU.data, tmp_path / "home")                 # second time: the cache
    assert "cache: ok" in caplog.text and "embedded" not in caplog.text
    assert CPU.id == "tinystories-cpu:1c8bad0569f51e13a82b7ce5a0b3c596"      # id unchanged


def test_a_wrong_data_dir_is_one_line_naming_source_and_hash(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    packed = embedded_dir(CPU.data)
    import lzma
    for split in ("train", "valid"):
        (bad / f"{split}.txt").write_bytes(lzma.decompress((packed / f"{split}.txt.xz").read_bytes()))
    with (bad / "train.txt").open("r+b") as f:                # same size, one byte changed
        f.write(b"X")
    monkeypatch.setenv("SWARM_DATA_DIR", str(bad))
    with pytest.raises(DataError) as err:                     # named by the user: no fall-through
        resolve_data(CPU.data, tmp_path / "home")
    text = str(err.value)
    assert f"SWARM_DATA_DIR {bad}: train.txt has sha256" in text and "\n" not in text
    assert CPU.data.train_sha256[:16] in text
    assert not (tmp_path / "home").exists()                   # nothing else was tried


def test_local_files_checksum_refusal(tmp_path: Path, corpus, track) -> None:
    folder, data = corpus
    assert local_files(track.data, folder)["train"][1] == track.data.train_sha256
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.txt").write_bytes(data["train"][:-1] + b"X")
    (bad / "valid.txt").write_bytes(data["valid"])
    with pytest.raises(DataError, match=f"--data-dir {bad}: train.txt has sha256"):
        resolve_data(track.data, tmp_path / "home", bad)
    with pytest.raises(DataError) as err:                     # no source has it
        resolve_data(track.data, tmp_path / "home")
    text = str(err.value)
    for source in ("cache: train.txt is missing", "embedded copy: none", "peers: no host running",
                   "upstream: none pinned"):
        assert source in text and "\n" not in text


# ---- upstream: parquet rows at a pinned revision, through huggingface_hub's own cache ----

STORIES = [f"  Once upon a time, Story {i} had a Big Dog.\nThe End {i}.  " for i in range(400)]


def _hub_cache(cache: Path, repo: str, files: dict[str, list[str]]) -> dict[str, str]:
    """Write parquet files where huggingface_hub looks for `repo`@REV offline; {path: sha256}."""
    snap = cache / f"datasets--{repo.replace('/', '--')}" / "snapshots" / REV
    out = {}
    for path, texts in files.items():
        target = snap / path
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"text": texts, "n": list(range(len(texts)))}), target)
        out[path] = _sha(target.read_bytes())
    return out


def _hub_spec(shas: dict[str, str], sizes: tuple[int, int]) -> DataSpec:
    source = HubSource(repo="test/stories", revision=REV,
                       train=(HubFile(path="data/train.parquet", sha256=shas["data/train.parquet"]),),
                       valid=(HubFile(path="data/valid.parquet", sha256=shas["data/valid.parquet"]),))
    return DataSpec(name="hub-test", train_sha256=None, valid_sha256=None, train_bytes=sizes[0],
                    valid_bytes=sizes[1], recipe=source.recipe, source=source)


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)      # never touch the network


def test_upstream_parquet_rows_prepared_by_the_recipe(tmp_path: Path, offline) -> None:
    home = tmp_path / "home"
    shas = _hub_cache(home / "cache" / "hub", "test/stories",
                      {"data/train.parquet": STORIES[:300], "data/valid.parquet": STORIES[300:]})
    spec = _hub_spec(shas, (5000, 2000))
    files = resolve_data(spec, home)
    train = files["train"][0].read_bytes()
    expected = b"".join(s.strip().lower().encode() + b"\n\n" for s in STORIES[:300])[:5000]
    assert train == expected and len(train) == 5000
    assert train.startswith(b"once upon a time, story 0 had a big dog.\nthe end 0.\n\nonce")
    pinned = CPU.model_copy(update={"data": spec}).pinned(files["train"][1], files["valid"][1])
    other = spec.model_copy(update={"source": spec.source.model_copy(update={"revision": "f" * 40})})
    moved = CPU.model_copy(update={"data": other}).pinned(files["train"][1], files["valid"][1])
    assert pinned.id != moved.id                      # the revision is part of the track id


def test_upstream_file_that_does_not_match_its_pin_is_refused(tmp_path: Path, offline) -> None:
    home = tmp_path / "home"
    shas = _hub_cache(home / "cache" / "hub", "test/stories",
                      {"data/train.parquet": STORIES[:300], "data/valid.parquet": STORIES[300:]})
    spec = _hub_spec({**shas, "data/train.parquet": "0" * 64}, (5000, 2000))
    with pytest.raises(DataError) as err:
        resolve_data(spec, home)
    assert f"data/train.parquet has sha256 {shas['data/train.parquet'][:16]}, the pin 0000" \
        in str(err.value)
    assert "upstream test/stories@0123456789ab" in str(err.value)
    assert not (home / "cache" / "data" / "hub-test" / "train.txt").exists()


def test_upstream_not_cached_offline_and_too_short(tmp_path: Path, offline) -> None:
    home = tmp_path / "home"
    with pytest.raises(DataError, match="not reachable and not in the hub cache"):
        resolve_data(_hub_spec({"data/train.parquet": "1" * 64, "data/valid.parquet": "2" * 64},
                               (10, 10)), home)
    shas = _hub_cache(home / "cache" / "hub", "test/stories",
                      {"data/train.parquet": STORIES[:3], "data/valid.parquet": STORIES[3:6]})
    with pytest.raises(DataError, match="hold .* prepared bytes, the split needs 100000"):
        resolve_data(_hub_spec(shas, (100_000, 10)), home)


def test_the_gpu_track_names_its_upstream_by_revision_and_hash() -> None:
    spec = TRACKS["tinystories-gpu"].data
    assert spec.source is not None and len(spec.source.revision) == 40
    assert all(len(f.sha256) == 64 for f in (*spec.source.train, *spec.source.valid))
    assert "source" in spec.model_dump() and "source" not in CPU.data.model_dump()


def test_upstream_files_are_asked_of_peers_with_their_size_bound(tmp_path: Path) -> None:
    from node.harness.hub import _from_peers
    from node.harness.tracks import TINYSTORIES_HUB

    asked = []

    def peer_fetch(sha: str, size: int | None, dest: Path, most: int | None = None) -> Path:
        asked.append((size, most))
        raise DataError("no peer connected")

    for item in (*TINYSTORIES_HUB.train, *TINYSTORIES_HUB.valid):
        assert _from_peers(item, tmp_path, peer_fetch) is None
    assert asked == [(None, 256 << 20), (None, 32 << 20)]
    # the bound is no part of the track's identity (its dump, hence its id)
    assert "max_bytes" not in json.dumps(TINYSTORIES_HUB.model_dump())


def test_peer_fetch_is_asked_before_upstream_and_its_bytes_are_checked(tmp_path: Path,
                                                                         monkeypatch) -> None:
    # The hook node/blob.py installs; here a folder stands in for the peers (the protocol itself
    # is tested with real hosts in tests/network/test_blob.py).
    packed = embedded_dir(CPU.data)
    monkeypatch.setattr(data_mod, "EMBEDDED", tmp_path / "nothing")
    asked = []

    def from_folder(sha: str, size: int, dest: Path) -> Path:
        asked.append(sha)
        import lzma
        split = "train" if sha == CPU.data.train_sha256 else "valid"
        dest.write_bytes(lzma.decompress((packed / f"{split}.txt.xz").read_bytes()))
        return dest

    data_mod.set_peer_fetch(from_folder)
    files = resolve_data(CPU.data, tmp_path / "home")
    assert asked == [CPU.data.train_sha256, CPU.data.valid_sha256]
    assert files["valid"][1] == CPU.data.valid_sha256
    shutil.rmtree(tmp_path / "home")
    data_mod.set_peer_fetch(lambda sha, size, dest: dest.write_bytes(b"x" * size) and dest)
    with pytest.raises(DataError, match="peers: train.txt has sha256"):
        resolve_data(CPU.data, tmp_path / "home")
