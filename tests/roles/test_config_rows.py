"""The per-config rows as arrays (roles/config_rows.py): the best few picked through float means
equal an exact sort of every config, ties and means closer than a float can tell included; the
rows stay exact in Python integers past the int64 bound; moves add up like the tuples did."""
from __future__ import annotations

import random

import numpy as np
import pytest

from roles import config_rows
from roles.config_rows import Rows

PICO = 10**12


def _exact(rows: dict[str, tuple[int, int, int, int]], limit: int) -> tuple[list[str], list[str]]:
    """The ranking by the exact key over every config (what `Rows.top` must give)."""
    trusted = sorted(((s << 64) // n, h) for h, (s, n, _, _) in rows.items() if n)
    others = sorted(((s << 64) // n, h) for h, (t, tn, s, n) in rows.items() if n and not tn)
    return [h for _, h in trusted[:limit]], [h for _, h in others[:limit]]


def _random_rows(rng: random.Random, n: int) -> dict[str, tuple[int, int, int, int]]:
    rows = {}
    for i in range(n):
        t_n, u_n = rng.choice([0, 1, 3, 20]), rng.choice([0, 1, 7])
        if not t_n and not u_n:
            continue
        # Values near 1.0: many means equal, or a unit of 1e-12 apart over many runs (closer
        # than a float mean can tell).
        t_sum = sum(PICO + rng.choice([0, 1, 2, 500]) for _ in range(t_n))
        u_sum = sum(PICO + rng.choice([0, 3]) for _ in range(u_n))
        rows[f"{rng.getrandbits(64):016x}{i}"] = (t_sum, t_n, u_sum, u_n)
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_equals_an_exact_sort_of_every_config(seed: int) -> None:
    rng = random.Random(seed)
    rows = _random_rows(rng, 3000)
    found = Rows.of(rows, bound=30)
    for limit in (1, 5, 20, 100, 10**6):
        assert found.top(limit) == _exact(rows, limit)
    assert found.as_dict() == rows


def test_means_a_float_cannot_tell_apart_rank_exactly() -> None:
    """Three configs whose means differ by less than a float's precision, and two equal means
    (ties by hash): the float pass keeps all of them as candidates, the exact sort orders them."""
    n = 10**6
    rows = {"c": (n * PICO + 2, n, 0, 0), "a": (n * PICO + 1, n, 0, 0),
            "b": (n * PICO, n, 0, 0), "e": (2 * PICO, 2, 0, 0), "d": (PICO, 1, 0, 0)}
    rows.update({f"z{i}": (2 * PICO + i, 1, 0, 0) for i in range(50)})
    assert Rows.of(rows, bound=n).top(4)[0] == ["b", "d", "e", "a"]
    assert Rows.of(rows, bound=n).top(5)[0] == ["b", "d", "e", "a", "c"]


def test_rows_past_the_int64_bound_are_python_integers(monkeypatch) -> None:
    """A bound above SAFE_N (a config that may hold more runs than an int64 sum allows) keeps
    the rows as Python integers: sums beyond 2**63 stay exact, through copies and moves."""
    big = 2**70 + 12345
    rows = {"a": (big, 3, 5, 1), "b": (7, 1, 0, 0)}
    found = Rows.of(rows, bound=config_rows.SAFE_N + 1)
    assert found.values.dtype == object
    moved = found.copy()
    moved.move(np.array([0, 0]), np.array([5, 5], dtype=object), np.array([1, 1]), False)
    assert moved.get("a") == (big - 10, 1, 15, 3)
    assert found.get("a") == (big, 3, 5, 1)                       # copies never share values
    small = Rows.of({"a": (5, 1, 0, 0)}, bound=1)
    assert small.values.dtype == np.int64
    assert small.copy(more_runs=config_rows.SAFE_N).values.dtype == object


def test_set_adds_configs_and_zero_rows_are_absent() -> None:
    found = Rows.of({"a": (PICO, 1, 0, 0)}, bound=1)
    later = found.copy(more_runs=1)
    later.set("new", (0, 0, 2 * PICO, 1))
    later.set("a", (0, 0, 0, 0))
    assert later.as_dict() == {"new": (0, 0, 2 * PICO, 1)}
    assert later.top(5) == ([], ["new"])
    assert found.as_dict() == {"a": (PICO, 1, 0, 0)} and found.get("new") == (0, 0, 0, 0)
    assert found.top(5) == (["a"], [])
