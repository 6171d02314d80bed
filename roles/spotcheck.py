"""Spot checks: which runs a verifier replays: disputed runs first (whatever the replay share),
then runs of not-yet-trusted authors, most influential first.

Runs whose trusted replays disagree (outcome `disputed`) come before all others, whoever their
author: only a root's replay settles them (roles/trust.py), so this node's own replay decides. A
run's influence is what it would change if its author were trusted: 3 = it is evidence of a claim
that would pass (a claim's verdict), 2 = its config would top the leaderboard, 1 = it is a baseline
run of the current best config (the baseline). Runs of no influence are never spot-checked. Last,
runs of trusted authors other than the roots that no root replayed (`audit`). Each node spends at
most `SPOT_SHARE` of its own runs on the track on replays (docs/TRUST.md); disputed runs are
replayed whatever the share.
"""
from __future__ import annotations

from typing import Any

from memory import stats
from roles import evidence, trust
from roles.context import Context
from roles.verdicts import Verdicts

SPOT_SHARE = 0.10
DISPUTED = 4          # above any influence: a disputed run waits for a root's replay to settle it
# Another author's run of the same seed and config, or of the same seed and val_bpb to within a
# bit-for-bit replay's tolerance under any config: the harness trains some configs bit for bit
# alike under other hashes (decay_frac under cosine, attn_window with no S layer, attn_pattern "LL"
# for "L", muon_lr under AdamW, ngram_weight with no ngram steps), so a copy signed under such an
# alias matched a replay exactly and vouched for a key that trained nothing.
_COPIED = """SELECT 1 FROM valid_runs WHERE track = ? AND seed = ? AND author <> ?
               AND (ref IS NULL OR ref <> ?) AND (config_hash = ? OR abs(val_bpb - ?) <= ?)
             LIMIT 1"""
EXACT = stats.replay_tolerance(True, 0.0)
_LIVE = ("supported", "verified", "inconclusive", "disputed")


def _replayed(v: Verdicts) -> set[str]:
    """Runs some trusted author already replayed (their outcome is known or in dispute)."""
    return {r.target for r in v.trust.replays if v.trust.trusted(r.replayer)}


def _top_mean(v: Verdicts) -> float | None:
    ranked = [r for r in v.leaderboard(limit=1) if r["trusted"]]
    return ranked[0]["mean"] if ranked else None


def influence(v: Verdicts, best_hash: str) -> dict[str, float]:
    """Influence per spot-checkable run (author neither trusted nor distrusted, sane, finished),
    `DISPUTED` for every disputed run (`disputed`), and below all of them the runs of trusted
    authors other than the roots that no root replayed (`audit`)."""
    out: dict[str, float] = {}
    for claim in v.claims:
        if not claim.trusted and claim.status in _LIVE:
            for run_id in claim.counted:
                out[run_id] = 3
    top = _top_mean(v)
    for row in v.leaderboard(limit=10**6):
        if not row["trusted"] and (top is None or row["mean"] < top):
            for run in v.by_config[row["config_hash"]]:
                out.setdefault(run["id"], 2)
    for run in v.by_config.get(best_hash, []):
        if run["purpose"] == "baseline":
            out.setdefault(run["id"], 1)
    skip = _replayed(v)
    out = {i: w for i, w in out.items() if i not in skip and _checkable(v, v.runs[i])}
    return {**audit(v, best_hash), **out, **disputed(v)}


def audit(v: Verdicts, best_hash: str) -> dict[str, float]:
    """Runs of trusted authors other than the roots that move what this node concludes, and that
    no root replayed: evidence of its live claims (0.3), baseline runs of the best config (0.1).
    Trust earned by one matching run is no licence: a key trusted for one real run signed 40
    baseline runs at 1.02 (the truth 1.0) that nothing ever replayed, and moved the baseline to
    1.016 (scripts/audit_earned_key.py); one replay of one of them, on this node's hardware,
    distrusts it. Below every untrusted author's run: newcomers first."""
    out: dict[str, float] = {}
    for claim in v.claims:
        if claim.trusted and claim.status in _LIVE:
            for run_id in claim.counted:
                out[run_id] = 0.3
    for run in v.by_config.get(best_hash, []):
        if run["purpose"] == "baseline":
            out.setdefault(run["id"], 0.1)
    by_roots = {r.target for r in v.trust.replays if r.replayer in v.trust.roots}
    return {i: w for i, w in out.items() if i not in by_roots and i in v.runs
            and _sane(v, v.runs[i]) and v.runs[i]["author"] not in v.trust.roots
            and v.trust.trusted(v.runs[i]["author"])}


def disputed(v: Verdicts) -> dict[str, int]:
    """The track's sane finished runs whose trusted replays disagree, whoever their author."""
    return {i: DISPUTED for i, o in sorted(v.trust.run_outcome.items())
            if o == "disputed" and i in v.runs and _sane(v, v.runs[i])}


def _sane(v: Verdicts, run: dict[str, Any]) -> bool:
    return run["status"] == "ok" and run["id"] not in v.insane


def _checkable(v: Verdicts, run: dict[str, Any]) -> bool:
    return (_sane(v, run) and not v.trust.trusted(run["author"])
            and not v.trust.distrusted(run["author"]))


def budget_left(v: Verdicts, me: str) -> bool:
    """Are this node's own replays on the track below `SPOT_SHARE` of its own runs there? Each
    node's share, not the swarm's: counted over every trusted author, an earned key's signed
    "replays" spent the whole swarm's share and stopped every node's spot checks."""
    mine = [r for r in v.runs.values() if r["author"] == me]
    replays = sum(1 for r in mine if r["purpose"] == "replay")
    return replays < SPOT_SHARE * max(1, len(mine))


def copied(ctx: Context, run: dict[str, Any]) -> bool:
    """Does another author hold a run of `run`'s track and seed (not a replay of it) of the same
    config, or with the same val_bpb to within `EXACT` (an alias config the harness trains alike)?
    Then a matching replay proves nothing about `run`'s author: it may have signed another's
    published result (a free key copying the verifier's own runs became trusted that way, and two
    such keys verified a fabricated claim). Such runs are never replayed for trust."""
    return bool(ctx.rows(_COPIED, [run["track"], run["seed"], run["author"], run["id"],
                                   run["config_hash"], run["val_bpb"], EXACT]))


def own_hardware(ctx: Context) -> dict[str, Any] | None:
    """The hardware of this node's latest run on the track (None before its first)."""
    rows = ctx.rows("SELECT accelerator, device_name, cores FROM valid_runs WHERE author = ? "
                    "AND track = ? ORDER BY ts DESC, id LIMIT 1", [ctx.me, ctx.track])
    return rows[0] if rows else None


def replayable(mine: dict[str, Any] | None, run: dict[str, Any]) -> bool:
    """Can a replay on `mine` (this node's hardware; None: not known yet) say anything of `run`?
    Not across accelerator kinds (roles/trust.py `judge`: another experiment): an earned key's
    baseline runs named `cuda` on a CPU node's track took its one spot check, which said nothing,
    and its share was then spent (scripts/audit_cross_hw_poison.py)."""
    return mine is None or run["accelerator"] == mine["accelerator"]


def candidates(ctx: Context) -> list[dict[str, Any]]:
    """Runs worth a spot check now (of this node's accelerator kind: `replayable`), most
    influential first; within one influence, runs this node can reproduce bit for bit first
    (only such a match earns their author trust: roles/trust.py; judged by CPU model and thread
    count, the software being a column too wide to read for every run), then oldest, then id."""
    v = evidence.verdicts_of(ctx)
    # A disputed run is settled whatever the share: replays signed by one earned key filled it
    # and stopped this node's spot checks, so disputes it opened were never settled.
    weights = (influence(v, evidence.baseline(ctx).hash) if budget_left(v, ctx.me)
               else disputed(v))
    mine = own_hardware(ctx)
    runs = [v.runs[i] for i in weights if replayable(mine, v.runs[i])]
    return sorted(runs, key=lambda r: (-weights[r["id"]],
                                       mine is None or not trust.same_cpu(mine, r),
                                       r["ts"], r["id"]))
