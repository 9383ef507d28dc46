"""The growth exponent of Regret(N) ≈ c·N^a."""

import numpy as np
import scipy.stats

from keras_taylor.analysis.results import GrowthFit


def fit_growth(curve, *, fraction: float = 0.5, confidence: float = 0.95) -> GrowthFit:
    """Fits Regret(N) ≈ c·N^a over the later `fraction` of the grid (log-log least squares).

    Zero and negative regret are reported, never clipped: regret that is zero on the
    whole fitted range (a dead neuron) gives status "zero regret"; regret that is
    negative throughout is fitted as −c·N^a with sign −1; regret that changes sign
    (or is zero somewhere) on the range gives status "sign changes" and no exponent.

    Args:
        curve: A `RegretCurve` (or anything with `rounds` and `regret` `[K]`).
        fraction: The share of the grid, from its end, that the fit uses.
        confidence: Level of the exponent's t-interval.

    Returns:
        The `GrowthFit`: the exponent a with its interval, and the signed coefficient c.
    """
    rounds, regret = np.asarray(curve.rounds, np.float64), np.asarray(curve.regret, np.float64)
    keep = np.arange(len(rounds)) >= int(np.floor(len(rounds) * (1 - fraction)))
    rounds, regret = rounds[keep], regret[keep]
    nan = (float("nan"), float("nan"))

    def no_fit(status: str, sign: int = 0) -> GrowthFit:
        return GrowthFit(float("nan"), nan, confidence, sign, rounds.astype(np.int64), status, float("nan"))

    if len(rounds) < 3:
        return no_fit("too few points")
    if not np.all(np.isfinite(regret)):
        return no_fit("non-finite regret")
    if np.all(regret == 0):
        return no_fit("zero regret")
    sign = int(np.sign(regret[-1]))
    if not np.all(np.sign(regret) == sign):
        return no_fit("sign changes", sign)
    fit = scipy.stats.linregress(np.log(rounds), np.log(sign * regret))
    half_width = scipy.stats.t.ppf(0.5 + confidence / 2, len(rounds) - 2) * fit.stderr
    return GrowthFit(float(fit.slope), (float(fit.slope - half_width), float(fit.slope + half_width)),
                     confidence, sign, rounds.astype(np.int64), "ok", float(sign * np.exp(fit.intercept)))


def band_fit_summary(regret: np.ndarray, fits) -> dict:
    """What analysis.json keeps about a neuron band's fits besides the fits themselves.

    Args:
        regret: `[K, G]` each neuron's regret on the grid.
        fits: The K neurons' `GrowthFit`s.

    Returns:
        `{"exponent_mean", "exponent_std"}` over the fitted exponents (None if none was fitted),
        `"fit_status_counts"`, and how many neurons end with negative and with zero regret.
    """
    exponents = np.array([fit.exponent for fit in fits], np.float64)
    fitted = np.any(np.isfinite(exponents))
    statuses = [fit.status for fit in fits]
    final = np.asarray(regret, np.float64)[:, -1] if np.size(regret) else np.zeros(0)
    return {"exponent_mean": float(np.nanmean(exponents)) if fitted else None,
            "exponent_std": float(np.nanstd(exponents)) if fitted else None,
            "fit_status_counts": {status: statuses.count(status) for status in sorted(set(statuses))},
            "negative_final_regret": int(np.sum(final < 0)), "zero_final_regret": int(np.sum(final == 0))}
