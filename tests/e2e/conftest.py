"""End-to-end tests: real `swarm join` processes; leftovers are always killed."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from swarm.bench import nodes


@pytest.fixture(autouse=True)
def _kill_leftover_nodes() -> Iterator[None]:
    yield
    nodes.kill_all()
