"""Fixtures shared by every test."""
from __future__ import annotations

from pathlib import Path

import pytest

from memory import synthetic
from memory.crypto import Keypair
from memory.store import Store


@pytest.fixture
def keys() -> list[Keypair]:
    """Three deterministic authors."""
    return synthetic.keypairs(3, seed=42)


@pytest.fixture
def store(tmp_path: Path):
    """A fresh store on disk."""
    with Store(tmp_path / "memory.duckdb") as s:
        yield s


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated node home (also set as SWARM_HOME)."""
    path = tmp_path / "home"
    monkeypatch.setenv("SWARM_HOME", str(path))
    return path
