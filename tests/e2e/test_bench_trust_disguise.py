"""A fabricator that names other software or another CPU is judged as across hardware: replays of
its made-up numbers (0.05 off) no longer refute it, yet nothing it signs may count.

scripts/bench_trust_disguise.py measures it at length (docs/TRUST.md, "Measured"); this runs it
small: false verified and honest verified lost stay 0 whatever the fabricators claim to run on.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_trust_disguise.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_trust_disguise", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("disguise", ["none", "code", "device"])
def test_disguised_fabricators_count_for_nothing(disguise: str) -> None:
    figures = _script().measure(disguise, keys=1000, rounds=8)
    assert figures["fabricators"] > 0 and figures["hostile_replayed"] > 0
    assert figures["false_verified"] == 0 and figures["honest_verified_lost"] == 0


def test_the_disguise_leaves_the_bench_as_it_was() -> None:
    from swarm.bench import trust

    plain = trust._body
    _script().measure("code", keys=3, rounds=1)
    assert trust._body is plain
