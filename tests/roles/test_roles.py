"""Roles over a real Store with real signed records; training simulated by `SimRunner`."""
from __future__ import annotations

from typing import Any

from memory import records as R
from memory.canonical import config_hash
from roles import choice, evidence, leases
from roles.experimenter import Experimenter
from roles.meta_analyst import MetaAnalyst, estimate
from roles.statistician import Statistician
from roles.strategy import Strategy
from roles.verifier import Verifier
from tests.roles.simulated import BASE, SD, SimRunner, context
from tests.roles.trust_world import Fixed, baseline_ready


def status(store: Any, claim_id: str) -> str:
    return store.query("SELECT status FROM claim_status WHERE claim = ?", [claim_id]).rows[0][0]


def only_claim(store: Any) -> str:
    rows = store.query("SELECT id FROM claims").rows
    assert len(rows) == 1
    return rows[0][0]


def pins(key: Any) -> frozenset[str]:
    """b trusts a (as if a were the peer b bootstrapped through: docs/TRUST.md)."""
    return frozenset({key.peer_id})


def test_real_effect_is_claimed_assessed_and_independently_verified(store, keys) -> None:
    runner = SimRunner({("lr", 0.006): -5 * SD})
    a, b = context(store, keys[0], runner, 1), context(store, keys[1], runner, 2, pinned=pins(keys[0]))
    baseline_ready(a)
    assert "claimed" in Experimenter(Fixed({"lr": 0.006})).work(a)
    claim = only_claim(store)
    assert status(store, claim) == "pending"
    assert "assessed 1" in Statistician().work(b)
    assert status(store, claim) == "supported"
    assert "confirmed" in Verifier().work(b)
    assert status(store, claim) == "verified"
    assert evidence.best_config(b)["lr"] == 0.006          # only verified claims move the best
    assert evidence.best_config(a) == BASE     # a does not trust b's fresh seeds (never replayed)
    Statistician().work(a)                     # a's noise floor over its own baseline runs
    floor = store.query("SELECT n, std FROM noise_floor").rows[0]
    assert floor[0] >= 8 and 0.0005 < floor[1] < 0.005


def test_fabricated_claim_is_refuted_and_its_author_suspect(store, keys) -> None:
    runner = SimRunner()                      # the change does nothing...
    cheat, b = context(store, keys[0], runner, 1), context(store, keys[1], runner, 2)
    baseline_ready(cheat)
    base = evidence.baseline(cheat)
    cand = {**BASE, "norm": "rmsnorm"}
    ids = []
    for seed in range(11, 17):                # ...but the cheat reports 5 sd better than it ran
        body = runner(cand, seed, "confirm", None)
        fake = body.model_copy(update={"metrics": body.metrics.model_copy(
            update={"val_bpb": body.metrics.val_bpb - 5 * SD})})
        ids.append(cheat.publish("run", fake).id)
    cheat.publish("claim", R.ClaimBody(
        track=cheat.track, baseline_hash=base.hash, candidate_hash=config_hash(cand),
        diff={"norm": "rmsnorm"}, baseline_runs=base.run_ids, candidate_runs=ids, effect=-0.01,
        summary="rmsnorm helps"))
    claim = only_claim(store)
    assert Statistician().work(b) is None        # b does not trust the cheat: no assessment,
    assert evidence.claims(b)[0]["status"] == "supported"   # but as reported the numbers pass
    assert "refuted" in Verifier().work(b)
    assert status(store, claim) == "refuted"
    suspects = store.query("SELECT author FROM suspect_authors").rows
    assert suspects == [(keys[0].peer_id,)]
    assert evidence.best_config(b) == BASE


def test_claim_verified_only_by_its_author_stays_unverified(store, keys) -> None:
    runner = SimRunner({("lr", 0.006): -5 * SD})
    a, b = context(store, keys[0], runner, 1), context(store, keys[1], runner, 2, pinned=pins(keys[0]))
    baseline_ready(a)
    Experimenter(Fixed({"lr": 0.006})).work(a)
    Statistician().work(b)
    claim = only_claim(store)
    assert Verifier.open_claims(a) == []           # its author never picks it up
    assert Verifier().work(a) is None
    a.publish("verification", R.VerificationBody(
        claim=claim, outcome="confirmed", replay_run=None, replay_match=True, runs=[],
        effect=-0.01, reason="I checked my own work"))
    assert status(store, claim) == "supported"


def test_lucky_seed_claim_is_not_accepted(store, keys) -> None:
    runner = SimRunner()                        # no knob has any effect
    a, b = context(store, keys[0], runner, 1), context(store, keys[1], runner, 2, pinned=pins(keys[0]))
    baseline_ready(a)
    base = evidence.baseline(a)
    cand = {**BASE, "activation": "relu2"}
    lucky = min(range(200), key=lambda s: runner.noise(cand, s))    # the luckiest of 200 seeds
    run = a.publish("run", runner(cand, lucky, "confirm", None))
    a.publish("claim", R.ClaimBody(
        track=a.track, baseline_hash=base.hash, candidate_hash=config_hash(cand),
        diff={"activation": "relu2"}, baseline_runs=base.run_ids, candidate_runs=[run.id],
        effect=run.body.metrics.val_bpb - 1.0, summary="relu2 helps (one seed)"))
    claim = only_claim(store)
    Statistician().work(b)
    assert status(store, claim) == "not_supported"
    reason = store.query("SELECT reason FROM assessments").rows[0][0]
    assert "confirmation runs" in reason


def test_null_changes_produce_dead_ends_not_verified_claims(store, keys) -> None:
    runner = SimRunner()
    a, b = context(store, keys[0], runner, 3), context(store, keys[1], runner, 4)
    baseline_ready(a)
    exp = Experimenter(Strategy())
    done = [exp.work(a) for _ in range(12)]
    assert done[-1] is None                      # the small knob space is exhausted, not repeated
    n = sum(1 for d in done if d and d.startswith(("dead end", "claimed")))
    assert n >= 6
    Statistician().work(b)
    while Verifier().work(b):
        pass
    verified = store.query("SELECT count(*) FROM claim_status WHERE status = 'verified'").rows
    assert verified == [(0,)]
    experiments = store.query("SELECT (SELECT count(*) FROM dead_ends) + (SELECT count(*) FROM "
                              "failed_confirmations) + (SELECT count(*) FROM claims)").rows
    assert experiments == [(n,)]
    # a dead end is not proposed again
    tried = evidence.tried_configs(a)
    assert len({config_hash(c) for c in tried}) == len(tried)


def test_leases_block_others_until_they_expire(store, keys) -> None:
    clock = [1_000_000.0]
    a = context(store, keys[0], None, clock=lambda: clock[0])
    b = context(store, keys[1], None, clock=lambda: clock[0])
    assert leases.take(a, "experiment", "ab" * 16, None, seconds=60)
    assert leases.held_by_other(b, "experiment", "ab" * 16)
    assert not leases.take(b, "experiment", "ab" * 16)
    assert not leases.held_by_other(a, "experiment", "ab" * 16)      # one's own lease
    clock[0] += 61                                                  # node a is gone
    assert leases.take(b, "experiment", "ab" * 16)


def test_near_duplicates() -> None:
    assert leases.near_duplicate({**BASE, "lr": 0.00301}, [BASE])
    assert not leases.near_duplicate({**BASE, "lr": 0.006}, [BASE])
    assert leases.config_distance(BASE, {**BASE, "norm": "rmsnorm"}) == 1.0


def test_a_node_without_data_never_takes_a_training_role(store, keys) -> None:
    """With no open work but the experimenter's standing 1, a data-less node chose "experimenter"
    (weighted down, never out) and published role records for work it could not do."""
    ctx = context(store, keys[0], None, 1)
    picks = [choice.choose(ctx, can_train=False) for _ in range(12)]
    assert {p.role for p in picks} <= {"statistician", "meta_analyst"}
    assert all(p.scores["experimenter"] == p.scores["verifier"] == 0.0 for p in picks)
    assert {choice.choose(ctx).role for _ in range(12)} >= {"experimenter"}


def test_role_choice_follows_open_work_and_hardware(store, keys) -> None:
    runner = SimRunner({("lr", 0.006): -5 * SD})
    a, b = context(store, keys[0], runner, 1), context(store, keys[1], runner, 2, pinned=pins(keys[0]))
    baseline_ready(a)
    Experimenter(Fixed({"lr": 0.006})).work(a)
    assert choice.open_work(b)["statistician"] >= 1
    slow = [choice.choose(b, can_train=False).role for _ in range(4)]
    assert set(slow) <= {"statistician", "meta_analyst"}
    # an awaiting claim is assessed first, whatever the jitter (the statistician trains nothing)
    assert {choice.choose(b).role for _ in range(8)} == {"statistician"}
    Statistician().work(b)
    picks = {choice.choose(b).role for _ in range(12)}
    assert "verifier" in picks and len(picks) >= 2               # randomness: no herding
    assert choice.choose(b, pinned="meta_analyst").role == "meta_analyst"
    mix = store.query("SELECT role, sum(times) FROM role_mix WHERE author = ? GROUP BY role",
                      [keys[1].peer_id]).rows
    assert sum(n for _, n in mix) == 25


def test_meta_analysis_recovers_knob_effects(store, keys) -> None:
    runner = SimRunner({("lr", 0.006): -5 * SD, ("norm", "rmsnorm"): 3 * SD})
    a = context(store, keys[0], runner, 1)
    for i in range(8):
        for cfg in (BASE, {**BASE, "lr": 0.006}, {**BASE, "norm": "rmsnorm"}):
            a.publish("run", runner(cfg, i, "manual", None))
    effects = {(e.knob, e.value): e for e in estimate(a)}
    assert abs(effects[("lr", 0.006)].effect + 5 * SD) < 3 * effects[("lr", 0.006)].stderr
    assert abs(effects[("norm", "rmsnorm")].effect - 3 * SD) < 3 * effects[("norm", "rmsnorm")].stderr
    assert "finding" in MetaAnalyst().work(a)
    text = store.query("SELECT text FROM findings").rows[0][0]
    assert "helped: lr=0.006" in text and "never tried: activation, n_layer" in text
    assert MetaAnalyst().work(a) is None            # nothing new since
    assert Strategy(explore=0.0).propose(a).diff == {"lr": 0.006}   # guided by the estimate
