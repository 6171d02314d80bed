"""Fixtures shared by every test."""
from __future__ import annotations

from pathlib import Path

import pytest

from memory import synthetic
from memory.crypto import Keypair
from memory.store import Store


@pytest.fixture(autouse=True)
def _no_inherited_rate_limit() -> None:
    """A daemon started inside pytest puts node/quiet.py's RateLimit on the root logger's handlers,
    and pytest reuses its log-capturing handlers from test to test: a later test in the same
    worker then saw only the first of two warnings of one template within 60 s (CI: one pending
    run's "dropped" line of two). Each test starts without it."""
    from node import quiet

    quiet.uninstall()


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
