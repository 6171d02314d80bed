"""Network tests: real `swarm join` processes on loopback; leftovers are always killed."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.network import launcher


@pytest.fixture(autouse=True)
def _kill_leftover_nodes() -> Iterator[None]:
    yield
    launcher.kill_all()


@pytest.fixture
def network() -> str:
    """A swarm network name of this test's own, so tests never exchange records."""
    return f"test-{uuid.uuid4().hex[:8]}"
