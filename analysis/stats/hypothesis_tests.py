"""Hypothesis tests: Holm's correction, the paired t-test, TOST equivalence and McNemar's test.

Every p-value of the report comes from here. The paired t-test and TOST are the p-values of the t
procedure of :mod:`analysis.stats.intervals`, so a contrast's test and its interval always agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from analysis.stats.intervals import T_METHOD, t_procedure

EXACT_BELOW = 25  # discordant pairs below which McNemar's test uses the exact binomial distribution


def holm(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries are left NaN and not counted in the family.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def paired_t_test(differences: np.ndarray, *, scale: float | None = None) -> float:
    """Two-sided one-sample t-test of per-seed paired differences against 0.

    The p-value of :func:`analysis.stats.intervals.t_procedure` (the same procedure as the contrast's
    interval): NaN below :data:`~analysis.stats.intervals.MIN_SEEDS` differences and NaN when the
    differences do not vary (not testable; never p = 0 for constant differences).

    Examples
    --------
    >>> round(paired_t_test(np.array([0.02, -0.01, 0.05])), 3)
    0.368
    >>> paired_t_test(np.array([0.01, 0.01, 0.01]))
    nan
    """
    d = np.asarray(differences, dtype=float)
    return float(t_procedure(d[~np.isnan(d)], scale=scale)["p_value"].iloc[0])


def tost_paired(differences: np.ndarray, margin: float, *, scale: float | None = None) -> float:
    """TOST p-value that the mean paired difference lies within ``(-margin, margin)``.

    Both one-sided t-tests must reject, so the p-value is the larger of the two; it is below ``alpha``
    exactly when the (1 - 2 alpha) t interval of :func:`~analysis.stats.intervals.t_procedure` lies
    inside the margin. NaN below :data:`~analysis.stats.intervals.MIN_SEEDS` differences and for
    differences that do not vary (not testable).

    Examples
    --------
    >>> round(tost_paired(np.array([0.001, -0.002, 0.0, 0.002]), 0.02), 5)
    9e-05
    """
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if t_procedure(d, scale=scale)["method"].iloc[0] != T_METHOD:
        return np.nan
    mean, se = float(d.mean()), d.std(ddof=1) / np.sqrt(d.size)
    lower = stats.t.sf((mean + margin) / se, d.size - 1)
    upper = stats.t.cdf((mean - margin) / se, d.size - 1)
    return float(max(lower, upper))


def mcnemar(b: int, c: int) -> tuple[float, float, str]:
    """McNemar's test of ``b`` versus ``c`` discordant pairs.

    Exact two-sided binomial test when ``b + c < 25`` (statistic ``min(b, c)``), otherwise the
    continuity-corrected chi-square ``(|b - c| - 1)**2 / (b + c)`` with one degree of freedom.

    Returns
    -------
    tuple
        ``(statistic, p_value, method)`` with method ``"exact"`` or ``"chi2"``.

    Examples
    --------
    >>> mcnemar(0, 0)
    (0.0, 1.0, 'exact')
    >>> round(mcnemar(10, 30)[0], 3)
    9.025
    """
    n = b + c
    if n == 0:
        return 0.0, 1.0, "exact"
    if n < EXACT_BELOW:
        p = min(1.0, 2.0 * stats.binom.cdf(min(b, c), n, 0.5))
        return float(min(b, c)), float(p), "exact"
    chi2 = (abs(b - c) - 1.0) ** 2 / n
    return float(chi2), float(stats.chi2.sf(chi2, 1)), "chi2"
