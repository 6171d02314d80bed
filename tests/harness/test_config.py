"""Config validation: every knob's range, every refusal reason, canonical hashing."""
from __future__ import annotations

import pytest

from memory.canonical import config_hash
from node.harness.config import KNOBS, OPT_IN_KNOBS, Config, Refused, build_config, knob_table, parse_sets
from node.harness.feasibility import check_budget, check_fits, check_time, estimate_memory

BASE = Config().model_dump()
NUMERIC = [r for r in knob_table() if r["min"] is not None]


@pytest.mark.parametrize("row", NUMERIC, ids=[r["knob"] for r in NUMERIC])
def test_every_numeric_knob_is_range_checked(row: dict) -> None:
    step = 1 if row["type"] == "int" else 1e-6
    for bad in (row["min"] - step, row["max"] + step):
        with pytest.raises(Refused, match=row["knob"]):
            build_config(BASE, {row["knob"]: bad})


@pytest.mark.parametrize("knob,value", [("activation", "tanh"), ("norm", "batchnorm"),
                                        ("pos_encoding", "alibi"), ("schedule", "step")])
def test_choices_are_checked(knob: str, value: str) -> None:
    with pytest.raises(Refused, match=knob):
        build_config(BASE, {knob: value})


@pytest.mark.parametrize("overrides,reason", [
    ({"n_head": 5}, "divisible by n_head"),
    ({"pos_encoding": "rope", "n_embd": 96, "n_head": 32}, "even head size"),
    ({"schedule": "wsd", "warmup_frac": 0.5, "decay_frac": 0.6}, "warmup_frac \\+ decay_frac"),
    ({"nope": 1}, "unknown knob 'nope'"),
    ({"lr": "fast"}, "lr"),
    # true would be read as 1: the same run under another config hash
    ({"n_layer": True}, "n_layer: expected a number, got true"),
    ({"lr": False}, "lr: expected a number, got false"),
])
def test_cross_field_and_unknown_refusals(overrides: dict, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        build_config(BASE, overrides)


@pytest.mark.parametrize("item,reason", [("lr", "knob=value"), ("=3", "knob=value"),
                                         ("n_layer=2.5", "integer"), ("lr=abc", "number"),
                                         ("qk_norm=maybe", "true or false"), ("zz=1", "unknown"),
                                         # inf passed the bounds, then the config hash raised
                                         ("lr=1e400", "finite"), ("lr=nan", "finite")])
def test_parse_sets_refusals(item: str, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        parse_sets([item])


def test_parse_sets_types() -> None:
    got = parse_sets(["lr=1e-3", "n_layer=4", "qk_norm=true", "norm=rmsnorm", "mlp_ratio=3"])
    assert got == {"lr": 1e-3, "n_layer": 4, "qk_norm": True, "norm": "rmsnorm", "mlp_ratio": 3.0}
    assert type(got["mlp_ratio"]) is float and type(got["n_layer"]) is int


def test_hash_is_canonical_ints_stay_ints_floats_stay_floats() -> None:
    a = build_config(BASE, {"mlp_ratio": 4, "n_layer": 3})
    dump = a.model_dump()
    assert type(dump["mlp_ratio"]) is float and type(dump["n_layer"]) is int
    assert a.hash() == config_hash(dump) == config_hash(dict(reversed(dump.items())))
    assert a.hash() == Config().hash()
    assert build_config(BASE, {"lr": 1e-3}).hash() != a.hash()
    assert set(dump) == set(KNOBS) - set(OPT_IN_KNOBS)     # opt-in knobs at default: left out
    # -0.0 trains as 0.0: one hash; the same double however it was written: one hash
    assert build_config(BASE, {"dropout": -0.0, "z_loss": -0.0}).hash() == a.hash()
    assert build_config(BASE, {"lr": 0.1000000000000000055}).hash() == build_config(
        BASE, {"lr": 0.1}).hash()


def test_budget_refusals() -> None:
    cfg = Config(batch_size=4, seq_len=32)
    assert check_budget(cfg, 128 * 10) == 10
    with pytest.raises(Refused, match="less than one step"):
        check_budget(cfg, 100)
    with pytest.raises(Refused, match="ngram_steps"):
        check_budget(Config(batch_size=4, seq_len=32, ngram_steps=11), 1280)


def test_memory_refusals() -> None:
    cfg = Config()
    need = estimate_memory(cfg, 2048, 900_000)
    check_fits(cfg, 2048, 900_000, free_bytes=int(need * 2), device="cpu")
    with pytest.raises(Refused, match="GiB"):
        check_fits(cfg, 2048, 900_000, free_bytes=int(need), device="cpu")
    with pytest.raises(Refused, match="bigram teacher"):
        check_fits(Config(ngram_steps=10), 60000, 900_000, free_bytes=2**40, device="cpu")


def test_time_refusal() -> None:
    check_time(1e6, 1000, 1e9, timeout_s=10)             # needs 2 s: fine
    check_time(1e6, 10**9, 1e9, timeout_s=None)          # no limit: never refused
    with pytest.raises(Refused, match="limit is 10 s"):
        check_time(1e6, 10**6, 1e9, timeout_s=10)        # needs 2000 s


def test_every_knob_is_documented() -> None:
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "HARNESS.md").read_text()
    missing = [k for k in KNOBS if f"| `{k}` |" not in doc]
    assert not missing, f"knobs missing from docs/HARNESS.md: {missing}"
