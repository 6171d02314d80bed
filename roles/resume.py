"""Resume the runs a node left unfinished (roles/pending.py) before it takes new work.

Each pending run goes back through the node's runner, which resumes it from its checkpoint, and
is published as the role that started it would have (same purpose and ref: the same record an
uninterrupted run gives). A pending run that no longer makes sense is dropped with one warning
line: of another track, already published, an experiment now leased by another node, the
verification of a claim no longer open, or the replay of a run the memory lacks.
"""
from __future__ import annotations

import logging
from typing import Any

from memory.canonical import config_hash
from memory.store import DiskFull
from node.harness.runner import Cancelled
from roles import evidence, leases
from roles.context import Context
from roles.pending import Pending

log = logging.getLogger(__name__)
OPEN = ("supported", "inconclusive", "disputed")       # claims a verification still serves


def stale(ctx: Context, run: Pending) -> str | None:
    """Why `run` should not be resumed now, or None."""
    chash = config_hash(run.config)
    if run.track != ctx.track:
        return f"of track {run.track}, this node works on {ctx.track}"
    mine = ctx.rows("SELECT count(*) AS n FROM valid_runs WHERE author = ? AND config_hash = ? "
                    "AND seed = ? AND purpose = ? AND ref IS NOT DISTINCT FROM ?",
                    [ctx.me, chash, run.seed, run.purpose, run.ref])
    if mine[0]["n"]:
        return "already published"
    if run.purpose in ("screen", "confirm") and not leases.take(ctx, "experiment", chash, run.ref):
        return "its experiment is leased by another node"
    if run.purpose == "verify":
        claim = next((c for c in evidence.claims(ctx) if c["id"] == run.ref), None)
        if claim is None or claim["status"] not in OPEN:
            return "its claim is no longer open"
    if run.purpose == "replay" and not ctx.rows("SELECT id FROM valid_runs WHERE id = ?", [run.ref]):
        return "the run it replays is not in the memory"
    return None


def resume_pending(ctx: Context, runner: Any) -> int:
    """Resume and publish every pending run of `runner` (a HarnessRunner); how many were published.
    Raises the harness's `Cancelled` when the node stops meanwhile (the run stays pending)."""
    done = 0
    for run in runner.pending():
        why = stale(ctx, run)
        if why is not None:
            log.warning("pending %s dropped: %s", run.describe(), why)
            runner.discard(run)
            continue
        log.info("resuming the pending %s", run.describe())
        try:
            body = ctx.run(run.config, run.seed, run.purpose, run.ref)
        except (Cancelled, DiskFull):       # the node stops: the run stays pending
            raise
        except Exception as exc:            # e.g. the track's data is gone: never retried forever
            log.warning("pending %s dropped: %s: %s", run.describe(), type(exc).__name__, exc)
            runner.discard(run)
            continue
        ctx.publish("run", body)            # the runner's files go once it is published
        ctx.count("runs")
        ctx.count("resumed_runs")
        if body.status != "ok":
            ctx.count(f"runs_{body.status}")
        done += 1
    return done
