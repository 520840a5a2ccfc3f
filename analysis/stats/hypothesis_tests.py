"""Hypothesis tests: Holm's correction, the paired t-test, TOST equivalence and McNemar's test.

Every p-value of the report comes from here; intervals come from :mod:`analysis.stats.intervals`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

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


def paired_t_test(differences: np.ndarray) -> float:
    """Two-sided one-sample t-test of per-seed paired differences against 0.

    Returns NaN below two differences; constant differences give 1 when they are all 0 and 0 otherwise
    (the test statistic is infinite).

    Examples
    --------
    >>> round(paired_t_test(np.array([0.02, -0.01, 0.05])), 3)
    0.368
    """
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return np.nan
    mean, se = float(d.mean()), d.std(ddof=1) / np.sqrt(d.size)
    if se == 0:
        return float(mean == 0)
    return float(2 * stats.t.sf(abs(mean) / se, d.size - 1))


def tost_paired(differences: np.ndarray, margin: float) -> float:
    """TOST p-value that the mean paired difference lies within ``(-margin, margin)``.

    Both one-sided t-tests must reject, so the p-value is the larger of the two. NaN below two
    differences; constant differences give 0 inside the margin and 1 outside.

    Examples
    --------
    >>> round(tost_paired(np.array([0.001, -0.002, 0.0, 0.002]), 0.02), 5)
    9e-05
    """
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return np.nan
    mean, se = float(d.mean()), d.std(ddof=1) / np.sqrt(d.size)
    if se == 0:
        return float(abs(mean) >= margin)
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
