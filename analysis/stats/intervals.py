"""The one interval engine: every interval of the report is decided or computed here.

* :func:`seed_intervals` decides the interval of a set of per-seed values: a Student-t interval below
  :data:`MIN_BCA_SEEDS` seeds, an expanded BCa bootstrap over seeds from there on, the method named in
  its output. :func:`seed_summary` applies it to the groups of a runs table.
* :func:`percentile_interval` is the one percentile step of every other bootstrap (hierarchical,
  latency, learning curves, reliability bands).
* :func:`t_band` is the t-interval of a mean over runs, pointwise along curves (kernel spectra, ROC
  bands); :func:`t_interval` its one-sample form.

Bootstraps here are vectorised: a ``(n_boot, n_seeds)`` matrix of resampled seed positions is drawn
once and applied to every row at the same time, so rows resampled together (contrasts of several
variants) pick the same seeds in every replicate, keeping the pairing of the design.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from analysis.design import ok_runs
from downscalexr.seeding import numpy_rng

MIN_BCA_SEEDS = 10  # below this many seeds a bootstrap of seeds has too few distinct resamples
INTERVAL_COLUMNS = ["n_seeds", "mean", "low", "high", "method"]


def resample_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(n_boot, n)`` matrix of positions drawn with replacement."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval, got {n_boot}")
    return rng.integers(0, n, size=(n_boot, n))


def percentile_interval(replicates: np.ndarray, alpha: float = 0.05, axis: int | None = None) -> np.ndarray:
    """Percentile bounds ``(low, high)`` of bootstrap replicates; NaN replicates are left out.

    Parameters
    ----------
    replicates : ndarray
        Bootstrap replicates of one statistic (or several, along ``axis``).
    alpha : float
        1 - confidence level: the bounds are the ``alpha / 2`` and ``1 - alpha / 2`` quantiles.
    axis : int, optional
        The replicate axis; None flattens.

    Returns
    -------
    ndarray
        ``[low, high]`` (stacked along a new first axis when ``axis`` is given).

    Examples
    --------
    >>> percentile_interval(np.arange(101.0), 0.1).tolist()
    [5.0, 95.0]
    """
    return np.nanquantile(replicates, [alpha / 2, 1 - alpha / 2], axis=axis)


def t_band(values: np.ndarray, alpha: float = 0.05, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and t half-width of the mean along ``axis`` (e.g. runs x points of a curve).

    The half-width is ``t_{1-alpha/2, n-1} * sd / sqrt(n)``; it is NaN with fewer than two values.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, stats.t.ppf(1 - alpha / 2, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)


def t_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and Student-t interval of a 1-D sample (NaN left out); bounds are NaN below two values.

    Examples
    --------
    >>> [round(v, 3) for v in t_interval(np.array([1.0, 2.0, 3.0]))]
    [2.0, -0.484, 4.484]
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    mean = float(x.mean()) if x.size else np.nan
    if x.size < 2:
        return mean, np.nan, np.nan
    _, half = t_band(x, alpha)
    return mean, float(mean - half), float(mean + half)


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantile ``q[k]`` of each sorted row ``k`` (rows may end in NaN)."""
    n_valid = (~np.isnan(sorted_rows)).sum(axis=1)
    pos = q * np.maximum(n_valid - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(n_valid - 1, 0))
    rows = np.arange(sorted_rows.shape[0])
    frac = pos - lo
    return sorted_rows[rows, lo] * (1 - frac) + sorted_rows[rows, hi] * frac


def _bca_quantiles(x: np.ndarray, valid: np.ndarray, boot: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Bias correction ``z0`` and acceleration of each row: ``(2, K)``."""
    n, n_b = valid.sum(axis=1), (~np.isnan(boot)).sum(1)
    below = (boot < theta[:, None]).sum(1) + 0.5 * (boot == theta[:, None]).sum(1)
    prop = np.clip(below / np.maximum(n_b, 1), 1.0 / (n_b + 1), n_b / (n_b + 1.0))
    z0 = special.ndtri(prop)
    # acceleration from the jackknife of the mean
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = (x.sum(1, keepdims=True) - x) / (n[:, None] - 1)
    u = np.where(valid, jack.mean(1, where=valid, keepdims=True) - jack, 0.0)
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
        Use the expanded quantile ``sqrt(n/(n-1)) t_{n-1}`` instead of the normal one. Plain BCa of a mean
        covers about 90 % at 10 seeds for a nominal 95 %; the expansion brings it to nominal (see
        ``python -m analysis.validate``).

    Returns
    -------
    tuple of ndarray
        ``(mean, low, high)``, one entry per row; bounds are NaN for rows with fewer than two values.
    """
    x = np.atleast_2d(np.asarray(values, dtype=float))
    valid = ~np.isnan(x)
    n = valid.sum(axis=1)
    xz = np.where(valid, x, 0.0)
    theta = xz.sum(1) / np.maximum(n, 1)
    # (K, B): resampled means; a replicate that drew only missing seeds is NaN
    counts = valid[:, idx].sum(axis=2)
    sums = xz[:, idx].sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = sums / counts
    z0, accel = _bca_quantiles(xz, valid, boot, theta)
    if expand:
        # small-sample expansion: the normal quantile is replaced by sqrt(n / (n - 1)) * t_{n-1}, which
        # undoes the plug-in SD's shrinkage and the normal-vs-t tail difference (Hesterberg 2015)
        with np.errstate(invalid="ignore", divide="ignore"):
            z_hi = np.sqrt(n / (n - 1.0)) * stats.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1))
    else:
        z_hi = np.full(theta.shape, special.ndtri(1 - alpha / 2))
    z = np.stack([-z_hi, z_hi], axis=1)
    adj = special.ndtr(z0[:, None] + (z0[:, None] + z) / (1 - accel[:, None] * (z0[:, None] + z)))
    ordered = np.sort(boot, axis=1)  # NaN sort last
    low = _row_quantiles(ordered, adj[:, 0])
    high = _row_quantiles(ordered, adj[:, 1])
    spread = boot.max(1, initial=-np.inf, where=~np.isnan(boot)) - boot.min(
        1, initial=np.inf, where=~np.isnan(boot)
    )
    flat = spread == 0  # every resample equal: the interval is the point
    low, high = np.where(flat, theta, low), np.where(flat, theta, high)
    bad = n < 2
    return theta, np.where(bad, np.nan, low), np.where(bad, np.nan, high)


Resamples = np.ndarray | Callable[[], np.ndarray]


def seed_intervals(values: np.ndarray, alpha: float = 0.05, *, resamples: Resamples) -> pd.DataFrame:
    """The interval of each row of per-seed values: t below :data:`MIN_BCA_SEEDS` seeds, BCa from there.

    This is the one place that decides how a set of per-seed values gets its interval.

    Parameters
    ----------
    values : ndarray
        Rows x seeds (a 1-D array is one row); NaN marks a seed a row does not have.
    alpha : float
        1 - confidence level.
    resamples : ndarray or callable
        ``(n_boot, n_seeds)`` resampled seed positions shared by every row (joint resampling), or a
        function returning them, called only when some row has enough seeds for the bootstrap.

    Returns
    -------
    DataFrame
        One row per input row: ``n_seeds, mean, low, high, method``; ``method`` is ``"t"``, ``"bca"``
        (expanded BCa) or ``"none"`` (no value); bounds are NaN below two values.

    Examples
    --------
    >>> seed_intervals(np.array([0.7, 0.8, 0.9]), resamples=None).round(3).to_dict("records")
    [{'n_seeds': 3, 'mean': 0.8, 'low': 0.552, 'high': 1.048, 'method': 't'}]
    """
    x = np.atleast_2d(np.asarray(values, dtype=float))
    rows = [x_k[~np.isnan(x_k)] for x_k in x]
    bca = np.array([d.size >= MIN_BCA_SEEDS for d in rows])
    if bca.any():
        idx = resamples() if callable(resamples) else resamples
        _, bca_low, bca_high = bca_means(x, idx, alpha)
    out = []
    for k, d in enumerate(rows):
        mean, low, high = t_interval(d, alpha)
        method = "t" if d.size else "none"
        if bca[k]:
            low, high, method = float(bca_low[k]), float(bca_high[k]), "bca"
        out.append((int(d.size), mean, low, high, method))
    return pd.DataFrame(out, columns=INTERVAL_COLUMNS)


def seed_summary(
    runs: pd.DataFrame,
    metric: str,
    *,
    by: Sequence[str] = ("variant", "data_fraction"),
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of ``metric`` over seeds per group with its interval from :func:`seed_intervals`.

    Returns
    -------
    DataFrame
        Columns ``*by, metric, n_seeds, mean, low, high, method``; one row per group of ok runs.

    Examples
    --------
    >>> runs = pd.DataFrame({"variant": "a", "data_fraction": 1.0, "seed": [0, 1, 2],
    ...                      "accuracy": [0.7, 0.8, 0.9]})
    >>> seed_summary(runs, "accuracy").round(3)[["n_seeds", "mean", "method"]].to_dict("records")
    [{'n_seeds': 3, 'mean': 0.8, 'method': 't'}]
    """
    ok = ok_runs(runs, [metric])
    rows = []
    for key, group in ok.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        x = group[metric].to_numpy(dtype=float)
        x = x[~np.isnan(x)]

        def draw(n=x.size, key=key) -> np.ndarray:
            return resample_indices(n, n_boot, numpy_rng(seed, "seed_summary", metric, *key))

        interval = seed_intervals(x, alpha, resamples=draw).iloc[0]
        rows.append({**dict(zip(by, key, strict=True)), "metric": metric, **interval.to_dict()})
    return pd.DataFrame(rows, columns=[*by, "metric", *INTERVAL_COLUMNS])
