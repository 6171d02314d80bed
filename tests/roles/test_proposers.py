"""The search: optuna proposers rebuilt from the memory, the portfolio's bandit, crash-tolerant
confirmation. Real Store, real signed records, training simulated by `SimRunner`."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from memory import records as R, synthetic
from memory.canonical import config_hash
from memory.store import Store
from roles import search_evidence
from roles.base import Proposal
from roles.experimenter import Experimenter
from roles.proposers import OptunaProposer, Portfolio
from roles.proposers_space import Knob, Space
from tests.roles.simulated import BASE, PARAMS, SD, SimRunner, context

PARAMS_4 = dataclasses.replace(PARAMS, min_baseline=4)
KNOBS = {"lr": Knob("lr", "log", 1e-5, 1.0), "n_layer": Knob("n_layer", "int", 1, 48),
         "activation": Knob("activation", "cat", choices=("gelu", "relu2", "swiglu")),
         "norm": Knob("norm", "cat", choices=("layernorm", "rmsnorm"))}


class Fixed:
    """A proposer that proposes one diff under a given name."""

    def __init__(self, diff: dict[str, Any], name: str) -> None:
        self.diff, self.name = diff, name

    def propose(self, ctx: Any) -> Proposal:
        return Proposal(self.diff, f"{self.name}: fixed", "strategy")


def _fill(store: Store, keys: list, configs: int) -> None:
    """Experiments until the track has outcomes of `configs` configs."""
    ctx = context(store, keys[0], SimRunner({("norm", "rmsnorm"): -2 * SD}), seed=3)
    exp = Experimenter(OptunaProposer("tpe", knobs=KNOBS))
    while len(search_evidence.outcomes(ctx)) < configs:
        exp.work(ctx)


def test_two_stores_with_the_same_records_build_the_same_study(store, keys, tmp_path: Path) -> None:
    _fill(store, keys, 4)
    ids = [r[0] for r in store.query("SELECT id FROM records ORDER BY id DESC").rows]
    with Store(tmp_path / "other.duckdb") as other:
        other.add([store.get(i) for i in ids])              # another arrival order
        pins = frozenset({keys[0].peer_id})                 # outcomes count from trusted keys
        a, b = context(store, keys[1], None, pinned=pins), context(other, keys[1], None,
                                                                   pinned=pins)
        assert search_evidence.outcomes(context(store, keys[1], None)) == []   # a stranger's
        pa, pb = OptunaProposer("tpe", knobs=KNOBS), OptunaProposer("tpe", knobs=KNOBS)
        sa, _ = pa.study(a, seed=7)
        sb, _ = pb.study(b, seed=7)
        assert len(sa.trials) >= 4
        assert [(t.params, t.value) for t in sa.trials] == [(t.params, t.value) for t in sb.trials]
        assert pa.propose(a).diff == pb.propose(b).diff      # same node, same records: same ask


def test_leased_configs_are_pending_trials(store, keys) -> None:
    _fill(store, keys, 2)
    # a trusted author's lease (a stranger's is no trial: tests/roles/test_trust_attacks.py)
    me = context(store, keys[0], None, pinned=frozenset({keys[1].peer_id}))
    other = context(store, keys[1], None)
    diff = {"lr": 0.02, "norm": "rmsnorm"}
    hyp = other.publish("hypothesis", R.HypothesisBody(track=other.track, diff=diff,
                                                       rationale="tpe: x", source="strategy"))
    from roles import leases
    assert leases.take(other, "experiment", config_hash({**BASE, **diff}), hyp.id)
    study, _ = OptunaProposer("tpe", knobs=KNOBS).study(me)
    running = [t for t in study.trials if t.state.name == "RUNNING"]
    assert [t.params for t in running] == [{**{k: BASE[k] for k in KNOBS}, **diff}]
    assert search_evidence.pending(other, BASE) == []        # its own lease is not pending


def test_a_dry_window_widens_instead_of_idling(store, keys) -> None:
    ctx = context(store, keys[0], SimRunner())
    knobs = {"n_layer": KNOBS["n_layer"]}
    assert sorted(Space(BASE, knobs=knobs).dists["n_layer"].to_external_repr(x)
                  for x in (1, 6)) == [1, 6]                 # window 1..6 around 3
    exp = Experimenter(OptunaProposer("random", knobs=knobs))
    for _ in range(12):
        exp.work(ctx)
    seen = {o.config["n_layer"] for o in search_evidence.outcomes(ctx)}
    assert seen >= {1, 2, 3, 4, 5, 6} and max(seen) > 6     # went past the first window
    assert ctx.counters.get("random_widened", 0) >= 1


def _verified(ctx_a: Any, ctx_b: Any, runner: SimRunner, name: str, diff: dict[str, Any],
              gain: float, runs: int) -> None:
    """A hypothesis by `name`, `runs` runs spent on it by `ctx_a` and (gain > 0) a claim with
    the evidence that verifies it: `ctx_a`'s baseline, its confirmation runs, 3 fresh seeds by
    `ctx_b`. `runner` must make `diff` truly better by `gain` noise sds."""
    hyp = ctx_a.publish("hypothesis", R.HypothesisBody(
        track=ctx_a.track, diff=diff, rationale=f"{name}: test", source="strategy"))
    config = {**BASE, **diff}
    ids = [ctx_a.publish("run", runner(config, s, "screen" if s == 0 else "confirm", hyp.id)).id
           for s in range(runs)]
    if gain <= 0:
        return
    base = [r["id"] for r in ctx_a.rows("SELECT id FROM valid_runs WHERE purpose = 'baseline'")]
    claim = ctx_a.publish("claim", R.ClaimBody(
        track=ctx_a.track, baseline_hash=config_hash(BASE), candidate_hash=config_hash(config),
        diff=diff, baseline_runs=base, candidate_runs=ids[1:], effect=-gain * SD, summary="x"))
    for seed in range(1000, 1003):
        ctx_b.publish("run", runner(config, seed, "verify", claim.id))


def _forged(ctx: Any, name: str, diff: dict[str, Any]) -> None:
    """A claim "verified" by records alone: no evidence behind the testimony."""
    hyp = ctx.publish("hypothesis", R.HypothesisBody(
        track=ctx.track, diff=diff, rationale=f"{name}: forged", source="strategy"))
    claim = ctx.publish("claim", R.ClaimBody(
        track=ctx.track, baseline_hash=config_hash(BASE), candidate_hash=config_hash(
            {**BASE, **diff}), diff=diff, baseline_runs=[], candidate_runs=[hyp.id],
        effect=-10 * SD, summary="x"))
    ctx.publish("assessment", R.AssessmentBody(
        claim=claim.id, verdict="supported", test="welch", p_value=1e-9, q_value=1e-9,
        effect=-10 * SD, noise_floor=SD, n=9, reason="forged"))
    ctx.publish("verification", R.VerificationBody(
        claim=claim.id, outcome="confirmed", replay_run=hyp.id, replay_match=True, runs=[],
        effect=-10 * SD, reason="forged"))


def test_the_bandit_prefers_the_source_that_verified_more_per_run(store, keys) -> None:
    runner = SimRunner({("norm", "rmsnorm"): -3 * SD, ("activation", "relu2"): -2 * SD})
    a = context(store, keys[0], runner, seed=5, pinned=frozenset({keys[1].peer_id}))
    b = context(store, keys[1], runner)
    for seed in range(100, 108):
        a.publish("run", runner(BASE, seed, "baseline", None))
    _verified(a, b, runner, "good", {"norm": "rmsnorm"}, 3.0, 20)
    _verified(a, b, runner, "good", {"activation": "relu2"}, 2.0, 20)
    _verified(a, b, runner, "bad", {"n_layer": 4}, 0.0, 40)
    # A stranger's records testify to a verified claim for "bad": it buys "bad" nothing here.
    _forged(context(store, keys[2], runner), "bad", {"lr": 0.5})
    records = search_evidence.source_records(a)
    assert (records["good"].verified, records["bad"].verified) == (2, 0)
    assert records["good"].gain_sd == pytest.approx(5.0, rel=0.35) and records["bad"].runs == 40
    bandit = Portfolio({"good": Fixed({"lr": 0.01}, "good"), "bad": Fixed({"lr": 0.02}, "bad")})
    assert bandit.order(a)[0] in ("good", "bad")             # reads the records itself
    firsts = [bandit.draw(a.rng, records)[0] for _ in range(1000)]
    assert firsts.count("good") > 0.8 * 1000
    assert firsts.count("bad") > 0                          # exploration never stops
    split = [bandit.draw(a.rng, {})[0] for _ in range(1000)]     # no records: both asked
    assert 0.4 < split.count("good") / 1000 < 0.6


class Passes:
    """A proposer with nothing to propose."""

    def propose(self, ctx: Any) -> None:
        return None


def test_random_search_is_the_exploration_floor_only(store, keys) -> None:
    import random

    from roles.proposers import make_portfolio

    assert make_portfolio().floor == ("random",)
    bandit = Portfolio({"tpe": Fixed({"lr": 0.01}, "tpe"), "random": Fixed({"lr": 0.02}, "random")},
                       floor=("random",))
    rng = random.Random(4)
    # No record, or a record that favours it: random search comes first only in the uniform
    # draws (explore 0.1, half of them), never by its record.
    lucky = {"random": search_evidence.SourceRecord(runs=10, gain_sd=5.0, verified=2)}
    for records in ({}, lucky):
        firsts = [bandit.draw(rng, records)[0] for _ in range(2000)]
        assert 0.02 < firsts.count("random") / 2000 < 0.09
    # ... and whenever the others have nothing to propose.
    ctx = context(store, keys[0], None)
    floor_only = Portfolio({"tpe": Passes(), "random": Fixed({"lr": 0.02}, "random")},
                           floor=("random",))
    assert floor_only.propose(ctx).rationale.startswith("random:")


def test_after_a_verified_claim_only_untried_and_promoted_hypotheses_reopen(store, keys) -> None:
    from roles import evidence

    runner = SimRunner({("norm", "rmsnorm"): -3 * SD})
    a = context(store, keys[0], runner, seed=5, pinned=frozenset({keys[1].peer_id}))
    b = context(store, keys[1], runner)
    for seed in range(100, 108):
        a.publish("run", runner(BASE, seed, "baseline", None))

    def hypothesis(diff: dict[str, Any], purposes: list[str]) -> str:
        hyp = a.publish("hypothesis", R.HypothesisBody(
            track=a.track, diff=diff, rationale="tpe: test", source="strategy")).id
        for seed, purpose in enumerate(purposes):
            a.publish("run", runner({**BASE, **diff}, seed, purpose, hyp))
        return hyp

    promoted_old = hypothesis({"activation": "relu2"}, ["screen", "confirm", "confirm"])
    hypothesis({"lr": 0.02}, ["screen"])                     # turned down at the screen
    promoted_new = hypothesis({"n_layer": 4}, ["screen", "screen", "confirm"])
    fresh = hypothesis({"lr": 0.001}, [])                    # nobody tried it yet
    assert [h["id"] for h in evidence.open_hypotheses(a)] == [fresh]
    _verified(a, b, runner, "tpe", {"norm": "rmsnorm"}, 3.0, 20)
    assert evidence.best_config(a)["norm"] == "rmsnorm"      # the best moved
    assert [h["id"] for h in evidence.open_hypotheses(a)] == [fresh, promoted_new, promoted_old]


class CrashOnce(SimRunner):
    """Crashes the first run of any candidate with this purpose (confirmation by default)."""

    def __init__(self, effects: dict, purpose: str = "confirm") -> None:
        super().__init__(effects)
        self.crashed = 0
        self.purpose = purpose

    def __call__(self, config, seed, purpose, ref) -> R.RunBody:
        if purpose == self.purpose and not self.crashed:
            self.crashed += 1
            self.calls += 1
            return synthetic.run_body(self_track(), dict(config), seed, None, status="crash",
                                      purpose=purpose, ref=ref)
        return super().__call__(config, seed, purpose, ref)


def self_track() -> str:
    from tests.roles.simulated import TRACK
    return TRACK


def test_a_crashed_confirmation_run_is_replaced_not_fatal(store, keys) -> None:
    runner = CrashOnce({("norm", "rmsnorm"): -5 * SD})
    ctx = context(store, keys[0], runner, seed=1)
    exp = Experimenter(Fixed({"norm": "rmsnorm"}, "fixed"))
    while len(search_evidence.outcomes(ctx)) < 1 or ctx.counters.get("claims", 0) == 0:
        summary = exp.work(ctx)
        assert "dead end" not in summary
    assert runner.crashed == 1 and ctx.counters["confirm_crashes"] == 1
    claim = store.query("SELECT candidate_runs, summary FROM claims").rows[0]
    statuses = store.query("SELECT status FROM runs WHERE purpose = 'confirm' ORDER BY ts").rows
    assert statuses[0] == ("crash",) and len(statuses) >= 4
    assert "1 crashed confirmation run" in claim[1]
    assert len(json.loads(claim[0])) == len(statuses)                  # the crashed run stays in the evidence


def test_a_crashed_screening_run_is_replaced_once(store, keys) -> None:
    runner = CrashOnce({("norm", "rmsnorm"): -5 * SD}, purpose="screen")
    ctx = context(store, keys[0], runner, seed=1)
    exp = Experimenter(Fixed({"norm": "rmsnorm"}, "fixed"))
    while ctx.counters.get("claims", 0) == 0:
        assert "dead end" not in exp.work(ctx)
    assert runner.crashed == 1 and ctx.counters["screen_crashes"] == 1
    screens = store.query("SELECT status FROM runs WHERE purpose = 'screen' ORDER BY ts").rows
    assert screens == [("crash",), ("ok",)]             # the crash stays in the memory


def test_proposals_fit_the_tracks_budget(store, keys) -> None:
    # At 4,000 tokens (3 steps of 8 x 128) the harness refuses ngram_steps > 3 and batch_size 32
    # (one step is over the budget): the space is cut by the harness's own check, and what the
    # combination of knobs still breaks is re-asked, so no proposal is a run the harness refuses.
    from node.harness.config import Config, build_config
    from node.harness.feasibility import check_budget
    from roles.strategy import budget_validator, harness_validator

    base = Config().model_dump()
    assert harness_validator({**base, "ngram_steps": 4}, 4_000) is not None
    assert harness_validator({**base, "ngram_steps": 4}) is None         # no budget: ranges only
    ctx = context(store, keys[0], None, budget_tokens=4_000)
    ctx.base_config = base
    for kind in ("tpe", "random"):
        proposer = OptunaProposer(kind, budget_validator(4_000), attempts=6)
        _, space = proposer.study(ctx)
        assert space.dists["ngram_steps"].high == 3
        assert 32 not in space.dists["batch_size"].choices
        assert 16 in space.dists["batch_size"].choices
        for _ in range(12):
            diff = proposer.propose(ctx).diff
            check_budget(build_config(base, diff), 4_000)              # raises when refused


def test_nodes_topping_up_together_stop_at_the_minimum(store, keys) -> None:
    # Another node's baseline seed lands while each of ours runs: together they reach the
    # minimum (4) after two of ours, so this node stops there instead of running its unit of 3.
    runner = SimRunner()
    other = context(store, keys[1], runner)

    def run_beside(config: Any, seed: int, purpose: str, ref: Any) -> R.RunBody:
        other.publish("run", runner(config, seed + 1, purpose, ref))
        return runner(config, seed, purpose, ref)

    ctx = context(store, keys[0], run_beside, params=PARAMS_4,
                  pinned=frozenset({keys[1].peer_id}))
    assert Experimenter(Fixed({"lr": 0.006}, "x")).work(ctx) == (
        f"ran 2 baseline seed(s) of {config_hash(BASE)[:8]}")
    assert store.query("SELECT count(*) FROM runs WHERE purpose = 'baseline'").rows == [(4,)]


def test_continuous_proposals_are_binned_in_the_knob_estimate() -> None:
    # One feature per distinct lr would grow the fit with every run and estimate nothing.
    import random

    from roles.meta_analyst import BINS, fit

    rng = random.Random(0)
    configs = [dict(BASE) for _ in range(20)] + [
        {**BASE, "lr": 10 ** rng.uniform(-4, -1.5), "norm": rng.choice(["layernorm", "rmsnorm"])}
        for _ in range(300)]
    values = [1 + 0.02 * (c["lr"] > 0.01) - 0.01 * (c["norm"] == "rmsnorm") + rng.gauss(0, SD)
              for c in configs]
    effects = fit(configs, values, BASE)
    lrs = sorted((e.value, e.effect) for e in effects if e.knob == "lr")
    assert len(lrs) == BINS and sum(e.n for e in effects if e.knob == "lr") == 300
    assert lrs[-1][1] > 0.015 and abs(lrs[0][1]) < 0.005               # the harm is where it is
    norm = [e.effect for e in effects if e.knob == "norm"]
    assert len(norm) == 1 and abs(norm[0] + 0.01) < 0.002


def test_the_gp_sampler_is_a_source_of_its_own(store, keys) -> None:
    import optuna
    from roles.proposers import make_portfolio

    _fill(store, keys, 12)                    # past GPSampler's 10 startup trials
    ctx = context(store, keys[1], None, pinned=frozenset({keys[0].peer_id}))   # _fill's outcomes
    gp = OptunaProposer("gp", knobs=KNOBS)
    study, _ = gp.study(ctx)
    assert isinstance(study.sampler, optuna.samplers.GPSampler)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) >= 12
    proposal = gp.propose(ctx)
    assert proposal is not None and search_evidence.source_of("strategy", proposal.rationale) == "gp"
    tried = {o.hash for o in search_evidence.outcomes(ctx)}
    assert proposal.diff and config_hash({**BASE, **proposal.diff}) not in tried
    assert "gp" in make_portfolio(gp=True).proposers and "gp" not in make_portfolio().proposers


def test_knobs_that_do_nothing_under_the_others_are_not_proposed() -> None:
    # The harness trains muon_lr under AdamW, and attn_window with no S layer, bit for bit as the
    # config without them, under another hash (scripts/audit_alias_configs.py): the space drew
    # them anyway, so a proposal could be an alias of a config already run (a wasted experiment,
    # and runs that look like another config's).
    from node.harness.config import Config
    from roles.proposers_space import matters

    base = Config().model_dump()
    assert not matters("muon_lr", base) and matters("muon_lr", {**base, "optimizer": "muon"})
    for pattern, layers, window in (("L", 4, False), ("LL", 4, False), ("SL", 4, True),
                                    ("SL", 1, False), ("LS", 2, False), ("LS", 3, True)):
        config = {**base, "attn_pattern": pattern, "n_layer": layers}
        assert matters("attn_window", config) is window, (pattern, layers)
        assert any(Config(**config).layer_windows()) is window      # the harness's own tiling
    best = {**base, "muon_lr": 0.05, "attn_window": 32}              # AdamW, no S layer
    asked: list[str] = []
    Space(best).sample(lambda name, dist: asked.append(name) or best[name])
    assert "lr" in asked and not {"muon_lr", "attn_window"} & set(asked)
    assert not {"muon_lr", "attn_window"} & set(Space(best).params(best))
    muon = {**best, "optimizer": "muon", "attn_pattern": "SSL"}
    assert {"muon_lr", "attn_window"} <= set(Space(muon).params(muon))
