"""Meta-analyst: per-knob effect estimates over every finished run of a track, published as a finding.

The estimate is a ridge-regularised least-squares fit of val_bpb on one-hot (knob, value) settings
that differ from the track's base config, with an intercept for the base config. With single-knob
experiments this is the difference of means; with combined diffs it splits the credit. Standard
errors come from the residual variance. A numeric knob with more than `MAX_LEVELS` distinct values
(the optimizer proposes continuous ones: one feature per value would grow the fit with every run
and estimate nothing) is binned: `BINS` bins of equal width (on a log scale when its values span
more than 10x), each reported at the median value of its runs. What helped (effect + 2 se < 0), what hurt, what is unclear,
and which knobs were never varied. The same fit over each offline quality measure of the runs'
samples (and the mean LLM-judge score, where `judgement` records exist) is reported beside each
setting's val_bpb effect: a lower loss that writes repetitive text shows up here. Settings the
runs never separated (always changed together) are reported as one joint effect per combination
that ran, and settings with no effect relative to the base config at all as not identified
(roles/aliasing.py; docs/ROLES.md "Aliased knobs").

With a judge (roles/judge.py, when ANTHROPIC_API_KEY is set) the meta-analyst also judges a few
unjudged runs of other nodes in each of its steps.
"""
from __future__ import annotations

import json
import logging
from typing import Any, NamedTuple

import numpy as np

from memory import records as R
from roles import aliasing, evidence, evidence_sql
from roles.context import Context

log = logging.getLogger(__name__)
RIDGE = 1e-6
MAX_EFFECTS = 256
MAX_LEVELS = 8             # distinct values of a numeric knob kept as they are
BINS = 6                   # bins of a numeric knob with more distinct values


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _bin_map(values: list[Any]) -> dict[Any, Any]:
    """value -> its bin's representative (the median value of the bin's occurrences)."""
    xs = np.array(values, dtype=float)
    scale = np.log if xs.min() > 0 and xs.max() > 10 * xs.min() else (lambda a: a)
    t = scale(xs)
    edges = np.linspace(t.min(), t.max(), BINS + 1)[1:-1]
    which = np.searchsorted(edges, t, side="right")
    out: dict[Any, Any] = {}
    for b in np.unique(which):
        members = sorted(v for v, w in zip(values, which) if w == b)
        rep = members[(len(members) - 1) // 2]                  # a value that really ran
        out.update({v: rep for v in members})
    return out


def binned(configs: list[dict[str, Any]], base: dict[str, Any]) -> list[dict[str, Any]]:
    """The configs with each many-valued numeric knob's non-base values mapped to their bin."""
    maps: dict[str, dict[Any, Any]] = {}
    knobs = {k for c in configs for k in c}
    for knob in sorted(knobs):
        values = [c[knob] for c in configs if knob in c and c[knob] != base.get(knob)]
        if len(set(values)) > MAX_LEVELS and all(_numeric(v) for v in values):
            maps[knob] = _bin_map(values)
    if not maps:
        return configs
    return [{k: maps[k].get(v, v) if k in maps else v for k, v in c.items()} for c in configs]


def _features(configs: list[dict[str, Any]], base: dict[str, Any]) -> list[tuple[str, Any]]:
    seen: dict[tuple[str, str], tuple[str, Any]] = {}
    for config in configs:
        for knob, value in config.items():
            if base.get(knob) != value:
                seen.setdefault((knob, json.dumps(value)), (knob, value))
    return [seen[k] for k in sorted(seen)]


def estimate(ctx: Context) -> list[R.KnobEffect]:
    """Per (knob, value) effect on val_bpb relative to the base config, with standard errors."""
    return estimate_all(ctx).effects


def estimate_all(ctx: Context) -> Estimate:
    """`estimate`, with the settings no run separates from the base config."""
    v = evidence.verdicts_of(ctx)        # sane runs by trusted authors only (docs/TRUST.md)
    rows = sorted((r for r in v.runs.values() if v.counts(r)), key=lambda r: r["id"])
    configs = [evidence._config(r["config"]) for r in rows]
    return fit_all(configs, [r["val_bpb"] for r in rows], ctx.base_config)


class Estimate(NamedTuple):
    """The effects (single and joint) and the settings no run separates from the base config."""

    effects: list[R.KnobEffect]
    unidentified: list[tuple[str, Any]]


def fit(configs: list[dict[str, Any]], values: list[float],
        base_config: dict[str, Any]) -> list[R.KnobEffect]:
    """Per (knob, value) effect on `values` (one per config) relative to `base_config`; settings
    the runs never separated come as one joint effect (docs/ROLES.md "Aliased knobs")."""
    return fit_all(configs, values, base_config).effects


def fit_all(configs: list[dict[str, Any]], values: list[float],
            base_config: dict[str, Any]) -> Estimate:
    """`fit`, with the settings that are not identified at all (every run changed them)."""
    y = np.array(values, dtype=float)
    configs = binned(configs, base_config)
    feats = _features(configs, base_config)
    if not feats or y.size < 3:
        return Estimate([], [])
    X = np.ones((y.size, len(feats) + 1))
    for j, (knob, value) in enumerate(feats, start=1):
        X[:, j] = [1.0 if c.get(knob) == value and base_config.get(knob) != value else 0.0
                   for c in configs]
    if not aliasing.full_rank(X):
        return _fit_aliased(X, y, feats)
    gram = X.T @ X + RIDGE * np.eye(X.shape[1])
    coef = np.linalg.solve(gram, X.T @ y)
    resid = y - X @ coef
    dof = max(1, y.size - X.shape[1])
    cov = np.linalg.inv(gram) * float(resid @ resid) / dof
    out = []
    for j, (knob, value) in enumerate(feats, start=1):
        n = int(X[:, j].sum())
        se = float(np.sqrt(max(cov[j, j], 0.0))) if y.size > X.shape[1] else None
        out.append(R.KnobEffect(knob=knob, value=value, effect=float(coef[j]), stderr=se, n=n))
    return Estimate(sorted(out, key=lambda e: e.effect)[:MAX_EFFECTS], [])


def _fit_aliased(X: np.ndarray, y: np.ndarray, feats: list[tuple[str, Any]]) -> Estimate:
    """Linearly dependent settings: a joint effect per combination that ran (roles/aliasing.py)."""
    found = aliasing.analyse(X, y)
    out = []
    for e in found.single + found.joint:
        settings = dict(feats[j - 1] for j in e.columns)      # one value per knob in a run
        knob, value = (next(iter(settings.items())) if len(settings) == 1 else
                       (R.joint_knob(list(settings)), json.dumps(settings)))
        out.append(R.KnobEffect(knob=knob, value=value, effect=e.effect, stderr=e.stderr, n=e.n))
    return Estimate(sorted(out, key=lambda e: e.effect)[:MAX_EFFECTS],
                    [feats[j - 1] for j in found.unidentified])


def setting(e: R.KnobEffect) -> str:
    """`knob=value`, or a joint effect's `a=1 & b=2`."""
    return R.JOINT.join(f"{k}={v}" for k, v in R.effect_settings(e.knob, e.value).items())


def quality_values(ctx: Context) -> dict[str, tuple[list[dict[str, Any]], list[float]]]:
    """(configs, values) per quality measure over the track's ok runs, and per the mean judge
    score (`judge`: each run's mean over its judgements' mean scores, flagged judges left out)."""
    out: dict[str, tuple[list[dict[str, Any]], list[float]]] = {}
    v = evidence.verdicts_of(ctx)        # as for val_bpb: sane runs by trusted authors only
    counted = {i for i, r in v.runs.items() if v.counts(r)}
    rows = ctx.rows("SELECT id, config, quality FROM valid_runs WHERE track = ? AND status = 'ok' "
                    "AND quality IS NOT NULL ORDER BY id", [ctx.track])
    for row in (r for r in rows if r["id"] in counted):
        config = evidence._config(row["config"])
        for name, value in json.loads(row["quality"]).items():
            if isinstance(value, (int, float)):
                out.setdefault(name, ([], []))[0].append(config)
                out[name][1].append(float(value))
    # run -> (config, judge -> its newest judgement's mean score): one say per judge and run,
    # else a trusted key that judged a run 20 times outweighed every other judge of it 20 to 1
    per_run: dict[str, tuple[dict[str, Any], dict[str, float]]] = {}
    for row in ctx.rows("SELECT r.id, r.config, j.author AS judge, j.scores FROM valid_runs r "
                        "JOIN judgements j ON j.run = r.id WHERE r.track = ? AND r.status = 'ok' "
                        "AND j.author NOT IN (SELECT author FROM equivocations) "
                        "ORDER BY r.id, j.ts, j.id", [ctx.track]):
        if row["id"] not in counted or not v.trust.trusted(row["judge"]):
            continue                     # a judgement is testimony: only trusted judges count
        scores = list(json.loads(row["scores"]).values())
        entry = per_run.setdefault(row["id"], (evidence._config(row["config"]), {}))
        entry[1][row["judge"]] = sum(scores) / len(scores)
    if per_run:
        out["judge"] = ([c for c, _ in per_run.values()],
                        [sum(v.values()) / len(v) for _, v in per_run.values()])
    return out


def quality_effects(ctx: Context) -> dict[str, dict[tuple[str, str], R.KnobEffect]]:
    """measure -> (knob, value as JSON) -> the setting's effect on that measure."""
    return {name: {(e.knob, json.dumps(e.value)): e for e in fit(configs, values, ctx.base_config)}
            for name, (configs, values) in sorted(quality_values(ctx).items())}


def _measure(name: str, table: dict[tuple[str, str], R.KnobEffect], e: R.KnobEffect) -> str | None:
    """`name +x +- se` for this setting, or for the joint effect that holds it in this measure's
    fit (its runs may have separated less than val_bpb's), else None."""
    q = table.get((e.knob, json.dumps(e.value)))
    within = ""
    if q is None:
        mine = R.effect_settings(e.knob, e.value).items()
        q = next((j for j in table.values()
                  if mine < R.effect_settings(j.knob, j.value).items()), None)
        within = "" if q is None else f" (jointly: {setting(q)})"
    if q is None:
        return None
    se = f" +- {q.stderr:.2g}" if q.stderr is not None else ""
    return f"{name}{within} {q.effect:+.3f}{se}"


def quality_lines(effects: list[R.KnobEffect],
                  by_measure: dict[str, dict[tuple[str, str], R.KnobEffect]]) -> list[str]:
    """One line per knob setting: its val_bpb effect, then its effect on each quality measure."""
    lines = []
    for e in effects:
        parts = [p for name, table in by_measure.items() if (p := _measure(name, table, e))]
        if parts:
            lines.append(f"  {setting(e)}: val_bpb {e.effect:+.4f}; " + ", ".join(parts))
    return lines


def _label(e: R.KnobEffect) -> str:
    se = f" +- {e.stderr:.2g}" if e.stderr is not None else ""
    return f"{setting(e)} {e.effect:+.4f}{se} (n={e.n})"


def _aliasing_lines(effects: list[R.KnobEffect], unidentified: list[tuple[str, Any]]) -> list[str]:
    """Name the joint effects as such, and the settings with no effect relative to the base
    config at all (docs/ROLES.md "Aliased knobs")."""
    joint = [setting(e) for e in effects if len(R.effect_settings(e.knob, e.value)) > 1]
    out = []
    if joint:
        out.append("joint effects (these settings only ran in combinations the runs cannot "
                   "separate; no share of the effect is known for one of them): "
                   + ", ".join(joint))
    if unidentified:
        out.append("not identified (no run separates them from the base config): "
                   + ", ".join(f"{k}={v}" for k, v in unidentified))
    return out


def summarize(ctx: Context, effects: list[R.KnobEffect],
              unidentified: list[tuple[str, Any]] | None = None) -> str:
    """The finding's text: helped, hurt, unclear, never tried, claim outcomes. Only identified
    effects are in `effects` (single or joint), so only they can be "helped" or "did not help"."""
    def sure(e: R.KnobEffect, sign: int) -> bool:
        return e.stderr is not None and sign * (e.effect + sign * 2 * e.stderr) < 0
    unidentified = unidentified or []
    helped = [_label(e) for e in effects if sure(e, 1)]
    hurt = [_label(e) for e in effects if sure(e, -1)]
    unclear = [_label(e) for e in effects if not sure(e, 1) and not sure(e, -1)]
    varied = {k for e in effects for k in R.effect_settings(e.knob, e.value)}
    varied |= {k for k, _ in unidentified}
    never = sorted(k for k in ctx.base_config if k not in varied)
    # Claims as this node derives them (trusted authors, its own tests), not the records' say:
    # a finding is this node's testimony and must not repeat a stranger's "verified".
    tally = evidence.claim_tally(ctx)
    parts = [f"helped: {', '.join(helped) or 'nothing yet'}",
             f"did not help: {', '.join(hurt) or 'nothing'}",
             f"unclear: {', '.join(unclear) or 'nothing'}",
             f"never tried: {', '.join(never) or 'nothing'}",
             "claims: " + (", ".join(f"{k} {n}" for k, n in tally.items()) or "none")]
    parts += _aliasing_lines(effects, unidentified)
    lines = quality_lines(effects, quality_effects(ctx))
    if lines:
        parts.append("effects on sample quality (repetition, unknown_words: lower is better; "
                     "distinct_*, ends_sentence, judge: higher is better):")
        parts += lines
    return "\n".join(parts)[:8000]


class MetaAnalyst:
    """Synthesises the track's outcomes into a `finding` when there is something new."""

    name = "meta_analyst"

    def __init__(self, judge: Any = None) -> None:
        self.judge = judge            # a roles.judge.ClaudeJudge, or None (no API key)

    @staticmethod
    def new_outcomes(ctx: Context) -> int:
        """Runs that count here (trusted, sane) newer than the latest finding by a trusted author:
        untrusted keys can neither flood the meta-analyst with runs nor silence it with findings
        (one finding stamped a minute ahead once hid every run until its ts)."""
        v = evidence.verdicts_of(ctx)
        last = ctx.rows(f"SELECT coalesce(max(ts), 0) AS ts FROM findings WHERE track = ? AND "
                        f"{evidence_sql.AUTHOR_IN}", [ctx.track, list(v.trusted_authors)])[0]["ts"]
        return sum(1 for r in v.runs.values() if r["ts"] > last and v.counts(r))

    def work(self, ctx: Context) -> str | None:
        """Judge a few runs (with a judge), then publish a finding when new outcomes arrived."""
        judged = self.judge.work(ctx) if self.judge is not None else 0
        finding = self.synthesize(ctx)
        if judged:
            return f"{judged} run{'s' if judged != 1 else ''} judged" + (f"; {finding}" if finding else "")
        return finding

    def synthesize(self, ctx: Context) -> str | None:
        """Publish a finding when new outcomes arrived since the last one."""
        if self.new_outcomes(ctx) == 0:
            return None
        effects, unidentified = estimate_all(ctx)
        settled = [c for c in evidence.verdicts_of(ctx).claims
                   if c.trusted and c.status in ("verified", "refuted")]
        refs = [c.id for c in sorted(settled, key=lambda c: (-c.ts, c.id))[:512]]
        best = [e for e in effects if e.effect < 0][:1]
        title = f"{len(effects)} knob setting{'s' if len(effects) != 1 else ''} estimated" + (
            f"; best so far {setting(best[0])} ({best[0].effect:+.4f})" if best else "")
        ctx.publish("finding", R.FindingBody(track=ctx.track, title=title[:400],
                                             text=summarize(ctx, effects, unidentified),
                                             effects=effects,
                                             refs=refs))
        return f"finding: {title}"
