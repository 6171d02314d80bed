"""The best verified config moves when a claim is verified, not with later runs' noise."""
from __future__ import annotations

from memory import records as R
from memory.canonical import config_hash
from roles import evidence
from roles.experimenter import Experimenter
from roles.statistician import Statistician
from roles.verifier import Verifier
from tests.roles.simulated import BASE, SD, SimRunner, context
from tests.roles.trust_world import Fixed, baseline_ready

A = {**BASE, "lr": 0.006}
C = {**A, "n_layer": 4}


def _verify(ctx) -> None:
    Statistician().work(ctx)
    assert "confirmed" in Verifier().work(ctx)


def _first_verified(store, keys, runner):
    """Nodes a, b, c (b and c trust each other and a); a's claim lr 0.006 verified by b."""
    ids = [k.peer_id for k in keys]
    a = context(store, keys[0], runner, 1)
    b = context(store, keys[1], runner, 2, pinned=frozenset({ids[0], ids[2]}))
    c = context(store, keys[2], runner, 3, pinned=frozenset({ids[0], ids[1]}))
    baseline_ready(a)
    assert "claimed" in Experimenter(Fixed({"lr": 0.006})).work(a)
    _verify(b)
    assert evidence.best_config(b) == A
    return a, b, c


def _two_verified_claims(store, keys):
    """a: lr 0.006 beats the base; b: n_layer 4 beats that, verified by c."""
    runner = SimRunner({("lr", 0.006): -5 * SD, ("n_layer", 4): -4 * SD})
    a, b, c = _first_verified(store, keys, runner)
    assert evidence.best_config(c) == A
    baseline_ready(b)                                # A's baseline seeds, then the next claim
    assert "claimed" in Experimenter(Fixed({"n_layer": 4})).work(b)
    _verify(c)
    return runner, b


def test_the_best_stays_when_its_own_later_runs_are_unlucky(store, keys) -> None:
    runner, b = _two_verified_claims(store, keys)
    assert evidence.best_config(b) == C
    # C, now the baseline, gets seeds of its own; these come out 6 sd worse than C really is
    # (noise, a bad machine): its mean over all runs falls behind A's. Ranking verified configs
    # by that moving mean (the old rule) flipped the best back to A.
    for seed in range(100, 140):
        body = runner(C, seed, "baseline", None)
        worse = body.model_copy(update={"metrics": body.metrics.model_copy(
            update={"val_bpb": body.metrics.val_bpb + 6 * SD})})
        b.publish("run", worse)
    v = evidence.verdicts_of(b)
    assert v.mean(config_hash(C))[0] > v.mean(config_hash(A))[0]     # the old rule's input
    assert evidence.best_config(b) == C
    assert v.best() == (config_hash(C), C)


def _claim_against_base(ctx, runner, diff: dict) -> None:
    """An honest claim of BASE + diff against the base (made while another node's best moved)."""
    base = evidence.baseline(ctx, dict(BASE))
    cand = {**BASE, **diff}
    runs = [ctx.publish("run", runner(cand, seed, "confirm", None)).id for seed in range(200, 206)]
    ctx.publish("claim", R.ClaimBody(
        track=ctx.track, baseline_hash=base.hash, candidate_hash=config_hash(cand), diff=diff,
        baseline_runs=base.run_ids, candidate_runs=runs, effect=-0.01, summary="concurrent"))


def test_a_claim_against_an_older_best_needs_a_margin(store, keys) -> None:
    runner = SimRunner({("lr", 0.006): -5 * SD, ("norm", "rmsnorm"): -5 * SD,
                        ("activation", "relu2"): -9 * SD})
    a, b, c = _first_verified(store, keys, runner)
    # Two claims against the base, not against A: as good as A (no margin: A stays), and 4 sd
    # better than A (beats A's evidence mean by more than min_effect_sd sds: it becomes the best).
    _claim_against_base(a, runner, {"norm": "rmsnorm"})
    Statistician().work(c)
    assert "confirmed" in Verifier().work(c)
    v = evidence.verdicts_of(b)
    assert len(v.verified()) == 2 and evidence.best_config(b) == A
    _claim_against_base(a, runner, {"activation": "relu2"})
    Statistician().work(c)
    while Verifier().work(c):
        pass
    assert len(evidence.verdicts_of(b).verified()) == 3
    assert evidence.best_config(b) == {**BASE, "activation": "relu2"}
