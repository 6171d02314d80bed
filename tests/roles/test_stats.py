"""The statistics on hand-computed cases (numbers worked out on paper, not by scipy)."""
from __future__ import annotations

import math

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


def test_benjamini_hochberg_order_and_monotonicity() -> None:
    # sorted .005 .01 .03 .04 -> p*m/i = .02 .02 .04 .04 (already monotone), back in input order
    assert stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # a larger p early is pulled down by a smaller later ratio: .02*2/1=.04 vs .03*2/2=.03
    assert stats.benjamini_hochberg([0.02, 0.03]) == pytest.approx([0.03, 0.03])
    assert stats.benjamini_hochberg([0.9, 0.8]) == pytest.approx([0.9, 0.9])
    assert stats.benjamini_hochberg([]) == []


def test_noise_floor_is_sample_std() -> None:
    floor = stats.noise_floor([1.0, 1.002, 1.004])
    assert (floor.n, floor.mean, floor.std) == (3, pytest.approx(1.002), pytest.approx(0.002))


@pytest.mark.parametrize("bad", [[1.0], [1.0, math.nan], [[1.0, 2.0]]])
def test_bad_input_is_a_clear_error(bad: list) -> None:
    with pytest.raises(ValueError):
        stats.noise_floor(bad)
    with pytest.raises(ValueError):
        stats.benjamini_hochberg([1.5])


def test_gate_decisions() -> None:
    base = stats.NoiseFloor(n=10, mean=1.0, std=0.002)
    assert stats.promotes(0.998, base) and not stats.promotes(0.9995, base)
    assert stats.keep_confirming([], base)
    assert not stats.keep_confirming([1.001], base)          # running mean not better: stop
    assert stats.keep_confirming([0.997, 0.998], base)
    assert not stats.keep_confirming([0.997] * 6, base)       # at confirm_max


def test_decide_needs_strict_p_fdr_and_minimum_effect() -> None:
    strong = stats.TestResult("sequential", -6.0, 10, 1e-5, -0.004, 4)
    tiny = stats.TestResult("sequential", -6.0, 10, 1e-5, -0.0002, 4)   # significant but tiny
    weak = stats.TestResult("sequential", -1.0, 10, 0.2, -0.001, 4)
    verdicts = stats.decide([strong, tiny, weak], noise_sd=0.002)
    assert [v.supported for v in verdicts] == [True, False, False]
    assert "noise sd" in verdicts[1].reason and "alpha" in verdicts[2].reason


def test_verification_outcomes() -> None:
    baseline = [1.0, 1.002, 0.998, 1.001, 0.999]
    assert stats.verification_outcome(False, [0.99], baseline)[0] == "refuted"
    assert stats.verification_outcome(True, [0.990, 0.991, 0.989], baseline)[0] == "confirmed"
    assert stats.verification_outcome(True, [1.003, 1.001, 1.002], baseline)[0] == "refuted"
    assert stats.verification_outcome(None, [], baseline)[0] == "inconclusive"
    assert stats.replay_tolerance(True, 0.002) < 1e-5 < stats.replay_tolerance(False, 0.002)
