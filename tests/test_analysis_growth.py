"""analysis.growth: exponents and coefficients of Regret(N) ≈ c·N^a, signs and zero regret reported."""

import numpy as np
import pytest

from keras_taylor import analysis

from conftest import assert_close


def _power_curve(rounds, regret):
    return analysis.RegretCurve("layer", "x", None, rounds, regret, np.zeros_like(regret), regret, None)


def test_fit_growth_recovers_known_exponents_and_reports_signs():
    rounds = analysis.log_grid(10000, 20)
    fit = analysis.fit_growth(_power_curve(rounds, 3.0 * rounds**0.5))
    assert fit.status == "ok" and fit.sign == 1
    assert abs(fit.exponent - 0.5) < 1e-9 and fit.interval[0] <= 0.5 <= fit.interval[1]
    noisy = 3.0 * rounds**0.7 * np.exp(np.random.default_rng(0).normal(0, 0.05, len(rounds)))
    fit = analysis.fit_growth(_power_curve(rounds, noisy))
    assert fit.interval[0] < 0.7 < fit.interval[1] and fit.interval[1] - fit.interval[0] < 0.2
    negative = analysis.fit_growth(_power_curve(rounds, -2.0 * rounds**0.3))
    assert negative.sign == -1 and abs(negative.exponent - 0.3) < 1e-9
    assert analysis.fit_growth(_power_curve(rounds, np.zeros(len(rounds)))).status == "zero regret"
    changing = np.where(np.arange(len(rounds)) % 2 == 0, 1.0, -1.0) * rounds
    assert analysis.fit_growth(_power_curve(rounds, changing)).status == "sign changes"
    assert np.isnan(analysis.fit_growth(_power_curve(rounds, changing)).exponent)


# (sign of the regret, share of the grid fitted)
GROWTH_COEFFICIENT_CASES = {"positive_half": (1, 0.5), "negative_half": (-1, 0.5), "positive_last_third": (1, 1 / 3)}


@pytest.mark.parametrize("sign, fraction", GROWTH_COEFFICIENT_CASES.values(), ids=GROWTH_COEFFICIENT_CASES.keys())
def test_fit_growth_coefficient_is_the_least_squares_constant_of_log_regret_minus_a_log_n(rng, sign, fraction):
    rounds = np.unique(np.geomspace(1, int(rng.integers(500, 20000)), 24).astype(np.int64))
    noise = np.exp(rng.normal(0.0, 0.3, rounds.size))
    regret = sign * rng.uniform(0.1, 10.0) * rounds ** rng.uniform(0.2, 1.2) * noise
    fit = analysis.fit_growth(_power_curve(rounds, regret), fraction=fraction)
    assert fit.status == "ok" and fit.sign == sign
    used = fit.rounds_used
    log_regret = np.log(np.abs(regret[np.isin(rounds, used)]))
    # The exponent held fixed: log|c| = least squares of log|Regret(N)| − a·log N on a column of ones.
    (log_coefficient,), *_ = np.linalg.lstsq(np.ones((used.size, 1)), log_regret - fit.exponent * np.log(used),
                                             rcond=None)
    assert_close(fit.coefficient, sign * np.exp(log_coefficient), "float64")
    # Both free: the same line as the exponent's own fit.
    design = np.stack([np.ones(used.size), np.log(used)], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, log_regret, rcond=None)
    assert_close(fit.exponent, slope, "float64")
    assert_close(fit.coefficient, sign * np.exp(intercept), "float64")


def test_fit_growth_coefficient_of_an_exact_power_law_and_of_no_fit():
    rounds = analysis.log_grid(10000, 20)
    assert_close(analysis.fit_growth(_power_curve(rounds, -2.0 * rounds**0.3)).coefficient, -2.0, "float64")
    assert np.isnan(analysis.fit_growth(_power_curve(rounds, np.zeros(len(rounds)))).coefficient)


def test_band_fit_summary_counts_what_the_fits_and_final_regrets_say(rng):
    rounds = np.geomspace(1, 1000, 10)
    regret = np.stack([2.0 * rounds ** 0.5, 0.5 * rounds ** 0.3, -rounds ** 0.7, np.zeros_like(rounds)])
    regret[:2] *= np.exp(rng.normal(0, 0.05, (2, rounds.size)))
    curves = [type("Curve", (), {"rounds": rounds, "regret": row})() for row in regret]
    fits = [analysis.fit_growth(curve) for curve in curves]
    summary = analysis.band_fit_summary(regret, fits)
    assert summary["fit_status_counts"] == {"ok": 3, "zero regret": 1}
    assert summary["exponent_mean"] == pytest.approx(np.mean([fit.exponent for fit in fits[:3]]))
    assert summary["exponent_std"] == pytest.approx(np.std([fit.exponent for fit in fits[:3]]))
    assert summary["negative_final_regret"] == 1 and summary["zero_final_regret"] == 1
    nothing = analysis.band_fit_summary(regret[3:], fits[3:])
    assert nothing["exponent_mean"] is None and nothing["exponent_std"] is None
