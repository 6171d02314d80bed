"""`write_atomic`: a file is replaced whole or not at all, and a failed write leaves nothing."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memory.atomic import write_atomic
from node.harness import hardware


def test_a_write_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "table.json"
    path.write_text("old")
    write_atomic(path, "new")
    write_atomic(path, b"newer")
    assert path.read_text() == "newer" and [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()                   # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        write_atomic(target, "x")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and not any(target.iterdir())


def test_a_peak_cache_that_cannot_be_written_costs_nothing_but_the_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("a file where the cache's folder should be")
    peak = hardware.peak_flops(torch.device("cpu"), torch.float32, 1, blocker / "peak.json")
    assert peak > 0 and blocker.read_text().startswith("a file")


def test_a_writer_that_fails_midway_leaves_the_old_file_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    write_atomic(path, lambda f: f.write(b"step 10"), durable=True)

    def half(f) -> None:                  # a checkpoint cut off by a full disk
        f.write(b"step 2")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        write_atomic(path, half, durable=True)
    assert path.read_bytes() == b"step 10" and [p.name for p in tmp_path.iterdir()] == ["run.pt"]
