"""Claim leases: say what you are about to do so others skip it; an expired lease frees the work.

A lease names its work by kind and by a config hash (experiments) or a target record (a claim to
verify or assess, a hypothesis). Two nodes that lease the same work at once both see both leases
after sync; the earlier (ts, id) wins and the other backs off. Near-duplicate experiments are
caught by `config_distance`.

A lease lasts `ctx.lease_s`; work that runs longer keeps it by `renew` (the worker calls it before
each training run), so a live node's work is never taken over, while a dead node's lease simply
expires and frees the work.

A lease is testimony, a promise: only a root's (this node's or a pinned key's) is believed for as
long as it is renewed. Others' leases of one piece of work hold for at most `MAX_LEASE_S` from the
first such lease of it (keys are free: counted over all of them): a free key that renewed its lease
of a config every 6 h kept this node's experimenter off that config for good (docs/TRUST.md,
"Liveness").
"""
from __future__ import annotations

import math
from typing import Any

from memory import records as R
from roles import evidence
from roles.context import Context

NEAR_DUPLICATE = 0.1      # configs closer than this count as the same experiment
# No honest lease runs longer than this (the worker renews in steps of a few run lengths): a lease
# expiring later than now + MAX_LEASE_S is no promise anyone keeps, and holds nothing.
MAX_LEASE_S = 6 * 3600
# Work whose result counts only when a trusted author does it: a lease on it by someone this node
# does not trust holds nothing (a free key could otherwise block every claim's review).
TRUSTED_WORK = ("verify", "assess")


def active(ctx: Context, work: str) -> list[dict[str, Any]]:
    """Unexpired leases of `work` on the context's track that hold (see `MAX_LEASE_S`,
    `TRUSTED_WORK`, `_first_ts`), oldest first."""
    now = ctx.now_ms()
    rows = ctx.rows("SELECT id, author, ts, config_hash, target, expires_ts FROM claim_leases "
                    "WHERE track = ? AND work = ? AND expires_ts > ? AND expires_ts <= ? "
                    "AND expires_ts - ts <= ? ORDER BY ts, id",
                    [ctx.track, work, now, now + MAX_LEASE_S * 1000, MAX_LEASE_S * 1000])
    roots = ctx.roots
    if not rows or all(r["author"] in roots for r in rows):
        return rows
    if work in TRUSTED_WORK:
        trusted = evidence.verdicts_of(ctx).trust.trusted
        rows = [r for r in rows if r["author"] in roots or trusted(r["author"])]
    first = _first_ts(ctx, work, [r for r in rows if r["author"] not in roots])
    since = now - MAX_LEASE_S * 1000
    return [r for r in rows if r["author"] in roots
            or (first.get(("c", r["config_hash"]), now) >= since
                and first.get(("t", r["target"]), now) >= since)]


def _first_ts(ctx: Context, work: str, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """("c", config hash) or ("t", target) -> the ts of the first lease of that work on the track
    by any author other than the roots, expired ones included: a chain of renewals, by one key or
    by many free ones taking turns, is one promise, believed for `MAX_LEASE_S` from its start."""
    configs = sorted({r["config_hash"] for r in rows if r["config_hash"] is not None})
    targets = sorted({r["target"] for r in rows if r["target"] is not None})
    if not configs and not targets:
        return {}
    found = ctx.rows("SELECT author, config_hash, target, ts FROM claim_leases WHERE track = ? "
                     "AND work = ? AND (config_hash IN (SELECT unnest(?::VARCHAR[])) "
                     "OR target IN (SELECT unnest(?::VARCHAR[])))",
                     [ctx.track, work, configs, targets])
    out: dict[tuple[str, str], int] = {}
    for row in (r for r in found if r["author"] not in ctx.roots):
        for key in (("c", row["config_hash"]), ("t", row["target"])):
            if key[1] is not None:
                out[key] = min(out.get(key, row["ts"]), row["ts"])
    return out


def held_by_other(ctx: Context, work: str, config_hash: str | None = None,
                  target: str | None = None) -> bool:
    """Is this work leased by another node right now?"""
    for lease in active(ctx, work):
        same = ((config_hash is not None and lease["config_hash"] == config_hash)
                or (target is not None and lease["target"] == target))
        if same and lease["author"] != ctx.me:
            return True
    return False


def take(ctx: Context, work: str, config_hash: str | None = None, target: str | None = None,
         seconds: float | None = None) -> bool:
    """Publish a lease for this work unless someone else holds it; False when we must back off."""
    if held_by_other(ctx, work, config_hash, target):
        return False
    body = R.ClaimLeaseBody(track=ctx.track, work=work, config_hash=config_hash, target=target,
                            expires_ts=ctx.now_ms() + int(1000 * min(MAX_LEASE_S, seconds or ctx.lease_s)))
    mine = ctx.publish("claim_lease", body)
    won = True
    # A lease that arrived (by sync) with an earlier (ts, id) wins the race.
    for lease in active(ctx, work):
        if ((config_hash is not None and lease["config_hash"] == config_hash)
                or (target is not None and lease["target"] == target)):
            won = lease["id"] == mine.id or lease["author"] == ctx.me
            break
    if won:
        ctx.held.append(body)
    return won


def renew(ctx: Context, needed_s: float = 0.0) -> int:
    """Re-publish the leases of the current work that would expire within max(lease_s / 2,
    needed_s) (the expected length of the next run), for another max(lease_s, 2 x needed_s).
    Returns how many were renewed."""
    margin_ms = int(1000 * max(ctx.lease_s / 2, needed_s))
    length_ms = int(1000 * min(MAX_LEASE_S, max(ctx.lease_s, 2 * needed_s)))
    renewed = 0
    for i, lease in enumerate(ctx.held):
        if lease.expires_ts - ctx.now_ms() < margin_ms:
            fresh = lease.model_copy(update={"expires_ts": ctx.now_ms() + length_ms})
            ctx.publish("claim_lease", fresh)
            ctx.held[i] = fresh
            renewed += 1
    return renewed


def _knob_distance(a: Any, b: Any) -> float:
    if a == b:
        return 0.0
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        if a > 0 and b > 0:
            return min(1.0, abs(math.log2(a / b)))          # doubling = 1
        return min(1.0, abs(a - b) / max(abs(a), abs(b)))
    return 1.0


def config_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Distance between configs: a changed category counts 1, a doubled number 1, small steps less."""
    return sum(_knob_distance(a.get(k), b.get(k)) for k in set(a) | set(b))


def near_duplicate(config: dict[str, Any], tried: list[dict[str, Any]]) -> bool:
    """Is `config` the same experiment as (or within NEAR_DUPLICATE of) one already tried?"""
    return any(config_distance(config, other) < NEAR_DUPLICATE for other in tried)
