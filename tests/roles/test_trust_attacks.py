"""The trust audit of 2026-12-02: a hostile peer with free keys against the real roles, store and
trust computation (docs/TRUST.md). Each test is an attack that worked before its fix."""
from __future__ import annotations

from memory import codec, records as R
from roles import evidence
from roles.verifier import Verifier
from tests.roles.trust_world import (BASE, TRACK, Runner, baseline_ready, claim_body, hostile,
                                     node, run_body, sign)

TINY = {**BASE, "n_layer": 1}


def own_runs(store, author: str) -> list[R.RunBody]:
    """`author`'s published runs, oldest first, as signed."""
    return [codec.decode(bytes(raw)).body for (raw,) in store.query(
        "SELECT raw FROM records WHERE kind = 'run' AND author = ? ORDER BY ts, id",
        [author]).rows]


def test_a_copy_under_an_alias_config_earns_no_trust(store, keys) -> None:
    # The harness trains a config whose decay_frac changed under the cosine schedule bit for bit
    # as the config itself (likewise attn_window, attn_pattern "LL", muon_lr, ngram_weight where
    # unused), under another config hash. A free key re-signed the honest node's best baseline
    # seed under such an alias: no other author held that config and seed, so the node's spot
    # check replayed it, matched it bit for bit and vouched for the copier; the copier then
    # vouched for a second key by a "replay" and the two verified a fabricated claim.
    h = node(store, keys[0], Runner(), 1)
    baseline_ready(h)
    lucky = min((b for b in own_runs(store, h.me) if b.status == "ok"),
                key=lambda b: b.metrics.val_bpb)
    alias = {**lucky.config, "decay_frac": 0.7}
    s, t = hostile(2)
    sign(store, s, "run", run_body(alias, lucky.seed, lucky.metrics.val_bpb, "baseline"))
    for _ in range(2):
        Verifier().work(h)
    assert not evidence.verdicts_of(h).trust.trusted(s.peer_id)
    # what the copier did next, had the spot check vouched for it
    fake = sign(store, t, "run", run_body(BASE, 4242, 0.99, "baseline"))
    sign(store, s, "run", run_body(BASE, 4242, 0.99, "replay", fake.id))
    base = evidence.baseline(h)
    ids = [sign(store, s, "run", run_body(TINY, n, 0.90)).id for n in range(6)]
    claim = sign(store, s, "claim", claim_body(base.hash, TINY, {"n_layer": 1}, base.run_ids,
                                               ids, effect=-0.1)).id
    for n in range(3):
        sign(store, t, "run", run_body(TINY, 100 + n, 0.90, "verify", claim))
    v = evidence.verdicts_of(h)
    assert next(c for c in v.claims if c.id == claim).status != "verified"
    assert evidence.best_config(h) == BASE
