"""The response-surface proposer (`roles/proposers_rsm.py`): the model, its steps, its proposals."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from memory.canonical import config_hash
from memory.store import Store
from roles import search_evidence
from roles.experimenter import Experimenter
from roles.proposers import OptunaProposer, make_portfolio
from roles.proposers_rsm import Model, SurfaceProposer, moves
from roles.proposers_space import Knob
from tests.roles.simulated import BASE, SD, SimRunner, context

KNOBS = {"lr": Knob("lr", "log", 1e-5, 1.0), "n_layer": Knob("n_layer", "int", 1, 48),
         "activation": Knob("activation", "cat", choices=("gelu", "relu2", "swiglu")),
         "norm": Knob("norm", "cat", choices=("layernorm", "rmsnorm"))}


def _bowl(config: dict[str, Any]) -> float:
    """Noise sds above the optimum: lr 0.012 (two octaves up), n_layer 5, swiglu; norm idle."""
    return (1.5 * (math.log2(config["lr"] / 0.012)) ** 2 + 0.5 * (config["n_layer"] - 5) ** 2
            + {"gelu": 2.0, "relu2": 1.0, "swiglu": 0.0}[config["activation"]])


def _outcomes(n: int, seed: int = 0) -> list[search_evidence.Outcome]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        config = {**BASE, "lr": 0.003 * 2 ** rng.uniform(-2, 2), "n_layer": rng.randint(1, 6),
                  "activation": rng.choice(["gelu", "relu2", "swiglu"]),
                  "norm": rng.choice(["layernorm", "rmsnorm"])}
        mean = 1.0 + SD * (_bowl(config) + rng.gauss(0, 1) / math.sqrt(2))
        out.append(search_evidence.Outcome(config_hash(config), config, mean, 2))
    return out


def test_the_fitted_surface_points_at_the_optimum() -> None:
    model = Model(dict(BASE), KNOBS, _outcomes(40), SD)
    steps = {name: value for _, name, value in moves(model, model.mean, reach=1.0)}
    assert 0.009 <= steps["lr"] <= 0.016                  # the vertex, 2 octaves from the best
    assert steps["n_layer"] == 5
    assert steps["activation"] == "swiglu"
    gains = {name: gain for gain, name, _ in moves(model, model.mean, reach=1.0)}
    assert gains["lr"] > 4 and gains["activation"] > 1.5   # in noise sds, as the bowl says
    assert abs(gains.get("norm", 0.0)) < 1.0               # an idle knob gains nothing much


def test_steps_stay_within_reach_of_the_values_seen() -> None:
    outcomes = [o for o in _outcomes(60) if o.config["lr"] <= 0.003]   # lr seen only below
    model = Model(dict(BASE), KNOBS, outcomes, SD)
    lr = {name: value for _, name, value in moves(model, model.mean, reach=0.5)}["lr"]
    assert 0.003 < lr <= 0.003 * 2 ** 1.01                  # half a window (one octave) past


def test_draws_spread_over_uncertain_knobs() -> None:
    model = Model(dict(BASE), KNOBS, _outcomes(30), SD)
    rng = np.random.default_rng(1)
    lrs = {m[2] for _ in range(20) for m in moves(model, model.draw(rng)) if m[1] == "lr"}
    assert len(lrs) > 5                                     # Thompson draws differ
    assert np.allclose(np.mean([model.draw(rng) for _ in range(4000)], axis=0), model.mean,
                       atol=0.15)


def _fill(store: Store, keys: list, configs: int) -> Any:
    ctx = context(store, keys[0], SimRunner({("norm", "rmsnorm"): -2 * SD}), seed=3)
    exp = Experimenter(OptunaProposer("random", knobs=KNOBS))
    while len(search_evidence.outcomes(ctx)) < configs:
        exp.work(ctx)
    return ctx


def test_it_passes_until_the_track_has_outcomes_then_proposes_a_new_config(store, keys) -> None:
    ctx = _fill(store, keys, 6)
    proposer = SurfaceProposer(knobs=KNOBS, min_outcomes=12)
    assert proposer.propose(ctx) is None                   # too few outcomes: TPE's turn
    _fill(store, keys, 12)
    proposal = proposer.propose(ctx)
    assert proposal is not None and proposal.rationale.startswith("rsm: ")
    tried = [o.hash for o in search_evidence.outcomes(ctx)]
    assert config_hash({**BASE, **proposal.diff}) not in tried
    assert 1 <= len(proposal.diff) <= 4
    assert proposer.suggestions(ctx)[0].get("norm") == "rmsnorm"   # the fill's one real effect


def test_a_proposal_the_harness_refuses_is_never_made(store, keys) -> None:
    ctx = _fill(store, keys, 12)
    def refuse(config: dict[str, Any]) -> str | None:
        return "no rmsnorm here" if config["norm"] == "rmsnorm" else None

    free, held = SurfaceProposer(knobs=KNOBS, min_outcomes=12), SurfaceProposer(
        refuse, knobs=KNOBS, min_outcomes=12)
    assert any(free.propose(ctx).diff.get("norm") == "rmsnorm" for _ in range(5))  # it would
    for _ in range(5):
        proposal = held.propose(ctx)
        assert proposal is None or refuse({**BASE, **proposal.diff}) is None


def test_two_stores_with_the_same_records_propose_the_same(store, keys, tmp_path: Path) -> None:
    _fill(store, keys, 12)
    ids = [r[0] for r in store.query("SELECT id FROM records ORDER BY id DESC").rows]
    with Store(tmp_path / "other.duckdb") as other:
        other.add([store.get(i) for i in ids])
        pins = frozenset({keys[0].peer_id})
        a, b = context(store, keys[1], None, pinned=pins), context(other, keys[1], None,
                                                                   pinned=pins)
        pa = SurfaceProposer(knobs=KNOBS, min_outcomes=12).propose(a)
        pb = SurfaceProposer(knobs=KNOBS, min_outcomes=12).propose(b)
        assert pa is not None and pb is not None and pa.diff == pb.diff


def test_the_portfolio_asks_the_response_surface_too() -> None:
    assert set(make_portfolio().proposers) == {"tpe", "random", "rsm"}


def test_a_knob_that_does_nothing_in_the_best_config_is_left_out() -> None:
    knobs = {**KNOBS, "schedule": Knob("schedule", "cat", choices=("cosine", "wsd")),
             "decay_frac": Knob("decay_frac", "float", 0.0, 1.0)}
    best = {**BASE, "schedule": "cosine", "decay_frac": 0.2}
    outcomes = [search_evidence.Outcome(o.hash, {**best, **o.config, "decay_frac": 0.1 * (i % 5)},
                                        o.mean, o.n) for i, o in enumerate(_outcomes(30))]
    assert "decay_frac" not in {a.knob.name for a in Model(best, knobs, outcomes, SD).axes}
    on = {**best, "schedule": "wsd"}
    assert "decay_frac" in {a.knob.name for a in Model(on, knobs, outcomes, SD).axes}


def test_odd_values_in_the_outcomes_are_left_out_not_fatal() -> None:
    odd = [{**BASE, "activation": ["swiglu"]}, {**BASE, "lr": 1e308}, {**BASE, "n_layer": 10**400},
           {**BASE, "lr": float("inf")}, {**BASE, "lr": float("nan")}]
    outcomes = _outcomes(40) + [search_evidence.Outcome(str(i), c, 1.0, 2)
                                for i, c in enumerate(odd)]
    outcomes.append(search_evidence.Outcome("nan", dict(BASE), float("nan"), 2))
    model = Model(dict(BASE), KNOBS, outcomes, SD)
    assert np.isfinite(model.mean).all()
    steps = {name: value for _, name, value in moves(model, model.mean, reach=1.0)}
    assert 0.009 <= steps["lr"] <= 0.016 and steps["activation"] == "swiglu"
