"""Verifier: re-run another peer's claim (replay one of its runs, then fresh seeds), or spot-check
the most influential run of a not-yet-trusted author.

A replay is a `run` with purpose `replay` and `ref` = the run replayed; it must land on the
reported val_bpb (near-exact on the same hardware, looser across hardware: roles/trust.py `judge`).
Replays are how authors earn trust here and how fabricators lose it (docs/TRUST.md). Fresh seeds
(purpose `verify`, `ref` = the claim) confirm the effect. The `verification` record is advice to
other nodes; each node re-derives the claim's status from the runs (roles/verdicts.py).
"""
from __future__ import annotations

import itertools
import logging
from typing import Any

from memory import records as R, stats
from roles import evidence, leases, spotcheck, trust
from roles.context import Context

log = logging.getLogger(__name__)
OPEN = ("supported", "inconclusive", "disputed")      # claims that still need a re-run


def _row(body: R.RunBody) -> dict[str, Any]:
    """A run body as the `runs` columns `trust.judge` compares."""
    m, hw = body.metrics, body.hardware
    return {"track": body.track, "config_hash": body.config_hash, "config": body.config,
            "seed": body.seed, "status": body.status, "val_bpb": m.val_bpb, "tokens": m.tokens,
            "steps": m.steps, "mfu": m.mfu, "accelerator": hw.accelerator,
            "device_name": hw.device_name, "cores": hw.cores, "software": body.software}


def _values(runs: list[dict[str, Any]]) -> list[float]:
    return [float(r["val_bpb"]) for r in runs if r.get("val_bpb") is not None]


class Verifier:
    """Independent re-runs of claims, and spot checks of untrusted authors."""

    name = "verifier"

    @staticmethod
    def open_claims(ctx: Context) -> list[dict[str, Any]]:
        """Claims by others that still need a re-run, that this node has not re-run and that
        nobody trusted is re-running (its claim or its config leased: what `work`'s lease backs
        off on); claims of untrusted authors (spot checks that decide a verdict) first while the
        spot-check share allows, then oldest first."""
        mine = {r["ref"] for r in ctx.rows("SELECT ref FROM valid_runs WHERE author = ? AND "
                                           "purpose = 'verify'", [ctx.me])}
        mine |= {r["claim"] for r in ctx.rows("SELECT claim FROM verifications WHERE author = ?",
                                              [ctx.me])}
        # A claim by an untrusted author is a spot check: within the spot-check share only, so
        # a flood of claims from free keys cannot take the honest nodes' runs.
        spot = spotcheck.budget_left(evidence.verdicts_of(ctx), ctx.me)
        out = [c for c in evidence.claims(ctx) if c["status"] in OPEN
               and (c["trusted"] or spot) and c["author"] != ctx.me and c["id"] not in mine
               and not leases.held_by_other(ctx, "verify", c["candidate_hash"], c["id"])]
        return sorted(out, key=lambda c: (c["trusted"], c["ts"], c["id"]))

    @staticmethod
    def spot_checks(ctx: Context, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs worth a spot check now (roles/spotcheck.py), not leased by anyone trusted, not
        copies of another author's run and not replayed by this node before (the first `limit`
        of them; None: all). A replay of one seed on this node gives the same number again: a
        replay on other hardware that said nothing was replayed over and over otherwise."""
        done = {r["ref"] for r in ctx.rows("SELECT ref FROM valid_runs WHERE author = ? AND "
                                           "purpose = 'replay'", [ctx.me])}
        # A copy's replay would vouch for its signer, but a trusted author's run earns it nothing
        # more: it is replayed whatever copies exist (a disputed run of a trusted author, copied by
        # a free key, was never settled).
        v = evidence.verdicts_of(ctx)
        wanted = (r for r in spotcheck.candidates(ctx) if r["author"] != ctx.me
                  and r["id"] not in done
                  and not leases.held_by_other(ctx, "verify", target=r["id"])
                  and (v.trust.trusted(r["author"]) or not spotcheck.copied(ctx, r)))
        return list(itertools.islice(wanted, limit))

    def work(self, ctx: Context) -> str | None:
        """Verify the first open claim, else spot-check the most influential untrusted run."""
        if ctx.run is None:
            return None
        v = evidence.verdicts_of(ctx)
        for claim in self.open_claims(ctx):
            runs = [v.runs[i] for i in claim["candidate_runs"] if i in v.runs
                    and v.runs[i]["status"] == "ok"
                    and (claim["trusted"] or self._spot_checks_claimant(ctx, claim, v.runs[i]))]
            if runs and leases.take(ctx, "verify", claim["candidate_hash"], claim["id"]):
                return self._verify(ctx, claim, runs)
        for run in self.spot_checks(ctx, 1):
            # Leased by the run checked, as `spot_checks` chose it: leased by its config too, the
            # step backed off whenever anyone trusted held a verify lease of that config (an earned
            # key's, renewed, kept the audit of its own runs from ever starting).
            if leases.take(ctx, "verify", target=run["id"]):
                match, _, _ = self._replay(ctx, run)
                ctx.count("spot_checks")
                return f"spot check of {run['id'][:8]} by {run['author'][:12]}: match={match}"
        return None

    @staticmethod
    def _spot_checks_claimant(ctx: Context, claim: dict[str, Any], run: dict[str, Any]) -> bool:
        """Would replaying `run` check an untrusted `claim`'s author? Only a run of its own, and
        never one it may have copied: a replay of another author's run says nothing of it (free
        keys whose claims cited only this node's own runs took 15 of its runs, 5 per claim, and
        were never checked)."""
        return run["author"] == claim["author"] and not spotcheck.copied(ctx, run)

    def _replay(self, ctx: Context, target: dict[str, Any]) -> tuple[bool | None, R.RunBody, str]:
        """Replay `target` with its own seed: did it reproduce (None: no answer), the replay's
        body and record id."""
        config = evidence._config(target["config"])
        body = ctx.run(config, target["seed"], "replay", target["id"])
        replay_id = ctx.publish("run", body).id
        # the verdicts' rows leave out the software (wide); bit for bit needs it (trust.numerics)
        software = ctx.rows("SELECT software FROM valid_runs WHERE id = ?", [target["id"]])
        target = {**target, "software": software[0]["software"] if software else None}
        mine, facts = _row(body), evidence.facts(ctx)
        # judged as trust will judge it: across hardware by the bound the roots' runs of the
        # config give (the replay just published is one of them)
        compared = trust.compare({**mine, "id": replay_id, "author": ctx.me}, target, facts)
        if compared is None:
            return None, body, replay_id
        said = trust.settle([compared], trust.cross_bounds(ctx.store, [compared], ctx.roots, facts))
        return (said[0].match if said else None), body, replay_id

    def _target(self, ctx: Context, runs: list[dict[str, Any]]) -> dict[str, Any]:
        disputed = [r for r in runs
                    if evidence.verdicts_of(ctx).trust.run_outcome.get(r["id"]) == "disputed"]
        return disputed[0] if disputed else ctx.rng.choice(runs)

    def _verify(self, ctx: Context, claim: dict[str, Any], runs: list[dict[str, Any]]) -> str:
        v = evidence.verdicts_of(ctx)
        base = [float(r["val_bpb"]) for r in
                v.baseline_runs(claim["baseline_hash"], frozenset({claim["author"]}))]
        target = self._target(ctx, runs)
        match, body, replay_id = self._replay(ctx, target)
        fresh_ids, fresh = [], []
        if match is not False:           # a failed replay needs no fresh seeds to refute
            fresh_ids, fresh = self._fresh(ctx, claim, target, runs,
                                           stats.verify_runs(_values(runs), base, ctx.params))
        outcome, effect, reason = stats.verification_outcome(match, fresh, base, ctx.params)
        if match is False:
            got = body.metrics.val_bpb
            reason = (f"replay of seed {target['seed']} gave "
                      f"{'nothing' if got is None else format(got, '.6f')}, "
                      f"claimed {target['val_bpb']}")
        ctx.publish("verification", R.VerificationBody(
            claim=claim["id"], outcome=outcome, replay_run=replay_id, replay_match=match, runs=fresh_ids, effect=effect, reason=reason[:400]))
        ctx.count(f"verified_{outcome}")
        return f"verification of {claim['id'][:8]}: {outcome} ({reason})"

    @staticmethod
    def _fresh(ctx: Context, claim: dict[str, Any], target: dict[str, Any],
               runs: list[dict[str, Any]], count: int) -> tuple[list[str], list[float]]:
        """`count` fresh seeds (`stats.verify_runs`: more for a candidate noisier than the
        floor, judged from its confirmation runs)."""
        config = evidence._config(target["config"])
        used = {r["seed"] for r in runs}
        ids: list[str] = []
        values: list[float] = []
        for _ in range(count):
            seed = ctx.rng.randrange(2**31)
            while seed in used:
                seed = ctx.rng.randrange(2**31)
            used.add(seed)
            run = ctx.run(config, seed, "verify", claim["id"])
            ids.append(ctx.publish("run", run).id)
            if run.status == "ok":
                values.append(run.metrics.val_bpb)
        return ids, values
