"""The statistics on hand-computed cases (numbers worked out on paper, not by scipy)."""
from __future__ import annotations

import math
import random

import pytest

from memory import stats


def test_welch_matches_hand_computation() -> None:
    # a: mean 2, var 1; b: mean 5.5, var 5/3. se^2 = 1/3 + 5/12 = 3/4; t = -3.5 / sqrt(3/4).
    res = stats.welch([1, 2, 3], [4, 5, 6, 7])
    assert res.statistic == pytest.approx(-3.5 / math.sqrt(0.75))
    assert res.df == pytest.approx(0.5625 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3))
    assert res.effect == pytest.approx(-3.5)
    assert 0 < res.p < 0.01 and res.test == "welch"


def test_paired_matches_closed_form_for_two_df() -> None:
    # differences -1, -1.5, -0.5: mean -1, sd 0.5, t = -2 sqrt(3); the t(2) cdf is closed-form.
    res = stats.paired([1, 2, 3], [2, 3.5, 3.5])
    t = -2 * math.sqrt(3)
    assert res.statistic == pytest.approx(t)
    assert res.p == pytest.approx(0.5 * (1 + t / math.sqrt(2 + t * t)))


def test_sequential_pooled_matches_closed_form_for_one_df() -> None:
    # c = [1], b = [2, 4]: pooled ss 2, df 1, se sqrt(3), t = -2/sqrt(3); t(1) is Cauchy.
    res = stats.sequential([1], [2, 4])
    t = -2 / math.sqrt(3)
    assert res.statistic == pytest.approx(t)
    assert res.p == pytest.approx(0.5 + math.atan(t) / math.pi)


def test_noise_floor_is_sample_std() -> None:
    floor = stats.noise_floor([1.0, 1.002, 1.004])
    assert (floor.n, floor.mean, floor.std) == (3, pytest.approx(1.002), pytest.approx(0.002))


@pytest.mark.parametrize("bad", [[1.0], [1.0, math.nan], [[1.0, 2.0]]])
def test_bad_input_is_a_clear_error(bad: list) -> None:
    with pytest.raises(ValueError):
        stats.noise_floor(bad)


def test_gate_decisions() -> None:
    base = stats.NoiseFloor(n=10, mean=1.0, std=0.002)
    assert stats.promotes(0.998, base) and not stats.promotes(0.9995, base)
    assert stats.keep_confirming([], base)
    assert stats.keep_confirming([1.001, 1.0002], base)       # 2 runs are too noisy to give up on
    assert not stats.keep_confirming([1.001, 1.0002, 1.0001], base)  # mean not better: stop
    assert stats.keep_confirming([0.997, 0.998], base)
    assert stats.keep_confirming([0.997] * 19, base)
    assert not stats.keep_confirming([0.997] * 20, base)      # at confirm_max


def test_screening_gray_zone_and_its_null_bound() -> None:
    base = stats.NoiseFloor(n=16, mean=1.0, std=0.002)       # gray zone: 1 - 0.5 sd to 1 + 1.5 sd
    assert stats.screen_again(0.9995, base) and stats.screen_again(1.001, base)
    assert stats.screen_again(1.0029, base) and stats.screen_again(1.003, base)  # edge: 1.5 sd
    assert not stats.screen_again(0.998, base)                # promoted: no second run needed
    assert not stats.screen_again(1.0031, base)               # clearly not better: dead end
    # P(promoted) = q + g q + g^2 q, q = P(a run < mean - 0.5 sd), g = P(gray). A no-effect
    # candidate, hand-computed at s = 1 sd: q = Phi(-0.5) = 0.30854, g = Phi(1.5) - q = 0.62466:
    # 0.30854 * (1 + 0.62466 + 0.39020) = 0.62166; at s = 2: q = Phi(-0.25) = 0.40129,
    # g = Phi(0.75) - q = 0.37208: 0.60616. A real 2-sd effect at s = 2: q = Phi(0.75) = 0.77337,
    # g = Phi(1.75) - q = 0.18657: 0.94458 (0.87825 with the zone of +-0.5 sd).
    for mu, s, expected in ((0.0, 1.0, 0.62166), (0.0, 2.0, 0.60616), (-2.0, 2.0, 0.94458)):
        rng, promoted, n = random.Random(int(s - mu)), 0, 20000
        for _ in range(n):
            for _ in range(stats.GateParams.screen_max):
                value = rng.gauss(1.0 + 0.002 * mu, 0.002 * s)
                if stats.promotes(value, base) or not stats.screen_again(value, base):
                    promoted += stats.promotes(value, base)
                    break
        assert abs(promoted / n - expected) < 0.012
        assert mu < 0 or promoted / n <= stats.GateParams.null_promote


def test_crashes_allowed_grow_with_finished_runs() -> None:
    # crash_max 4, one more per 8 finished: 4 at 0-7 finished, 5 at 8-15, 8 at 32.
    assert [stats.crashes_allowed(n) for n in (0, 7, 8, 15, 32)] == [4, 4, 5, 5, 8]


def test_noise_ratio_scales_futility_cap_and_verification_by_hand() -> None:
    # [1, 3]: ss 2; floor 1, prior df 4: (4*1 + 2) / (4 + 1) = 1.2. [0, 4]: ss 8: 12/5 = 2.4.
    assert stats.noise_ratio([1, 3], 1.0) == pytest.approx(1.2)
    assert stats.noise_ratio([0, 4], 1.0) == pytest.approx(2.4)
    assert stats.noise_ratio([2], 1.0) == 1.0 and stats.noise_ratio([2, 2.1], 1.0) == 1.0
    base = stats.NoiseFloor(n=16, mean=0.0, std=1.0)
    # [-3, 1, 3]: mean 1/3 (not better), ss 18.67: ratio (4 + 18.67) / 6 = 3.78, so the first
    # futility look is at round(3 * 3.78) = 11 runs, not 3: a noisy candidate is not dropped yet.
    assert stats.keep_confirming([-3, 1, 3], base)
    assert not stats.keep_confirming([0.5, 0.4, 0.6], base)     # ratio 1: the look is at 3
    noisy = [-4.0, 2.0] * 12                                     # mean -1, ratio ~9: cap 48
    assert stats.keep_confirming(noisy, base) and not stats.keep_confirming(noisy * 2, base)
    baseline = [-1.0, 0.0, 1.0]                                  # sd 1
    assert stats.verify_runs([0, 4], baseline) == 7             # round(3 * 2.4)
    assert stats.verify_runs([1.0, 1.1, 0.9], baseline) == 3     # no noisier than the floor
    assert stats.verify_runs(noisy, baseline) == 12              # at verify_max


def test_futility_asks_half_a_noise_sd_from_the_first_efficacy_look() -> None:
    base = stats.NoiseFloor(n=16, mean=0.0, std=1.0)
    slight = [-0.3, -0.5, -0.4, -0.2, -0.4, -0.3]              # mean -0.35 sd, ratio 1
    assert stats.noise_ratio(slight, 1.0) == 1.0
    assert stats.keep_confirming(slight[:5], base)             # before min_confirm: only "not better"
    assert not stats.keep_confirming(slight, base)             # 6 runs, 0.35 < 0.5 sd better: stop
    assert stats.keep_confirming(slight, base, stats.GateParams(futility_sd=0.0))   # the old rule
    clear = [-0.6, -0.8, -0.7, -0.5, -0.7, -0.6]               # mean -0.65 sd: on
    assert stats.keep_confirming(clear, base)


def test_confirmation_stops_once_the_claim_test_is_strong() -> None:
    baseline = [1.0 + 0.002 * z for z in (-1.5, -1, -0.5, -0.2, 0, 0, 0.2, 0.5, 1, 1.5)]
    base = stats.noise_floor(baseline)
    strong, weak = [0.994, 0.9945, 0.9938], [0.9990, 0.9986, 0.9992]
    assert stats.claim_test(strong, baseline).p <= stats.GateParams.stop_alpha
    assert stats.keep_confirming(strong, base, baseline_bpb=baseline)          # < min_confirm
    strong = strong * 2                                        # 6 runs, still tight: ratio 1
    assert stats.claim_test(strong, baseline).p <= stats.GateParams.stop_alpha
    assert not stats.keep_confirming(strong, base, baseline_bpb=baseline)      # efficacy: stop
    assert stats.keep_confirming(weak, base, baseline_bpb=baseline)            # not yet clear
    assert stats.keep_confirming(strong, base)                 # without the baseline's runs: on


def test_decide_needs_strict_p_fdr_and_minimum_effect() -> None:
    strong = stats.TestResult("sequential", -6.0, 10, 1e-5, -0.004, 6)
    tiny = stats.TestResult("sequential", -6.0, 10, 1e-5, -0.0002, 6)   # significant but tiny
    weak = stats.TestResult("sequential", -1.0, 10, 0.2, -0.001, 6)
    few = stats.TestResult("sequential", -6.0, 10, 1e-5, -0.004, 5)     # < min_confirm runs
    verdicts = [stats.decide(r, noise_sd=0.002) for r in (strong, tiny, weak, few)]
    assert [v.supported for v in verdicts] == [True, False, False, False]
    assert "noise sd" in verdicts[1].reason and "alpha" in verdicts[2].reason
    assert "confirmation runs" in verdicts[3].reason


def test_verification_outcomes() -> None:
    baseline = [1.0, 1.002, 0.998, 1.001, 0.999]
    assert stats.verification_outcome(False, [0.99], baseline)[0] == "refuted"
    assert stats.verification_outcome(True, [0.990, 0.991, 0.989], baseline)[0] == "confirmed"
    assert stats.verification_outcome(True, [1.003, 1.001, 1.002], baseline)[0] == "refuted"
    assert stats.verification_outcome(None, [], baseline)[0] == "inconclusive"
    assert stats.replay_tolerance(True, 0.002) < 1e-5 < stats.replay_tolerance(False, 0.002)


def test_shrunk_welch_matches_hand_computation() -> None:
    # c = [1, 3]: mean 2, ss 2; b = [4, 6, 5]: mean 5, var 1; floor 1 with prior df 2:
    # v_c = (2*1 + 2) / 3 = 4/3, df_c = 3; se^2 = (4/3)/2 + 1/3 = 1, t = -3;
    # df = 1 / ((2/3)^2/3 + (1/3)^2/2) = 54/11.
    res = stats.shrunk_welch([1, 3], [4, 6, 5], floor_sd=1.0, prior_df=2.0)
    assert res.statistic == pytest.approx(-3.0) and res.df == pytest.approx(54 / 11)
    assert res.effect == pytest.approx(-3.0) and res.test == "welch"
    # one candidate run: its variance is the floor's, df = prior df: se^2 = 1 + 1/3
    one = stats.shrunk_welch([2], [4, 6, 5], floor_sd=1.0, prior_df=2.0)
    assert one.statistic == pytest.approx(-3 / math.sqrt(4 / 3))


def test_shrunk_welch_sees_a_noisier_candidate_where_the_pooled_test_does_not() -> None:
    # Same means; the candidate's spread is 4x the baseline's. The pooled test takes the
    # baseline's small noise for both sides and is far more confident than the shrunk Welch test.
    base = [1.0, 1.002, 0.998, 1.001, 0.999, 1.0, 1.001, 0.999] * 2
    cand = [0.992, 1.000, 0.984, 0.996, 0.988]
    pooled = stats.sequential(cand, base)
    shrunk = stats.shrunk_welch(cand, base, prior_df=4.0)
    assert shrunk.effect == pytest.approx(pooled.effect)
    assert shrunk.p > 10 * pooled.p and shrunk.df < pooled.df


def test_lond_gamma_sums_to_one_and_decreases() -> None:
    g = [stats.lond_gamma(j) for j in range(1, 20_001)]
    assert all(a > b for a, b in zip(g, g[1:]))
    # (j + 50)^-1.5 / zeta(1.5, 51); by Euler-Maclaurin zeta(1.5, 51) ~ 2 / sqrt(51) + 51^-1.5 / 2
    # = 0.28143; the tail past slot 20,000 holds ~ 2 / sqrt(20,051) / 0.28143 ~ 5%
    z = 2 / math.sqrt(51) + 51 ** -1.5 / 2
    assert stats.lond_gamma(1) == pytest.approx(51 ** -1.5 / z, rel=1e-4)
    assert sum(g) == pytest.approx(1 - 2 / math.sqrt(20_051) / z, abs=1e-4)
    with pytest.raises(ValueError):
        stats.lond_gamma(0)


def test_lond_on_a_small_family_by_hand() -> None:
    # Family of 4 screened candidates (slots 1-4); claims in slots 2 and 4 (1 and 3 were never
    # claimed: p = 1, they only hold their slots). gamma_2 = 52^-1.5 / Z, gamma_4 = 54^-1.5 / Z.
    z = stats._gamma_norm()
    g2, g4 = 52 ** -1.5 / z, 54 ** -1.5 / z                 # 0.00948, 0.00895
    params = stats.GateParams(null_claim=3.0)
    # q = null_claim * p / (gamma_slot * (D + 1)), null_claim = 3 (a round figure for the hand)
    assert stats.online_q(1e-4, 2, 0, params) == pytest.approx(3e-4 / g2)
    assert stats.online_q(2e-4, 4, 1, params) == pytest.approx(3 * 2e-4 / (2 * g4))
    assert stats.claim_bar(4, 1, params) == pytest.approx(0.05 * 2 * g4 / 3)
    first = stats.TestResult("welch", -6.0, 10, 1e-4, -0.004, 6)     # q = 0.0316: discovery
    second = stats.TestResult("welch", -4.0, 10, 2e-4, -0.004, 6)
    assert stats.decide(first, 0.002, params, slot=2).supported
    alone = stats.decide(second, 0.002, params, slot=4, discoveries=0)   # q = 0.0670 > 0.05
    after = stats.decide(second, 0.002, params, slot=4, discoveries=1)   # q = 0.0335
    assert alone.q == pytest.approx(0.0670, abs=1e-4) and after.q == pytest.approx(0.0335, abs=1e-4)
    assert not alone.supported and "LOND: slot 4" in alone.reason
    assert after.supported
