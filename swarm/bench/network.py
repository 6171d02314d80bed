"""`swarm bench network` (filled in below)."""
from __future__ import annotations


def bench() -> None:
    """Network benchmark."""
    raise NotImplementedError
