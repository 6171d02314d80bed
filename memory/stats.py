"""Statistics of the gate: when does a claim count? Pure functions, shared by roles and the benchmark.

The gate (measured by `swarm bench search` / `swarm bench gate`, see docs/ROLES.md):
1. screen a candidate with ONE run against the baseline mean the swarm knows from many seeds;
   promote it when better by `promote_sd` noise sds; a run in the gray zone (`screen_again`: up
   to `gray_above_sd` worse) gets another, up to `screen_max`;
2. confirm sequentially on fresh seeds (the screening run is not counted: it was selected),
   stopping early for futility once the running mean (over >= 3 runs) is not better than the
   baseline mean, and for efficacy once the claim test reaches `stop_alpha` over >= `min_confirm`
   runs (6, more for a noisier candidate: with fewer, its own variance cannot tell it from one
   as noisy as the floor; a strict bound per look, 0.001, keeps the overall one-sided error near
   `alpha`; a real 2-sd effect then costs ~7 confirmation runs, not `confirm_max`);
3. the statistician tests the confirmation runs against the baseline runs made before the claim
   (one-sided Welch with the candidate's variance shrunk toward the noise floor, `claim_test`),
   controls the false-discovery rate online over every candidate the track screened (LOND,
   `decide`, q = 0.05: a decision never changes as later candidates arrive) and asks for a
   minimum effect relative to the noise floor;
4. an independent verifier replays one seed (the number must match) and runs fresh seeds.
val_bpb: lower is better, so effects are candidate minus baseline and "better" means negative.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Test = Literal["welch", "paired", "sequential"]


@dataclass(frozen=True)
class GateParams:
    """The gate's knobs (docs/ROLES.md says what `swarm bench gate` measured with them)."""

    promote_sd: float = 0.5        # screening: promote when better by this many noise sds
    confirm_max: int = 20          # confirmation runs at most (screening run excluded)
    alpha: float = 0.02            # one-sided p a claim needs (strict)
    fdr_q: float = 0.05            # LOND over the track's screened family (decide)
    min_effect_sd: float = 0.5     # |effect| must reach this many noise sds
    min_confirm: int = 6           # confirmation runs before efficacy (x noise ratio); a claim's minimum
    verify_seeds: int = 3          # a verifier's fresh seeds
    verify_alpha: float = 0.05     # one-sided p of the fresh seeds against the baseline
    min_baseline: int = 16         # baseline seeds before the noise floor is trusted
    min_start: int = 6             # baseline seeds before screening starts (it fills up meanwhile)
    crash_max: int = 4             # crashed confirmation runs replaced, at most (+1 per 8 finished)
    prior_df: float = 4.0          # weight (df) of the track's noise floor in a candidate's variance
    null_promote: float = 0.64     # bound on P(a no-effect candidate passes screening)
    null_claim: float = 3.7        # bound on P(no-effect candidate promoted, claimed at p <= t) / t
    stop_alpha: float = 0.001      # confirmation stops early once the claim test reaches this p
    confirm_cap: int = 48          # confirmation runs at most for a candidate noisier than the floor
    verify_max: int = 12           # a verifier's fresh seeds at most (noisy candidates get more)
    futility_from: int = 3         # confirmation runs before the first futility look (x noise ratio)
    futility_sd: float = 0.5       # futility from the efficacy look: mean not this many sds better
    screen_max: int = 3            # screening runs at most while they land in the gray zone
    gray_above_sd: float = 1.5     # the gray zone reaches this many noise sds above the mean


@dataclass(frozen=True)
class TestResult:
    """A one-sided test that the candidate's val_bpb is lower than the baseline's."""

    test: Test
    statistic: float
    df: float
    p: float
    effect: float                   # mean(candidate) - mean(baseline); negative = better
    n: int                          # candidate runs used


@dataclass(frozen=True)
class NoiseFloor:
    """The seed noise of one config: n runs, their mean and sample std."""

    n: int
    mean: float
    std: float


def _sp():
    # scipy.stats takes ~0.5 s to import: only pay for it when a test is actually computed
    from scipy import stats
    return stats


def _clean(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError("values must be a flat sequence of finite numbers")
    return arr


def _p_or_one(p: float) -> float:
    return 1.0 if math.isnan(p) else float(p)


def noise_floor(values: Sequence[float]) -> NoiseFloor:
    """Mean and sample standard deviation (ddof 1) of one config's val_bpb across seeds."""
    arr = _clean(values)
    if arr.size < 2:
        raise ValueError("a noise floor needs at least 2 runs")
    return NoiseFloor(n=int(arr.size), mean=float(arr.mean()), std=float(arr.std(ddof=1)))


def welch(candidate: Sequence[float], baseline: Sequence[float]) -> TestResult:
    """One-sided Welch t-test (unequal variances): is the candidate's mean lower?"""
    c, b = _clean(candidate), _clean(baseline)
    if c.size < 2 or b.size < 2:
        raise ValueError("Welch's test needs at least 2 runs on each side")
    res = _sp().ttest_ind(c, b, equal_var=False, alternative="less")
    vc, vb = c.var(ddof=1) / c.size, b.var(ddof=1) / b.size
    df = (vc + vb) ** 2 / (vc**2 / (c.size - 1) + vb**2 / (b.size - 1)) if vc + vb > 0 else math.nan
    return TestResult("welch", float(res.statistic), float(df), _p_or_one(res.pvalue),
                      float(c.mean() - b.mean()), int(c.size))


def paired(candidate: Sequence[float], baseline: Sequence[float]) -> TestResult:
    """One-sided paired t-test over runs on the same seeds (same order on both sides)."""
    c, b = _clean(candidate), _clean(baseline)
    if c.size != b.size or c.size < 2:
        raise ValueError("a paired test needs at least 2 pairs, equally many on each side")
    res = _sp().ttest_rel(c, b, alternative="less")
    return TestResult("paired", float(res.statistic), float(c.size - 1), _p_or_one(res.pvalue),
                      float((c - b).mean()), int(c.size))


def sequential(candidate: Sequence[float], baseline: Sequence[float]) -> TestResult:
    """One-sided pooled-variance t-test of confirmation runs against the baseline's many seeds.

    Seed noise is a property of the track, so the baseline's runs estimate it for both sides:
    with 3-4 confirmation runs, Welch's df would be 2-3 and its power near zero (see DESIGN.md).
    """
    c, b = _clean(candidate), _clean(baseline)
    if c.size < 1 or b.size < 2 or c.size + b.size < 3:
        raise ValueError("the sequential test needs >= 1 confirmation run and >= 2 baseline runs")
    ss = ((c - c.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    df = c.size + b.size - 2
    se = math.sqrt(ss / df * (1 / c.size + 1 / b.size))
    effect = float(c.mean() - b.mean())
    if se == 0:
        t = -math.inf if effect < 0 else (math.inf if effect > 0 else 0.0)
    else:
        t = effect / se
    p = float(_sp().t.cdf(t, df)) if math.isfinite(t) else (0.0 if t < 0 else 1.0)
    return TestResult("sequential", t, float(df), p, effect, int(c.size))


def _candidate_variance(c: np.ndarray, prior: float, prior_df: float) -> tuple[float, float]:
    """The candidate's per-run variance and its df: its own sample variance shrunk toward the
    noise floor `prior` with weight `prior_df` (df = prior_df + n - 1)."""
    own_ss = float(((c - c.mean()) ** 2).sum())
    df_c = prior_df + c.size - 1
    return ((prior_df * prior**2 + own_ss) / df_c if df_c > 0 else 0.0), df_c


def shrunk_welch(candidate: Sequence[float], baseline: Sequence[float],
                 floor_sd: float | None = None, prior_df: float = 4.0) -> TestResult:
    """One-sided Welch test with the candidate's variance shrunk toward the track's noise floor.

    With 1-6 confirmation runs the candidate's own variance is too rough for Welch (df 2-5, no
    power), and the pooled test is wrong when the candidate is noisier than the baseline. So the
    candidate's variance is a weighted mean of the noise floor (weight `prior_df`) and its own
    sample variance (weight n - 1), with df = prior_df + n - 1 (`_candidate_variance`); the
    baseline keeps its own variance and n - 1 df; Welch-Satterthwaite combines the two (as
    limma's moderated t does). Reported as test "welch" (the assessment's `test` names the family).
    """
    c, b = _clean(candidate), _clean(baseline)
    if c.size < 1 or b.size < 2:
        raise ValueError("the shrunk Welch test needs >= 1 candidate run and >= 2 baseline runs")
    prior = float(b.std(ddof=1)) if floor_sd is None else float(floor_sd)
    var_c, df_c = _candidate_variance(c, prior, prior_df)
    vc = var_c / c.size
    vb = float(b.var(ddof=1)) / b.size
    effect = float(c.mean() - b.mean())
    if vc + vb == 0:
        t, df = (-math.inf if effect < 0 else (math.inf if effect > 0 else 0.0)), math.nan
        return TestResult("welch", t, df, 0.0 if t < 0 else 1.0, effect, int(c.size))
    df = (vc + vb) ** 2 / ((vc**2 / df_c if df_c > 0 else 0.0) + vb**2 / (b.size - 1))
    t = effect / math.sqrt(vc + vb)
    return TestResult("welch", t, float(df), float(_sp().t.cdf(t, df)), effect, int(c.size))


def claim_test(candidate: Sequence[float], baseline: Sequence[float],
               params: GateParams = GateParams()) -> TestResult:
    """The gate's test of confirmation (or fresh) runs against the baseline's runs."""
    return shrunk_welch(candidate, baseline, None, params.prior_df)


TESTS = {"welch": welch, "paired": paired, "sequential": sequential, "shrunk_welch": shrunk_welch}


# ---- the gate's decisions ---------------------------------------------------------------------

def promotes(screen_bpb: float, base: NoiseFloor, params: GateParams = GateParams()) -> bool:
    """Screening: is one run better than the known baseline mean by `promote_sd` noise sds?"""
    return screen_bpb < base.mean - params.promote_sd * base.std


def screen_again(screen_bpb: float, base: NoiseFloor, params: GateParams = GateParams()) -> bool:
    """Another screening run for one in the gray zone: from `promote_sd` noise sds better than the
    baseline mean to `gray_above_sd` (1.5) sds worse. The next run alone must pass `promotes`.

    Why: one run of a candidate twice as noisy as the baseline misses the bar 23% of the time at a
    2-sd effect (power can never reach 0.8 after that). The zone of +-0.5 sd recovered ~half of
    those (P(promoted) 0.878) but left the runs that landed more than 0.5 sd worse (10.6%) dead;
    up to 1.5 sd worse, 0.945 (q + g q + g^2 q, q = P(one run passes), g = P(gray)). The price: a
    no-effect candidate is promoted with P 0.622 at equal noise, 0.606 at twice (at most 0.631,
    at 1.24 times the noise) instead of <= 1/2, which `null_claim` (measured with this zone)
    absorbs."""
    return (base.mean - params.promote_sd * base.std <= screen_bpb
            <= base.mean + params.gray_above_sd * base.std)


def noise_ratio(confirm_bpb: Sequence[float], floor_sd: float,
                params: GateParams = GateParams()) -> float:
    """The candidate's variance over the noise floor's, >= 1, as the claim test estimates it
    (`_candidate_variance`; one run or none: exactly 1)."""
    c = _clean(confirm_bpb)
    if c.size < 2 or floor_sd <= 0:
        return 1.0
    return max(1.0, _candidate_variance(c, floor_sd, params.prior_df)[0] / floor_sd**2)


def _scaled(runs: int, ratio: float, cap: int) -> int:
    # Runs for a candidate `ratio` times noisier (in variance): same power needs ratio x runs.
    # Rounded, not ceiled: a ratio a little over 1 (a noise-floor candidate's estimate, half of
    # the time) costs no extra run.
    return max(runs, min(cap, int(runs * ratio + 0.5)))


def keep_confirming(confirm_bpb: Sequence[float], base: NoiseFloor,
                    params: GateParams = GateParams(),
                    baseline_bpb: Sequence[float] | None = None, bar: float = 1.0) -> bool:
    """Sequential confirmation: run another seed? No at the cap; no once the running mean is not
    better than the baseline mean (futility), and from the first efficacy look on, not better by
    `futility_sd` noise sds over the square root of the variance ratio; no once, given the baseline's runs, the claim test
    reaches `stop_alpha`, or the claim's `bar` where that is lower (efficacy; `claim_bar`: the p
    the claim needs in its family slot).

    The cap (`confirm_max`), the futility look (`futility_from`) and the first efficacy look
    (`min_confirm`) scale with the candidate's estimated variance ratio (`noise_ratio`), up to
    `confirm_cap`: a candidate twice as noisy needs ~4x the runs for the same power, its mean over
    2 runs is not better in 8% of real 2-sd cases, and efficacy stops from 3 runs on let
    no-effect candidates twice as noisy be claimed at 8.6-12.2x the bar (their few runs looked as
    quiet as the floor by chance); from 6 runs on, 6.6x (3.7x at equal noise; 5.2x / 3.0x with
    the cap of 16 and the gray zone of +-0.5 sd). The cap of 20 at equal noise: with the wider
    gray zone `null_claim` went 3.0 -> 3.4, its stricter bars lost 4-7 points of power late in a
    family of 300 with a cap of 16; 20 recovers them (and costs 3.7)."""
    n = len(confirm_bpb)
    ratio = noise_ratio(confirm_bpb, base.std, params)
    if n >= _scaled(params.confirm_max, ratio, max(params.confirm_cap, params.confirm_max)):
        return False
    first_look = _scaled(params.futility_from, ratio, params.confirm_cap)
    efficacy_from = _scaled(params.min_confirm, ratio, params.confirm_cap)
    margin = params.futility_sd * base.std / math.sqrt(ratio) if n >= efficacy_from else 0.0
    if n >= first_look and float(np.mean(confirm_bpb)) >= base.mean - margin:
        return False
    if baseline_bpb is not None and n >= efficacy_from and len(baseline_bpb) >= 2:
        return claim_test(confirm_bpb, baseline_bpb, params).p > min(params.stop_alpha, bar)
    return True


def crashes_allowed(finished: int, params: GateParams = GateParams()) -> int:
    """Crashed confirmation runs a candidate may have (each replaced by another seed) after
    `finished` good ones: `crash_max`, one more per 8 finished. A fixed 2 gave up on a noisy
    candidate's ~30 runs in 19% of cases at a 5% crash rate (the scaled cap needs that many); a
    config that crashes most of the time still runs out within a few runs. 4, not 2: at twice
    the noise and 5% crashes, 2 still lost 8-10% of real 2-sd candidates in confirmation and
    power was 0.79-0.83 in a family of 80; with 4, 0.85-0.87 (four seeds)."""
    return params.crash_max + finished // 8


def worth_claiming(confirm_bpb: Sequence[float], baseline_bpb: Sequence[float],
                   params: GateParams = GateParams(), bar: float = 1.0) -> bool:
    """Does the confirmation evidence pass the statistician's bar: `alpha`, the family's `bar`
    (`claim_bar` of the claim's slot) and the minimum effect?"""
    if not confirm_bpb or len(baseline_bpb) < 2:
        return False
    res = claim_test(confirm_bpb, baseline_bpb, params)
    floor = noise_floor(baseline_bpb)
    return res.p <= min(params.alpha, bar) and -res.effect >= params.min_effect_sd * floor.std


# ---- multiplicity: LOND over the track's screened family ---------------------------------------
#
# The family is every candidate trusted authors screened, in one order every node derives from the
# records (`roles/verdicts.py`: by the key (ts, id) of a candidate's first trusted screen). Test j
# of that order is given the share gamma_j of the error budget, with sum_j gamma_j = 1 over an
# endless family, and a claim in slot j is a discovery when
#     null_claim * p <= fdr_q * gamma_j * (D + 1),
# D the discoveries among the claims before it (LOND: Javanmard & Montanari 2018; FDR <= fdr_q
# for independent or positively dependent p-values, Zrnic, Ramdas & Jordan 2021). A decision
# depends only on the claims before it, so it stays as later screens and claims arrive; BH over
# the whole family (before) moved every q-value up as the family grew.

GAMMA_SHIFT = 50        # gamma_j = (j + 50)^-1.5 / zeta(1.5, 51): nearly flat over the first
GAMMA_POWER = 1.5       # ~50 slots, 1.9e-3 at slot 100, 5.4e-4 at 300; 9% of the budget lies
#                         beyond slot 5,000 (the heavier 1/(j ln^2 j) tail left 37% beyond 10,000)


@functools.lru_cache(maxsize=1)
def _gamma_norm() -> float:
    from scipy.special import zeta
    return float(zeta(GAMMA_POWER, GAMMA_SHIFT + 1))    # sum over j >= 1 of (j + shift)^-power


def lond_gamma(slot: int) -> float:
    """The share of the error budget of the family's `slot`-th test (1-based); they sum to 1."""
    if slot < 1:
        raise ValueError("slots count from 1")
    return (slot + GAMMA_SHIFT) ** -GAMMA_POWER / _gamma_norm()


def online_q(p: float, slot: int, discoveries: int, params: GateParams = GateParams()) -> float:
    """A claim's q in its slot: `null_claim * p / (gamma_slot * (D + 1))`, capped at 1; the claim
    is a discovery when q <= `fdr_q`.

    `null_claim * p` is meant as a valid p-value for the whole screen-then-confirm procedure: for a
    no-effect candidate, P(promoted and claimed at p <= t) <= null_claim * t. Promotion alone
    bounds it by `null_promote` (0.64) only if p were uniform given promotion; it is not: the
    sequential looks stop at the first p under the bar, and promotion favours a baseline whose
    mean came out high, which the claim test then meets again. `swarm bench search --mode sim`
    measured 3.7 t at t = 1e-3 (equal noise; 6.6 t at twice the noise, docs/ROLES.md). A
    screened candidate never claimed counts with p = 1 and only takes its slot."""
    if discoveries < 0:
        raise ValueError("discoveries cannot be negative")
    return min(1.0, params.null_claim * p / (lond_gamma(slot) * (discoveries + 1)))


def claim_bar(slot: int, discoveries: int, params: GateParams = GateParams()) -> float:
    """The largest claim p that is a discovery in this slot after `discoveries` (online_q <= q)."""
    return params.fdr_q * lond_gamma(slot) * (discoveries + 1) / params.null_claim


@dataclass(frozen=True)
class Verdict:
    """The statistician's verdict on one claim."""

    supported: bool
    q: float
    reason: str


def decide(result: TestResult, noise_sd: float, params: GateParams = GateParams(),
           slot: int = 1, discoveries: int = 0) -> Verdict:
    """The verdict on one claim in its family slot after `discoveries` earlier discoveries:
    enough runs, strict p, online q (`online_q`), minimum effect."""
    q = online_q(result.p, slot, discoveries, params)
    need = params.min_effect_sd * noise_sd
    if result.n < params.min_confirm:
        return Verdict(False, q, f"n={result.n} < {params.min_confirm} confirmation runs")
    if result.p > params.alpha:
        return Verdict(False, q, f"p={result.p:.3g} > alpha={params.alpha}")
    if q > params.fdr_q:
        return Verdict(False, q, f"q={q:.3g} > {params.fdr_q} (LOND: slot {slot} of the screened "
                                 f"family, {discoveries} discoveries before)")
    if -result.effect < need:
        return Verdict(False, q, f"effect {result.effect:+.4g} smaller than {params.min_effect_sd} "
                                 f"noise sd ({need:.3g})")
    return Verdict(True, q, f"{result.test} p={result.p:.3g} q={q:.3g} (slot {slot}, "
                            f"{discoveries} before) effect {result.effect:+.4g} "
                            f"(noise sd {noise_sd:.3g}, n={result.n})")


Outcome = Literal["confirmed", "refuted", "inconclusive"]


def replay_tolerance(same_hardware: bool, noise_sd: float) -> float:
    """How far a replayed seed may land from the reported val_bpb.

    Same CPU class, same threads: a fixed-seed, fixed-step run is bit-identical, so only
    float formatting is allowed for. Across hardware, kernels differ a little (DESIGN.md measured
    0.002 bpb after 100 steps for another thread count): allow a noise sd, at least 0.005.
    """
    return 1e-6 if same_hardware else max(noise_sd, 0.005)


def verification_outcome(replay_match: bool | None, fresh_bpb: Sequence[float],
                         baseline_bpb: Sequence[float],
                         params: GateParams = GateParams()) -> tuple[Outcome, float | None, str]:
    """The verifier's outcome: a failed replay refutes; fresh seeds confirm, refute or stay unclear."""
    if replay_match is False:
        return "refuted", None, "the replayed seed does not reproduce the claimed val_bpb"
    if not fresh_bpb or len(baseline_bpb) < 2:
        return "inconclusive", None, "no fresh runs finished"
    res = claim_test(fresh_bpb, baseline_bpb, params)
    if res.p <= params.verify_alpha and res.effect < 0:
        return "confirmed", res.effect, f"fresh seeds p={res.p:.3g}, effect {res.effect:+.4g}"
    if res.effect >= 0:
        return "refuted", res.effect, f"fresh seeds not better: effect {res.effect:+.4g}"
    return "inconclusive", res.effect, f"fresh seeds p={res.p:.3g} > {params.verify_alpha}"


def verify_runs(confirm_bpb: Sequence[float], baseline_bpb: Sequence[float],
                params: GateParams = GateParams()) -> int:
    """Fresh seeds a verifier runs for a claim: `verify_seeds` times the candidate's variance
    ratio estimated from its confirmation runs (`noise_ratio`), at most `verify_max`."""
    if len(baseline_bpb) < 2:
        return params.verify_seeds
    ratio = noise_ratio(confirm_bpb, float(np.std(_clean(baseline_bpb), ddof=1)), params)
    return _scaled(params.verify_seeds, ratio, max(params.verify_max, params.verify_seeds))
