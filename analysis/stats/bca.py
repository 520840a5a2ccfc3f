"""The expanded BCa bootstrap of a mean over seeds: the report's interval for 10+ seeds until issue 15.

The report no longer uses it (:mod:`analysis.stats.intervals` gives the paired t interval at every seed
count, with its own p-value); ``python -m analysis.validate`` still measures it beside the t interval,
which is the evidence for that choice (it covers 76 % at 3 seeds and 91 % at 5 for a nominal 95 %).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantile ``q[k]`` of each sorted row ``k`` (rows may end in NaN).

    A row whose ``q`` is NaN, or that holds no value, gives NaN.
    """
    n_valid = (~np.isnan(sorted_rows)).sum(axis=1)
    usable = ~np.isnan(q) & (n_valid > 0)
    pos = np.where(usable, q, 0.0) * np.maximum(n_valid - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(n_valid - 1, 0))
    rows = np.arange(sorted_rows.shape[0])
    frac = pos - lo
    out = sorted_rows[rows, lo] * (1 - frac) + sorted_rows[rows, hi] * frac
    return np.where(usable, out, np.nan)


def _bca_quantiles(x: np.ndarray, valid: np.ndarray, boot: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Bias correction ``z0`` and acceleration of each row: ``(2, K)``."""
    n, n_b = valid.sum(axis=1), (~np.isnan(boot)).sum(1)
    below = (boot < theta[:, None]).sum(1) + 0.5 * (boot == theta[:, None]).sum(1)
    prop = np.clip(below / np.maximum(n_b, 1), 1.0 / (n_b + 1), n_b / (n_b + 1.0))
    z0 = special.ndtri(prop)
    # acceleration from the jackknife of the mean
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = (x.sum(1, keepdims=True) - x) / (n[:, None] - 1)
        jack_mean = np.where(valid, jack, 0.0).sum(1, keepdims=True) / np.maximum(n, 1)[:, None]
    u = np.where(valid, jack_mean - jack, 0.0)
    den = 6.0 * (u**2).sum(1) ** 1.5
    accel = np.divide((u**3).sum(1), den, out=np.zeros_like(theta), where=den > 0)
    return np.stack([z0, accel])


def bca_means(
    values: np.ndarray, idx: np.ndarray, alpha: float = 0.05, *, expand: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BCa intervals of the mean of each row of ``values`` (estimates x seeds) under resamples ``idx``.

    Parameters
    ----------
    values : ndarray
        Estimates x seeds; missing values (NaN) are left out of every mean.
    idx : ndarray
        ``(n_boot, n_seeds)`` resampled seed positions, shared by all rows (joint resampling).
    alpha : float
        1 - confidence level.
    expand : bool
        Use the expanded quantile ``sqrt(n/(n-1)) t_{n-1}`` instead of the normal one (Hesterberg 2015).

    Returns
    -------
    tuple of ndarray
        ``(mean, low, high)``, one entry per row; bounds are NaN for rows with fewer than two values
        (any number of values per row is accepted, none crashes).
    """
    x = np.atleast_2d(np.asarray(values, dtype=float))
    valid = ~np.isnan(x)
    n = valid.sum(axis=1)
    xz = np.where(valid, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        theta = np.where(n > 0, xz.sum(1) / np.maximum(n, 1), np.nan)
        # (K, B): resampled means; a replicate that drew only missing seeds is NaN
        boot = xz[:, idx].sum(axis=2) / valid[:, idx].sum(axis=2)
    z0, accel = _bca_quantiles(xz, valid, boot, np.nan_to_num(theta))
    enough = n >= 2
    if expand:
        # small-sample expansion: sqrt(n / (n - 1)) * t_{n-1} replaces the normal quantile
        m = np.maximum(n, 2).astype(float)
        z_hi = np.sqrt(m / (m - 1.0)) * stats.t.ppf(1 - alpha / 2, m - 1)
    else:
        z_hi = np.full(theta.shape, special.ndtri(1 - alpha / 2))
    z = np.stack([-z_hi, z_hi], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = special.ndtr(z0[:, None] + (z0[:, None] + z) / (1 - accel[:, None] * (z0[:, None] + z)))
    ordered = np.sort(boot, axis=1)  # NaN sort last
    low = _row_quantiles(ordered, adj[:, 0])
    high = _row_quantiles(ordered, adj[:, 1])
    finite = ~np.isnan(boot)
    spread = boot.max(1, initial=-np.inf, where=finite) - boot.min(1, initial=np.inf, where=finite)
    flat = spread == 0  # every resample equal: the interval is the point
    low, high = np.where(flat, theta, low), np.where(flat, theta, high)
    return theta, np.where(enough, low, np.nan), np.where(enough, high, np.nan)
